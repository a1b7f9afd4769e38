import LVSCore
import LVSPacket
import LVSState
import LinuxNet
import NIOConcurrencyHelpers

/// The in-kernel path. The engine decides every connection with the table, as IPVS would; once a
/// TCP connection is scheduled (or a UDP flow has its real server), what its packets need is
/// fixed: new MACs, a hop less, and for NAT a new address and port. The engine then writes that
/// into a BPF hash map, and a tcx ingress program on each interface
/// forwards the flow's packets itself (bpf_redirect), without the copy to user space and back
/// that costs the engine almost all of its CPU (AF_PACKET receive and send, measured with perf).
///
/// The rules that keep the table the truth:
/// - A packet with IP options, a fragment, one whose hop limit runs out, anything not IPv4 goes
///   to the engine. So does a SYN (without ACK) of a flow in the map, which also marks its flow
///   "stopped", so that what follows it goes to the engine too, in order, until the engine has
///   seen it and withdrawn the flow.
/// - The program forwards the other segments that move TCP's state (SYN+ACK, FIN, RST, and the
///   first plain segment of a flow handed over before the handshake ended) and reports each, its
///   flow and flags, in a ring buffer the engine reads before each batch of frames, so the table
///   moves as IPVS would (`IPVS.offloadedSegment`) and a connection leaving ESTABLISHED is taken
///   back. After a FIN or RST the program takes the flow out of the map itself, its last figures
///   in the report, which spares the engine a system call for each closing connection; but a DR
///   flow closed by its client's FIN stays in the map, closed, for as long as its connection is
///   in the table (IPVS continues such a connection when the client's port comes back with a
///   SYN: the program reopens the flow in place and reports it). A new connection's flows can
///   thus be handed over as soon as its SYN is scheduled. When the ring is full, the segment
///   takes the SYN's way.
/// - Under rr and wrr, a DR service's SYNs are scheduled in the kernel too, with the scheduler's
///   choices taken ahead (`SynAhead`): the packet sockets' filter, which sees a frame before
///   the tcx program, gives a SYN without a flow the next choice and puts its flow in the map.
/// - The map counts packets and bytes per flow and stamps the last one; the engine adds them to
///   the connection's counters and re-arms its timer from them every half second, so ipvsadm
///   -Ln, --stats, --rate and -Lnc stay true, and idle flows still expire.
/// - The sockets' filter (an eBPF socket filter over the same map) turns away exactly the frames
///   the tcx program forwards; both run the same lookup (`emitLookup`), so a frame is forwarded
///   by one of the two, never both or neither (except for the instant a flow is added).
/// - The links are closed with the engine, or with the process if it dies: nothing stays behind.
public enum FastPathLayout {
    /// Key: IPv4 source, destination (network order), source and destination port (network
    /// order), protocol, three zero bytes.
    public static let keySize = 16
    /// Value: action (1 MACs only, 2 new destination, 3 new source), stopped (1; 2: closed),
    /// port, address, out interface, report (the next plain segment is reported; 2: a SYN the
    /// filter made it for), reopened, reserved, destination MAC, source MAC, the sequence number
    /// of a choice taken ahead, packets, bytes, last (ns).
    public static let valueSize = 56

    public enum Action: UInt8, Sendable {
        case macsOnly = 1
        case destination = 2
        case source = 3
    }

    static let actionOffset = 0, stoppedOffset = 1, portOffset = 2, addressOffset = 4, interfaceOffset = 8, reportOffset = 12
    /// The report byte of a flow the socket filter has just made for a SYN with a decision taken
    /// ahead: the tcx program forwards that SYN (once) and reports it.
    static let reportFresh: UInt8 = 2
    /// Where a flow made for a SYN keeps the sequence number of the decision it took (in the
    /// value), and where its SYN's report carries it.
    static let sequenceOffset = 28, reportSequenceOffset = 20
    /// A DR flow the program closed after its client's FIN stays in the map, `stopped` set to
    /// `closed`, for as long as its connection is in the table: a SYN from the same client port
    /// then reopens it in place (to the same real server, as IPVS continues such a connection),
    /// the value's reopen byte set, which its report carries.
    static let closed: UInt8 = 2
    static let reopenOffset = 13, reportReopenOffset = 17
    /// A report: the flow's key, the segment's TCP flags (a 32-bit word, then four zero bytes),
    /// and the flow's packets, bytes and last packet (ns) with the segment counted. After a FIN
    /// or RST the program has taken the flow out of the map: these are its last figures.
    public static let reportSize = 48

    /// Decisions taken ahead (`SynAhead`): a service's key is a flow key without a client; its
    /// value in the services map, its index in the decisions array, whose values are a queue:
    /// claimed (u32, the program moves it), made (u32, the engine moves it), the epoch its
    /// decisions were made in (u32), four zero bytes, then `aheadSlots` decisions of 16 bytes (out
    /// interface, destination MAC, source MAC). Element 0 holds the current epoch (its first
    /// word), which moves with every change to the table: a queue of another epoch is not used.
    public static let aheadSlots = 64
    public static let aheadValueSize = 16 + 16 * aheadSlots
    static let aheadClaimedOffset = 0, aheadMadeOffset = 4, aheadEpochOffset = 8, aheadSlotsOffset = 16, aheadSlotSize = 16
    static let reportFlagsOffset = 16, reportPacketsOffset = 24, reportBytesOffset = 32, reportLastSeenOffset = 40
    static let macsOffset = 16, packetsOffset = 32, bytesOffset = 40, lastSeenOffset = 48

    public struct Key: Hashable, Sendable {
        public var bytes: (UInt64, UInt64)

        public init(protocolNumber: UInt8, source: UInt32, sourcePort: UInt16, destination: UInt32, destinationPort: UInt16) {
            let s = UInt64(source.byteSwapped), d = UInt64(destination.byteSwapped)
            let ports = UInt64(sourcePort.byteSwapped) | UInt64(destinationPort.byteSwapped) << 16
            bytes = (s | d << 32, ports | UInt64(protocolNumber) << 32)
        }

        /// The key as the map holds it (16 bytes, as two native-order words).
        public init(bytes: (UInt64, UInt64)) {
            self.bytes = bytes
        }

        /// The key's fields (addresses in host order).
        public var source: UInt32 { UInt32(truncatingIfNeeded: bytes.0).byteSwapped }
        public var destination: UInt32 { UInt32(truncatingIfNeeded: bytes.0 >> 32).byteSwapped }
        public var sourcePort: UInt16 { UInt16(truncatingIfNeeded: bytes.1).byteSwapped }
        public var destinationPort: UInt16 { UInt16(truncatingIfNeeded: bytes.1 >> 16).byteSwapped }
        public var protocolNumber: UInt8 { UInt8(truncatingIfNeeded: bytes.1 >> 32) }

        public static func == (a: Key, b: Key) -> Bool { a.bytes == b.bytes }
        public func hash(into h: inout Hasher) {
            h.combine(bytes.0)
            h.combine(bytes.1)
        }
    }

