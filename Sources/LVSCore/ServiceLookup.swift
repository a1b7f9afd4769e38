/// The per-packet service lookup: a small open-addressing table over the service keys, rebuilt when
/// services come and go, so a packet costs one cheap hash instead of a Dictionary lookup.
struct ServiceLookup: Sendable {
    private struct Slot: Sendable {
        var high: UInt64 = 0
        var low: UInt64 = 0
        /// 0 for an empty slot; otherwise the protocol, family, port or mark and a kind bit.
        var meta: UInt64 = 0
        var id: Int32 = -1
    }

    private var slots = [Slot](repeating: Slot(), count: 16)
    private var mask = 15

    @inline(__always)
    static func addressMeta(_ proto: UInt8, _ family: AddressFamily, _ port: UInt16) -> UInt64 {
        1 << 63 | UInt64(proto) << 32 | UInt64(family.rawValue) << 16 | UInt64(port)
    }

    @inline(__always)
    static func fwmarkMeta(_ mark: UInt32, _ family: AddressFamily) -> UInt64 {
        1 << 62 | UInt64(family.rawValue) << 32 | UInt64(mark)
    }

    @inline(__always)
    private static func hash(_ high: UInt64, _ low: UInt64, _ meta: UInt64) -> Int {
        Int(truncatingIfNeeded: KernelHash.mix(high ^ (low &* 0x9E37_79B9_7F4A_7C15), meta, seed: 0x51ED_270B))
    }

    static func parts(_ key: VirtualService.Key) -> (UInt64, UInt64, UInt64) {
        switch key {
        case .address(let p, let a, let port): return (a.high, a.low, addressMeta(p.rawValue, a.family, port))
        case .fwmark(let mark, let family): return (0, 0, fwmarkMeta(mark, family))
        }
    }

    mutating func rebuild(_ index: [VirtualService.Key: Int32]) {
        var size = 16
        while size < index.count * 2 { size <<= 1 }
        slots = [Slot](repeating: Slot(), count: size)
        mask = size - 1
        for (key, id) in index {
            let (h, l, m) = ServiceLookup.parts(key)
            var i = ServiceLookup.hash(h, l, m) & mask
            while slots[i].meta != 0 { i = (i + 1) & mask }
            slots[i] = Slot(high: h, low: l, meta: m, id: id)
        }
    }

    @inline(__always)
    func find(_ high: UInt64, _ low: UInt64, _ meta: UInt64) -> Int32? {
        var i = ServiceLookup.hash(high, low, meta) & mask
        while true {
            let s = slots[i]
            if s.meta == 0 { return nil }
            if s.meta == meta && s.low == low && s.high == high { return s.id }
            i = (i + 1) & mask
        }
    }
}
