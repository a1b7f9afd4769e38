import LVSCore

/// An Ethernet frame carrying IPv4 or IPv6, as far as the director needs to read it: where each
/// header starts, the addresses, ports and flags the connection table wants. Reading it checks
/// every length against the bytes that are there, so the rewrites after it need not.
public struct Frame: Sendable, Hashable {
    public enum Fragment: Sendable, Hashable {
        /// A whole datagram.
        case none
        /// The first fragment: it has the transport header.
        case first
        /// A later fragment: no transport header.
        case later
    }

    /// Offset of the IP header (after Ethernet and any 802.1Q tag).
    public var network: Int
    /// Offset of the transport header (after IPv4 options or IPv6 extension headers).
    public var transport: Int
    /// Offset just past the IP datagram (Ethernet padding may follow).
    public var end: Int
    public var isV6: Bool
    public var protocolNumber: UInt8
    public var source: IPAddress
    public var destination: IPAddress
    /// TCP/UDP/SCTP ports; 0 for other protocols.
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var tcpFlags: TCPFlags
    /// The type of the first SCTP chunk.
    public var sctpChunk: SCTPChunk?
    /// ICMP / ICMPv6 type and code.
    public var icmpType: UInt8
    public var icmpCode: UInt8
    public var fragment: Fragment
    /// IPv4 DF (IPv6 routers never fragment: always true).
    public var dontFragment: Bool
    public var hopLimit: UInt8
    /// The 802.1Q VLAN id, when tagged.
    public var vlan: UInt16?

    /// The bytes of the IP datagram.
    public var ipLength: Int { end - network }

    /// The same frame read `offset` bytes further into a buffer (negative: nearer its start).
    public func moved(by offset: Int) -> Frame {
        var f = self
        f.network += offset
        f.transport += offset
        f.end += offset
        return f
    }

    /// What the connection table wants to know.
    public func summary(fwmark: UInt32 = 0) -> PacketSummary {
        PacketSummary(protocolNumber: protocolNumber, source: source, sourcePort: sourcePort, destination: destination,
                      destinationPort: destinationPort, fwmark: fwmark, tcpFlags: tcpFlags, sctpChunk: sctpChunk, length: ipLength)
    }
}

/// Why a frame was not read; each is a drop counter.
public enum FrameError: Int, Error, CaseIterable, Sendable {
    case truncatedEthernet
    /// Not IPv4 or IPv6 (ARP and the rest belong to the local stack).
    case notIP
    case truncatedIP
    case badVersion
    case badHeaderLength
    case badTotalLength
    case badIPChecksum
    case truncatedTransport
    case badTransportHeader
    case badExtensionHeaders

    public var label: String {
        switch self {
        case .truncatedEthernet: return "truncated Ethernet header"
        case .notIP: return "not IP"
        case .truncatedIP: return "truncated IP header"
        case .badVersion: return "IP version not matching the Ethernet type"
        case .badHeaderLength: return "bad IP header length"
        case .badTotalLength: return "bad IP total length"
        case .badIPChecksum: return "bad IPv4 header checksum"
        case .truncatedTransport: return "truncated transport header"
        case .badTransportHeader: return "bad transport header"
        case .badExtensionHeaders: return "bad IPv6 extension headers"
        }
    }
}

public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let ipv6: UInt16 = 0x86DD
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100
}

public enum IPProtocolNumber {
    public static let icmp: UInt8 = 1
    public static let ipip: UInt8 = 4
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let ipv6: UInt8 = 41
    public static let gre: UInt8 = 47
    public static let icmpv6: UInt8 = 58
    public static let sctp: UInt8 = 132
}