    /// A value as the engine writes it (counters zero, not stopped); `report`: the flow's next
    /// plain segment is reported.
    public static func value(action: Action, address: UInt32 = 0, port: UInt16 = 0, interface: Int32, destinationMAC: MACAddress,
                             sourceMAC: MACAddress, report: Bool = false) -> [UInt8] {
        var v = [UInt8](repeating: 0, count: valueSize)
        v[actionOffset] = action.rawValue
        v[reportOffset] = report ? 1 : 0
        v[portOffset] = UInt8(port >> 8)
        v[portOffset + 1] = UInt8(port & 0xFF)
        for k in 0..<4 { v[addressOffset + k] = UInt8(truncatingIfNeeded: address >> (24 - 8 * k)) }
        for k in 0..<4 { v[interfaceOffset + k] = UInt8(truncatingIfNeeded: UInt32(bitPattern: interface) >> (8 * k)) }
        withUnsafeBytes(of: destinationMAC.bytes) { for k in 0..<6 { v[macsOffset + k] = $0[k] } }
        withUnsafeBytes(of: sourceMAC.bytes) { for k in 0..<6 { v[macsOffset + 6 + k] = $0[k] } }
        return v
    }

    /// What the map says of a flow: its packets, bytes, last packet (CLOCK_MONOTONIC ns) and
    /// whether a control segment stopped it.
    public struct Usage: Hashable, Sendable {
        public var packets: UInt64
        public var bytes: UInt64
        public var lastSeen: UInt64
        public var stopped: Bool

        public init(packets: UInt64, bytes: UInt64, lastSeen: UInt64, stopped: Bool) {
            self.packets = packets
            self.bytes = bytes
            self.lastSeen = lastSeen
            self.stopped = stopped
        }

        public init(value p: UnsafeRawPointer) {
            packets = p.loadUnaligned(fromByteOffset: packetsOffset, as: UInt64.self)
            bytes = p.loadUnaligned(fromByteOffset: bytesOffset, as: UInt64.self)
            lastSeen = p.loadUnaligned(fromByteOffset: lastSeenOffset, as: UInt64.self)
            stopped = p.load(fromByteOffset: stoppedOffset, as: UInt8.self) != 0
        }
    }

    /// A report as the program writes it.
    public struct Report {
        public var key: Key
        public var flags: TCPFlags
        public var usage: Usage
        /// A SYN's: the sequence number of the choice taken ahead that it went with.
        public var sequence: UInt32
        /// A SYN that reopened a closed flow (not one given a choice taken ahead).
        public var reopened: Bool

