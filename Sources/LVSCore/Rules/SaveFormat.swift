/// The `ipvsadm -S` text: one `-A` line per service followed by one `-a` line per real server, which
/// `ipvsadm -R` reads back.
public enum SaveFormat {
    /// Writes an endpoint for a service or real server option. The default is numeric (`-Sn`); the
    /// command-line tool passes a formatter that resolves names for plain `-S`.
    public typealias EndpointFormatter = @Sendable (Endpoint, IPProtocol?) -> String

    public static let numeric: EndpointFormatter = { endpoint, _ in endpoint.description }

    /// The `-t addr` / `-u addr` / `--sctp-service addr` / `-f mark [-6]` part.
    public static func serviceOption(_ key: VirtualService.Key, format: EndpointFormatter = numeric) -> String {
        switch key {
        case .address(let proto, let address, let port):
            let option: String
            switch proto {
            case .tcp: option = "-t"
            case .udp: option = "-u"
            case .sctp: option = "--sctp-service"
            }
            return "\(option) \(format(Endpoint(address, port), proto))"
        case .fwmark(let mark, let family):
            // ipvsadm prints the mark with %d: marks of 2^31 and more come out negative.
            let shown = Int32(bitPattern: mark)
            return family == .inet6 ? "-f \(shown) -6" : "-f \(shown)"
        }
    }

    /// The `-b` list for a service's scheduler flags, as ipvsadm names them for its scheduler.
    public static func schedulerFlagNames(_ flags: ServiceFlags, scheduler: String) -> [String] {
        var names: [String] = []
        switch scheduler {
        case "sh", "mh":
            if flags.contains(.scheduler1) { names.append("\(scheduler)-fallback") }
            if flags.contains(.scheduler2) { names.append("\(scheduler)-port") }
        default:
            if flags.contains(.scheduler1) { names.append("flag-1") }
            if flags.contains(.scheduler2) { names.append("flag-2") }
            if flags.contains(.scheduler3) { names.append("flag-3") }
        }
        return names
    }

    public static func serviceLine(_ c: VirtualService.Config, format: EndpointFormatter = numeric) -> String {
        var line = "-A \(serviceOption(c.key, format: format)) -s \(c.scheduler)"
        if c.isPersistent {
            line += " -p \(c.persistenceTimeout)"
            if c.netmask != VirtualService.Config.defaultNetmask(for: c.key.family) {
                line += c.key.family == .inet6 ? " -M \(c.netmask)" : " -M \(IPAddress.dottedQuad(c.netmask))"
            }
        }
        if let pe = c.persistenceEngine { line += " --pe \(pe)" }
        if c.flags.contains(.onePacket) { line += " -o" }
        let flags = schedulerFlagNames(c.flags, scheduler: c.scheduler)
        if !flags.isEmpty { line += " -b \(flags.joined(separator: ","))" }
        return line
    }

    public static func serverLine(
        _ s: RealServerConfig, of key: VirtualService.Key, format: EndpointFormatter = numeric
    ) -> String {
        let proto: IPProtocol? = if case .address(let p, _, _) = key { p } else { nil }
        var line = "-a \(serviceOption(key, format: format)) -r \(format(s.endpoint, proto))"
        switch s.forwarding {
        case .masquerade: line += " -m"
        case .tunnel: line += " -i"
        default: line += " -g"
        }
        line += " -w \(s.weight)"
        if s.forwarding == .tunnel {
            line += " --tun-type \(s.tunnel.kind.name)"
            let checksum: String
            switch s.tunnel.checksum {
            case .none: checksum = "--tun-nocsum"
            case .checksum: checksum = "--tun-csum"
            case .remoteChecksum: checksum = "--tun-remcsum"
            }
            switch s.tunnel.kind {
            case .ipip: break
            case .gue: line += " --tun-port \(s.tunnel.port) \(checksum)"
            case .gre: line += " \(checksum)"
            }
        }
        if s.proxyProtocol { line += " --proxy-protocol" }
        return line
    }

    /// The whole `-S` output for services already in listing order (see `ListingOrder`).
    public static func render(_ services: [ServiceSnapshot], format: EndpointFormatter = numeric) -> String {
        var out = ""
        for s in services {
            out += serviceLine(s.config, format: format) + "\n"
            for server in s.servers { out += serverLine(server.config, of: s.config.key, format: format) + "\n" }
        }
        return out
    }

    /// Splits `-R` input the way ipvsadm does: lines into blank/tab-separated words, every word
    /// `ipvsadm` dropped, empty lines skipped. Each result is one command line's arguments.
    public static func restoreLines(_ text: String) -> [[String]] {
        var lines: [[String]] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
                .map(String.init)
                .filter { $0 != "ipvsadm" }
            if !words.isEmpty { lines.append(words) }
        }
        return lines
    }
}
