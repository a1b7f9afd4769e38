/// The text `ipvsadm -L` prints, in every format, byte for byte as ipvsadm 1.31 prints it.
public struct ListingFormat: Sendable {
    /// Writes an endpoint; numeric by default, the command-line tool passes one that resolves names
    /// (host by reverse lookup, port by /etc/services for the protocol) when `-n` is not given.
    public var endpointText: SaveFormat.EndpointFormatter = SaveFormat.numeric
    /// `--exact`: full numbers instead of K/M/G/T.
    public var exact = false

    public init(endpointText: @escaping SaveFormat.EndpointFormatter = SaveFormat.numeric, exact: Bool = false) {
        self.endpointText = endpointText
        self.exact = exact
    }

    /// The first line of a full listing.
    public static func versionHeader(tableSize: Int = IPVS.connectionTableSize) -> String {
        "IP Virtual Server version 1.2.1 (size=\(tableSize))\n"
    }

    // MARK: printf

    /// `%-Ns`: left-justified in a field of `width` (longer text is not cut).
    public static func left(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    /// `%Ns`: right-justified.
    static func right(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    /// ipvsadm's `print_largenum`: a number in a 9-character field, abbreviated K/M/G/T unless exact.
    public func largeNumber(_ n: UInt64) -> String {
        if exact {
            let digits = String(n)
            return ListingFormat.right(digits, digits.count <= 8 ? 9 : digits.count + 1)
        }
        if n >= 100_000_000_000_000 { return ListingFormat.right(String(n / 1_000_000_000_000), 8) + "T" }
        if n >= 100_000_000_000 { return ListingFormat.right(String(n / 1_000_000_000), 8) + "G" }
        if n >= 1_000_000_000 { return ListingFormat.right(String(n / 1_000_000), 8) + "M" }
        if n >= 100_000_000 { return ListingFormat.right(String(n / 1000), 8) + "K" }
        return ListingFormat.right(String(n), 9)
    }

    // MARK: Names

    /// The service column: `FWM  <mark>[ IPv6]`, or the protocol padded to four and the address
    /// (IPv4 names cut to 33 characters).
    public func serviceName(_ key: VirtualService.Key) -> String {
        switch key {
        case .fwmark(let mark, let family):
            let shown = Int32(bitPattern: mark)
            return family == .inet6 ? "FWM  \(shown) IPv6" : "FWM  \(shown)"
        case .address(let proto, let address, let port):
            let name = ListingFormat.left(proto.name, 4) + " " + endpointText(Endpoint(address, port), proto)
            return address.isV6 ? name : String(name.prefix(33))
        }
    }

    /// The real-server column (IPv4 names cut to 28 characters). fwmark services list ports as numbers.
    public func serverName(_ endpoint: Endpoint, of key: VirtualService.Key) -> String {
        let proto: IPProtocol? = if case .address(let p, _, _) = key { p } else { nil }
        let text = endpointText(endpoint, proto)
        return endpoint.address.isV6 ? text : String(text.prefix(28))
    }

    // MARK: Table listings

    /// Column headings for a format (no version header).
    public func headings(_ format: ListRequest.Format) -> String {
        switch format {
        case .standard:
            return "Prot LocalAddress:Port Scheduler Flags\n"
                + "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        case .stats, .rate:
            let names = format == .stats
                ? ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"] : ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]
            return ListingFormat.left("Prot LocalAddress:Port", 33)
                + names.map { " " + ListingFormat.right($0, 8) }.joined() + "\n  -> RemoteAddress:Port\n"
        case .thresholds:
            return ListingFormat.left("Prot LocalAddress:Port", 33)
                + ["Uthreshold", "Lthreshold", "ActiveConn", "InActConn"].map { " " + ListingFormat.left($0, 10) }.joined()
                + "\n  -> RemoteAddress:Port\n"
        case .persistentConnections:
            return ListingFormat.left("Prot LocalAddress:Port", 33) + " " + ListingFormat.left("Weight", 9) + " "
                + ListingFormat.left("PersistConn", 11) + " " + ListingFormat.left("ActiveConn", 10) + " "
                + ListingFormat.left("InActConn", 10) + "\n  -> RemoteAddress:Port\n"
        case .tunnelInfo:
            return "Prot LocalAddress:Port Scheduler Flags\n"
                + "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        }
    }

    /// One service line in a format.
    public func serviceLine(_ s: ServiceSnapshot, _ format: ListRequest.Format) -> String {
        let name = serviceName(s.config.key)
        switch format {
        case .stats:
            let c = s.counters
            return ListingFormat.left(name, 33)
                + [c.connections, c.inPackets, c.outPackets, c.inBytes, c.outBytes].map(largeNumber).joined() + "\n"
        case .rate:
            let r = s.rates
            return ListingFormat.left(name, 33)
                + [r.connectionsPerSecond, r.inPacketsPerSecond, r.outPacketsPerSecond, r.inBytesPerSecond,
                   r.outBytesPerSecond].map(largeNumber).joined() + "\n"
        case .standard, .thresholds, .persistentConnections, .tunnelInfo:
            let c = s.config
            var line = "\(name) \(c.scheduler)"
            let flags = SaveFormat.schedulerFlagNames(c.flags, scheduler: c.scheduler)
            if !flags.isEmpty { line += " (\(flags.joined(separator: ",")))" }
            if c.isPersistent {
                line += " persistent \(c.persistenceTimeout)"
                if c.key.family == .inet {
                    if c.netmask != 0xFFFF_FFFF { line += " mask \(IPAddress.dottedQuad(c.netmask))" }
                } else if c.netmask != 128 {
                    line += " mask \(c.netmask)"
                }
                if let pe = c.persistenceEngine { line += " pe \(pe)" }
            }
            if c.flags.contains(.onePacket) { line += " ops" }
            return line + "\n"
        }
    }

    /// The TunnelInfo column: `ipip`, `gue:<port>:<csum>`, `gre:<csum>` or `n/a`.
    static func tunnelInfo(_ s: RealServerConfig) -> String {
        guard s.forwarding == .tunnel else { return "n/a" }
        let checksum: String
        switch s.tunnel.checksum {
        case .none: checksum = "-c"
        case .checksum: checksum = "+c"
        case .remoteChecksum: checksum = "r+c"
        }
        switch s.tunnel.kind {
        case .ipip: return "ipip"
        case .gue: return "gue:\(s.tunnel.port):\(checksum)"
        case .gre: return "gre:\(checksum)"
        }
    }

    /// One real-server line in a format. Per-server packet, connection and rate figures are shown
    /// modulo 2^32, as ipvsadm 1.31 reads them with 32-bit readers; byte counts are full.
    public func serverLine(_ r: RealServerSnapshot, of key: VirtualService.Key, _ format: ListRequest.Format) -> String {
        let name = "  -> " + ListingFormat.left(serverName(r.config.endpoint, of: key), 28)
        func u32(_ v: UInt64) -> UInt64 { v & 0xFFFF_FFFF }
        switch format {
        case .standard:
            return name + " " + ListingFormat.left(r.config.forwarding.listingName, 7) + " "
                + ListingFormat.left(String(r.config.weight), 6) + " " + ListingFormat.left(String(r.activeConnections), 10)
                + " " + ListingFormat.left(String(r.inactiveConnections), 10) + "\n"
        case .stats:
            let c = r.counters
            return name + [u32(c.connections), u32(c.inPackets), u32(c.outPackets), c.inBytes, c.outBytes]
                .map(largeNumber).joined() + "\n"
        case .rate:
            let v = r.rates
            return name + [u32(v.connectionsPerSecond), u32(v.inPacketsPerSecond), u32(v.outPacketsPerSecond)]
                .map { " " + ListingFormat.right(String($0), 8) }.joined()
                + largeNumber(u32(v.inBytesPerSecond)) + largeNumber(u32(v.outBytesPerSecond)) + "\n"
        case .thresholds:
            return name + [r.config.upperThreshold, r.config.lowerThreshold, r.activeConnections, r.inactiveConnections]
                .map { " " + ListingFormat.left(String($0), 10) }.joined() + "\n"
        case .persistentConnections:
            return name + " " + ListingFormat.left(String(r.config.weight), 9) + " "
                + ListingFormat.left(String(r.persistentConnections), 11) + " "
                + ListingFormat.left(String(r.activeConnections), 10) + " "
                + ListingFormat.left(String(r.inactiveConnections), 10) + "\n"
        case .tunnelInfo:
            return name + " " + ListingFormat.left(r.config.forwarding.listingName, 7) + " "
                + ListingFormat.left(ListingFormat.tunnelInfo(r.config), 13) + " "
                + ListingFormat.left(String(r.config.weight), 6) + " " + ListingFormat.left(String(r.activeConnections), 10)
                + " " + ListingFormat.left(String(r.inactiveConnections), 10) + "\n"
        }
    }

    /// A whole table (`-L`) or one service (`-L -t …`), services and servers already in listing order.
    public func table(_ services: [ServiceSnapshot], format: ListRequest.Format, header: Bool = true) -> String {
        var out = header ? ListingFormat.versionHeader() : ""
        out += headings(format)
        for s in services {
            out += serviceLine(s, format)
            for r in s.servers { out += serverLine(r, of: s.config.key, format) }
        }
        return out
    }

    // MARK: Other listings

    /// `-L --timeout`.
    public static func timeouts(_ t: Timeouts) -> String {
        let v = t.listed
        return "Timeout (tcp tcpfin udp): \(v.tcp) \(v.tcpFin) \(v.udp)\n"
    }

    /// `-L -c`: the connection table (the caller decides the order: the kernel's is its hash order).
    public func connections(_ entries: [ConnectionSnapshot], withPersistenceEngineData: Bool = false) -> String {
        var out = "IPVS connection entries\n"
        if withPersistenceEngineData {
            out += "pro expire " + ListingFormat.left("state", 11) + " " + ListingFormat.left("source", 18) + " "
                + ListingFormat.left("virtual", 18) + " " + ListingFormat.left("destination", 18) + " "
                + ListingFormat.left("pe name", 16) + " pe_data\n"
        } else {
            out += "pro expire " + ListingFormat.left("state", 11) + " " + ListingFormat.left("source", 18) + " "
                + ListingFormat.left("virtual", 18) + " destination\n"
        }
        for e in entries {
            let seconds = e.expiresIn / 1000
            let m = seconds / 60
            let s = seconds % 60
            let expire = (m < 10 ? "0" : "") + String(m) + ":" + (s < 10 ? "0" : "") + String(s)
            let proto = IPProtocol(rawValue: e.protocolNumber)
            func text(_ ep: Endpoint) -> String { String(endpointText(ep, proto).prefix(59)) }
            out += ListingFormat.left(e.protocolName, 3) + " " + ListingFormat.left(expire, 6) + " "
                + ListingFormat.left(e.stateName, 11) + " " + ListingFormat.left(text(e.client), 18) + " "
                + ListingFormat.left(text(e.virtual), 18) + " " + text(e.destination) + "\n"
        }
        return out
    }
}
