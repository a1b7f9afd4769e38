/// A copy of a service's scheduler that takes its choices ahead of the table's (`IPVS.aheadCursor`).
public struct AheadCursor: Sendable {
    public let handle: Int32
    var scheduler: SchedulerState
}

/// Scheduling ahead of the packet, for an engine that forwards a new connection's first packet
/// outside the table (the packet engine's in-kernel SYN path). Where the scheduler's next choice
/// depends on nothing but the order of the connections (rr, wrr), the engine takes that choice
/// before the SYN comes, on a copy of the scheduler (`aheadCursor`, `decideAhead`), hands it to
/// the kernel, and when the kernel has used it for a SYN, makes the connection with it
/// (`admitDecided`), which moves the table's own scheduler on by one choice, as the SYN would
/// have: the same real servers in the same order as if each SYN had come through `inbound`.
/// Any change to the services or real servers moves `generation`; the engine then drops the
/// choices not yet taken and copies the scheduler again.
extension IPVS {
    /// Whether service `handle`'s next choices can be taken ahead of its SYNs: a TCP service on
    /// an address and port, not persistent, under rr or wrr (which count nothing but the
    /// order), and no real server with a connection threshold (which would depend on the
    /// connection counts at the SYN).
    public func decidesAhead(service handle: Int32) -> Bool {
        guard let service = liveService(handle) else { return false }
        guard case .address(let proto, _, let port) = service.config.key, port != 0, proto == .tcp, !service.config.isPersistent,
              service.kind == .roundRobin || service.kind == .weightedRoundRobin else { return false }
        return service.members.allSatisfy { servers[Int($0)].config.upperThreshold == 0 }
    }

    /// The connections removed since the last call (`logsRemovals`).
    public mutating func takeRemovals() -> [RemovedConnection] {
        defer { removals.removeAll(keepingCapacity: true) }
        return removals
    }

    /// Every service's key and handle.
    public var serviceHandles: [(key: VirtualService.Key, handle: Int32)] { serviceIndex.map { ($0.key, $0.value) } }

    /// The real server slots of service `handle` (kernel list order).
    public func members(service handle: Int32) -> [Int32] {
        liveService(handle)?.members ?? []
    }

    /// Service `handle`'s slot, unless the handle names no live service.
    private func liveService(_ handle: Int32) -> ServiceSlot? {
        guard handle >= 0, Int(handle) < services.count, services[Int(handle)].live else { return nil }
        return services[Int(handle)]
    }

    /// A copy of service `handle`'s scheduler, to take its next choices ahead with
    /// (`decideAhead`) while the table's own moves on only with each connection it makes; nil
    /// when the service does not decide ahead.
    public func aheadCursor(service handle: Int32) -> AheadCursor? {
        guard decidesAhead(service: handle) else { return nil }
        return AheadCursor(handle: handle, scheduler: schedulers[Int(handle)])
    }

    /// The next choice of `cursor`'s copy of its service's scheduler, over the service's real
    /// servers as they are (nil: none available).
    public func decideAhead(_ cursor: inout AheadCursor, now: Int64) -> Int32? {
        guard let service = liveService(cursor.handle), case .address(let proto, let address, let port) = service.config.key else { return nil }
        let flow = FlowKey(protocolNumber: proto.rawValue, source: address.isV6 ? .anyV6 : .anyV4, sourcePort: 0, destination: address,
                           destinationPort: port)
        return cursor.scheduler.pick(ServerPool(members: service.members, servers: servers), flow: flow, flags: service.config.flags, now: now)
    }

