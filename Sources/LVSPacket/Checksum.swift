import LVSCore

/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624 eqn. 3:
/// HC' = ~(~HC + ~m + m')), which is how the kernel's IPVS adjusts headers it rewrites.
public enum Checksum {
    /// The one's-complement sum of `bytes` (odd length padded with a zero byte), not folded.
    @inlinable public static func sum(_ bytes: UnsafeRawBufferPointer, from start: Int, count: Int, initial: UInt32 = 0) -> UInt32 {
        var total = UInt64(initial)
        var i = start
        let end = start + count
        while i + 8 <= end {
            let word = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            total &+= (word >> 48) &+ ((word >> 32) & 0xFFFF) &+ ((word >> 16) & 0xFFFF) &+ (word & 0xFFFF)
            i += 8
        }
        while i + 2 <= end {
            total &+= UInt64(bytes.u16(i))
            i += 2
        }
        if i < end { total &+= UInt64(bytes[i]) << 8 }
        while total > 0xFFFF_FFFF { total = (total & 0xFFFF_FFFF) &+ (total >> 32) }
        return UInt32(total)
    }

    /// Folds a sum to 16 bits.
    @inlinable public static func fold(_ sum: UInt32) -> UInt16 {
        var s = sum
        while s > 0xFFFF { s = (s & 0xFFFF) &+ (s >> 16) }
        return UInt16(s)
    }

    /// The checksum field for `sum` (the complement of the folded sum).
    @inlinable public static func finish(_ sum: UInt32) -> UInt16 { ~fold(sum) }

    /// The checksum after a 16-bit word of what it covers changed from `old` to `new`.
    @inlinable public static func adjust(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        ~fold(UInt32(~checksum) &+ UInt32(~old) &+ UInt32(new))
    }

    /// The checksum after a 32-bit value it covers changed.
    @inlinable public static func adjust(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let s = UInt32(~checksum) &+ UInt32(~UInt16(old >> 16)) &+ UInt32(~UInt16(old & 0xFFFF))
            &+ (new >> 16) &+ (new & 0xFFFF)
        return ~fold(s)
    }

    /// The checksum after an address it covers (an IPv4 address, or the 16 bytes of an IPv6 one,
    /// in the pseudo-header) changed.
    @inlinable public static func adjust(_ checksum: UInt16, old: IPAddress, new: IPAddress) -> UInt16 {
        if !old.isV6 { return adjust(checksum, old: old.v4, new: new.v4) }
        var c = checksum
        let o = old.words, n = new.words
        c = adjust(c, old: o.0, new: n.0)
        c = adjust(c, old: o.1, new: n.1)
        c = adjust(c, old: o.2, new: n.2)
        return adjust(c, old: o.3, new: n.3)
    }

    /// The sum of the TCP/UDP pseudo-header (RFC 793 §3.1, RFC 8200 §8.1).
    @inlinable public static func pseudoHeader(source: IPAddress, destination: IPAddress, protocolNumber: UInt8, length: Int) -> UInt32 {
        UInt32(protocolNumber) &+ UInt32(length & 0xFFFF) &+ UInt32(length >> 16) &+ addressSum(source) &+ addressSum(destination)
    }

    @inlinable static func addressSum(_ a: IPAddress) -> UInt32 {
        @inline(__always) func halves(_ v: UInt32) -> UInt32 { (v >> 16) &+ (v & 0xFFFF) }
        guard a.isV6 else { return halves(a.v4) }
        let w = a.words
        return halves(w.0) &+ halves(w.1) &+ halves(w.2) &+ halves(w.3)
    }
}
