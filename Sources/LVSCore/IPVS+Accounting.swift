/// What a packet does to its connection entry and real server: the state machines, the
/// active/inactive/persistent counts with the thresholds, the counters, and expiry.
extension IPVS {
    // MARK: State

    /// Runs the protocol's state machine for one packet, sets the timeout of the resulting state and
    /// re-arms the timer with it: everything a packet changes in its entry, in one write.
    mutating func transition(_ c: Int32, _ p: PacketSummary, direction: PacketDirection, now: Int64) {
        let e = connections[c]
        var flags = e.flags
        let newState: UInt8
        let active: Bool
        let timeout: UInt32
        switch e.protocolNumber {
        case IPProtocol.tcp.rawValue:
            var inputOnly = false
            if flags & ConnectionFlags.noOutput.rawValue != 0 {
                if direction == .output { flags &= ~ConnectionFlags.noOutput.rawValue } else { inputOnly = true }
            }
            let s = TCPStateMachine.next(from: TCPState(rawValue: e.state) ?? .none, flags: p.tcpFlags,
                                         direction: direction, inputOnly: inputOnly, secure: settings.secureTCP)
            newState = s.rawValue
            active = s.isActive
            timeout = timeouts.tcp[Int(s.rawValue)]
            if s == .established && e.state != newState { assureTemplate(of: c) }
        case IPProtocol.sctp.rawValue:
            var inputOnly = false
            if flags & ConnectionFlags.noOutput.rawValue != 0 {
                if direction == .output { flags &= ~ConnectionFlags.noOutput.rawValue } else { inputOnly = true }
            }
            let current = SCTPState(rawValue: e.state) ?? .none
            let s = SCTPStateMachine.next(from: current, chunk: p.sctpChunk ?? .data, direction: direction, inputOnly: inputOnly)
            newState = s.rawValue
            active = s == .established
            timeout = timeouts.sctp[Int(s.rawValue)]
        case IPProtocol.udp.rawValue:
            newState = 0
            active = false
            timeout = timeouts.udp
        default:
            newState = 0
            active = false
            timeout = timeouts.other
        }
        if newState != e.state, e.server >= 0 {
            let isInactive = flags & ConnectionFlags.inactive.rawValue != 0
            if !isInactive && !active {
                servers[Int(e.server)].activeConnections &-= 1
                servers[Int(e.server)].inactiveConnections &+= 1
                flags |= ConnectionFlags.inactive.rawValue
                loadChanged(e.server)
            } else if isInactive && active {
                servers[Int(e.server)].activeConnections &+= 1
                servers[Int(e.server)].inactiveConnections &-= 1
                flags &= ~ConnectionFlags.inactive.rawValue
                loadChanged(e.server)
            }
        }
        connections.update(c, flags: flags, state: newState, timeout: timeout, countPacket: direction == .input,
                           deadline: now &+ Int64(timeout) &* 1_000_000)
    }

    /// A template whose connection reached ESTABLISHED is shown as ASSURED (kernel 5.x and later).
    mutating func assureTemplate(of c: Int32) {
        let control = connections[cold: c].control
        if control >= 0 { connections[control].state = TemplateState.assured.rawValue }
    }

    // MARK: Binding and counting

    /// The kernel's `ip_vs_bind_dest`: count the entry on its server and apply the upper threshold.
    mutating func bind(_ c: Int32, to server: Int32) {
        connections[c].server = server
        let isTemplate = connections[c].isTemplate
        if isTemplate {
            servers[Int(server)].persistentConnections &+= 1
        } else if connections[c].flags & ConnectionFlags.inactive.rawValue != 0 {
            servers[Int(server)].inactiveConnections &+= 1
        } else {
            servers[Int(server)].activeConnections &+= 1
        }
        let upper = servers[Int(server)].config.upperThreshold
        if upper != 0, servers[Int(server)].connectionCount >= UInt64(upper) {
            servers[Int(server)].isOverloaded = true
        }
        if !isTemplate { loadChanged(server) }
    }

    /// The kernel's `ip_vs_unbind_dest`: uncount the entry and apply the lower threshold.
    mutating func unbind(_ c: Int32) {
        let server = connections[c].server
        guard server >= 0 else { return }
        connections[c].server = -1
        var s = servers[Int(server)]
        if connections[c].isTemplate {
            s.persistentConnections &-= 1
        } else if connections[c].flags & ConnectionFlags.inactive.rawValue != 0 {
            s.inactiveConnections &-= 1
        } else {
            s.activeConnections &-= 1
        }
        if s.config.lowerThreshold != 0 {
            if s.connectionCount < UInt64(s.config.lowerThreshold) { s.isOverloaded = false }
        } else if s.config.upperThreshold != 0 {
            if s.connectionCount * 4 < UInt64(s.config.upperThreshold) * 3 { s.isOverloaded = false }
        } else {
            s.isOverloaded = false
        }
        servers[Int(server)] = s
        if !s.isAvailable && s.position == -1 && !s.isReferenced {
            freeServer(server)
        } else if s.position >= 0 {
            loadChanged(server)
        }
    }

    @inline(__always)
    mutating func loadChanged(_ server: Int32) {
        let position = servers[Int(server)].position
        guard position >= 0 else { return }
        let service = servers[Int(server)].service
        let p = ServerPool(members: services[Int(service)].members, servers: servers)
        schedulers[Int(service)].loadChanged(at: Int(position), p)
    }

    @inline(__always)
    mutating func countConnection(_ server: Int32) {
        servers[Int(server)].stats.countConnection()
        services[Int(servers[Int(server)].service)].stats.countConnection()
        totalStats.countConnection()
    }

    /// Counts a packet on its real server, its service (while the server belongs to it) and the total.
    @inline(__always)
    mutating func count(_ server: Int32, _ direction: PacketDirection, bytes: Int) {
        let service = Int(servers[Int(server)].service)
        let counted = servers[Int(server)].isAvailable
        switch direction {
        case .input:
            servers[Int(server)].stats.countIn(bytes: bytes)
            if counted { services[service].stats.countIn(bytes: bytes) }
            totalStats.countIn(bytes: bytes)
        case .output:
            servers[Int(server)].stats.countOut(bytes: bytes)
            if counted { services[service].stats.countOut(bytes: bytes) }
            totalStats.countOut(bytes: bytes)
        }
    }

    // MARK: Expiry

    /// Expires every entry whose timer ran out by `now`. Entries that still control connections
    /// (templates) are postponed by 60 s, as the kernel does.
    public mutating func expire(now: Int64) {
        connections.collectExpired(upTo: now, into: &expiredScratch)
        guard !expiredScratch.isEmpty else { return }
        for c in expiredScratch {
            if connections[cold: c].controlled > 0 {
                connections[c].timeout = Timeouts.postponed
                connections.rearmExpired(c, deadline: now &+ Int64(Timeouts.postponed) &* 1_000_000)
            } else {
                removeConnection(c)
            }
        }
        expiredScratch.removeAll(keepingCapacity: true)
    }

    mutating func removeConnection(_ c: Int32) {
        if logsRemovals, !connections[c].isTemplate, let ends = ends(of: connections.id(c)) { removals.append(ends) }
        unbind(c)
        let control = connections[cold: c].control
        if control >= 0 {
            connections[cold: control].controlled &-= 1
            connections[cold: c].control = -1
        }
        connections.remove(c)
    }
}
