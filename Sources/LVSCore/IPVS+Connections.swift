extension IPVS {
    // MARK: Service lookup

    /// The kernel's `ip_vs_service_find`: fwmark first, then protocol/address/port, then a port-zero
    /// service on the same address.
    @inline(__always)
    func findService(_ p: PacketSummary) -> Int32? {
        if p.fwmark != 0, servicesByFwmark > 0,
           let id = serviceLookup.find(0, 0, ServiceLookup.fwmarkMeta(p.fwmark, p.destination.family)) {
            return id
        }
        let a = p.destination
        if let id = serviceLookup.find(a.high, a.low, ServiceLookup.addressMeta(p.protocolNumber, a.family, p.destinationPort)) {
            return id
        }
        if portZeroServices > 0,
           let id = serviceLookup.find(a.high, a.low, ServiceLookup.addressMeta(p.protocolNumber, a.family, 0)) {
            return id
        }
        return nil
    }

    // MARK: Inbound

    /// Handles a burst of client packets (as a packet engine receives them from its ring): the memory
    /// each lookup needs is loaded for the whole burst first, so the cache misses overlap, then each
    /// packet is handled exactly as `inbound(_:now:)` does.
    public mutating func inbound(
        burst packets: UnsafeBufferPointer<PacketSummary>, now: Int64, into verdicts: inout [InboundVerdict]
    ) {
        verdicts.removeAll(keepingCapacity: true)
        let n = packets.count
        let ahead = IPVS.prefetchDistance
        let ring = IPVS.burstRing
        // A software pipeline: while packet i is handled, the entry of packet i + d and the index slot
        // of packet i + 2d are being fetched (prefetch hints, which unlike plain loads do not hold up
        // the work that follows), so memory latency overlaps with work. The hash computed for the
        // prefetch is the one the lookup then uses. The hash ring is moved out of self meanwhile
        // (no copy, no allocation).
        var hashes = burstHashes
        burstHashes = []
        defer { burstHashes = hashes }
        for i in 0..<min(2 * ahead, n) {
            let h = connections.hash(of: packets[i])
            hashes[i % ring] = h
            connections.prefetchIndex(hash: h)
        }
        for i in 0..<min(ahead, n) { connections.prefetchEntry(hash: hashes[i % ring]) }
        for i in 0..<n {
            let far = i + 2 * ahead
            if far < n {
                let h = connections.hash(of: packets[far])
                hashes[far % ring] = h
                connections.prefetchIndex(hash: h)
            }
            if i + ahead < n { connections.prefetchEntry(hash: hashes[(i + ahead) % ring]) }
            verdicts.append(inbound(packets[i], now: now, hash: hashes[i % ring]))
        }
    }

    /// Handles a packet from a client: finds or creates its connection, runs the state machine, counts it.
    public mutating func inbound(_ p: PacketSummary, now: Int64) -> InboundVerdict {
        inbound(p, now: now, hash: connections.hash(of: p))
    }

    @inline(__always)
    mutating func inbound(_ p: PacketSummary, now: Int64, hash: UInt64) -> InboundVerdict {
        expire(now: now)
        if let c = clientConnection(p, hash: hash) {
            if reuseRequested(c, p) {
                // conn_reuse_mode: a new SYN on a finished connection starts afresh.
                removeConnection(c)
            } else {
                return continueInbound(c, p, now: now)
            }
        }
        guard let service = findService(p) else { return .notVirtual }
        return schedule(service, p, now: now)
    }

    /// The connection (not a template) client packet `p` belongs to, by its client and virtual
    /// addresses and ports; `hash`: the key's hash when already computed.
    @inline(__always)
    func clientConnection(_ p: PacketSummary, hash: UInt64? = nil) -> Int32? {
        let key = ConnectionKey(protocolNumber: p.protocolNumber, client: p.source, clientPort: p.sourcePort,
                                virtual: p.destination, virtualPort: p.destinationPort)
        return connections.find(key, template: false, hash: hash ?? connections.hash(of: p))
    }

    func reuseRequested(_ c: Int32, _ p: PacketSummary) -> Bool {
        guard settings.connectionReuseMode != 0 else { return false }
        let e = connections[c]
        let finished: Bool
        switch p.protocolNumber {
        case IPProtocol.tcp.rawValue:
            guard p.tcpFlags.contains(.syn), !p.tcpFlags.contains(.ack), !p.tcpFlags.contains(.rst) else { return false }
            let state = TCPState(rawValue: e.state) ?? .none
            finished = state == .timeWait || state == .close
                || (settings.connectionReuseMode & 2 != 0 && state == .finWait
                    && e.flags & ConnectionFlags.noOutput.rawValue != 0)
        case IPProtocol.sctp.rawValue:
            finished = p.sctpChunk == .initChunk && e.state == SCTPState.closed.rawValue
        default:
            finished = false
        }
        guard finished else { return false }
        // Connections controlled by a template, or controlling others, are not reused.
        let cold = connections[cold: c]
        return cold.control < 0 && cold.controlled == 0
    }

    /// Packet `p` of connection `c` from its client; `countPacket`: its bytes are counted here (not
    /// when whoever forwarded it counts them).
    mutating func continueInbound(_ c: Int32, _ p: PacketSummary, countPacket: Bool = true, now: Int64) -> InboundVerdict {
        let server = connections[c].server
        guard server >= 0, servers[Int(server)].isAvailable else {
            drops.destinationUnavailable &+= 1
            if settings.expireNoDestinationConnections { removeConnection(c) }
            return .drop
        }
        if countPacket { count(server, .input, bytes: p.length) }
        transition(c, p, direction: .input, now: now)
        syncAfterInbound(c)
        let e = connections[c]
        // A bound connection's destination address is its real server's.
        return .forward(Forwarding(
            connection: connections.id(c), server: server, destination: Endpoint(servers[Int(server)].config.endpoint.address, e.destinationPort),
            method: ConnectionFlags(rawValue: e.flags).forwarding, isNew: false))
    }

    /// Whether this packet may create a connection (the kernel's per-protocol conn_schedule checks).
    private func startsConnection(_ p: PacketSummary) -> Bool {
        switch p.protocolNumber {
        case IPProtocol.tcp.rawValue:
            if p.tcpFlags.contains(.rst) { return false }
            return settings.sloppyTCP || p.tcpFlags.contains(.syn)
        case IPProtocol.sctp.rawValue:
            // ABORT never starts an association; with sloppy_sctp any other chunk may.
            if p.sctpChunk == .abort { return false }
            return settings.sloppySCTP || p.sctpChunk == .initChunk
        default:
            return true
        }
    }

    private mutating func schedule(_ id: Int32, _ p: PacketSummary, now: Int64) -> InboundVerdict {
        guard startsConnection(p) else { return .pass }
        let service = services[Int(id)].config
        let flow = FlowKey(protocolNumber: p.protocolNumber, source: p.source, sourcePort: p.sourcePort,
                           destination: p.destination, destinationPort: p.destinationPort)
        let onePacket = service.flags.contains(.onePacket) && p.protocolNumber == IPProtocol.udp.rawValue
        var template: Int32 = -1
        let server: Int32
        let destinationPort: UInt16
        if service.isPersistent {
            switch persistentServer(id, service, p, flow: flow, now: now) {
            case .none:
                drops.noDestination &+= 1
                return .noDestination(service.key)
            case .full:
                drops.tableFull &+= 1
                return .drop
            case .found(let t, let s):
                template = t
                server = s
            }
            let sp = servers[Int(server)].config.endpoint.port
            destinationPort = p.destinationPort == service.key.port && sp != 0 ? sp : p.destinationPort
        } else {
            if !service.key.isFwmark && p.destinationPort != service.key.port {
                // "port zero only supported in persistent services"
                drops.portMismatch &+= 1
                return .pass
            }
            guard let s = pickServer(id, flow: flow, now: now) else {
                drops.noDestination &+= 1
                return .noDestination(service.key)
            }
            server = s
            let sp = servers[Int(s)].config.endpoint.port
            destinationPort = sp != 0 ? sp : p.destinationPort
        }
        return admit(server, destinationPort: destinationPort, template: template, onePacket: onePacket, p, countPacket: true, now: now)
    }

    /// A new connection for client packet `p` on real server `server` (chosen by the scheduler),
    /// as `ip_vs_schedule` makes it: bound, counted on its server, its state moved by `p`, synced.
    /// `countPacket`: `p`'s bytes are counted here (not when whoever forwarded it counts them).
    mutating func admit(_ server: Int32, destinationPort: UInt16, template: Int32, onePacket: Bool, _ p: PacketSummary,
                        countPacket: Bool, now: Int64) -> InboundVerdict {
        let dest = servers[Int(server)].config
        var entry = ConnectionEntry(protocolNumber: p.protocolNumber, client: p.source, clientPort: p.sourcePort, virtual: p.destination,
                                    virtualPort: p.destinationPort, destination: dest.endpoint.address, destinationPort: destinationPort,
                                    fwmark: p.fwmark)
        var flags = UInt32(dest.forwarding.rawValue) | ConnectionFlags.inactive.rawValue
        if dest.forwarding != .masquerade { flags |= ConnectionFlags.noOutput.rawValue }
        if onePacket { flags |= ConnectionFlags.onePacket.rawValue }
        entry.hot.flags = flags
        entry.hot.timeout = Timeouts.initial
        entry.cold.control = template
        guard let c = connections.insert(entry, deadline: now &+ Int64(Timeouts.initial) &* 1_000_000, hashed: !onePacket) else {
            drops.tableFull &+= 1
            return .drop
        }
        bind(c, to: server)
        if template >= 0 {
            connections[cold: template].controlled += 1
            // Each connection made from a template re-arms it with the template's own timeout.
            connections.rearm(template, deadline: now &+ Int64(connections[template].timeout) &* 1_000_000)
        }
        countConnection(server)
        if countPacket { count(server, .input, bytes: p.length) }
        transition(c, p, direction: .input, now: now)
        syncAfterInbound(c)
        let forwarding = Forwarding(
            connection: onePacket ? .none : connections.id(c), server: server, destination: Endpoint(dest.endpoint.address, destinationPort),
            method: dest.forwarding, isNew: true)
        if onePacket { removeConnection(c) }
        return .forward(forwarding)
    }

    private enum PersistentChoice {
        case found(template: Int32, server: Int32)
        case none
        case full
    }

    /// The kernel's `ip_vs_sched_persist`: find or make the client's template, then its real server.
    private mutating func persistentServer(
        _ id: Int32, _ service: VirtualService.Config, _ p: PacketSummary, flow: FlowKey, now: Int64
    ) -> PersistentChoice {
        let snet: IPAddress = p.source.isV6
            ? p.source.masked(prefixLength: Int(service.netmask))
            : p.source.masked(v4Mask: service.netmask)
        var proto = p.protocolNumber
        var virtual = p.destination
        var virtualPort: UInt16 = 0
        if p.destinationPort == service.key.port {
            if service.key.port != 21 { virtualPort = p.destinationPort }
        } else if case .fwmark(let mark, let family) = service.key {
            proto = 0
            virtual = family == .inet6 ? IPAddress(v6High: UInt64(mark) << 32, low: 0) : IPAddress(v4: mark)
        }
        let key = ConnectionKey(protocolNumber: proto, client: snet, clientPort: 0, virtual: virtual, virtualPort: virtualPort)
        if let t = connections.find(key, template: true) {
            let server = connections[t].server
            if server >= 0, servers[Int(server)].isAvailable,
               !(settings.expireQuiescentTemplate && servers[Int(server)].weight == 0) {
                return .found(template: t, server: server)
            }
            // A stale template is made unmatchable and left to expire.
            connections.rekey(t) { e in
                e.virtualPort = 0xFFFF
                e.destinationPort = 0xFFFF
                e.clientPort = 0
            }
        }
        guard let server = pickServer(id, flow: flow, now: now) else { return .none }
        let dest = servers[Int(server)].config.endpoint
        var entry = ConnectionEntry(protocolNumber: proto, client: snet, clientPort: 0, virtual: virtual, virtualPort: virtualPort,
                                    destination: dest.address,
                                    destinationPort: p.destinationPort == service.key.port && service.key.port != 21 ? dest.port : 0,
                                    fwmark: p.fwmark)
        entry.hot.flags = ConnectionFlags.template.rawValue | UInt32(servers[Int(server)].config.forwarding.rawValue)
        entry.hot.timeout = service.persistenceTimeout &* 1000
        guard let t = connections.insert(entry, deadline: now &+ Int64(entry.hot.timeout) &* 1_000_000) else { return .full }
        bind(t, to: server)
        return .found(template: t, server: server)
    }

    // MARK: Outbound

    /// Handles a packet from a real server: a NAT reply is counted, moves the state machine, and gets
    /// its source rewritten to the VIP.
    public mutating func outbound(_ p: PacketSummary, now: Int64) -> OutboundVerdict {
        expire(now: now)
        guard let c = connections.findReply(
            protocolNumber: p.protocolNumber, server: Endpoint(p.source, p.sourcePort),
            client: Endpoint(p.destination, p.destinationPort)) else { return .notOurs }
        let e = connections.entry(c)
        guard ConnectionFlags(rawValue: e.hot.flags).forwarding == .masquerade else { return .notOurs }
        if e.hot.server >= 0 { count(e.hot.server, .output, bytes: p.length) }
        transition(c, p, direction: .output, now: now)
        return .masquerade(connection: connections.id(c), virtual: Endpoint(e.virtual, e.hot.virtualPort))
    }

    /// Moves a connection on for a segment an engine saw in `direction` without a full packet summary
    /// (the proxy engine reports its socket events this way).
    public mutating func update(
        connection id: ConnectionID, direction: PacketDirection, tcpFlags: TCPFlags, bytes: Int, now: Int64
    ) {
        guard connections.isLive(id) else { return }
        let server = connections[id.index].server
        if server >= 0 {
            count(server, direction, bytes: bytes)
        }
        step(id.index, direction: direction, tcpFlags: tcpFlags, bytes: bytes, now: now)
    }

    /// The state machine and sync for a segment known by its flags alone (counted elsewhere).
    mutating func step(_ c: Int32, direction: PacketDirection, tcpFlags: TCPFlags, bytes: Int, now: Int64) {
        let p = PacketSummary(protocolNumber: connections[c].protocolNumber, source: .anyV4, sourcePort: 0,
                              destination: .anyV4, destinationPort: 0, tcpFlags: tcpFlags, length: bytes)
        transition(c, p, direction: direction, now: now)
        if direction == .input { syncAfterInbound(c) }
    }

    /// Whether a connection entry (from a `Forwarding`) is still in the table.
    public func isLive(connection id: ConnectionID) -> Bool { connections.isLive(id) }

    /// Removes a connection entry at once (an engine that could not complete it, e.g. the real server
    /// refused): its real server's counts drop as if it had expired.
    public mutating func forget(connection id: ConnectionID) {
        guard connections.isLive(id) else { return }
        removeConnection(id.index)
    }
}

