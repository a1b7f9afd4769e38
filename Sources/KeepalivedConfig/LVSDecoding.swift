import LVSCore

/// The LVS part of keepalived's language (keepalived/check/check_parser.c and the checkers).
extension Decoder {
    static let schedulers: Set<String> = ["rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos"]
    static let timeoutMaximum: Microseconds = 4_294_967_295

    // MARK: virtual_server_group

    mutating func virtualServerGroup(_ node: ConfigNode) -> VirtualServerGroup? {
        guard let name = word(node, 1) else { return nil }
        var group = VirtualServerGroup(name: name, entries: [], location: node.location)
        guard let block = node.block else {
            report(.missingBlockStart, "'{' missing from beginning of block \(node.keyword)", node)
            return nil
        }
        for entry in block {
            refuseBlock(entry)
            if let parsed = groupEntry(entry, group: name) { group.entries.append(parsed) }
        }
        if group.entries.isEmpty {
            report(.generalError, "virtual server group \(name) has no entries - removing", node)
            return nil
        }
        return group
    }

    private mutating func groupEntry(_ node: ConfigNode, group: String) -> VirtualServerGroupEntry? {
        let words = node.words
        if words[0] == "fwmark" {
            guard let mark = unsigned(node, 1, in: 0...UInt64(UInt32.max)) else {
                report(.generalError, "(\(group)): fwmark '\(words.count > 1 ? words[1] : "")' must be in [0, \(UInt32.max)] - ignoring", node)
                return nil
            }
            var family: AddressFamily?
            if words.count > 2 {
                switch words[2] {
                case "inet": family = .inet
                case "inet6": family = .inet6
                default:
                    report(.generalError, "(\(group)): fwmark '\(mark)' family \(words[2]) unknown - ignoring", node)
                    return nil
                }
            }
            return .fwmark(UInt32(mark), family)
        }
        let text = words[0]
        let portWord = words.count > 1 ? words[1] : nil
        let invalid = "Invalid virtual server group IP address \(text) \(portWord.map { "/port" + "/" + $0 } ?? "") - skipping"
        guard let port = port(portWord, node) else {
            report(.generalError, invalid, node)
            return nil
        }
        if let slash = text.firstIndex(of: "/") {
            guard let base = IPAddress(text[..<slash]), let length = UInt8(text[text.index(after: slash)...]),
                  length >= 1, length <= (base.isV6 ? 128 : 32) else {
                report(.generalError, "Invalid netmask - \(text) - skipping", node)
                return nil
            }
            let (first, last) = Decoder.prefixRange(base, length)
            guard first == base else {
                report(.generalError, "Address mask bits not empty - \(text) - skipping", node)
                return nil
            }
            return .range(first, last, port ?? 0)
        }
        if let dash = text.firstIndex(of: "-") {
            guard let start = IPAddress(text[..<dash]) else {
                report(.generalError, invalid, node)
                return nil
            }
            let endText = String(text[text.index(after: dash)...])
            let end: IPAddress
            if endText.contains(start.isV6 ? ":" : ".") {
                guard let full = IPAddress(endText) else {
                    report(.generalError, "Invalid range end \(endText) - skipping", node)
                    return nil
                }
                guard full.family == start.family else {
                    report(.generalError, "Range address families do not match \(text) - skipping", node)
                    return nil
                }
                guard full.high > start.high || (full.high == start.high && full.low >= start.low) else {
                    report(.generalError, "Address range end is less than address range start - \(text) - skipping", node)
                    return nil
                }
                end = full
            } else {
                let limit: UInt64 = start.isV6 ? 0xFFFF : 255
                guard let last = UInt64(endText, radix: start.isV6 ? 16 : 10), last <= limit else {
                    report(.generalError, "Invalid range end \(endText) - skipping", node)
                    return nil
                }
                let shift: UInt64 = start.isV6 ? 16 : 8
                let current = start.low & ((1 << shift) - 1)
                guard last > current else {
                    report(.generalError, "Address range end is not greater than address range start - \(text) - skipping", node)
                    return nil
                }
                var e = start
                e.low = (start.low & ~((1 << shift) - 1)) | last
                end = e
            }
            return .range(start, end, port ?? 0)
        }
        guard let address = IPAddress(text) else {
            report(.generalError, invalid, node)
            return nil
        }
        return .range(address, address, port ?? 0)
    }

