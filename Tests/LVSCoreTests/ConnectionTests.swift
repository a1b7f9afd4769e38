import Testing
@testable import LVSCore

@Suite struct ConnectionTests {
    let vip = ep("10.0.0.100:80")
    let key = tcp("10.0.0.100:80")
    let client = ep("192.168.0.5:40000")

    func reply(_ t: inout IPVS, from server: Endpoint, to client: Endpoint, _ flags: TCPFlags, now: Int64 = 0) -> OutboundVerdict {
        t.outbound(PacketSummary(protocolNumber: 6, source: server.address, sourcePort: server.port,
                                 destination: client.address, destinationPort: client.port, tcpFlags: flags, length: 100), now: now)
    }

    func state(_ t: IPVS, now: Int64 = 0) -> String? { t.connectionSnapshots(now: now).first { !$0.isTemplate }?.stateName }

    @Test func natLifecycleCountsAndRewrites() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)])
        guard case .forward(let f) = t.inbound(.tcp(from: client, to: vip, flags: .syn, length: 60), now: 0) else {
            Issue.record("not forwarded"); return
        }
        #expect(f.destination == ep("172.16.0.2:8080"))
        #expect(f.method == .masquerade)
        #expect(f.isNew)
        #expect(state(t) == "SYN_RECV")
        #expect(t.server(key, "172.16.0.2")?.activeConnections == 1)
        #expect(reply(&t, from: ep("172.16.0.2:8080"), to: client, [.syn, .ack]) == .masquerade(connection: f.connection, virtual: vip))
        #expect(state(t) == "SYN_RECV")
        _ = t.inbound(.tcp(from: client, to: vip, flags: .ack, length: 52), now: 0)
        #expect(state(t) == "ESTABLISHED")
        _ = t.inbound(.tcp(from: client, to: vip, flags: [.fin, .ack], length: 52), now: 0)
        #expect(state(t) == "CLOSE_WAIT")
        #expect(t.server(key, "172.16.0.2")?.activeConnections == 0)
        #expect(t.server(key, "172.16.0.2")?.inactiveConnections == 1)
        _ = reply(&t, from: ep("172.16.0.2:8080"), to: client, [.fin, .ack])
        #expect(state(t) == "TIME_WAIT")
        let c = t.serviceSnapshot(key)!.counters
        #expect(c == Counters(connections: 1, inPackets: 3, outPackets: 2, inBytes: 164, outBytes: 200))
        #expect(t.totalStats.counters == c)
        #expect(reply(&t, from: ep("172.16.0.9:8080"), to: client, .ack) == .notOurs)
    }

    @Test func directRoutingUsesTheInputOnlyTable() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        _ = t.inbound(.tcp(from: client, to: vip, flags: .syn), now: 0)
        #expect(state(t) == "SYN_RECV")
        _ = t.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0)
        #expect(state(t) == "ESTABLISHED")
        _ = t.inbound(.tcp(from: client, to: vip, flags: [.fin, .ack]), now: 0)
        #expect(state(t) == "FIN_WAIT")
        #expect(t.connectionSnapshots(now: 0).first?.expiresIn == 120_000)
        _ = t.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0)
        #expect(state(t) == "FIN_WAIT")
        _ = t.inbound(.tcp(from: client, to: vip, flags: .rst), now: 0)
        #expect(state(t) == "CLOSE")
        // Replies bypass the director: nothing was counted out.
        #expect(t.serviceSnapshot(key)!.counters.outPackets == 0)
    }

    @Test func onlySynStartsATCPConnection() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)])
        #expect(t.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0) == .pass)
        #expect(t.inbound(.tcp(from: client, to: vip, flags: [.syn, .rst]), now: 0) == .pass)
        #expect(t.inbound(.tcp(from: client, to: ep("10.0.0.100:81"), flags: .syn), now: 0) == .notVirtual)
        #expect(t.connectionCount == 0)
        var sloppy = IPVSSettings()
        sloppy.sloppyTCP = true
        var u = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], settings: sloppy)
        if case .forward = u.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0) {} else { Issue.record("sloppy_tcp") }
    }

    @Test func noDestinationWhenEveryServerIsQuiesced() throws {
        var t = try makeTable(scheduler: "wlc", servers: [("172.16.0.2:80", 0)])
        #expect(t.inbound(.tcp(from: client, to: vip, flags: .syn), now: 0) == .noDestination(key))
        #expect(t.drops.noDestination == 1)
    }

    @Test func timersExpireWithTheInjectedClock() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)])
        _ = t.inbound(.tcp(from: client, to: vip, flags: .syn), now: 0)
        #expect(t.connectionSnapshots(now: 10 * second).first?.expiresIn == 50_000)
        t.expire(now: 59 * second)
        #expect(t.connectionCount == 1)
        t.expire(now: 60 * second)
        #expect(t.connectionCount == 0)
        #expect(t.server(key, "172.16.0.2")?.activeConnections == 0)
        // A packet re-arms the timer with the new state's timeout.
        _ = t.inbound(.tcp(from: client, to: vip, flags: .syn), now: 100 * second)
        _ = t.inbound(.tcp(from: client, to: vip, flags: .ack), now: 130 * second)
        t.expire(now: 1000 * second)
        #expect(t.connectionCount == 1)
        t.expire(now: 1030 * second)
        #expect(t.connectionCount == 0)
    }

    @Test func shorterTimeoutAfterLongOneExpiresOnTime() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)], method: .gatewaying)
        _ = t.inbound(.tcp(from: client, to: vip, flags: .syn), now: 0)
        _ = t.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0)  // ESTABLISHED, 900 s
        _ = t.inbound(.tcp(from: client, to: vip, flags: .rst), now: 5 * second)  // CLOSE, 10 s
        t.expire(now: 14 * second)
        #expect(t.connectionCount == 1)
        t.expire(now: 15 * second)
        #expect(t.connectionCount == 0)
    }

    @Test func setTimeoutsChangesEstablishedFinWaitAndUDP() throws {
        var t = IPVS()
        #expect(t.timeouts.listed == (900, 120, 300))
        try t.setTimeouts(tcp: 100, tcpFin: 0, udp: 50)
        #expect(t.timeouts.listed == (100, 120, 50))
        #expect(throws: ServiceTableError.self) { try t.setTimeouts(tcp: 2_678_401, tcpFin: 0, udp: 0) }
        #expect(t.timeouts.listed == (100, 120, 50))
    }

    @Test func udpIsAlwaysInactiveAndUsesTheUDPTimeout() throws {
        let ukey = udp("10.0.0.100:53")
        var t = try makeTable(ukey, scheduler: "rr", servers: [("172.16.0.2:53", 1)])
        _ = t.inbound(.udp(from: client, to: ep("10.0.0.100:53")), now: 0)
        _ = t.inbound(.udp(from: client, to: ep("10.0.0.100:53")), now: 0)
        let s = t.server(ukey, "172.16.0.2")!
        #expect(s.activeConnections == 0)
        #expect(s.inactiveConnections == 1)
        #expect(t.connectionSnapshots(now: 0).first?.stateName == "UDP")
        #expect(t.connectionSnapshots(now: 0).first?.expiresIn == 300_000)
        #expect(t.serviceSnapshot(ukey)?.counters.connections == 1)
        #expect(t.serviceSnapshot(ukey)?.counters.inPackets == 2)
    }

    @Test func onePacketSchedulingLeavesNoEntry() throws {
        let ukey = udp("10.0.0.100:53")
        var t = try makeTable(ukey, scheduler: "rr", flags: .onePacket, servers: [("172.16.0.2:53", 1), ("172.16.0.3:53", 1)])
        var seen: [String] = []
        for _ in 0..<4 {
            if case .forward(let f) = t.inbound(.udp(from: client, to: ep("10.0.0.100:53")), now: 0) {
                seen.append("\(f.destination.address)")
                #expect(f.connection == .none)
            }
        }
        #expect(seen == ["172.16.0.3", "172.16.0.2", "172.16.0.3", "172.16.0.2"])
        #expect(t.connectionCount == 0)
        #expect(t.server(ukey, "172.16.0.2")?.inactiveConnections == 0)
    }

    @Test func connectionReuseReschedulesANewSynOnTimeWait() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1), ("172.16.0.3:8080", 1)])
        let first = connectAndClose(&t, from: client, to: vip, now: 0)
        #expect(state(t) == "TIME_WAIT")
        let again = open(&t, from: client, to: vip, now: 1 * second)
        #expect(first != again)
        #expect(t.connectionCount == 1)
        #expect(state(t) == "SYN_RECV")
    }

    @Test func deletedServerDropsItsConnectionsAndIsRevivedWithItsCounters() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)])
        _ = t.inbound(.tcp(from: client, to: vip, flags: .syn), now: 0)
        try t.deleteServer(ep("172.16.0.2:8080"), from: key)
        #expect(t.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0) == .drop)
        #expect(t.drops.destinationUnavailable == 1)
        try t.addServer(RealServerConfig(ep("172.16.0.2:8080"), forwarding: .masquerade), to: key)
        let s = t.server(key, "172.16.0.2")!
        #expect(s.activeConnections == 1)
        #expect(s.counters.connections == 1)
        if case .forward = t.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0) {} else { Issue.record("not revived") }
    }

    @Test func tableFullIsAClearOutcome() throws {
        var settings = IPVSSettings()
        settings.maxConnections = 3
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)], settings: settings)
        for i in 0..<3 { _ = open(&t, from: Endpoint(v4("192.168.0.5"), UInt16(100 + i)), to: vip) }
        #expect(t.inbound(.tcp(from: ep("192.168.0.5:200"), to: vip, flags: .syn), now: 0) == .drop)
        #expect(t.drops.tableFull == 1)
        #expect(t.connectionCount == 3)
        t.expire(now: 61 * second)
        #expect(t.connectionCount == 0)
        #expect(open(&t, from: ep("192.168.0.5:200"), to: vip) != nil)
    }

    @Test func manyConnectionsIndexAndExpireCleanly() throws {
        var settings = IPVSSettings()
        settings.maxConnections = 20_000
        var t = try makeTable(scheduler: "wlc", servers: [("172.16.0.2:8080", 1), ("172.16.0.3:8080", 1)], settings: settings)
        for i in 0..<20_000 {
            let c = Endpoint(IPAddress(v4: 0xC0A8_0000 + UInt32(i / 1000)), UInt16(1024 + i % 1000))
            #expect(open(&t, from: c, to: vip, now: Int64(i) * 1_000_000) != nil)
        }
        #expect(t.connectionCount == 20_000)
        // Every connection is found again (an ACK moves it to ESTABLISHED).
        for i in stride(from: 0, to: 20_000, by: 7) {
            let c = Endpoint(IPAddress(v4: 0xC0A8_0000 + UInt32(i / 1000)), UInt16(1024 + i % 1000))
            guard case .forward(let f) = t.inbound(.tcp(from: c, to: vip, flags: .ack), now: 20 * second) else {
                Issue.record("lost \(c)"); return
            }
            #expect(!f.isNew)
        }
        let a = t.server(key, "172.16.0.2")!
        let b = t.server(key, "172.16.0.3")!
        #expect(a.activeConnections + b.activeConnections == 20_000)
        t.expire(now: 100 * second)  // SYN_RECV ones are gone, ESTABLISHED ones stay
        #expect(t.connectionCount == (20_000 + 6) / 7)
        t.expire(now: 2000 * second)
        #expect(t.connectionCount == 0)
        #expect(t.server(key, "172.16.0.2")!.activeConnections == 0)
    }
}

