import LVSCore

/// The ICMP errors the director sends (fragmentation needed / packet too big, time exceeded,
/// port unreachable) and the reading and NAT translation of the ICMP errors it forwards
/// (ip_vs_in_icmp / ip_vs_out_icmp).
public enum ICMPMessage {
    public enum Error: Sendable, Hashable {
        /// IPv4 "fragmentation needed" with the next-hop MTU; ICMPv6 "packet too big".
        case tooBig(mtu: Int)
        case timeExceeded
        case portUnreachable
    }

    /// Whether the kernel would answer `f` with an ICMP error at all: never for an ICMP error
    /// itself (RFC 1812 §4.3.2.7) or for a fragment other than the first.
    public static func mayAnswer(_ b: UnsafeRawBufferPointer, _ f: Frame) -> Bool {
        guard f.fragment != .later else { return false }
        if f.protocolNumber == IPProtocolNumber.icmp { return isInformational(v6: false, type: f.icmpType) }
        if f.protocolNumber == IPProtocolNumber.icmpv6 { return isInformational(v6: true, type: f.icmpType) }
        return true
    }

    static func isInformational(v6: Bool, type: UInt8) -> Bool {
        v6 ? type >= 128 : [0, 8, 13, 14, 15, 16, 17, 18].contains(type)
    }

