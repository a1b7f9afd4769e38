import LVSCore
import LVSPacket

/// Why the engine dropped a frame it had taken from the kernel; each is counted.
public enum PacketDrop: Int, CaseIterable, Sendable {
    case malformed
    case truncated
    /// A first fragment (the kernel keeps the rest; there is nothing to forward it with).
    case fragment
    /// A TCP segment that cannot start a connection, with no connection: the kernel would give it
    /// to the local stack.
    case notScheduled
    /// No real server available: answered with ICMP port unreachable.
    case noDestination
    /// The table refused it (full, or its real server is gone).
    case table
    /// The next hop's Ethernet address is not known yet.
    case noNextHop
    /// Its hop limit ran out: answered with ICMP time exceeded.
    case hopLimit
    /// Too big for the path with DF set (or IPv6): answered with fragmentation needed / packet too big.
    case tooBig
    /// A forwarding method this engine does not do (local, bypass), or a real server on this host.
    case unsupported
    /// The kernel refused to send it.
    case sendFailed

    public var label: String {
        switch self {
        case .malformed: return "malformed"
        case .truncated: return "truncated"
        case .fragment: return "fragment"
        case .notScheduled: return "not scheduled"
        case .noDestination: return "no destination"
        case .table: return "refused by the table"
        case .noNextHop: return "no next hop"
        case .hopLimit: return "hop limit"
        case .tooBig: return "too big"
        case .unsupported: return "unsupported"
        case .sendFailed: return "send failed"
        }
    }
}

/// The engine's counters (owned by its thread; read as a copy).
public struct PacketCounters: Sendable, Hashable {
    public var received: UInt64 = 0
    /// Frames left to the kernel (not for a virtual service).
    public var passed: UInt64 = 0
    public var forwarded: UInt64 = 0
    public var replies: UInt64 = 0
    public var icmpSent: UInt64 = 0
    /// ICMP errors about a connection, forwarded (translated for NAT).
    public var related: UInt64 = 0
    /// IPv4 fragments taken for reassembly, and the datagrams made whole from them.
    public var fragments: UInt64 = 0
    public var reassembled: UInt64 = 0
    /// The in-kernel path: packets it forwarded, connections handed to it and taken back, those
    /// it had no room for, the segments it reported and the reports for flows no longer known.
    public var kernelForwarded: UInt64 = 0
    public var offloaded: UInt64 = 0
    public var withdrawn: UInt64 = 0
    public var offloadRefused: UInt64 = 0
    public var kernelReports: UInt64 = 0
    public var unknownReports: UInt64 = 0
    /// New connections whose SYN the kernel scheduled with a choice taken ahead, SYNs that
    /// reopened a closed flow there, and those of either whose choice or connection no longer
    /// stood when they reported (their flows taken back).
    public var scheduledInKernel: UInt64 = 0
    public var reopenedInKernel: UInt64 = 0
    public var scheduledInKernelRefused: UInt64 = 0
    public var drops = [UInt64](repeating: 0, count: PacketDrop.allCases.count)
    public var malformed = [UInt64](repeating: 0, count: FrameError.allCases.count)

    public init() {}

    public var dropped: UInt64 { drops.reduce(0, +) }

    /// The sum of several forwarders' counters.
    public static func + (a: PacketCounters, b: PacketCounters) -> PacketCounters {
        var c = a
        c.received &+= b.received
        c.passed &+= b.passed
        c.forwarded &+= b.forwarded
        c.replies &+= b.replies
        c.icmpSent &+= b.icmpSent
        c.related &+= b.related
        c.fragments &+= b.fragments
        c.reassembled &+= b.reassembled
        c.kernelForwarded &+= b.kernelForwarded
        c.offloaded &+= b.offloaded
        c.withdrawn &+= b.withdrawn
        c.offloadRefused &+= b.offloadRefused
        c.kernelReports &+= b.kernelReports
        c.unknownReports &+= b.unknownReports
        c.scheduledInKernel &+= b.scheduledInKernel
        c.reopenedInKernel &+= b.reopenedInKernel
        c.scheduledInKernelRefused &+= b.scheduledInKernelRefused
        for i in c.drops.indices { c.drops[i] &+= b.drops[i] }
        for i in c.malformed.indices { c.malformed[i] &+= b.malformed[i] }
        return c
    }
}

