/// The address family of an address or a service: the kernel's AF_INET and AF_INET6.
public enum AddressFamily: UInt8, Sendable, Hashable, Comparable {
    case inet = 2
    case inet6 = 10

    public static func < (lhs: AddressFamily, rhs: AddressFamily) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// An IPv4 or IPv6 address held as two 64-bit words in network (big-endian) significance.
///
/// IPv4 addresses live in the low 32 bits of `low`, with `high` zero. The family is part of the
/// identity: `1.2.3.4` and `::1.2.3.4` are different addresses. Parsing and formatting are done
/// here without Foundation so they can be used anywhere.
public struct IPAddress: Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64
    public var family: AddressFamily

    @inlinable
    public init(v4 value: UInt32) {
        self.high = 0
        self.low = UInt64(value)
        self.family = .inet
    }

    @inlinable
    public init(v6High high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        self.family = .inet6
    }

    /// An IPv6 address from its eight 16-bit groups.
    public init(v6Groups g: [UInt16]) {
        precondition(g.count == 8, "an IPv6 address has eight groups")
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for i in 0..<4 { hi = hi << 16 | UInt64(g[i]) }
        for i in 4..<8 { lo = lo << 16 | UInt64(g[i]) }
        self.init(v6High: hi, low: lo)
    }

    public static let anyV4 = IPAddress(v4: 0)
    public static let anyV6 = IPAddress(v6High: 0, low: 0)

    @inlinable public var isV6: Bool { family == .inet6 }

    /// The IPv4 value (host order). Meaningful only for IPv4 addresses.
    @inlinable public var v4: UInt32 { UInt32(truncatingIfNeeded: low) }

    /// The four 32-bit words of the address, most significant first (IPv4: the address in the last word).
    @inlinable public var words: (UInt32, UInt32, UInt32, UInt32) {
        (UInt32(truncatingIfNeeded: high >> 32), UInt32(truncatingIfNeeded: high),
         UInt32(truncatingIfNeeded: low >> 32), UInt32(truncatingIfNeeded: low))
    }

    /// The kernel's `addr_fold`, converted to host order: the IPv4 address itself, or the XOR of an
    /// IPv6 address's four 32-bit words. Used by the dh, sh, mh, lblc and lblcr hashes.
    @inlinable public var folded: UInt32 {
        if family == .inet { return v4 }
        let w = words
        return w.0 ^ w.1 ^ w.2 ^ w.3
    }

    @inlinable public var isUnspecified: Bool { high == 0 && low == 0 }

    /// The address as it goes on the wire (netlink attributes, VRRP adverts): 4 bytes, or 16.
    public var networkBytes: [UInt8] {
        let w = words
        let used = isV6 ? [w.0, w.1, w.2, w.3] : [w.3]
        return used.flatMap { [UInt8($0 >> 24), UInt8(($0 >> 16) & 0xFF), UInt8(($0 >> 8) & 0xFF), UInt8($0 & 0xFF)] }
    }

    /// An address from its 4 (IPv4) or 16 (IPv6) bytes in network order; nil for another length.
    public init?(networkBytes bytes: some Collection<UInt8>) {
        let b = Array(bytes)
        func word(_ i: Int) -> UInt32 { UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]) }
        switch b.count {
        case 4: self.init(v4: word(0))
        case 16: self.init(v6High: UInt64(word(0)) << 32 | UInt64(word(4)), low: UInt64(word(8)) << 32 | UInt64(word(12)))
        default: return nil
        }
    }

    public var isMulticast: Bool {
        switch family {
        case .inet: return v4 >> 28 == 0xE
        case .inet6: return high >> 56 == 0xFF
        }
    }

    /// This address with only the first `prefixLength` bits kept.
    public func masked(prefixLength: Int) -> IPAddress {
        switch family {
        case .inet:
            let bits = max(0, min(32, prefixLength))
            let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << UInt32(32 - bits)
            return IPAddress(v4: v4 & mask)
        case .inet6:
            let bits = max(0, min(128, prefixLength))
            let hiMask: UInt64 = bits >= 64 ? ~0 : (bits == 0 ? 0 : ~UInt64(0) << UInt64(64 - bits))
            let loMask: UInt64 = bits <= 64 ? 0 : (bits == 128 ? ~0 : ~UInt64(0) << UInt64(128 - bits))
            return IPAddress(v6High: high & hiMask, low: low & loMask)
        }
    }

    /// This IPv4 address ANDed with a 32-bit mask (host order), as IPVS applies `-M` to IPv4 clients.
    @inlinable public func masked(v4Mask mask: UInt32) -> IPAddress { IPAddress(v4: v4 & mask) }
}