@Suite struct BurstAndCopyTests {
    let vip = ep("10.0.0.100:80")

    func packets() -> [PacketSummary] {
        var out: [PacketSummary] = []
        for i in 0..<300 {
            let c = Endpoint(IPAddress(v4: 0xC0A8_0000 + UInt32(i % 97)), UInt16(1000 + i % 50))
            let flags: TCPFlags = i % 3 == 0 ? .syn : (i % 3 == 1 ? .ack : [.fin, .ack])
            out.append(.tcp(from: c, to: i % 11 == 0 ? ep("10.0.0.100:81") : vip, flags: flags, length: 40 + i))
        }
        return out
    }

    @Test func burstsDecideExactlyAsSinglePackets() throws {
        var a = try makeTable(scheduler: "wlc", servers: [("172.16.0.2:8080", 1), ("172.16.0.3:8080", 2)])
        var b = a
        let ps = packets()
        let single = ps.map { a.inbound($0, now: 5 * second) }
        var burst: [InboundVerdict] = []
        ps.withUnsafeBufferPointer { b.inbound(burst: $0, now: 5 * second, into: &burst) }
        #expect(single == burst)
        #expect(a.serviceSnapshots == b.serviceSnapshots)
        #expect(a.connectionSnapshots(now: 5 * second) == b.connectionSnapshots(now: 5 * second))
    }

