extension IPVSAdmParser {
    /// What the options seen so far have set, checked as ipvsadm checks them.
    struct ParseState {
        let parser: IPVSAdmParser
        var command: Command = .list
        var options: UInt64 = 0

        var serviceProtocol: IPProtocol = .tcp
        var serviceAddress: IPAddress = .anyV4
        var servicePort: UInt16 = 0
        var fwmark: UInt32 = 0
        var scheduler = ""
        var serviceFlags: ServiceFlags = []
        var persistenceTimeout: UInt32 = 0
        var netmask: UInt32 = 0xFFFF_FFFF
        var persistenceEngine: String?
        var schedulerFlagsText: String?

        var serverAddress: IPAddress = .anyV4
        var serverPort: UInt16 = 0
        var forwarding: ForwardingMethod = .gatewaying
        var weight: Int32 = 1
        var upperThreshold: UInt32 = 0
        var lowerThreshold: UInt32 = 0
        var tunnelKind: TunnelConfig.Kind = .ipip

        var tunnelPort: UInt16 = 0

        var daemon = SyncDaemonConfig(state: .master)
        var timeouts: (UInt32, UInt32, UInt32) = (0, 0, 0)

        init(parser: IPVSAdmParser) { self.parser = parser }

        func has(_ o: Option) -> Bool { options & (1 << UInt64(o.rawValue)) != 0 }

        mutating func set(_ o: Option) throws(IPVSAdmError) {
            if has(o) { throw IPVSAdmError("multiple '\(o.name)' options specified") }
            options |= 1 << UInt64(o.rawValue)
        }

        var family: AddressFamily { fwmark != 0 ? (isV6Fwmark ? .inet6 : .inet) : serviceAddress.family }
        var isV6Fwmark = false

        mutating func daemonState(_ value: String, start: Bool) throws(IPVSAdmError) {
            guard let state = SyncDaemonState(rawValue: value) else {
                throw IPVSAdmError(start ? "illegal start-daemon parameter specified" : "illegal start_daemon specified")
            }
            daemon.state = state
        }

        // MARK: Each option

