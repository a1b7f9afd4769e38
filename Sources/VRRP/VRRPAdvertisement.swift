import LVSCore
import LVSPacket

/// A VRRP advertisement (IP protocol 112): version 2 (RFC 3768, IPv4, with authentication) or
/// version 3 (RFC 5798, IPv4 or IPv6, centisecond intervals, checksum over the pseudo-header).
/// The bytes are the VRRP message only (after the IP header), as a raw socket hands them over.
public struct VRRPAdvertisement: Sendable, Hashable {
    public enum Authentication: Sendable, Hashable {
        case none
        /// Simple text password: 8 bytes on the wire, zero padded (keepalived's PASS).
        case password([UInt8])
        /// IPsec AH (type 2): the 8 bytes are zero; the AH header itself is outside the message.
        case ah
    }

    public var version: UInt8
    public var virtualRouterID: UInt8
    public var priority: UInt8
    /// v2: seconds; v3: centiseconds (12 bits).
    public var interval: UInt16
    public var addresses: [IPAddress]
    public var authentication: Authentication

    public init(version: UInt8, virtualRouterID: UInt8, priority: UInt8, interval: UInt16, addresses: [IPAddress],
                authentication: Authentication = .none) {
        self.version = version
        self.virtualRouterID = virtualRouterID
        self.priority = priority
        self.interval = interval
        self.addresses = addresses
        self.authentication = authentication
    }

    /// Why a received advertisement was not taken; each is counted. The texts are keepalived's
    /// log lines where it has one.
    public enum DecodeError: Error, Sendable, Hashable, CustomStringConvertible {
        case truncated(Int)
        case badVersion(UInt8)
        case badType(UInt8)
        case badChecksum
        case badAddressCount
        case mixedFamilies
        case badAuthenticationType(UInt8)
        case v3WithAuthentication

        public var description: String {
            switch self {
            case .truncated(let n): return "ip payload too short: \(n) bytes"
            case .badVersion(let v): return "invalid version. \(v) and expect 2 or 3"
            case .badType(let t): return "Invalid type. \(t) and expect 1"
            case .badChecksum: return "Invalid VRRP checksum"
            case .badAddressCount: return "ip payload length does not match the address count"
            case .mixedFamilies: return "addresses of both families"
            case .badAuthenticationType(let t): return "unknown authentication type \(t)"
            case .v3WithAuthentication: return "VRRPv3 has no authentication"
            }
        }
    }

    /// The VRRP header's length before the addresses.
    static let headerLength = 8

    /// Encodes the message. v3 needs the IP source and destination for its checksum.
    public func encode(source: IPAddress? = nil, destination: IPAddress? = nil) -> [UInt8] {
        var b: [UInt8] = [version << 4 | 1, virtualRouterID, priority, UInt8(truncatingIfNeeded: addresses.count)]
        if version == 2 {
            let type: UInt8
            switch authentication {
            case .none: type = 0
            case .password: type = 1
            case .ah: type = 2
            }
            b += [type, UInt8(truncatingIfNeeded: interval), 0, 0]
        } else {
            b += [UInt8((interval >> 8) & 0x0F), UInt8(interval & 0xFF), 0, 0]
        }
        for a in addresses { b += a.networkBytes }
        if version == 2 {
            var auth = [UInt8](repeating: 0, count: 8)
            if case .password(let p) = authentication { for (i, c) in p.prefix(8).enumerated() { auth[i] = c } }
            b += auth
        }
        let sum = Self.checksum(b, version: version, source: source, destination: destination)
        b[6] = UInt8(sum >> 8)
        b[7] = UInt8(sum & 0xFF)
        return b
    }

    /// Decodes a received message; `source`/`destination` (the IP header's) are needed to check a v3
    /// checksum. `v6`: it came in an IPv6 packet.
    public static func decode(_ b: [UInt8], v6: Bool = false, source: IPAddress? = nil, destination: IPAddress? = nil) -> Result<VRRPAdvertisement, DecodeError> {
        guard b.count >= headerLength else { return .failure(.truncated(b.count)) }
        let version = b[0] >> 4
        guard version == 2 || version == 3 else { return .failure(.badVersion(version)) }
        guard b[0] & 0x0F == 1 else { return .failure(.badType(b[0] & 0x0F)) }
        let count = Int(b[3])
        let size = v6 ? 16 : 4
        let expected = headerLength + count * size + (version == 2 ? 8 : 0)
        guard b.count >= expected else { return count > 0 && b.count > headerLength ? .failure(.badAddressCount) : .failure(.truncated(b.count)) }
        guard version == 3 || !v6 else { return .failure(.badVersion(version)) }
        var copy = Array(b[..<expected])
        let stored = UInt16(copy[6]) << 8 | UInt16(copy[7])
        copy[6] = 0
        copy[7] = 0
        guard checksum(copy, version: version, source: source, destination: destination) == stored else { return .failure(.badChecksum) }
        var addresses: [IPAddress] = []
        for i in 0..<count {
            let o = headerLength + i * size
            addresses.append(IPAddress(networkBytes: b[o..<(o + size)])!)
        }
        var authentication = Authentication.none
        let interval: UInt16
        if version == 2 {
            interval = UInt16(b[5])
            switch b[4] {
            case 0: authentication = .none
            case 1:
                let a = Array(b[(expected - 8)..<expected])
                authentication = .password(Array(a.prefix { $0 != 0 }))
            case 2: authentication = .ah
            default: return .failure(.badAuthenticationType(b[4]))
            }
        } else {
            interval = UInt16(b[4] & 0x0F) << 8 | UInt16(b[5])
        }
        return .success(VRRPAdvertisement(version: version, virtualRouterID: b[1], priority: b[2], interval: interval,
                                          addresses: addresses, authentication: authentication))
    }

    /// RFC 3768 §5.3.8: over the VRRP message; RFC 5798 §5.2.8: with the IPv4/IPv6 pseudo-header
    /// (protocol 112, the message's length).
    static func checksum(_ b: [UInt8], version: UInt8, source: IPAddress?, destination: IPAddress?) -> UInt16 {
        var pseudo: UInt32 = 0
        if version == 3, let source, let destination {
            pseudo = Checksum.pseudoHeader(source: source, destination: destination, protocolNumber: 112, length: b.count)
        }
        return b.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: $0.count, initial: pseudo)) }
    }
}