    @Test func entriesStayWithinTheirMemoryBudget() {
        #expect(MemoryLayout<HotEntry>.stride == 64)  // one cache line for lookups and packet updates
        #expect(IPVS.connectionEntryBytes(capacity: 1 << 20) <= 128)
    }

    @Test func anExpiredConnectionsIDNoLongerReachesItsReusedSlot() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)])
        guard case .forward(let old) = t.inbound(.tcp(from: ep("192.168.0.5:1000"), to: vip, flags: .syn), now: 0) else {
            Issue.record("not forwarded"); return
        }
        t.expire(now: 61 * second)
        guard case .forward(let new) = t.inbound(.tcp(from: ep("192.168.0.6:1000"), to: vip, flags: .syn), now: 62 * second) else {
            Issue.record("not forwarded"); return
        }
        #expect(new.connection.index == old.connection.index)  // the slot was reused…
        #expect(!t.isLive(connection: old.connection))         // …but the old ID is dead
        t.update(connection: old.connection, direction: .input, tcpFlags: .rst, bytes: 100, now: 63 * second)
        t.forget(connection: old.connection)
        #expect(t.connectionSnapshots(now: 63 * second).first?.stateName == "SYN_RECV")
        #expect(t.serviceSnapshot(tcp("10.0.0.100:80"))?.counters.inBytes == 120)
    }

    @Test func copiesAreIndependentValues() throws {
        var a = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)])
        _ = open(&a, from: ep("192.168.0.5:1000"), to: vip)
        let before = a.connectionSnapshots(now: 0)
        var b = a
        _ = b.inbound(.tcp(from: ep("192.168.0.5:1000"), to: vip, flags: .ack), now: 0)
        _ = open(&b, from: ep("192.168.0.6:1000"), to: vip)
        #expect(a.connectionSnapshots(now: 0) == before)
        #expect(b.connectionCount == 2)
        #expect(a.connectionCount == 1)
        b.expire(now: 10_000 * second)
        #expect(a.connectionCount == 1)
    }
}

