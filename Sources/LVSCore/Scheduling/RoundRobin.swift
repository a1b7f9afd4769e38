/// rr: a cursor walks the list, returning the next server with weight > 0 that is not overloaded.
struct RoundRobin: Sendable, Hashable {
    /// Position of the last server chosen; -1 is the list head.
    var cursor: Int = -1

    mutating func pick(_ pool: ServerPool) -> Int32? {
        let n = pool.count
        guard n > 0 else { return nil }
        var position = cursor
        // Walk once around: from the one after the cursor to the end, then from the start up to the cursor.
        for _ in 0..<n {
            position += 1
            if position == n { position = 0 }
            let server = pool[position]
            if !server.isOverloaded && server.weight > 0 {
                cursor = position
                return pool.id(at: position)
            }
        }
        return nil
    }

    /// A new server sits at the head; the cursor keeps pointing at the same server.
    mutating func serverAdded() {
        if cursor >= 0 { cursor += 1 }
    }

    /// Deleting the server under the cursor moves the cursor to its predecessor.
    mutating func serverRemoved(at position: Int) {
        if cursor >= position { cursor -= 1 }
    }
}

/// wrr: the kernel's weighted round robin with current weight `cw` stepping down by the gcd `di`.
struct WeightedRoundRobin: Sendable, Hashable {
    var cursor: Int = -1
    var currentWeight: Int32 = 0
    var maxWeight: Int32 = 0
    var step: Int32 = 1

    init(_ pool: ServerPool) {
        (step, maxWeight) = WeightedRoundRobin.levels(pool)
        currentWeight = maxWeight
    }

    static func levels(_ pool: ServerPool) -> (step: Int32, maxWeight: Int32) {
        var g: Int32 = 0
        var maxW: Int32 = 0
        for i in 0..<pool.count {
            let w = pool[i].weight
            if w > 0 { g = g > 0 ? gcd(w, g) : w }
            if w > maxW { maxW = w }
        }
        let di = g > 0 ? g : 1
        return (di, maxW - (di - 1))
    }

    static func gcd(_ a: Int32, _ b: Int32) -> Int32 {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    /// The kernel's `ip_vs_wrr_dest_changed`, run on every add, delete and edit.
    mutating func serversChanged(_ pool: ServerPool) {
        cursor = -1
        (step, maxWeight) = WeightedRoundRobin.levels(pool)
        if currentWeight > maxWeight || currentWeight == 0 {
            currentWeight = maxWeight
        } else if step > 1 {
            currentWeight = (currentWeight / step) * step + 1
        }
    }

    mutating func pick(_ pool: ServerPool) -> Int32? {
        guard maxWeight > 0 else { return nil }
        let n = pool.count
        let last = cursor
        var position = cursor
        var stop = Int.min
        var restarted = false
        var lastPass = false
        while true {
            position += 1
            while position < n {
                let server = pool[position]
                if !server.isOverloaded && server.weight >= currentWeight {
                    cursor = position
                    return pool.id(at: position)
                }
                if position == stop { return nil }
                position += 1
            }
            position = -1
            currentWeight -= step
            if currentWeight <= 0 {
                currentWeight = maxWeight
                // Stop if the last pass started from the head, or already ran with cw at its lowest.
                if lastPass || last == -1 { return nil }
                restarted = true
            }
            lastPass = currentWeight <= step
            if lastPass && restarted && last != -1 {
                stop = last
            }
        }
    }
}
