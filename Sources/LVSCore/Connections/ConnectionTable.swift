import CLVSIntrinsics

/// Connection flag bits, as the kernel's `IP_VS_CONN_F_*`.
public struct ConnectionFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let forwardMask = ConnectionFlags(rawValue: 0x0007)
    public static let sync = ConnectionFlags(rawValue: 0x0020)
    public static let hashed = ConnectionFlags(rawValue: 0x0040)
    public static let noOutput = ConnectionFlags(rawValue: 0x0080)
    public static let inactive = ConnectionFlags(rawValue: 0x0100)
    public static let outSequence = ConnectionFlags(rawValue: 0x0200)
    public static let inSequence = ConnectionFlags(rawValue: 0x0400)
    public static let noClientPort = ConnectionFlags(rawValue: 0x0800)
    public static let template = ConnectionFlags(rawValue: 0x1000)
    public static let onePacket = ConnectionFlags(rawValue: 0x2000)

    public var forwarding: ForwardingMethod {
        ForwardingMethod(rawValue: UInt8(rawValue & 0x7)) ?? .masquerade
    }
}

/// A bounded, preallocated connection table: open addressing over the client side of each entry
/// (so both directions of a NAT connection are found from one hash, as the kernel does), and a hashed
/// timer wheel for expiry driven by the time the caller passes in. No allocation after creation.
struct ConnectionTable {
    /// Wheel resolution and size: 100 ms ticks, 8192 slots (a revolution of 819 s; longer timeouts go
    /// round again).
    static let tickNanoseconds: Int64 = 100_000_000
    static let wheelSlots = 8192

    let capacity: Int

    /// One more than the highest index a connection can have (the timer wheel's slots come first).
    var slotCount: Int { ConnectionTable.wheelSlots + capacity }
    private(set) var count = 0
    /// Entries 0 ..< wheelSlots are the wheel's list heads (sentinels); connections follow.
    private var storage: ConnectionStorage
    private var freeHead: Int32 = -1
    private let indexMask: Int
    private let seed: UInt64
    /// The caller's time at tick 0.
    let epoch: Int64
    /// The last wheel tick processed.
    private var processedTick: Int64

    init(capacity: Int, seed: UInt64, now: Int64 = 0, prepare: MemoryPreparation? = nil) {
        precondition(capacity > 0 && capacity < Int(Int32.max) - ConnectionTable.wheelSlots)
        self.capacity = capacity
        self.seed = seed
        let size = ConnectionTable.indexSize(capacity: capacity)
        storage = ConnectionStorage(slots: ConnectionTable.wheelSlots + capacity, indexSize: size, prepare: prepare)
        indexMask = size - 1
        epoch = now
        processedTick = 0
        for i in 0..<ConnectionTable.wheelSlots {
            var head = ColdEntry()
            head.next = Int32(i)
            head.prev = Int32(i)
            (storage.hot + i).initialize(to: HotEntry())
            (storage.cold + i).initialize(to: head)
        }
        storage.highWater = ConnectionTable.wheelSlots
    }

    static func indexSize(capacity: Int) -> Int {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        return size
    }

    /// Bytes of table memory per connection at full capacity (entry plus its share of the index).
    static func bytesPerEntry(capacity: Int) -> Int {
        MemoryLayout<HotEntry>.stride + MemoryLayout<ColdEntry>.stride
            + indexSize(capacity: capacity) * MemoryLayout<UInt64>.stride / capacity
    }

    @inline(__always)
    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    // MARK: Entries

    /// The hot part of an entry.
    @inline(__always)
    subscript(i: Int32) -> HotEntry {
        get { storage.hot[Int(i)] }
        _modify {
            makeUnique()
            yield &storage.hot[Int(i)]
        }
    }

    /// The cold part of an entry.
    @inline(__always)
    subscript(cold i: Int32) -> ColdEntry {
        get { storage.cold[Int(i)] }
        _modify {
            makeUnique()
            yield &storage.cold[Int(i)]
        }
    }

    func entry(_ i: Int32) -> ConnectionEntry {
        ConnectionEntry(hot: storage.hot[Int(i)], cold: storage.cold[Int(i)])
    }

    /// Whether `i` names an entry in use.
    func isLive(_ i: Int32) -> Bool {
        Int(i) >= ConnectionTable.wheelSlots && Int(i) < storage.highWater && storage.hot[Int(i)].families & 0x80 != 0
    }

