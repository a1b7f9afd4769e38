import Testing
@testable import LVSCore

@Suite struct SyncTests {
    let vip = ep("10.0.0.100:80")
    let key = tcp("10.0.0.100:80")
    let client = ep("192.168.0.5:40000")

    static func master(_ t: inout IPVS) throws {
        try t.startSyncDaemon(SyncDaemonStatus(SyncDaemonConfig(state: .master), interfaceMTU: 1500))
    }

    func queued(_ t: inout IPVS) -> [SyncedConnection] {
        var out: [SyncedConnection] = []
        t.takeSyncQueue(into: &out)
        return out
    }

    func ack(_ t: inout IPVS, _ flags: TCPFlags = .ack, from c: Endpoint? = nil, now: Int64 = 0) -> InboundVerdict {
        t.inbound(.tcp(from: c ?? client, to: vip, flags: flags), now: now)
    }

    @Test func daemonsStartStopAndList() throws {
        var t = IPVS()
        var config = SyncDaemonConfig(state: .master)
        config.interface = "eth1"
        try t.startSyncDaemon(SyncDaemonStatus(config, interfaceMTU: 9000))
        #expect(throws: ServiceTableError.daemonRunning("master")) { try t.startSyncDaemon(SyncDaemonStatus(config, interfaceMTU: 9000)) }
        var backup = SyncDaemonConfig(state: .backup)
        backup.syncID = 7
        try t.startSyncDaemon(SyncDaemonStatus(backup, interfaceMTU: 9000))
        #expect(t.syncDaemons.map(\.listingLine) == [
            "master sync daemon (mcast=eth1, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
            "backup sync daemon (mcast=eth0, syncid=7, maxlen=8972, group=224.0.0.81, port=8848, ttl=1)\n",
        ])
        try t.stopSyncDaemon(.master)
        #expect(throws: ServiceTableError.noDaemon) { try t.stopSyncDaemon(.master) }
        #expect(t.syncDaemons.count == 1)
    }

    @Test func kernelDefaultsAndClamps() {
        func status(_ state: SyncDaemonState, mtu: Int, maxLength: UInt16? = nil, group: String? = nil) -> SyncDaemonStatus {
            var c = SyncDaemonConfig(state: state)
            c.maxLength = maxLength
            c.group = group.map { IPAddress($0)! }
            return SyncDaemonStatus(c, interfaceMTU: mtu)
        }
        #expect(status(.master, mtu: 9000).maxLength == 1472)
        #expect(status(.backup, mtu: 1280).maxLength == 1472)
        #expect(status(.backup, mtu: 65536).maxLength == 65507)
        #expect(status(.master, mtu: 1500, group: "ff02::81").maxLength == 1452)
        #expect(status(.backup, mtu: 1500, maxLength: 100).maxLength == 1024)
        #expect(status(.master, mtu: 1500, maxLength: 1).maxLength == 1)
        #expect(status(.master, mtu: 1500, maxLength: 65535).maxLength == 65507)
        let s = status(.master, mtu: 1500, group: "239.1.2.3")
        #expect(s.group == IPAddress("239.1.2.3")! && s.port == 8848 && s.ttl == 1)
    }

    @Test func mixedFamiliesRefuseADaemon() throws {
        var t = try makeTable(scheduler: "rr", servers: [])
        try t.addServer(RealServerConfig(ep("[2001:db8::2]:80"), forwarding: .tunnel, weight: 1), to: key)
        #expect(throws: ServiceTableError.self) { try Self.master(&t) }
        var u = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)])
        try Self.master(&u)
        #expect(throws: ServiceTableError.self) {
            try u.addServer(RealServerConfig(ep("[2001:db8::2]:80"), forwarding: .tunnel, weight: 1), to: key)
        }
    }

    @Test func masterSendsTCPAtTheThresholdEveryPeriodAndOnClosingStates() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        try Self.master(&t)
        _ = ack(&t, .syn)
        _ = ack(&t)
        #expect(queued(&t).isEmpty)  // SYN_RECV is never sent; ESTABLISHED at packet 2 is not the threshold
        _ = ack(&t)
        let third = queued(&t)
        #expect(third.count == 1)
        let s = try #require(third.first)
        #expect(s.state == UInt16(TCPState.established.rawValue) && s.timeout == 900)
        #expect(s.client == client.address && s.clientPort == client.port && s.virtual == vip.address && s.virtualPort == 80)
        #expect(s.destination == IPAddress("172.16.0.2")! && s.destinationPort == 80)
        #expect(s.flags & ConnectionFlags.hashed.rawValue == 0 && s.flags & 0x7 == UInt32(ForwardingMethod.gatewaying.rawValue))
        var sent: [Int] = []
        for packet in 4...110 {
            _ = ack(&t)
            if !queued(&t).isEmpty { sent.append(packet) }
        }
        #expect(sent == [53, 103])
        _ = ack(&t, [.fin, .ack])
        let fin = queued(&t)
        #expect(fin.map(\.state) == [UInt16(TCPState.finWait.rawValue)] && fin[0].timeout == 120)
        _ = ack(&t)
        #expect(queued(&t).isEmpty)
    }

    @Test func udpAndSettings() throws {
        let u = udp("10.0.0.100:53")
        var settings = IPVSSettings()
        settings.sync.period = 0
        var t = try makeTable(u, scheduler: "rr", servers: [("172.16.0.2:53", 1)], settings: settings)
        try Self.master(&t)
        var sent: [Int] = []
        for packet in 1...60 {
            _ = t.inbound(.udp(from: client, to: ep("10.0.0.100:53")), now: 0)
            if !queued(&t).isEmpty { sent.append(packet) }
        }
        #expect(sent == [3])  // period 0: only at the threshold
    }

    @Test func templatesGoWithEveryPacketOfTheirConnections() throws {
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 360))
        try t.addServer(RealServerConfig(ep("172.16.0.2:80"), forwarding: .gatewaying, weight: 1), to: key)
        try Self.master(&t)
        _ = ack(&t, .syn)
        let first = queued(&t)
        #expect(first.count == 1 && first[0].isTemplate && first[0].timeout == 360 && first[0].clientPort == 0)
        _ = ack(&t)
        #expect(queued(&t).map(\.isTemplate) == [true])
        _ = ack(&t)
        #expect(queued(&t).map(\.isTemplate) == [false, true])
        t = IPVS(settings: { var s = IPVSSettings(); s.sync.persistMode = true; return s }())
        try t.addService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 360))
        try t.addServer(RealServerConfig(ep("172.16.0.2:80"), forwarding: .gatewaying, weight: 1), to: key)
        try Self.master(&t)
        for _ in 0..<5 { _ = ack(&t, .ack) }
        _ = ack(&t, .syn)
        for _ in 0..<5 { _ = ack(&t) }
        let all = queued(&t)
        #expect(!all.isEmpty && all.allSatisfy { $0.isTemplate })
    }

    @Test func version0LeavesIPv6Out() throws {
        var settings = IPVSSettings()
        settings.sync.version = 0
        let k6 = tcp("[2001:db8::100]:80")
        var t = try makeTable(k6, scheduler: "rr", servers: [("[2001:db8::2]:80", 1)], method: .gatewaying, settings: settings)
        try Self.master(&t)
        for flags in [TCPFlags.syn, .ack, .ack, .ack] {
            _ = t.inbound(.tcp(from: ep("[2001:db8::9]:4000"), to: ep("[2001:db8::100]:80"), flags: flags), now: 0)
        }
        #expect(queued(&t).isEmpty)
    }

    @Test func aFullQueueDropsAndCounts() throws {
        var settings = IPVSSettings()
        settings.sync.queueLimit = 2
        settings.sync.period = 1
        settings.sync.threshold = 0
        var t = try makeTable(udp("10.0.0.100:53"), scheduler: "rr", servers: [("172.16.0.2:53", 1)], settings: settings)
        try Self.master(&t)
        for i in 0..<5 { _ = t.inbound(.udp(from: Endpoint(client.address, UInt16(1000 + i)), to: ep("10.0.0.100:53")), now: 0) }
        #expect(queued(&t).count == 2)
        #expect(t.syncCounters.queued == 2 && t.syncCounters.queueOverflow == 3)
        try t.stopSyncDaemon(.master)
        _ = t.inbound(.udp(from: Endpoint(client.address, 2000), to: ep("10.0.0.100:53")), now: 0)
        #expect(queued(&t).isEmpty)
    }

    // MARK: Backup

    func synced(_ client: Endpoint, to server: String, state: TCPState = .established, flags: UInt32 = 0x0081, timeout: UInt32 = 900)
        -> SyncedConnection {
        let d = ep(server)
        return SyncedConnection(protocolNumber: 6, flags: flags | ConnectionFlags.sync.rawValue, state: UInt16(state.rawValue),
                                client: client.address, clientPort: client.port, virtual: vip.address, virtualPort: vip.port,
                                destination: d.address, destinationPort: d.port, timeout: timeout)
    }

    @Test func backupInstallsConnectionsThatKeepTheirRealServer() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1), ("172.16.0.3:80", 1)], method: .gatewaying)
        // Sent as NAT by the master: the local real server's method (DR) wins.
        #expect(t.applySynced(synced(client, to: "172.16.0.3:80", flags: 0x0000), now: 0) == .created)
        let entry = try #require(t.connectionSnapshots(now: 0).first)
        #expect(entry.stateName == "ESTABLISHED" && entry.expiresIn == 900_000)
        #expect(entry.flags.forwarding == .gatewaying && entry.flags.contains(.sync) && entry.flags.contains(.noOutput))
        #expect(t.server(key, "172.16.0.3")?.activeConnections == 1)
        // Not counted as a connection this director made.
        #expect(t.serviceSnapshot(key)!.counters.connections == 0)
        // The client's next segment goes to the same real server, whatever rr would pick.
        for _ in 0..<3 {
            guard case .forward(let f) = ack(&t) else { Issue.record("not forwarded"); return }
            #expect(f.destination == ep("172.16.0.3:80") && !f.isNew && f.method == .gatewaying)
        }
        // Without an entry, a mid-stream segment starts nothing (the breakage sync prevents).
        #expect(ack(&t, from: ep("192.168.0.9:5000")) == .pass)
    }

    @Test func backupUpdatesReplacesAndIgnores() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1), ("172.16.0.3:80", 1)], method: .gatewaying)
        #expect(t.applySynced(synced(client, to: "172.16.0.2:80"), now: 0) == .created)
        // Inactive now (FIN_WAIT): the counters move with the INACTIVE bit.
        #expect(t.applySynced(synced(client, to: "172.16.0.2:80", state: .finWait, flags: 0x0181, timeout: 120), now: second) == .updated)
        #expect(t.server(key, "172.16.0.2")?.activeConnections == 0 && t.server(key, "172.16.0.2")?.inactiveConnections == 1)
        #expect(t.connectionSnapshots(now: second).first?.stateName == "FIN_WAIT")
        #expect(t.connectionSnapshots(now: second).first?.expiresIn == 120_000)
        // A late inactive message naming another real server is ignored.
        #expect(t.applySynced(synced(client, to: "172.16.0.3:80", state: .close, flags: 0x0181), now: second) == .stale)
        // An active one replaces the entry.
        #expect(t.applySynced(synced(client, to: "172.16.0.3:80"), now: second) == .replaced)
        #expect(t.connectionCount == 1)
        #expect(t.server(key, "172.16.0.2")?.inactiveConnections == 0 && t.server(key, "172.16.0.3")?.activeConnections == 1)
        #expect(t.syncCounters.created == 1 && t.syncCounters.updated == 1 && t.syncCounters.stale == 1 && t.syncCounters.replaced == 1)
    }

    @Test func backupRefusesWhatItCannotServe() throws {
        var settings = IPVSSettings()
        settings.maxConnections = 2
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying, settings: settings)
        var other = synced(client, to: "172.16.0.2:80")
        other.virtualPort = 81
        #expect(t.applySynced(other, now: 0) == .noService)
        #expect(t.applySynced(synced(client, to: "172.16.0.9:80"), now: 0) == .noDestination)
        #expect(t.applySynced(synced(ep("192.168.0.1:1"), to: "172.16.0.2:80"), now: 0) == .created)
        #expect(t.applySynced(synced(ep("192.168.0.1:2"), to: "172.16.0.2:80"), now: 0) == .created)
        #expect(t.applySynced(synced(ep("192.168.0.1:3"), to: "172.16.0.2:80"), now: 0) == .tableFull)
        #expect(t.syncCounters.noService == 1 && t.syncCounters.noDestination == 1 && t.syncCounters.tableFull == 1)
        #expect(t.connectionCount == 2)
    }

    @Test func backupTimeoutsAndTemplates() throws {
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr", flags: .persistent, persistenceTimeout: 360))
        try t.addServer(RealServerConfig(ep("172.16.0.2:80"), forwarding: .gatewaying, weight: 1), to: key)
        try t.addServer(RealServerConfig(ep("172.16.0.3:80"), forwarding: .gatewaying, weight: 1), to: key)
        // Version 0 carries no timeout: the state's own (TIME_WAIT 120 s); templates 180 s.
        #expect(t.applySynced(synced(client, to: "172.16.0.3:80", state: .timeWait, timeout: 0), now: 0) == .created)
        var template = synced(Endpoint(client.address, 0), to: "172.16.0.3:80", state: .none, flags: 0x1001, timeout: 0)
        template.clientPort = 0
        #expect(t.applySynced(template, now: 0) == .created)
        let entries = t.connectionSnapshots(now: 0)
        #expect(entries.first { !$0.isTemplate }?.expiresIn == 120_000)
        #expect(entries.first { $0.isTemplate }?.expiresIn == 180_000)
        #expect(t.server(key, "172.16.0.3")?.persistentConnections == 1)
        // The synced template keeps a new connection of that client on its real server.
        for port: UInt16 in 50000..<50010 {
            guard case .forward(let f) = ack(&t, .syn, from: Endpoint(client.address, port)) else { Issue.record("not forwarded"); return }
            #expect(f.destination == ep("172.16.0.3:80"))
        }
        // The same template again is an update, not a second template.
        template.timeout = 360
        #expect(t.applySynced(template, now: 0) == .updated)
        #expect(t.server(key, "172.16.0.3")?.persistentConnections == 1)
    }
}