    /// The connection of SYN `p`, which the engine forwarded to `server`, a choice taken ahead for
    /// service `handle`: made as `inbound` would have made it with that choice (bound, counted on
    /// its real server, its state moved by the SYN, synced), but the SYN's bytes are left to
    /// `offloadedTraffic`, as the engine counted them. Nil when the choice no longer stands: the
    /// real server left the service, the packet is no longer that service's, or the client's
    /// address and port still have a connection that a new SYN does not replace
    /// (`conn_reuse_mode`); the engine then takes the flow back. `replacing`: such a connection
    /// is removed instead, and the new one made (for an engine whose SYN already reached the
    /// chosen real server: its client gets a working connection, where the table would have
    /// sent the SYN to the old connection's real server).
    public mutating func admitDecided(_ p: PacketSummary, service handle: Int32, server: Int32, replacing: Bool = false,
                                      now: Int64) -> Forwarding? {
        expire(now: now)
        guard p.protocolNumber == IPProtocol.tcp.rawValue, p.tcpFlags.contains(.syn), !p.tcpFlags.contains(.ack),
              !p.tcpFlags.contains(.rst), findService(p) == handle, server >= 0, Int(server) < servers.count,
              servers[Int(server)].service == handle, servers[Int(server)].position >= 0,
              servers[Int(server)].isAvailable else { return nil }
        if let c = clientConnection(p) {
            guard replacing || reuseRequested(c, p) else { return nil }
            removeConnection(c)
        }
        // The table's scheduler moves on as it would have for this SYN.
        _ = pickServer(handle, flow: FlowKey(protocolNumber: p.protocolNumber, source: p.source, sourcePort: p.sourcePort,
                                             destination: p.destination, destinationPort: p.destinationPort), now: now)
        let port = servers[Int(server)].config.endpoint.port
        let verdict = admit(server, destinationPort: port != 0 ? port : p.destinationPort, template: -1, onePacket: false, p,
                            countPacket: false, now: now)
        guard case .forward(let forwarding) = verdict else { return nil }
        return forwarding
    }

    /// Whether a SYN now on connection `id` would continue it (to its real server) rather than
    /// start a new one (`conn_reuse_mode`) or be dropped (its real server deleted): what an engine
    /// that keeps a closed connection's flow to reopen it in place needs to know.
    public func synContinues(_ id: ConnectionID) -> Bool {
        guard connections.isLive(id), !connections[id.index].isTemplate,
              connections[id.index].protocolNumber == IPProtocol.tcp.rawValue else { return false }
        let server = connections[id.index].server
        guard server >= 0, servers[Int(server)].isAvailable else { return false }
        let e = connections.entry(id.index)
        let p = PacketSummary(protocolNumber: e.hot.protocolNumber, source: e.client, sourcePort: e.hot.clientPort, destination: e.virtual,
                              destinationPort: e.hot.virtualPort, tcpFlags: .syn, length: 0)
        return !reuseRequested(id.index, p)
    }

    /// Connection `id`'s protocol and its client and virtual ends, while it is in the table.
    public func ends(of id: ConnectionID) -> RemovedConnection? {
        guard connections.isLive(id) else { return nil }
        let e = connections.entry(id.index)
        return RemovedConnection(id: id, protocolNumber: e.hot.protocolNumber, client: Endpoint(e.client, e.hot.clientPort),
                                 virtual: Endpoint(e.virtual, e.hot.virtualPort))
    }

    /// SYN `p`, which the engine forwarded on the flow of its client's earlier connection (still
    /// in the table, closed): that connection goes on, as `inbound` would have it (its real
    /// server, its state moved by the SYN, synced), the SYN's bytes left to `offloadedTraffic`.
    /// Nil when there is no such connection or its real server is gone (the engine takes the
    /// flow back). Where the table would rather start a new connection (`conn_reuse_mode`), it is
    /// started on the same real server, as the SYN already went there, and the service's
    /// scheduler moves on by one choice.
    public mutating func reopened(_ p: PacketSummary, now: Int64) -> Forwarding? {
        expire(now: now)
        guard p.protocolNumber == IPProtocol.tcp.rawValue, p.tcpFlags.contains(.syn), !p.tcpFlags.contains(.ack),
              let c = clientConnection(p) else { return nil }
        let server = connections[c].server
        guard server >= 0, servers[Int(server)].isAvailable else { return nil }
        if reuseRequested(c, p) {
            let service = servers[Int(server)].service
            guard service >= 0 else { return nil }
            return admitDecided(p, service: service, server: server, now: now)
        }
        guard case .forward(let forwarding) = continueInbound(c, p, countPacket: false, now: now) else { return nil }
        return forwarding
    }
}

/// A connection the table removed (`IPVS.logsRemovals`), or one still in it (`IPVS.ends(of:)`).
public struct RemovedConnection: Sendable, Hashable {
    public var id: ConnectionID
    public var protocolNumber: UInt8
    public var client: Endpoint
    public var virtual: Endpoint
}
