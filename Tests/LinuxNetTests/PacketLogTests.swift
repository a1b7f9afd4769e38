import Testing

@testable import LinuxNet

/// NFLOG's messages: what lvsd sends to bind a group, and the packets it reads back.
@Suite struct PacketLogTests {
    @Test func configurationMessages() {
        let m = PacketLogMessage.configuration(group: 0x4C56)
        #expect(m.count == 3)
        // nlmsghdr (28 bytes, NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG, REQUEST|ACK), nfgenmsg (AF_UNSPEC, v0,
        // group big-endian), NFULA_CFG_CMD = BIND padded to 4.
        #expect(m[0] == [28, 0, 0, 0, 0x01, 0x04, 0x05, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x4C, 0x56, 5, 0, 1, 0, 1, 0, 0, 0])
        // NFULA_CFG_MODE: copy range 0xffff (big-endian), NFULNL_COPY_PACKET.
        #expect(Array(m[1][20...]) == [10, 0, 2, 0, 0, 0, 0xFF, 0xFF, 2, 0, 0, 0])
        // NFULA_CFG_QTHRESH 1 and NFULA_CFG_TIMEOUT 0.
        #expect(Array(m[2][20...]) == [8, 0, 5, 0, 0, 0, 0, 1, 8, 0, 4, 0, 0, 0, 0, 0])
        for message in m { #expect(Int(message[0]) == message.count) }
    }

    static func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
        var a = [UInt8(4 + value.count), 0, UInt8(type & 0xFF), UInt8(type >> 8)] + value
        while a.count % 4 != 0 { a.append(0) }
        return a
    }

    static func message(type: UInt16 = 0x0400, family: UInt8 = 2, _ attributes: [[UInt8]]) -> [UInt8] {
        let body: [UInt8] = [family, 0, 0x4C, 0x56] + attributes.flatMap { $0 }
        let length = 16 + body.count
        return [UInt8(length & 0xFF), UInt8(length >> 8), 0, 0, UInt8(type & 0xFF), UInt8(type >> 8), 0, 0] + [UInt8](repeating: 0, count: 8) + body
    }

    @Test func packetsAreReadWithTheirMarkInterfaceAndHeaders() {
        let ethernet = [UInt8](repeating: 0xAA, count: 14)
        let ip: [UInt8] = [0x45, 0, 0, 20] + [UInt8](repeating: 1, count: 16)
        let first = Self.message([Self.attribute(1, [0x08, 0x00, 0, 0]), Self.attribute(2, [0, 0, 0, 7]), Self.attribute(4, [0, 0, 0, 3]),
                                  Self.attribute(16, ethernet), Self.attribute(9, ip)])
        // The kernel may set NLA_F_NET_BYTEORDER on a type; a second packet without a hardware header.
        let second = Self.message(family: 10, [Self.attribute(2 | 0x4000, [0, 0, 1, 0]), Self.attribute(9, [0x60, 0, 0, 0])])
        let notAPacket = Self.message(type: 2, [])
        let datagram = first + second + notAPacket
        var seen: [(UInt8, UInt32, Int32, [UInt8], [UInt8])] = []
        let skipped = datagram.withUnsafeBytes { d in
            PacketLogMessage.packets(in: d) { p in seen.append((p.family, p.mark, p.inputInterface, Array(p.hardwareHeader), Array(p.payload))) }
        }
        #expect(skipped == 1)
        #expect(seen.count == 2)
        #expect(seen[0].0 == 2 && seen[0].1 == 7 && seen[0].2 == 3 && seen[0].3 == ethernet && seen[0].4 == ip)
        #expect(seen[1].0 == 10 && seen[1].1 == 256 && seen[1].3.isEmpty && seen[1].4 == [0x60, 0, 0, 0])
    }

    @Test func truncatedAndHostileMessagesNeverReadPastTheDatagram() {
        let good = Self.message([Self.attribute(2, [0, 0, 0, 7]), Self.attribute(9, [1, 2, 3, 4])])
        for cut in 0..<good.count {
            let count = Array(good[0..<cut]).withUnsafeBytes { d in
                var n = 0
                PacketLogMessage.packets(in: d) { _ in n += 1 }
                return n
            }
            #expect(count == 0, "cut at \(cut)")
        }
        // An attribute claiming more than its message has, and one of length 0.
        var lying = good
        lying[20] = 200
        var zero = good
        zero[20] = 0
        for bad in [lying, zero] {
            _ = bad.withUnsafeBytes { d in PacketLogMessage.packets(in: d) { p in #expect(p.payload.count <= 4) } }
        }
    }

    @Test func acknowledgements() {
        var ack = [UInt8](repeating: 0, count: 36)
        ack[0] = 36
        ack[4] = 2  // NLMSG_ERROR
        ack[8] = 9  // sequence 9
        let ok = ack.withUnsafeBytes { PacketLogMessage.acknowledgement($0, sequence: 9) }
        #expect(ok == 0)
        let other = ack.withUnsafeBytes { PacketLogMessage.acknowledgement($0, sequence: 8) }
        #expect(other == nil)
        ack[16] = 0xF0; ack[17] = 0xFF; ack[18] = 0xFF; ack[19] = 0xFF  // -16: EBUSY
        let busy = ack.withUnsafeBytes { PacketLogMessage.acknowledgement($0, sequence: 9) }
        #expect(busy == -16)
    }
}
