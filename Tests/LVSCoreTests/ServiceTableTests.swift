import Testing
@testable import LVSCore

/// Every refused change returns ipvsadm's message and leaves the table exactly as it was.
@Suite struct ServiceTableTests {
    let key = tcp("10.0.0.100:80")

    func table() throws -> IPVS {
        var t = try makeTable(scheduler: "wrr", servers: [("172.16.0.2:8080", 4), ("172.16.0.3:8080", 3)])
        _ = open(&t, from: ep("192.168.0.5:1000"), to: ep("10.0.0.100:80"))
        return t
    }

    func expectUnchanged(_ change: (inout IPVS) throws(ServiceTableError) -> Void, message: String) throws {
        var t = try table()
        let before = (t.serviceSnapshots, t.connectionSnapshots(now: 0), t.timeouts)
        let nextBefore = t.pick(for: key, flow: FlowKey(protocolNumber: 6, source: v4("1.1.1.1"), sourcePort: 1,
                                                        destination: v4("10.0.0.100"), destinationPort: 80))
        var u = try table()
        do {
            try change(&u)
            Issue.record("accepted: expected \(message)")
        } catch {
            #expect(error.description == message)
        }
        #expect(u.serviceSnapshots == before.0)
        #expect(u.connectionSnapshots(now: 0) == before.1)
        #expect(u.timeouts == before.2)
        // The scheduler's position did not move either.
        let nextAfter = u.pick(for: key, flow: FlowKey(protocolNumber: 6, source: v4("1.1.1.1"), sourcePort: 1,
                                                       destination: v4("10.0.0.100"), destinationPort: 80))
        #expect(nextBefore == nextAfter)
        _ = t
    }

    @Test func refusedChangesLeaveTheTableUnchanged() throws {
        try expectUnchanged({ t throws(ServiceTableError) in try t.addService(VirtualService.Config(key: key, scheduler: "rr")) },
                            message: "Service already exists")
        try expectUnchanged({ t throws(ServiceTableError) in try t.addService(VirtualService.Config(key: tcp("10.0.0.1:80"), scheduler: "foo")) },
                            message: "Scheduler or persistence engine not found")
        try expectUnchanged({ t throws(ServiceTableError) in
            try t.addService(VirtualService.Config(key: tcp("10.0.0.1:80"), scheduler: "rr", persistenceEngine: "bogus"))
        }, message: "Scheduler or persistence engine not found")
        try expectUnchanged({ t throws(ServiceTableError) in
            try t.addService(VirtualService.Config(key: tcp("10.0.0.1:80"), scheduler: "abcdefghijklmnop"))
        }, message: "Invalid operation.  Possibly wrong module version, address not unicast, ...")
        try expectUnchanged({ t throws(ServiceTableError) in
            try t.addService(VirtualService.Config(key: .address(.tcp, IPAddress("2001:db8::1")!, 80), scheduler: "rr",
                                                   flags: .persistent, persistenceTimeout: 10, netmask: 129))
        }, message: "Invalid operation.  Possibly wrong module version, address not unicast, ...")
        try expectUnchanged({ t throws(ServiceTableError) in try t.editService(VirtualService.Config(key: tcp("10.0.0.1:80"))) },
                            message: "No such service")
        try expectUnchanged({ t throws(ServiceTableError) in try t.editService(VirtualService.Config(key: key, scheduler: "nope")) },
                            message: "Scheduler or persistence engine not found")
        try expectUnchanged({ t throws(ServiceTableError) in try t.deleteService(tcp("10.0.0.1:80")) }, message: "No such service")
        try expectUnchanged({ t throws(ServiceTableError) in try t.zero(tcp("10.0.0.1:80")) }, message: "No such service")
        try expectUnchanged({ t throws(ServiceTableError) in try t.addServer(RealServerConfig(ep("172.16.0.9:80")), to: tcp("10.0.0.1:80")) },
                            message: "Service not defined")
        try expectUnchanged({ t throws(ServiceTableError) in try t.addServer(RealServerConfig(ep("172.16.0.2:8080")), to: key) },
                            message: "Destination already exists")
        try expectUnchanged({ t throws(ServiceTableError) in try t.addServer(RealServerConfig(ep("172.16.0.9:80"), weight: -1), to: key) },
                            message: "Numerical result out of range")
        try expectUnchanged({ t throws(ServiceTableError) in
            try t.addServer(RealServerConfig(ep("172.16.0.9:80"), upperThreshold: 5, lowerThreshold: 6), to: key)
        }, message: "Numerical result out of range")
        try expectUnchanged({ t throws(ServiceTableError) in
            try t.addServer(RealServerConfig(ep("172.16.0.9:80"), forwarding: .tunnel, tunnel: TunnelConfig(kind: .gue)), to: key)
        }, message: "Invalid operation.  Possibly wrong module version, address not unicast, ...")
        try expectUnchanged({ t throws(ServiceTableError) in
            try t.addServer(RealServerConfig(Endpoint(IPAddress("2001:db8::5")!, 80), forwarding: .masquerade), to: key)
        }, message: "Invalid operation.  Possibly wrong module version, address not unicast, ...")
        try expectUnchanged({ t throws(ServiceTableError) in try t.addServer(RealServerConfig(ep("224.0.0.1:80")), to: key) },
                            message: "Invalid operation.  Possibly wrong module version, address not unicast, ...")
        try expectUnchanged({ t throws(ServiceTableError) in try t.editServer(RealServerConfig(ep("172.16.0.9:80")), in: key) },
                            message: "No such destination")
        try expectUnchanged({ t throws(ServiceTableError) in
            try t.editServer(RealServerConfig(ep("172.16.0.2:8080"), weight: -5), in: key)
        }, message: "Numerical result out of range")
        try expectUnchanged({ t throws(ServiceTableError) in try t.editServer(RealServerConfig(ep("172.16.0.2:8080")), in: tcp("10.0.0.1:80")) },
                            message: "Service not defined")
        try expectUnchanged({ t throws(ServiceTableError) in try t.deleteServer(ep("172.16.0.9:80"), from: key) },
                            message: "No such destination")
        try expectUnchanged({ t throws(ServiceTableError) in try t.deleteServer(ep("172.16.0.2:8080"), from: tcp("10.0.0.1:80")) },
                            message: "Service not defined")
        try expectUnchanged({ t throws(ServiceTableError) in try t.setTimeouts(tcp: 1, tcpFin: 2_678_401, udp: 1) },
                            message: "Invalid operation.  Possibly wrong module version, address not unicast, ...")
    }