        public init(_ p: UnsafeRawPointer) {
            key = Key(bytes: (p.loadUnaligned(as: UInt64.self), p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            flags = TCPFlags(rawValue: p.load(fromByteOffset: reportFlagsOffset, as: UInt8.self))
            sequence = p.loadUnaligned(fromByteOffset: reportSequenceOffset, as: UInt32.self)
            reopened = p.load(fromByteOffset: reportReopenOffset, as: UInt8.self) != 0
            usage = Usage(packets: p.loadUnaligned(fromByteOffset: reportPacketsOffset, as: UInt64.self),
                          bytes: p.loadUnaligned(fromByteOffset: reportBytesOffset, as: UInt64.self),
                          lastSeen: p.loadUnaligned(fromByteOffset: reportLastSeenOffset, as: UInt64.self), stopped: false)
        }

        /// A FIN or RST: the program took the flow out of the map.
        public var isLast: Bool { !flags.isDisjoint(with: [.fin, .rst]) }

        /// A SYN the socket filter gave a choice taken ahead (`SynAhead`), or one that reopened a
        /// closed flow (`reopened`): a new connection, or a closed one going on.
        public var isNewConnection: Bool { flags.contains(.syn) && !flags.contains(.ack) }

        /// A DR client's FIN: the program left the flow in the map, closed.
        public var closesInPlace: Bool { flags.contains(.fin) && !flags.contains(.rst) }
    }

    // MARK: Programs

    typealias A = EBPFAssembler
    /// Where the programs keep the frame's first 48 bytes on the stack: the IP header starts at
    /// fp-52, so its words are aligned as the verifier wants them.
    static let header: Int16 = -66
    /// The key, and after it the rest of a report (flags, the flow's counters).
    static let key: Int16 = -136
    static let headerBytes: Int32 = 48

    /// Loads the first 48 bytes and looks the flow up; on a hit r7 is its value and r8 its
    /// protocol, and the key stays on the stack at `key`. Jumps to `miss` for anything the tcx
    /// program does not forward, and to `control` for a TCP SYN without ACK of a flow in the map
    /// (r7 set). r6 is the context.
    /// `absent`: where a frame goes whose flow is not in the map (else `miss`). `fresh` (the tcx
    /// program): a SYN of a flow the socket filter made for it (report byte `reportFresh`) is
    /// forwarded, once; a SYN on a closed flow reopens it. The socket filter leaves both to it.
    static func emitLookup(_ a: inout A, flows: Int32, miss: A.Label, control: A.Label, absent: A.Label? = nil, fresh: Bool = false) {
        let found = a.label(), ports = a.label()
        a.load(.word, .r2, .r6, 0)  // skb->len
        a.jump(.less, .r2, headerBytes, miss)
        loadBytes(&a, headerBytes)
        a.jump(.notEqual, .r0, 0, miss)
        a.load(.half, .r1, .r10, header + 12)
        a.jump(.notEqual, .r1, 0x0008, miss)  // IPv4, no VLAN tag
        a.load(.byte, .r1, .r10, header + 14)
        a.jump(.notEqual, .r1, 0x45, miss)  // version 4, no options
        a.load(.half, .r1, .r10, header + 20)
        a.alu(.and, .r1, 0xFF3F)
        a.jump(.notEqual, .r1, 0, miss)  // not a fragment
        a.load(.byte, .r1, .r10, header + 22)
        a.jump(.lessOrEqual, .r1, 1, miss)  // a hop left to take
        a.load(.byte, .r8, .r10, header + 23)
        a.jump(.equal, .r8, 6, ports)
        a.jump(.notEqual, .r8, 17, miss)
        a.bind(ports)
        a.load(.word, .r1, .r10, header + 26)
        a.store(.word, .r10, key, .r1)
        a.load(.word, .r1, .r10, header + 30)
        a.store(.word, .r10, key + 4, .r1)
        a.load(.word, .r1, .r10, header + 34)
        a.store(.word, .r10, key + 8, .r1)
        a.store(.word, .r10, key + 12, .r8)
        emitMapLookup(&a, map: flows, keyAt: key, none: absent ?? miss)
        a.mov(.r7, .r0)
        let open = a.label()
        a.load(.byte, .r1, .r7, Int16(stoppedOffset))
        a.jump(.equal, .r1, 0, open)
        // Closed: a SYN from the client reopens it (the tcx program does), the rest is the engine's.
        a.jump(.notEqual, .r1, Int32(closed), miss)
        a.jump(.notEqual, .r8, 6, miss)
        a.load(.byte, .r1, .r10, header + 47)
        a.alu(.and, .r1, 0x12)
        a.jump(.notEqual, .r1, 0x02, miss)
        if fresh {
            // Its counts start afresh: what the closed flow forwarded was reported with its FIN.
            a.store(.double, .r7, Int16(packetsOffset), imm: 0)
            a.store(.double, .r7, Int16(bytesOffset), imm: 0)
            a.store(.byte, .r7, Int16(stoppedOffset), imm: 0)
            a.store(.byte, .r7, Int16(reportOffset), imm: 1)
            a.store(.byte, .r7, Int16(reopenOffset), imm: 1)
        }
        a.jump(found)
        a.bind(open)
        a.jump(.notEqual, .r8, 6, found)
        a.load(.byte, .r1, .r10, header + 47)
        a.alu(.and, .r1, 0x12)  // SYN, ACK
        if fresh {
            a.jump(.notEqual, .r1, 0x02, found)
            a.load(.byte, .r1, .r7, Int16(reportOffset))
            a.jump(.notEqual, .r1, Int32(reportFresh), control)
            a.store(.byte, .r7, Int16(reportOffset), imm: 1)
        } else {
            a.jump(.equal, .r1, 0x02, control)
        }
        a.bind(found)
    }

    /// The tcx ingress program: forwards the flows in `flows`, reports the segments that move
    /// TCP's state in `reports` (a SYN the socket filter made a flow for among them, with the
    /// sequence number of its decision), leaves everything else to the next hook (the engine's
    /// nftables rules and sockets).
    public static func ingressProgram(flows: Int32, reports: Int32) -> [UInt64] {
        var a = A()
        let pass = a.label(), control = a.label(), macs = a.label(), report = a.label(), forward = a.label(), full = a.label()
        a.mov(.r6, .r1)
        emitLookup(&a, flows: flows, miss: pass, control: control, fresh: true)
        // Counted where IPVS counts: the IP datagram's length.
        a.load(.word, .r1, .r6, 0)
        a.alu(.add, .r1, -14)
        a.atomicAdd(.r7, Int16(bytesOffset), .r1)
        a.mov(.r1, 1)
        a.atomicAdd(.r7, Int16(packetsOffset), .r1)
        a.call(.ktimeGetNanoseconds)
        a.store(.double, .r7, Int16(lastSeenOffset), .r0)
        // r9: the flow leaves the map once this segment is on its way (FIN or RST).
        a.mov(.r9, 0)
        // SYN (with ACK), FIN or RST, or the first plain segment where the value asks for it.
        a.jump(.notEqual, .r8, 6, forward)
        a.load(.byte, .r1, .r10, header + 47)
        a.alu(.and, .r1, 0x07)
        a.jump(.notEqual, .r1, 0, report)
        a.load(.byte, .r1, .r7, Int16(reportOffset))
        a.jump(.equal, .r1, 0, forward)
        a.store(.byte, .r7, Int16(reportOffset), imm: 0)
        a.bind(report)
        a.load(.byte, .r1, .r10, header + 47)
        a.store(.word, .r10, key + Int16(reportFlagsOffset), .r1)
        a.load(.word, .r2, .r7, Int16(sequenceOffset))
        a.store(.word, .r10, key + Int16(reportSequenceOffset), .r2)
        a.load(.byte, .r2, .r7, Int16(reopenOffset))
        a.store(.byte, .r10, key + Int16(reportReopenOffset), .r2)
        a.alu(.and, .r1, 0x05)  // FIN, RST
        a.mov(.r9, .r1)
        for (from, to) in [(packetsOffset, reportPacketsOffset), (bytesOffset, reportBytesOffset), (lastSeenOffset, reportLastSeenOffset)] {
            a.load(.double, .r1, .r7, Int16(from))
            a.store(.double, .r10, key + Int16(to), .r1)
        }
        a.loadMap(.r1, fd: reports)
        a.mov(.r2, .r10)
        a.alu(.add, .r2, Int32(key))
        a.mov(.r3, Int32(reportSize))
        // No wake-up for each: the engine reads the ring before each batch and every 2 ms while
        // reports come (an interrupt and a wake-up per report cost more than the reading).
        a.mov(.r4, 1)  // BPF_RB_NO_WAKEUP
        a.call(.ringbufOutput)
        a.jump(.notEqual, .r0, 0, full)
        a.bind(forward)
        // A hop less: TTL is the low byte of the (TTL, protocol) half word, and above 1.
        a.load(.half, .r3, .r10, header + 22)
        a.mov(.r4, .r3)
        a.alu(.add, .r4, -1)
        a.store(.half, .r10, header + 22, .r4)
        a.mov(.r1, .r6)
        a.mov(.r2, 24)
        a.mov(.r5, 2)
        a.call(.l3ChecksumReplace)
        storeBytes(&a, offset: 22, from: .r10, at: Int32(header + 22), length: 1)
        let destination = a.label(), source = a.label()
        a.load(.byte, .r1, .r7, Int16(actionOffset))
        a.jump(.equal, .r1, Int32(Action.destination.rawValue), destination)
        a.jump(.equal, .r1, Int32(Action.source.rawValue), source)
        a.jump(macs)
        a.bind(destination)
        emitRewrite(&a, addressAt: 30, portAt: 36, done: macs)
        a.bind(source)
        emitRewrite(&a, addressAt: 26, portAt: 34, done: macs)
        a.bind(macs)
        storeBytes(&a, offset: 0, from: .r7, at: Int32(macsOffset), length: 12)
        // The value is not read after its flow leaves the map: r8 keeps the interface.
        a.load(.word, .r8, .r7, Int16(interfaceOffset))
        let send = a.label(), delete = a.label()
        a.jump(.equal, .r9, 0, send)
        // A DR flow closed by its client's FIN stays, closed; the rest leave the map.
        a.jump(.anyBits, .r9, 0x04, delete)
        a.load(.byte, .r1, .r7, Int16(actionOffset))
        a.jump(.notEqual, .r1, Int32(Action.macsOnly.rawValue), delete)
        a.store(.byte, .r7, Int16(stoppedOffset), imm: Int32(closed))
        a.jump(send)
        a.bind(delete)
        a.loadMap(.r1, fd: flows)
        a.mov(.r2, .r10)
        a.alu(.add, .r2, Int32(key))
        a.call(.mapDelete)
        a.bind(send)
        a.mov(.r1, .r8)
        a.mov(.r2, 0)
        a.call(.redirect)
        a.exit()
        // The ring is full: the engine sees the segment instead (not counted here, then).
        a.bind(full)
        a.load(.word, .r1, .r6, 0)
        a.mov(.r2, 14)
        a.alu(.sub, .r2, .r1)
        a.atomicAdd(.r7, Int16(bytesOffset), .r2)
        a.mov(.r1, -1)
        a.atomicAdd(.r7, Int16(packetsOffset), .r1)
        a.bind(control)
        // The engine takes it from here, and the rest of the flow after it.
        a.store(.byte, .r7, Int16(stoppedOffset), imm: 1)
        a.bind(pass)
        a.mov(.r0, -1)  // TCX_NEXT
        a.exit()
        return a.finish()
    }

    /// bpf_skb_store_bytes(skb, offset, base + at, length, 0).
    static func storeBytes(_ a: inout A, offset: Int32, from base: A.Register, at: Int32, length: Int32) {
        a.mov(.r1, .r6)
        a.mov(.r2, offset)
        a.mov(.r3, base)
        a.alu(.add, .r3, at)
        a.mov(.r4, length)
        a.mov(.r5, 0)
        a.call(.skbStoreBytes)
    }

    /// The address at `addressAt` and port at `portAt` become the value's, with the IP checksum
    /// and the TCP or UDP one (pseudo-header included; a zero UDP checksum stays zero) updated
    /// by the kernel's helpers, which also keep a partial or complete checksum right.
    static func emitRewrite(_ a: inout A, addressAt: Int16, portAt: Int16, done: A.Label) {
        let udp = a.label()
        for tcp in [true, false] {
            if tcp { a.jump(.notEqual, .r8, 6, udp) } else { a.bind(udp) }
            let checksum: Int32 = tcp ? 50 : 40
            let mangledZero: Int32 = tcp ? 0 : 0x20
            a.mov(.r1, .r6)
            a.mov(.r2, checksum)
            a.load(.word, .r3, .r10, header + addressAt)
            a.load(.word, .r4, .r7, Int16(addressOffset))
            a.mov(.r5, 0x10 | 4 | mangledZero)  // BPF_F_PSEUDO_HDR, 4 bytes
            a.call(.l4ChecksumReplace)
            a.mov(.r1, .r6)
            a.mov(.r2, 24)
            a.load(.word, .r3, .r10, header + addressAt)
            a.load(.word, .r4, .r7, Int16(addressOffset))
            a.mov(.r5, 4)
            a.call(.l3ChecksumReplace)
            a.mov(.r1, .r6)
            a.mov(.r2, checksum)
            a.load(.half, .r3, .r10, header + portAt)
            a.load(.half, .r4, .r7, Int16(portOffset))
            a.mov(.r5, 2 | mangledZero)
            a.call(.l4ChecksumReplace)
            storeBytes(&a, offset: Int32(addressAt), from: .r7, at: Int32(addressOffset), length: 4)
            storeBytes(&a, offset: Int32(portAt), from: .r7, at: Int32(portOffset), length: 2)
            a.jump(done)
        }
    }

    /// The packet sockets' filter: nothing the tcx program forwards; otherwise what
    /// `SocketFilter.program` lets through (IPv4 to `destinations` or from `sources`, IPv6
    /// when asked, 802.1Q-tagged frames), whole.
    /// With `ahead` (the services map and decisions array of `SynAhead`): a SYN arriving for a
    /// service with a decision waiting takes it, and its flow goes into the map (report byte
    /// `reportFresh`, the decision's sequence number with it) for the tcx program, which runs
    /// next, to forward and report; the engine never sees it.
    public static func socketFilter(flows: Int32, destinations: [IPAddress], sources: [IPAddress], acceptIPv6: Bool,
                                    ahead: (services: Int32, decisions: Int32)? = nil) -> [UInt64] {
        var a = A()
        let classic = a.label(), accept = a.label(), drop = a.label(), ipv6 = a.label(), absent = a.label(), ours = a.label()
        let v4Destinations = Set(destinations.filter { !$0.isV6 }.map(\.v4)).sorted()
        let v4Sources = Set(sources.filter { !$0.isV6 }.map(\.v4)).sorted()
        a.mov(.r6, .r1)
        // An IPv4 frame neither to a VIP nor from a NAT real server is nobody's here (a routed DR
        // reply, say): turned away before the flow lookup. (With no address at all, the lookup
        // and the checks after it turn everything away.)
        if !v4Destinations.isEmpty || !v4Sources.isEmpty {
            emitLoadIPv4Header(&a, short: classic)
            a.load(.half, .r1, .r10, header + 12)
            a.jump(.notEqual, .r1, 0x0008, classic)
            emitMatchAddresses(&a, destinations: v4Destinations, sources: v4Sources, match: ours, none: drop)
        }
        a.bind(ours)
        emitLookup(&a, flows: flows, miss: classic, control: classic, absent: ahead == nil ? nil : absent)
        a.mov(.r0, 0)
        a.exit()
        if let ahead {
            a.bind(absent)
            emitTakeDecision(&a, flows: flows, services: ahead.services, decisions: ahead.decisions, none: classic)
            a.mov(.r0, 0)
            a.exit()
        }
        a.bind(classic)
        a.load(.word, .r2, .r6, 0)
        a.jump(.less, .r2, 14, drop)
        loadBytes(&a, 14)
        a.jump(.notEqual, .r0, 0, drop)
        a.load(.half, .r1, .r10, header + 12)
        a.jump(.equal, .r1, 0x0081, accept)
        a.jump(.equal, .r1, 0xDD86, ipv6)
        a.jump(.notEqual, .r1, 0x0008, drop)
        emitLoadIPv4Header(&a, short: drop)
        emitMatchAddresses(&a, destinations: v4Destinations, sources: v4Sources, match: accept, none: drop)
        a.bind(ipv6)
        if acceptIPv6 { a.jump(accept) }
        a.bind(drop)
        a.mov(.r0, 0)
        a.exit()
        a.bind(accept)
        a.mov(.r0, 0x40000)
        a.exit()
        return a.finish()
    }

    /// Where the socket filter builds a service's key, the decisions' index and a flow's value.
    static let serviceKey: Int16 = -216, decisionIndex: Int16 = -224, freshValue: Int16 = -200

    /// A TCP SYN (without ACK) that came in to this host (not one going out), whose flow is not in
    /// the map (its key at `key`, r8 its protocol): when its service has a decision waiting, made
    /// in the current epoch, takes
    /// it (a compare-and-swap on the claimed count: a lost race takes none) and puts the flow
    /// into the map with it. Jumps to `none` when it took none, or its flow could not go in.
    static func emitTakeDecision(_ a: inout A, flows: Int32, services: Int32, decisions: Int32, none: A.Label) {
        a.jump(.notEqual, .r8, 6, none)
        a.load(.byte, .r1, .r10, header + 47)
        a.alu(.and, .r1, 0x12)
        a.jump(.notEqual, .r1, 0x02, none)
        a.load(.word, .r1, .r6, 4)  // __sk_buff.pkt_type
        a.jump(.notEqual, .r1, 0, none)  // PACKET_HOST
        a.store(.word, .r10, serviceKey, imm: 0)
        a.load(.word, .r1, .r10, header + 30)
        a.store(.word, .r10, serviceKey + 4, .r1)
        a.store(.half, .r10, serviceKey + 8, imm: 0)
        a.load(.half, .r1, .r10, header + 36)
        a.store(.half, .r10, serviceKey + 10, .r1)
        a.store(.word, .r10, serviceKey + 12, imm: 6)
        emitMapLookup(&a, map: services, keyAt: serviceKey, none: none)
        a.load(.word, .r1, .r0, 0)
        a.store(.word, .r10, decisionIndex, .r1)
        emitMapLookup(&a, map: decisions, keyAt: decisionIndex, none: none)
        a.mov(.r9, .r0)
        // Made before the table last changed: not to be used.
        a.store(.word, .r10, decisionIndex, imm: 0)
        emitMapLookup(&a, map: decisions, keyAt: decisionIndex, none: none)
        a.load(.word, .r1, .r0, 0)
        a.load(.word, .r2, .r9, Int16(aheadEpochOffset))
        a.jump(.notEqual, .r1, .r2, none)
        // r2: the next decision's sequence number; made - claimed, as 32-bit numbers, above 0.
        a.load(.word, .r2, .r9, Int16(aheadClaimedOffset))
        a.load(.word, .r3, .r9, Int16(aheadMadeOffset))
        a.alu(.sub, .r3, .r2)
        a.alu(.lsh, .r3, 32)
        a.alu(.rsh, .r3, 32)
        a.jump(.equal, .r3, 0, none)
        a.jump(.greater, .r3, Int32(aheadSlots), none)
        // The value, from the decision read before it is claimed: once claimed, the engine may
        // write the next round's decision in its place.
        for k in stride(from: 0, to: valueSize, by: 8) { a.store(.double, .r10, freshValue + Int16(k), imm: 0) }
        a.store(.byte, .r10, freshValue + Int16(actionOffset), imm: Int32(Action.macsOnly.rawValue))
        a.store(.byte, .r10, freshValue + Int16(reportOffset), imm: Int32(reportFresh))
        a.store(.word, .r10, freshValue + Int16(sequenceOffset), .r2)
        a.mov(.r4, .r2)
        a.alu(.and, .r4, Int32(aheadSlots - 1))
        a.alu(.lsh, .r4, 4)
        a.alu(.add, .r4, Int32(aheadSlotsOffset))
        a.mov(.r5, .r9)
        a.alu(.add, .r5, .r4)
        a.mov(.r4, .r5)
        a.load(.word, .r1, .r4, 0)
        a.store(.word, .r10, freshValue + Int16(interfaceOffset), .r1)
        for k in 0..<3 {
            a.load(.word, .r1, .r4, Int16(4 + 4 * k))
            a.store(.word, .r10, freshValue + Int16(macsOffset + 4 * k), .r1)
        }
        a.mov(.r0, .r2)
        a.mov(.r1, .r2)
        a.alu(.add, .r1, 1)
        a.atomicCompareExchange32(.r9, Int16(aheadClaimedOffset), .r1)
        a.jump(.notEqual, .r0, .r2, none)
        a.loadMap(.r1, fd: flows)
        a.mov(.r2, .r10)
        a.alu(.add, .r2, Int32(key))
        a.mov(.r3, .r10)
        a.alu(.add, .r3, Int32(freshValue))
        a.mov(.r4, 1)  // BPF_NOEXIST
        a.call(.mapUpdate)
        a.jump(.notEqual, .r0, 0, none)
    }

    /// r0 = the value of the key at fp + `keyAt` in `map`; to `none` when there is none.
    static func emitMapLookup(_ a: inout A, map: Int32, keyAt: Int16, none: A.Label) {
        a.loadMap(.r1, fd: map)
        a.mov(.r2, .r10)
        a.alu(.add, .r2, Int32(keyAt))
        a.call(.mapLookup)
        a.jump(.equal, .r0, 0, none)
    }

    /// The frame's Ethernet and IPv4 headers (34 bytes) onto the stack at `header`; `short`
    /// when there are not as many.
    static func emitLoadIPv4Header(_ a: inout A, short: A.Label) {
        a.load(.word, .r2, .r6, 0)
        a.jump(.less, .r2, 34, short)
        loadBytes(&a, 34)
        a.jump(.notEqual, .r0, 0, short)
    }

    /// To `match` when the loaded IPv4 header's destination is one of `destinations` or its
    /// source one of `sources` (host order), else to `none`.
    static func emitMatchAddresses(_ a: inout A, destinations: [UInt32], sources: [UInt32], match: A.Label, none: A.Label) {
        a.load(.word, .r1, .r10, header + 30)
        for d in destinations { a.jump32(.equal, .r1, d.byteSwapped, match) }
        a.load(.word, .r1, .r10, header + 26)
        for s in sources { a.jump32(.equal, .r1, s.byteSwapped, match) }
        a.jump(none)
    }

    static func loadBytes(_ a: inout A, _ count: Int32) {
        a.mov(.r1, .r6)
        a.mov(.r2, 0)
        a.mov(.r3, .r10)
        a.alu(.add, .r3, Int32(header))
        a.mov(.r4, count)
        a.call(.skbLoadBytes)
    }
}

/// A connection the forwarder hands to the in-kernel path: its flows' keys and values (the
/// client's, and for NAT the real server's replies), and the next hop they were made with.
public struct OffloadRequest: Sendable {
    public var connection: ConnectionID
    public var flows: [(key: FastPathLayout.Key, value: [UInt8], direction: PacketDirection)]
    public var server: IPAddress
    public var hop: NextHop
}

/// The in-kernel path at run time: the map, the tcx program on each interface, and which
/// connections are in the map. Any packet thread adds and withdraws connections (after its
/// batch, outside the table's lock); the first one also reads the map's counters back into the
/// table (`poll`).
final class FastPath: @unchecked Sendable {
    // @unchecked Sendable: `records` and the counters are behind `lock`; the map and programs
    // are kernel objects safe to use from any thread.
    let flows: EBPFHashMap
    /// The segments the program reports (`FastPathLayout.reportSize` bytes each).
    let reports: EBPFRingBuffer
    let ingress: EBPFProgram
    /// New connections' SYNs scheduled in the kernel with choices taken ahead, when the kernel
    /// takes the shared array it needs (nil: every SYN comes to the engine).
    let ahead: SynAhead?
    /// The largest MTU of the engine's interfaces (a next hop taken ahead must take it).
    var aheadMTU = 1500
    private var links: [EBPFLink] = []
    private let paths: ReturnPaths
    private let lock = NIOLock()
    private var records: [ConnectionID: Record] = [:]
    /// Whose each flow in the map is, and its direction.
    private var owners: [FastPathLayout.Key: (ConnectionID, PacketDirection)] = [:]
    private var reportBuffer = [UInt8](repeating: 0, count: FastPathLayout.reportSize * FastPath.reportsPerRead)
    /// Reports read ahead (by `poll`, looking for a flow's last one), to be applied next.
    private var unread: [FastPathLayout.Report] = []
    private static let reportsPerRead = 256
    /// Flows taken back lately, with what had been counted of them: the program, on another
    /// core, may have found one of them just before it left the map and report its FIN or RST
    /// after the connection was taken back. Kept for one to two seconds (two generations).
    private var retired: [FastPathLayout.Key: Retired] = [:]
    private var retiredBefore: [FastPathLayout.Key: Retired] = [:]
    private var retiredSince: Int64 = 0
    private static let retiredFor: Int64 = 1_000_000_000

