import LVSCore
import LVSPacket
import Testing

@testable import LVSPacketEngine

/// NFLOG's packets made into frames with the virtio_net_hdr AF_PACKET would have given them.
@Suite struct MarkedPacketTests {
    static let a = IPAddress("192.168.122.100")!, b = IPAddress("192.168.122.50")!
    static let mac = MACAddress([2, 0, 0, 0, 0, 1])!

    /// An Ethernet header and a TCP packet with a complete checksum.
    static func tcp(payload: Int) -> (header: [UInt8], packet: [UInt8]) {
        let frame = FrameBuilder.tcp(sourceMAC: mac, destinationMAC: mac, source: a, destination: b, sourcePort: 40000, destinationPort: 80,
                                     flags: 0x18, payload: payload)
        return (Array(frame[0..<14]), Array(frame[14...]))
    }

    /// The same packet as a sender that left its checksum to the NIC writes it: the pseudo-header's sum.
    static func partial(_ packet: [UInt8], checksumAt: Int) -> [UInt8] {
        var p = packet
        let protocolNumber = p[9]
        let pseudo = Checksum.pseudoHeader(source: a, destination: b, protocolNumber: protocolNumber, length: p.count - 20)
        let folded = Checksum.fold(pseudo)
        p[20 + checksumAt] = UInt8(folded >> 8)
        p[20 + checksumAt + 1] = UInt8(folded & 0xFF)
        return p
    }

    func prepare(_ header: [UInt8], _ packet: [UInt8], mtu: Int = 1500) -> (Int?, VirtioHeader, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: 70_000)
        let length = buffer.withUnsafeMutableBytes { p in
            header.withUnsafeBytes { h in packet.withUnsafeBytes { MarkedPacket.prepare(into: p, start: 128, hardwareHeader: h, payload: $0, mtu: mtu) } }
        }
        let virtio = buffer.withUnsafeMutableBytes { VirtioHeader($0, at: 128 - VirtioHeader.size) }
        return (length, virtio, Array(buffer[128..<(128 + (length ?? 0))]))
    }

    @Test func aCompleteChecksumIsLeftAlone() {
        let (h, p) = Self.tcp(payload: 100)
        let (length, virtio, frame) = prepare(h, p)
        #expect(length == 14 + p.count)
        #expect(virtio == VirtioHeader())
        #expect(frame == h + p)
        #expect(FrameBuilder.checksumsValid(frame))
    }

    @Test func aChecksumLeftToTheNICIsMarkedForTheKernelToFinish() {
        let (h, p) = Self.tcp(payload: 100)
        let (_, virtio, frame) = prepare(h, Self.partial(p, checksumAt: 16))
        #expect(virtio.needsChecksum && virtio.checksumStart == 34 && virtio.checksumOffset == 16 && !virtio.isGSO)
        #expect(frame == h + Self.partial(p, checksumAt: 16), "the bytes are not changed")
    }

    @Test func aUDPChecksumLeftToTheNIC() {
        let frame = FrameBuilder.udp(sourceMAC: Self.mac, destinationMAC: Self.mac, source: Self.a, destination: Self.b, sourcePort: 5000,
                                     destinationPort: 53)
        let (_, virtio, _) = prepare(Array(frame[0..<14]), Self.partial(Array(frame[14...]), checksumAt: 6))
        #expect(virtio.needsChecksum && virtio.checksumStart == 34 && virtio.checksumOffset == 6)
    }

    @Test func aSuperPacketIsCutAtTheMSSTheMTUAllows() {
        let (h, p) = Self.tcp(payload: 20_000)
        for packet in [p, Self.partial(p, checksumAt: 16)] {
            let (length, virtio, frame) = prepare(h, packet)
            #expect(length == 14 + p.count)
            #expect(virtio.isGSO && virtio.gsoType == 1 && virtio.gsoSize == 1460 && virtio.headerLength == 54)
            #expect(virtio.needsChecksum && virtio.checksumStart == 34 && virtio.checksumOffset == 16)
            // Either way the checksum field now holds the pseudo-header's sum, for the kernel.
            #expect(Array(frame[14...]) == Self.partial(p, checksumAt: 16))
        }
    }

    @Test func whatIsNotAnEthernetFrameIsRefused() {
        let (h, p) = Self.tcp(payload: 10)
        #expect(prepare([], p).0 == nil, "no link-layer header (a tunnel device)")
        #expect(prepare(Array(h[0..<10]), p).0 == nil)
        // Garbage behind an Ethernet header is handed on as it is: the forwarder counts it.
        let (length, virtio, _) = prepare(h, [0x45, 0, 0])
        #expect(length == 17 && virtio == VirtioHeader())
    }
}
