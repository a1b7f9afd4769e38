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
        #expect(effects.contains { if case .send(let a, _, _, _) = $0 { return a.priority == 255 }; return false })
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
        guard case .send(let advert, let source, let destinations, _)? = effects.first else {
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
        guard case .send(let advert, _, _, _)? = effects.first else {
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

/// VRRPv2 with IPsec AH: what keepalived sends and checks.
@Suite struct VRRPAuthenticationHeaderTests {
    static let s: Int64 = 1_000_000_000
    static let key = VRRPAuthenticationHeader.key(Array("secret".utf8))

    static func instance() -> VRRPInstance {
        var settings = VRRPInstanceTests.settings(auth: .ah)
        settings.authenticationKey = key
        var i = VRRPInstance(settings)
        _ = i.start(at: 0)
        return i
    }

    /// A sealed advert from the peer as the socket hands it over.
    static func received(sequence: UInt32, key: [UInt8] = key, spiFrom: IPAddress = VRRPInstanceTests.peer,
                         mutate: (inout [UInt8]) -> Void = { _ in }) -> VRRPInstance.Received {
        let message = VRRPInstanceTests.advert(auth: .ah).encode()
        var packet = VRRPAuthenticationHeader.seal(message, source: VRRPInstanceTests.peer, destination: VRRPInstance.group4, identification: 9,
                                                   sequence: sequence, key: key, unicast: false)
        if spiFrom != VRRPInstanceTests.peer {
            // Another SPI, with a digest that covers it.
            packet.replaceSubrange(24..<28, with: spiFrom.networkBytes)
            let icv = VRRPAuthenticationHeader.digest(ipHeader: Array(packet[..<20]), ah: Array(packet[20..<44]), message: message, key: key, unicast: false)
            packet.replaceSubrange(32..<44, with: icv)
        }
        mutate(&packet)
        return VRRPInstance.Received(source: VRRPInstanceTests.peer, destination: VRRPInstance.group4, ttl: 255, bytes: Array(packet[44...]),
                                     ipHeader: Array(packet[..<20]), authenticationHeader: Array(packet[20..<44]))
    }

    @Test func theLayoutIsKeepalivedsAndItsDigestVerifies() {
        let message = VRRPInstanceTests.advert(auth: .ah).encode()
        let p = VRRPAuthenticationHeader.seal(message, source: VRRPInstanceTests.me, destination: VRRPInstance.group4, identification: 3,
                                              sequence: 7, key: Self.key, unicast: false)
        #expect(p.count == 20 + 24 + message.count && p[9] == 51 && p[8] == 255 && p[1] == 0xC0 && p[6] & 0x40 == 0)
        #expect(Array(p[20..<24]) == [112, 4, 0, 0] && Array(p[24..<28]) == VRRPInstanceTests.me.networkBytes && Array(p[28..<32]) == [0, 0, 0, 7])
        #expect(message[4] == 2 && message.suffix(8).allSatisfy { $0 == 0 }, "auth type 2, the 8 bytes zero")
        let icv = VRRPAuthenticationHeader.digest(ipHeader: Array(p[..<20]), ah: Array(p[20..<44]), message: message, key: Self.key, unicast: false)
        #expect(icv == Array(p[32..<44]) && icv.count == 12)
    }

    @Test func aGoodAdvertIsTakenAndItsSequenceRemembered() {
        var i = Self.instance()
        #expect(VRRPInstanceTests.logs(i.receive(Self.received(sequence: 5), at: Self.s)) == [])
        #expect(i.statistics.advertisementsReceived == 1 && i.ahSequence == 5)
    }

    @Test func forgedReplayedOrMisattributedAdvertsAreDropped() {
        let cases: [(VRRPInstance.Received, String)] = [
            (Self.received(sequence: 5, key: VRRPAuthenticationHeader.key(Array("wrong".utf8))),
             "(VI_1) IPSEC-AH : invalid IPSEC HMAC-MD5 value. Due to fields mutation or bad password !"),
            (Self.received(sequence: 5) { $0[50] ^= 1 }, "(VI_1) IPSEC-AH : invalid IPSEC HMAC-MD5 value. Due to fields mutation or bad password !"),
            (Self.received(sequence: 5, spiFrom: IPAddress("10.0.0.9")!), "(VI_1) IPSEC AH : invalid IPSEC SPI value. 167772169 and expect 167772163"),
            (Self.received(sequence: 2), "(VI_1) IPSEC-AH : sequence number 2 already processed. Packet dropped. Local(3)"),
        ]
        for (packet, message) in cases {
            var i = Self.instance()
            _ = i.receive(Self.received(sequence: 3), at: Self.s)
            let effects = i.receive(packet, at: 2 * Self.s)
            #expect(VRRPInstanceTests.logs(effects) == [message])
            #expect(i.statistics.authenticationFailures == 1 && i.statistics.advertisementsReceived == 1, "\(message)")
        }
    }

    @Test func aMissingOrUnexpectedAHHeaderIsATypeMismatch() {
        var i = Self.instance()
        _ = i.receive(VRRPInstanceTests.packet(VRRPInstanceTests.advert(auth: .ah)), at: Self.s)
        var plain = VRRPInstance(VRRPInstanceTests.settings())
        _ = plain.start(at: 0)
        #expect(VRRPInstanceTests.logs(plain.receive(Self.received(sequence: 1), at: Self.s)) == ["(VI_1) Received AH header but auth type not AH"])
        #expect(i.statistics.authenticationTypeMismatch == 1 && plain.statistics.authenticationTypeMismatch == 1)
    }

    @Test func theMasterCountsOnFromWhatItSent() {
        var settings = VRRPInstanceTests.settings(priority: 255, auth: .ah)
        settings.authenticationKey = Self.key
        var i = VRRPInstance(settings)
        let first = i.start(at: 0)
        #expect(first.contains { if case .send(_, _, _, 1) = $0 { return true }; return false })
        let next = i.tick(at: Self.s)
        #expect(next.contains { if case .send(_, _, _, 2) = $0 { return true }; return false })
    }
}
