import Testing
@testable import LVSCore

/// Scheduling ahead of the SYN (the packet engine's in-kernel SYN path): the choices taken on a
/// copy of the scheduler are the ones the SYNs would have got, and the connections made from
/// them are those `inbound` would have made.
@Suite struct AheadTests {
    let key = tcp("10.0.0.100:80")
    let vip = ep("10.0.0.100:80")

    func syn(_ port: UInt16) -> PacketSummary {
        .tcp(from: Endpoint(IPAddress("192.168.0.5")!, port), to: vip, flags: .syn, length: 60)
    }

    /// A connection from client port 40000 closed by its client's FIN (FIN_WAIT).
    func closedConnection(_ t: inout IPVS) -> Forwarding? {
        guard case .forward(let f) = t.inbound(syn(40000), now: 0) else { return nil }
        for flags: TCPFlags in [.ack, [.fin, .ack]] {
            var p = syn(40000)
            p.tcpFlags = flags
            _ = t.inbound(p, now: 0)
        }
        return f
    }

    func handle(_ t: IPVS) throws -> Int32 { try #require(t.serviceHandle(for: key)) }

    /// For each of `count` SYNs: the real server `inbound` sends it to, on a copy of `t`.
    func inboundServers(_ t: IPVS, count: Int, from port: Int = 10000) -> [Endpoint] {
        var copy = t
        return (0..<count).compactMap { i in
            guard case .forward(let f) = copy.inbound(syn(UInt16(port + i)), now: 0) else { return nil }
            return f.destination
        }
    }

    @Test(arguments: ["rr", "wrr"]) func choicesTakenAheadAreTheOnesTheSYNsWouldGet(scheduler: String) throws {
        var t = try makeTable(scheduler: scheduler, servers: [("172.16.0.2:80", 4), ("172.16.0.3:80", 3), ("172.16.0.4:80", 2)],
                              method: .gatewaying)
        let expected = inboundServers(t, count: 30)
        #expect(expected.count == 30)
        // Eight choices ahead at a time, each admitted later: the same servers, in the same order.
        var cursor = try #require(t.aheadCursor(service: try handle(t)))
        var got: [Endpoint] = []
        var port: UInt16 = 10000
        while got.count < 30 {
            let batch = (0..<min(8, 30 - got.count)).compactMap { _ in t.decideAhead(&cursor, now: 0) }
            for server in batch {
                let f = try #require(t.admitDecided(syn(port), service: try handle(t), server: server, now: 0))
                #expect(f.isNew)
                got.append(f.destination)
                port += 1
            }
        }
        #expect(got == expected)
        // The table's own scheduler moved as the SYNs would have moved it.
        #expect(inboundServers(t, count: 9, from: 20000) == Array(inboundServers(try makeSame(scheduler), count: 39).suffix(9)))
    }

    func makeSame(_ scheduler: String) throws -> IPVS {
        try makeTable(scheduler: scheduler, servers: [("172.16.0.2:80", 4), ("172.16.0.3:80", 3), ("172.16.0.4:80", 2)], method: .gatewaying)
    }

    @Test func anAdmittedConnectionIsAsInboundMakesItButItsSYNIsNotCounted() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        var reference = t
        guard case .forward(let g) = reference.inbound(syn(40000), now: 0) else { Issue.record("not forwarded"); return }
        var cursor = try #require(t.aheadCursor(service: try handle(t)))
        let server = try #require(t.decideAhead(&cursor, now: 0))
        let f = try #require(t.admitDecided(syn(40000), service: try handle(t), server: server, now: 0))
        #expect(f.method == .gatewaying)
        #expect(f.destination == ep("172.16.0.2:80"))
        #expect(f.destination == g.destination)
        #expect(t.connectionSnapshots(now: 0) == reference.connectionSnapshots(now: 0))
        #expect(t.connectionSnapshots(now: 0).first?.stateName == "SYN_RECV")
        let server1 = try #require(t.server(key, "172.16.0.2")), reference1 = try #require(reference.server(key, "172.16.0.2"))
        #expect(server1.activeConnections == reference1.activeConnections)
        #expect(server1.inactiveConnections == reference1.inactiveConnections)
        let counters = t.serviceSnapshot(key)!.counters
        #expect(counters.connections == 1)
        #expect(counters.inPackets == 0)
        #expect(counters.inBytes == 0)
        #expect(reference.serviceSnapshot(key)!.counters.inPackets == 1)
    }

