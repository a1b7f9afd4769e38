import LVSCore

/// The virtual server table a configuration asks for, and the changes that take one plan to another.
/// A reload applies only those changes, so unchanged services and real servers keep their
/// connections and counters.
public struct TablePlan: Hashable, Sendable {
    public struct Service: Hashable, Sendable {
        public var config: VirtualService.Config
        /// In configuration order.
        public var servers: [RealServerConfig]
        public var location: SourceLocation?
        /// The `virtual_server` block it comes from (index in the configuration's list).
        public var definition: Int?
        /// The sorry server, which serves only while the service has lost its quorum.
        public var sorryServer: RealServerConfig?
        /// `sorry_server_inhibit`: the sorry server stays in the table at weight 0 while the service
        /// has its quorum (instead of being removed).
        public var sorryServerInhibit = false

        public init(config: VirtualService.Config, servers: [RealServerConfig], location: SourceLocation? = nil,
                    definition: Int? = nil, sorryServer: RealServerConfig? = nil) {
            self.config = config
            self.servers = servers
            self.location = location
            self.definition = definition
            self.sorryServer = sorryServer
        }
    }

    public var services: [Service]
    /// `lvs_timeouts` (seconds; 0 leaves the current value).
    public var timeouts: Timeouts?

    public struct Timeouts: Hashable, Sendable {
        public var tcp: UInt32
        public var tcpFin: UInt32
        public var udp: UInt32
    }

    /// Addresses one virtual_server_group range may expand to.
    public static let maximumRangeSize: UInt64 = 65_536

    public init(services: [Service] = [], timeouts: Timeouts? = nil) {
        self.services = services
        self.timeouts = timeouts
    }

    /// The LVS part of a configuration as services with their real servers. Groups expand to one
    /// service per address (and port) or fwmark they list; sorry servers and checkers are left to
    /// the health-check stage.
    public init(_ configuration: KeepalivedConfiguration) {
        var services: [Service] = []
        var seen: Set<VirtualService.Key> = []
        for (index, vs) in configuration.virtualServers.enumerated() {
            for key in TablePlan.keys(of: vs, groups: configuration.virtualServerGroups) where !seen.contains(key) {
                seen.insert(key)
                var flags = vs.schedulerFlags
                if vs.persistenceTimeout != nil { flags.insert(.persistent) }
                if vs.onePacket { flags.insert(.onePacket) }
                let config = VirtualService.Config(
                    key: key, scheduler: vs.scheduler ?? "wlc", flags: flags, persistenceTimeout: vs.persistenceTimeout ?? 0,
                    netmask: vs.persistenceGranularity, persistenceEngine: vs.persistenceEngine)
                let servers = vs.realServers.map { rs -> RealServerConfig in
                    let forwarding = rs.forwarding ?? vs.forwarding ?? ForwardingDefinition(method: .masquerade)
                    var port = rs.port
                    if port == 0 || (forwarding.method != .masquerade && !key.isFwmark) { port = key.port == 0 ? rs.port : key.port }
                    if key.isFwmark, forwarding.method != .masquerade { port = 0 }
                    return RealServerConfig(Endpoint(rs.address, port), forwarding: forwarding.method, weight: rs.weight ?? vs.weight ?? 1,
                                            upperThreshold: rs.upperThreshold ?? 0, lowerThreshold: rs.lowerThreshold ?? 0,
                                            tunnel: forwarding.tunnel)
                }
                let sorry = vs.sorryServer.map { rs -> RealServerConfig in
                    let forwarding = rs.forwarding ?? vs.forwarding ?? ForwardingDefinition(method: .masquerade)
                    let port = key.isFwmark && forwarding.method != .masquerade ? 0 : (rs.port == 0 ? key.port : rs.port)
                    return RealServerConfig(Endpoint(rs.address, port), forwarding: forwarding.method, weight: 1, tunnel: forwarding.tunnel)
                }
                var service = Service(config: config, servers: servers, location: vs.location, definition: index, sorryServer: sorry)
                service.sorryServerInhibit = vs.sorryServerInhibit
                services.append(service)
            }
        }
        self.services = services
        let t = configuration.globalDefinitions.lvsTimeouts
        if t.tcp != nil || t.tcpFin != nil || t.udp != nil {
            timeouts = Timeouts(tcp: t.tcp ?? 0, tcpFin: t.tcpFin ?? 0, udp: t.udp ?? 0)
        }
    }