    /// Whether `id` still names the entry it was handed out for.
    func isLive(_ id: ConnectionID) -> Bool {
        isLive(id.index) && storage.hot[Int(id.index)].generation == id.generation
    }

    /// The ID of the entry now in slot `i`.
    func id(_ i: Int32) -> ConnectionID { ConnectionID(index: i, generation: storage.hot[Int(i)].generation) }

    /// Indices of the live entries `offset ..< offset + limit`, in slot order (for listings; allocates).
    func liveIndices(offset: Int = 0, limit: Int = .max) -> [Int32] {
        guard offset < count, limit > 0 else { return [] }
        var out: [Int32] = []
        out.reserveCapacity(min(limit, count - offset))
        var skipped = 0
        for i in ConnectionTable.wheelSlots..<storage.highWater where storage.hot[i].families & 0x80 != 0 {
            if skipped < offset {
                skipped += 1
                continue
            }
            guard out.count < limit else { break }
            out.append(Int32(i))
        }
        return out
    }

    // MARK: Time

    /// The first tick at or after a time.
    @inline(__always)
    func tick(atOrAfter time: Int64) -> Int64 {
        let t = time &- epoch
        return t <= 0 ? 0 : (t + ConnectionTable.tickNanoseconds - 1) / ConnectionTable.tickNanoseconds
    }

    /// The time a deadline tick stands for.
    @inline(__always)
    func time(ofTick t: UInt32) -> Int64 { epoch &+ Int64(t) &* ConnectionTable.tickNanoseconds }

    // MARK: Hashing

    @inline(__always)
    private func hash(protocolNumber: UInt8, clientHigh: UInt64, clientLow: UInt64, clientPort: UInt16) -> UInt64 {
        KernelHash.mix(clientHigh ^ (clientLow &* 0x9E37_79B9_7F4A_7C15),
                       UInt64(protocolNumber) << 16 | UInt64(clientPort), seed: seed)
    }

    @inline(__always)
    private func hash(of e: HotEntry) -> UInt64 {
        hash(protocolNumber: e.protocolNumber, clientHigh: e.clientHigh, clientLow: e.clientLow, clientPort: e.clientPort)
    }

    /// The hash a client-side packet's entry is indexed under.
    @inline(__always)
    func hash(of p: PacketSummary) -> UInt64 {
        hash(protocolNumber: p.protocolNumber, clientHigh: p.source.high, clientLow: p.source.low, clientPort: p.sourcePort)
    }

    /// Finds the entry a client-side packet (or a template key) belongs to.
    @inline(__always)
    func find(_ key: ConnectionKey, template: Bool) -> Int32? {
        find(key, template: template,
             hash: hash(protocolNumber: key.protocolNumber, clientHigh: key.client.high, clientLow: key.client.low,
                        clientPort: key.clientPort))
    }

    /// `find` with the key's hash already computed.
    @inline(__always)
    func find(_ key: ConnectionKey, template: Bool, hash h: UInt64) -> Int32? {
        let tag = h & 0xFFFF_FFFF
        let familyBit: UInt8 = key.client.isV6 ? 1 : 0
        let templateBit = template ? ConnectionFlags.template.rawValue : 0
        let index = storage.index
        let hot = storage.hot
        var slot = Int(truncatingIfNeeded: h) & indexMask
        while true {
            let v = index[slot]
            if v == 0 { return nil }
            if v >> 32 == tag {
                let i = Int(v & 0xFFFF_FFFF)
                let e = hot[i]
                if e.clientLow == key.client.low && e.clientPort == key.clientPort && e.virtualPort == key.virtualPort
                    && e.virtualLow == key.virtual.low && e.protocolNumber == key.protocolNumber
                    && e.clientHigh == key.client.high && e.virtualHigh == key.virtual.high
                    && e.families & 1 == familyBit
                    && e.flags & ConnectionFlags.template.rawValue == templateBit {
                    return Int32(i)
                }
            }
            slot = (slot + 1) & indexMask
        }
    }

    /// First stage of a burst pre-load: starts loading the index slot a packet hashes to.
    @inline(__always)
    func prefetchIndex(hash h: UInt64) {
        lvs_prefetch(storage.index + (Int(truncatingIfNeeded: h) & indexMask))
    }

