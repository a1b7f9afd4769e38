/// The whole IPVS brain as one value: the virtual server table (services, real servers, schedulers),
/// the connection table with persistence templates, timeouts, and statistics.
///
/// It is pure: no clock, no sockets, no threads. Every call that depends on time takes `now`
/// (nanoseconds on any monotonic clock the caller chooses). One owner mutates it; engines share
/// results with the control plane through snapshots.
public struct IPVS: Sendable {
    struct ServiceSlot: Sendable {
        var config: VirtualService.Config
        var kind: SchedulerKind
        /// Real server slots in kernel list order (newest first).
        var members: [Int32] = []
        var stats = Statistics()
        var live = true
        /// Position in creation order, for `--nosort` listings.
        var sequence: UInt64
    }

    public internal(set) var settings: IPVSSettings

    /// One more than the highest `ConnectionID.index` the table hands out: an engine that keeps
    /// something per connection sizes its array with it.
    public var connectionSlots: Int { connections.slotCount }
    public var timeouts = Timeouts()

    var services: [ServiceSlot] = []
    var schedulers: [SchedulerState] = []
    var freeServices: [Int32] = []
    var serviceIndex: [VirtualService.Key: Int32] = [:] {
        didSet {
            serviceLookup.rebuild(serviceIndex)
            generation &+= 1
        }
    }
    /// Moves on with every change to the services and real servers (what scheduling depends on,
    /// connection counts apart): decisions made ahead (`decideAhead`) are void once it moves.
    public internal(set) var generation: UInt64 = 0
    var serviceLookup = ServiceLookup()
    var servicesByFwmark = 0
    var portZeroServices = 0
    var nextSequence: UInt64 = 0

    var servers: [RealServer] = []
    var freeServers: [Int32] = []

    var connections: ConnectionTable
    public internal(set) var totalStats = Statistics()
    public internal(set) var drops = DropCounters()
    var expiredScratch: [Int32] = []
    /// The sync daemons running (master first), what the master's thread has yet to send, and
    /// what sync did to the table.
    public internal(set) var syncDaemons: [SyncDaemonStatus] = []
    var syncMaster = false
    var syncQueue: [SyncedConnection] = []
    public internal(set) var syncCounters = SyncCounters()
    /// When set, every connection removed (expired, replaced, forgotten; templates apart) is
    /// listed in `removals` until `takeRemovals`: for an engine that keeps something of a
    /// connection outside the table for as long as it lives (the packet engine's closed flows).
    public var logsRemovals = false
    public internal(set) var removals: [RemovedConnection] = []
    /// Hashes of the packets of a burst in flight.
    var burstHashes = [UInt64](repeating: 0, count: IPVS.burstRing)
    /// How many packets ahead a burst prefetches entries (and twice that for index slots).
    static let prefetchDistance = 4
    static let burstRing = 16

    /// - Parameters:
    ///   - now: the caller's clock at creation; later times are measured on the same clock.
    ///   - prepareMemory: called once for each large region of the connection table before it is first
    ///     touched (the daemon uses it to ask for huge pages); the core itself makes no system calls.
    public init(settings: IPVSSettings = IPVSSettings(), now: Int64 = 0, prepareMemory: MemoryPreparation? = nil) {
        self.settings = settings
        connections = ConnectionTable(capacity: settings.maxConnections, seed: settings.hashSeed, now: now,
                                      prepare: prepareMemory)
        expiredScratch.reserveCapacity(1024)
    }

    /// The connection hash table size ipvsadm prints as `(size=4096)`.
    public static let connectionTableSize = 4096

    /// Connection table entries in use (connections and templates).
    public var connectionCount: Int { connections.count }

    // MARK: Services

    private func pool(_ slot: Int32) -> ServerPool {
        ServerPool(members: services[Int(slot)].members, servers: servers)
    }

