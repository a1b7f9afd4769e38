import LVSCore

/// Packs entries into sync messages the way a kernel master does: entries are appended until the
/// next would not fit in `maxLength` bytes (version 1 entries start on a 4-byte boundary), then the
/// message is complete. An entry larger than `maxLength` gets a message of its own. A message holds
/// 255 entries at most (its count is one byte). Version 0 carries IPv4 entries only; others are
/// left out and counted.
public struct SyncMessageWriter: Sendable {
    public let version: UInt8
    public let syncID: UInt8
    public let maxLength: Int
    private var buffer: [UInt8] = []
    private var entries = 0
    /// Entries version 0 cannot carry (IPv6).
    public private(set) var omitted: UInt64 = 0

    public init(version: UInt8 = 1, syncID: UInt8, maxLength: Int) {
        self.version = version
        self.syncID = syncID
        self.maxLength = max(maxLength, 1)
    }

    /// Nothing waiting.
    public var isEmpty: Bool { entries == 0 }
    public var count: Int { entries }

    /// Adds an entry; returns the message it completed, if the entry did not fit in it.
    public mutating func append(_ s: SyncedConnection) -> [UInt8]? {
        version == 0 ? appendV0(s) : appendV1(s)
    }

    /// The message being filled, completed now (nil if empty).
    public mutating func finish() -> [UInt8]? {
        guard entries > 0 else { return nil }
        let size = buffer.count
        if version == 0 {
            buffer[0] = UInt8(entries)
        } else {
            buffer[4] = UInt8(entries)
        }
        buffer[2] = UInt8(size >> 8)
        buffer[3] = UInt8(size & 0xFF)
        let message = buffer
        buffer.removeAll(keepingCapacity: true)
        entries = 0
        return message
    }

    /// Encodes entries into as many messages as they need.
    public static func messages(_ list: [SyncedConnection], version: UInt8 = 1, syncID: UInt8, maxLength: Int) -> [[UInt8]] {
        var w = SyncMessageWriter(version: version, syncID: syncID, maxLength: maxLength)
        var out: [[UInt8]] = []
        for s in list { if let m = w.append(s) { out.append(m) } }
        if let m = w.finish() { out.append(m) }
        return out
    }

    private mutating func startMessage() {
        buffer.reserveCapacity(maxLength)
        if version == 0 {
            buffer += [0, syncID, 0, 0]
        } else {
            buffer += [0, syncID, 0, 0, 0, 1, 0, 0]
        }
    }

    private mutating func appendV1(_ s: SyncedConnection) -> [UInt8]? {
        let length = SyncMessage.entryLength(s)
        var completed: [UInt8]?
        if entries > 0 {
            let pad = (4 - buffer.count % 4) & 3
            if buffer.count + pad + length > maxLength || entries == 255 { completed = finish() }
        }
        if entries == 0 { startMessage() }
        while buffer.count % 4 != 0 { buffer.append(0) }
        buffer.append(s.isV6 ? 1 : 0)
        buffer.append(s.protocolNumber)
        put16(UInt16(length & 0x0FFF))
        put32(s.flags & ~ConnectionFlags.hashed.rawValue)
        put16(s.state)
        put16(s.clientPort)
        put16(s.virtualPort)
        put16(s.destinationPort)
        put32(s.fwmark)
        put32(s.timeout)
        putAddress(s.client, v6: s.isV6)
        putAddress(s.virtual, v6: s.isV6)
        putAddress(s.destination, v6: s.isV6)
        if s.flags & SyncMessage.sequenceFlags != 0 {
            buffer += [SyncMessage.optionSequence, UInt8(SyncMessage.sequenceLength)]
            putSequence(s.sequence ?? SyncSequence())
        }
        if let d = s.persistenceEngineData, !d.isEmpty {
            let n = min(d.count, SyncMessage.persistenceDataMaximum)
            buffer += [SyncMessage.optionPersistenceData, UInt8(n)]
            buffer += d.prefix(n)
        }
        if let name = s.persistenceEngineName, !name.isEmpty {
            let bytes = Array(name.utf8.prefix(SyncMessage.persistenceNameMaximum))
            buffer += [SyncMessage.optionPersistenceName, UInt8(bytes.count)]
            buffer += bytes
        }
        entries += 1
        return completed
    }

    private mutating func appendV0(_ s: SyncedConnection) -> [UInt8]? {
        guard !s.isV6 else {
            omitted &+= 1
            return nil
        }
        let withSequence = s.flags & SyncMessage.sequenceFlags != 0
        let length = SyncMessage.entryLengthV0 + (withSequence ? SyncMessage.sequenceLength : 0)
        var completed: [UInt8]?
        if entries > 0, buffer.count + length > maxLength || entries == 255 { completed = finish() }
        if entries == 0 { startMessage() }
        buffer.append(0)
        buffer.append(s.protocolNumber)
        put16(s.clientPort)
        put16(s.virtualPort)
        put16(s.destinationPort)
        put32(s.client.v4)
        put32(s.virtual.v4)
        put32(s.destination.v4)
        put16(UInt16(truncatingIfNeeded: s.flags & ~ConnectionFlags.hashed.rawValue))
        put16(s.state)
        if withSequence { putSequence(s.sequence ?? SyncSequence()) }
        entries += 1
        return completed
    }

    private mutating func put16(_ v: UInt16) {
        buffer.append(UInt8(v >> 8))
        buffer.append(UInt8(v & 0xFF))
    }

    private mutating func put32(_ v: UInt32) {
        buffer.append(UInt8(v >> 24))
        buffer.append(UInt8((v >> 16) & 0xFF))
        buffer.append(UInt8((v >> 8) & 0xFF))
        buffer.append(UInt8(v & 0xFF))
    }

    private mutating func putAddress(_ a: IPAddress, v6: Bool) {
        if v6 {
            put32(UInt32(truncatingIfNeeded: a.high >> 32))
            put32(UInt32(truncatingIfNeeded: a.high))
            put32(UInt32(truncatingIfNeeded: a.low >> 32))
            put32(UInt32(truncatingIfNeeded: a.low))
        } else {
            put32(a.v4)
        }
    }

    private mutating func putSequence(_ q: SyncSequence) {
        for v in [q.inInitial, q.inDelta, q.inPreviousDelta, q.outInitial, q.outDelta, q.outPreviousDelta] { put32(v) }
    }
}
