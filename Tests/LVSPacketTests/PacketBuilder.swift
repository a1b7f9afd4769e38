import LVSCore
@testable import LVSPacket

/// Builds test frames with correct lengths and checksums.
struct PacketBuilder {
    var sourceMAC = MACAddress(2, 0, 0, 0, 0, 1)
    var destinationMAC = MACAddress(2, 0, 0, 0, 0, 2)
    var source = IPAddress("10.0.0.2")!
    var destination = IPAddress("207.175.44.110")!
    var protocolNumber = IPProtocolNumber.tcp
    var sourcePort: UInt16 = 40000
    var destinationPort: UInt16 = 8080
    var flags: UInt8 = 0x02
    var payload: [UInt8] = Array("hello".utf8)
    var ttl: UInt8 = 64
    var dontFragment = true
    var options: [UInt8] = []
    var udpChecksum = true
    var vlan: UInt16?

    var isV6: Bool { source.isV6 }

    func transportBytes() -> [UInt8] {
        var t: [UInt8]
        switch protocolNumber {
        case IPProtocolNumber.tcp:
            t = be16(sourcePort) + be16(destinationPort) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0] + payload
        case IPProtocolNumber.udp:
            t = be16(sourcePort) + be16(destinationPort) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
        case IPProtocolNumber.sctp:
            t = be16(sourcePort) + be16(destinationPort) + [0, 0, 0, 1, 0, 0, 0, 0] + [1, 0, 0, 4] + payload
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6:
            t = payload
        default:
            t = payload
        }
        let length = t.count
        t.withUnsafeMutableBytes { p in
            let pseudo = Checksum.pseudoHeader(source: source, destination: destination, protocolNumber: protocolNumber, length: length)
            switch protocolNumber {
            case IPProtocolNumber.tcp:
                p.setU16(16, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 0, count: length, initial: pseudo)))
            case IPProtocolNumber.udp where udpChecksum || isV6:
                var c = Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 0, count: length, initial: pseudo))
                if c == 0 { c = 0xFFFF }
                p.setU16(6, c)
            case IPProtocolNumber.icmpv6:
                p.setU16(2, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 0, count: length, initial: pseudo)))
            case IPProtocolNumber.icmp:
                p.setU16(2, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 0, count: length)))
            default: break
            }
        }
        if protocolNumber == IPProtocolNumber.sctp {
            t.withUnsafeMutableBytes { p in
                let crc = SCTPChecksum.crc32c(UnsafeRawBufferPointer(p), from: 0, count: length, zeroing: 8)
                p.storeBytes(of: crc.littleEndian, toByteOffset: 8, as: UInt32.self)
            }
        }
        return t
    }

    func ipBytes() -> [UInt8] {
        let t = transportBytes()
        if isV6 {
            var h: [UInt8] = [0x60, 0, 0, 0] + be16(UInt16(t.count)) + [protocolNumber, ttl]
            h += v6(source) + v6(destination)
            return h + t
        }
        let ihl = 20 + options.count
        var h: [UInt8] = [UInt8(0x40 | ihl / 4), 0] + be16(UInt16(ihl + t.count)) + [0x12, 0x34, dontFragment ? 0x40 : 0, 0, ttl, protocolNumber, 0, 0]
        h += be32(source.v4) + be32(destination.v4) + options
        h.withUnsafeMutableBytes { p in p.setU16(10, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 0, count: ihl))) }
        return h + t
    }

    func frame() -> [UInt8] {
        var e = destinationMAC.array + sourceMAC.array
        if let vlan { e += be16(EtherType.vlan) + be16(vlan) }
        e += be16(isV6 ? EtherType.ipv6 : EtherType.ipv4)
        return e + ipBytes()
    }
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xFFFF)) }
func v6(_ a: IPAddress) -> [UInt8] { let w = a.words; return be32(w.0) + be32(w.1) + be32(w.2) + be32(w.3) }

/// Every checksum in the frame is right (IPv4 header, TCP/UDP/ICMP/ICMPv6, SCTP CRC32c).
func checksumsValid(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { b in
        guard case .success(let f) = Frame.parse(b) else { return false }
        return transportValid(b, f)
    }
}

func transportValid(_ b: UnsafeRawBufferPointer, _ f: Frame) -> Bool {
    let length = f.end - f.transport
    switch f.protocolNumber {
    case IPProtocolNumber.tcp, IPProtocolNumber.udp, IPProtocolNumber.icmpv6:
        if f.protocolNumber == IPProtocolNumber.udp && !f.isV6 && b.u16(f.transport + 6) == 0 { return true }
        let pseudo = Checksum.pseudoHeader(source: f.source, destination: f.destination, protocolNumber: f.protocolNumber, length: length)
        return Checksum.fold(Checksum.sum(b, from: f.transport, count: length, initial: pseudo)) == 0xFFFF
    case IPProtocolNumber.icmp:
        return Checksum.fold(Checksum.sum(b, from: f.transport, count: length)) == 0xFFFF
    case IPProtocolNumber.sctp:
        return SCTPChecksum.crc32c(b, from: f.transport, count: length, zeroing: f.transport + 8)
            == b.loadUnaligned(fromByteOffset: f.transport + 8, as: UInt32.self).littleEndian
    default:
        return true
    }
}