    @Test func tunnelledServersMayBeOfAnotherFamily() throws {
        var t = try table()
        try t.addServer(RealServerConfig(Endpoint(IPAddress("2001:db8::99")!, 80), forwarding: .tunnel), to: key)
        #expect(t.serviceSnapshot(key)?.servers.count == 3)
    }

    @Test func editServiceKeepsSchedulerStateOnlyForTheSameScheduler() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1), ("172.16.0.3:80", 1), ("172.16.0.4:80", 1)])
        let f = FlowKey(protocolNumber: 6, source: v4("1.1.1.1"), sourcePort: 1, destination: v4("10.0.0.100"), destinationPort: 80)
        #expect(t.pick(for: key, flow: f) == ep("172.16.0.4:80"))
        try t.editService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 10))
        #expect(t.pick(for: key, flow: f) == ep("172.16.0.3:80"))
        #expect(t.serviceSnapshot(key)?.config.persistenceTimeout == 10)
        // -E always replaces everything: no -p means no persistence.
        try t.editService(VirtualService.Config(key: key, scheduler: "rr"))
        #expect(t.serviceSnapshot(key)?.config.isPersistent == false)
    }

    @Test func deleteAndClearKeepConnectionsUntilTheyExpire() throws {
        var t = try table()
        try t.deleteService(key)
        #expect(t.serviceCount == 0)
        #expect(t.connectionCount == 1)
        t.expire(now: 61 * second)
        #expect(t.connectionCount == 0)
        var u = try table()
        u.clear()
        #expect(u.serviceSnapshots.isEmpty)
        try u.addService(VirtualService.Config(key: key, scheduler: "rr"))
        #expect(u.serviceSnapshot(key)?.servers.isEmpty == true)
    }

    @Test func zeroClearsCountersOfOneServiceOrAll() throws {
        var t = try table()
        let other = tcp("10.0.0.101:80")
        try t.addService(VirtualService.Config(key: other, scheduler: "rr"))
        try t.addServer(RealServerConfig(ep("172.16.0.2:8080"), forwarding: .masquerade), to: other)
        _ = open(&t, from: ep("192.168.0.5:1001"), to: ep("10.0.0.101:80"))
        try t.zero(key)
        #expect(t.serviceSnapshot(key)?.counters == Counters())
        #expect(t.serviceSnapshot(key)?.servers.allSatisfy { $0.counters == Counters() } == true)
        #expect(t.serviceSnapshot(other)?.counters.connections == 1)
        try t.zero()
        #expect(t.serviceSnapshot(other)?.counters == Counters())
        #expect(t.totalStats.counters == Counters())
        // Connection counts are live state, not statistics: zeroing keeps them.
        #expect(t.server(key, "172.16.0.3")?.activeConnections == 1)
    }
}
