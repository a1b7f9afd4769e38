import LVSCore

/// IP-in-IP forwarding (`-i`, ip_vs_tunnel_xmit): the client's datagram, untouched but for its
/// hop limit, inside a new IPv4 header to the real server; `--tun-type gue` puts a UDP and a GUE
/// header between, `gre` a GRE header.
public enum Tunnel {
    public enum Kind: Sendable, Hashable {
        case ipip
        case gue(port: UInt16, checksum: Bool)
        case gre(checksum: Bool)

        /// Bytes between the outer IPv4 header and the inner datagram.
        public var headerLength: Int {
            switch self {
            case .ipip: return 0
            case .gue: return 8 + 4
            case .gre(let checksum): return checksum ? 8 : 4
            }
        }
    }

    /// Outer IPv4 header plus the kind's own.
    public static func overhead(_ kind: Kind) -> Int { 20 + kind.headerLength }

    /// Wraps the datagram of `inner` (in `p`, whose bytes before `inner.network` are free
    /// headroom) and writes a new Ethernet header in front. Returns where the new frame starts
    /// and its length, or nil when the headroom is too small.
    public static func encapsulate(_ p: UnsafeMutableRawBufferPointer, _ inner: Frame, kind: Kind, source: IPAddress, destination: IPAddress,
                                   identification: UInt16, flowHash: UInt32, destinationMAC: MACAddress, sourceMAC: MACAddress) -> (start: Int, length: Int)? {
        let outer = overhead(kind)
        let start = inner.network - outer - 14
        guard start >= 0 else { return nil }
        let n = start + 14
        let innerLength = inner.ipLength
        let total = outer + innerLength
        guard total <= 0xFFFF else { return nil }
        Rewrite.setMACs(UnsafeMutableRawBufferPointer(rebasing: p[start...]), destination: destinationMAC, source: sourceMAC)
        p.setU16(start + 12, EtherType.ipv4)
        let innerTOS: UInt8 = inner.isV6 ? UInt8(truncatingIfNeeded: p.u16(inner.network) >> 4) : p[inner.network + 1]
        // RFC 6040 normal mode: the outer ECN field copies the inner one, but CE becomes ECT(0).
        let tos = innerTOS & 0x03 == 0x03 ? (innerTOS & 0xFC) | 0x02 : innerTOS
        let innerProtocol = inner.isV6 ? IPProtocolNumber.ipv6 : IPProtocolNumber.ipip
        p[n] = 0x45
        p[n + 1] = tos
        p.setU16(n + 2, UInt16(total))
        p.setU16(n + 4, identification)
        // pmtu_disc (the default): DF copied from an IPv4 inner header.
        p.setU16(n + 6, !inner.isV6 && inner.dontFragment ? 0x4000 : 0)
        p[n + 8] = inner.hopLimit
        switch kind {
        case .ipip: p[n + 9] = innerProtocol
        case .gue: p[n + 9] = IPProtocolNumber.udp
        case .gre: p[n + 9] = IPProtocolNumber.gre
        }
        p.setU16(n + 10, 0)
        p.setU32(n + 12, source.v4)
        p.setU32(n + 16, destination.v4)
        p.setU16(n + 10, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: n, count: 20)))
        let h = n + 20
        switch kind {
        case .ipip:
            break
        case .gue(let port, let checksum):
            // Source port from the flow, so that the real server's receive side spreads flows.
            p.setU16(h, UInt16(truncatingIfNeeded: flowHash) | 0x8000)
            p.setU16(h + 2, port)
            p.setU16(h + 4, UInt16(8 + 4 + innerLength))
            p.setU16(h + 6, 0)
            p[h + 8] = 0
            p[h + 9] = innerProtocol
            p.setU16(h + 10, 0)
            if checksum {
                let length = 8 + 4 + innerLength
                let pseudo = Checksum.pseudoHeader(source: source, destination: destination, protocolNumber: IPProtocolNumber.udp, length: length)
                var sum = Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: h, count: length, initial: pseudo))
                if sum == 0 { sum = 0xFFFF }
                p.setU16(h + 6, sum)
            }
        case .gre(let checksum):
            p.setU16(h, checksum ? 0x8000 : 0)
            p.setU16(h + 2, inner.isV6 ? EtherType.ipv6 : EtherType.ipv4)
            if checksum {
                p.setU32(h + 4, 0)
                p.setU16(h + 4, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: h, count: 8 + innerLength)))
            }
        }
        return (start, 14 + total)
    }

    /// Where the inner datagram of a tunnelled packet starts (IPIP, IPv6-in-IPv4, GRE without
    /// key or sequence, or GUE to `guePort`), or nil when `outer` is not one.
    public static func innerOffset(_ b: UnsafeRawBufferPointer, _ outer: Frame, guePort: UInt16? = nil) -> Int? {
        guard outer.fragment == .none else { return nil }
        let t = outer.transport
        switch outer.protocolNumber {
        case IPProtocolNumber.ipip, IPProtocolNumber.ipv6:
            return t < outer.end ? t : nil
        case IPProtocolNumber.gre:
            guard outer.end >= t + 4 else { return nil }
            let flags = b.u16(t)
            // Only checksum may be present (IPVS sends no key or sequence); version 0.
            guard flags & 0x7FFF == 0 else { return nil }
            let start = t + (flags & 0x8000 != 0 ? 8 : 4)
            return start < outer.end ? start : nil
        case IPProtocolNumber.udp:
            guard let guePort, outer.destinationPort == guePort, outer.end >= t + 12 else { return nil }
            let first = b[t + 8]
            guard first >> 6 == 0, first & 0x20 == 0 else { return nil }
            let start = t + 12 + Int(first & 0x1F) * 4
            return start < outer.end ? start : nil
        default:
            return nil
        }
    }
}