/// What to do with one frame.
public enum FrameAction: Sendable, Hashable {
    /// Not the engine's: the kernel has it too.
    case pass
    case drop(PacketDrop)
    /// Send `length` bytes from `start` out of `interface`.
    case send(start: Int, length: Int, interface: Int32)
    /// Send the forwarder's `count` segments (`Forwarder.segment(_:)`) out of `interface`.
    case sendSegments(count: Int, interface: Int32)
    /// A fragment kept until its datagram is whole.
    case held
}

/// The virtio_net_hdr before each frame (PACKET_VNET_HDR, little-endian): a GRO/TSO super-packet
/// says how to cut it, a partial checksum where the NIC is to finish it.
public struct VirtioHeader: Sendable, Hashable {
    public static let size = 10
    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0

    public init() {}

    /// VIRTIO_NET_HDR_F_NEEDS_CSUM.
    public var needsChecksum: Bool { flags & 1 != 0 }
    public var isGSO: Bool { gsoType & 0x7F != 0 }

    public init(_ p: UnsafeMutableRawBufferPointer, at o: Int) {
        flags = p[o]
        gsoType = p[o + 1]
        headerLength = UInt16(p[o + 2]) | UInt16(p[o + 3]) << 8
        gsoSize = UInt16(p[o + 4]) | UInt16(p[o + 5]) << 8
        checksumStart = UInt16(p[o + 6]) | UInt16(p[o + 7]) << 8
        checksumOffset = UInt16(p[o + 8]) | UInt16(p[o + 9]) << 8
    }

    public func write(to p: UnsafeMutableRawBufferPointer, at o: Int) {
        p[o] = flags
        p[o + 1] = gsoType
        p.storeBytes(of: headerLength.littleEndian, toByteOffset: o + 2, as: UInt16.self)
        p.storeBytes(of: gsoSize.littleEndian, toByteOffset: o + 4, as: UInt16.self)
        p.storeBytes(of: checksumStart.littleEndian, toByteOffset: o + 6, as: UInt16.self)
        p.storeBytes(of: checksumOffset.littleEndian, toByteOffset: o + 8, as: UInt16.self)
    }
}

/// The packet path's decisions, one frame at a time, without I/O: the engine hands it a frame in a
/// buffer (with headroom before it for a tunnel header, its virtio_net_hdr just before it) and
/// sends what it says (each frame to send is preceded by its virtio_net_hdr). Owned by one thread.
/// Where each NAT connection's replies go: the interface its first packet came in on and the
/// Ethernet address it came from (the client, or the router before it). One per engine, shared by
/// its forwarders, read and written only under the table's lock.
public final class ReturnPaths: @unchecked Sendable {
    // @unchecked Sendable: used only by forwarders, inside the table's lock.
    struct Path {
        var interface: Int32
        var mac: MACAddress
        var generation: UInt16
        var valid: Bool
        /// The connection (this generation of the slot) is in the in-kernel path, or asked to be.
        var offloadGeneration: UInt16 = 0
        var offloaded = false
        /// The connection (this generation) left its flow in the map, closed (`FastPathLayout.closed`).
        var closedGeneration: UInt16 = 0
        var closed = false
    }

    let paths: UnsafeMutablePointer<Path>
    let capacity: Int

    public init(capacity: Int) {
        self.capacity = max(capacity, 1)
        paths = .allocate(capacity: self.capacity)
        paths.initialize(repeating: Path(interface: 0, mac: .zero, generation: 0, valid: false), count: self.capacity)
    }

    deinit { paths.deallocate() }

    func isOffloaded(_ id: ConnectionID) -> Bool {
        let i = Int(id.index)
        return i >= 0 && i < capacity && paths[i].offloaded && paths[i].offloadGeneration == id.generation
    }

    func markOffloaded(_ id: ConnectionID) {
        let i = Int(id.index)
        guard i >= 0 && i < capacity else { return }
        paths[i].offloaded = true
        paths[i].offloadGeneration = id.generation
    }

    func markClosed(_ id: ConnectionID) {
        let i = Int(id.index)
        guard i >= 0 && i < capacity else { return }
        paths[i].closed = true
        paths[i].closedGeneration = id.generation
    }

    /// Whether connection `id` had a closed flow (forgotten here).
    func takeClosed(_ id: ConnectionID) -> Bool {
        let i = Int(id.index)
        guard i >= 0 && i < capacity && paths[i].closed && paths[i].closedGeneration == id.generation else { return false }
        paths[i].closed = false
        return true
    }

