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

/// One entry of the connection table: a connection or a persistence template. 104 bytes.
struct ConnectionEntry {
    var clientHigh: UInt64 = 0
    var clientLow: UInt64 = 0
    var virtualHigh: UInt64 = 0
    var virtualLow: UInt64 = 0
    var destinationHigh: UInt64 = 0
    var destinationLow: UInt64 = 0
    /// When the entry expires (nanoseconds on the caller's clock).
    var deadline: Int64 = 0
    var flags: UInt32 = 0
    var fwmark: UInt32 = 0
    /// Current timeout in milliseconds.
    var timeout: UInt32 = 0
    var inPackets: UInt32 = 0
    /// Real server slot, or -1 when unbound.
    var server: Int32 = -1
    /// The template controlling this connection, or -1.
    var control: Int32 = -1
    /// How many connections this entry controls.
    var controlled: UInt32 = 0
    /// Timer-wheel links (also the free-list link).
    var next: Int32 = -1
    var prev: Int32 = -1
    var clientPort: UInt16 = 0
    var virtualPort: UInt16 = 0
    var destinationPort: UInt16 = 0
    var protocolNumber: UInt8 = 0
    var state: UInt8 = 0
    /// Bit 0: the client/virtual side is IPv6; bit 1: the real server is IPv6; bit 7: in use.
    var families: UInt8 = 0

    var client: IPAddress {
        families & 1 != 0 ? IPAddress(v6High: clientHigh, low: clientLow) : IPAddress(v4: UInt32(truncatingIfNeeded: clientLow))
    }
    var virtual: IPAddress {
        families & 1 != 0 ? IPAddress(v6High: virtualHigh, low: virtualLow) : IPAddress(v4: UInt32(truncatingIfNeeded: virtualLow))
    }
    var destination: IPAddress {
        families & 2 != 0
            ? IPAddress(v6High: destinationHigh, low: destinationLow)
            : IPAddress(v4: UInt32(truncatingIfNeeded: destinationLow))
    }
    var isTemplate: Bool { flags & ConnectionFlags.template.rawValue != 0 }
}

/// The lookup key of an entry from the client side (what an inbound packet carries).
public struct ConnectionKey: Sendable, Hashable {
    public var protocolNumber: UInt8
    public var client: IPAddress
    public var clientPort: UInt16
    public var virtual: IPAddress
    public var virtualPort: UInt16

