import LVSCore
import Testing
@testable import VRRP

/// Receive checks, counters and announcements of one instance, on a fake clock.
@Suite struct VRRPInstanceTests {
    static let s: Int64 = 1_000_000_000
    static let me = IPAddress("10.0.0.2")!
    static let peer = IPAddress("10.0.0.3")!
    static let vip = IPAddress("10.0.0.100")!

    static func settings(version: UInt8 = 2, priority: UInt8 = 100, auth: VRRPAdvertisement.Authentication = .none,
                         interval: Int64 = s, checkPeers: Bool = false, peers: [IPAddress] = []) -> VRRPInstance.Settings {
        var a = VRRPInstance.AnnouncementTiming()
        a.delay = 5 * s
        a.repeatCount = 5
        return VRRPInstance.Settings(name: "VI_1", interface: "eth0", version: version, virtualRouterID: 51, priority: priority,
                                     advertisementInterval: interval, authentication: auth,
                                     addresses: [.init(vip), .init(IPAddress("10.9.9.9")!, excluded: true)], sourceAddress: me,
                                     unicastPeers: peers, announcements: a, checkUnicastSource: checkPeers)
    }

    static func packet(_ a: VRRPAdvertisement, ttl: UInt8 = 255, from source: IPAddress = peer,
                       to destination: IPAddress = VRRPInstance.group4) -> VRRPInstance.Received {
        VRRPInstance.Received(source: source, destination: destination, ttl: ttl, bytes: a.encode(source: source, destination: destination))
    }

    static func advert(priority: UInt8 = 150, version: UInt8 = 2, interval: UInt16 = 1, addresses: [IPAddress] = [vip],
                       auth: VRRPAdvertisement.Authentication = .none) -> VRRPAdvertisement {
        VRRPAdvertisement(version: version, virtualRouterID: 51, priority: priority, interval: interval, addresses: addresses, authentication: auth)
    }

    /// Logs among the effects.
    static func logs(_ effects: [VRRPInstance.Effect]) -> [String] {
        effects.compactMap { if case .log(_, let m) = $0 { return m }; return nil }
    }

    @Test func aValidAdvertIsCountedAndKeepsTheBackup() {
        var i = VRRPInstance(Self.settings())
        _ = i.start(at: 0)
        #expect(Self.logs(i.receive(Self.packet(Self.advert()), at: Self.s)) == [])
        #expect(i.statistics.advertisementsReceived == 1 && i.machine.masterAddress == Self.peer)
        #expect(i.statistics.dropped == 0)
    }

    @Test func eachBadAdvertIsDroppedCountedAndNamed() {
        let cases: [(VRRPInstance.Settings, VRRPInstance.Received, String, KeyPath<VRRPInstance.Statistics, Int>)] = [
            (Self.settings(), Self.packet(Self.advert(), ttl: 64), "(VI_1) invalid TTL/HL. Received 64 and expect 255", \.ttlErrors),
            (Self.settings(), Self.packet(Self.advert(version: 3, interval: 100)), "(VI_1) wrong version. Received 3 and expect 2", \.versionErrors),
            (Self.settings(), Self.packet(Self.advert(interval: 2)), "(VI_1) advertisement interval mismatch mine=1 sec rcv'd=2 sec", \.intervalErrors),
            (Self.settings(auth: .password(Array("secret".utf8))), Self.packet(Self.advert(auth: .password(Array("wrong".utf8)))),
             "(VI_1) received an invalid passwd!", \.authenticationFailures),
            (Self.settings(auth: .password(Array("secret".utf8))), Self.packet(Self.advert()), "(VI_1) received a 0 auth, expecting 1!",
             \.authenticationTypeMismatch),
            (Self.settings(), Self.packet(Self.advert(addresses: [Self.peer])),
             "(VI_1) ip address associated with VRID 51 not present in MASTER advert: 10.0.0.100", \.addressListErrors),
            (Self.settings(), Self.packet(Self.advert(addresses: [Self.vip, Self.peer])),
             "(VI_1) received an unexpected ip number count 2, expected 1!", \.addressListErrors),
            (Self.settings(checkPeers: true, peers: [IPAddress("10.0.0.4")!]), Self.packet(Self.advert(), ttl: 64),
             "(VI_1) unicast source address 10.0.0.3 not a unicast peer", \.unknownPeer),
        ]
        for (settings, packet, message, counter) in cases {
            var i = VRRPInstance(settings)
            _ = i.start(at: 0)
            let effects = i.receive(packet, at: Self.s)
            #expect(Self.logs(effects) == [message])
            #expect(i.statistics[keyPath: counter] == 1, "\(message)")
            #expect(i.statistics.advertisementsReceived == 0 && i.machine.masterAddress == nil, "\(message): no state change")
            // The master-down timer was not reset by it.
            #expect(i.tick(at: i.machine.masterDownInterval).contains(.transition(from: .backup, to: .master)), "\(message)")
        }
    }

    @Test func aCorruptedAdvertIsACountedChecksumError() {
        var i = VRRPInstance(Self.settings())
        _ = i.start(at: 0)
        var p = Self.packet(Self.advert())
        p.bytes[2] ^= 0x40
        #expect(Self.logs(i.receive(p, at: Self.s)) == ["(VI_1) Invalid VRRPv2 checksum"])
        p.bytes = Array(p.bytes.prefix(5))
        _ = i.receive(p, at: Self.s)
        #expect(i.statistics.checksumErrors == 1 && i.statistics.packetLengthErrors == 1 && i.statistics.advertisementsReceived == 0)
    }

