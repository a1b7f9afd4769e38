import Testing
@testable import LVSCore

/// Scheduler behaviour from the kernel's algorithms (reference §1); sequences list which real server
/// each new connection reaches. Servers are A=10.1.1.1, B=10.1.1.2, C=10.1.1.3, added A, B, C so the
/// kernel's list order is C, B, A.
@Suite struct SchedulerTests {
    static let names = ["10.1.1.1": "A", "10.1.1.2": "B", "10.1.1.3": "C", "10.1.1.4": "D"]

    func letters(_ ipvs: inout IPVS, _ n: Int, key: VirtualService.Key = tcp("10.0.0.100:80")) -> String {
        (0..<n).map { i -> String in
            let flow = FlowKey(protocolNumber: 6, source: v4("192.168.0.1"), sourcePort: UInt16(1000 + i),
                               destination: v4("10.0.0.100"), destinationPort: 80)
            guard let e = ipvs.pick(for: key, flow: flow) else { return "-" }
            return SchedulerTests.names["\(e.address)"] ?? "?"
        }.joined(separator: " ")
    }

    // MARK: rr

    @Test func roundRobinWalksListOrderNewestFirst() throws {
        var t = try makeTable(scheduler: "rr", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1), ("10.1.1.3:80", 1)])
        #expect(letters(&t, 7) == "C B A C B A C")
    }

    @Test func roundRobinSkipsWeightZeroAndOverloaded() throws {
        var t = try makeTable(scheduler: "rr", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1), ("10.1.1.3:80", 1)])
        try t.editServer(RealServerConfig(ep("10.1.1.2:80"), forwarding: .masquerade, weight: 0), in: tcp("10.0.0.100:80"))
        #expect(letters(&t, 4) == "C A C A")
        try t.editServer(RealServerConfig(ep("10.1.1.1:80"), forwarding: .masquerade, weight: 0), in: tcp("10.0.0.100:80"))
        try t.editServer(RealServerConfig(ep("10.1.1.3:80"), forwarding: .masquerade, weight: 0), in: tcp("10.0.0.100:80"))
        #expect(letters(&t, 2) == "- -")
    }

    @Test func roundRobinCursorSurvivesAddAndDelete() throws {
        var t = try makeTable(scheduler: "rr", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1), ("10.1.1.3:80", 1)])
        #expect(letters(&t, 2) == "C B")
        // D goes to the head: reached only after the walk wraps.
        try t.addServer(RealServerConfig(ep("10.1.1.4:80"), weight: 1), to: tcp("10.0.0.100:80"))
        #expect(letters(&t, 3) == "A D C")
        // Deleting the server under the cursor (C) continues with what followed it.
        try t.deleteServer(ep("10.1.1.3:80"), from: tcp("10.0.0.100:80"))
        #expect(letters(&t, 3) == "B A D")
    }

    // MARK: wrr

    @Test func weightedRoundRobinFollowsTheKernelAfterAdds() throws {
        var t = try makeTable(scheduler: "wrr", servers: [("10.1.1.1:80", 4), ("10.1.1.2:80", 3), ("10.1.1.3:80", 2)])
        #expect(letters(&t, 21) == "C B A A B A C B A C B A A B A C B A C B A")
    }

    @Test func weightedRoundRobinOtherAddOrder() throws {
        var t = try makeTable(scheduler: "wrr", servers: [("10.1.1.3:80", 2), ("10.1.1.2:80", 3), ("10.1.1.1:80", 4)])
        #expect(letters(&t, 12) == "A B C A A B A B C A B C")
    }

    @Test func weightedRoundRobinBoundAfterServersExistStartsAtMaxWeight() throws {
        var t = try makeTable(scheduler: "rr", servers: [("10.1.1.1:80", 4), ("10.1.1.2:80", 3), ("10.1.1.3:80", 2)])
        try t.editService(VirtualService.Config(key: tcp("10.0.0.100:80"), scheduler: "wrr"))
        #expect(letters(&t, 9) == "A B A C B A C B A")
    }

    @Test func weightedRoundRobinWithCommonDivisor() throws {
        var t = try makeTable(scheduler: "wrr", servers: [("10.1.1.1:80", 4), ("10.1.1.2:80", 2)])
        let seq = letters(&t, 12).split(separator: " ")
        #expect(seq.filter { $0 == "A" }.count == 8)
        #expect(Array(seq.suffix(6)).joined(separator: " ") == "B A A B A A")
    }

    @Test func weightedRoundRobinAllOverloadedTerminates() throws {
        var t = try makeTable(scheduler: "wrr", servers: [("10.1.1.1:80", 0), ("10.1.1.2:80", 0)])
        #expect(letters(&t, 2) == "- -")
    }

    @Test func weightedRoundRobinRatiosOverLongRuns() throws {
        var t = try makeTable(scheduler: "wrr", servers: [("10.1.1.1:80", 4), ("10.1.1.2:80", 3), ("10.1.1.3:80", 2)])
        _ = letters(&t, 3)
        let seq = letters(&t, 900).split(separator: " ")
        #expect(seq.filter { $0 == "A" }.count == 400)
        #expect(seq.filter { $0 == "B" }.count == 300)
        #expect(seq.filter { $0 == "C" }.count == 200)
    }

    // MARK: least-connection family

    @Test func leastConnectionTiesGoToEarliestInList() throws {
        var t = try makeTable(scheduler: "lc", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 5), ("10.1.1.3:80", 1)])
        // Open (active) connections one after another: lc ignores weights.
        var picks: [String] = []
        for i in 0..<6 {
            let s = open(&t, from: Endpoint(v4("192.168.0.1"), UInt16(2000 + i)), to: ep("10.0.0.100:80"))!
            picks.append(SchedulerTests.names["\(s.address)"]!)
        }
        #expect(picks.joined(separator: " ") == "C B A C B A")
    }

    @Test func weightedLeastConnectionFollowsWeights() throws {
        var t = try makeTable(scheduler: "wlc", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 2), ("10.1.1.3:80", 3)])
        var counts: [String: Int] = [:]
        for i in 0..<60 {
            let s = open(&t, from: Endpoint(v4("192.168.0.1"), UInt16(2000 + i)), to: ep("10.0.0.100:80"))!
            counts[SchedulerTests.names["\(s.address)"]!, default: 0] += 1
        }
        #expect(counts == ["A": 10, "B": 20, "C": 30])
        // First picks: all idle → earliest (C); then loads 1/3 vs 0/2 → B; …
        var u = try makeTable(scheduler: "wlc", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 2), ("10.1.1.3:80", 3)])
        var first: [String] = []
        for i in 0..<6 {
            let s = open(&u, from: Endpoint(v4("192.168.0.1"), UInt16(3000 + i)), to: ep("10.0.0.100:80"))!
            first.append(SchedulerTests.names["\(s.address)"]!)
        }
        #expect(first.joined(separator: " ") == "C B A C B C")
    }

    @Test func inactiveConnectionsWeighOneTwoHundredFiftySixth() throws {
        var t = try makeTable(scheduler: "wlc", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1)])
        // Closed connections are inactive (TIME_WAIT); they still count, lightly.
        let seq = sequence(&t, 4, vip: "10.0.0.100:80")
        #expect(seq == ["10.1.1.2", "10.1.1.1", "10.1.1.2", "10.1.1.1"])
        #expect(t.server(tcp("10.0.0.100:80"), "10.1.1.1")?.inactiveConnections == 2)
        #expect(t.server(tcp("10.0.0.100:80"), "10.1.1.1")?.activeConnections == 0)
    }

    @Test func shortestExpectedDelayAndNeverQueue() throws {
        var sed = try makeTable(scheduler: "sed", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 2), ("10.1.1.3:80", 3)])
        var nq = try makeTable(scheduler: "nq", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 2), ("10.1.1.3:80", 3)])
        var a: [String] = []
        var b: [String] = []
        for i in 0..<6 {
            let c = Endpoint(v4("192.168.0.1"), UInt16(4000 + i))
            a.append(SchedulerTests.names["\(open(&sed, from: c, to: ep("10.0.0.100:80"))!.address)"]!)
            b.append(SchedulerTests.names["\(open(&nq, from: c, to: ep("10.0.0.100:80"))!.address)"]!)
        }
        // sed: (act+1)/w → C 1/3; B 1/2 < C 2/3; C 2/3 < B 2/2; C 3/3 ties A and B, C is earliest; …
        #expect(a.joined(separator: " ") == "C B C C B A")
        // nq: idle servers first, in list order, then sed.
        #expect(b.joined(separator: " ") == "C B A C C B")
    }

    @Test func failoverAndOverflow() throws {
        var fo = try makeTable(scheduler: "fo", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 5), ("10.1.1.3:80", 5)])
        #expect(letters(&fo, 3) == "C C C")
        var ovf = try makeTable(scheduler: "ovf", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 2), ("10.1.1.3:80", 2)])
        var picks: [String] = []
        for i in 0..<7 {
            let s = open(&ovf, from: Endpoint(v4("192.168.0.1"), UInt16(5000 + i)), to: ep("10.0.0.100:80"))
            picks.append(s.map { SchedulerTests.names["\($0.address)"]! } ?? "-")
        }
        // C until its active count exceeds 2, then B, then A, then nothing.
        #expect(picks.joined(separator: " ") == "C C C B B B A")
    }

    @Test func twoChoicesIsDeterministicForASeedAndRespectsWeights() throws {
        var t = try makeTable(scheduler: "twos", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1), ("10.1.1.3:80", 0)])
        var counts: [String: Int] = [:]
        for i in 0..<300 {
            let s = open(&t, from: Endpoint(v4("192.168.0.1"), UInt16(6000 + i)), to: ep("10.0.0.100:80"))!
            counts[SchedulerTests.names["\(s.address)"]!, default: 0] += 1
        }
        #expect(counts["C"] == nil)
        // Both get traffic; the least loaded of two weighted draws keeps them within a few connections.
        #expect((counts["A"] ?? 0) > 100 && (counts["B"] ?? 0) > 100)
        var u = try makeTable(scheduler: "twos", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1)])
        var v = try makeTable(scheduler: "twos", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1)])
        #expect(letters(&u, 20) == letters(&v, 20))
    }

    // MARK: hashing

    @Test func sourceHashingTableFollowsWeights() throws {
        let t = try makeTable(scheduler: "sh", servers: [("10.1.1.1:80", 4), ("10.1.1.2:80", 3), ("10.1.1.3:80", 2)])
        guard case .sourceHashing(let sh) = t.schedulers[0] else { Issue.record("not sh"); return }
        let names = sh.buckets.map { SchedulerTests.names["\(t.servers[Int($0)].endpoint.address)"]! }
        #expect(names.prefix(12).joined(separator: " ") == "C C B B B A A A A C C B")
        #expect(names.filter { $0 == "A" }.count == 112)
        #expect(names.filter { $0 == "B" }.count == 86)
        #expect(names.filter { $0 == "C" }.count == 58)
    }

    @Test func sourceHashingIsStickyAndFallsBackOnlyWhenAsked() throws {
        let key = tcp("10.0.0.100:80")
        var t = try makeTable(scheduler: "sh", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1), ("10.1.1.3:80", 1)])
        func pick(_ t: inout IPVS, _ src: String, port: UInt16 = 1) -> String {
            let f = FlowKey(protocolNumber: 6, source: v4(src), sourcePort: port, destination: v4("10.0.0.100"), destinationPort: 80)
            return t.pick(for: key, flow: f).map { SchedulerTests.names["\($0.address)"]! } ?? "-"
        }
        // Bucket 89 for 192.168.1.100; equal weights fill C B A C B A … so bucket 89 is 89 % 3 = 2 → A.
        #expect(pick(&t, "192.168.1.100") == "A")
        #expect(pick(&t, "192.168.1.100", port: 9) == "A")
        try t.editServer(RealServerConfig(ep("10.1.1.1:80"), forwarding: .masquerade, weight: 0), in: key)
        #expect(pick(&t, "192.168.1.100") == "-")
        try t.editService(VirtualService.Config(key: key, scheduler: "sh", flags: .scheduler1))
        #expect(pick(&t, "192.168.1.100") != "-")
        #expect(pick(&t, "192.168.1.100") != "A")
        // sh-port: bucket 184 for port 12345 → 184 % 3 = 1 → B.
        try t.editService(VirtualService.Config(key: key, scheduler: "sh", flags: .scheduler2))
        #expect(pick(&t, "192.168.1.100", port: 12345) == "B")
    }

    @Test func destinationHashingUsesTheDestinationAddress() throws {
        let key = VirtualService.Key.fwmark(1, .inet)
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "dh"))
        for a in ["10.1.1.1:0", "10.1.1.2:0", "10.1.1.3:0"] { try t.addServer(RealServerConfig(ep(a)), to: key) }
        let f = FlowKey(protocolNumber: 6, source: v4("192.168.1.1"), sourcePort: 1, destination: v4("10.1.2.3"), destinationPort: 80)
        // hash_32(10.1.2.3, 8) = 2 → third bucket → list order C B A → A.
        #expect(t.pick(for: key, flow: f).map { "\($0.address)" } == "10.1.1.1")
    }

    @Test func maglevMatchesWorkedExample() throws {
        let key = tcp("10.0.0.100:80")
        var t = try makeTable(scheduler: "mh", servers: [("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)])
        guard case .maglev(let mh) = t.schedulers[0] else { Issue.record("not mh"); return }
        var counts: [String: Int] = [:]
        for id in mh.lookup { counts["\(t.servers[Int(id)].endpoint.address)", default: 0] += 1 }
        #expect(counts == ["10.0.0.1": 1364, "10.0.0.2": 1364, "10.0.0.3": 1365])
        func pick(_ src: String, port: UInt16 = 0) -> String? {
            let f = FlowKey(protocolNumber: 6, source: v4(src), sourcePort: port, destination: v4("10.0.0.100"), destinationPort: 80)
            return t.pick(for: key, flow: f).map { "\($0.address)" }
        }
        #expect(pick("192.168.1.100") == "10.0.0.2")
        #expect(pick("192.168.1.101") == "10.0.0.3")
        try t.editService(VirtualService.Config(key: key, scheduler: "mh", flags: .scheduler2))
        #expect(pick("192.168.1.100", port: 12345) == "10.0.0.3")
    }

    @Test func maglevWeightsAndQuiescedServers() throws {
        let key = tcp("10.0.0.100:80")
        var t = try makeTable(scheduler: "mh", servers: [("10.0.0.1:80", 4), ("10.0.0.2:80", 2), ("10.0.0.3:80", 1)])
        func counts() -> [String: Int] {
            guard case .maglev(let mh) = t.schedulers[0] else { return [:] }
            var c: [String: Int] = [:]
            for id in mh.lookup where id >= 0 { c["\(t.servers[Int(id)].endpoint.address)", default: 0] += 1 }
            return c
        }
        #expect(counts() == ["10.0.0.1": 2338, "10.0.0.2": 1170, "10.0.0.3": 585])
        // A weight-0 edit keeps last_weight: the table is unchanged, the server is refused instead.
        try t.editServer(RealServerConfig(ep("10.0.0.1:80"), forwarding: .masquerade, weight: 0), in: key)
        #expect(counts() == ["10.0.0.1": 2338, "10.0.0.2": 1170, "10.0.0.3": 585])
        var refused = 0
        for i in 0..<200 {
            let f = FlowKey(protocolNumber: 6, source: IPAddress(v4: 0xC0A8_0000 + UInt32(i)), sourcePort: 0,
                            destination: v4("10.0.0.100"), destinationPort: 80)
            let e = t.pick(for: key, flow: f)
            #expect(e?.address != v4("10.0.0.1"))
            if e == nil { refused += 1 }
        }
        #expect(refused > 50)
        try t.editService(VirtualService.Config(key: key, scheduler: "mh", flags: .scheduler1))
        for i in 0..<200 {
            let f = FlowKey(protocolNumber: 6, source: IPAddress(v4: 0xC0A8_0000 + UInt32(i)), sourcePort: 0,
                            destination: v4("10.0.0.100"), destinationPort: 80)
            #expect(t.pick(for: key, flow: f) != nil)
        }
    }

    @Test func maglevMovesFewFlowsWhenAServerIsAdded() throws {
        let key = tcp("10.0.0.100:80")
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "mh"))
        for i in 1...10 { try t.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0x0A00_0000 + UInt32(i)), 80)), to: key) }
        let flows = (0..<2000).map { i in
            FlowKey(protocolNumber: 6, source: IPAddress(v4: 0xC0A8_0000 + UInt32(i)), sourcePort: 0,
                    destination: v4("10.0.0.100"), destinationPort: 80)
        }
        let before = flows.map { t.pick(for: key, flow: $0) }
        try t.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0x0A00_0000 + 11), 80)), to: key)
        let after = flows.map { t.pick(for: key, flow: $0) }
        let moved = zip(before, after).filter { $0 != $1 }.count
        // Ideal is 1/11 (≈182); Maglev stays close to it.
        #expect(moved < 400)
        #expect(moved > 100)
    }

    // MARK: locality

    @Test func lblcKeepsADestinationOnOneServer() throws {
        var t = try makeTable(scheduler: "lblc", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1)])
        var seen = Set<String>()
        for i in 0..<4 {
            if let s = open(&t, from: Endpoint(v4("192.168.0.\(i + 1)"), 1000), to: ep("10.0.0.100:80")) { seen.insert("\(s.address)") }
        }
        // Each server has weight 1: after two active connections B is lblc-overloaded only if some server
        // is under half load; A (0 active) is → reschedule to A.
        #expect(seen == ["10.1.1.2", "10.1.1.1"])
    }

    @Test func lblcrGrowsItsSetUnderLoad() throws {
        var t = try makeTable(scheduler: "lblcr", servers: [("10.1.1.1:80", 1), ("10.1.1.2:80", 1)])
        var picks: [String] = []
        for i in 0..<4 {
            let s = open(&t, from: Endpoint(v4("192.168.0.\(i + 1)"), 1000), to: ep("10.0.0.100:80"))!
            picks.append(SchedulerTests.names["\(s.address)"]!)
        }
        #expect(picks == ["B", "B", "A", "A"])
        guard case .localityBasedReplicated(let l) = t.schedulers[0] else { Issue.record("not lblcr"); return }
        #expect(l.entries[v4("10.0.0.100")]?.members.count == 2)
    }

    // MARK: overload

    @Test func upperThresholdOverloadsAndLowerThresholdReleases() throws {
        let key = tcp("10.0.0.100:80")
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr"))
        try t.addServer(RealServerConfig(ep("10.1.1.1:80"), forwarding: .masquerade, weight: 1, upperThreshold: 2, lowerThreshold: 1), to: key)
        try t.addServer(RealServerConfig(ep("10.1.1.2:80"), forwarding: .masquerade, weight: 1), to: key)
        var picks: [String] = []
        for i in 0..<6 {
            let s = open(&t, from: Endpoint(v4("192.168.0.1"), UInt16(7000 + i)), to: ep("10.0.0.100:80"), now: 0)!
            picks.append(SchedulerTests.names["\(s.address)"]!)
        }
        #expect(picks.joined(separator: " ") == "B A B A B B")
        #expect(t.server(key, "10.1.1.1")?.isOverloaded == true)
        // SYN_RECV expires after 60 s: counts drop below the lower threshold, OVERLOAD clears.
        t.expire(now: 61 * second)
        #expect(t.server(key, "10.1.1.1")?.isOverloaded == false)
        #expect(t.server(key, "10.1.1.1")?.activeConnections == 0)
    }
}
