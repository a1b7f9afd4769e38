import LVSCore
import LVSPacket

/// A packet NFLOG handed over for a fwmark service, made into what the forwarder takes from
/// AF_PACKET: its Ethernet header and IP packet in a buffer, with the virtio_net_hdr AF_PACKET
/// would have given it. NFLOG copies the bytes only, so what the header would say is read off the
/// packet itself:
/// - a TCP or UDP checksum the sender left to the NIC (CHECKSUM_PARTIAL: the field holds the
///   pseudo-header's sum, as Linux writes it for offload) is marked NEEDS_CSUM, for the kernel to
///   finish when it is sent; a complete one is left as it is;
/// - a TCP packet longer than the interface's MTU is a GRO/TSO super-packet: it is marked for
///   segmentation at the MSS the MTU allows.
public enum MarkedPacket {
    /// Writes the frame at `start` in `buffer` (its virtio_net_hdr before it); returns the frame's
    /// length, or nil if it does not fit or is not an IP packet behind an Ethernet header.
    public static func prepare(into buffer: UnsafeMutableRawBufferPointer, start: Int, hardwareHeader: UnsafeRawBufferPointer,
                               payload: UnsafeRawBufferPointer, mtu: Int) -> Int? {
        // An Ethernet header, or one with an 802.1Q tag (a VLAN device without tag offload).
        let h = hardwareHeader.count
        guard h == 14 || (h == 18 && hardwareHeader[12] == 0x81 && hardwareHeader[13] == 0x00) else { return nil }
        guard start >= VirtioHeader.size, start + h + payload.count <= buffer.count else { return nil }
        UnsafeMutableRawBufferPointer(rebasing: buffer[start..<(start + h)]).copyMemory(from: hardwareHeader)
        UnsafeMutableRawBufferPointer(rebasing: buffer[(start + h)..<(start + h + payload.count)]).copyMemory(from: payload)
        let length = h + payload.count
        var virtio = VirtioHeader()
        defer { virtio.write(to: buffer, at: start - VirtioHeader.size) }
        guard case .success(let frame) = Frame.parse(UnsafeRawBufferPointer(rebasing: buffer[start..<(start + length)])),
              frame.fragment == .none else { return length }
        let checksumOffset: Int
        switch frame.protocolNumber {
        case IPProtocolNumber.tcp: checksumOffset = 16
        case IPProtocolNumber.udp: checksumOffset = 6
        default: return length
        }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + length)])
        let segmentLength = frame.end - frame.transport
        let pseudo = Checksum.pseudoHeader(source: frame.source, destination: frame.destination, protocolNumber: frame.protocolNumber,
                                           length: segmentLength)
        let field = UInt16(bytes[frame.transport + checksumOffset]) << 8 | UInt16(bytes[frame.transport + checksumOffset + 1])
        let whole = Checksum.fold(Checksum.sum(bytes, from: frame.transport, count: segmentLength, initial: pseudo))
        if whole != 0xFFFF && field == Checksum.fold(pseudo) {
            virtio.flags = 1  // VIRTIO_NET_HDR_F_NEEDS_CSUM
            virtio.checksumStart = UInt16(frame.transport)
            virtio.checksumOffset = UInt16(checksumOffset)
        }
        if frame.protocolNumber == IPProtocolNumber.tcp && frame.ipLength > mtu {
            let tcpHeader = Int(bytes[frame.transport + 12] >> 4) * 4
            let headers = frame.transport - frame.network + tcpHeader
            guard mtu > headers + 64 else { return length }
            virtio.gsoType = frame.isV6 ? 4 : 1  // VIRTIO_NET_HDR_GSO_TCPV6 / _TCPV4
            virtio.gsoSize = UInt16(mtu - headers)
            virtio.headerLength = UInt16(frame.transport + tcpHeader)
            if virtio.flags == 0 {
                // Segmentation needs the checksum left to the kernel: turn the complete one back
                // into the pseudo-header's sum it started from.
                let folded = Checksum.fold(pseudo)
                buffer[start + frame.transport + checksumOffset] = UInt8(folded >> 8)
                buffer[start + frame.transport + checksumOffset + 1] = UInt8(folded & 0xFF)
                virtio.flags = 1
                virtio.checksumStart = UInt16(frame.transport)
                virtio.checksumOffset = UInt16(checksumOffset)
            }
        }
        return length
    }
}