        mutating func take(_ o: Occurrence) throws(IPVSAdmError) {
            if IPVSAdmParser.commandIDs.contains(o.id) {
                throw IPVSAdmError("invalid option `\(o.typed)'")
            }
            let value = o.value ?? ""
            switch o.id {
            case "t", "u", "sctp":
                try set(.service)
                serviceProtocol = o.id == "t" ? .tcp : (o.id == "u" ? .udp : .sctp)
                guard let (address, port) = parseEndpoint(value, protocol: serviceProtocol) else {
                    throw IPVSAdmError("illegal virtual server address[:port] specified")
                }
                serviceAddress = address
                servicePort = port ?? 0
                if address.isV6 { netmask = 128 }
            case "f":
                try set(.service)
                serviceProtocol = .tcp
                serviceAddress = .anyV4
                guard let mark = IPVSAdmParser.number(value, 1, Int64(UInt32.max)) else {
                    throw IPVSAdmError("invalid fwmark value `\(value)' specified")
                }
                fwmark = UInt32(mark)
            case "6":
                guard fwmark != 0 else { throw IPVSAdmError("-6 used before -f\n") }
                isV6Fwmark = true
                netmask = 128
            case "s":
                try set(.scheduler)
                scheduler = String(value.prefix(15))
            case "p":
                try set(.persistent)
                serviceFlags.insert(.persistent)
                if let v = o.value {
                    guard let t = IPVSAdmParser.number(v, 1, Int64(Timeouts.maximumSetSeconds)) else {
                        throw IPVSAdmError("invalid timeout value `\(v)' specified")
                    }
                    persistenceTimeout = UInt32(t)
                } else {
                    persistenceTimeout = 360
                }
            case "M":
                try set(.netmask)
                if family != .inet6 {
                    guard let mask = IPAddress.parseInetAton(value) ?? parser.resolver.ipv4Address(forHost: value) else {
                        throw IPVSAdmError("illegal virtual server persistent mask specified")
                    }
                    netmask = mask
                } else {
                    let n = IPVSAdmParser.atoi(value)
                    guard n >= 1 && n <= 128 else { throw IPVSAdmError("illegal ipv6 netmask specified") }
                    netmask = UInt32(n)
                }
            case "pe":
                try set(.persistenceEngine)
                persistenceEngine = String(value.prefix(15))
            case "b":
                try set(.schedulerFlags)
                schedulerFlagsText = value
            case "o":
                try set(.onePacket)
                serviceFlags.insert(.onePacket)
            case "r":
                try set(.realServer)
                guard let (address, port) = parseEndpoint(value, protocol: serviceProtocol) else {
                    throw IPVSAdmError("illegal real server address[:port] specified")
                }
                serverAddress = address
                serverPort = port ?? servicePort
            case "g", "i", "m":
                try set(.forward)
                forwarding = o.id == "g" ? .gatewaying : (o.id == "i" ? .tunnel : .masquerade)
            case "w":
                try set(.weight)
                guard let w = IPVSAdmParser.number(value, 0, Int64(Int32.max)) else { throw IPVSAdmError("illegal weight specified") }
                weight = Int32(w)
            case "x":
                try set(.upperThreshold)
                guard let x = IPVSAdmParser.number(value, 0, Int64(Int32.max)) else {
                    throw IPVSAdmError("illegal u_threshold specified")
                }
                upperThreshold = UInt32(x)
            case "y":
                try set(.lowerThreshold)
                guard let y = IPVSAdmParser.number(value, 0, Int64(Int32.max)) else {
                    throw IPVSAdmError("illegal l_threshold specified")
                }
                lowerThreshold = UInt32(y)
            case "c": try set(.connection)
            case "timeout": try set(.timeout)
            case "daemon": try set(.daemon)
            case "stats": try set(.stats)
            case "rate": try set(.rate)
            case "thresholds": try set(.thresholds)
            case "persistent-conn": try set(.persistentConnections)
            case "nosort": try set(.noSort)
            case "sort": break
            case "n": try set(.numeric)
            case "X": try set(.exact)
            case "tun-info": try set(.tunnelInfo)
            case "syncid":
                try set(.syncID)
                guard let id = IPVSAdmParser.number(value, 0, 255) else { throw IPVSAdmError("illegal syncid specified") }
                daemon.syncID = UInt8(id)
            case "mcast-interface":
                try set(.mcastInterface)
                daemon.interface = String(value.prefix(15))
            case "mcast-group":
                try set(.mcastGroup)
                if value.contains(":") {
                    guard let g = IPAddress.parseV6(value), g.isMulticast else {
                        throw IPVSAdmError("invalid IPv6 mcast-group `\(value)'")
                    }
                    daemon.group = g
                } else {
                    guard let v = IPAddress.parseDottedQuad(value), IPAddress(v4: v).isMulticast else {
                        throw IPVSAdmError("invalid IPv4 mcast-group `\(value)'")
                    }
                    daemon.group = IPAddress(v4: v)
                }
            case "mcast-port":
                try set(.mcastPort)
                guard let p = IPVSAdmParser.number(value, 1, 65535) else { throw IPVSAdmError("illegal mcast-port specified") }
                daemon.port = UInt16(p)
            case "mcast-ttl":
                try set(.mcastTTL)
                guard let t = IPVSAdmParser.number(value, 1, 255) else { throw IPVSAdmError("illegal mcast-ttl specified") }
                daemon.ttl = UInt8(t)
            case "sync-maxlen":
                try set(.syncMaxLength)
                guard let m = IPVSAdmParser.number(value, 1, 65507) else { throw IPVSAdmError("illegal sync-maxlen specified") }
                daemon.maxLength = UInt16(m)
            case "tun-type":
                try set(.tunnelType)
                switch value {
                case "ipip": tunnelKind = .ipip
                case "gue": tunnelKind = .gue
                case "gre": tunnelKind = .gre
                default: throw IPVSAdmError("illegal tunnel type specified")
                }
            case "tun-port":
                try set(.tunnelPort)
                guard let p = IPVSAdmParser.number(value, 1, 65535) else { throw IPVSAdmError("illegal tunnel port specified") }
                tunnelPort = UInt16(p)
            case "tun-nocsum": try set(.tunnelNoChecksum)
            case "tun-csum": try set(.tunnelChecksum)
            case "tun-remcsum": try set(.tunnelRemoteChecksum)
            case "proxy-protocol": try set(.proxyProtocol)
            default:
                throw IPVSAdmError("\(o.typed): unknown option", exitCode: 255)
            }
        }

