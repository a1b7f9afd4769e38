import LVSCore

/// The IPVS connection-sync protocol (the kernel's ip_vs_sync.c): version 1 messages (the default;
/// IPv4 and IPv6 entries, fwmark, timeout, options) and version 0 (IPv4 only). All fields are
/// big-endian. Pure: `SyncMessageWriter` packs entries, `SyncMessage.decode` checks and unpacks
/// what a backup receives the way the kernel does, refusing what it refuses.
public enum SyncMessage {
    /// Version 1 header: reserved 0, sync ID, size, entry count, version 1, spare 0.
    public static let headerLength = 8
    /// Version 0 header: entry count, sync ID, size.
    public static let headerLengthV0 = 4
    /// Entry sizes without options: version 1 IPv4 and IPv6, version 0.
    public static let entryLengthV4 = 36
    public static let entryLengthV6 = 72
    public static let entryLengthV0 = 24
    /// The sequence option's data (two directions of three 32-bit words).
    public static let sequenceLength = 24
    /// Option types; 0x40 marks an option a receiver may skip if it does not know it.
    public static let optionSequence: UInt8 = 1
    public static let optionPersistenceData: UInt8 = 2
    public static let optionPersistenceName: UInt8 = 3
    public static let optionSkippable: UInt8 = 0x40
    /// The kernel's IP_VS_PEDATA_MAXLEN and IP_VS_PENAME_MAXLEN.
    public static let persistenceDataMaximum = 255
    public static let persistenceNameMaximum = 16

    /// The bytes entry `s` takes in a version 1 message (options included, padding not).
    public static func entryLength(_ s: SyncedConnection) -> Int {
        var n = s.isV6 ? entryLengthV6 : entryLengthV4
        if s.flags & sequenceFlags != 0 { n += 2 + sequenceLength }
        if let d = s.persistenceEngineData, !d.isEmpty { n += 2 + min(d.count, persistenceDataMaximum) }
        if let name = s.persistenceEngineName, !name.isEmpty { n += 2 + min(name.utf8.count, persistenceNameMaximum) }
        return n
    }

    /// IP_VS_CONN_F_IN_SEQ | IP_VS_CONN_F_OUT_SEQ.
    static let sequenceFlags: UInt32 = 0x0600

    // MARK: Decoding

    /// Why a backup refused a whole message or one entry of it.
    public enum Refusal: String, Sendable, Hashable, CaseIterable {
        /// Whole message: shorter than a header; size field not the datagram's length; another sync ID.
        case tooShort = "too short"
        case badSize = "size mismatch"
        case otherSyncID = "other sync id"
        /// Whole message: an entry runs past the end, has an unknown entry version or type, or a
        /// malformed option.
        case truncated = "truncated entry"
        case unknownEntryVersion = "unknown entry version"
        case badEntryType = "bad entry type"
        case badOption = "bad option"
        /// One entry: an option it must understand and does not, a protocol or state IPVS does not
        /// have, a persistence engine it does not know.
        case mandatoryOption = "unknown mandatory option"
        case unknownProtocol = "unknown protocol"
        case invalidState = "invalid state"
        case unknownPersistenceEngine = "unknown persistence engine"
    }

    public struct Decoded: Sendable, Hashable {
        public var version: UInt8 = 1
        public var syncID: UInt8 = 0
        /// The entries to apply, flags masked and SYNC added as the kernel does.
        public var entries: [SyncedConnection] = []
        /// Set when the message was refused from this point on (entries before it stay).
        public var refused: Refusal?
        /// Entries skipped one by one.
        public var skipped: [Refusal] = []
    }

    /// Decodes a datagram as a backup whose own sync ID is `ownSyncID` (0 accepts every ID).
    public static func decode(_ bytes: [UInt8], ownSyncID: UInt8 = 0) -> Decoded {
        bytes.withUnsafeBytes { decode($0, ownSyncID: ownSyncID) }
    }

    public static func decode(_ b: UnsafeRawBufferPointer, ownSyncID: UInt8 = 0) -> Decoded {
        var out = Decoded()
        guard b.count >= headerLengthV0 else {
            out.refused = .tooShort
            return out
        }
        guard Int(be16(b, 2)) == b.count else {
            out.refused = .badSize
            return out
        }
        out.syncID = b[1]
        guard ownSyncID == 0 || b[1] == ownSyncID else {
            out.refused = .otherSyncID
            return out
        }
        if b.count >= headerLength, b[5] == 1, b[0] == 0, be16(b, 6) == 0 {
            decodeV1(b, into: &out)
        } else {
            out.version = 0
            decodeV0(b, into: &out)
        }
        return out
    }

    private static func decodeV1(_ b: UnsafeRawBufferPointer, into out: inout Decoded) {
        let count = Int(b[4])
        var p = headerLength
        for _ in 0..<count {
            guard p + entryLengthV4 <= b.count else {
                out.refused = .truncated
                return
            }
            let verSize = be16(b, p + 2)
            let size = Int(verSize & 0x0FFF)
            let end = p + size
            guard end <= b.count else {
                out.refused = .truncated
                return
            }
            guard verSize >> 12 == 0 else {
                out.refused = .unknownEntryVersion
                return
            }
            switch entryV1(b, from: p, to: end) {
            case .entry(let s): out.entries.append(s)
            case .skip(let why): out.skipped.append(why)
            case .refuse(let why):
                out.refused = why
                return
            }
            p += (size + 3) & ~3
        }
    }

    private enum EntryResult {
        case entry(SyncedConnection)
        case skip(Refusal)
        case refuse(Refusal)
    }