    @Test func onlyServicesWhoseChoiceDependsOnOrderAloneDecideAhead() throws {
        let servers = [("172.16.0.2:80", Int32(1))]
        for s in ["rr", "wrr"] {
            let t = try makeTable(scheduler: s, servers: servers, method: .gatewaying)
            #expect(t.decidesAhead(service: try handle(t)))
        }
        for s in ["lc", "wlc", "sh", "mh", "sed", "nq", "dh", "lblc"] {
            let t = try makeTable(scheduler: s, servers: servers, method: .gatewaying)
            #expect(!t.decidesAhead(service: try handle(t)), "\(s)")
            #expect(t.aheadCursor(service: try handle(t)) == nil)
        }
        let persistent = try makeTable(scheduler: "rr", flags: [.persistent], servers: servers, method: .gatewaying)
        #expect(!persistent.decidesAhead(service: try handle(persistent)))
        let udp = try makeTable(VirtualService.Key.address(.udp, IPAddress("10.0.0.100")!, 80), scheduler: "rr", servers: servers,
                                method: .gatewaying)
        #expect(!udp.decidesAhead(service: try #require(udp.serviceHandle(for: .address(.udp, IPAddress("10.0.0.100")!, 80)))))
        var threshold = try makeTable(scheduler: "rr", servers: servers, method: .gatewaying)
        #expect(threshold.decidesAhead(service: try handle(threshold)))
        try threshold.editServer(RealServerConfig(ep("172.16.0.2:80"), forwarding: .gatewaying, weight: 1, upperThreshold: 10), in: key)
        #expect(!threshold.decidesAhead(service: try handle(threshold)))
    }

