import LVSCore
import Testing
@testable import LVSPacket

@Suite struct FrameTests {
    func parse(_ bytes: [UInt8]) -> Result<Frame, FrameError> { bytes.withUnsafeBytes { Frame.parse($0) } }

    @Test func aTCPSegmentIsRead() throws {
        let f = try parse(PacketBuilder().frame()).get()
        #expect(f.network == 14 && f.transport == 34 && f.end == 34 + 20 + 5)
        #expect(f.source == IPAddress("10.0.0.2")! && f.destination == IPAddress("207.175.44.110")!)
        #expect(f.sourcePort == 40000 && f.destinationPort == 8080 && f.tcpFlags == .syn)
        #expect(f.hopLimit == 64 && f.dontFragment && f.fragment == .none && !f.isV6)
        let s = f.summary(fwmark: 7)
        #expect(s.protocolNumber == 6 && s.length == 45 && s.fwmark == 7)
    }

    @Test func ipv6UDPAndExtensionHeadersAreRead() throws {
        var b = PacketBuilder(source: IPAddress("2001:db8::2")!, destination: IPAddress("2001:db8::100")!, protocolNumber: IPProtocolNumber.udp)
        let f = try parse(b.frame()).get()
        #expect(f.isV6 && f.transport == 54 && f.destinationPort == 8080 && f.protocolNumber == 17)
        // The same datagram behind a hop-by-hop options header (8 bytes: next header, length 0, padding).
        var bytes = b.frame()
        let udp = Array(bytes[54...])
        bytes = Array(bytes[..<54]) + [17, 0, 1, 4, 0, 0, 0, 0] + udp
        bytes[20] = 0
        bytes[18] = 0; bytes[19] = UInt8(8 + udp.count)
        let g = try parse(bytes).get()
        #expect(g.transport == 62 && g.protocolNumber == 17 && g.destinationPort == 8080)
        b.protocolNumber = IPProtocolNumber.sctp
        let s = try parse(b.frame()).get()
        #expect(s.sctpChunk == .initChunk)
    }

    @Test func aVLANTagIsSkipped() throws {
        let f = try parse(PacketBuilder(vlan: 42).frame()).get()
        #expect(f.vlan == 42 && f.network == 18 && f.destinationPort == 8080)
    }

    @Test func ipOptionsMoveTheTransportHeader() throws {
        let f = try parse(PacketBuilder(options: [1, 1, 1, 0]).frame()).get()
        #expect(f.transport == 38 && f.destinationPort == 8080)
    }

    @Test func fragmentsAreTold() throws {
        var bytes = PacketBuilder().frame()
        func refragment(_ value: UInt16) -> [UInt8] {
            var c = bytes
            c[20] = UInt8(value >> 8); c[21] = UInt8(value & 0xFF)
            c[24] = 0; c[25] = 0
            c.withUnsafeMutableBytes { p in p.setU16(24, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 14, count: 20))) }
            return c
        }
        #expect(try parse(refragment(0x2000)).get().fragment == .first)
        let later = try parse(refragment(0x0010)).get()
        #expect(later.fragment == .later && later.destinationPort == 0, "no ports in a later fragment")
        bytes = refragment(0)
        #expect(try parse(bytes).get().fragment == .none)
    }

    @Test func everyTruncationIsRefusedAndNothingReadsPastTheEnd() {
        for builder in [PacketBuilder(), PacketBuilder(protocolNumber: IPProtocolNumber.udp),
                        PacketBuilder(source: IPAddress("2001:db8::2")!, destination: IPAddress("2001:db8::1")!)] {
            let whole = builder.frame()
            for n in 0..<whole.count {
                // The bytes end early, and the IP length still claims the whole datagram.
                let cut = Array(whole[..<n])
                if case .success = parse(cut) { Issue.record("a frame cut to \(n) of \(whole.count) bytes was read") }
            }
        }
    }

    @Test func malformedHeadersAreNamed() {
        var b = PacketBuilder().frame()
        #expect(parse(Array(b[..<10])) == .failure(.truncatedEthernet))
        var arp = b
        arp[12] = 0x08; arp[13] = 0x06
        #expect(parse(arp) == .failure(.notIP))
        var version = b
        version[14] = 0x65
        #expect(parse(version) == .failure(.badVersion))
        var ihl = b
        ihl[14] = 0x44
        #expect(parse(ihl) == .failure(.badHeaderLength))
        var total = b
        total[16] = 0xFF
        #expect(parse(total) == .failure(.badTotalLength))
        var sum = b
        sum[22] ^= 1
        #expect(parse(sum) == .failure(.badIPChecksum))
        b = PacketBuilder(payload: []).frame()
        b[46] = 0x40 // TCP data offset 4 words
        #expect(parse(b) == .failure(.badTransportHeader))
        var udp = PacketBuilder(protocolNumber: IPProtocolNumber.udp).frame()
        udp[38] = 0xFF // UDP length longer than the datagram
        #expect(parse(udp) == .failure(.badTransportHeader))
    }

    @Test func randomBytesNeverCrashTheParser() {
        var state: UInt64 = 0x1234_5678_9ABC_DEF0
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        let base = PacketBuilder().frame()
        for round in 0..<20_000 {
            var bytes = round % 2 == 0 ? base : (0..<Int(next())).map { _ in next() }
            if round % 2 == 0 {
                for _ in 0..<3 { bytes[Int(next()) % bytes.count] = next() }
            }
            if case .success(let f) = parse(bytes) {
                #expect(f.network <= f.transport && f.transport <= f.end && f.end <= bytes.count)
            }
        }
    }
}

@Suite struct ChecksumTests {
    @Test func incrementalUpdateMatchesRecomputing() {
        var state: UInt64 = 99
        func word() -> UInt16 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt16(truncatingIfNeeded: state >> 40)
        }
        for _ in 0..<2000 {
            var words = (0..<10).map { _ in word() }
            let bytes = words.flatMap(be16)
            let before = bytes.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: 20)) }
            let i = Int(word()) % 10
            let old = words[i]
            words[i] = word()
            let after = words.flatMap(be16).withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: 20)) }
            let adjusted = Checksum.adjust(before, old: old, new: words[i])
            // 0x0000 and 0xFFFF are the same number in one's complement.
            #expect(adjusted == after || (adjusted == 0 && after == 0xFFFF) || (adjusted == 0xFFFF && after == 0))
        }
    }

    @Test func oddLengthsPadWithZero() {
        #expect(([0x01, 0x02, 0x03] as [UInt8]).withUnsafeBytes { Checksum.sum($0, from: 0, count: 3) } == 0x0102 + 0x0300)
    }

    @Test func sctpCRC32cMatchesTheRFC3720Vector() {
        let zeros = [UInt8](repeating: 0, count: 32)
        #expect(zeros.withUnsafeBytes { SCTPChecksum.crc32c($0, from: 0, count: 32, zeroing: 100) } == 0x8A91_36AA)
    }
}