        /// ipvsadm's `parse_service`: `[v6]:port`, a bare IPv6 literal (port 0), or `host:port` with the
        /// host by `inet_aton` or name and the port by number or service name. A port of nil means none
        /// was given.
        func parseEndpoint(_ text: String, protocol proto: IPProtocol) -> (IPAddress, UInt16?)? {
            if text.isEmpty || text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { return nil }
            var host = Substring(text)
            var portText: Substring? = nil
            if host.first == "[" {
                host = host.dropFirst()
                guard let close = host.firstIndex(of: "]") else { return nil }
                let after = host[host.index(after: close)...]
                guard after.first == ":" else { return nil }
                portText = after.dropFirst()
                host = host[..<close]
            }
            let address: IPAddress
            if let v6 = IPAddress.parseV6(host) {
                address = v6
            } else {
                if portText == nil, let colon = host.lastIndex(of: ":") {
                    portText = host[host.index(after: colon)...]
                    host = host[..<colon]
                }
                if let v4 = IPAddress.parseInetAton(host) ?? parser.resolver.ipv4Address(forHost: String(host)) {
                    address = IPAddress(v4: v4)
                } else {
                    return nil
                }
            }
            guard let portText else { return (address, nil) }
            if let n = IPVSAdmParser.number(String(portText), 0, 65535) { return (address, UInt16(n)) }
            let protoName = proto == .tcp ? "tcp" : (proto == .udp ? "udp" : "sctp")
            if let p = parser.resolver.port(forService: String(portText), protocol: protoName) { return (address, p) }
            return nil
        }

        var serviceKey: VirtualService.Key {
            fwmark != 0
                ? .fwmark(fwmark, isV6Fwmark ? .inet6 : .inet)
                : .address(serviceProtocol, serviceAddress, servicePort)
        }

        // MARK: After the options

        mutating func finish() throws(IPVSAdmError) -> IPVSAdmCommand {
            if let text = schedulerFlagsText {
                serviceFlags.subtract(.schedulerFlags)
                serviceFlags.formUnion(try IPVSAdmParser.parseSchedulerFlags(text, scheduler: scheduler.isEmpty ? "wlc" : scheduler))
            }
            try checkLegality()
            switch command {
            case .add, .edit:
                if fwmark == 0 && servicePort == 0 && !serviceFlags.contains(.persistent) {
                    throw IPVSAdmError("Zero port specified for non-persistent service")
                }
                if serviceFlags.contains(.onePacket) && fwmark == 0 && serviceProtocol != .udp {
                    throw IPVSAdmError("One-Packet Scheduling is only for UDP virtual services")
                }
                let config = VirtualService.Config(
                    key: serviceKey, scheduler: scheduler.isEmpty ? "wlc" : scheduler, flags: serviceFlags,
                    persistenceTimeout: persistenceTimeout, netmask: netmask, persistenceEngine: persistenceEngine)
                return command == .add ? .addService(config) : .editService(config)
            case .delete:
                return .deleteService(serviceKey)
            case .flush:
                return .clear
            case .restore:
                return .restore
            case .save:
                return .save(numeric: has(.numeric))
            case .zero:
                return .zero(has(.service) ? serviceKey : nil)
            case .setTimeouts:
                return .setTimeouts(tcp: timeouts.0, tcpFin: timeouts.1, udp: timeouts.2)
            case .startDaemon:
                return .startDaemon(daemon)
            case .stopDaemon:
                return .stopDaemon(daemon.state, syncID: daemon.syncID)
            case .deleteServer:
                return .deleteServer(serviceKey, Endpoint(serverAddress, serverPort))
            case .addServer, .editServer:
                var port = serverPort
                if (forwarding == .gatewaying || forwarding == .tunnel) && fwmark == 0 { port = servicePort }
                let serviceFamily: AddressFamily = fwmark != 0 ? (isV6Fwmark ? .inet6 : .inet) : serviceAddress.family
                if serverAddress.family != serviceFamily && forwarding != .tunnel {
                    throw IPVSAdmError("Different address family is allowed only for tunneling servers")
                }
                let tunnel = try checkTunnel()
                let config = RealServerConfig(
                    Endpoint(serverAddress, port), forwarding: forwarding, weight: weight,
                    upperThreshold: upperThreshold, lowerThreshold: lowerThreshold, tunnel: tunnel,
                    proxyProtocol: has(.proxyProtocol))
                return command == .addServer ? .addServer(serviceKey, config) : .editServer(serviceKey, config)
            case .list:
                let grouped = has(.connection) || has(.timeout) || has(.daemon)
                if (grouped && (has(.stats) || has(.rate) || has(.thresholds)))
                    || ((has(.timeout) || has(.daemon)) && has(.persistentConnections)) {
                    throw IPVSAdmError("options conflicts in the list command")
                }
                var request = ListRequest()
                request.numeric = has(.numeric)
                request.exact = has(.exact)
                request.sort = !has(.noSort)
                if has(.connection) {
                    request.subject = .connections
                    request.persistenceEngineData = has(.persistentConnections)
                } else if has(.timeout) {
                    request.subject = .timeouts
                } else if has(.daemon) {
                    request.subject = .daemons
                } else if has(.service) {
                    request.subject = .service(serviceKey)
                }
                if has(.stats) {
                    request.format = .stats
                } else if has(.rate) {
                    request.format = .rate
                } else if has(.thresholds) {
                    request.format = .thresholds
                } else if has(.persistentConnections) {
                    request.format = .persistentConnections
                } else if has(.tunnelInfo) {
                    request.format = .tunnelInfo
                }
                return .list(request)
            }
        }