// MARK: - Parsing

extension IPAddress {
    /// Parses a strict dotted-quad IPv4 address or an IPv6 address (as `inet_pton` does).
    public init?(_ text: some StringProtocol) {
        if let v4 = IPAddress.parseDottedQuad(text) {
            self.init(v4: v4)
        } else if let v6 = IPAddress.parseV6(text) {
            self = v6
        } else {
            return nil
        }
    }

    /// Parses the four-decimal-parts form `a.b.c.d` only, each 0...255 (inet_pton's IPv4 rule).
    public static func parseDottedQuad(_ text: some StringProtocol) -> UInt32? {
        var value: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var parts = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                // inet_pton rejects a leading zero followed by more digits ("01").
                if digits == 1 && part == 0 { return nil }
                part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard part <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | part
    }

    /// Parses every form glibc's `inet_aton` accepts: one to four parts, each decimal, octal (leading 0)
    /// or hexadecimal (leading 0x), the last part filling the remaining bytes (`1.2.3` is 1.2.0.3,
    /// `16909060` is 1.2.3.4). Trailing text after a space is ignored, as inet_aton does.
    public static func parseInetAton(_ text: some StringProtocol) -> UInt32? {
        var parts: [UInt64] = []
        var bytes = Array(text.utf8)
        if let space = bytes.firstIndex(where: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A }) {
            bytes = Array(bytes[..<space])
        }
        var i = 0
        while true {
            guard i < bytes.count, isDigit(bytes[i]) else { return nil }
            var base: UInt64 = 10
            if bytes[i] == UInt8(ascii: "0") {
                if i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "x") || bytes[i + 1] == UInt8(ascii: "X") {
                    base = 16
                    i += 2
                } else {
                    base = 8
                }
            }
            var value: UInt64 = 0
            while i < bytes.count {
                let c = bytes[i]
                let digit: UInt64
                if isDigit(c) {
                    digit = UInt64(c - UInt8(ascii: "0"))
                    if base == 8 && digit >= 8 { return nil }
                } else if base == 16, let h = hexValue(c) {
                    digit = UInt64(h)
                } else {
                    break
                }
                value = value * base + digit
                if value > 0xFFFF_FFFF { return nil }
                i += 1
            }
            parts.append(value)
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                guard parts.count < 4 else { return nil }
                i += 1
                continue
            }
            guard i == bytes.count else { return nil }
            break
        }
        switch parts.count {
        case 1:
            return UInt32(parts[0])
        case 2:
            guard parts[0] <= 0xFF, parts[1] <= 0xFF_FFFF else { return nil }
            return UInt32(parts[0] << 24 | parts[1])
        case 3:
            guard parts[0] <= 0xFF, parts[1] <= 0xFF, parts[2] <= 0xFFFF else { return nil }
            return UInt32(parts[0] << 24 | parts[1] << 16 | parts[2])
        case 4:
            guard parts.allSatisfy({ $0 <= 0xFF }) else { return nil }
            return UInt32(parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3])
        default:
            return nil
        }
    }

    /// Parses an IPv6 address in any RFC 4291 text form, including `::` and an embedded dotted quad.
    public static func parseV6(_ text: some StringProtocol) -> IPAddress? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, bytes.count <= 45 else { return nil }
        var groups: [UInt16] = []
        groups.reserveCapacity(8)
        var gapIndex: Int? = nil
        var i = 0
        if bytes[0] == UInt8(ascii: ":") {
            guard bytes[1] == UInt8(ascii: ":") else { return nil }
            gapIndex = 0
            i = 2
            if i == bytes.count { return IPAddress.anyV6 }
        }
        while i < bytes.count {
            // A dotted quad may end the address.
            var j = i
            while j < bytes.count, bytes[j] != UInt8(ascii: ":") { j += 1 }
            let chunk = bytes[i..<j]
            if chunk.contains(UInt8(ascii: ".")) {
                guard j == bytes.count, groups.count <= 6,
                      let v4 = parseDottedQuad(String(decoding: chunk, as: UTF8.self)) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xFFFF))
                i = j
                break
            }
            guard !chunk.isEmpty, chunk.count <= 4 else { return nil }
            var value: UInt16 = 0
            for c in chunk {
                guard let h = hexValue(c) else { return nil }
                value = value << 4 | UInt16(h)
            }
            groups.append(value)
            guard groups.count <= 8 else { return nil }
            i = j
            if i == bytes.count { break }
            // bytes[i] is ':'
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: ":") {
                guard gapIndex == nil else { return nil }
                gapIndex = groups.count
                i += 1
                if i == bytes.count { break }
            } else if i == bytes.count {
                return nil
            }
        }
        if let gap = gapIndex {
            guard groups.count < 8 else { return nil }
            let zeros = [UInt16](repeating: 0, count: 8 - groups.count)
            groups.insert(contentsOf: zeros, at: gap)
        }
        guard groups.count == 8 else { return nil }
        return IPAddress(v6Groups: groups)
    }

    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    @inline(__always) static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
}