    /// Second stage: the index slot is in cache by now; starts loading the entry it points at.
    @inline(__always)
    func prefetchEntry(hash h: UInt64) {
        let v = storage.index[Int(truncatingIfNeeded: h) & indexMask]
        guard v != 0 else { return }
        lvs_prefetch_for_write(storage.hot + Int(v & 0xFFFF_FFFF))
    }

    /// Finds the NAT connection a reply from `server` to `client` belongs to.
    func findReply(protocolNumber: UInt8, server: Endpoint, client: Endpoint) -> Int32? {
        let h = hash(protocolNumber: protocolNumber, clientHigh: client.address.high, clientLow: client.address.low,
                     clientPort: client.port)
        let tag = h & 0xFFFF_FFFF
        var slot = Int(truncatingIfNeeded: h) & indexMask
        while true {
            let v = storage.index[slot]
            if v == 0 { return nil }
            if v >> 32 == tag {
                let i = Int(v & 0xFFFF_FFFF)
                let e = storage.hot[i]
                if e.clientLow == client.address.low && e.clientHigh == client.address.high && e.clientPort == client.port
                    && e.destinationPort == server.port && e.protocolNumber == protocolNumber && !e.isTemplate {
                    let c = storage.cold[i]
                    if c.destinationLow == server.address.low && c.destinationHigh == server.address.high {
                        return Int32(i)
                    }
                }
            }
            slot = (slot + 1) & indexMask
        }
    }

    // MARK: Insert and remove

    /// Stores a new entry, indexes it and arms its timer for `deadline` (caller's time). Nil when full.
    mutating func insert(_ entry: ConnectionEntry, deadline: Int64, hashed: Bool = true) -> Int32? {
        guard count < capacity else { return nil }
        makeUnique()
        var e = entry
        e.hot.families |= 0x80
        e.hot.deadline = UInt32(clamping: tick(atOrAfter: deadline))
        let i: Int32
        if freeHead >= 0 {
            i = freeHead
            freeHead = storage.cold[Int(i)].next
            e.hot.generation = storage.hot[Int(i)].generation &+ 1
            storage.hot[Int(i)] = e.hot
            storage.cold[Int(i)] = e.cold
        } else {
            i = Int32(storage.highWater)
            (storage.hot + Int(i)).initialize(to: e.hot)
            (storage.cold + Int(i)).initialize(to: e.cold)
            storage.highWater += 1
        }
        count += 1
        if hashed { addToIndex(i) }
        link(i)
        return i
    }

    /// Unindexes, unlinks and frees an entry.
    mutating func remove(_ i: Int32) {
        makeUnique()
        unlink(i)
        removeFromIndex(i)
        storage.hot[Int(i)].families = 0
        storage.cold[Int(i)].next = freeHead
        freeHead = i
        count -= 1
    }

    private mutating func addToIndex(_ i: Int32) {
        let h = hash(of: storage.hot[Int(i)])
        var slot = Int(truncatingIfNeeded: h) & indexMask
        while storage.index[slot] != 0 { slot = (slot + 1) & indexMask }
        storage.index[slot] = (h & 0xFFFF_FFFF) << 32 | UInt64(UInt32(i))
        storage.hot[Int(i)].flags |= ConnectionFlags.hashed.rawValue
    }

    private mutating func removeFromIndex(_ i: Int32) {
        guard storage.hot[Int(i)].flags & ConnectionFlags.hashed.rawValue != 0 else { return }
        storage.hot[Int(i)].flags &= ~ConnectionFlags.hashed.rawValue
        let index = storage.index
        let h = hash(of: storage.hot[Int(i)])
        var slot = Int(truncatingIfNeeded: h) & indexMask
        while index[slot] & 0xFFFF_FFFF != UInt64(UInt32(i)) {
            if index[slot] == 0 { return }
            slot = (slot + 1) & indexMask
        }
        // Backward-shift deletion keeps every probe run unbroken without tombstones.
        var hole = slot
        var j = slot
        while true {
            j = (j + 1) & indexMask
            let v = index[j]
            if v == 0 { break }
            let ideal = Int(v >> 32) & indexMask
            if (hole - ideal) & indexMask <= (j - ideal) & indexMask {
                index[hole] = v
                hole = j
            }
        }
        index[hole] = 0
    }