    struct Retired {
        var connection: ConnectionID
        var direction: PacketDirection
        var seen: (packets: UInt64, bytes: UInt64)
    }
    private var counters = Counters()
    /// The table's generation when the closed flows were last looked over (`refreshAhead`, on
    /// the first packet thread, under the table's lock).
    private var sweptGeneration: UInt64 = 0

    struct Record {
        var keys: FlowPair<FastPathLayout.Key>
        var directions: FlowPair<PacketDirection>
        var seen: FlowPair<(packets: UInt64, bytes: UInt64)>
        var server: IPAddress
        var hop: NextHop
    }

    struct Counters: Sendable, Hashable {
        /// Connections handed to the kernel, taken back, and refused (map full).
        var offloaded: UInt64 = 0
        var withdrawn: UInt64 = 0
        var refused: UInt64 = 0
        /// Packets the kernel forwarded for them, as of the last poll.
        var packets: UInt64 = 0
        /// Segments the kernel reported (state changes), and reports for flows no longer known.
        var reported: UInt64 = 0
        var unknownReports: UInt64 = 0
        /// SYNs the kernel scheduled with a choice taken ahead (`SynAhead`), those that reopened a
        /// closed flow, and those of either whose choice or connection no longer stood.
        var scheduledAhead: UInt64 = 0
        var reopened: UInt64 = 0
        var refusedSyns: UInt64 = 0
    }