    static func validate(_ config: VirtualService.Config) throws(ServiceTableError) -> SchedulerKind {
        if config.scheduler.utf8.count >= 16 {
            throw .invalid("scheduler name '\(config.scheduler)' is longer than 15 characters")
        }
        guard let kind = SchedulerKind(rawValue: config.scheduler) else {
            throw .schedulerNotFound(config.scheduler)
        }
        if let pe = config.persistenceEngine, pe != "sip" {
            throw .schedulerNotFound(pe)
        }
        if config.key.family == .inet6, config.netmask < 1 || config.netmask > 128 {
            throw .invalid("IPv6 persistence prefix \(config.netmask) is outside 1...128")
        }
        if case .fwmark(let mark, _) = config.key, mark == 0 {
            throw .invalid("firewall mark 0 is not a service")
        }
        return kind
    }

    /// `-A`: adds a virtual service.
    public mutating func addService(_ config: VirtualService.Config) throws(ServiceTableError) {
        if serviceIndex[config.key] != nil { throw .serviceExists(config.key) }
        let kind = try IPVS.validate(config)
        var stored = config
        stored.flags.insert(.hashed)
        let slot = ServiceSlot(config: stored, kind: kind, sequence: nextSequence)
        nextSequence += 1
        let id: Int32
        if let free = freeServices.popLast() {
            id = free
            services[Int(id)] = slot
        } else {
            id = Int32(services.count)
            services.append(slot)
            schedulers.append(.none)
        }
        schedulers[Int(id)] = SchedulerState(kind: kind, pool: pool(id), settings: settings.scheduler)
        serviceIndex[config.key] = id
        countSpecialService(config.key, by: 1)
    }

    private mutating func countSpecialService(_ key: VirtualService.Key, by delta: Int) {
        if key.isFwmark { servicesByFwmark += delta } else if key.port == 0 { portZeroServices += delta }
    }

    /// `-E`: replaces a service's scheduler, flags, persistence and netmask. Keeping the same scheduler
    /// keeps its state (the rr cursor, the wrr position), as the kernel does.
    public mutating func editService(_ config: VirtualService.Config) throws(ServiceTableError) {
        guard let id = serviceIndex[config.key] else { throw .noSuchService(config.key) }
        let kind = try IPVS.validate(config)
        var stored = config
        stored.flags.insert(.hashed)
        services[Int(id)].config = stored
        generation &+= 1
        if kind != services[Int(id)].kind {
            services[Int(id)].kind = kind
            schedulers[Int(id)] = SchedulerState(kind: kind, pool: pool(id), settings: settings.scheduler)
        }
    }

    /// `-D`: deletes a service and its real servers. Their connections stay until they expire.
    public mutating func deleteService(_ key: VirtualService.Key) throws(ServiceTableError) {
        guard let id = serviceIndex[key] else { throw .noSuchService(key) }
        for server in services[Int(id)].members { retire(server) }
        services[Int(id)].members = []
        services[Int(id)].live = false
        schedulers[Int(id)] = .none
        serviceIndex[key] = nil
        freeServices.append(id)
        countSpecialService(key, by: -1)
    }

    /// `-C`: deletes every service.
    public mutating func clear() {
        for key in Array(serviceIndex.keys) { try? deleteService(key) }
    }

    /// `-Z`: zeroes the counters and rates of one service (and its real servers), or of everything.
    public mutating func zero(_ key: VirtualService.Key? = nil) throws(ServiceTableError) {
        if let key {
            guard let id = serviceIndex[key] else { throw .noSuchService(key) }
            zeroService(id)
        } else {
            for (_, id) in serviceIndex { zeroService(id) }
            totalStats.zero()
        }
    }

    private mutating func zeroService(_ id: Int32) {
        services[Int(id)].stats.zero()
        for s in services[Int(id)].members { servers[Int(s)].stats.zero() }
    }

    /// `--set tcp tcpfin udp`.
    public mutating func setTimeouts(tcp: UInt32, tcpFin: UInt32, udp: UInt32) throws(ServiceTableError) {
        try timeouts.set(tcp: tcp, tcpFin: tcpFin, udp: udp)
    }

    // MARK: Real servers

