/// The part of an entry a lookup compares and every packet updates: one 64-byte cache line.
struct HotEntry {
    var clientHigh: UInt64 = 0
    var clientLow: UInt64 = 0
    var virtualHigh: UInt64 = 0
    var virtualLow: UInt64 = 0
    var flags: UInt32 = 0
    /// Real server slot, or -1 when unbound.
    var server: Int32 = -1
    /// Current timeout in milliseconds.
    var timeout: UInt32 = 0
    /// Expiry, in wheel ticks since the table's epoch.
    var deadline: UInt32 = 0
    var inPackets: UInt32 = 0
    var clientPort: UInt16 = 0
    var virtualPort: UInt16 = 0
    var destinationPort: UInt16 = 0
    var protocolNumber: UInt8 = 0
    var state: UInt8 = 0
    /// Bit 0: the client/virtual side is IPv6; bit 1: the real server is IPv6; bit 7: in use.
    var families: UInt8 = 0
    /// Bumped each time the slot is reused, so a stale `ConnectionID` is recognised.
    var generation: UInt16 = 0

    var isTemplate: Bool { flags & ConnectionFlags.template.rawValue != 0 }
}

/// The rest of an entry: touched when a connection is created, expires, is listed or synced. 40 bytes.
struct ColdEntry {
    var destinationHigh: UInt64 = 0
    var destinationLow: UInt64 = 0
    var fwmark: UInt32 = 0
    /// The template controlling this connection, or -1.
    var control: Int32 = -1
    /// How many connections this entry controls.
    var controlled: UInt32 = 0
    /// Timer-wheel links (also the free-list link).
    var next: Int32 = -1
    var prev: Int32 = -1
    /// The state when the entry was last sent to the sync backups (the kernel's old_state).
    var syncedState: UInt8 = 0
}

/// A whole entry, for creating and listing connections.
struct ConnectionEntry {
    var hot = HotEntry()
    var cold = ColdEntry()

    init() {}

    init(hot: HotEntry, cold: ColdEntry) {
        self.hot = hot
        self.cold = cold
    }

    /// A new entry's addresses, ports and protocol (flags, timeout and the rest to be set).
    init(protocolNumber: UInt8, client: IPAddress, clientPort: UInt16, virtual: IPAddress, virtualPort: UInt16,
         destination: IPAddress, destinationPort: UInt16, fwmark: UInt32) {
        hot.protocolNumber = protocolNumber
        hot.clientHigh = client.high
        hot.clientLow = client.low
        hot.clientPort = clientPort
        hot.virtualHigh = virtual.high
        hot.virtualLow = virtual.low
        hot.virtualPort = virtualPort
        cold.destinationHigh = destination.high
        cold.destinationLow = destination.low
        hot.destinationPort = destinationPort
        hot.families = (client.isV6 ? 1 : 0) | (destination.isV6 ? 2 : 0)
        cold.fwmark = fwmark
    }

    var client: IPAddress {
        hot.families & 1 != 0 ? IPAddress(v6High: hot.clientHigh, low: hot.clientLow)
            : IPAddress(v4: UInt32(truncatingIfNeeded: hot.clientLow))
    }
    var virtual: IPAddress {
        hot.families & 1 != 0 ? IPAddress(v6High: hot.virtualHigh, low: hot.virtualLow)
            : IPAddress(v4: UInt32(truncatingIfNeeded: hot.virtualLow))
    }
    var destination: IPAddress {
        hot.families & 2 != 0
            ? IPAddress(v6High: cold.destinationHigh, low: cold.destinationLow)
            : IPAddress(v4: UInt32(truncatingIfNeeded: cold.destinationLow))
    }
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

/// Lets the owner of the process prepare large table memory before it is first touched (the daemon
/// asks the kernel for transparent huge pages there). Called once per region, from the initialiser.
public typealias MemoryPreparation = (UnsafeMutableRawBufferPointer) -> Void

/// The table's memory: entries split in a hot and a cold array, and the hash index. Shared between
/// copies of a `ConnectionTable` until one of them writes (copy on write).
final class ConnectionStorage: @unchecked Sendable {
    // @unchecked Sendable: a storage object is only mutated through a ConnectionTable that holds the
    // sole reference (every mutating path calls makeUnique first), so no two owners write it.
    let slots: Int
    let indexSize: Int
    let hot: UnsafeMutablePointer<HotEntry>
    let cold: UnsafeMutablePointer<ColdEntry>
    let index: UnsafeMutablePointer<UInt64>
    /// Entries ever handed out (the rest of the arrays has never been touched).
    var highWater: Int

    private static func allocate(_ bytes: Int, prepare: MemoryPreparation?) -> UnsafeMutableRawPointer {
        // Large regions are 2 MiB aligned so that huge pages can back them.
        let alignment = bytes >= 4 << 20 ? 2 << 20 : 64
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment)
        prepare?(UnsafeMutableRawBufferPointer(start: raw, count: bytes))
        return raw
    }

    init(slots: Int, indexSize: Int, prepare: MemoryPreparation?) {
        self.slots = slots
        self.indexSize = indexSize
        hot = ConnectionStorage.allocate(slots * MemoryLayout<HotEntry>.stride, prepare: prepare)
            .bindMemory(to: HotEntry.self, capacity: slots)
        cold = ConnectionStorage.allocate(slots * MemoryLayout<ColdEntry>.stride, prepare: prepare)
            .bindMemory(to: ColdEntry.self, capacity: slots)
        index = ConnectionStorage.allocate(indexSize * 8, prepare: prepare).bindMemory(to: UInt64.self, capacity: indexSize)
        index.initialize(repeating: 0, count: indexSize)
        highWater = 0
    }

    func copy() -> ConnectionStorage {
        let c = ConnectionStorage(slots: slots, indexSize: indexSize, prepare: nil)
        c.hot.initialize(from: hot, count: highWater)
        c.cold.initialize(from: cold, count: highWater)
        c.index.update(from: index, count: indexSize)
        c.highWater = highWater
        return c
    }

    deinit {
        hot.deinitialize(count: highWater)
        cold.deinitialize(count: highWater)
        UnsafeMutableRawPointer(hot).deallocate()
        UnsafeMutableRawPointer(cold).deallocate()
        UnsafeMutableRawPointer(index).deallocate()
    }
}