    static func prefixRange(_ base: IPAddress, _ length: UInt8) -> (IPAddress, IPAddress) {
        if !base.isV6 {
            let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << (32 - UInt32(length))
            return (IPAddress(v4: base.v4 & mask), IPAddress(v4: base.v4 | ~mask))
        }
        func masks(_ bits: Int) -> (UInt64, UInt64) {
            let hi: UInt64 = bits >= 64 ? ~0 : (bits == 0 ? 0 : ~UInt64(0) << (64 - UInt64(bits)))
            let lo: UInt64 = bits <= 64 ? 0 : (bits >= 128 ? ~0 : ~UInt64(0) << (128 - UInt64(bits)))
            return (hi, lo)
        }
        let (mh, ml) = masks(Int(length))
        return (IPAddress(v6High: base.high & mh, low: base.low & ml), IPAddress(v6High: base.high | ~mh, low: base.low | ~ml))
    }

    // MARK: virtual_server

    mutating func virtualServer(_ node: ConfigNode) -> VirtualServerDefinition? {
        guard let first = word(node, 1) else { return nil }
        var address: VirtualServerAddress
        switch first {
        case "fwmark":
            guard let text = word(node, 2) else { return nil }
            guard let mark = UInt32(text) else {
                report(.generalError, "virtual server fwmark '\(text)' must be in [0, \(UInt32.max)] - ignoring", node)
                return nil
            }
            address = .fwmark(mark)
        case "group":
            guard let name = word(node, 2) else { return nil }
            address = .group(name)
        default:
            let portWord = node.words.count > 2 ? node.words[2] : nil
            guard let ip = IPAddress(first), let port = port(portWord, node) else {
                report(.generalError, "Invalid virtual server IP address\(portWord == nil ? "" : "/port") \(first)\(portWord == nil ? "" : "/")\(portWord ?? "") - skipping", node)
                return nil
            }
            address = .endpoint(ip, port ?? 0)
        }
        var vs = VirtualServerDefinition(address: address, location: node.location)
        if case .endpoint(let ip, _) = address { vs.family = ip.family }
        for item in block(node) {
            virtualServerKeyword(item, &vs)
        }
        if let sorry = vs.sorryServer, sorry.forwarding?.method != .tunnel, let family = vs.family, sorry.address.family != family {
            report(.generalError, "Address family of virtual server and sorry server \(sorry.address) don't match - skipping sorry server.", node)
            vs.sorryServer = nil
        }
        return vs
    }