    private func validate(_ server: RealServerConfig, for key: VirtualService.Key) throws(ServiceTableError) {
        if server.endpoint.address.family != key.family && server.forwarding != .tunnel {
            throw .invalid("a real server of another address family needs tunnelling")
        }
        if server.endpoint.address.family != key.family && !syncDaemons.isEmpty {
            throw .invalid("a real server of another address family cannot be added while a sync daemon runs")
        }
        if server.weight < 0 { throw .outOfRange("weight \(server.weight) is negative") }
        if server.lowerThreshold > server.upperThreshold {
            throw .outOfRange("lower threshold \(server.lowerThreshold) is above upper threshold \(server.upperThreshold)")
        }
        if server.forwarding == .tunnel, server.tunnel.kind == .gue, server.tunnel.port == 0 {
            throw .invalid("a GUE tunnel needs a port")
        }
        let address = server.endpoint.address
        if address.isMulticast || address.isUnspecified || (address.family == .inet && address.v4 == 0xFFFF_FFFF) {
            throw .invalid("real server address \(address) is not unicast")
        }
        if address.family == .inet6, address.high >> 54 == 0x3FA {
            throw .invalid("real server address \(address) is link-local")
        }
    }

    private func serverPosition(_ endpoint: Endpoint, in id: Int32) -> Int? {
        services[Int(id)].members.firstIndex { servers[Int($0)].config.endpoint == endpoint }
    }

    /// `-a`: adds a real server at the head of the service's list (or revives the same server if it was
    /// deleted while connections still referenced it, keeping its counters).
    public mutating func addServer(_ config: RealServerConfig, to key: VirtualService.Key) throws(ServiceTableError) {
        guard let id = serviceIndex[key] else { throw .serviceNotDefined(key) }
        try validate(config, for: key)
        if serverPosition(config.endpoint, in: id) != nil { throw .destinationExists(config.endpoint) }
        if services[Int(id)].kind == .maglev, services[Int(id)].members.count + 1 > settings.scheduler.maglevTableSize {
            throw .invalid("more real servers than the Maglev table has slots")
        }
        let slot: Int32
        if let revived = servers.indices.first(where: {
            servers[$0].service == id && !servers[$0].isAvailable && servers[$0].position == -1
                && servers[$0].config.endpoint == config.endpoint
        }) {
            slot = Int32(revived)
            servers[revived].isAvailable = true
            apply(config, to: slot, adding: true)
        } else {
            var server = RealServer(config: config, service: id)
            server.lastWeight = config.weight
            if let free = freeServers.popLast() {
                slot = free
                servers[Int(slot)] = server
            } else {
                slot = Int32(servers.count)
                servers.append(server)
            }
        }
        services[Int(id)].members.insert(slot, at: 0)
        renumber(id)
        schedulers[Int(id)].serverAdded(pool(id))
        generation &+= 1
    }

    /// `-e`: replaces a real server's method, weight, thresholds and tunnel settings.
    public mutating func editServer(_ config: RealServerConfig, in key: VirtualService.Key) throws(ServiceTableError) {
        guard let id = serviceIndex[key] else { throw .serviceNotDefined(key) }
        try validate(config, for: key)
        guard let position = serverPosition(config.endpoint, in: id) else { throw .noSuchDestination(config.endpoint) }
        let slot = services[Int(id)].members[position]
        apply(config, to: slot, adding: false)
        schedulers[Int(id)].serverEdited(pool(id))
    }

    /// The kernel's `__ip_vs_update_dest`: weight, method, thresholds; an edit that lifts or removes the
    /// upper threshold clears OVERLOAD.
    private mutating func apply(_ config: RealServerConfig, to slot: Int32, adding: Bool) {
        var s = servers[Int(slot)]
        if adding || config.weight != 0 { s.lastWeight = config.weight }
        if config.upperThreshold == 0 || config.upperThreshold > s.config.upperThreshold {
            s.isOverloaded = false
        }
        s.config = config
        s.isAvailable = true
        servers[Int(slot)] = s
        generation &+= 1
    }

