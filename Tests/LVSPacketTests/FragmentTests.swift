import LVSCore
import Testing
@testable import LVSPacket

@Suite struct FragmentTests {
    /// A UDP datagram of `size` payload bytes, not DF, cut into fragments of `mtu`.
    func fragments(size: Int, mtu: Int) throws -> (whole: [UInt8], pieces: [[UInt8]]) {
        let whole = PacketBuilder(protocolNumber: IPProtocolNumber.udp, payload: (0..<size).map { UInt8(truncatingIfNeeded: $0 * 7) },
                                  dontFragment: false).frame()
        let stride = 2048
        var out = [UInt8](repeating: 0, count: stride * 64)
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        defer { lengths.deallocate() }
        let count = try #require(whole.withUnsafeBytes { b in
            out.withUnsafeMutableBytes { o in
                IPv4Fragmentation.fragment(b, try! Frame.parse(b).get(), mtu: mtu, into: o, stride: stride, headroom: 0, lengths: lengths, maximum: 64)
            }
        })
        return (whole, (0..<count).map { Array(out[($0 * stride)..<($0 * stride + lengths[$0])]) })
    }

    func add(_ r: inout IPv4Reassembler, _ piece: [UInt8], now: Int64 = 0) -> [UInt8]? {
        piece.withUnsafeBytes { b in r.add(b, try! Frame.parse(b).get(), now: now) }
    }

    @Test func fragmentsReadAsFragmentsAndReassembleInAnyOrder() throws {
        let (whole, pieces) = try fragments(size: 4000, mtu: 1500)
        #expect(pieces.count == 3)
        for (i, p) in pieces.enumerated() {
            let f = try p.withUnsafeBytes { try Frame.parse($0).get() }
            #expect(f.fragment == (i == 0 ? .first : .later) && f.ipLength <= 1500)
        }
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]] {
            var r = IPv4Reassembler()
            var result: [UInt8]?
            for (k, i) in order.enumerated() {
                result = add(&r, pieces[i])
                #expect((result != nil) == (k == order.count - 1))
            }
            #expect(result.map { Array(whole[14...]) == $0 } == true, "order \(order)")
            #expect(r.pending == 0)
        }
    }

    @Test func duplicateFragmentsAreHarmless() throws {
        let (whole, pieces) = try fragments(size: 3000, mtu: 1000)
        var r = IPv4Reassembler()
        _ = add(&r, pieces[0]); _ = add(&r, pieces[0]); _ = add(&r, pieces[1])
        var last: [UInt8]?
        for p in pieces.dropFirst(2) { last = add(&r, p) }
        #expect(last == Array(whole[14...]))
    }

    @Test func incompleteDatagramsTimeOutAndTheTableIsBounded() throws {
        let (_, pieces) = try fragments(size: 3000, mtu: 1500)
        var r = IPv4Reassembler(maximum: 2, timeout: 1000)
        _ = add(&r, pieces[0], now: 0)
        #expect(r.pending == 1)
        r.expire(now: 2000)
        #expect(r.pending == 0 && r.abandoned == 1)
        var other = pieces[0]
        for id: UInt8 in 1...3 {
            other[19] = id
            other.withUnsafeMutableBytes { p in
                p.setU16(24, 0)
                p.setU16(24, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 14, count: 20)))
            }
            _ = add(&r, other, now: 3000)
        }
        #expect(r.pending == 2 && r.abandoned == 2, "the oldest goes when the table is full")
    }

    @Test func dfDatagramsAreNotFragmented() {
        let b = PacketBuilder(payload: Array(repeating: 1, count: 3000)).frame()
        var out = [UInt8](repeating: 0, count: 4096 * 4)
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        defer { lengths.deallocate() }
        let n = b.withUnsafeBytes { bb in out.withUnsafeMutableBytes { IPv4Fragmentation.fragment(bb, try! Frame.parse(bb).get(), mtu: 1500, into: $0, stride: 4096, headroom: 0, lengths: lengths, maximum: 4) } }
        #expect(n == nil)
    }
}
