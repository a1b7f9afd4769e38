import LVSCore
import LVSPacket

/// VRRPv2's IPsec AH authentication (RFC 2402 as RFC 2338 uses it, in keepalived's form): the
/// advert travels as IP protocol 51 with a 24-byte AH header (next header 112, payload length 4,
/// SPI = the source address, a sequence number, a 12-byte HMAC-MD5-96) before the VRRP message,
/// whose authentication type is 2 and whose 8 trailing bytes are zero. The HMAC, keyed with the
/// 8-byte auth_pass, covers the IP header (TOS, fragment offset and checksum zeroed; TTL zeroed
/// for unicast only, as keepalived does), the AH header with its digest zeroed, and the message.
public enum VRRPAuthenticationHeader {
    public static let length = 24

    /// The key: auth_pass zero-padded (or cut) to 8 bytes.
    public static func key(_ password: [UInt8]) -> [UInt8] {
        Array(password.prefix(8)) + [UInt8](repeating: 0, count: max(0, 8 - password.count))
    }

    /// The advert's whole IPv4 packet.
    public static func seal(_ message: [UInt8], source: IPAddress, destination: IPAddress, identification: UInt16, sequence: UInt32,
                            key: [UInt8], unicast: Bool) -> [UInt8] {
        let total = 20 + length + message.count
        var ip: [UInt8] = [0x45, 0xC0, UInt8(total >> 8), UInt8(total & 0xFF), UInt8(identification >> 8), UInt8(identification & 0xFF),
                           0, 0, 255, 51, 0, 0]
        ip += source.networkBytes
        ip += destination.networkBytes
        var ah: [UInt8] = [112, 4, 0, 0] + source.networkBytes
        ah += [UInt8(sequence >> 24), UInt8(sequence >> 16 & 0xFF), UInt8(sequence >> 8 & 0xFF), UInt8(sequence & 0xFF)]
        ah += [UInt8](repeating: 0, count: 12)
        let icv = digest(ipHeader: ip, ah: ah, message: message, key: key, unicast: unicast)
        ah.replaceSubrange(12..<24, with: icv)
        let sum = ip.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: 20)) }
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xFF)
        return ip + ah + message
    }

    /// The 12-byte digest over the mutable-fields-zeroed IP header, the AH header without its
    /// digest, and the message.
    public static func digest(ipHeader: [UInt8], ah: [UInt8], message: [UInt8], key: [UInt8], unicast: Bool) -> [UInt8] {
        var ip = ipHeader
        guard ip.count >= 20, ah.count >= length else { return [] }
        ip[1] = 0
        ip[6] = 0
        ip[7] = 0
        ip[10] = 0
        ip[11] = 0
        if unicast { ip[8] = 0 }
        var a = Array(ah.prefix(length))
        for i in 12..<24 { a[i] = 0 }
        return Array(MD5.hmac(key: key, message: ip + a + message).prefix(12))
    }

    /// The fields of a received AH header.
    public struct Fields: Sendable, Hashable {
        public var nextHeader: UInt8
        public var spi: [UInt8]
        public var sequence: UInt32
        public var icv: [UInt8]

        public init?(_ ah: [UInt8]) {
            guard ah.count >= VRRPAuthenticationHeader.length else { return nil }
            nextHeader = ah[0]
            spi = Array(ah[4..<8])
            sequence = UInt32(ah[8]) << 24 | UInt32(ah[9]) << 16 | UInt32(ah[10]) << 8 | UInt32(ah[11])
            icv = Array(ah[12..<24])
        }
    }
}