    private mutating func virtualServerKeyword(_ node: ConfigNode, _ vs: inout VirtualServerDefinition) {
        if node.keyword != "real_server" { refuseBlock(node) }
        switch node.keyword {
        case "ip_family":
            guard let family = word(node, 1) else { return }
            let parsed: AddressFamily? = family == "inet" ? .inet : family == "inet6" ? .inet6 : nil
            guard let parsed else {
                report(.generalError, "unknown address family \(family)", node)
                return
            }
            if let existing = vs.family, existing != parsed {
                report(.generalError, "Virtual server specified family \(family) conflicts with server family", node)
                return
            }
            vs.family = parsed
        case "delay_loop":
            if let v = timer(node, 1, minimum: 1) { vs.delayLoop = v } else {
                report(.generalError, "virtual server delay loop '\(node.words.count > 1 ? node.words[1] : "")' invalid - ignoring", node)
            }
        case "lvs_sched", "lb_algo":
            guard let name = word(node, 1) else { return }
            guard Decoder.schedulers.contains(name) else {
                report(.generalError, "Invalid lvs_scheduler '\(name)' - ignoring", node)
                return
            }
            vs.scheduler = name
        case "lvs_method", "lb_kind":
            if let method = forwarding(node, server: "virtual") { vs.forwarding = method }
        case "persistence_timeout":
            if node.words.count < 2 {
                vs.persistenceTimeout = 360
            } else if let v = unsigned(node, 1, in: 1...2_678_400) {
                vs.persistenceTimeout = UInt32(v)
            } else {
                report(.generalError, "persistence_timeout invalid", node)
            }
        case "persistence_granularity":
            guard let text = word(node, 1) else { return }
            let v6 = vs.family == .inet6 || (vs.family == nil && !text.contains("."))
            if v6 {
                guard let length = UInt32(text), (1...128).contains(length) else {
                    report(.generalError, "Invalid IPv6 persistence_granularity specified - \(text)", node)
                    return
                }
                vs.persistenceGranularity = length
            } else {
                guard let mask = IPAddress.parseDottedQuad(text) else {
                    report(.generalError, "Invalid IPv4 persistence_granularity specified - \(text)", node)
                    return
                }
                vs.persistenceGranularity = mask
            }
            if vs.persistenceTimeout == nil { vs.persistenceTimeout = 360 }
        case "persistence_engine":
            guard let name = word(node, 1) else { return }
            if name.utf8.count > 16 { report(.generalError, "persistence_name too long, truncating - \(name)", node) }
            vs.persistenceEngine = String(name.prefix(16))
        case "protocol":
            guard let name = word(node, 1) else { return }
            switch name.uppercased() {
            case "TCP": vs.protocolName = .tcp
            case "UDP": vs.protocolName = .udp
            case "SCTP": vs.protocolName = .sctp
            default: report(.generalError, "Unknown protocol \(name) - ignoring", node)
            }
        case "ops": vs.onePacket = true
        case "flag-1": vs.schedulerFlags.insert(.scheduler1)
        case "flag-2": vs.schedulerFlags.insert(.scheduler2)
        case "flag-3": vs.schedulerFlags.insert(.scheduler3)
        case "sh-port", "sh-fallback", "mh-port", "mh-fallback", "hashed":
            let wanted = node.keyword.hasPrefix("mh") ? "mh" : "sh"
            if vs.scheduler == wanted {
                vs.schedulerFlags.insert(node.keyword.hasSuffix("port") ? .scheduler2 : .scheduler1)
            } else if !(vs.scheduler == "mh" || vs.scheduler == "sh") || node.keyword == "hashed" {
                report(.generalError, "\(node.keyword) only applies to sh scheduler - ignoring", node)
            }
        case "ha_suspend": vs.haSuspend = true
        case "virtualhost":
            guard node.words.count > 1 else {
                report(.generalError, "virtual server virtualhost missing", node)
                return
            }
            vs.virtualhost = node.words[1]
        case "smtp_alert":
            guard let v = optionalBool(node) else {
                report(.generalError, "Invalid virtual_server smtp_alert parameter \(node.words[1])", node)
                return
            }
            vs.smtpAlert = v
        case "snmp_name": break
        case "alpha": vs.alpha = true
        case "omega": vs.omega = true
        case "inhibit_on_failure": vs.inhibitOnFailure = true
        case "quorum":
            if let v = unsigned(node, 1, in: 1...UInt64(UInt32.max)) { vs.quorum = UInt32(v) } else {
                report(.generalError, "Quorum \(node.words.count > 1 ? node.words[1] : "") must be in [1, \(UInt32.max)]. Setting to 1.", node)
                vs.quorum = 1
            }
        case "hysteresis":
            if let v = unsigned(node, 1, in: 0...UInt64(UInt32.max)) { vs.hysteresis = UInt32(v) } else {
                report(.generalError, "Hysteresis \(node.words.count > 1 ? node.words[1] : "") must be in [0, \(UInt32.max)] - ignoring", node)
            }
        case "quorum_up":
            if vs.quorumUp != nil { report(.generalError, "(\(vs.trio)) quorum_up script already specified - ignoring \(node.words.dropFirst().joined(separator: " "))", node); return }
            vs.quorumUp = script(node)
        case "quorum_down":
            if vs.quorumDown != nil { report(.generalError, "(\(vs.trio)) quorum_down script already specified - ignoring \(node.words.dropFirst().joined(separator: " "))", node); return }
            vs.quorumDown = script(node)
        case "weight":
            if let v = unsigned(node, 1, in: 1...UInt64(Int32.max)) { vs.weight = Int32(v) } else {
                report(.generalError, "Virtual server weight \(node.words.count > 1 ? node.words[1] : "") is outside range 1-\(Int32.max)", node)
            }
        case "retry":
            if let v = unsigned(node, 1, in: 1...UInt64(UInt32.max)) { vs.retry = UInt32(v) } else {
                report(.generalError, "retry value invalid - \(node.words.count > 1 ? node.words[1] : "")", node)
            }
        case "delay_before_retry":
            if let v = timer(node, 1) { vs.delayBeforeRetry = v } else {
                report(.generalError, "virtual server delay before retry '\(node.words.count > 1 ? node.words[1] : "")' invalid - ignoring", node)
            }
        case "warmup":
            if let v = timer(node, 1) { vs.warmup = v } else {
                report(.generalError, "virtual server warmup '\(node.words.count > 1 ? node.words[1] : "")' invalid - ignoring", node)
            }
        case "connect_timeout":
            if let v = timer(node, 1, minimum: 1, maximum: Decoder.timeoutMaximum) { vs.connectTimeout = v } else {
                report(.generalError, "virtual server connect_timeout \(node.words.count > 1 ? node.words[1] : "") invalid - ignoring", node)
            }
        case "sorry_server":
            guard let text = word(node, 1) else { return }
            let portWord = node.words.count > 2 ? node.words[2] : nil
            guard let ip = IPAddress(text), let port = port(portWord, node) else {
                report(.generalError, "Invalid sorry server IP address \(text) - skipping", node)
                return
            }
            var sorry = RealServerDefinition(address: ip, port: port ?? 0, location: node.location)
            sorry.weight = 1
            sorry.forwarding = vs.forwarding
            vs.sorryServer = sorry
        case "sorry_server_inhibit":
            guard vs.sorryServer != nil else {
                report(.generalError, "Ignoring sorry_server inhibit used before or without sorry_server", node)
                return
            }
            vs.sorryServerInhibit = true
        case "sorry_server_lvs_method":
            guard vs.sorryServer != nil else {
                report(.generalError, "sorry_server forwarding used without sorry_server", node)
                return
            }
            if let method = forwarding(node, server: "sorry") { vs.sorryServer?.forwarding = method }
        case "real_server":
            if let rs = realServer(node, in: vs) { vs.realServers.append(rs) }
        default:
            unknown(node)
        }
    }

