/// Connection synchronisation, the table's side (the kernel's ip_vs_sync.c without the sockets):
/// which daemons run, what a master queues for its sending thread as packets go through, and what a
/// backup does with each entry it receives.
extension IPVS {
    // MARK: Daemons

    /// `--start-daemon`, with the kernel's defaults already filled in. One master and one backup at
    /// most; refused while any service has real servers of the other address family.
    public mutating func startSyncDaemon(_ status: SyncDaemonStatus) throws(ServiceTableError) {
        try checkSyncFamilies()
        if syncDaemons.contains(where: { $0.state == status.state }) { throw .daemonRunning(status.state) }
        syncDaemons.append(status)
        syncDaemons.sort { $0.isMaster && !$1.isMaster }
        if status.isMaster {
            syncMaster = true
            syncQueue.reserveCapacity(min(settings.sync.queueLimit, 4096))
        }
    }

    /// The kernel refuses sync while a real server has another address family than its service.
    public func checkSyncFamilies() throws(ServiceTableError) {
        for s in servers where s.service >= 0 && s.isAvailable {
            if s.config.endpoint.address.family != services[Int(s.service)].config.key.family {
                throw .invalid("a sync daemon cannot run while real servers of another address family are in the table")
            }
        }
    }

    /// `--stop-daemon`: a master's unsent entries are discarded.
    public mutating func stopSyncDaemon(_ state: SyncDaemonState) throws(ServiceTableError) {
        guard let i = syncDaemons.firstIndex(where: { $0.state == state.rawValue }) else { throw .noDaemon }
        syncDaemons.remove(at: i)
        if state == .master {
            syncMaster = false
            syncQueue = []
        }
    }

    public func syncDaemon(_ state: SyncDaemonState) -> SyncDaemonStatus? {
        syncDaemons.first { $0.state == state.rawValue }
    }

    /// Hands the master's sending thread what was queued since it last asked (swapping buffers:
    /// `into` comes back empty with its capacity for the next round).
    public mutating func takeSyncQueue(into buffer: inout [SyncedConnection]) {
        buffer.removeAll(keepingCapacity: true)
        swap(&buffer, &syncQueue)
    }

    // MARK: Master

    /// After a client packet of connection `c` (whose packet count is now `packets`): the kernel's
    /// `ip_vs_sync_conn`. The connection is queued if its state or count calls for it, then its
    /// controlling template (whose own count goes up each time it is considered).
    @inline(__always)
    mutating func syncAfterInbound(_ c: Int32) {
        guard syncMaster else { return }
        let onePacket = connections[c].flags & ConnectionFlags.onePacket.rawValue != 0
        let packets = onePacket ? settings.sync.threshold : connections[c].inPackets
        syncConnection(c, packets: packets)
    }

    mutating func syncConnection(_ first: Int32, packets firstCount: UInt32) {
        var c = first
        var packets = firstCount
        let v0 = settings.sync.version == 0
        while true {
            let e = connections[c]
            if v0 {
                // Version 0 carries IPv4 only, and a controller only after its connection went.
                guard e.families & 1 == 0, e.flags & ConnectionFlags.onePacket.rawValue == 0,
                      syncNeeded(c, packets: packets) else { return }
                queueForSync(c)
            } else if e.flags & ConnectionFlags.onePacket.rawValue == 0, syncNeeded(c, packets: packets) {
                queueForSync(c)
            }
            let control = connections[cold: c].control
            guard control >= 0 else { return }
            c = control
            if connections[c].isTemplate {
                connections[c].inPackets &+= 1
                packets = connections[c].inPackets
            } else {
                packets = settings.sync.threshold
            }
        }
    }

    /// The kernel's `ip_vs_sync_conn_needed` (without sync_refresh_period, which defaults to 0):
    /// templates always; TCP and SCTP only in their established and closing states, at once when
    /// they enter a closing state; otherwise at the threshold packet and every period after it.
    private mutating func syncNeeded(_ c: Int32, packets: UInt32) -> Bool {
        let e = connections[c]
        let sync = settings.sync
        if e.isTemplate {
            // Exempt from the packet test.
        } else if sync.persistMode && connections[cold: c].control >= 0 {
            return false
        } else if e.protocolNumber == IPProtocol.tcp.rawValue || e.protocolNumber == IPProtocol.sctp.rawValue {
            let tcp = e.protocolNumber == IPProtocol.tcp.rawValue
            guard e.state < 32, (tcp ? IPVS.syncedTCPStates : IPVS.syncedSCTPStates) & (1 << UInt32(e.state)) != 0 else { return false }
            let established = tcp ? TCPState.established.rawValue : SCTPState.established.rawValue
            if e.state != connections[cold: c].syncedState && e.state != established {
                connections[cold: c].syncedState = e.state
                return true
            }
        }
        if sync.period > 0 {
            if !e.isTemplate && packets % sync.period != sync.threshold { return false }
        } else if packets != sync.threshold {
            return false
        }
        connections[cold: c].syncedState = e.state
        return true
    }

