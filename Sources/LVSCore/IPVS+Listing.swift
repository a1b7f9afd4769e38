/// The state of a persistence template: NONE until a connection it controls is established.
public enum TemplateState: UInt8, Sendable {
    case none = 0
    case assured = 1
}

/// A real server as listings show it.
public struct RealServerSnapshot: Sendable, Hashable {
    public var config: RealServerConfig
    public var activeConnections: UInt32
    public var inactiveConnections: UInt32
    public var persistentConnections: UInt32
    public var isOverloaded: Bool
    public var counters: Counters
    public var rates: Rates
    /// The counters since the real server was added, which `-Z` does not reset (for metrics).
    public var totals: Counters
}

/// A virtual service as listings show it, with its real servers in kernel list order (newest first).
public struct ServiceSnapshot: Sendable, Hashable {
    public var config: VirtualService.Config
    public var counters: Counters
    public var rates: Rates
    /// The counters since the service was added, which `-Z` does not reset (for metrics).
    public var totals: Counters
    public var servers: [RealServerSnapshot]
}

/// A connection or template as `ipvsadm -Lc` and /proc/net/ip_vs_conn show it.
public struct ConnectionSnapshot: Sendable, Hashable {
    /// 6, 17, 132, or 0 (IP) for fwmark templates.
    public var protocolNumber: UInt8
    public var client: Endpoint
    public var virtual: Endpoint
    public var destination: Endpoint
    public var flags: ConnectionFlags
    public var stateName: String
    /// Milliseconds until the entry expires.
    public var expiresIn: Int64
    public var fwmark: UInt32
    public var isTemplate: Bool { flags.contains(.template) }

    /// The protocol column: `TCP`, `UDP`, `SCTP`, `IP` for fwmark templates, else `IP_<n>`.
    public var protocolName: String {
        if let p = IPProtocol(rawValue: protocolNumber) { return p.name }
        return protocolNumber == 0 ? "IP" : "IP_\(protocolNumber)"
    }
}

extension IPVS {
    /// Every service in creation order (the order `--nosort` lists).
    public var serviceSnapshots: [ServiceSnapshot] {
        services.indices
            .filter { services[$0].live }
            .sorted { services[$0].sequence < services[$1].sequence }
            .map { snapshot(Int32($0)) }
    }

    /// One service, or nil.
    public func serviceSnapshot(_ key: VirtualService.Key) -> ServiceSnapshot? {
        serviceIndex[key].map { snapshot($0) }
    }

    public var serviceCount: Int { serviceIndex.count }

    private func snapshot(_ id: Int32) -> ServiceSnapshot {
        let slot = services[Int(id)]
        var config = slot.config
        config.flags.remove(.hashed)
        return ServiceSnapshot(
            config: config, counters: slot.stats.counters, rates: slot.stats.rates, totals: slot.stats.totals,
            servers: slot.members.map { m in
                let s = servers[Int(m)]
                return RealServerSnapshot(
                    config: s.config, activeConnections: s.activeConnections, inactiveConnections: s.inactiveConnections,
                    persistentConnections: s.persistentConnections, isOverloaded: s.isOverloaded,
                    counters: s.stats.counters, rates: s.stats.rates, totals: s.stats.totals)
            })
    }

    /// Every connection and template, with the time left at `now`.
    public func connectionSnapshots(now: Int64) -> [ConnectionSnapshot] {
        connections.liveIndices().map { connectionSnapshot($0, now: now) }
    }

    /// A page of them: entries `offset ..< offset + limit` in the order of the full listing.
    public func connectionSnapshots(now: Int64, offset: Int, limit: Int) -> [ConnectionSnapshot] {
        connections.liveIndices(offset: offset, limit: limit).map { connectionSnapshot($0, now: now) }
    }

    private func connectionSnapshot(_ i: Int32, now: Int64) -> ConnectionSnapshot {
        let e = connections.entry(i)
        let flags = ConnectionFlags(rawValue: e.hot.flags)
        let name: String
        if flags.contains(.template) {
            name = e.hot.state == TemplateState.assured.rawValue ? "ASSURED" : "NONE"
        } else {
            switch e.hot.protocolNumber {
            case IPProtocol.tcp.rawValue: name = TCPState(rawValue: e.hot.state)?.name ?? "ERR!"
            case IPProtocol.udp.rawValue: name = "UDP"
            case IPProtocol.sctp.rawValue: name = SCTPState(rawValue: e.hot.state)?.name ?? "ERR!"
            case 0: name = "NONE"
            default: name = "ERR!"
            }
        }
        let expires = connections.time(ofTick: e.hot.deadline) - now
        return ConnectionSnapshot(
            protocolNumber: e.hot.protocolNumber, client: Endpoint(e.client, e.hot.clientPort),
            virtual: Endpoint(e.virtual, e.hot.virtualPort), destination: Endpoint(e.destination, e.hot.destinationPort),
            flags: flags, stateName: name, expiresIn: max(0, expires / 1_000_000), fwmark: e.cold.fwmark)
    }
}