    /// The map (room for `capacity` flows, kernel memory taken as they come) and the program on
    /// each interface. Throws when the kernel has no tcx (before 6.6) or refuses BPF.
    /// `scheduleAhead`: SYNs of the services that allow it are scheduled in the kernel (`SynAhead`).
    init(interfaces: [Int32], capacity: Int, paths: ReturnPaths, scheduleAhead: Bool = true) throws {
        flows = try EBPFHashMap(keySize: FastPathLayout.keySize, valueSize: FastPathLayout.valueSize, capacity: capacity, preallocated: false)
        ahead = scheduleAhead ? try? SynAhead() : nil
        reports = try EBPFRingBuffer(size: 1 << 20, recordSize: FastPathLayout.reportSize)
        ingress = try EBPFProgram(.schedClassifier, FastPathLayout.ingressProgram(flows: flows.fd, reports: reports.fd),
                                  expectedAttach: EBPFProgram.tcxIngress)
        self.paths = paths
        for i in interfaces { links.append(try ingress.attachIngress(i)) }
    }

    /// The packet sockets' filter for this map.
    func socketFilter(destinations: [IPAddress], sources: [IPAddress], acceptIPv6: Bool) throws -> EBPFProgram {
        try EBPFProgram(.socketFilter, FastPathLayout.socketFilter(flows: flows.fd, destinations: destinations, sources: sources,
                                                                 acceptIPv6: acceptIPv6, ahead: ahead.map { ($0.services.fd, $0.decisions.fd) }))
    }