    /// The states a TCP or SCTP connection is sent in (bit n: state n).
    static let syncedTCPStates: UInt32 = [TCPState.established, .finWait, .close, .closeWait, .timeWait]
        .reduce(0) { $0 | 1 << UInt32($1.rawValue) }
    static let syncedSCTPStates: UInt32 = [SCTPState.established, .shutdownSent, .shutdownReceived, .shutdownAckSent, .closed]
        .reduce(0) { $0 | 1 << UInt32($1.rawValue) }

    private mutating func queueForSync(_ c: Int32) {
        guard syncQueue.count < settings.sync.queueLimit else {
            syncCounters.queueOverflow &+= 1
            return
        }
        let e = connections.entry(c)
        let s = SyncedConnection(
            protocolNumber: e.hot.protocolNumber, flags: e.hot.flags & ~ConnectionFlags.hashed.rawValue, state: UInt16(e.hot.state),
            client: e.client, clientPort: e.hot.clientPort, virtual: e.virtual, virtualPort: e.hot.virtualPort,
            destination: e.destination, destinationPort: e.hot.destinationPort, fwmark: e.cold.fwmark, timeout: e.hot.timeout / 1000)
        syncQueue.append(s)
        syncCounters.queued &+= 1
    }

    // MARK: Backup

    /// What a backup did with one received entry.
    public enum SyncOutcome: Sendable, Hashable {
        /// A new entry, bound to its real server.
        case created
        /// The entry was there: its state, timeout and INACTIVE/sequence bits were refreshed.
        case updated
        /// The entry was there for another real server: it was expired and made again.
        case replaced
        /// A late message about a connection already replaced (it says inactive): ignored.
        case stale
        /// No virtual service for it here.
        case noService
        /// The virtual service has no such real server.
        case noDestination
        /// The connection table is at its bound.
        case tableFull
    }

    /// The kernel's `ip_vs_proc_conn` for one entry a backup received (flags already masked by the
    /// decoder). Unlike the kernel, which keeps entries it cannot bind until a service appears, an
    /// entry for a service or real server this director does not have is refused and counted.
    @discardableResult
    public mutating func applySynced(_ s: SyncedConnection, now: Int64) -> SyncOutcome {
        expire(now: now)
        let outcome = applySyncedEntry(s, now: now)
        switch outcome {
        case .created: syncCounters.created &+= 1
        case .updated: syncCounters.updated &+= 1
        case .replaced: syncCounters.replaced &+= 1
        case .stale: syncCounters.stale &+= 1
        case .noService: syncCounters.noService &+= 1
        case .noDestination: syncCounters.noDestination &+= 1
        case .tableFull: syncCounters.tableFull &+= 1
        }
        return outcome
    }