    static func keys(of vs: VirtualServerDefinition, groups: [VirtualServerGroup]) -> [VirtualService.Key] {
        let proto = vs.protocolName ?? .tcp
        switch vs.address {
        case .endpoint(let ip, let port): return [.address(proto, ip, port)]
        case .fwmark(let mark): return [.fwmark(mark, vs.family ?? vs.realServers.first?.address.family ?? .inet)]
        case .group(let name):
            guard let group = groups.first(where: { $0.name == name }) else { return [] }
            var keys: [VirtualService.Key] = []
            for entry in group.entries {
                switch entry {
                case .fwmark(let mark, let family):
                    keys.append(.fwmark(mark, family ?? vs.family ?? vs.realServers.first?.address.family ?? .inet))
                case .range(let first, let last, let port):
                    var address = first
                    var count: UInt64 = 0
                    while count < maximumRangeSize {
                        keys.append(.address(proto, address, port))
                        count += 1
                        if address == last { break }
                        if address.low == UInt64.max { address.high &+= 1 }
                        address.low &+= 1
                    }
                }
            }
            return keys
        }
    }

    // MARK: Differences

    public enum Change: Hashable, Sendable, CustomStringConvertible {
        case addService(VirtualService.Config)
        case editService(VirtualService.Config)
        case deleteService(VirtualService.Key)
        case addServer(RealServerConfig, VirtualService.Key)
        case editServer(RealServerConfig, VirtualService.Key)
        case deleteServer(Endpoint, VirtualService.Key)
        case setTimeouts(tcp: UInt32, tcpFin: UInt32, udp: UInt32)

        public var description: String {
            switch self {
            case .addService(let c): return "add virtual server \(c.key)"
            case .editService(let c): return "change virtual server \(c.key)"
            case .deleteService(let k): return "remove virtual server \(k)"
            case .addServer(let s, let k): return "add real server \(s.endpoint) to \(k)"
            case .editServer(let s, let k): return "change real server \(s.endpoint) of \(k)"
            case .deleteServer(let e, let k): return "remove real server \(e) from \(k)"
            case .setTimeouts(let a, let b, let c): return "set timeouts \(a) \(b) \(c)"
            }
        }
    }

    /// What takes the table from `self` to `target`: removals first (so a real server can move
    /// between services), then additions and changes, in configuration order.
    public func changes(to target: TablePlan) -> [Change] {
        var changes: [Change] = []
        var old: [VirtualService.Key: Service] = [:]
        for s in services { old[s.config.key] = s }
        var new: [VirtualService.Key: Service] = [:]
        for s in target.services { new[s.config.key] = s }
        for s in services where new[s.config.key] == nil {
            changes.append(.deleteService(s.config.key))
        }
        for s in target.services {
            guard let before = old[s.config.key] else { continue }
            let wanted = Set(s.servers.map(\.endpoint))
            for server in before.servers where !wanted.contains(server.endpoint) {
                changes.append(.deleteServer(server.endpoint, s.config.key))
            }
        }
        for s in target.services {
            guard let before = old[s.config.key] else {
                changes.append(.addService(s.config))
                for server in s.servers { changes.append(.addServer(server, s.config.key)) }
                continue
            }
            if before.config != s.config { changes.append(.editService(s.config)) }
            var previous: [Endpoint: RealServerConfig] = [:]
            for server in before.servers { previous[server.endpoint] = server }
            for server in s.servers {
                if let was = previous[server.endpoint] {
                    if was != server { changes.append(.editServer(server, s.config.key)) }
                } else {
                    changes.append(.addServer(server, s.config.key))
                }
            }
        }
        if let t = target.timeouts, timeouts != t {
            changes.append(.setTimeouts(tcp: t.tcp, tcpFin: t.tcpFin, udp: t.udp))
        }
        return changes
    }

    /// Applies changes to a table. A change the table refuses is reported and the rest go on
    /// (an add of something that already exists becomes an edit: the operator may have added it by
    /// hand); the outcome of each is returned in order.
    public static func apply(_ changes: [Change], to table: inout IPVS) -> [(Change, ServiceTableError?)] {
        var results: [(Change, ServiceTableError?)] = []
        results.reserveCapacity(changes.count)
        for change in changes {
            do {
                switch change {
                case .addService(let c):
                    do { try table.addService(c) } catch .serviceExists { try table.editService(c) }
                case .editService(let c):
                    do { try table.editService(c) } catch .noSuchService { try table.addService(c) }
                case .deleteService(let k):
                    do { try table.deleteService(k) } catch .noSuchService {}
                case .addServer(let s, let k):
                    do { try table.addServer(s, to: k) } catch .destinationExists { try table.editServer(s, in: k) }
                case .editServer(let s, let k):
                    do { try table.editServer(s, in: k) } catch .noSuchDestination { try table.addServer(s, to: k) }
                case .deleteServer(let e, let k):
                    do { try table.deleteServer(e, from: k) } catch .noSuchDestination {}
                case .setTimeouts(let a, let b, let c):
                    try table.setTimeouts(tcp: a, tcpFin: b, udp: c)
                }
                results.append((change, nil))
            } catch {
                results.append((change, error))
            }
        }
        return results
    }
}
