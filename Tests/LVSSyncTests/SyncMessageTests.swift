import LVSCore
import Testing

@testable import LVSSync

@Suite struct SyncMessageTests {
    static let tcp = IPProtocol.tcp.rawValue
    static let udp = IPProtocol.udp.rawValue

    static func v4(_ text: String) -> IPAddress { IPAddress(text)! }

    static func entry(_ i: Int, v6: Bool = false, flags: UInt32 = 0x0081, state: UInt16 = 1) -> SyncedConnection {
        let client = v6 ? IPAddress("2001:db8::\(String(i, radix: 16))")! : IPAddress(v4: 0x0A00_0000 | UInt32(i & 0xFFFFFF))
        return SyncedConnection(
            protocolNumber: tcp, flags: flags, state: state, client: client, clientPort: UInt16(truncatingIfNeeded: 1024 + i),
            virtual: v6 ? IPAddress("2001:db8:1::100")! : v4("192.168.0.100"), virtualPort: 80,
            destination: v6 ? IPAddress("2001:db8:2::2")! : v4("172.16.0.2"), destinationPort: 8080, fwmark: 0, timeout: 900)
    }

    /// What the decoder hands on: the backup mask and SYNC applied.
    static func received(_ s: SyncedConnection) -> SyncedConnection {
        var r = s
        r.flags = s.flags & SyncedConnection.backupMask | ConnectionFlags.sync.rawValue
        return r
    }

    @Test func version1IPv4EntryLayout() {
        let s = SyncedConnection(protocolNumber: Self.tcp, flags: 0x0141 | 0x0040, state: 1, client: Self.v4("10.0.0.1"), clientPort: 0x1234,
                                 virtual: Self.v4("10.0.0.100"), virtualPort: 80, destination: Self.v4("10.0.0.20"), destinationPort: 8080,
                                 fwmark: 7, timeout: 900)
        let m = SyncMessageWriter.messages([s], syncID: 9, maxLength: 1472)
        #expect(m.count == 1)
        let expected: [UInt8] = [
            0, 9, 0, 44, 1, 1, 0, 0,  // header: reserved, syncid, size 44, 1 entry, version 1, spare
            0, 6, 0, 36,  // type IPv4, TCP, version 0 / size 36
            0, 0, 0x01, 0x01,  // flags without HASHED (0x40)
            0, 1,  // ESTABLISHED
            0x12, 0x34, 0, 80, 0x1F, 0x90,  // cport, vport, dport
            0, 0, 0, 7,  // fwmark
            0, 0, 0x03, 0x84,  // timeout 900 s
            10, 0, 0, 1, 10, 0, 0, 100, 10, 0, 0, 20,
        ]
        #expect(m[0] == expected)
        let d = SyncMessage.decode(m[0])
        #expect(d.refused == nil && d.version == 1 && d.syncID == 9)
        #expect(d.entries == [Self.received(s)])
    }

    @Test func version1IPv6EntryAndOptions() {
        var s = Self.entry(5, v6: true, flags: 0x0600 | 0x0001)
        s.sequence = SyncSequence(inInitial: 1, inDelta: 2, inPreviousDelta: 3, outInitial: 4, outDelta: 5, outPreviousDelta: 6)
        s.persistenceEngineName = "sip"
        s.persistenceEngineData = Array("call-id@host".utf8)
        let length = SyncMessage.entryLength(s)
        #expect(length == 72 + 26 + 14 + 5)
        let m = SyncMessageWriter.messages([s, Self.entry(6)], syncID: 1, maxLength: 1472)
        #expect(m.count == 1)
        let bytes = m[0]
        #expect(bytes[8] == 1 && Int(bytes[10]) << 8 | Int(bytes[11]) == length)
        // The second entry starts on the next 4-byte boundary, after zero padding.
        let second = 8 + (length + 3) & ~3
        #expect(bytes.count == second + 36)
        #expect(bytes[(8 + length)..<second].allSatisfy { $0 == 0 })
        let d = SyncMessage.decode(bytes)
        #expect(d.refused == nil && d.skipped.isEmpty)
        #expect(d.entries == [Self.received(s), Self.received(Self.entry(6))])
    }