    /// `-d`: removes a real server. Connections to it stay (and are dropped on their next packet).
    public mutating func deleteServer(_ endpoint: Endpoint, from key: VirtualService.Key) throws(ServiceTableError) {
        guard let id = serviceIndex[key] else { throw .serviceNotDefined(key) }
        guard let position = serverPosition(endpoint, in: id) else { throw .noSuchDestination(endpoint) }
        let slot = services[Int(id)].members.remove(at: position)
        renumber(id)
        retire(slot)
        schedulers[Int(id)].serverRemoved(at: position, id: slot, pool(id))
    }

    private mutating func renumber(_ id: Int32) {
        for (i, s) in services[Int(id)].members.enumerated() { servers[Int(s)].position = Int32(i) }
    }

    /// Takes a server out of its service: freed now if nothing references it, else kept unavailable
    /// until its last connection goes.
    private mutating func retire(_ slot: Int32) {
        generation &+= 1
        servers[Int(slot)].isAvailable = false
        servers[Int(slot)].position = -1
        if !servers[Int(slot)].isReferenced { freeServer(slot) }
    }

    /// Returns a server slot to the free list; a freed slot belongs to no service.
    mutating func freeServer(_ slot: Int32) {
        servers[Int(slot)].service = -1
        freeServers.append(slot)
    }

    // MARK: Scheduling

    /// Runs a service's scheduler for a flow without creating a connection (for tests and previews).
    public mutating func pick(for key: VirtualService.Key, flow: FlowKey, now: Int64 = 0) -> Endpoint? {
        guard let id = serviceIndex[key], let s = pickServer(id, flow: flow, now: now) else { return nil }
        return servers[Int(s)].config.endpoint
    }

    /// A stable handle for a service, for callers that schedule many flows for it (engines cache it).
    public func serviceHandle(for key: VirtualService.Key) -> Int32? { serviceIndex[key] }

    /// Runs the scheduler of a service (by handle) for a flow and returns the real server's slot; see
    /// `realServer(_:)`. No connection is created.
    @inlinable
    public mutating func pick(service handle: Int32, flow: FlowKey, now: Int64 = 0) -> Int32? {
        pickServer(handle, flow: flow, now: now)
    }

    /// The real server in a slot returned by `pick(service:flow:)` or a `Forwarding`.
    public func realServer(_ slot: Int32) -> RealServer { servers[Int(slot)] }

    /// Bytes one connection-table entry takes, its share of the hash index included.
    public static func connectionEntryBytes(capacity: Int) -> Int { ConnectionTable.bytesPerEntry(capacity: capacity) }

    @usableFromInline @inline(__always)
    mutating func pickServer(_ id: Int32, flow: FlowKey, now: Int64) -> Int32? {
        let p = ServerPool(members: services[Int(id)].members, servers: servers)
        return schedulers[Int(id)].pick(p, flow: flow, flags: services[Int(id)].config.flags, now: now)
    }

    /// Periodic work: lblc/lblcr cache ageing. Call about once a minute.
    public mutating func schedulerHousekeeping(now: Int64) {
        for id in schedulers.indices { schedulers[id].housekeeping(now: now) }
    }

    /// Takes one 2-second rate sample for every service, real server and the total.
    public mutating func sampleRates() {
        totalStats.sampleRates()
        for i in services.indices where services[i].live { services[i].stats.sampleRates() }
        for i in servers.indices { servers[i].stats.sampleRates() }
    }
}

/// Packets and flows the table refused, by reason, for observability.
public struct DropCounters: Sendable, Hashable {
    /// No real server available (the scheduler found none).
    public var noDestination: UInt64 = 0
    /// The connection table is at its bound.
    public var tableFull: UInt64 = 0
    /// A packet of a connection whose real server was deleted.
    public var destinationUnavailable: UInt64 = 0
    /// A non-persistent, non-fwmark service asked for a port other than its own.
    public var portMismatch: UInt64 = 0

    public init() {}
}