    /// The connections with a closed flow (a walk over every slot: for a change of the table,
    /// not for each packet).
    func closedConnections() -> [ConnectionID] {
        var out: [ConnectionID] = []
        for i in 0..<capacity where paths[i].closed {
            out.append(ConnectionID(index: Int32(i), generation: paths[i].closedGeneration))
        }
        return out
    }

    /// Under the table's lock.
    func clearOffload(_ id: ConnectionID) {
        if isOffloaded(id) { paths[Int(id.index)].offloaded = false }
    }
}

public struct Forwarder {
    public private(set) var counters = PacketCounters()
    private let shared: ReturnPaths
    private let returnPaths: UnsafeMutablePointer<ReturnPaths.Path>
    private let capacity: Int
    /// Tunnel types by real server (from the table; `-i` with `--tun-type`).
    public var tunnels: [Endpoint: TunnelConfig] = [:]
    /// The Ethernet address of each interface frames arrive on (for ICMP answers).
    public var interfaceMACs: [Int32: MACAddress] = [:]
    /// The MTU of each of those interfaces (a NAT reply going back out of one is fragmented to it).
    public var interfaceMTUs: [Int32: Int] = [:]
    /// The VIPs and NAT real servers: fragments to or from them are reassembled here (the kernel
    /// reassembles before IPVS); others are the kernel's.
    public var fragmentAddresses: Set<IPAddress> = []
    private var reassembler = IPv4Reassembler()
    private let reassembled: UnsafeMutableRawBufferPointer
    private var identification: UInt16 = 1
    /// Where a super-packet that must go through a tunnel is cut into segments.
    private let segments: UnsafeMutableRawBufferPointer
    private let segmentStarts: UnsafeMutablePointer<Int>
    private let segmentLengths: UnsafeMutablePointer<Int>
    static let segmentStride = 2048
    static let segmentHeadroom = 128
    public static let maximumSegments = 128

    public init(capacity: Int) {
        self.init(returnPaths: ReturnPaths(capacity: capacity))
    }

    public init(returnPaths shared: ReturnPaths) {
        self.shared = shared
        returnPaths = shared.paths
        capacity = shared.capacity
        segments = .allocate(byteCount: Forwarder.segmentStride * Forwarder.maximumSegments, alignment: 64)
        reassembled = .allocate(byteCount: 69632, alignment: 64)
        segmentStarts = .allocate(capacity: Forwarder.maximumSegments)
        segmentLengths = .allocate(capacity: Forwarder.maximumSegments)
    }

    /// Frees the forwarder's tables; it must not be used after.
    public func release() {
        segments.deallocate()
        reassembled.deallocate()
        segmentStarts.deallocate()
        segmentLengths.deallocate()
    }

    /// Segment `i` of the last `.sendSegments`: where its virtio_net_hdr starts, and its length
    /// with it.
    public func segment(_ i: Int) -> (UnsafeMutableRawPointer, Int) {
        (segments.baseAddress! + segmentStarts[i] - VirtioHeader.size, segmentLengths[i] + VirtioHeader.size)
    }

    /// Handles the frame of `length` bytes at `start` in `buffer` (which has `start` bytes of
    /// headroom before it), received on `interface` with firewall mark `fwmark` (0: none, or not
    /// known at the hook it was taken at).
    public mutating func handle(_ buffer: UnsafeMutableRawBufferPointer, start: Int, length: Int, flags: UInt32, interface: Int32,
                                fwmark: UInt32 = 0, table: inout IPVS, hops: [IPAddress: NextHop], missing: inout [IPAddress],
                                now: Int64) -> FrameAction {
        counters.received &+= 1
        let frameBytes = UnsafeMutableRawBufferPointer(rebasing: buffer[start..<(start + length)])
        let frame: Frame
        switch Frame.parse(UnsafeRawBufferPointer(frameBytes)) {
        case .success(let f): frame = f
        case .failure(.notIP):
            counters.passed &+= 1
            return .pass
        case .failure(let e):
            // The kernel sees the same frame and drops it itself (ip_rcv's checks).
            counters.malformed[e.rawValue] &+= 1
            counters.passed &+= 1
            return .pass
        }
        guard flags & 16 == 0 else {
            counters.passed &+= 1
            return .pass
        }
        if frame.fragment != .none {
            return fragment(buffer, frame, start: start, flags: flags, interface: interface, fwmark: fwmark, table: &table, hops: hops,
                            missing: &missing, now: now)
        }
        if flags & 1 != 0 { return drop(.truncated) }
        let virtio = start >= VirtioHeader.size ? VirtioHeader(buffer, at: start - VirtioHeader.size) : VirtioHeader()
        // Offsets from here on are in `buffer`.
        var f = frame.moved(by: start)
        let summary = frame.summary(fwmark: fwmark)
        if frame.protocolNumber == IPProtocolNumber.icmp || frame.protocolNumber == IPProtocolNumber.icmpv6,
           let quote = ICMPMessage.quote(UnsafeRawBufferPointer(buffer), f), quote.hasPorts {
            return related(buffer, &f, quote, frameStart: start, virtio: virtio, interface: interface, table: table, hops: hops, missing: &missing)
        }
        switch table.inbound(summary, now: now) {
        case .notVirtual:
            return reply(buffer, &f, summary: summary, frameStart: start, virtio: virtio, table: &table, hops: hops, missing: &missing, now: now)
        case .pass:
            return drop(.notScheduled)
        case .drop:
            return drop(.table)
        case .noDestination:
            return answer(.portUnreachable, buffer, f, frameStart: start, interface: interface, reason: .noDestination)
        case .forward(let forwarding):
            let action = forward(buffer, &f, forwarding, frameStart: start, virtio: virtio, interface: interface, hops: hops, missing: &missing)
            if offloading, fwmark == 0, case .send = action {
                considerOffload(forwarding, summary, interface: interface, table: table, hops: hops)
            }
            return action
        }
    }

