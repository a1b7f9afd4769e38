import LVSCore
import LVSPacket
import LinuxNet

/// What the fuzzer does with each input for the fwmark path: read as an NFLOG datagram, every
/// packet in it made into a frame and forwarded by a forwarder over a fwmark service; and the
/// input itself as an Ethernet header and IP packet.
public enum MarkedPacketFuzzing {
    public static func exercise(_ bytes: UnsafeRawBufferPointer) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: PacketEngine.stride, alignment: 64)
        defer { buffer.deallocate() }
        var forwarder = Forwarder(capacity: 64)
        defer { forwarder.release() }
        var table = fwmarkTable
        var missing: [IPAddress] = []
        func forward(_ header: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer, mark: UInt32) {
            for mtu in [68, 1500] {
                guard let length = MarkedPacket.prepare(into: buffer, start: PacketEngine.headroom, hardwareHeader: header, payload: payload,
                                                        mtu: mtu) else { continue }
                precondition(PacketEngine.headroom + length <= buffer.count, "a frame past its buffer")
                _ = forwarder.handle(buffer, start: PacketEngine.headroom, length: length, flags: 0, interface: 1, fwmark: mark, table: &table,
                                     hops: [:], missing: &missing, now: 0)
            }
        }
        PacketLogMessage.packets(in: bytes) { p in
            precondition(p.payload.count <= bytes.count && p.hardwareHeader.count <= bytes.count, "a view past the datagram")
            forward(p.hardwareHeader, p.payload, mark: p.mark)
        }
        if bytes.count >= 14 {
            forward(UnsafeRawBufferPointer(rebasing: bytes[0..<14]), UnsafeRawBufferPointer(rebasing: bytes[14...]), mark: 1)
        }
        precondition(table.connectionCount <= 64, "the table passed its bound")
    }

    /// A fwmark service over a DR and a NAT real server.
    static let fwmarkTable: IPVS = {
        var settings = IPVSSettings()
        settings.maxConnections = 64
        var t = IPVS(settings: settings)
        try? t.addService(VirtualService.Config(key: .fwmark(1, .inet), scheduler: "rr"))
        try? t.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0xAC10_0002), 0), forwarding: .gatewaying, weight: 1), to: .fwmark(1, .inet))
        try? t.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0xAC10_0003), 80), forwarding: .masquerade, weight: 1), to: .fwmark(1, .inet))
        return t
    }()
}