    @Test func unicastAdvertsSkipTheTTLCheckAndNeedNotComeFromAPeer() {
        var i = VRRPInstance(Self.settings(peers: [IPAddress("10.0.0.4")!]))
        _ = i.start(at: 0)
        #expect(Self.logs(i.receive(Self.packet(Self.advert(), ttl: 61, to: Self.me), at: Self.s)) == [])
        #expect(i.statistics.advertisementsReceived == 1)
    }

    @Test func aLowerMasterIsAnsweredAndTheAddressesAnnouncedAgain() {
        var i = VRRPInstance(Self.settings(priority: 255))
        _ = i.start(at: 0)
        let effects = i.receive(Self.packet(Self.advert(priority: 100)), at: Self.s)
        #expect(Self.logs(effects) == ["(VI_1) Received advert from 10.0.0.3 with lower priority 100, ours 255, forcing new election"])
        #expect(effects.contains(.announce(count: 5)) && i.state == .master)
        #expect(effects.contains { if case .send(let a, _, _) = $0 { return a.priority == 255 }; return false })
    }

    @Test func twoAddressOwnersAreAConfigurationError() {
        var i = VRRPInstance(Self.settings(priority: 255))
        _ = i.start(at: 0)
        let effects = i.receive(Self.packet(Self.advert(priority: 255)), at: Self.s)
        #expect(Self.logs(effects).first?.contains("both configured as address owner") == true)
        #expect(i.machine.priority == 254 && i.state == .backup, "the peer's address is higher")
    }

    @Test func passwordsAreComparedOnTheirEightBytes() {
        var i = VRRPInstance(Self.settings(auth: .password(Array("longpassword".utf8))))
        _ = i.start(at: 0)
        _ = i.receive(Self.packet(Self.advert(auth: .password(Array("longpass".utf8)))), at: Self.s)
        #expect(i.statistics.advertisementsReceived == 1)
    }

    @Test func v3LearnsTheMastersIntervalAndChecksTheChecksumWithThePseudoHeader() {
        var i = VRRPInstance(Self.settings(version: 3, interval: Self.s / 10))
        _ = i.start(at: 0)
        let a = Self.advert(version: 3, interval: 50)
        #expect(Self.logs(i.receive(Self.packet(a), at: Self.s)) == [])
        #expect(i.machine.masterAdvertisementInterval == Self.s / 2)
        // The same bytes claimed from another source fail the pseudo-header checksum.
        var p = Self.packet(a)
        p.source = IPAddress("10.0.0.7")!
        _ = i.receive(p, at: Self.s)
        #expect(i.statistics.checksumErrors == 1)
    }

    @Test func theMasterAdvertisesAndAnnouncesOnSchedule() {
        var i = VRRPInstance(Self.settings(priority: 255))
        let effects = i.start(at: 0)
        #expect(effects.contains(.takeAddresses) && effects.contains(.announce(count: 5)))
        guard case .send(let advert, let source, let destinations)? = effects.first else {
            Issue.record("no advert first")
            return
        }
        // The excluded address is owned but not advertised.
        #expect(advert.addresses == [Self.vip] && advert.priority == 255 && source == Self.me && destinations == [VRRPInstance.group4])
        #expect(i.nextDeadline == Self.s)
        var announced: [Int64] = []
        var t: Int64 = 0
        while t <= 12 * Self.s {
            for e in i.tick(at: t) { if case .announce = e { announced.append(t) } }
            t += Self.s / 2
        }
        // Again after garp_master_delay; no refresh by default.
        #expect(announced == [5 * Self.s])
        #expect(i.statistics.advertisementsSent == 13)
    }

    @Test func stoppingSendsPriorityZeroAndReleases() {
        var i = VRRPInstance(Self.settings(priority: 255))
        _ = i.start(at: 0)
        let effects = i.shutdown(at: Self.s)
        guard case .send(let advert, _, _)? = effects.first else {
            Issue.record("no advert")
            return
        }
        #expect(advert.priority == 0 && effects.contains(.releaseAddresses) && i.statistics.priorityZeroSent == 1)
    }
}

/// The fuzzer's VRRP checks over adverts mutated byte by byte and random bytes (deterministic).
@Suite struct VRRPFuzzingTests {
    @Test func mutatedAdvertsAreCountedOnceAndRefusedOnesChangeNothing() {
        var seed: UInt64 = 0x5EED
        func next() -> UInt64 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return seed >> 33
        }
        let v2 = VRRPAdvertisement(version: 2, virtualRouterID: 7, priority: 150, interval: 1, addresses: [IPAddress("10.0.0.100")!],
                                   authentication: .password(Array("secret".utf8))).encode()
        let v3 = VRRPAdvertisement(version: 3, virtualRouterID: 7, priority: 150, interval: 10, addresses: [IPAddress("10.0.0.100")!])
            .encode(source: IPAddress("10.0.0.2")!, destination: VRRPInstance.group4)
        var inputs: [[UInt8]] = []
        for base in [v2, v3] {
            for control in [UInt8(0), 2, 4, 8, 0x12] {
                inputs.append([control] + base)
                for _ in 0..<300 {
                    var m = base
                    m[Int(next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: next())
                    if next() % 4 == 0 { m.removeLast(Int(next() % UInt64(m.count))) }
                    inputs.append([control] + m)
                }
            }
        }
        for _ in 0..<2000 { inputs.append((0..<Int(next() % 64)).map { _ in UInt8(truncatingIfNeeded: next()) }) }
        for input in inputs { input.withUnsafeBytes { VRRPFuzzing.exercise($0) } }
    }
}