    /// Re-keys an entry after its client-side fields changed (used to neutralise a stale template).
    mutating func rekey(_ i: Int32, _ change: (inout HotEntry) -> Void) {
        makeUnique()
        let hashed = storage.hot[Int(i)].flags & ConnectionFlags.hashed.rawValue != 0
        if hashed { removeFromIndex(i) }
        change(&storage.hot[Int(i)])
        if hashed { addToIndex(i) }
    }

    // MARK: Timer wheel

    /// Puts an entry on the wheel at its deadline's slot (never a slot already processed).
    private mutating func link(_ i: Int32) {
        link(i, toSlotOf: max(Int64(storage.hot[Int(i)].deadline), processedTick + 1))
    }

    private mutating func link(_ i: Int32, toSlotOf tick: Int64) {
        let head = Int32(Int(tick % Int64(ConnectionTable.wheelSlots)))
        let last = storage.cold[Int(head)].prev
        storage.cold[Int(i)].next = head
        storage.cold[Int(i)].prev = last
        storage.cold[Int(last)].next = i
        storage.cold[Int(head)].prev = i
    }

    private mutating func unlink(_ i: Int32) {
        let n = storage.cold[Int(i)].next
        let p = storage.cold[Int(i)].prev
        storage.cold[Int(p)].next = n
        storage.cold[Int(n)].prev = p
        storage.cold[Int(i)].next = i
        storage.cold[Int(i)].prev = i
    }

    /// Re-arms an entry's timer to `deadline` (caller's time). A later deadline is picked up lazily
    /// when the wheel reaches the old slot; an earlier one moves the entry now.
    @inline(__always)
    mutating func rearm(_ i: Int32, deadline: Int64) {
        makeUnique()
        move(i, storage.hot + Int(i), to: deadline)
    }

    /// Sets the deadline of entry `i` (whose hot line is `e`), moving it on the wheel if it is earlier.
    @inline(__always)
    private mutating func move(_ i: Int32, _ e: UnsafeMutablePointer<HotEntry>, to deadline: Int64) {
        let old = e.pointee.deadline
        let new = UInt32(clamping: tick(atOrAfter: deadline))
        e.pointee.deadline = new
        if new < old {
            unlink(i)
            link(i)
        }
    }

    /// Writes what a packet changed (state, flags, timeout, packet count) and re-arms the timer, all in
    /// the entry's hot line.
    @inline(__always)
    mutating func update(
        _ i: Int32, flags: UInt32, state: UInt8, timeout: UInt32, countPacket: Bool, deadline: Int64
    ) {
        makeUnique()
        let e = storage.hot + Int(i)
        e.pointee.flags = flags
        e.pointee.state = state
        e.pointee.timeout = timeout
        if countPacket { e.pointee.inPackets &+= 1 }
        move(i, e, to: deadline)
    }

    /// Collects (and unlinks from the wheel) every entry whose deadline is at or before `now`.
    /// The caller then removes each or re-arms it with `rearmExpired`.
    mutating func collectExpired(upTo now: Int64, into expired: inout [Int32]) {
        let target = now &- epoch < 0 ? 0 : (now &- epoch) / ConnectionTable.tickNanoseconds
        guard target > processedTick else { return }
        makeUnique()
        let wheel = Int64(ConnectionTable.wheelSlots)
        let steps = min(target - processedTick, wheel)
        var t = target - steps + 1
        while t <= target {
            let head = Int32(Int(t % wheel))
            var i = storage.cold[Int(head)].next
            // Entries moved into this same slot go to its tail and are looked at again: bounded because
            // a moved entry's slot is only this one when its deadline is a whole revolution away.
            var budget = count + 1
            while i != head && budget > 0 {
                budget -= 1
                let next = storage.cold[Int(i)].next
                let due = Int64(storage.hot[Int(i)].deadline)
                if due <= target {
                    unlink(i)
                    expired.append(i)
                } else if due % wheel != t % wheel {
                    unlink(i)
                    link(i, toSlotOf: due)
                }
                i = next
            }
            t += 1
        }
        processedTick = target
    }

    /// Puts an entry collected by `collectExpired` back on the wheel with a new deadline.
    mutating func rearmExpired(_ i: Int32, deadline: Int64) {
        makeUnique()
        storage.hot[Int(i)].deadline = UInt32(clamping: tick(atOrAfter: deadline))
        link(i)
    }
}
