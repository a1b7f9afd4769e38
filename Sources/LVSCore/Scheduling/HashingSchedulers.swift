/// dh: 256 buckets filled round-robin with the servers in list order; the packet's destination
/// address picks the bucket. No fallback.
struct DestinationHashing: Sendable {
    static let bits: UInt32 = 8
    static let size = 1 << 8
    private(set) var buckets = ContiguousArray<Int32>(repeating: -1, count: DestinationHashing.size)

    init(_ pool: ServerPool) { rebuild(pool) }

    mutating func rebuild(_ pool: ServerPool) {
        let n = pool.count
        for i in 0..<DestinationHashing.size {
            buckets[i] = n == 0 ? -1 : pool.id(at: i % n)
        }
    }

    static func bucket(for address: IPAddress) -> Int {
        Int(KernelHash.hash32(address.folded, bits: bits))
    }

    func pick(_ pool: ServerPool, flow: FlowKey) -> Int32? {
        let id = buckets[DestinationHashing.bucket(for: flow.destination)]
        guard id >= 0 else { return nil }
        let s = pool.servers[Int(id)]
        guard s.isAvailable, s.weight > 0, !s.isOverloaded else { return nil }
        return id
    }
}

/// sh: 256 buckets, each server taking `weight` consecutive buckets per round (at least one);
/// the client address (plus its port with sh-port) picks the bucket; sh-fallback probes on.
struct SourceHashing: Sendable {
    static let bits: UInt32 = 8
    static let size = 1 << 8
    private(set) var buckets = ContiguousArray<Int32>(repeating: -1, count: SourceHashing.size)

    init(_ pool: ServerPool) { rebuild(pool) }

    mutating func rebuild(_ pool: ServerPool) {
        let n = pool.count
        guard n > 0 else {
            for i in 0..<SourceHashing.size { buckets[i] = -1 }
            return
        }
        var position = 0
        var filled: Int32 = 0
        for i in 0..<SourceHashing.size {
            buckets[i] = pool.id(at: position)
            filled += 1
            if filled >= pool[position].weight {
                position = (position + 1) % n
                filled = 0
            }
        }
    }

    @inline(__always)
    static func bucket(source: UInt32, port: UInt32, offset: UInt32) -> Int {
        Int((offset &+ KernelHash.hash32(port &+ source, bits: bits)) & 0xFF)
    }

    @inline(__always)
    private static func unavailable(_ s: RealServer) -> Bool { s.weight <= 0 || s.isOverloaded }

    func pick(_ pool: ServerPool, flow: FlowKey, flags: ServiceFlags) -> Int32? {
        let port = flags.contains(.scheduler2) ? flow.hashPort : 0
        let source = flow.source.folded
        let first = SourceHashing.bucket(source: source, port: port, offset: 0)
        let id = buckets[first]
        guard id >= 0 else { return nil }
        if !SourceHashing.unavailable(pool.servers[Int(id)]) { return id }
        guard flags.contains(.scheduler1) else { return nil }
        for offset in 0..<UInt32(SourceHashing.size) {
            let roffset = (offset + UInt32(first)) % UInt32(SourceHashing.size)
            let probe = buckets[SourceHashing.bucket(source: source, port: port, offset: roffset)]
            guard probe >= 0 else { return nil }
            if !SourceHashing.unavailable(pool.servers[Int(probe)]) { return probe }
        }
        return nil
    }
}

/// mh: Maglev consistent hashing with the kernel's permutations (hsiphash), weights by `last_weight`,
/// table size a prime (4093 by default). mh-fallback probes on; mh-port adds the source port.
struct Maglev: Sendable {
    let size: Int
    let weightBits: Int
    private(set) var lookup: ContiguousArray<Int32>

    init(_ pool: ServerPool, settings: SchedulerSettings) {
        size = settings.maglevTableSize
        weightBits = settings.maglevWeightBits
        lookup = ContiguousArray(repeating: -1, count: size)
        rebuild(pool)
    }

    @inline(__always)
    static func hash(_ address: UInt32, port: UInt32, offset: UInt32, key: KernelHash.SipKey) -> UInt32 {
        KernelHash.hsiphash(offset &+ port &+ address, key: key)
    }

    /// The (offset, skip) a server's permutation starts from.
    static func permutation(of endpoint: Endpoint, size: Int) -> (offset: Int, skip: Int) {
        let addr = endpoint.address.folded
        let port = UInt32(endpoint.port)
        let offset = Int(hash(addr, port: port, offset: 0, key: KernelHash.maglevKey1)) % size
        let skip = Int(hash(addr, port: port, offset: 0, key: KernelHash.maglevKey2)) % (size - 1) + 1
        return (offset, skip)
    }

    mutating func rebuild(_ pool: ServerPool) {
        for i in 0..<size { lookup[i] = -1 }
        let n = pool.count
        guard n > 0, n <= size else { return }
        var g: Int32 = 0
        var maxWeight: Int32 = 0
        for i in 0..<n {
            let w = pool[i].lastWeight
            if w > 0 { g = g > 0 ? WeightedRoundRobin.gcd(w, g) : w }
            if w > maxWeight { maxWeight = w }
        }
        guard g >= 1 else { return }
        let mw = maxWeight / g
        let fls = 32 - mw.leadingZeroBitCount
        let shift = max(0, fls - weightBits)
        var perm = [Int](repeating: 0, count: n)
        var skip = [Int](repeating: 0, count: n)
        var turns = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let p = Maglev.permutation(of: pool[i].endpoint, size: size)
            perm[i] = p.offset
            skip[i] = p.skip
            let lw = pool[i].lastWeight
            let t = Int((lw / g) >> Int32(shift))
            turns[i] = t != 0 ? t : (lw != 0 ? 1 : 0)
        }
        var taken = [Bool](repeating: false, count: size)
        var filled = 0
        while filled < size {
            var i = 0
            var count = 0
            while i < n {
                if turns[i] < 1 {
                    i += 1
                    continue
                }
                var c = perm[i]
                while taken[c] {
                    perm[i] += skip[i]
                    if perm[i] >= size { perm[i] -= size }
                    c = perm[i]
                }
                taken[c] = true
                lookup[c] = pool.id(at: i)
                filled += 1
                if filled == size { return }
                count += 1
                if count >= turns[i] {
                    count = 0
                    i += 1
                }
            }
        }
    }

    @inline(__always)
    private static func unavailable(_ s: RealServer) -> Bool { s.weight <= 0 || s.isOverloaded }

    func slot(for flow: FlowKey, flags: ServiceFlags) -> Int {
        let port = flags.contains(.scheduler2) ? flow.hashPort : 0
        return Int(Maglev.hash(flow.source.folded, port: port, offset: 0, key: KernelHash.maglevKey1)) % size
    }

    func pick(_ pool: ServerPool, flow: FlowKey, flags: ServiceFlags) -> Int32? {
        let port = flags.contains(.scheduler2) ? flow.hashPort : 0
        let source = flow.source.folded
        let first = Int(Maglev.hash(source, port: port, offset: 0, key: KernelHash.maglevKey1)) % size
        let id = lookup[first]
        guard id >= 0 else { return nil }
        if !Maglev.unavailable(pool.servers[Int(id)]) { return id }
        guard flags.contains(.scheduler1) else { return nil }
        for offset in 0..<size {
            let roffset = UInt32((offset + first) % size)
            let probe = lookup[Int(Maglev.hash(source, port: port, offset: roffset, key: KernelHash.maglevKey1)) % size]
            guard probe >= 0 else { return nil }
            if !Maglev.unavailable(pool.servers[Int(probe)]) { return probe }
        }
        return nil
    }
}