    /// The kernel's `ip_vs_proc_sync_conn`: a negative result there drops the rest of the message,
    /// a positive one only this entry.
    private static func entryV1(_ b: UnsafeRawBufferPointer, from start: Int, to end: Int) -> EntryResult {
        let type = b[start]
        let v6: Bool
        var p: Int
        if type & 1 != 0 {
            v6 = true
            p = start + entryLengthV6
        } else if type == 0 {
            v6 = false
            p = start + entryLengthV4
        } else {
            return .refuse(.badEntryType)
        }
        guard p <= end else { return .refuse(.truncated) }
        var sequence: SyncSequence?
        var peData: [UInt8]?
        var peName: String?
        while p < end {
            guard p + 2 <= end else { return .refuse(.badOption) }
            let optionType = b[p]
            let length = Int(b[p + 1])
            p += 2
            guard length > 0, p + length <= end else { return .refuse(.badOption) }
            switch optionType & ~optionSkippable {
            case optionSequence:
                guard length == sequenceLength, sequence == nil else { return .refuse(.badOption) }
                sequence = self.sequence(b, at: p)
            case optionPersistenceData:
                guard length <= persistenceDataMaximum, peData == nil else { return .refuse(.badOption) }
                peData = Array(b[p..<(p + length)])
            case optionPersistenceName:
                guard length <= persistenceNameMaximum, peName == nil else { return .refuse(.badOption) }
                peName = String(decoding: b[p..<(p + length)], as: UTF8.self)
            default:
                // The kernel stops reading the entry at an unknown mandatory option and drops it.
                if optionType & optionSkippable == 0 { return .skip(.mandatoryOption) }
            }
            p += length
        }
        let flags = be32(b, start + 4) & SyncedConnection.backupMask | ConnectionFlags.sync.rawValue
        let address: (Int) -> IPAddress = { o in
            v6 ? IPAddress(v6High: be64(b, o), low: be64(b, o + 8)) : IPAddress(v4: be32(b, o))
        }
        let step = v6 ? 16 : 4
        var s = SyncedConnection(
            protocolNumber: b[start + 1], flags: flags, state: be16(b, start + 8),
            client: address(start + 24), clientPort: be16(b, start + 10),
            virtual: address(start + 24 + step), virtualPort: be16(b, start + 12),
            destination: address(start + 24 + 2 * step), destinationPort: be16(b, start + 14),
            fwmark: be32(b, start + 16), timeout: be32(b, start + 20))
        if let why = check(s) { return .skip(why) }
        // The sequence data counts with the flags that say it is kept (zero when they say so alone).
        if flags & sequenceFlags != 0 { s.sequence = sequence ?? SyncSequence() }
        if let name = peName {
            // SIP is the only persistence engine IPVS has.
            guard name == "sip" else { return .skip(.unknownPersistenceEngine) }
            s.persistenceEngineName = name
            s.persistenceEngineData = peData
        }
        return .entry(s)
    }

    /// Protocols IPVS handles and their number of states (templates may carry any state).
    static func check(_ s: SyncedConnection) -> Refusal? {
        guard !s.isTemplate else { return nil }
        let states: Int
        switch s.protocolNumber {
        case IPProtocol.tcp.rawValue: states = TCPState.allCases.count
        case IPProtocol.udp.rawValue: states = 1
        case IPProtocol.sctp.rawValue: states = SCTPState.allCases.count
        case 50, 51: states = 1  // ESP, AH
        default: return .unknownProtocol
        }
        return Int(s.state) < states ? nil : .invalidState
    }

    private static func decodeV0(_ b: UnsafeRawBufferPointer, into out: inout Decoded) {
        let count = Int(b[0])
        var p = headerLengthV0
        for _ in 0..<count {
            guard p + entryLengthV0 <= b.count else {
                out.refused = .truncated
                return
            }
            let flags = (UInt32(be16(b, p + 20)) | ConnectionFlags.sync.rawValue) & ~ConnectionFlags.hashed.rawValue
            var sequence: SyncSequence?
            let start = p
            if flags & sequenceFlags != 0 {
                p += entryLengthV0 + sequenceLength
                guard p <= b.count else {
                    out.refused = .truncated
                    return
                }
                sequence = self.sequence(b, at: start + entryLengthV0)
            } else {
                p += entryLengthV0
            }
            var s = SyncedConnection(
                protocolNumber: b[start + 1], flags: flags, state: be16(b, start + 22),
                client: IPAddress(v4: be32(b, start + 8)), clientPort: be16(b, start + 2),
                virtual: IPAddress(v4: be32(b, start + 12)), virtualPort: be16(b, start + 4),
                destination: IPAddress(v4: be32(b, start + 16)), destinationPort: be16(b, start + 6))
            if let why = check(s) {
                out.skipped.append(why)
                continue
            }
            s.sequence = sequence
            out.entries.append(s)
        }
    }

    // MARK: Bytes

    /// The sequence block: in and out, each initial, delta and previous delta.
    static func sequence(_ b: UnsafeRawBufferPointer, at o: Int) -> SyncSequence {
        SyncSequence(inInitial: be32(b, o), inDelta: be32(b, o + 4), inPreviousDelta: be32(b, o + 8),
                     outInitial: be32(b, o + 12), outDelta: be32(b, o + 16), outPreviousDelta: be32(b, o + 20))
    }

    @inline(__always) static func be16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
    @inline(__always) static func be32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
    @inline(__always) static func be64(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 { UInt64(be32(b, o)) << 32 | UInt64(be32(b, o + 4)) }
}
