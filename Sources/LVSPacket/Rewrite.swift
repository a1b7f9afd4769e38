import LVSCore

/// The edits the forwarding methods make to a frame in place (ip_vs_xmit.c, ip_vs_proto_*.c):
/// NAT's address and port rewrites with incremental checksum updates, the hop-limit decrement
/// every method makes, and the Ethernet addresses of the next hop. `frame` must come from
/// `Frame.parse` of the same bytes.
public enum Rewrite {
    /// Where the transport checksum is, if the protocol has one that covers the addresses.
    @inlinable static func transportChecksumOffset(_ f: Frame) -> Int? {
        guard f.fragment != .later else { return nil }
        switch f.protocolNumber {
        case IPProtocolNumber.tcp: return f.transport + 16
        case IPProtocolNumber.udp: return f.transport + 6
        case IPProtocolNumber.icmpv6: return f.transport + 2
        default: return nil
        }
    }

    /// NAT toward the real server: the destination address and (TCP/UDP/SCTP) port. `partial`: the
    /// transport checksum is left for the NIC to finish (its field holds only the pseudo-header's
    /// sum, as CHECKSUM_PARTIAL has it), so only the address part of it changes.
    public static func setDestination(_ p: UnsafeMutableRawBufferPointer, _ f: inout Frame, address: IPAddress, port: UInt16, partial: Bool = false) {
        replace(p, &f, address: address, port: port, source: false, partial: partial)
    }

    /// NAT back to the client: the source becomes the virtual service's address and port.
    public static func setSource(_ p: UnsafeMutableRawBufferPointer, _ f: inout Frame, address: IPAddress, port: UInt16, partial: Bool = false) {
        replace(p, &f, address: address, port: port, source: true, partial: partial)
    }

    static func replace(_ p: UnsafeMutableRawBufferPointer, _ f: inout Frame, address: IPAddress, port: UInt16, source: Bool, partial: Bool) {
        let old = source ? f.source : f.destination
        let oldPort = source ? f.sourcePort : f.destinationPort
        let n = f.network
        if f.isV6 {
            writeV6(p, at: n + (source ? 8 : 24), address)
        } else {
            p.setU32(n + (source ? 12 : 16), address.v4)
            p.setU16(n + 10, Checksum.adjust(p.u16(n + 10), old: old.v4, new: address.v4))
        }
        if partial, let c = transportChecksumOffset(f) {
            // The pseudo-header sum is kept uncomplemented: the complement's update, complemented.
            p.setU16(c, ~Checksum.adjust(~p.u16(c), old: old, new: address))
        } else if let c = transportChecksumOffset(f) {
            let udpWithout = f.protocolNumber == IPProtocolNumber.udp && p.u16(c) == 0 && !f.isV6
            if !udpWithout {
                var sum = Checksum.adjust(p.u16(c), old: old, new: address)
                if f.protocolNumber != IPProtocolNumber.icmpv6 && oldPort != port {
                    sum = Checksum.adjust(sum, old: oldPort, new: port)
                }
                if f.protocolNumber == IPProtocolNumber.udp && sum == 0 { sum = 0xFFFF }
                p.setU16(c, sum)
            }
        }
        let hasPorts = f.fragment != .later && (f.protocolNumber == IPProtocolNumber.tcp || f.protocolNumber == IPProtocolNumber.udp
            || f.protocolNumber == IPProtocolNumber.sctp)
        if hasPorts {
            p.setU16(f.transport + (source ? 0 : 2), port)
        }
        if source {
            f.source = address
            if hasPorts { f.sourcePort = port }
        } else {
            f.destination = address
            if hasPorts { f.destinationPort = port }
        }
        if f.protocolNumber == IPProtocolNumber.sctp && hasPorts && !partial { SCTPChecksum.update(p, f) }
    }

    @inlinable static func writeV6(_ p: UnsafeMutableRawBufferPointer, at o: Int, _ a: IPAddress) {
        let w = a.words
        p.setU32(o, w.0); p.setU32(o + 4, w.1); p.setU32(o + 8, w.2); p.setU32(o + 12, w.3)
    }

    /// One hop less (IPv4 TTL, with the header checksum; IPv6 hop limit). False when the packet
    /// must not go on: its hop limit would reach 0 (the kernel answers time exceeded).
    public static func decrementHopLimit(_ p: UnsafeMutableRawBufferPointer, _ f: inout Frame) -> Bool {
        guard f.hopLimit > 1 else { return false }
        let n = f.network
        if f.isV6 {
            p[n + 7] = f.hopLimit - 1
        } else {
            let old = p.u16(n + 8)
            p[n + 8] = f.hopLimit - 1
            p.setU16(n + 10, Checksum.adjust(p.u16(n + 10), old: old, new: p.u16(n + 8)))
        }
        f.hopLimit -= 1
        return true
    }

    /// The next hop's and our own Ethernet addresses.
    @inlinable public static func setMACs(_ p: UnsafeMutableRawBufferPointer, destination: MACAddress, source: MACAddress) {
        destination.write(to: p, at: 0)
        source.write(to: p, at: 6)
    }

    /// Computes the transport checksum from scratch: for a packet that the sending host left to
    /// the NIC to finish (a local sender on veth hands over a partial checksum).
    public static func completeTransportChecksum(_ p: UnsafeMutableRawBufferPointer, _ f: Frame) {
        guard f.fragment == .none else { return }
        let length = f.end - f.transport
        let ro = UnsafeRawBufferPointer(p)
        switch f.protocolNumber {
        case IPProtocolNumber.tcp, IPProtocolNumber.udp, IPProtocolNumber.icmpv6:
            let c = f.transport + (f.protocolNumber == IPProtocolNumber.tcp ? 16 : f.protocolNumber == IPProtocolNumber.udp ? 6 : 2)
            p.setU16(c, 0)
            let pseudo = Checksum.pseudoHeader(source: f.source, destination: f.destination, protocolNumber: f.protocolNumber, length: length)
            var sum = Checksum.finish(Checksum.sum(ro, from: f.transport, count: length, initial: pseudo))
            if f.protocolNumber == IPProtocolNumber.udp && sum == 0 { sum = 0xFFFF }
            p.setU16(c, sum)
        case IPProtocolNumber.icmp:
            p.setU16(f.transport + 2, 0)
            p.setU16(f.transport + 2, Checksum.finish(Checksum.sum(ro, from: f.transport, count: length)))
        case IPProtocolNumber.sctp:
            SCTPChecksum.update(p, f)
        default:
            break
        }
    }
}

/// SCTP's CRC32c (RFC 4960 appendix B), which NAT must recompute: it is not incremental.
public enum SCTPChecksum {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func crc32c(_ b: UnsafeRawBufferPointer, from start: Int, count: Int, zeroing checksumAt: Int) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for i in start..<(start + count) {
                let byte = i >= checksumAt && i < checksumAt + 4 ? 0 : b[i]
                crc = t[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
            }
        }
        return ~crc
    }

    static func update(_ p: UnsafeMutableRawBufferPointer, _ f: Frame) {
        guard f.fragment == .none else { return }
        let crc = crc32c(UnsafeRawBufferPointer(p), from: f.transport, count: f.end - f.transport, zeroing: f.transport + 8)
        // The CRC goes on the wire least significant byte first.
        p.storeBytes(of: crc.littleEndian, toByteOffset: f.transport + 8, as: UInt32.self)
    }
}
