import LVSCore
import LVSPacket
import LVSState
import LinuxNet
import NIOConcurrencyHelpers

/// The in-kernel path for established flows. The engine decides every connection in user space,
/// as IPVS would; once a TCP connection is ESTABLISHED (or a UDP flow has its real server), what
/// its packets need is fixed: new MACs, a hop less, and for NAT a new address and port. The
/// engine then writes that into a BPF hash map, and a tcx ingress program on each interface
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
///   in the report, which spares the engine a system call for each closing connection. A new connection's flows can thus be handed over as soon as its SYN is scheduled: only
///   that SYN crosses to user space. When the ring is full, the segment takes the SYN's way.
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
    /// Value: action (1 MACs only, 2 new destination, 3 new source), stopped, port, address,
    /// out interface, report (the next plain segment is reported), reserved, destination MAC,
    /// source MAC, reserved, packets, bytes, last (ns).
    public static let valueSize = 56

    public enum Action: UInt8, Sendable {
        case macsOnly = 1
        case destination = 2
        case source = 3
    }

    static let actionOffset = 0, stoppedOffset = 1, portOffset = 2, addressOffset = 4, interfaceOffset = 8, reportOffset = 12
    /// A report: the flow's key, the segment's TCP flags (a 32-bit word, then four zero bytes),
    /// and the flow's packets, bytes and last packet (ns) with the segment counted. After a FIN
    /// or RST the program has taken the flow out of the map: these are its last figures.
    public static let reportSize = 48
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

        public init(_ p: UnsafeRawPointer) {
            key = Key(bytes: (p.loadUnaligned(as: UInt64.self), p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            flags = TCPFlags(rawValue: p.load(fromByteOffset: reportFlagsOffset, as: UInt8.self))
            usage = Usage(packets: p.loadUnaligned(fromByteOffset: reportPacketsOffset, as: UInt64.self),
                          bytes: p.loadUnaligned(fromByteOffset: reportBytesOffset, as: UInt64.self),
                          lastSeen: p.loadUnaligned(fromByteOffset: reportLastSeenOffset, as: UInt64.self), stopped: false)
        }

        /// A FIN or RST: the program took the flow out of the map.
        public var isLast: Bool { !flags.isDisjoint(with: [.fin, .rst]) }
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
    static func emitLookup(_ a: inout A, flows: Int32, miss: A.Label, control: A.Label) {
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
        a.loadMap(.r1, fd: flows)
        a.mov(.r2, .r10)
        a.alu(.add, .r2, Int32(key))
        a.call(.mapLookup)
        a.jump(.equal, .r0, 0, miss)
        a.mov(.r7, .r0)
        a.load(.byte, .r1, .r7, Int16(stoppedOffset))
        a.jump(.notEqual, .r1, 0, miss)
        a.jump(.notEqual, .r8, 6, found)
        a.load(.byte, .r1, .r10, header + 47)
        a.alu(.and, .r1, 0x12)  // SYN, ACK
        a.jump(.equal, .r1, 0x02, control)
        a.bind(found)
    }

    /// The tcx ingress program: forwards the flows in `flows`, reports the segments that move
    /// TCP's state in `reports`, leaves everything else to the next hook (the engine's nftables
    /// rules and sockets).
    public static func ingressProgram(flows: Int32, reports: Int32) -> [UInt64] {
        var a = A()
        let pass = a.label(), control = a.label(), macs = a.label(), report = a.label(), forward = a.label(), full = a.label()
        a.mov(.r6, .r1)
        emitLookup(&a, flows: flows, miss: pass, control: control)
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
        a.store(.word, .r10, key + Int16(reportFlagsOffset) + 4, imm: 0)
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
        a.mov(.r4, 0)
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
        let send = a.label()
        a.jump(.equal, .r9, 0, send)
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
    public static func socketFilter(flows: Int32, destinations: [IPAddress], sources: [IPAddress], acceptIPv6: Bool) -> [UInt64] {
        var a = A()
        let classic = a.label(), accept = a.label(), drop = a.label(), ipv6 = a.label()
        a.mov(.r6, .r1)
        emitLookup(&a, flows: flows, miss: classic, control: classic)
        a.mov(.r0, 0)
        a.exit()
        a.bind(classic)
        a.load(.word, .r2, .r6, 0)
        a.jump(.less, .r2, 14, drop)
        loadBytes(&a, 14)
        a.jump(.notEqual, .r0, 0, drop)
        a.load(.half, .r1, .r10, header + 12)
        a.jump(.equal, .r1, 0x0081, accept)
        a.jump(.equal, .r1, 0xDD86, ipv6)
        a.jump(.notEqual, .r1, 0x0008, drop)
        a.load(.word, .r2, .r6, 0)
        a.jump(.less, .r2, 34, drop)
        loadBytes(&a, 34)
        a.jump(.notEqual, .r0, 0, drop)
        a.load(.word, .r1, .r10, header + 30)
        for d in Set(destinations.filter { !$0.isV6 }.map(\.v4)).sorted() { a.jump32(.equal, .r1, d.byteSwapped, accept) }
        a.load(.word, .r1, .r10, header + 26)
        for s in Set(sources.filter { !$0.isV6 }.map(\.v4)).sorted() { a.jump32(.equal, .r1, s.byteSwapped, accept) }
        a.jump(drop)
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

    struct Record {
        var keys: [FastPathLayout.Key]
        var directions: [PacketDirection]
        var seen: [(packets: UInt64, bytes: UInt64)]
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
    }

    /// The map (room for `capacity` flows, kernel memory taken as they come) and the program on
    /// each interface. Throws when the kernel has no tcx (before 6.6) or refuses BPF.
    init(interfaces: [Int32], capacity: Int, paths: ReturnPaths) throws {
        flows = try EBPFHashMap(keySize: FastPathLayout.keySize, valueSize: FastPathLayout.valueSize, capacity: capacity, preallocated: false)
        reports = try EBPFRingBuffer(size: 1 << 20, recordSize: FastPathLayout.reportSize)
        ingress = try EBPFProgram(.schedClassifier, FastPathLayout.ingressProgram(flows: flows.fd, reports: reports.fd),
                                  expectedAttach: EBPFProgram.tcxIngress)
        self.paths = paths
        for i in interfaces { links.append(try ingress.attachIngress(i)) }
    }

    /// The packet sockets' filter for this map.
    func socketFilter(destinations: [IPAddress], sources: [IPAddress], acceptIPv6: Bool) throws -> EBPFProgram {
        try EBPFProgram(.socketFilter, FastPathLayout.socketFilter(flows: flows.fd, destinations: destinations, sources: sources,
                                                                 acceptIPv6: acceptIPv6))
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
            let record = Record(keys: r.flows.map(\.key), directions: r.flows.map(\.direction),
                                seen: Array(repeating: (0, 0), count: r.flows.count), server: r.server, hop: r.hop)
            lock.withLock {
                records[r.connection] = record
                for f in r.flows { owners[f.key] = (r.connection, f.direction) }
                counters.offloaded &+= 1
            }
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
        var reports: [(ConnectionID, [FastPathLayout.Usage?], Bool)] = []
        reports.reserveCapacity(list.count)
        var missed: Set<FastPathLayout.Key> = []
        for (id, record) in list {
            let take = wanted.contains(id) || hops[record.server] != record.hop
            var usages: [FastPathLayout.Usage?] = []
            for key in record.keys {
                if let u = last[key] {
                    usages.append(u)
                    continue
                }
                var k = key.bytes
                let found = value.withUnsafeMutableBytes { out in
                    withUnsafeBytes(of: &k) { take ? flows.take(key: $0.baseAddress!, into: out.baseAddress!) : flows.lookup(key: $0.baseAddress!, into: out.baseAddress!) }
                }
                usages.append(found ? value.withUnsafeBytes { FastPathLayout.Usage(value: $0.baseAddress!) } : nil)
                if take && !found { missed.insert(key) }
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
        var taken: [(ConnectionID, Record, alreadyOut: Bool, seen: [(packets: UInt64, bytes: UInt64)])] = []
        var forwarded: UInt64 = 0
        var updated: [(ConnectionID, [(UInt64, UInt64)])] = []
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
                    retired[key] = Retired(connection: id, direction: record.directions[j], seen: seen[j])
                }
                counters.withdrawn &+= 1
            }
        }
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
    func applyReports(state: LoadBalancerState, hops: [IPAddress: NextHop]) {
        let all = readReports()
        guard !all.isEmpty else { return }
        var leaving: [ConnectionID] = []
        var last: [FastPathLayout.Key: FastPathLayout.Usage] = [:]
        var segments: [(ConnectionID, PacketDirection, TCPFlags)] = []
        segments.reserveCapacity(all.count)
        var late: [(Retired, FastPathLayout.Report)] = []
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
        }
        if !leaving.isEmpty { poll(state: state, hops: hops, withdrawals: leaving, last: last) }
    }
}