    /// Writes into `out` an Ethernet frame carrying `error` about the frame `f` in `b`, sent from
    /// `source` (the director's address) back to the packet's source, as much of the offending
    /// datagram quoted as fits (576 bytes in all for IPv4, 1280 for IPv6). Returns its length.
    public static func write(_ error: Error, about f: Frame, in b: UnsafeRawBufferPointer, from source: IPAddress,
                             sourceMAC: MACAddress, into out: UnsafeMutableRawBufferPointer) -> Int? {
        let limit = f.isV6 ? 1280 : 576
        let header = f.isV6 ? 40 : 20
        let quote = min(f.ipLength, limit - header - 8)
        let total = header + 8 + quote
        guard out.count >= 14 + total, !(source.isV6 != f.isV6) else { return nil }
        // Back to where it came from: the frame's source MAC.
        for i in 0..<6 { out[i] = b[6 + i] }
        sourceMAC.write(to: out, at: 6)
        out.setU16(12, f.isV6 ? EtherType.ipv6 : EtherType.ipv4)
        let n = 14
        let t = n + header
        if f.isV6 {
            out.setU32(n, 0x6000_0000)
            out.setU16(n + 4, UInt16(8 + quote))
            out[n + 6] = IPProtocolNumber.icmpv6
            out[n + 7] = 64
            Rewrite.writeV6(out, at: n + 8, source)
            Rewrite.writeV6(out, at: n + 24, f.source)
        } else {
            out[n] = 0x45
            out[n + 1] = 0xC0
            out.setU16(n + 2, UInt16(total))
            out.setU16(n + 4, 0)
            out.setU16(n + 6, 0)
            out[n + 8] = 64
            out[n + 9] = IPProtocolNumber.icmp
            out.setU16(n + 10, 0)
            out.setU32(n + 12, source.v4)
            out.setU32(n + 16, f.source.v4)
            out.setU16(n + 10, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(out), from: n, count: 20)))
        }
        let (type, code): (UInt8, UInt8)
        var rest: UInt32 = 0
        switch (error, f.isV6) {
        case (.tooBig(let mtu), false): (type, code, rest) = (3, 4, UInt32(min(mtu, 0xFFFF)))
        case (.tooBig(let mtu), true): (type, code, rest) = (2, 0, UInt32(mtu))
        case (.timeExceeded, false): (type, code) = (11, 0)
        case (.timeExceeded, true): (type, code) = (3, 0)
        case (.portUnreachable, false): (type, code) = (3, 3)
        case (.portUnreachable, true): (type, code) = (1, 4)
        }
        out[t] = type
        out[t + 1] = code
        out.setU16(t + 2, 0)
        out.setU32(t + 4, rest)
        for i in 0..<quote { out[t + 8 + i] = b[f.network + i] }
        let initial = f.isV6
            ? Checksum.pseudoHeader(source: source, destination: f.source, protocolNumber: IPProtocolNumber.icmpv6, length: 8 + quote) : 0
        out.setU16(t + 2, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(out), from: t, count: 8 + quote, initial: initial)))
        return 14 + total
    }

    /// An ICMP error's quoted datagram: where it starts and what it says (the quote may be cut
    /// short; its ports are read when at least 8 bytes of the transport header are quoted).
    public struct Quote: Sendable, Hashable {
        public var network: Int
        public var transport: Int
        public var isV6: Bool
        public var protocolNumber: UInt8
        public var source: IPAddress
        public var destination: IPAddress
        public var sourcePort: UInt16
        public var destinationPort: UInt16
        public var hasPorts: Bool
    }

    /// Reads the datagram an ICMP error (IPv4: destination unreachable, source quench, time
    /// exceeded, parameter problem; IPv6: types 1-4) quotes, or nil for any other ICMP message.
    public static func quote(_ b: UnsafeRawBufferPointer, _ f: Frame) -> Quote? {
        guard f.fragment == .none else { return nil }
        if f.isV6 {
            guard f.protocolNumber == IPProtocolNumber.icmpv6, (1...4).contains(f.icmpType) else { return nil }
        } else {
            guard f.protocolNumber == IPProtocolNumber.icmp, [3, 4, 11, 12].contains(f.icmpType) else { return nil }
        }
        let n = f.transport + 8
        var q: Quote
        if f.isV6 {
            guard f.end >= n + 40, b[n] >> 4 == 6 else { return nil }
            q = Quote(network: n, transport: n + 40, isV6: true, protocolNumber: b[n + 6], source: b.ipv6(n + 8), destination: b.ipv6(n + 24),
                      sourcePort: 0, destinationPort: 0, hasPorts: false)
        } else {
            guard f.end >= n + 20, b[n] >> 4 == 4 else { return nil }
            let ihl = Int(b[n] & 0x0F) * 4
            guard ihl >= 20, f.end >= n + ihl else { return nil }
            q = Quote(network: n, transport: n + ihl, isV6: false, protocolNumber: b[n + 9], source: IPAddress(v4: b.u32(n + 12)),
                      destination: IPAddress(v4: b.u32(n + 16)), sourcePort: 0, destinationPort: 0, hasPorts: false)
            // A quoted later fragment has no ports.
            if b.u16(n + 6) & 0x1FFF != 0 { return q }
        }
        let ported = q.protocolNumber == IPProtocolNumber.tcp || q.protocolNumber == IPProtocolNumber.udp
            || q.protocolNumber == IPProtocolNumber.sctp
        if ported && f.end >= q.transport + 8 {
            q.sourcePort = b.u16(q.transport)
            q.destinationPort = b.u16(q.transport + 2)
            q.hasPorts = true
        }
        return q
    }

    /// NAT of an ICMP error about a connection (ip_vs_nat_icmp). Toward the real server
    /// (`inbound`): the outer destination and the quoted source become the real server's address
    /// and port. Toward the client: the outer source and the quoted destination become the
    /// virtual service's. The IP and ICMP checksums are recomputed.
    public static func translate(_ p: UnsafeMutableRawBufferPointer, _ f: inout Frame, _ q: Quote, inbound: Bool,
                                 address: IPAddress, port: UInt16) {
        let ro = UnsafeRawBufferPointer(p)
        let n = f.network
        if f.isV6 {
            Rewrite.writeV6(p, at: n + (inbound ? 24 : 8), address)
            Rewrite.writeV6(p, at: q.network + (inbound ? 8 : 24), address)
        } else {
            p.setU32(n + (inbound ? 16 : 12), address.v4)
            p.setU16(n + 10, 0)
            p.setU16(n + 10, Checksum.finish(Checksum.sum(ro, from: n, count: f.transport - n)))
            p.setU32(q.network + (inbound ? 12 : 16), address.v4)
            let ihl = q.transport - q.network
            p.setU16(q.network + 10, 0)
            p.setU16(q.network + 10, Checksum.finish(Checksum.sum(ro, from: q.network, count: ihl)))
        }
        if q.hasPorts { p.setU16(q.transport + (inbound ? 0 : 2), port) }
        if inbound { f.destination = address } else { f.source = address }
        let t = f.transport
        p.setU16(t + 2, 0)
        let initial = f.isV6
            ? Checksum.pseudoHeader(source: f.source, destination: f.destination, protocolNumber: IPProtocolNumber.icmpv6, length: f.end - t) : 0
        p.setU16(t + 2, Checksum.finish(Checksum.sum(ro, from: t, count: f.end - t, initial: initial)))
    }
}