    @Test func everyChangeToServicesOrServersMovesTheGeneration() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        var g = t.generation
        func moved(_ change: (inout IPVS) throws -> Void) throws -> Bool {
            try change(&t)
            defer { g = t.generation }
            return t.generation != g
        }
        #expect(try moved { try $0.addServer(RealServerConfig(ep("172.16.0.3:80"), forwarding: .gatewaying, weight: 1), to: key) })
        #expect(try moved { try $0.editServer(RealServerConfig(ep("172.16.0.3:80"), forwarding: .gatewaying, weight: 0), in: key) })
        #expect(try moved { try $0.deleteServer(ep("172.16.0.3:80"), from: key) })
        #expect(try moved { try $0.editService(VirtualService.Config(key: key, scheduler: "wrr")) })
        #expect(try moved { try $0.addService(VirtualService.Config(key: tcp("10.0.0.101:80"), scheduler: "rr")) })
        #expect(try moved { try $0.deleteService(tcp("10.0.0.101:80")) })
        #expect(try !moved { _ = $0.inbound(syn(1000), now: 0) })
    }

    @Test func aChoiceThatNoLongerStandsMakesNoConnection() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1), ("172.16.0.3:80", 1)], method: .gatewaying)
        var cursor = try #require(t.aheadCursor(service: try handle(t)))
        let first = try #require(t.decideAhead(&cursor, now: 0))
        let gone = t.realServer(first).endpoint
        try t.deleteServer(gone, from: key)
        #expect(t.admitDecided(syn(40000), service: try handle(t), server: first, now: 0) == nil)
        #expect(t.connectionCount == 0)
        // Not a SYN, or a packet of another service: refused too.
        let second = try #require(t.decideAhead(&cursor, now: 0))
        var ack = syn(40001)
        ack.tcpFlags = .ack
        #expect(t.admitDecided(ack, service: try handle(t), server: second, now: 0) == nil)
        #expect(t.connectionCount == 0)
    }

    @Test func aLiveConnectionOfTheSameClientPortIsNotReplacedAFinishedOneIs() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        guard case .forward = t.inbound(syn(40000), now: 0) else { Issue.record("not forwarded"); return }
        var cursor = try #require(t.aheadCursor(service: try handle(t)))
        let server = try #require(t.decideAhead(&cursor, now: 0))
        // SYN_RECV: a SYN again is that connection's (the engine must take its flow back).
        #expect(t.admitDecided(syn(40000), service: try handle(t), server: server, now: 0) == nil)
        #expect(t.connectionCount == 1)
        // Finished (conn_reuse_mode 1, CLOSE after a reset): a new SYN starts a new connection.
        for flags: TCPFlags in [.ack, .rst] {
            var p = syn(40000)
            p.tcpFlags = flags
            _ = t.inbound(p, now: 0)
        }
        #expect(t.connectionSnapshots(now: 0).first?.stateName == "CLOSE")
        let f = try #require(t.admitDecided(syn(40000), service: try handle(t), server: server, now: 0))
        #expect(f.isNew)
        #expect(t.connectionSnapshots(now: 0).first?.stateName == "SYN_RECV")
        #expect(t.connectionCount == 1)
    }

    @Test func aReplacingAdmissionStartsANewConnectionOnTheChosenServer() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1), ("172.16.0.3:80", 1)], method: .gatewaying)
        guard case .forward(let old) = t.inbound(syn(40000), now: 0) else { Issue.record("not forwarded"); return }
        var cursor = try #require(t.aheadCursor(service: try handle(t)))
        let other = try #require(t.decideAhead(&cursor, now: 0))
        #expect(t.realServer(other).endpoint != old.destination)
        let admitted = t.admitDecided(syn(40000), service: try handle(t), server: other, replacing: true, now: 0)
        let f = try #require(admitted)
        #expect(f.destination == t.realServer(other).endpoint)
        #expect(t.connectionCount == 1)
        #expect(t.connectionSnapshots(now: 0).first?.destination == f.destination)
    }

    @Test func aSYNOnAClosedConnectionGoesOnOrStartsAfreshAsReuseModeSays() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1), ("172.16.0.3:80", 1)], method: .gatewaying)
        let f = try #require(closedConnection(&t))
        #expect(t.connectionSnapshots(now: 0).first?.stateName == "FIN_WAIT")
        // conn_reuse_mode 1: a DR connection in FIN_WAIT goes on, on its real server.
        #expect(t.synContinues(f.connection))
        let reopened = t.reopened(syn(40000), now: 0)
        let again = try #require(reopened)
        #expect(again.connection == f.connection)
        #expect(!again.isNew)
        #expect(again.destination == f.destination)
        #expect(t.connectionSnapshots(now: 0).first?.stateName == "SYN_RECV")
        // After a reset (CLOSE) a SYN starts afresh: on the same real server, as it went there.
        for flags: TCPFlags in [.ack, .rst] {
            var p = syn(40000)
            p.tcpFlags = flags
            _ = t.inbound(p, now: 0)
        }
        #expect(t.connectionSnapshots(now: 0).first?.stateName == "CLOSE")
        #expect(!t.synContinues(f.connection))
        let afresh = t.reopened(syn(40000), now: 0)
        let fresh = try #require(afresh)
        #expect(fresh.isNew)
        #expect(fresh.connection != f.connection)
        #expect(fresh.destination == f.destination)
        #expect(t.connectionCount == 1)
        // No connection: nothing to reopen.
        #expect(t.reopened(syn(40001), now: 0) == nil)
    }

    @Test func aSYNDoesNotContinueAConnectionWhoseRealServerWasDeleted() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1), ("172.16.0.3:80", 1)], method: .gatewaying)
        let f = try #require(closedConnection(&t))
        #expect(t.synContinues(f.connection))
        let ends = try #require(t.ends(of: f.connection))
        #expect(ends.client.port == 40000 && ends.virtual.port == 80 && ends.protocolNumber == 6)
        try t.deleteServer(f.destination, from: key)
        #expect(t.connectionCount == 1, "the connection stays until it expires")
        #expect(!t.synContinues(f.connection))
        #expect(t.reopened(syn(40000), now: 0) == nil)
        #expect(t.ends(of: ConnectionID(index: f.connection.index, generation: f.connection.generation &+ 1)) == nil)
    }

    @Test func removedConnectionsAreListedWhenAsked() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        guard case .forward = t.inbound(syn(40000), now: 0) else { Issue.record("not forwarded"); return }
        t.expire(now: 3_600 * second)
        #expect(t.takeRemovals().isEmpty)
        t.logsRemovals = true
        guard case .forward(let g) = t.inbound(syn(40001), now: 3_600 * second) else { Issue.record("not forwarded"); return }
        t.expire(now: 7_200 * second)
        let removed = t.takeRemovals()
        #expect(removed.map(\.id) == [g.connection])
        #expect(removed.first?.client == Endpoint(IPAddress("192.168.0.5")!, 40001))
        #expect(removed.first?.virtual == vip)
        #expect(removed.first?.protocolNumber == 6)
        #expect(t.takeRemovals().isEmpty)
    }
}
