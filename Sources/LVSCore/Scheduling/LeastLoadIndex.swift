/// lc, wlc and sed: the least loaded eligible server, ties to the earliest in list order.
///
/// The kernel scans the whole list for every new connection. Because its comparison
/// (`load(best) * weight(d) > load(d) * weight(best)`, strict) orders servers by the rational
/// load/weight with ties to the earlier one, the winner is the minimum of a strict weak order, and a
/// tournament tree over list positions gives the same answer in O(1) per pick and O(log n) per change
/// of a server's connection counts.
struct LeastLoadIndex: Sendable {
    enum Rule: Sendable {
        /// lc: overhead `active*256 + inactive`, weights only exclude weight 0.
        case leastConnection
        /// wlc: overhead / weight.
        case weightedLeastConnection
        /// sed: (active + 1) / weight.
        case shortestExpectedDelay
    }

    let rule: Rule
    /// Leaves at `leafBase ..< leafBase + count`; each node holds the winning position, or -1.
    private var nodes: ContiguousArray<Int32> = []
    private var leafBase = 1

    init(_ rule: Rule, _ pool: ServerPool) {
        self.rule = rule
        rebuild(pool)
    }

    @inline(__always)
    private func eligible(_ s: RealServer) -> Bool { !s.isOverloaded && s.weight > 0 }

    @inline(__always)
    private func load(_ s: RealServer) -> UInt64 {
        switch rule {
        case .leastConnection, .weightedLeastConnection: return s.overhead
        case .shortestExpectedDelay: return UInt64(s.activeConnections) + 1
        }
    }

    /// Whether the server at `b` beats the one at `a` (a before b in list order).
    @inline(__always)
    private func beats(_ b: Int32, _ a: Int32, _ pool: ServerPool) -> Bool {
        let sa = pool[Int(a)]
        let sb = pool[Int(b)]
        switch rule {
        case .leastConnection:
            return load(sb) < load(sa)
        case .weightedLeastConnection, .shortestExpectedDelay:
            return moreLoaded(load(sa), weightA: sa.weight, than: load(sb), weightB: sb.weight)
        }
    }

    @inline(__always)
    private func winner(_ a: Int32, _ b: Int32, _ pool: ServerPool) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        return beats(b, a, pool) ? b : a
    }

    mutating func rebuild(_ pool: ServerPool) {
        let n = pool.count
        var base = 1
        while base < n { base <<= 1 }
        leafBase = base
        nodes = ContiguousArray(repeating: -1, count: 2 * base)
        for i in 0..<n where eligible(pool[i]) { nodes[base + i] = Int32(i) }
        var i = base - 1
        while i >= 1 {
            nodes[i] = winner(nodes[2 * i], nodes[2 * i + 1], pool)
            i -= 1
        }
    }

    mutating func update(position: Int, _ pool: ServerPool) {
        guard position < pool.count, leafBase + position < nodes.count else { return }
        var i = leafBase + position
        nodes[i] = eligible(pool[position]) ? Int32(position) : -1
        i >>= 1
        while i >= 1 {
            nodes[i] = winner(nodes[2 * i], nodes[2 * i + 1], pool)
            i >>= 1
        }
    }

    func pick(_ pool: ServerPool) -> Int32? {
        guard nodes.count > 1 else { return nil }
        let p = nodes[1]
        return p < 0 ? nil : pool.id(at: Int(p))
    }
}

/// nq: the first idle server (no active connections), else sed's choice.
enum NeverQueue {
    static func pick(_ pool: ServerPool) -> Int32? {
        var least = -1
        var leastLoad: UInt64 = 0
        for i in 0..<pool.count {
            let s = pool[i]
            if s.isOverloaded || s.weight == 0 { continue }
            let load = UInt64(s.activeConnections) + 1
            if s.activeConnections == 0 { return pool.id(at: i) }
            if least < 0 {
                least = i
                leastLoad = load
                continue
            }
            if moreLoaded(leastLoad, weightA: pool[least].weight, than: load, weightB: s.weight) {
                least = i
                leastLoad = load
            }
        }
        return least < 0 ? nil : pool.id(at: least)
    }
}

/// fo: the highest weight among servers that are not overloaded; ties to the earliest.
enum WeightedFailover {
    static func pick(_ pool: ServerPool) -> Int32? {
        var best = -1
        var bestWeight: Int32 = 0
        for i in 0..<pool.count {
            let s = pool[i]
            if !s.isOverloaded && s.weight > bestWeight {
                best = i
                bestWeight = s.weight
            }
        }
        return best < 0 ? nil : pool.id(at: best)
    }
}

/// ovf: the highest weight among servers whose active connections have not exceeded their weight.
enum WeightedOverflow {
    static func pick(_ pool: ServerPool) -> Int32? {
        var best = -1
        var bestWeight: Int32 = 0
        for i in 0..<pool.count {
            let s = pool[i]
            let w = s.weight
            if s.isOverloaded || w == 0 || Int64(s.activeConnections) > Int64(w) { continue }
            if best < 0 || w > bestWeight {
                best = i
                bestWeight = w
            }
        }
        return best < 0 ? nil : pool.id(at: best)
    }
}

/// twos: two weighted random candidates, the less loaded (by overhead/weight) wins.
enum PowerOfTwoChoices {
    static func pick(_ pool: ServerPool, random: inout SchedulerRandom) -> Int32? {
        var total: Int64 = 0
        for i in 0..<pool.count {
            let s = pool[i]
            if !s.isOverloaded && s.weight > 0 { total += Int64(s.weight) }
        }
        guard total > 0 else { return nil }
        let bound = UInt32(clamping: total + 1)
        var r1 = Int64(random.below(bound))
        var r2 = Int64(random.below(bound))
        var c1 = -1
        var c2 = -1
        for i in 0..<pool.count {
            let s = pool[i]
            if s.isOverloaded || s.weight <= 0 { continue }
            r1 -= Int64(s.weight)
            r2 -= Int64(s.weight)
            if r1 <= 0 && c1 < 0 { c1 = i }
            if r2 <= 0 && c2 < 0 { c2 = i }
            if c1 >= 0 && c2 >= 0 { break }
        }
        guard c1 >= 0 else { return nil }
        if c2 >= 0 {
            let a = pool[c1]
            let b = pool[c2]
            if moreLoaded(a.overhead, weightA: a.weight, than: b.overhead, weightB: b.weight) { c1 = c2 }
        }
        return pool.id(at: c1)
    }
}
