import LVSCore
import Testing
@testable import VRRP

@Suite struct VRRPAdvertisementTests {
    static let vip = IPAddress("192.168.122.50")!

    @Test func aVersion2AdvertWithAPasswordHasRFC3768sLayout() {
        let a = VRRPAdvertisement(version: 2, virtualRouterID: 51, priority: 100, interval: 1, addresses: [Self.vip],
                                  authentication: .password(Array("1111".utf8)))
        let b = a.encode()
        #expect(b.count == 8 + 4 + 8)
        #expect(Array(b[0..<6]) == [0x21, 51, 100, 1, 1, 1])
        #expect(Array(b[8..<12]) == [192, 168, 122, 50])
        #expect(Array(b[12...]) == Array("1111".utf8) + [0, 0, 0, 0])
        // The checksum makes the whole message sum to all ones.
        var sum: UInt32 = 0
        for i in stride(from: 0, to: b.count, by: 2) { sum += UInt32(b[i]) << 8 | UInt32(b[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        #expect(sum == 0xFFFF)
        #expect(VRRPAdvertisement.decode(b) == .success(a))
    }

    @Test func version3CarriesCentisecondsAndChecksTheIPv4PseudoHeader() {
        let src = IPAddress("192.168.122.30")!, dst = IPAddress("224.0.0.18")!
        let a = VRRPAdvertisement(version: 3, virtualRouterID: 7, priority: 200, interval: 10, addresses: [Self.vip, IPAddress("10.0.0.1")!])
        let b = a.encode(source: src, destination: dst)
        #expect(b.count == 8 + 8)
        #expect(b[0] == 0x31 && b[4] == 0 && b[5] == 10)
        #expect(VRRPAdvertisement.decode(b, source: src, destination: dst) == .success(a))
        #expect(VRRPAdvertisement.decode(b, source: IPAddress("192.168.122.31")!, destination: dst) == .failure(.badChecksum),
                "another sender: the pseudo-header no longer matches")
        let long = VRRPAdvertisement(version: 3, virtualRouterID: 7, priority: 200, interval: 4095, addresses: [Self.vip])
        #expect(VRRPAdvertisement.decode(long.encode(source: src, destination: dst), source: src, destination: dst).map(\.interval) == .success(4095))
    }

    @Test func version3OverIPv6() {
        let src = IPAddress("fe80::1")!, dst = IPAddress("ff02::12")!
        let a = VRRPAdvertisement(version: 3, virtualRouterID: 9, priority: 255, interval: 100, addresses: [IPAddress("2001:db8::50")!])
        let b = a.encode(source: src, destination: dst)
        #expect(b.count == 8 + 16)
        #expect(VRRPAdvertisement.decode(b, v6: true, source: src, destination: dst) == .success(a))
    }

    @Test func badAdvertsAreNamed() {
        let good = VRRPAdvertisement(version: 2, virtualRouterID: 1, priority: 100, interval: 1, addresses: [Self.vip]).encode()
        #expect(VRRPAdvertisement.decode(Array(good[..<5])) == .failure(.truncated(5)))
        var v = good; v[0] = 0x41
        #expect(VRRPAdvertisement.decode(v) == .failure(.badVersion(4)))
        var t = good; t[0] = 0x22
        #expect(VRRPAdvertisement.decode(t) == .failure(.badType(2)))
        var c = good; c[9] ^= 1
        #expect(VRRPAdvertisement.decode(c) == .failure(.badChecksum))
        var n = good; n[3] = 5
        #expect(VRRPAdvertisement.decode(n) == .failure(.badAddressCount))
        #expect(VRRPAdvertisement.decode(good, v6: true) == .failure(.badAddressCount))
    }

    @Test func everyTruncationAndRandomBytesAreRefusedWithoutCrashing() {
        let good = VRRPAdvertisement(version: 2, virtualRouterID: 1, priority: 100, interval: 1, addresses: [Self.vip, IPAddress("10.1.1.1")!],
                                     authentication: .password([1, 2, 3])).encode()
        for k in 0..<good.count {
            if case .success = VRRPAdvertisement.decode(Array(good[..<k])) { Issue.record("a cut advert of \(k) bytes was taken") }
        }
        var state: UInt64 = 42
        for _ in 0..<5000 {
            let bytes = (0..<Int(state % 64)).map { _ -> UInt8 in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return UInt8(truncatingIfNeeded: state >> 33)
            }
            _ = VRRPAdvertisement.decode(bytes, v6: state & 1 == 0, source: Self.vip, destination: Self.vip)
            state &+= 1
        }
    }
}