    /// Detaches the programs: from here on every packet goes through the engine.
    func detach() {
        lock.withLock { links = [] }
    }

    var snapshot: Counters { lock.withLock { counters } }

    /// The connections in the map.
    var connections: [ConnectionID] { lock.withLock { Array(records.keys) } }

    /// Puts the requested connections into the map (a connection already there is left alone).
    func install(_ requests: [OffloadRequest]) {
        for r in requests {
            if lock.withLock({ records[r.connection] != nil }) { continue }
            var installed: [FastPathLayout.Key] = []
            var refused = false
            for f in r.flows {
                var key = f.key.bytes
                let code = f.value.withUnsafeBytes { v in withUnsafeBytes(of: &key) { flows.update(key: $0.baseAddress!, value: v.baseAddress!) } }
                if code != 0 {
                    refused = true
                    break
                }
                installed.append(f.key)
            }
            if refused {
                for k in installed { delete(k) }
                lock.withLock { counters.refused &+= 1 }
                continue
            }
            lock.withLock {
                register(r.connection, keys: FlowPair(r.flows.lazy.map(\.key)), directions: FlowPair(r.flows.lazy.map(\.direction)),
                         server: r.server, hop: r.hop)
            }
        }
    }

    /// Records connection `id` as handed over, its flows just put into the map. Under `lock`.
    private func register(_ id: ConnectionID, keys: FlowPair<FastPathLayout.Key>, directions: FlowPair<PacketDirection>, server: IPAddress,
                          hop: NextHop) {
        records[id] = Record(keys: keys, directions: directions, seen: FlowPair(repeating: (0, 0), count: keys.count), server: server, hop: hop)
        for (key, direction) in zip(keys, directions) { owners[key] = (id, direction) }
        counters.offloaded &+= 1
    }

    /// Copies `key`'s flow value into `value` (`taking`: and takes the flow out of the map);
    /// false when the map has none.
    private func readFlow(_ key: FastPathLayout.Key, into value: inout [UInt8], taking: Bool = false) -> Bool {
        var k = key.bytes
        return value.withUnsafeMutableBytes { out in
            withUnsafeBytes(of: &k) { taking ? flows.take(key: $0.baseAddress!, into: out.baseAddress!) : flows.lookup(key: $0.baseAddress!, into: out.baseAddress!) }
        }
    }

    private func delete(_ key: FastPathLayout.Key) {
        var k = key.bytes
        withUnsafeBytes(of: &k) { _ = flows.delete(key: $0.baseAddress!) }
    }

