/// The hash functions the IPVS schedulers use, reproduced bit for bit.
public enum KernelHash {
    /// Linux's generic `hash_32(val, bits)`: multiply by the golden-ratio constant, keep the top bits.
    @inlinable
    public static func hash32(_ value: UInt32, bits: UInt32) -> UInt32 {
        (value &* 0x61C8_8647) >> (32 &- bits)
    }

    /// The key `{k, k}` of a 64-bit `hsiphash_key_t`.
    public struct SipKey: Sendable, Hashable {
        public var k0: UInt64
        public var k1: UInt64
        public init(_ k0: UInt64, _ k1: UInt64) {
            self.k0 = k0
            self.k1 = k1
        }
    }

    /// ip_vs_mh's first key (offsets and lookups).
    public static let maglevKey1 = SipKey(2_654_435_761, 2_654_435_761)
    /// ip_vs_mh's second key (skips).
    public static let maglevKey2 = SipKey(2_654_446_892, 2_654_446_892)

    /// `hsiphash` of one 4-byte value on a 64-bit kernel: SipHash-1-3 with output truncated to 32 bits.
    @inlinable
    public static func hsiphash(_ value: UInt32, key: SipKey) -> UInt32 {
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ key.k0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ key.k1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ key.k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ key.k1
        let b: UInt64 = (4 << 56) | UInt64(value)

        @inline(__always)
        func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 &- r)) }
        @inline(__always)
        func round() {
            v0 &+= v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
            v2 &+= v3; v3 = rotl(v3, 16); v3 ^= v2
            v0 &+= v3; v3 = rotl(v3, 21); v3 ^= v0
            v2 &+= v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
        }
        v3 ^= b
        round()
        v0 ^= b
        v2 ^= 0xFF
        round()
        round()
        round()
        return UInt32(truncatingIfNeeded: v0 ^ v1 ^ v2 ^ v3)
    }

    /// A fast seeded 64-bit mixer for the connection table (not a kernel hash: the kernel's bucket
    /// order is not observable, only that it is seeded so clients cannot aim at one bucket).
    @inlinable
    public static func mix(_ a: UInt64, _ b: UInt64, seed: UInt64) -> UInt64 {
        var x = a ^ seed
        x = (x ^ (x >> 32)) &* 0xD6E8_FEB8_6659_FD93
        x ^= b &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 32)) &* 0xD6E8_FEB8_6659_FD93
        return x ^ (x >> 32)
    }
}

/// A small deterministic random source (xorshift64*), seeded by the caller, for `twos`.
public struct SchedulerRandom: Sendable, Hashable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    /// A uniform integer in `0..<bound` (bound > 0).
    public mutating func below(_ bound: UInt32) -> UInt32 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        let r = state &* 0x2545_F491_4F6C_DD1D
        return UInt32(truncatingIfNeeded: ((r >> 32) &* UInt64(bound)) >> 32)
    }
}
