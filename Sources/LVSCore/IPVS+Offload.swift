/// Connections an engine forwards outside the table for a while (the packet engine's in-kernel
/// path): which may be, and how what was forwarded that way comes back into the table.
extension IPVS {
    /// Whether the further packets of a connection may be forwarded without the table seeing
    /// each: a live, non-template entry on an available real server, and TCP in ESTABLISHED (the
    /// one state plain segments leave as it is) or UDP. One-packet (`-o`) connections never.
    /// `afterPackets`: only once the table has counted that many of the connection's packets
    /// from its client (a short connection is not worth handing over). `reported`: the path
    /// reports the segments that move a TCP connection on (`offloadedSegment`), so one just
    /// scheduled by its SYN (SYN_RECV) may be handed over too.
    public func mayOffload(_ id: ConnectionID, afterPackets: UInt32 = 0, reported: Bool = false) -> Bool {
        guard connections.isLive(id) else { return false }
        let e = connections[id.index]
        guard !e.isTemplate, e.inPackets >= afterPackets, e.server >= 0, servers[Int(e.server)].isAvailable,
              e.flags & ConnectionFlags.onePacket.rawValue == 0 else { return false }
        switch e.protocolNumber {
        case IPProtocol.tcp.rawValue:
            return e.state == TCPState.established.rawValue || (reported && e.state == TCPState.synReceived.rawValue)
        case IPProtocol.udp.rawValue: return true
        default: return false
        }
    }

    /// A segment of connection `id` forwarded outside the table, reported for its flags (the
    /// in-kernel path reports SYN, FIN and RST segments and the first plain one after the
    /// handshake): the state machine moves as `inbound` or `outbound` would move it, and a master
    /// sync daemon gets the connection as it would then; its packets and bytes come with
    /// `offloadedTraffic`. Returns whether the connection may stay handed over
    /// (`mayOffload(_:reported:)`: ESTABLISHED, or still in SYN_RECV).
    public mutating func offloadedSegment(_ id: ConnectionID, direction: PacketDirection, tcpFlags: TCPFlags, now: Int64) -> Bool {
        guard connections.isLive(id) else { return false }
        step(id.index, direction: direction, tcpFlags: tcpFlags, bytes: 0, now: now)
        return mayOffload(id, reported: true)
    }

    /// What was forwarded for connection `id` outside the table since the last call: counted on
    /// its real server, service and the total as if each packet had come through `inbound` or
    /// `outbound`, and its timer re-armed from its last packet (`idle` ago) with the state's
    /// timeout. A master sync daemon gets the connection when its packet count passed a point at
    /// which each packet would have sent it. Returns `mayOffload(id, reported: true)` afterwards
    /// (the path that forwarded them reports the segments that move TCP's state).
    @discardableResult
    public mutating func offloadedTraffic(_ id: ConnectionID, inPackets: UInt64, inBytes: UInt64, outPackets: UInt64, outBytes: UInt64,
                                          idle: Int64, now: Int64) -> Bool {
        guard connections.isLive(id) else { return false }
        let c = id.index
        let server = connections[c].server
        guard inPackets > 0 || outPackets > 0 else { return mayOffload(id, reported: true) }
        if server >= 0 {
            let delta = Counters(connections: 0, inPackets: inPackets, outPackets: outPackets, inBytes: inBytes, outBytes: outBytes)
            servers[Int(server)].stats.add(delta)
            if servers[Int(server)].isAvailable { services[Int(servers[Int(server)].service)].stats.add(delta) }
            totalStats.add(delta)
        }
        let before = connections[c].inPackets
        let after = before &+ UInt32(truncatingIfNeeded: inPackets)
        connections[c].inPackets = after
        let timeout = Int64(connections[c].timeout)
        let deadline = now &- max(idle, 0) &+ timeout &* 1_000_000
        if deadline > now { connections.rearm(c, deadline: deadline) }
        if inPackets > 0, syncMaster, let k = syncPoint(after: before, count: inPackets) {
            syncConnection(c, packets: k)
        }
        return mayOffload(id, reported: true)
    }

    /// The first packet count in (before, before + count] at which the kernel's sync rule
    /// (threshold, then every period) sends a connection, or nil.
    func syncPoint(after before: UInt32, count: UInt64) -> UInt32? {
        let sync = settings.sync
        let last = UInt64(before) &+ count
        if sync.period == 0 {
            let t = UInt64(sync.threshold)
            return t > UInt64(before) && t <= last ? sync.threshold : nil
        }
        let period = UInt64(sync.period), threshold = UInt64(sync.threshold) % period
        let first = UInt64(before) + 1
        let next = first + (threshold + period - first % period) % period
        return next <= last ? UInt32(truncatingIfNeeded: next) : nil
    }
}
