import LVSCore

/// Big-endian field access on raw packet bytes (for the packet engine too). Callers check bounds
/// first (the parser does, once per frame); these do not, so the hot path pays for no check twice.
extension UnsafeRawBufferPointer {
    @inlinable public func u16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable public func u32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// The 16 bytes at `offset` as an IPv6 address.
    @inlinable public func ipv6(_ offset: Int) -> IPAddress {
        IPAddress(v6High: UInt64(u32(offset)) << 32 | UInt64(u32(offset + 4)), low: UInt64(u32(offset + 8)) << 32 | UInt64(u32(offset + 12)))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable public func u16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable public func u32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable public func setU16(_ offset: Int, _ value: UInt16) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inlinable public func setU32(_ offset: Int, _ value: UInt32) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
}

/// An Ethernet (MAC) address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        bytes = (b0, b1, b2, b3, b4, b5)
    }

    public init?(_ array: [UInt8]) {
        guard array.count == 6 else { return nil }
        self.init(array[0], array[1], array[2], array[3], array[4], array[5])
    }

    /// `aa:bb:cc:dd:ee:ff`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 6 else { return nil }
        var array: [UInt8] = []
        for p in parts {
            guard p.count <= 2, let v = UInt8(p, radix: 16) else { return nil }
            array.append(v)
        }
        self.init(array)
    }

    public static let zero = MACAddress(0, 0, 0, 0, 0, 0)
    public static let broadcast = MACAddress(0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)

    public var array: [UInt8] { [bytes.0, bytes.1, bytes.2, bytes.3, bytes.4, bytes.5] }

    public static func == (a: MACAddress, b: MACAddress) -> Bool { a.array == b.array }
    public func hash(into h: inout Hasher) { h.combine(array) }

    public var description: String {
        array.map { b in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined(separator: ":")
    }

    @inlinable func write(to p: UnsafeMutableRawBufferPointer, at o: Int) {
        p[o] = bytes.0; p[o + 1] = bytes.1; p[o + 2] = bytes.2
        p[o + 3] = bytes.3; p[o + 4] = bytes.4; p[o + 5] = bytes.5
    }

    public static func read(_ p: UnsafeRawBufferPointer, at o: Int) -> MACAddress {
        MACAddress(p[o], p[o + 1], p[o + 2], p[o + 3], p[o + 4], p[o + 5])
    }
}