    public init(protocolNumber: UInt8, client: IPAddress, clientPort: UInt16, virtual: IPAddress, virtualPort: UInt16) {
        self.protocolNumber = protocolNumber
        self.client = client
        self.clientPort = clientPort
        self.virtual = virtual
        self.virtualPort = virtualPort
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
    private(set) var count = 0
    /// Entry storage: the first `wheelSlots` entries are the wheel's list heads (sentinels).
    private var entries: ContiguousArray<ConnectionEntry>
    private var freeHead: Int32 = -1
    /// Open-addressing index: 0 is empty, otherwise hash tag (high 32 bits) | entry index (low 32).
    private var index: ContiguousArray<UInt64>
    private let indexMask: Int
    private let seed: UInt64
    /// The last wheel tick processed.
    private var processedTick: Int64

    init(capacity: Int, seed: UInt64, now: Int64 = 0) {
        precondition(capacity > 0 && capacity < Int(Int32.max) - ConnectionTable.wheelSlots)
        self.capacity = capacity
        self.seed = seed
        let slots = ConnectionTable.wheelSlots
        entries = ContiguousArray()
        entries.reserveCapacity(slots + capacity)
        for i in 0..<slots {
            var head = ConnectionEntry()
            head.next = Int32(i)
            head.prev = Int32(i)
            entries.append(head)
        }
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        index = ContiguousArray(repeating: 0, count: size)
        indexMask = size - 1
        processedTick = now / ConnectionTable.tickNanoseconds
    }

    /// Bytes of table memory per connection at full capacity (entry plus its share of the index).
    static func bytesPerEntry(capacity: Int) -> Int {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        return MemoryLayout<ConnectionEntry>.stride + size * MemoryLayout<UInt64>.stride / capacity
    }

    // MARK: Entries

    @inline(__always)
    subscript(i: Int32) -> ConnectionEntry {
        get { entries[Int(i)] }
        _modify { yield &entries[Int(i)] }
    }

    /// Whether `i` names an entry in use.
    func isLive(_ i: Int32) -> Bool {
        Int(i) >= ConnectionTable.wheelSlots && Int(i) < entries.count && entries[Int(i)].families & 0x80 != 0
    }

    /// Indices of the live entries (for listings; allocates).
    var liveIndices: [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(count)
        for i in ConnectionTable.wheelSlots..<entries.count where entries[i].families & 0x80 != 0 {
            out.append(Int32(i))
        }
        return out
    }

    // MARK: Hashing

    @inline(__always)
    private func hash(protocolNumber: UInt8, clientHigh: UInt64, clientLow: UInt64, clientPort: UInt16) -> UInt64 {
        KernelHash.mix(clientHigh ^ (clientLow &* 0x9E37_79B9_7F4A_7C15),
                       UInt64(protocolNumber) << 16 | UInt64(clientPort), seed: seed)
    }

    @inline(__always)
    private func hash(of e: ConnectionEntry) -> UInt64 {
        hash(protocolNumber: e.protocolNumber, clientHigh: e.clientHigh, clientLow: e.clientLow, clientPort: e.clientPort)
    }

    /// Finds the entry a client-side packet (or a template key) belongs to.
    @inline(__always)
    func find(_ key: ConnectionKey, template: Bool) -> Int32? {
        let h = hash(protocolNumber: key.protocolNumber, clientHigh: key.client.high, clientLow: key.client.low,
                     clientPort: key.clientPort)
        let tag = h & 0xFFFF_FFFF
        let familyBit: UInt8 = key.client.isV6 ? 1 : 0
        let templateBit = template ? ConnectionFlags.template.rawValue : 0
        var slot = Int(truncatingIfNeeded: h) & indexMask
        while true {
            let v = index[slot]
            if v == 0 { return nil }
            if v >> 32 == tag {
                let i = Int(v & 0xFFFF_FFFF)
                let e = entries[i]
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

    /// Finds the NAT connection a reply from `server` to `client` belongs to.
    func findReply(protocolNumber: UInt8, server: Endpoint, client: Endpoint) -> Int32? {
        let h = hash(protocolNumber: protocolNumber, clientHigh: client.address.high, clientLow: client.address.low,
                     clientPort: client.port)
        let tag = h & 0xFFFF_FFFF
        var slot = Int(truncatingIfNeeded: h) & indexMask
        while true {
            let v = index[slot]
            if v == 0 { return nil }
            if v >> 32 == tag {
                let i = Int(v & 0xFFFF_FFFF)
                let e = entries[i]
                if e.clientLow == client.address.low && e.clientHigh == client.address.high && e.clientPort == client.port
                    && e.destinationLow == server.address.low && e.destinationHigh == server.address.high
                    && e.destinationPort == server.port && e.protocolNumber == protocolNumber && !e.isTemplate {
                    return Int32(i)
                }
            }
            slot = (slot + 1) & indexMask
        }
    }

    // MARK: Insert and remove

    /// Stores a new entry, indexes it and arms its timer. Nil when the table is full.
    mutating func insert(_ entry: ConnectionEntry, hashed: Bool = true) -> Int32? {
        guard count < capacity else { return nil }
        var e = entry
        e.families |= 0x80
        let i: Int32
        if freeHead >= 0 {
            i = freeHead
            freeHead = entries[Int(i)].next
            entries[Int(i)] = e
        } else {
            i = Int32(entries.count)
            entries.append(e)
        }
        count += 1
        if hashed { addToIndex(i) }
        link(i)
        return i
    }

    /// Unindexes, unlinks and frees an entry.
    mutating func remove(_ i: Int32) {
        unlink(i)
        removeFromIndex(i)
        entries[Int(i)].families = 0
        entries[Int(i)].next = freeHead
        freeHead = i
        count -= 1
    }

    private mutating func addToIndex(_ i: Int32) {
        let h = hash(of: entries[Int(i)])
        var slot = Int(truncatingIfNeeded: h) & indexMask
        while index[slot] != 0 { slot = (slot + 1) & indexMask }
        index[slot] = (h & 0xFFFF_FFFF) << 32 | UInt64(UInt32(i))
        entries[Int(i)].flags |= ConnectionFlags.hashed.rawValue
    }

    private mutating func removeFromIndex(_ i: Int32) {
        guard entries[Int(i)].flags & ConnectionFlags.hashed.rawValue != 0 else { return }
        entries[Int(i)].flags &= ~ConnectionFlags.hashed.rawValue
        let h = hash(of: entries[Int(i)])
        var slot = Int(truncatingIfNeeded: h) & indexMask
        while index[slot] & 0xFFFF_FFFF != UInt64(UInt32(i)) || index[slot] == 0 {
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
            let distanceToHole = (hole - ideal) & indexMask
            let distanceToJ = (j - ideal) & indexMask
            if distanceToHole <= distanceToJ {
                index[hole] = v
                hole = j
            }
        }
        index[hole] = 0
    }

    /// Re-keys an entry after its client-side fields changed (used to neutralise a stale template).
    mutating func rekey(_ i: Int32, _ change: (inout ConnectionEntry) -> Void) {
        let hashed = entries[Int(i)].flags & ConnectionFlags.hashed.rawValue != 0
        if hashed { removeFromIndex(i) }
        change(&entries[Int(i)])
        if hashed { addToIndex(i) }
    }

    // MARK: Timer wheel

    @inline(__always)
    private static func tick(for deadline: Int64) -> Int64 {
        // The first tick at or after the deadline.
        (deadline + tickNanoseconds - 1) / tickNanoseconds
    }

    private mutating func link(_ i: Int32) {
        let t = max(ConnectionTable.tick(for: entries[Int(i)].deadline), processedTick + 1)
        let head = Int32(Int(t % Int64(ConnectionTable.wheelSlots)))
        let last = entries[Int(head)].prev
        entries[Int(i)].next = head
        entries[Int(i)].prev = last
        entries[Int(last)].next = i
        entries[Int(head)].prev = i
    }

    private mutating func unlink(_ i: Int32) {
        let n = entries[Int(i)].next
        let p = entries[Int(i)].prev
        entries[Int(p)].next = n
        entries[Int(n)].prev = p
        entries[Int(i)].next = i
        entries[Int(i)].prev = i
    }

    /// Re-arms an entry's timer to `deadline`. Later deadlines are picked up lazily when the wheel
    /// reaches the old slot; an earlier one moves the entry now.
    @inline(__always)
    mutating func rearm(_ i: Int32, deadline: Int64) {
        let old = entries[Int(i)].deadline
        entries[Int(i)].deadline = deadline
        if ConnectionTable.tick(for: deadline) < ConnectionTable.tick(for: old) {
            unlink(i)
            link(i)
        }
    }

    /// Collects (and unlinks from the wheel) every entry whose deadline is at or before `now`.
    /// The caller then removes each or re-arms it with `rearmExpired`.
    mutating func collectExpired(upTo now: Int64, into expired: inout [Int32]) {
        let target = now / ConnectionTable.tickNanoseconds
        guard target > processedTick else { return }
        let steps = min(target - processedTick, Int64(ConnectionTable.wheelSlots))
        var t = target - steps + 1
        while t <= target {
            let head = Int32(Int(t % Int64(ConnectionTable.wheelSlots)))
            var i = entries[Int(head)].next
            // Entries moved into this same slot go to its tail and are looked at again: bounded because
            // a moved entry's slot is only this one when its deadline is a whole revolution away.
            var budget = count + 1
            while i != head && budget > 0 {
                budget -= 1
                let next = entries[Int(i)].next
                let deadline = entries[Int(i)].deadline
                if deadline <= now {
                    unlink(i)
                    expired.append(i)
                } else {
                    let due = ConnectionTable.tick(for: deadline)
                    if due % Int64(ConnectionTable.wheelSlots) != t % Int64(ConnectionTable.wheelSlots) {
                        unlink(i)
                        let slot = Int32(Int(due % Int64(ConnectionTable.wheelSlots)))
                        let last = entries[Int(slot)].prev
                        entries[Int(i)].next = slot
                        entries[Int(i)].prev = last
                        entries[Int(last)].next = i
                        entries[Int(slot)].prev = i
                    }
                }
                i = next
            }
            t += 1
        }
        processedTick = target
    }

    /// Puts an entry collected by `collectExpired` back on the wheel with a new deadline.
    mutating func rearmExpired(_ i: Int32, deadline: Int64) {
        entries[Int(i)].deadline = deadline
        link(i)
    }
}