/// Which connection an ICMP error is about (the kernel's ip_vs_in_icmp / ip_vs_out_icmp), from the
/// datagram it quotes.
public enum RelatedICMP: Sendable, Hashable {
    /// From outside, about a packet the director sent a client: it goes on to the real server
    /// (translated for NAT; as it is for DR and TUN).
    case toServer(connection: ConnectionID, destination: Endpoint, method: ForwardingMethod)
    /// From a NAT real server's side, about a packet forwarded to it: back to the client, made to
    /// look as if about the virtual service.
    case toClient(connection: ConnectionID, virtual: Endpoint)
    case unrelated
}

extension IPVS {
    /// Finds the connection an ICMP error quoting a datagram from `quotedSource` to
    /// `quotedDestination` (protocol `protocolNumber`) is about. Counts nothing, changes nothing.
    public func relatedICMP(protocolNumber: UInt8, quotedSource: Endpoint, quotedDestination: Endpoint) -> RelatedICMP {
        // A datagram the director sent a client comes from the VIP: the client is its destination.
        let key = ConnectionKey(protocolNumber: protocolNumber, client: quotedDestination.address, clientPort: quotedDestination.port,
                                virtual: quotedSource.address, virtualPort: quotedSource.port)
        if let c = connections.find(key, template: false) {
            let e = connections.entry(c)
            let server = e.hot.server
            let address = server >= 0 ? servers[Int(server)].config.endpoint.address
                : IPAddress.fromWords(high: e.cold.destinationHigh, low: e.cold.destinationLow, v6: e.hot.families & 2 != 0)
            return .toServer(connection: connections.id(c), destination: Endpoint(address, e.hot.destinationPort),
                             method: ConnectionFlags(rawValue: e.hot.flags).forwarding)
        }
        // A datagram forwarded to a NAT real server went from the client to it.
        if let c = connections.findReply(protocolNumber: protocolNumber, server: quotedDestination, client: quotedSource) {
            let e = connections.entry(c)
            guard ConnectionFlags(rawValue: e.hot.flags).forwarding == .masquerade else { return .unrelated }
            return .toClient(connection: connections.id(c), virtual: Endpoint(e.virtual, e.hot.virtualPort))
        }
        return .unrelated
    }
}

extension IPAddress {
    static func fromWords(high: UInt64, low: UInt64, v6: Bool) -> IPAddress {
        v6 ? IPAddress(v6High: high, low: low) : IPAddress(v4: UInt32(truncatingIfNeeded: low))
    }
}