    // MARK: The in-kernel path

    /// Hand established connections to the in-kernel path (`FastPath`).
    public var offloading = false
    /// Only after this many client packets (`IPVS.mayOffload(_:afterPackets:)`).
    public var offloadAfterPackets: UInt32 = 0
    /// Connections to hand over and to take back, for the engine to act on after its batch
    /// (outside the table's lock); it empties both with `clearOffloadQueues`.
    public private(set) var offloads: [OffloadRequest] = []
    public private(set) var withdrawals: [ConnectionID] = []

    public mutating func clearOffloadQueues() {
        offloads.removeAll(keepingCapacity: true)
        withdrawals.removeAll(keepingCapacity: true)
    }

    /// A connection's packet went through the engine: an offloaded connection the table no longer
    /// lets the kernel forward is taken back; one it does is handed over, with what its packets
    /// need (DR: the next hop's MACs; NAT: also the real server's address and port, and the
    /// rewrite of its replies back the way the client's packets came).
    private mutating func considerOffload(_ forwarding: Forwarding, _ summary: PacketSummary, interface: Int32, table: IPVS,
                                          hops: [IPAddress: NextHop]) {
        let id = forwarding.connection
        if shared.isOffloaded(id) {
            if !table.mayOffload(id) { withdraw(id) }
            return
        }
        let method = forwarding.method
        let destination = forwarding.destination
        guard method == .gatewaying || method == .masquerade, !summary.destination.isV6, !destination.address.isV6,
              summary.protocolNumber == IPProtocolNumber.tcp || summary.protocolNumber == IPProtocolNumber.udp,
              table.mayOffload(id, afterPackets: offloadAfterPackets, reported: true),
              let hop = hops[destination.address], !hop.isLocal, (interfaceMTUs[interface] ?? 1500) <= hop.mtu else { return }
        let inbound = FastPathLayout.Key(protocolNumber: summary.protocolNumber, source: summary.source.v4, sourcePort: summary.sourcePort,
                                         destination: summary.destination.v4, destinationPort: summary.destinationPort)
        var request = OffloadRequest(connection: id, flows: [], server: destination.address, hop: hop)
        // Handed over before the handshake ended: the client's next plain segment is reported.
        let report = !table.mayOffload(id)
        if method == .gatewaying {
            request.flows.append((inbound, FastPathLayout.value(action: .macsOnly, interface: hop.interface, destinationMAC: hop.destinationMAC,
                                                                sourceMAC: hop.sourceMAC, report: report), .input))
        } else {
            guard let path = returnPath(id), let back = interfaceMACs[path.interface],
                  (interfaceMTUs[hop.interface] ?? 1500) <= (interfaceMTUs[path.interface] ?? 1500) else { return }
            request.flows.append((inbound, FastPathLayout.value(action: .destination, address: destination.address.v4, port: destination.port,
                                                                interface: hop.interface, destinationMAC: hop.destinationMAC,
                                                                sourceMAC: hop.sourceMAC, report: report), .input))
            let reply = FastPathLayout.Key(protocolNumber: summary.protocolNumber, source: destination.address.v4, sourcePort: destination.port,
                                           destination: summary.source.v4, destinationPort: summary.sourcePort)
            request.flows.append((reply, FastPathLayout.value(action: .source, address: summary.destination.v4, port: summary.destinationPort,
                                                              interface: path.interface, destinationMAC: path.mac,
                                                              sourceMAC: back), .output))
        }
        shared.markOffloaded(id)
        offloads.append(request)
    }