extension Frame {
    /// Reads the frame in `bytes` (an Ethernet frame). Checks what the kernel checks before IPVS
    /// sees a packet (ip_rcv: version, header length, total length, header checksum; IPv6:
    /// payload length and the extension-header chain) and that the transport header the table
    /// needs is all there.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<Frame, FrameError> {
        guard bytes.count >= 14 else { return .failure(.truncatedEthernet) }
        var type = bytes.u16(12)
        var network = 14
        var vlan: UInt16?
        if type == EtherType.vlan {
            guard bytes.count >= 18 else { return .failure(.truncatedEthernet) }
            vlan = bytes.u16(14) & 0x0FFF
            type = bytes.u16(16)
            network = 18
        }
        switch type {
        case EtherType.ipv4: return parseIPv4(bytes, at: network, vlan: vlan)
        case EtherType.ipv6: return parseIPv6(bytes, at: network, vlan: vlan)
        default: return .failure(.notIP)
        }
    }

    /// Reads an IP datagram that starts at `network` in `bytes` (a frame, or the inside of a
    /// tunnel or of an ICMP error).
    public static func parseIP(_ bytes: UnsafeRawBufferPointer, at network: Int) -> Result<Frame, FrameError> {
        guard bytes.count > network else { return .failure(.truncatedIP) }
        return bytes[network] >> 4 == 6 ? parseIPv6(bytes, at: network, vlan: nil) : parseIPv4(bytes, at: network, vlan: nil)
    }

    static func parseIPv4(_ b: UnsafeRawBufferPointer, at n: Int, vlan: UInt16?) -> Result<Frame, FrameError> {
        guard b.count >= n + 20 else { return .failure(.truncatedIP) }
        guard b[n] >> 4 == 4 else { return .failure(.badVersion) }
        let headerLength = Int(b[n] & 0x0F) * 4
        guard headerLength >= 20, b.count >= n + headerLength else { return .failure(.badHeaderLength) }
        let total = Int(b.u16(n + 2))
        guard total >= headerLength, n + total <= b.count else { return .failure(.badTotalLength) }
        guard Checksum.fold(Checksum.sum(b, from: n, count: headerLength)) == 0xFFFF else { return .failure(.badIPChecksum) }
        let flagsAndOffset = b.u16(n + 6)
        let offset = flagsAndOffset & 0x1FFF
        let more = flagsAndOffset & 0x2000 != 0
        var frame = Frame(network: n, transport: n + headerLength, end: n + total, isV6: false, protocolNumber: b[n + 9],
                          source: IPAddress(v4: b.u32(n + 12)), destination: IPAddress(v4: b.u32(n + 16)),
                          sourcePort: 0, destinationPort: 0, tcpFlags: [], sctpChunk: nil, icmpType: 0, icmpCode: 0,
                          fragment: offset != 0 ? .later : (more ? .first : .none), dontFragment: flagsAndOffset & 0x4000 != 0,
                          hopLimit: b[n + 8], vlan: vlan)
        if frame.fragment == .later { return .success(frame) }
        return frame.readTransport(b)
    }

    static func parseIPv6(_ b: UnsafeRawBufferPointer, at n: Int, vlan: UInt16?) -> Result<Frame, FrameError> {
        guard b.count >= n + 40 else { return .failure(.truncatedIP) }
        guard b[n] >> 4 == 6 else { return .failure(.badVersion) }
        let end = n + 40 + Int(b.u16(n + 4))
        guard end <= b.count else { return .failure(.badTotalLength) }
        var next = b[n + 6]
        var at = n + 40
        var fragment = Frame.Fragment.none
        // Hop-by-hop, routing, fragment and destination options, as ipv6_skip_exthdr walks them.
        walk: while true {
            switch next {
            case 0, 43, 60:
                guard at + 8 <= end else { return .failure(.badExtensionHeaders) }
                let length = (Int(b[at + 1]) + 1) * 8
                guard at + length <= end else { return .failure(.badExtensionHeaders) }
                next = b[at]
                at += length
            case 44:
                guard at + 8 <= end else { return .failure(.badExtensionHeaders) }
                let offset = b.u16(at + 2) >> 3
                let more = b.u16(at + 2) & 1 != 0
                fragment = offset != 0 ? .later : (more ? .first : .none)
                next = b[at]
                at += 8
                if fragment == .later { break walk }
            default:
                break walk
            }
        }
        var frame = Frame(network: n, transport: at, end: end, isV6: true, protocolNumber: next,
                          source: b.ipv6(n + 8), destination: b.ipv6(n + 24), sourcePort: 0, destinationPort: 0,
                          tcpFlags: [], sctpChunk: nil, icmpType: 0, icmpCode: 0, fragment: fragment, dontFragment: true,
                          hopLimit: b[n + 7], vlan: vlan)
        if fragment == .later { return .success(frame) }
        return frame.readTransport(b)
    }

    /// Ports, flags and types from the transport header (which must be wholly present).
    mutating func readTransport(_ b: UnsafeRawBufferPointer) -> Result<Frame, FrameError> {
        let t = transport
        let available = end - t
        switch protocolNumber {
        case IPProtocolNumber.tcp:
            guard available >= 20 else { return .failure(.truncatedTransport) }
            let dataOffset = Int(b[t + 12] >> 4) * 4
            guard dataOffset >= 20, dataOffset <= available else { return .failure(.badTransportHeader) }
            sourcePort = b.u16(t)
            destinationPort = b.u16(t + 2)
            tcpFlags = TCPFlags(rawValue: b[t + 13] & 0x1F)
        case IPProtocolNumber.udp:
            guard available >= 8 else { return .failure(.truncatedTransport) }
            let length = Int(b.u16(t + 4))
            // A first fragment's UDP length covers the whole datagram.
            guard length >= 8, fragment != .none || length <= available else { return .failure(.badTransportHeader) }
            sourcePort = b.u16(t)
            destinationPort = b.u16(t + 2)
        case IPProtocolNumber.sctp:
            guard available >= 12 else { return .failure(.truncatedTransport) }
            sourcePort = b.u16(t)
            destinationPort = b.u16(t + 2)
            if available >= 16 { sctpChunk = SCTPChunk(rawValue: b[t + 12]) }
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6:
            guard available >= 8 else { return .failure(.truncatedTransport) }
            icmpType = b[t]
            icmpCode = b[t + 1]
        default:
            break
        }
        return .success(self)
    }
}
