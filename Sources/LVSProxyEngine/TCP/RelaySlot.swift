import LVSCore

/// The two sockets of a relayed connection.
enum RelaySide: UInt8 {
    case client = 0
    case server = 1

    var other: RelaySide { self == .client ? .server : .client }

    /// How LVSCore sees bytes read on this side: from the client they are the connection's input.
    var direction: PacketDirection { self == .client ? .input : .output }
}

/// A pair of values, one for each side of a connection.
struct SidePair<Value> {
    var client: Value
    var server: Value

    init(_ value: Value) {
        client = value
        server = value
    }

    @inline(__always)
    subscript(side: RelaySide) -> Value {
        get { side == .client ? client : server }
        set {
            if side == .client { client = newValue } else { server = newValue }
        }
    }
}

/// Bytes read from one side that the other side could not take yet. Only a connection under
/// back-pressure holds a buffer; it comes from the worker's pool and goes back once written.
struct PendingBytes {
    var buffer: UnsafeMutableRawPointer?
    var start = 0
    var end = 0

    var isEmpty: Bool { start == end }
    var count: Int { end - start }
}

/// What a worker knows about one side of a connection, as bits.
struct SideState: OptionSet {
    var rawValue: UInt8

    /// An event said there is something to read (data, or the end) that has not been read yet.
    static let readable = SideState(rawValue: 1 << 0)
    /// The peer has sent its FIN: everything it will send is already queued.
    static let hangUp = SideState(rawValue: 1 << 1)
    /// The end of this side's input has been read (and reported to the table).
    static let ended = SideState(rawValue: 1 << 2)
    /// This side's output has been shut down (its peer was told there is no more).
    static let shut = SideState(rawValue: 1 << 3)
}

/// One relayed connection: its two descriptors, what each side has done, the bytes waiting for
/// each side, and the connection entry it reports to. Slots live in a preallocated array and are
/// named by index; `generation` changes each time a slot is freed, so a stale event is recognised.
struct RelaySlot {
    var fd = SidePair<Int32>(-1)
    var side = SidePair<SideState>([])
    /// Bytes waiting to be written toward each side.
    var pending = SidePair(PendingBytes())
    var generation: UInt32 = 0
    var inUse = false
    /// The connection to the real server is being set up.
    var connecting = false
    /// Send the PROXY protocol header first once connected.
    var proxyProtocol = false
    /// Real servers that already failed this connection (set only after a failure).
    var hasFailed = false
    var connection: ConnectionID = .none
    var server: Int32 = -1
    var client = Endpoint(.anyV4, 0)
    var virtual = Endpoint(.anyV4, 0)
    var destination = Endpoint(.anyV4, 0)
    /// Client bytes read before the real server answered, reported to the table after the handshake.
    var earlyBytes = 0
    /// When the connection attempt in progress gives up (monotonic nanoseconds).
    var deadline: Int64 = 0
    /// The list of connecting slots, oldest first (all share one timeout, so that is deadline order).
    var nextConnecting: Int32 = -1
    var previousConnecting: Int32 = -1
}

/// The worker's slots: one contiguous array, grown by doubling up to `limit`, with a free list.
struct RelaySlotStore {
    private(set) var base: UnsafeMutablePointer<RelaySlot>
    private(set) var capacity: Int
    let limit: Int
    private var free: [Int32] = []
    private(set) var live = 0

    init(initialCapacity: Int = 1024, limit: Int) {
        capacity = min(initialCapacity, limit)
        self.limit = limit
        base = .allocate(capacity: capacity)
        base.initialize(repeating: RelaySlot(), count: capacity)
        free.reserveCapacity(capacity)
        for i in stride(from: capacity - 1, through: 0, by: -1) { free.append(Int32(i)) }
    }

    /// A free slot marked in use, or nil when `limit` slots are live.
    mutating func allocate() -> Int32? {
        if free.isEmpty {
            guard capacity < limit else { return nil }
            grow()
        }
        let index = free.removeLast()
        base[Int(index)].inUse = true
        live += 1
        return index
    }

    /// Returns a slot to the free list, with a new generation.
    mutating func release(_ index: Int32) {
        let generation = base[Int(index)].generation &+ 1
        base[Int(index)] = RelaySlot()
        base[Int(index)].generation = generation
        free.append(index)
        live -= 1
    }

    private mutating func grow() {
        let newCapacity = min(capacity * 2, limit)
        let grown = UnsafeMutablePointer<RelaySlot>.allocate(capacity: newCapacity)
        grown.moveInitialize(from: base, count: capacity)
        (grown + capacity).initialize(repeating: RelaySlot(), count: newCapacity - capacity)
        base.deallocate()
        for i in stride(from: newCapacity - 1, through: capacity, by: -1) { free.append(Int32(i)) }
        base = grown
        capacity = newCapacity
    }

    func deallocate() {
        base.deinitialize(count: capacity)
        base.deallocate()
    }
}

/// Fixed-size buffers for connections under back-pressure, kept for reuse up to a bound.
struct RelayBufferPool {
    let size: Int
    let kept: Int
    private var spare: [UnsafeMutableRawPointer] = []

    init(size: Int, kept: Int) {
        self.size = size
        self.kept = kept
    }

    mutating func take() -> UnsafeMutableRawPointer {
        spare.popLast() ?? .allocate(byteCount: size, alignment: 16)
    }

    mutating func give(_ buffer: UnsafeMutableRawPointer) {
        if spare.count < kept { spare.append(buffer) } else { buffer.deallocate() }
    }

    mutating func deallocate() {
        for b in spare { b.deallocate() }
        spare = []
    }
}

/// Keeps a speculative system call (one that saves waiting for an event when it succeeds) only while
/// it mostly succeeds; after a run of misses it is tried once in a while, to notice a change.
struct Speculation {
    private var score: Int8 = 0
    private var skipped: UInt8 = 0

    var shouldTry: Bool {
        mutating get {
            if score >= 0 { return true }
            skipped &+= 1
            return skipped % 32 == 0
        }
    }

    mutating func record(hit: Bool) {
        score = hit ? min(score + 1, 8) : max(score - 1, -8)
    }
}