        /// ipvsadm's `generic_opt_check`.
        func checkLegality() throws(IPVSAdmError) {
            var first: Option? = nil
            for option in Option.allCases {
                let rule = IPVSAdmParser.rule(command, option)
                if !has(option) {
                    if rule == "+" {
                        throw IPVSAdmError("You need to supply the '\(option.name)' option for the '\(command.name)' command")
                    }
                    continue
                }
                if rule == "x" {
                    throw IPVSAdmError("Illegal '\(option.name)' option with the '\(command.name)' command")
                }
                if rule == "1" {
                    if let first {
                        throw IPVSAdmError(
                            "The option '\(option.name)' conflicts with the '\(first.name)' option in the '\(command.name)' command")
                    }
                    first = option
                }
            }
        }

        /// Tunnel options: only with `-i`, and per tunnel type (checked: tun-port, nocsum, csum, remcsum).
        func checkTunnel() throws(IPVSAdmError) -> TunnelConfig {
            let tunnelOptions: [Option] = [.tunnelType, .tunnelPort, .tunnelNoChecksum, .tunnelChecksum, .tunnelRemoteChecksum]
            guard forwarding == .tunnel else {
                if tunnelOptions.contains(where: has) { throw IPVSAdmError("Tunnel options conflict with forward method") }
                return TunnelConfig()
            }
            let kind = tunnelKind
            let checked: [Option] = [.tunnelPort, .tunnelNoChecksum, .tunnelChecksum, .tunnelRemoteChecksum]
            var firstChecksum: Option? = nil
            for option in checked {
                let rule: Character
                switch (kind, option) {
                case (.ipip, _): rule = "x"
                case (.gue, .tunnelPort): rule = "+"
                case (.gue, _): rule = "1"
                case (.gre, .tunnelPort), (.gre, .tunnelRemoteChecksum): rule = "x"
                case (.gre, _): rule = "1"
                }
                if !has(option) {
                    if rule == "+" {
                        throw IPVSAdmError("You need to supply the '\(option.name)' option for the '\(kind.name)' tunnel type")
                    }
                    continue
                }
                if rule == "x" {
                    throw IPVSAdmError("Illegal '\(option.name)' option with the '\(kind.name)' tunnel type")
                }
                if let f = firstChecksum {
                    throw IPVSAdmError("The option '\(option.name)' conflicts with the '\(f.name)' option in the '\(kind.name)' tunnel type")
                }
                if rule == "1" { firstChecksum = option }
            }
            let checksum: TunnelConfig.Checksum =
                has(.tunnelRemoteChecksum) ? .remoteChecksum : (has(.tunnelChecksum) ? .checksum : .none)
            return TunnelConfig(kind: kind, port: tunnelPort, checksum: checksum)
        }
    }

    /// ipvsadm's `parse_sched_flags`.
    static func parseSchedulerFlags(_ text: String, scheduler: String) throws(IPVSAdmError) -> ServiceFlags {
        var flags: ServiceFlags = []
        for word in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            switch word {
            case "flag-1": flags.insert(.scheduler1)
            case "flag-2": flags.insert(.scheduler2)
            case "flag-3": flags.insert(.scheduler3)
            case "sh-fallback", "sh-port":
                guard scheduler == "sh" else { throw IPVSAdmError("incompatible scheduler flag `\(word)'") }
                flags.insert(word == "sh-fallback" ? .scheduler1 : .scheduler2)
            case "mh-fallback", "mh-port":
                guard scheduler == "mh" else { throw IPVSAdmError("incompatible scheduler flag `\(word)'") }
                flags.insert(word == "mh-fallback" ? .scheduler1 : .scheduler2)
            default:
                throw IPVSAdmError("invalid scheduler flag `\(word)'")
            }
        }
        return flags
    }

    /// C's `atoi`: leading blanks, an optional sign, then as many digits as there are.
    static func atoi(_ text: String) -> Int {
        var bytes = Substring(text).utf8[...]
        while let f = bytes.first, f == 0x20 || (f >= 0x09 && f <= 0x0D) { bytes = bytes.dropFirst() }
        var sign = 1
        if let f = bytes.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") {
            sign = f == UInt8(ascii: "-") ? -1 : 1
            bytes = bytes.dropFirst()
        }
        var n = 0
        for b in bytes {
            guard b >= 0x30 && b <= 0x39, n < 1 << 40 else { break }
            n = n * 10 + Int(b - 0x30)
        }
        return sign * n
    }
}