    @Test func roundTripsEveryShape() {
        var all: [SyncedConnection] = []
        for i in 0..<600 {
            var s = Self.entry(i, v6: i % 3 == 0, flags: UInt32([0x0081, 0x0100 | 0x0080 | 0x0002, 0x1000, 0x0800 | 0x0003][i % 4]),
                               state: UInt16(i % 11))
            s.protocolNumber = [Self.tcp, Self.udp, IPProtocol.sctp.rawValue][i % 3]
            if s.protocolNumber == Self.udp { s.state = 0 }
            s.fwmark = UInt32(i % 5)
            s.timeout = UInt32(i * 7)
            if i % 7 == 0 {
                s.flags |= 0x0400
                s.sequence = SyncSequence(inInitial: UInt32(i), inDelta: 1, inPreviousDelta: 2, outInitial: 3, outDelta: 4, outPreviousDelta: 5)
            }
            all.append(s)
        }
        for maxLength in [1, 100, 512, 1472, 9000, 65507] {
            let messages = SyncMessageWriter.messages(all, syncID: 3, maxLength: maxLength)
            var decoded: [SyncedConnection] = []
            for m in messages {
                #expect(m.count <= max(maxLength, 8 + 72 + 26))
                let d = SyncMessage.decode(m, ownSyncID: 3)
                #expect(d.refused == nil && d.skipped.isEmpty)
                #expect(d.entries.count <= 255)
                decoded += d.entries
            }
            #expect(decoded == all.map(Self.received), "maxLength \(maxLength)")
        }
    }

    @Test func capacityOfAKernelSizedMessage() {
        // 1472 bytes (MTU 1500): 8 + 40 × 36 = 1448, so 40 IPv4 entries; 20 IPv6 (8 + 20 × 72 = 1448).
        let v4 = SyncMessageWriter.messages((0..<100).map { Self.entry($0) }, syncID: 0, maxLength: 1472)
        #expect(v4.map { Int($0[4]) } == [40, 40, 20])
        #expect(v4[0].count == 1448)
        let v6 = SyncMessageWriter.messages((0..<30).map { Self.entry($0, v6: true) }, syncID: 0, maxLength: 1472)
        #expect(v6.map { Int($0[4]) } == [20, 10])
        // A large message stops at 255 entries.
        let big = SyncMessageWriter.messages((0..<600).map { Self.entry($0) }, syncID: 0, maxLength: 65507)
        #expect(big.map { Int($0[4]) } == [255, 255, 90])
    }

    @Test func version0Layout() {
        var s = Self.entry(1, flags: 0x1_0081)
        s.state = 5
        let m = SyncMessageWriter.messages([s, Self.entry(2, v6: true)], version: 0, syncID: 4, maxLength: 1472)
        #expect(m.count == 1)
        let expected: [UInt8] = [
            1, 4, 0, 28,  // one entry, syncid 4, size 28
            0, 6, 0x04, 0x01, 0, 80, 0x1F, 0x90,  // reserved, TCP, cport 1025, vport, dport
            10, 0, 0, 1, 192, 168, 0, 100, 172, 16, 0, 2,
            0, 0x81, 0, 5,  // flags (low 16 bits), TIME_WAIT
        ]
        #expect(m[0] == expected)
        let d = SyncMessage.decode(m[0])
        #expect(d.version == 0 && d.refused == nil)
        var r = s
        r.flags = 0x0081 | 0x20
        r.fwmark = 0
        r.timeout = 0
        #expect(d.entries == [r])
        // 24-byte entries: (1472 − 4) / 24 = 61 in one message.
        let many = SyncMessageWriter.messages((0..<100).map { Self.entry($0) }, version: 0, syncID: 0, maxLength: 1472)
        #expect(many.map { Int($0[0]) } == [61, 39])
    }