    /// `lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`.
    mutating func forwarding(_ node: ConfigNode, server: String) -> ForwardingDefinition? {
        guard let name = word(node, 1) else { return nil }
        var result: ForwardingDefinition
        switch name {
        case "NAT": result = ForwardingDefinition(method: .masquerade)
        case "DR": result = ForwardingDefinition(method: .gatewaying)
        case "TUN": result = ForwardingDefinition(method: .tunnel)
        default:
            report(.generalError, "PARSER : unknown [\(name)] routing method for \(server) server.", node)
            return nil
        }
        var tunnel = TunnelConfig()
        var portGiven = false
        var checksumGiven = false
        var i = 2
        let words = node.words
        while i < words.count {
            switch words[i] {
            case "type":
                guard i + 1 < words.count else {
                    report(.generalError, "Missing tunnel type for \(server) server.", node)
                    return result
                }
                switch words[i + 1] {
                case "ipip": tunnel.kind = .ipip
                case "gue": tunnel.kind = .gue
                case "gre": tunnel.kind = .gre
                default:
                    report(.generalError, "Unknown tunnel type \(words[i + 1]) for \(server) server.", node)
                    return result
                }
                i += 2
            case "port":
                guard i + 1 < words.count else {
                    report(.generalError, "Missing port for \(server) server gue tunnel.", node)
                    return result
                }
                guard let port = UInt16(words[i + 1]), port >= 1 else {
                    report(.generalError, "Invalid gue tunnel port \(words[i + 1]) for \(server) server.", node)
                    return result
                }
                tunnel.port = port
                portGiven = true
                i += 2
            case "nocsum": tunnel.checksum = .none; checksumGiven = true; i += 1
            case "csum": tunnel.checksum = .checksum; checksumGiven = true; i += 1
            case "remcsum": tunnel.checksum = .remoteChecksum; checksumGiven = true; i += 1
            default:
                report(.generalError, "Invalid tunnel option \(words[i]) for \(server) server.", node)
                return result
            }
        }
        if (tunnel.kind == .gue) != portGiven {
            report(.generalError, "gue tunnels require port, otherwise cannot have port.", node)
            return result
        }
        if tunnel.kind == .ipip && checksumGiven && tunnel.checksum != .none {
            report(.generalError, "ipip tunnels do not support checksum option.", node)
            return result
        }
        if tunnel.kind == .gre && tunnel.checksum == .remoteChecksum {
            report(.generalError, "gre tunnels do not support remote checksum option.", node)
            return result
        }
        result.tunnel = tunnel
        return result
    }

    // MARK: real_server

