/// The weighted-least-connection choice lblc and lblcr fall back to (skips overloaded servers; the first
/// candidate needs weight > 0; ties to the earliest).
enum LocalityChoice {
    static func weightedLeast(_ pool: ServerPool) -> Int32? {
        var least = -1
        for i in 0..<pool.count {
            let s = pool[i]
            if s.isOverloaded { continue }
            if least < 0 {
                if s.weight > 0 { least = i }
                continue
            }
            if moreLoaded(pool[least].overhead, weightA: pool[least].weight, than: s.overhead, weightB: s.weight) {
                least = i
            }
        }
        return least < 0 ? nil : pool.id(at: least)
    }

    /// lblc's own "overloaded": more active connections than weight while some server in the service
    /// is less than half loaded.
    static func isOverloaded(_ server: RealServer, _ pool: ServerPool) -> Bool {
        guard Int64(server.activeConnections) > Int64(server.weight) else { return false }
        for i in 0..<pool.count {
            let d = pool[i]
            if Int64(d.activeConnections) * 2 < Int64(d.weight) { return true }
        }
        return false
    }

    /// How lblc/lblcr age their cache (ip_vs_lblc.c): a check every minute; when the table holds more than
    /// `maxEntries`, entries unused for 6 minutes go; every 30th check, entries unused for the
    /// expiration sysctl go.
    static let checkInterval: Int64 = 60 * 1_000_000_000
    static let entryTimeout: Int64 = 6 * 60 * 1_000_000_000
    static let fullCheckEvery = 30
    static let maxEntries = 1024 * 16

    /// One run of the cache check timer over a locality cache.
    static func age<Entry>(
        _ entries: inout [IPAddress: Entry], checks: inout Int, now: Int64, expiration: Int64,
        lastUse: (Entry) -> Int64
    ) {
        checks += 1
        if checks % fullCheckEvery == 0 {
            entries = entries.filter { now < lastUse($0.value) + expiration }
            return
        }
        guard entries.count > maxEntries else { return }
        var goal = min((entries.count - maxEntries) * 4 / 3, maxEntries / 2)
        for (key, entry) in entries where goal > 0 && now >= lastUse(entry) + entryTimeout {
            entries[key] = nil
            goal -= 1
        }
    }
}

/// lblc: remembers which server each destination address was sent to, and keeps using it while it is
/// available, has weight and is not overloaded in the lblc sense.
struct LocalityBased: Sendable {
    struct Entry: Sendable {
        var server: Int32
        var lastUse: Int64
    }

    private(set) var entries: [IPAddress: Entry] = [:]
    let expiration: Int64
    private var checks = 0

    init(settings: SchedulerSettings) { expiration = settings.localityExpiration }

    mutating func pick(_ pool: ServerPool, flow: FlowKey, now: Int64) -> Int32? {
        if var entry = entries[flow.destination] {
            entry.lastUse = now
            entries[flow.destination] = entry
            let s = pool.servers[Int(entry.server)]
            if s.isAvailable && s.weight > 0 && !LocalityChoice.isOverloaded(s, pool) {
                return entry.server
            }
        }
        guard let chosen = LocalityChoice.weightedLeast(pool) else { return nil }
        if entries[flow.destination] != nil || entries.count < LocalityChoice.maxEntries {
            entries[flow.destination] = Entry(server: chosen, lastUse: now)
        }
        return chosen
    }

    /// A deleted server can no longer be cached (the kernel would find it unavailable and replace it).
    mutating func forget(_ server: Int32) {
        entries = entries.filter { $0.value.server != server }
    }

    mutating func expire(now: Int64) {
        LocalityChoice.age(&entries, checks: &checks, now: now, expiration: expiration) { $0.lastUse }
    }
}

/// lblcr: like lblc, but each destination address maps to a set of servers; the least loaded member
/// serves, the set grows when all members are overloaded and sheds its most loaded member when it has
/// not changed for the expiration time.
struct LocalityBasedReplicated: Sendable {
    struct Entry: Sendable {
        /// Members, newest first (the kernel inserts at the head of the set).
        var members: [Int32]
        var lastUse: Int64
        var lastModified: Int64
    }

    private(set) var entries: [IPAddress: Entry] = [:]
    let expiration: Int64
    private var checks = 0

    init(settings: SchedulerSettings) { expiration = settings.localityExpiration }

    static func setMinimum(_ members: [Int32], _ pool: ServerPool) -> Int32? {
        var least: Int32 = -1
        for id in members {
            let s = pool.servers[Int(id)]
            if s.isOverloaded { continue }
            if least < 0 {
                if s.weight > 0 && s.isAvailable { least = id }
                continue
            }
            let l = pool.servers[Int(least)]
            if moreLoaded(l.overhead, weightA: l.weight, than: s.overhead, weightB: s.weight) && s.isAvailable {
                least = id
            }
        }
        return least < 0 ? nil : least
    }

    static func setMaximum(_ members: [Int32], _ pool: ServerPool) -> Int32? {
        var most: Int32 = -1
        for id in members {
            let s = pool.servers[Int(id)]
            if most < 0 {
                if s.weight > 0 { most = id }
                continue
            }
            let m = pool.servers[Int(most)]
            if moreLoaded(s.overhead, weightA: s.weight, than: m.overhead, weightB: m.weight) && s.weight > 0 {
                most = id
            }
        }
        return most < 0 ? nil : most
    }

    mutating func pick(_ pool: ServerPool, flow: FlowKey, now: Int64) -> Int32? {
        if var entry = entries[flow.destination] {
            entry.lastUse = now
            let member = LocalityBasedReplicated.setMinimum(entry.members, pool)
            if entry.members.count > 1 && now > entry.lastModified + expiration,
               let most = LocalityBasedReplicated.setMaximum(entry.members, pool) {
                entry.members.removeAll { $0 == most }
                entry.lastModified = now
            }
            if let member, !LocalityChoice.isOverloaded(pool.servers[Int(member)], pool) {
                entries[flow.destination] = entry
                return member
            }
            guard let chosen = LocalityChoice.weightedLeast(pool) else {
                entries[flow.destination] = entry
                return nil
            }
            if !entry.members.contains(chosen) {
                entry.members.insert(chosen, at: 0)
                entry.lastModified = now
            }
            entries[flow.destination] = entry
            return chosen
        }
        guard let chosen = LocalityChoice.weightedLeast(pool) else { return nil }
        if entries.count < LocalityChoice.maxEntries {
            entries[flow.destination] = Entry(members: [chosen], lastUse: now, lastModified: now)
        }
        return chosen
    }

    mutating func forget(_ server: Int32) {
        for key in Array(entries.keys) {
            entries[key]?.members.removeAll { $0 == server }
            if entries[key]?.members.isEmpty == true { entries[key] = nil }
        }
    }

    mutating func expire(now: Int64) {
        LocalityChoice.age(&entries, checks: &checks, now: now, expiration: expiration) { $0.lastUse }
    }
}