    /// Reads every connection's flows, adds what the kernel forwarded to the table, and takes
    /// back the connections the table no longer lets the kernel forward (a state change, a
    /// real server gone, expiry), those a control segment stopped, those whose next hop
    /// changed. Given `withdrawals`, only those, each taken back.
    /// `last`: flows the program took out of the map itself (after a FIN or RST), with the
    /// figures it reported; a flow missing from the map otherwise is one whose report is on its
    /// way, and its connection waits for it.
    func poll(state: LoadBalancerState, hops: [IPAddress: NextHop], withdrawals: [ConnectionID] = [],
              last: [FastPathLayout.Key: FastPathLayout.Usage] = [:]) {
        let wanted = Set(withdrawals)
        let list: [(ConnectionID, Record)] = lock.withLock {
            withdrawals.isEmpty ? Array(records) : wanted.compactMap { id in records[id].map { (id, $0) } }
        }
        guard !list.isEmpty else { return }
        // The table's clock is CLOCK_MONOTONIC, as bpf_ktime_get_ns is.
        let now = state.now
        let monotonic = UInt64(clamping: now)
        var value = [UInt8](repeating: 0, count: FastPathLayout.valueSize)
        var reports: [(ConnectionID, FlowPair<FastPathLayout.Usage?>, Bool)] = []
        reports.reserveCapacity(list.count)
        var missed: Set<FastPathLayout.Key> = []
        for (id, record) in list {
            let take = wanted.contains(id) || hops[record.server] != record.hop
            let usages = record.keys.mapPair { key -> FastPathLayout.Usage? in
                if let u = last[key] { return u }
                let found = readFlow(key, into: &value, taking: take)
                if take && !found { missed.insert(key) }
                return found ? value.withUnsafeBytes { FastPathLayout.Usage(value: $0.baseAddress!) } : nil
            }
            reports.append((id, usages, take))
        }
        // A flow gone from the map before we took it was taken out by the program, after a FIN
        // or RST whose report it wrote first: that report has its last figures and its step.
        var late: [(ConnectionID, PacketDirection, TCPFlags)] = []
        if !missed.isEmpty {
            var found: [FastPathLayout.Key: FastPathLayout.Report] = [:]
            var others: [FastPathLayout.Report] = []
            for r in readReports() {
                if r.isLast && missed.contains(r.key) { found[r.key] = r } else { others.append(r) }
            }
            lock.withLock {
                unread.insert(contentsOf: others, at: 0)
                counters.reported &+= UInt64(found.count)
            }
            for k in reports.indices {
                for (j, key) in list[k].1.keys.enumerated() where reports[k].1[j] == nil {
                    guard let r = found[key] else { continue }
                    reports[k].1[j] = r.usage
                    late.append((reports[k].0, list[k].1.directions[j], r.flags))
                }
            }
        }
        var taken: [(ConnectionID, Record, alreadyOut: Bool, seen: FlowPair<(packets: UInt64, bytes: UInt64)>)] = []
        var forwarded: UInt64 = 0
        var updated: [(ConnectionID, FlowPair<(packets: UInt64, bytes: UInt64)>)] = []
        state.withTable { table in
            for (id, direction, flags) in late { _ = table.offloadedSegment(id, direction: direction, tcpFlags: flags, now: now) }
            for (k, (id, usages, took)) in reports.enumerated() {
                let record = list[k].1
                var delta = (inPackets: UInt64(0), inBytes: UInt64(0), outPackets: UInt64(0), outBytes: UInt64(0))
                var last: UInt64 = 0
                var stopped = false
                var seen = record.seen
                for (j, u) in usages.enumerated() {
                    guard let u else { continue }
                    let p = u.packets &- seen[j].packets, b = u.bytes &- seen[j].bytes
                    seen[j] = (u.packets, u.bytes)
                    forwarded &+= p
                    if record.directions[j] == .input {
                        delta.inPackets &+= p
                        delta.inBytes &+= b
                    } else {
                        delta.outPackets &+= p
                        delta.outBytes &+= b
                    }
                    last = max(last, u.lastSeen)
                    stopped = stopped || u.stopped
                }
                let idle = last > 0 && monotonic > last ? Int64(monotonic - last) : 0
                let still = table.offloadedTraffic(id, inPackets: delta.inPackets, inBytes: delta.inBytes, outPackets: delta.outPackets,
                                                   outBytes: delta.outBytes, idle: idle, now: now)
                if took || !still || stopped {
                    taken.append((id, record, took, seen))
                    paths.clearOffload(id)
                } else {
                    updated.append((id, seen))
                }
            }
        }
        // Those read with a plain lookup leave the map now; no connection can be put back in
        // meanwhile (its record still stands).
        for (_, record, alreadyOut, _) in taken where !alreadyOut { for key in record.keys { delete(key) } }
        lock.withLock {
            counters.packets &+= forwarded
            for (id, seen) in updated { records[id]?.seen = seen }
            if now - retiredSince >= FastPath.retiredFor {
                retiredBefore = retired
                retired = [:]
                retiredSince = now
            }
            for (id, record, _, seen) in taken where records.removeValue(forKey: id) != nil {
                for (j, key) in record.keys.enumerated() {
                    owners[key] = nil
                    // A flow whose last report came has nothing late to come.
                    if last[key] == nil { retired[key] = Retired(connection: id, direction: record.directions[j], seen: seen[j]) }
                }
                counters.withdrawn &+= 1
            }
        }
    }

    /// The connections of the SYNs the kernel scheduled (taken out of `reports`, which keeps the
    /// rest): made in the table and recorded as handed over, or their flows taken back; then the
    /// queues of choices are filled again.
    private func admitNew(_ reports: inout [FastPathLayout.Report], state: LoadBalancerState, hops: [IPAddress: NextHop]) {
        let new = reports.filter(\.isNewConnection)
        reports.removeAll(where: \.isNewConnection)
        let now = state.now
        let mtu = aheadMTU
        let paths = self.paths
        let ahead = self.ahead
        var scheduled: UInt64 = 0, reopened: UInt64 = 0
        let made: [(FastPathLayout.Report, (Forwarding, NextHop)?)] = state.withTable { table in
            let made = new.map { r -> (FastPathLayout.Report, (Forwarding, NextHop)?) in
                let key = r.key
                let p = PacketSummary(protocolNumber: 6, source: IPAddress(v4: key.source), sourcePort: key.sourcePort,
                                      destination: IPAddress(v4: key.destination), destinationPort: key.destinationPort, tcpFlags: .syn,
                                      length: 0)
                guard r.reopened else {
                    guard let admitted = ahead?.admit(p, key: key, sequence: r.sequence, table: &table, now: now) else { return (r, nil) }
                    scheduled &+= 1
                    return (r, admitted)
                }
                guard let f = table.reopened(p, now: now) ?? self.admitWhereSent(p, key: key, table: &table, hops: hops, now: now),
                      let hop = hops[f.destination.address] else { return (r, nil) }
                if f.isNew { ahead?.scheduledOutOfTurn() }
                reopened &+= 1
                return (r, (f, hop))
            }
            for (_, admitted) in made { if let (f, _) = admitted { paths.markOffloaded(f.connection) } }
            ahead?.refresh(table: table, hops: hops, mtu: mtu, now: now)
            return made
        }
        for (report, admitted) in made where admitted == nil { delete(report.key) }
        lock.withLock {
            counters.reported &+= UInt64(new.count)
            counters.scheduledAhead &+= scheduled
            counters.reopened &+= reopened
            counters.refusedSyns &+= UInt64(new.count) &- scheduled &- reopened
            for (report, admitted) in made {
                guard let (forwarding, hop) = admitted else { continue }
                register(forwarding.connection, keys: FlowPair(report.key), directions: FlowPair(.input), server: forwarding.destination.address, hop: hop)
            }
        }
    }