@Suite struct PersistenceTests {
    let vip = ep("10.0.0.100:80")
    let key = tcp("10.0.0.100:80")

    @Test func templateKeepsAClientOnOneServer() throws {
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 360))
        for a in ["172.16.0.2:8080", "172.16.0.3:8080"] { try t.addServer(RealServerConfig(ep(a), forwarding: .masquerade), to: key) }
        let a = sequence(&t, 5, client: "192.168.0.5")
        #expect(Set(a).count == 1)
        let b = sequence(&t, 5, client: "192.168.0.6")
        #expect(Set(b).count == 1)
        #expect(a[0] != b[0])
        let templates = t.connectionSnapshots(now: 0).filter(\.isTemplate)
        #expect(templates.count == 2)
        let tpl = templates.first { $0.client.address == v4("192.168.0.5") }!
        #expect(tpl.client.port == 0)
        #expect(tpl.virtual == vip)
        #expect(tpl.destination.port == 8080)
        #expect(tpl.expiresIn == 360_000)
        #expect(tpl.stateName == "ASSURED")  // its connections reached ESTABLISHED
        #expect(t.server(key, a[0])?.persistentConnections == 1)
        #expect(t.serviceSnapshot(key)?.counters.connections == 10)
    }

    @Test func templateIsNoneUntilAConnectionIsEstablished() throws {
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 60))
        try t.addServer(RealServerConfig(ep("172.16.0.2:8080"), forwarding: .masquerade), to: key)
        _ = t.inbound(.tcp(from: ep("192.168.0.5:1000"), to: vip, flags: .syn), now: 0)
        #expect(t.connectionSnapshots(now: 0).first(where: \.isTemplate)?.stateName == "NONE")
        _ = t.inbound(.tcp(from: ep("192.168.0.5:1000"), to: vip, flags: .ack), now: 0)
        #expect(t.connectionSnapshots(now: 0).first(where: \.isTemplate)?.stateName == "ASSURED")
    }

    @Test func netmaskGroupsClients() throws {
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 60,
                                               netmask: 0xFFFF_FF00))
        for a in ["172.16.0.2:8080", "172.16.0.3:8080"] { try t.addServer(RealServerConfig(ep(a), forwarding: .masquerade), to: key) }
        let a = sequence(&t, 3, client: "192.168.0.5")
        let b = sequence(&t, 3, client: "192.168.0.77")
        #expect(Set(a + b).count == 1)
        let c = sequence(&t, 1, client: "192.168.1.5")
        #expect(c[0] != a[0])
    }

    @Test func templateOutlivesItsConnectionsAndIsPostponedWhileControlling() throws {
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 30))
        try t.addServer(RealServerConfig(ep("172.16.0.2:8080"), forwarding: .masquerade), to: key)
        _ = t.inbound(.tcp(from: ep("192.168.0.5:1000"), to: vip, flags: .syn), now: 0)
        _ = t.inbound(.tcp(from: ep("192.168.0.5:1000"), to: vip, flags: .ack), now: 0)  // ESTABLISHED, 900 s
        t.expire(now: 31 * second)
        // The template controls a live connection: postponed by 60 s each time, with a 60 s timeout now.
        #expect(t.connectionSnapshots(now: 31 * second).filter(\.isTemplate).first?.expiresIn == 60_000)
        t.expire(now: 901 * second)
        #expect(t.connectionSnapshots(now: 901 * second).filter { !$0.isTemplate }.isEmpty)
        #expect(t.connectionSnapshots(now: 901 * second).filter(\.isTemplate).count == 1)
        t.expire(now: 1000 * second)
        #expect(t.connectionCount == 0)
        #expect(t.server(key, "172.16.0.2")?.persistentConnections == 0)
    }

    @Test func quiescedServerKeepsItsTemplatesUnlessConfigured() throws {
        for expireQuiescent in [false, true] {
            var settings = IPVSSettings()
            settings.expireQuiescentTemplate = expireQuiescent
            var t = IPVS(settings: settings)
            try t.addService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 300))
            for a in ["172.16.0.2:8080", "172.16.0.3:8080"] { try t.addServer(RealServerConfig(ep(a), forwarding: .masquerade), to: key) }
            let first = sequence(&t, 1, client: "192.168.0.5")[0]
            try t.editServer(RealServerConfig(Endpoint(v4(first), 8080), forwarding: .masquerade, weight: 0), in: key)
            let again = sequence(&t, 1, client: "192.168.0.5", firstPort: 50000)[0]
            #expect((again == first) == !expireQuiescent)
        }
    }

    @Test func fwmarkTemplatesUseProtocolIPAndTheMark() throws {
        var t = IPVS()
        let fkey = VirtualService.Key.fwmark(5, .inet)
        try t.addService(VirtualService.Config(key: fkey, scheduler: "rr", flags: .persistent, persistenceTimeout: 300))
        try t.addServer(RealServerConfig(ep("172.16.0.2:0"), forwarding: .gatewaying), to: fkey)
        guard case .forward(let f) = t.inbound(.tcp(from: ep("192.168.0.5:1000"), to: ep("10.0.0.100:443"), flags: .syn, fwmark: 5), now: 0) else {
            Issue.record("fwmark not scheduled"); return
        }
        // Persistent fwmark services keep the packet's port.
        #expect(f.destination == ep("172.16.0.2:443"))
        let tpl = t.connectionSnapshots(now: 0).first(where: \.isTemplate)!
        #expect(tpl.protocolName == "IP")
        #expect(tpl.virtual == ep("0.0.0.5:0"))
        #expect(tpl.destination == ep("172.16.0.2:0"))
        // Another port with the same mark rides the same template.
        if case .forward(let g) = t.inbound(.tcp(from: ep("192.168.0.5:1001"), to: ep("10.0.0.100:80"), flags: .syn, fwmark: 5), now: 0) {
            #expect(g.destination == ep("172.16.0.2:80"))
        }
        #expect(t.connectionSnapshots(now: 0).filter(\.isTemplate).count == 1)
    }

    @Test func portZeroServiceNeedsPersistenceAndKeepsPorts() throws {
        var t = IPVS()
        let zkey = tcp("10.0.0.100:0")
        try t.addService(VirtualService.Config(key: zkey, scheduler: "rr", flags: .persistent, persistenceTimeout: 300))
        try t.addServer(RealServerConfig(ep("172.16.0.2:0"), forwarding: .gatewaying), to: zkey)
        guard case .forward(let f) = t.inbound(.tcp(from: ep("192.168.0.5:1000"), to: ep("10.0.0.100:22"), flags: .syn), now: 0) else {
            Issue.record("port-zero not scheduled"); return
        }
        #expect(f.destination == ep("172.16.0.2:22"))
        var n = IPVS()
        try n.addService(VirtualService.Config(key: zkey, scheduler: "rr"))
        try n.addServer(RealServerConfig(ep("172.16.0.2:0")), to: zkey)
        #expect(n.inbound(.tcp(from: ep("192.168.0.5:1000"), to: ep("10.0.0.100:22"), flags: .syn), now: 0) == .pass)
        #expect(n.drops.portMismatch == 1)
    }
}

@Suite struct ReadmeExampleTests {
    @Test func readmeExampleDoesWhatTheReadmeSays() throws {
        var ipvs = IPVS()
        let vip = VirtualService.Key.address(.tcp, IPAddress("10.0.0.100")!, 80)
        try ipvs.addService(.init(key: vip, scheduler: "wrr"))
        try ipvs.addServer(.init(Endpoint(IPAddress("172.16.0.2")!, 8080), forwarding: .masquerade, weight: 4), to: vip)
        try ipvs.addServer(.init(Endpoint(IPAddress("172.16.0.3")!, 8080), forwarding: .masquerade, weight: 3), to: vip)
        let syn = PacketSummary.tcp(from: Endpoint(IPAddress("192.168.0.5")!, 40000),
                                    to: Endpoint(IPAddress("10.0.0.100")!, 80), flags: .syn)
        guard case .forward(let f) = ipvs.inbound(syn, now: 0) else { Issue.record("not forwarded"); return }
        #expect("\(f.destination) \(f.method)" == "172.16.0.3:8080 masquerade")
    }
}