    @Test func refusesWholeMessages() {
        let good = SyncMessageWriter.messages([Self.entry(1), Self.entry(2)], syncID: 7, maxLength: 1472)[0]
        #expect(SyncMessage.decode(Array(good.prefix(3))).refused == .tooShort)
        #expect(SyncMessage.decode(Array(good.dropLast())).refused == .badSize)
        #expect(SyncMessage.decode(good + [0]).refused == .badSize)
        #expect(SyncMessage.decode(good, ownSyncID: 8).refused == .otherSyncID)
        #expect(SyncMessage.decode(good, ownSyncID: 0).entries.count == 2)
        // More entries announced than the message holds.
        var more = good
        more[4] = 3
        let d = SyncMessage.decode(more)
        #expect(d.refused == .truncated && d.entries.count == 2)
        // An entry whose size runs past the end.
        var long = good
        long[8 + 36 + 3] = 40
        #expect(SyncMessage.decode(long).refused == .truncated)
        // An entry of an unknown version.
        var version = good
        version[10] |= 0x10
        #expect(SyncMessage.decode(version).refused == .unknownEntryVersion)
        // Type bits other than IPv6.
        var type = good
        type[8] = 2
        #expect(SyncMessage.decode(type).refused == .badEntryType)
    }

    /// A message with one entry followed by raw option bytes.
    static func withOptions(_ options: [UInt8]) -> [UInt8] {
        var m = SyncMessageWriter.messages([entry(1)], syncID: 0, maxLength: 1472)[0]
        let size = 36 + options.count
        m[10] = UInt8(size >> 8)
        m[11] = UInt8(size & 0xFF)
        m += options
        m[2] = UInt8(m.count >> 8)
        m[3] = UInt8(m.count & 0xFF)
        return m
    }

    @Test func options() {
        // Zero length, overrun, wrong sequence size: the message goes.
        #expect(SyncMessage.decode(Self.withOptions([1, 0])).refused == .badOption)
        #expect(SyncMessage.decode(Self.withOptions([2, 9, 1, 2])).refused == .badOption)
        #expect(SyncMessage.decode(Self.withOptions([1, 4, 0, 0, 0, 0])).refused == .badOption)
        #expect(SyncMessage.decode(Self.withOptions([7])).refused == .badOption)
        // An unknown option marked skippable is skipped; an unknown mandatory one drops the entry.
        #expect(SyncMessage.decode(Self.withOptions([0x47, 2, 9, 9])).entries.count == 1)
        let mandatory = SyncMessage.decode(Self.withOptions([7, 2, 9, 9]))
        #expect(mandatory.refused == nil && mandatory.entries.isEmpty && mandatory.skipped == [.mandatoryOption])
        // A persistence engine other than SIP.
        let pe = SyncMessage.decode(Self.withOptions([3, 3] + Array("foo".utf8)))
        #expect(pe.entries.isEmpty && pe.skipped == [.unknownPersistenceEngine])
        // A duplicated option.
        #expect(SyncMessage.decode(Self.withOptions([3, 3] + Array("sip".utf8) + [3, 3] + Array("sip".utf8))).refused == .badOption)
    }

    @Test func skipsEntriesIPVSCannotHold() {
        var icmp = Self.entry(1)
        icmp.protocolNumber = 1
        var badState = Self.entry(2)
        badState.state = 11
        var udpState = Self.entry(3)
        udpState.protocolNumber = Self.udp
        udpState.state = 1
        var template = Self.entry(4, flags: 0x1000)
        template.protocolNumber = 0
        template.state = 1
        let m = SyncMessageWriter.messages([icmp, badState, Self.entry(5), udpState, template], syncID: 0, maxLength: 1472)[0]
        let d = SyncMessage.decode(m)
        #expect(d.skipped == [.unknownProtocol, .invalidState, .invalidState])
        #expect(d.entries == [Self.received(Self.entry(5)), Self.received(template)])
    }

    @Test func survivesEveryTruncationAndBitFlip() {
        let m = SyncMessageWriter.messages([Self.entry(1, v6: true, flags: 0x0601), Self.entry(2)], syncID: 0, maxLength: 1472)[0]
        for n in 0...m.count {
            let d = SyncMessage.decode(Array(m.prefix(n)))
            if n < m.count { #expect(d.refused != nil) }
        }
        var rng = SplitMix(seed: 0x5EED)
        for _ in 0..<20_000 {
            var b = m
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 0..<b.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
            let d = SyncMessage.decode(b)
            #expect(d.entries.count <= 2)
        }
    }
}

/// A deterministic generator for the mutation test.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