    /// A SYN the kernel forwarded on a closed flow whose connection the table let go meanwhile
    /// (it expired between the SYN and its report): a new connection, made on the real server the
    /// flow sent the SYN to (the one of the service's real servers at the flow's interface and
    /// MAC), as the table would make one for a SYN that went there. Nil when the client still has
    /// a connection that the SYN does not replace, or no available real server is there.
    private func admitWhereSent(_ p: PacketSummary, key: FastPathLayout.Key, table: inout IPVS, hops: [IPAddress: NextHop],
                                now: Int64) -> Forwarding? {
        var value = [UInt8](repeating: 0, count: FastPathLayout.valueSize)
        guard readFlow(key, into: &value), let service = table.serviceHandle(for: .address(.tcp, IPAddress(v4: key.destination), key.destinationPort)) else { return nil }
        let interface = value.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: FastPathLayout.interfaceOffset, as: Int32.self) }
        let mac = MACAddress(Array(value[FastPathLayout.macsOffset..<FastPathLayout.macsOffset + 6]))
        for server in table.members(service: service) {
            guard let hop = hops[table.realServer(server).config.endpoint.address], hop.interface == interface, hop.destinationMAC == mac else { continue }
            return table.admitDecided(p, service: service, server: server, now: now)
        }
        return nil
    }

    /// Fills the queues of choices taken ahead (and follows the table's changes), and takes the
    /// closed flows of the connections the table removed out of the map: the first packet thread
    /// calls it at each of the table's ticks.
    func refreshAhead(state: LoadBalancerState, hops: [IPAddress: NextHop]) {
        let now = state.now
        let mtu = aheadMTU
        let paths = self.paths, ahead = self.ahead
        let gone: [FastPathLayout.Key] = state.withTable { table in
            ahead?.refresh(table: table, hops: hops, mtu: mtu, now: now)
            var ended = table.takeRemovals()
            // After a change of services or real servers, the closed flows whose connections a
            // SYN would no longer continue (their real server deleted: IPVS drops that SYN).
            if table.generation != sweptGeneration {
                sweptGeneration = table.generation
                for id in paths.closedConnections() where !table.synContinues(id) {
                    if let ends = table.ends(of: id) { ended.append(ends) }
                }
            }
            return ended.compactMap { r in
                guard paths.takeClosed(r.id), !r.client.address.isV6 else { return nil }
                return FastPathLayout.Key(protocolNumber: r.protocolNumber, source: r.client.address.v4, sourcePort: r.client.port,
                                          destination: r.virtual.address.v4, destinationPort: r.virtual.port)
            }
        }
        // The closed flows of the connections the table let go or no longer continues (unless a
        // new one has the flow). One a SYN has just reopened in the kernel stays: its report
        // comes next, and makes the connection or takes the flow back (`admitNew`).
        let unowned = lock.withLock { gone.filter { owners[$0] == nil } }
        for key in unowned { deleteIfClosed(key) }
    }

    /// Takes `key`'s flow out of the map if it is closed (`FastPathLayout.closed`); one a SYN
    /// has reopened meanwhile goes back (one system call when it is closed, as it nearly always is).
    private func deleteIfClosed(_ key: FastPathLayout.Key) {
        var value = [UInt8](repeating: 0, count: FastPathLayout.valueSize)
        guard readFlow(key, into: &value, taking: true), value[FastPathLayout.stoppedOffset] != FastPathLayout.closed else { return }
        var k = key.bytes
        _ = value.withUnsafeBytes { v in withUnsafeBytes(of: &k) { flows.insert(key: $0.baseAddress!, value: v.baseAddress!) } }
    }

    /// What the ring holds, after what was read ahead; one reader at a time.
    private func readReports() -> [FastPathLayout.Report] {
        lock.withLock {
            var out = unread
            unread = []
            while true {
                let n = reportBuffer.withUnsafeMutableBytes { reports.read(into: $0.baseAddress!, count: FastPath.reportsPerRead) }
                reportBuffer.withUnsafeBytes { raw in
                    for i in 0..<n { out.append(FastPathLayout.Report(raw.baseAddress! + i * FastPathLayout.reportSize)) }
                }
                if n < FastPath.reportsPerRead { return out }
            }
        }
    }

    /// Moves the table on for the segments the program reported (one thread reads them: the
    /// first packet thread, before each batch of frames, so a report is applied before any later
    /// frame of its flow that the engine then reads), and takes back the connections they moved
    /// out of ESTABLISHED.
    /// Returns whether there were any.
    @discardableResult
    func applyReports(state: LoadBalancerState, hops: [IPAddress: NextHop]) -> Bool {
        var all = readReports()
        guard !all.isEmpty else { return false }
        if all.contains(where: \.isNewConnection) { admitNew(&all, state: state, hops: hops) }
        var leaving: [ConnectionID] = []
        var last: [FastPathLayout.Key: FastPathLayout.Usage] = [:]
        var segments: [(ConnectionID, PacketDirection, TCPFlags)] = []
        segments.reserveCapacity(all.count)
        var late: [(Retired, FastPathLayout.Report)] = []
        // DR flows the program left in the map, closed, after their client's FIN.
        var closed: [(ConnectionID, FastPathLayout.Key)] = []
        lock.withLock {
            for report in all {
                guard let (id, direction) = owners[report.key] else {
                    if report.isLast, let r = retired.removeValue(forKey: report.key) ?? retiredBefore.removeValue(forKey: report.key) {
                        late.append((r, report))
                    } else {
                        counters.unknownReports &+= 1
                    }
                    continue
                }
                segments.append((id, direction, report.flags))
                if report.isLast {
                    last[report.key] = report.usage
                    leaving.append(id)
                    if report.closesInPlace, report.key.protocolNumber == 6, records[id]?.keys.count == 1 { closed.append((id, report.key)) }
                }
            }
            counters.reported &+= UInt64(all.count)
        }
        let now = state.now
        state.withTable { table in
            for (id, direction, flags) in segments where !table.offloadedSegment(id, direction: direction, tcpFlags: flags, now: now) {
                leaving.append(id)
            }
            // A flow's last report that came after its connection was taken back: its step, and
            // what was counted in the flow after the engine's copy.
            for (r, report) in late {
                _ = table.offloadedSegment(r.connection, direction: r.direction, tcpFlags: report.flags, now: now)
                let packets = report.usage.packets &- r.seen.packets, bytes = report.usage.bytes &- r.seen.bytes
                guard packets > 0, packets < 1 << 32 else { continue }
                let input = r.direction == .input
                table.offloadedTraffic(r.connection, inPackets: input ? packets : 0, inBytes: input ? bytes : 0,
                                       outPackets: input ? 0 : packets, outBytes: input ? 0 : bytes, idle: 0, now: now)
            }
            // A closed flow stays while a SYN from its client port would continue its connection;
            // otherwise (conn_reuse_mode would start a new one) it leaves now.
            closed.removeAll { id, _ in
                guard table.synContinues(id) else { return false }
                paths.markClosed(id)
                return true
            }
        }
        for (_, key) in closed { delete(key) }
        if !leaving.isEmpty { poll(state: state, hops: hops, withdrawals: leaving, last: last) }
        return true
    }
}