    private mutating func realServer(_ node: ConfigNode, in vs: VirtualServerDefinition) -> RealServerDefinition? {
        guard let text = word(node, 1) else { return nil }
        let portWord = node.words.count > 2 ? node.words[2] : nil
        guard let ip = IPAddress(text), let port = port(portWord, node) else {
            report(.generalError, "Invalid real server ip address/port \(text)/\(portWord ?? "") - skipping", node)
            return nil
        }
        var rs = RealServerDefinition(address: ip, port: port ?? 0, location: node.location)
        rs.forwarding = vs.forwarding
        for item in block(node) {
            realServerKeyword(item, &rs, vs)
        }
        if rs.forwarding?.method != .tunnel, let family = vs.family, family != ip.family {
            report(.generalError, "Address family of virtual server and real server \(ip) don't match - skipping real server.", node)
            return nil
        }
        return rs
    }

    private mutating func realServerKeyword(_ node: ConfigNode, _ rs: inout RealServerDefinition, _ vs: VirtualServerDefinition) {
        if CheckerDefinition.Kind(rawValue: node.keyword) == nil { refuseBlock(node) }
        let value = node.words.count > 1 ? node.words[1] : ""
        switch node.keyword {
        case "weight":
            if let v = unsigned(node, 1, in: 0...UInt64(Int32.max)) { rs.weight = Int32(v) } else {
                report(.generalError, "Real server weight \(value) is outside range 0-\(Int32.max)", node)
            }
        case "lvs_method":
            if let method = forwarding(node, server: "real") { rs.forwarding = method }
        case "uthreshold":
            if let v = unsigned(node, 1, in: 0...UInt64(UInt32.max)) { rs.upperThreshold = UInt32(v) } else {
                report(.generalError, "Invalid real_server uthreshold '\(value)' - ignoring", node)
            }
        case "lthreshold":
            if let v = unsigned(node, 1, in: 0...UInt64(UInt32.max)) { rs.lowerThreshold = UInt32(v) } else {
                report(.generalError, "Invalid real_server lthreshold '\(value)' - ignoring", node)
            }
        case "inhibit_on_failure":
            guard let v = optionalBool(node) else { report(.generalError, "Invalid inhibit_on_failure parameter \(value)", node); return }
            rs.inhibitOnFailure = v
        case "notify_up":
            if rs.notifyUp != nil { report(.generalError, "(\(vs.trio)) notify_up script already specified - ignoring \(value)", node); return }
            rs.notifyUp = script(node)
        case "notify_down":
            if rs.notifyDown != nil { report(.generalError, "(\(vs.trio)) notify_down script already specified - ignoring \(value)", node); return }
            rs.notifyDown = script(node)
        case "alpha":
            guard let v = optionalBool(node) else { report(.generalError, "Invalid alpha parameter \(value)", node); return }
            rs.alpha = v
        case "retry":
            if let v = unsigned(node, 1, in: 1...UInt64(UInt32.max)) { rs.retry = UInt32(v) } else {
                report(.generalError, "retry value invalid - \(value)", node)
            }
        case "delay_before_retry":
            if let v = timer(node, 1) { rs.delayBeforeRetry = v } else {
                report(.generalError, "real server delay_before_retry '\(value)' invalid - ignoring", node)
            }
        case "warmup":
            if let v = timer(node, 1) { rs.warmup = v } else { report(.generalError, "real server warmup '\(value)' invalid - ignoring", node) }
        case "connect_timeout":
            if let v = timer(node, 1, minimum: 1, maximum: Decoder.timeoutMaximum) { rs.connectTimeout = v } else {
                report(.generalError, "real server connect_timeout \(value) invalid - ignoring", node)
            }
        case "delay_loop":
            if let v = timer(node, 1, minimum: 1) { rs.delayLoop = v } else {
                report(.generalError, "real server delay_loop '\(value)' invalid - ignoring", node)
            }
        case "smtp_alert":
            guard let v = optionalBool(node) else { report(.generalError, "Invalid real_server smtp_alert parameter \(value)", node); return }
            rs.smtpAlert = v
        case "virtualhost":
            guard node.words.count > 1 else { report(.generalError, "real server virtualhost missing", node); return }
            rs.virtualhost = node.words[1]
        case "snmp_name": break
        default:
            if let kind = CheckerDefinition.Kind(rawValue: node.keyword) {
                if let checker = checker(kind, node) { rs.checkers.append(checker) }
            } else {
                unknown(node)
            }
        }
    }
}