    /// The way a NAT connection's first packet came in, while it is this connection's.
    private func returnPath(_ id: ConnectionID) -> ReturnPaths.Path? {
        let i = Int(id.index)
        guard i >= 0 && i < capacity && returnPaths[i].valid && returnPaths[i].generation == id.generation else { return nil }
        return returnPaths[i]
    }

    private mutating func withdraw(_ id: ConnectionID) {
        shared.clearOffload(id)
        withdrawals.append(id)
    }

    /// A fragment: IPVS only ever sees whole datagrams (the kernel reassembles first), so one to
    /// a VIP or from a NAT real server is kept until its datagram is complete, which then goes the
    /// way any datagram goes. IPv6 fragments and the rest are the kernel's.
    private mutating func fragment(_ buffer: UnsafeMutableRawBufferPointer, _ frame: Frame, start: Int, flags: UInt32, interface: Int32,
                                   fwmark: UInt32, table: inout IPVS, hops: [IPAddress: NextHop], missing: inout [IPAddress],
                                   now: Int64) -> FrameAction {
        guard !frame.isV6, fragmentAddresses.contains(frame.destination) || fragmentAddresses.contains(frame.source) else {
            counters.passed &+= 1
            return .pass
        }
        let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[start...])
        guard let datagram = reassembler.add(bytes, frame, now: now) else {
            counters.fragments &+= 1
            return .held
        }
        counters.fragments &+= 1
        counters.reassembled &+= 1
        // The whole datagram behind the last fragment's Ethernet header, in a buffer of its own.
        let headroom = 128
        let length = frame.network + datagram.count
        guard headroom + length + 2048 <= reassembled.count else { return drop(.malformed) }
        UnsafeMutableRawBufferPointer(rebasing: reassembled[headroom..<(headroom + frame.network)])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<frame.network]))
        datagram.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: reassembled[(headroom + frame.network)...]).copyMemory(from: $0) }
        VirtioHeader().write(to: reassembled, at: headroom - VirtioHeader.size)
        counters.received &-= 1
        let action = handle(reassembled, start: headroom, length: length, flags: flags & ~2, interface: interface, fwmark: fwmark,
                            table: &table, hops: hops, missing: &missing, now: now)
        guard case .send(let s, let l, let i) = action else { return action }
        // What the engine sends must be in the segment area: it refers to no slot of its batch.
        let slot = UnsafeMutableRawBufferPointer(rebasing: segments[0..<Forwarder.segmentStride])
        guard VirtioHeader.size + l <= Forwarder.segmentStride - Forwarder.segmentHeadroom + VirtioHeader.size,
              l <= Forwarder.segmentStride - Forwarder.segmentHeadroom else { return drop(.unsupported) }
        UnsafeMutableRawBufferPointer(rebasing: slot[(Forwarder.segmentHeadroom - VirtioHeader.size)...])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(reassembled)[(s - VirtioHeader.size)..<(s + l)]))
        segmentStarts[0] = Forwarder.segmentHeadroom
        segmentLengths[0] = l
        return .sendSegments(count: 1, interface: i)
    }

    /// A frame larger than the MTU of where it goes, without DF: cut into fragments (the kernel
    /// fragments on output); each in the segment area.
    private mutating func fragmentOut(_ buffer: UnsafeMutableRawBufferPointer, _ f: Frame, frameStart: Int, mtu: Int, interface: Int32) -> FrameAction {
        let relative = f.moved(by: -frameStart)
        let source = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[frameStart..<f.end])
        guard let count = IPv4Fragmentation.fragment(source, relative, mtu: mtu, into: segments, stride: Forwarder.segmentStride,
                                                     headroom: Forwarder.segmentHeadroom, lengths: segmentLengths,
                                                     maximum: Forwarder.maximumSegments) else { return drop(.tooBig) }
        for i in 0..<count {
            segmentStarts[i] = i * Forwarder.segmentStride + Forwarder.segmentHeadroom
            VirtioHeader().write(to: segments, at: segmentStarts[i] - VirtioHeader.size)
        }
        return .sendSegments(count: count, interface: interface)
    }

    /// A marked packet that NFLOG gave without an Ethernet header, or too big for a frame.
    public mutating func countMarkedUnusable() {
        counters.received &+= 1
        counters.drops[PacketDrop.malformed.rawValue] &+= 1
    }

    private mutating func drop(_ reason: PacketDrop) -> FrameAction {
        counters.drops[reason.rawValue] &+= 1
        return .drop(reason)
    }

    /// An ICMP error back to the frame's sender, out of the interface it came in on, from the
    /// address it was sent to (the VIP, as the kernel's icmp_send picks for a local destination);
    /// written over the frame's headroom-free copy at the end of the buffer.
    private mutating func answer(_ error: ICMPMessage.Error, _ buffer: UnsafeMutableRawBufferPointer, _ f: Frame, frameStart: Int,
                                 interface: Int32, reason: PacketDrop) -> FrameAction {
        counters.drops[reason.rawValue] &+= 1
        let ro = UnsafeRawBufferPointer(buffer)
        guard ICMPMessage.mayAnswer(ro, f), let mac = interfaceMACs[interface] else { return .drop(reason) }
        // The answer goes after the frame (the quote is read from the frame while it is written),
        // with room for its virtio_net_hdr.
        let out = f.end + 64 - f.end % 64 + 64
        guard out + 1400 <= buffer.count else { return .drop(reason) }
        let quoted = f.moved(by: -frameStart)
        let frameBytes = UnsafeRawBufferPointer(rebasing: ro[frameStart..<f.end])
        guard let length = ICMPMessage.write(error, about: quoted, in: frameBytes, from: f.destination, sourceMAC: mac,
                                             into: UnsafeMutableRawBufferPointer(rebasing: buffer[out...])) else { return .drop(reason) }
        counters.icmpSent &+= 1
        VirtioHeader().write(to: buffer, at: out - VirtioHeader.size)
        return .send(start: out, length: length, interface: interface)
    }

    private mutating func forward(_ buffer: UnsafeMutableRawBufferPointer, _ f: inout Frame, _ forwarding: Forwarding, frameStart: Int,
                                  virtio: VirtioHeader, interface: Int32, hops: [IPAddress: NextHop], missing: inout [IPAddress],
                                  icmp: Bool = false) -> FrameAction {
        let method = forwarding.method
        guard method == .gatewaying || method == .masquerade || method == .tunnel else { return drop(.unsupported) }
        let destination = forwarding.destination
        if !icmp && method == .masquerade && forwarding.connection.index >= 0 && Int(forwarding.connection.index) < capacity {
            let i = Int(forwarding.connection.index)
            if forwarding.isNew || !returnPaths[i].valid || returnPaths[i].generation != forwarding.connection.generation {
                returnPaths[i].interface = interface
                returnPaths[i].mac = MACAddress.read(UnsafeRawBufferPointer(buffer), at: frameStart + 6)
                returnPaths[i].generation = forwarding.connection.generation
                returnPaths[i].valid = true
            }
        }
        guard let hop = hops[destination.address] else {
            missing.append(destination.address)
            return drop(.noNextHop)
        }
        if hop.isLocal { return drop(.unsupported) }
        guard Rewrite.decrementHopLimit(buffer, &f) else {
            return answer(.timeExceeded, buffer, f, frameStart: frameStart, interface: interface, reason: .hopLimit)
        }
        let tunnel = method == .tunnel ? tunnelKind(destination) : nil
        let overhead = tunnel.map { Tunnel.overhead($0) } ?? 0
        if let tunnel, virtio.isGSO {
            return tunnelSegments(buffer, f, tunnel: tunnel, overhead: overhead, virtio: virtio, destination: destination.address, hop: hop,
                                  frameStart: frameStart, interface: interface)
        }
        // A super-packet is cut to the path's MTU on the way out (the kernel skips GSO packets here too).
        if !virtio.isGSO && f.ipLength + overhead > hop.mtu && (f.dontFragment || f.isV6) {
            // The quote shows the datagram as it arrived (its hop limit before this hop).
            return answer(.tooBig(mtu: hop.mtu - overhead), buffer, f, frameStart: frameStart, interface: interface, reason: .tooBig)
        }
        if method == .masquerade && !icmp {
            Rewrite.setDestination(buffer, &f, address: destination.address, port: destination.port, partial: virtio.needsChecksum)
        }
        counters.forwarded &+= 1
        if let tunnel {
            // The checksum the NIC was to finish is finished here: it now sits deeper in the frame.
            if virtio.needsChecksum { Rewrite.completeTransportChecksum(buffer, f) }
            identification &+= 1
            let flow = summaryHash(f)
            guard let (start, length) = Tunnel.encapsulate(buffer, f, kind: tunnel, source: hop.source, destination: destination.address,
                                                            identification: identification, flowHash: flow,
                                                            destinationMAC: hop.destinationMAC, sourceMAC: hop.sourceMAC) else {
                counters.forwarded &-= 1
                return drop(.unsupported)
            }
            VirtioHeader().write(to: buffer, at: start - VirtioHeader.size)
            return .send(start: start, length: length, interface: hop.interface)
        }
        // The frame keeps its virtio_net_hdr: the same offsets, the same segmentation.
        Rewrite.setMACs(UnsafeMutableRawBufferPointer(rebasing: buffer[frameStart...]), destination: hop.destinationMAC, source: hop.sourceMAC)
        if !virtio.isGSO && f.ipLength > hop.mtu {
            if virtio.needsChecksum { Rewrite.completeTransportChecksum(buffer, f) }
            return fragmentOut(buffer, f, frameStart: frameStart, mtu: hop.mtu, interface: hop.interface)
        }
        return .send(start: frameStart, length: f.end - frameStart, interface: hop.interface)
    }

    /// A super-packet for a tunnel: no GSO type says "TCP inside IPIP", so it is cut here, and each
    /// segment wrapped. A segment that would not fit the path with the tunnel header gets the
    /// sender a "fragmentation needed" (as the kernel checks each segment's size).
    private mutating func tunnelSegments(_ buffer: UnsafeMutableRawBufferPointer, _ f: Frame, tunnel: Tunnel.Kind, overhead: Int, virtio: VirtioHeader,
                                         destination: IPAddress, hop: NextHop, frameStart: Int, interface: Int32) -> FrameAction {
        let type = virtio.gsoType & 0x7F
        guard type == 1 || type == 4, virtio.gsoSize > 0 else { return drop(.unsupported) }
        let mss = Int(virtio.gsoSize)
        let tcpHeader = Int(buffer[f.transport + 12] >> 4) * 4
        let segmentIP = f.transport - f.network + tcpHeader + mss
        if segmentIP + overhead > hop.mtu && (f.dontFragment || f.isV6) {
            return answer(.tooBig(mtu: hop.mtu - overhead), buffer, f, frameStart: frameStart, interface: interface, reason: .tooBig)
        }
        let relative = f.moved(by: -frameStart)
        let source = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[frameStart..<f.end])
        guard let count = TCPSegmentation.segment(source, relative, mss: mss, into: segments, stride: Forwarder.segmentStride,
                                                  headroom: Forwarder.segmentHeadroom, lengths: segmentLengths,
                                                  maximum: Forwarder.maximumSegments) else { return drop(.unsupported) }
        let flow = summaryHash(f)
        for i in 0..<count {
            let slot = UnsafeMutableRawBufferPointer(rebasing: segments[(i * Forwarder.segmentStride)..<((i + 1) * Forwarder.segmentStride)])
            var inner = relative.moved(by: Forwarder.segmentHeadroom)
            inner.end = Forwarder.segmentHeadroom + segmentLengths[i]
            identification &+= 1
            guard let (start, length) = Tunnel.encapsulate(slot, inner, kind: tunnel, source: hop.source, destination: destination,
                                                            identification: identification, flowHash: flow,
                                                            destinationMAC: hop.destinationMAC, sourceMAC: hop.sourceMAC) else { return drop(.unsupported) }
            VirtioHeader().write(to: slot, at: start - VirtioHeader.size)
            segmentStarts[i] = i * Forwarder.segmentStride + start
            segmentLengths[i] = length
        }
        counters.forwarded &+= 1
        return .sendSegments(count: count, interface: hop.interface)
    }

    /// An ICMP error about a connection (ip_vs_in_icmp / ip_vs_out_icmp): to the real server (NAT:
    /// the outer destination and the quoted source become the real server's; DR and TUN: as it is,
    /// the way the connection's packets go), or, from a NAT real server's side, back to the client
    /// as if about the virtual service. Anything else is the kernel's.
    private mutating func related(_ buffer: UnsafeMutableRawBufferPointer, _ f: inout Frame, _ q: ICMPMessage.Quote, frameStart: Int,
                                  virtio: VirtioHeader, interface: Int32, table: IPVS, hops: [IPAddress: NextHop],
                                  missing: inout [IPAddress]) -> FrameAction {
        switch table.relatedICMP(protocolNumber: q.protocolNumber, quotedSource: Endpoint(q.source, q.sourcePort),
                                 quotedDestination: Endpoint(q.destination, q.destinationPort)) {
        case .unrelated:
            counters.passed &+= 1
            return .pass
        case .toServer(let connection, let destination, let method):
            counters.related &+= 1
            if method == .masquerade {
                ICMPMessage.translate(buffer, &f, q, inbound: true, address: destination.address, port: destination.port)
            }
            return forward(buffer, &f, Forwarding(connection: connection, server: -1, destination: destination, method: method, isNew: false),
                           frameStart: frameStart, virtio: virtio, interface: interface, hops: hops, missing: &missing, icmp: true)
        case .toClient(let connection, let virtual):
            counters.related &+= 1
            guard Rewrite.decrementHopLimit(buffer, &f) else { return drop(.hopLimit) }
            ICMPMessage.translate(buffer, &f, q, inbound: false, address: virtual.address, port: virtual.port)
            return back(buffer, f, connection: connection, frameStart: frameStart, hops: hops, missing: &missing)
        }
    }

    /// A NAT reply from a real server: its source becomes the virtual service, and it goes back the
    /// way the connection's first packet came.
    private mutating func reply(_ buffer: UnsafeMutableRawBufferPointer, _ f: inout Frame, summary: PacketSummary, frameStart: Int, virtio: VirtioHeader,
                                table: inout IPVS, hops: [IPAddress: NextHop], missing: inout [IPAddress], now: Int64) -> FrameAction {
        guard case .masquerade(let connection, let virtual) = table.outbound(summary, now: now) else {
            counters.passed &+= 1
            return .pass
        }
        if offloading, shared.isOffloaded(connection), !table.mayOffload(connection) { withdraw(connection) }
        guard Rewrite.decrementHopLimit(buffer, &f) else { return drop(.hopLimit) }
        Rewrite.setSource(buffer, &f, address: virtual.address, port: virtual.port, partial: virtio.needsChecksum)
        return back(buffer, f, connection: connection, frameStart: frameStart, hops: hops, missing: &missing)
    }

    /// Sends a frame for a NAT connection's client the way its first packet came (or, without
    /// that, by the client's next hop).
    private mutating func back(_ buffer: UnsafeMutableRawBufferPointer, _ f: Frame, connection: ConnectionID, frameStart: Int,
                               hops: [IPAddress: NextHop], missing: inout [IPAddress]) -> FrameAction {
        let interface: Int32
        let destinationMAC: MACAddress
        if let path = returnPath(connection) {
            interface = path.interface
            destinationMAC = path.mac
        } else if let hop = hops[f.destination] {
            interface = hop.interface
            destinationMAC = hop.destinationMAC
        } else {
            missing.append(f.destination)
            return drop(.noNextHop)
        }
        guard let sourceMAC = interfaceMACs[interface] ?? hops.values.first(where: { $0.interface == interface })?.sourceMAC else {
            return drop(.noNextHop)
        }
        Rewrite.setMACs(UnsafeMutableRawBufferPointer(rebasing: buffer[frameStart...]), destination: destinationMAC, source: sourceMAC)
        counters.replies &+= 1
        if let mtu = interfaceMTUs[interface], f.ipLength > mtu, !f.dontFragment, !f.isV6 {
            return fragmentOut(buffer, f, frameStart: frameStart, mtu: mtu, interface: interface)
        }
        return .send(start: frameStart, length: f.end - frameStart, interface: interface)
    }

    private func tunnelKind(_ server: Endpoint) -> Tunnel.Kind {
        guard let t = tunnels[server] else { return .ipip }
        switch t.kind {
        case .ipip: return .ipip
        case .gue: return .gue(port: t.port, checksum: t.checksum != .none)
        case .gre: return .gre(checksum: t.checksum != .none)
        }
    }

    private func summaryHash(_ f: Frame) -> UInt32 {
        var h = f.source.folded &* 0x9E37_79B1
        h ^= UInt32(f.sourcePort) << 16 | UInt32(f.destinationPort)
        h = (h ^ (h >> 15)) &* 0x85EB_CA6B
        return h ^ (h >> 13)
    }

    /// The send of an action failed.
    public mutating func sendFailed(_ count: Int) {
        counters.drops[PacketDrop.sendFailed.rawValue] &+= UInt64(count)
        counters.forwarded &-= min(counters.forwarded, UInt64(count))
    }
}