// MARK: - Formatting

extension IPAddress: CustomStringConvertible {
    /// The address as `inet_ntop` writes it: dotted quad, or compressed IPv6 with the longest run of
    /// two or more zero groups replaced by `::` (the first such run on a tie), and the IPv4-compatible
    /// and IPv4-mapped forms written with a dotted quad tail, as glibc does.
    public var description: String {
        switch family {
        case .inet:
            return IPAddress.dottedQuad(v4)
        case .inet6:
            return v6Text
        }
    }

    public static func dottedQuad(_ v: UInt32) -> String {
        "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
    }

    /// The eight 16-bit groups of an IPv6 address.
    public var groups: [UInt16] {
        var g = [UInt16](repeating: 0, count: 8)
        for i in 0..<4 {
            g[i] = UInt16(truncatingIfNeeded: high >> UInt64(48 - 16 * i))
            g[i + 4] = UInt16(truncatingIfNeeded: low >> UInt64(48 - 16 * i))
        }
        return g
    }

    private var v6Text: String {
        let g = groups
        var bestBase = -1, bestLen = 0, curBase = -1, curLen = 0
        for i in 0..<8 {
            if g[i] == 0 {
                if curBase < 0 { curBase = i; curLen = 1 } else { curLen += 1 }
            } else if curBase >= 0 {
                if curLen > bestLen { bestBase = curBase; bestLen = curLen }
                curBase = -1
            }
        }
        if curBase >= 0, curLen > bestLen { bestBase = curBase; bestLen = curLen }
        if bestLen < 2 { bestBase = -1 }
        var out = ""
        var i = 0
        while i < 8 {
            if i == bestBase {
                out += "::"
                i += bestLen
                continue
            }
            if i > 0, !out.hasSuffix(":") { out += ":" }
            // glibc: ::a.b.c.d (6 zero groups) and ::ffff:a.b.c.d get a dotted-quad tail.
            if i == 6, bestBase == 0, bestLen == 6 || (bestLen == 5 && g[5] == 0xFFFF) {
                out += IPAddress.dottedQuad(UInt32(g[6]) << 16 | UInt32(g[7]))
                break
            }
            out += String(g[i], radix: 16)
            i += 1
        }
        return out
    }

    /// The full uncompressed IPv6 text (`2001:0db8:0000:…`), as /proc/net/ip_vs_conn writes it.
    public var uncompressedV6Text: String {
        groups.map { g -> String in
            let s = String(g, radix: 16)
            return String(repeating: "0", count: 4 - s.count) + s
        }.joined(separator: ":")
    }
}

/// A TCP/UDP/SCTP endpoint: an address and a port (host order).
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    @inlinable
    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `a.b.c.d:port` or `[v6]:port`, as ipvsadm prints numeric endpoints.
    public var description: String {
        address.isV6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}