    private mutating func applySyncedEntry(_ s: SyncedConnection, now: Int64) -> SyncOutcome {
        let template = s.isTemplate
        let key = ConnectionKey(protocolNumber: s.protocolNumber, client: s.client, clientPort: s.clientPort,
                                virtual: s.virtual, virtualPort: s.virtualPort)
        var replaced = false
        var existing = connections.find(key, template: template)
        if !template, let c = existing {
            let e = connections.entry(c)
            if e.hot.destinationPort != s.destinationPort || e.destination != s.destination {
                guard s.flags & ConnectionFlags.inactive.rawValue == 0 else { return .stale }
                removeConnection(c)
                existing = nil
                replaced = true
            }
        }
        let c: Int32
        if let found = existing {
            c = found
            let e = connections[c]
            if (e.flags ^ s.flags) & ConnectionFlags.inactive.rawValue != 0, !template, e.server >= 0 {
                let server = Int(e.server)
                if s.flags & ConnectionFlags.inactive.rawValue != 0 {
                    servers[server].activeConnections &-= 1
                    servers[server].inactiveConnections &+= 1
                } else {
                    servers[server].activeConnections &+= 1
                    servers[server].inactiveConnections &-= 1
                }
                loadChanged(e.server)
            }
            let update = SyncedConnection.backupUpdateMask
            connections[c].flags = (s.flags & update) | (e.flags & ~update)
        } else {
            guard let service = syncedService(s) else { return .noService }
            guard let server = syncedServer(s, of: service) else { return .noDestination }
            let dest = servers[Int(server)].config
            var entry = ConnectionEntry(protocolNumber: s.protocolNumber, client: s.client, clientPort: s.clientPort, virtual: s.virtual,
                                        virtualPort: s.virtualPort, destination: s.destination, destinationPort: s.destinationPort,
                                        fwmark: s.fwmark)
            // A synced entry takes its forwarding method from the local real server.
            var flags = s.flags & ~(ConnectionFlags.forwardMask.rawValue | ConnectionFlags.noOutput.rawValue)
            flags |= UInt32(dest.forwarding.rawValue)
            if dest.forwarding != .masquerade { flags |= ConnectionFlags.noOutput.rawValue }
            entry.hot.flags = flags
            guard let inserted = connections.insert(entry, deadline: now) else { return .tableFull }
            c = inserted
            bind(c, to: server)
        }
        let timeout: UInt32
        if s.timeout > 0 {
            timeout = UInt32(min(UInt64(s.timeout) * 1000, UInt64(UInt32.max)))
        } else if template {
            timeout = 180_000
        } else {
            switch s.protocolNumber {
            case IPProtocol.tcp.rawValue: timeout = timeouts.tcp[Int(s.state)]
            case IPProtocol.sctp.rawValue: timeout = timeouts.sctp[Int(s.state)]
            case IPProtocol.udp.rawValue: timeout = timeouts.udp
            default: timeout = timeouts.other
            }
        }
        let state = UInt8(truncatingIfNeeded: s.state)
        connections[c].inPackets = settings.sync.threshold
        connections[cold: c].syncedState = state
        connections.update(c, flags: connections[c].flags, state: state, timeout: timeout, countPacket: false,
                           deadline: now &+ Int64(timeout) &* 1_000_000)
        if existing != nil { return .updated }
        return replaced ? .replaced : .created
    }

    /// The service a synced entry belongs to: by fwmark when it has one, else by protocol, address
    /// and port (then port 0).
    private func syncedService(_ s: SyncedConnection) -> Int32? {
        let family = s.virtual.family
        if s.fwmark != 0 { return serviceLookup.find(0, 0, ServiceLookup.fwmarkMeta(s.fwmark, family)) }
        let a = s.virtual
        if let id = serviceLookup.find(a.high, a.low, ServiceLookup.addressMeta(s.protocolNumber, family, s.virtualPort)) { return id }
        return serviceLookup.find(a.high, a.low, ServiceLookup.addressMeta(s.protocolNumber, family, 0))
    }

    /// The real server of `service` a synced entry names: same address and port; a template (which
    /// may carry port 0) or a fwmark entry not masqueraded matches on the address alone.
    private func syncedServer(_ s: SyncedConnection, of service: Int32) -> Int32? {
        let members = services[Int(service)].members
        if let m = members.first(where: { servers[Int($0)].config.endpoint == Endpoint(s.destination, s.destinationPort) }) { return m }
        let loose = s.isTemplate
            || (s.fwmark != 0 && s.flags & ConnectionFlags.forwardMask.rawValue != UInt32(ForwardingMethod.masquerade.rawValue))
        guard loose else { return nil }
        return members.first { servers[Int($0)].config.endpoint.address == s.destination }
    }
}

/// What sync did, for `lvsd status` and the metrics.
public struct SyncCounters: Sendable, Hashable, Codable {
    /// Master: entries queued for sending, and those the full queue refused.
    public var queued: UInt64 = 0
    public var queueOverflow: UInt64 = 0
    /// Backup: what became of the entries received.
    public var created: UInt64 = 0
    public var updated: UInt64 = 0
    public var replaced: UInt64 = 0
    public var stale: UInt64 = 0
    public var noService: UInt64 = 0
    public var noDestination: UInt64 = 0
    public var tableFull: UInt64 = 0

    public init() {}
}
