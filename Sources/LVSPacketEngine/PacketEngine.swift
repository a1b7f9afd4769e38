import CLinux
import LVSCore
import LVSPacket
import LVSState
import LinuxNet
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// The `packet` engine: IPVS's data plane in user space. Its threads (`PacketWorker`) read the
/// frames arriving on the given interfaces (AF_PACKET; with several threads, each interface's
/// flows are spread over them by hash, a flow always to the same one), decide for each with the
/// shared table (`Forwarder`), and send the rewritten frames out (NAT, direct routing, IP
/// tunnelling); an nftables table keeps the kernel from answering for the same packets
/// (`Interception`). The table's clocks run on the first thread between batches.
public final class PacketEngine: @unchecked Sendable {
    // @unchecked Sendable: each worker's sockets, buffers and forwarder belong to its thread;
    // `interception` and `filtered` are behind locks; `hops` is thread-safe.
    public struct Options: Sendable {
        public var interfaces: [String]
        /// Frames taken per system call.
        public var batch = 64
        /// The packet thread's nice value (0 leaves it as it is).
        public var niceValue: Int32 = 0
        /// After traffic, how long the packet thread keeps polling its sockets before it sleeps
        /// in epoll (0: it sleeps at once). Polling spares the wake-up of every small batch; with
        /// the in-kernel path only new connections' SYNs come this way, and a long poll mostly
        /// takes the CPU from the director's other work. Unset: 200 us when every packet comes
        /// this way, 30 us with the in-kernel path (the better of those measured for each).
        public var pollMicroseconds: Int?
        /// Packet threads.
        public var threads = 1
        /// Established connections forwarded in the kernel (`FastPath`), once the engine has seen
        /// `offloadAfterPackets` of their client packets.
        public var offload = true
        public var offloadAfterPackets: UInt32 = 0

        public init(interfaces: [String]) {
            self.interfaces = interfaces
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let state: LoadBalancerState
    let logger: Logger
    public let options: Options
    let hops = NextHops()
    /// The in-kernel path for established connections, when the kernel takes it.
    private(set) var fastPath: FastPath?
    let interfaceIndexes: [Int32]
    private var workers: [PacketWorker] = []
    private let interception = NIOLockedValueBox<Interception?>(nil)
    private let fwmarkWarned = NIOLockedValueBox(false)
    /// Whether the first thread has the NFLOG socket fwmark services' packets come through.
    var takesMarkedPackets: Bool { workers.first?.takesMarkedPackets ?? false }
    /// What the sockets' filter lets through (VIPs, NAT real servers, IPv6 or not).
    private let filtered = NIOLockedValueBox<FilterSet>(FilterSet())

    struct FilterSet: Equatable {
        var destinations: Set<IPAddress> = []
        var sources: Set<IPAddress> = []

        /// IPv6 frames are let through (all of them) when any address is IPv6.
        var ipv6: Bool { destinations.contains { $0.isV6 } || sources.contains { $0.isV6 } }

        func union(_ o: FilterSet) -> FilterSet {
            FilterSet(destinations: destinations.union(o.destinations), sources: sources.union(o.sources))
        }
    }

    /// Room for a 64 KiB super-packet with headroom before it and an ICMP answer after it.
    static let stride = 69632
    static let headroom = 128

    /// Opens the sockets (root, or CAP_NET_RAW and CAP_NET_ADMIN); the thread starts with `start`.
    public init(state: LoadBalancerState, logger: Logger, options: Options) throws {
        self.state = state
        self.logger = logger
        self.options = options
        guard !options.interfaces.isEmpty else { throw Failure(description: "the packet engine needs --interface IF[,IF...]") }
        var indexes: [Int32] = []
        for name in options.interfaces {
            guard let i = interfaceIndex(name) else { throw Failure(description: "no interface \(name)") }
            indexes.append(i)
        }
        interfaceIndexes = indexes
        let returnPaths = ReturnPaths(capacity: state.withTable { $0.connectionSlots })
        var macs: [Int32: MACAddress] = [:]
        var mtus: [Int32: Int] = [:]
        let netlink = try? RouteNetlink()
        for i in indexes {
            if let link = try? netlink?.link(i) {
                if let mac = MACAddress(link.mac) { macs[i] = mac }
                mtus[i] = link.mtu
            }
        }
        if options.offload {
            do {
                fastPath = try FastPath(interfaces: indexes, capacity: min(max(2 * state.withTable { $0.connectionSlots }, 1024), 1 << 21),
                                        paths: returnPaths, scheduleAhead: options.offloadAfterPackets == 0)
                fastPath?.aheadMTU = mtus.values.max() ?? 1500
                if let ahead = fastPath?.ahead { state.observeConfigurationChanges { ahead.tableChanged() } }
                // Closed DR flows stay in the map while their connections do.
                if fastPath != nil { state.withTable { $0.logsRemovals = true } }
            } catch {
                logger.warning("established connections will not be forwarded in the kernel; every packet goes through the engine",
                               metadata: ["error": "\(error)"])
            }
        }
        let threads = min(max(options.threads, 1), 64)
        // A fanout group per interface, numbered from this process's id so that two lvsd (in two
        // namespaces) never share one.
        let groupBase = UInt16(truncatingIfNeeded: getpid() &* 16)
        do {
            for w in 0..<threads {
                var receivers: [PacketSocket] = []
                for (k, i) in indexes.enumerated() {
                    let socket = try PacketSocket(receivingOn: i)
                    if threads > 1 { try socket.joinFanout(groupBase &+ UInt16(k)) }
                    receivers.append(socket)
                }
                var forwarder = Forwarder(returnPaths: returnPaths)
                forwarder.offloading = fastPath != nil
                forwarder.offloadAfterPackets = options.offloadAfterPackets
                forwarder.interfaceMACs = macs
                forwarder.interfaceMTUs = mtus
                // The first thread also takes fwmark services' packets from NFLOG.
                var marked: PacketLogSocket?
                if w == 0 {
                    do {
                        marked = try PacketLogSocket(group: Interception.logGroup)
                    } catch {
                        logger.warning("fwmark services will not be forwarded", metadata: ["error": "\(error)"])
                    }
                }
                workers.append(try PacketWorker(index: w, engine: self, receivers: receivers, sender: try PacketSocket(), forwarder: forwarder,
                                                marked: marked))
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "\(error) (the packet engine needs root, or CAP_NET_RAW and CAP_NET_ADMIN)")
        }
        // The rules before the first frame: with no services they drop nothing, and the sockets
        // take nothing.
        try install(Interception(interfaces: options.interfaces))
        try filter(FilterSet())
    }

    /// Lets through the sockets only what `set` names.
    private func filter(_ set: FilterSet) throws {
        let destinations = Array(set.destinations), sources = Array(set.sources)
        let attach: (Int32) -> Int32
        if let fastPath {
            // The eBPF filter also turns away what the in-kernel path forwards.
            let program = try fastPath.socketFilter(destinations: destinations, sources: sources, acceptIPv6: set.ipv6)
            attach = { program.attach(toSocket: $0) }
        } else {
            let program = SocketFilter.program(destinations: destinations, sources: sources, acceptIPv6: set.ipv6)
            attach = { SocketFilter.attach(program, to: $0) }
        }
        for w in workers {
            for r in w.receivers {
                let code = attach(r.fd)
                if code != 0 { throw Failure(description: "cannot attach the socket filter: \(String(cString: strerror(code)))") }
            }
        }
        filtered.withLockedValue { $0 = set }
    }

    /// Starts the packet threads.
    public func start() {
        for w in workers { w.start() }
    }

    /// The table changed: the interception rules, the real servers' next hops and the tunnel types
    /// follow. Blocking (nft, netlink): call it off an event loop's hot path.
    public func tableChanged() throws {
        let services = state.withTable { $0.serviceSnapshots }
        var wanted = Interception(interfaces: options.interfaces, services: services)
        if !wanted.marks.isEmpty && !takesMarkedPackets {
            // Without the NFLOG socket the rule would only black-hole the marked packets.
            wanted.marks = []
            if !fwmarkWarned.withLockedValue({ w in defer { w = true }; return w }) {
                logger.warning("fwmark services are in the table but cannot be forwarded: NFLOG group \(Interception.logGroup) is not ours")
            }
        }
        var servers: Set<IPAddress> = []
        var tunnels: [Endpoint: TunnelConfig] = [:]
        for s in services {
            for r in s.servers {
                servers.insert(r.config.endpoint.address)
                if r.config.forwarding == .tunnel { tunnels[r.config.endpoint] = r.config.tunnel }
            }
        }
        hops.track(servers)
        hops.resolveNow()
        let fragmentAddresses = wanted.destinations.union(wanted.sources).filter { !$0.isV6 }
        for w in workers {
            w.submit(.tunnels(tunnels))
            w.submit(.fragmentAddresses(fragmentAddresses))
        }
        // Connections the change ended or moved come back from the kernel at once.
        workers.first?.submit(.review)
        let set = FilterSet(destinations: wanted.destinations, sources: wanted.sources)
        let old = filtered.withLockedValue { $0 }
        // The sockets take the old and the new while the kernel's rules change, then the new only:
        // no frame is dropped by the rules without the engine seeing it.
        if old != set { try filter(old.union(set)) }
        if interception.withLockedValue({ $0 }) != wanted { try install(wanted) }
        if old != set { try filter(set) }
    }

    private func install(_ rules: Interception) throws {
        try rules.apply()
        interception.withLockedValue { $0 = rules }
    }

    /// The counters as of the last batch, all threads together.
    public var counters: PacketCounters {
        var c = workers.reduce(PacketCounters()) { $0 + $1.counters }
        if let f = fastPath?.snapshot {
            c.kernelForwarded = f.packets
            c.offloaded = f.offloaded
            c.withdrawn = f.withdrawn
            c.offloadRefused = f.refused
            c.kernelReports = f.reported
            c.unknownReports = f.unknownReports
            c.scheduledInKernel = f.scheduledAhead
            c.reopenedInKernel = f.reopened
            c.scheduledInKernelRefused = f.refusedSyns
        }
        return c
    }

    /// Stops the threads and removes the interception rules.
    public func stop() {
        // The programs go first: what they forwarded is counted by the threads' last poll.
        fastPath?.detach()
        for w in workers { w.submit(.stop) }
        for w in workers { w.waitUntilFinished() }
        if fastPath != nil {
            state.withTable { t in
                t.logsRemovals = false
                _ = t.takeRemovals()
            }
        }
        hops.stop()
        Interception.remove()
        interception.withLockedValue { $0 = nil }
        let c = counters
        var metadata: Logger.Metadata = ["received": "\(c.received)", "forwarded": "\(c.forwarded)", "replies": "\(c.replies)",
                                         "passed": "\(c.passed)", "icmp": "\(c.icmpSent)"]
        if c.fragments > 0 { metadata["fragments"] = "\(c.fragments) (\(c.reassembled) datagrams)" }
        if c.related > 0 { metadata["related icmp"] = "\(c.related)" }
        if fastPath != nil {
            metadata["in kernel"] = "\(c.kernelForwarded) packets of \(c.offloaded) connections"
            if c.offloadRefused > 0 { metadata["not offloaded (map full)"] = "\(c.offloadRefused)" }
            metadata["kernel reports"] = "\(c.kernelReports)"
            if c.unknownReports > 0 { metadata["kernel reports for unknown flows"] = "\(c.unknownReports)" }
            if fastPath?.ahead != nil { metadata["syns scheduled in kernel"] = "\(c.scheduledInKernel)" }
            if c.reopenedInKernel > 0 { metadata["syns reopening a closed flow in kernel"] = "\(c.reopenedInKernel)" }
            if c.scheduledInKernelRefused > 0 { metadata["syns from the kernel refused"] = "\(c.scheduledInKernelRefused)" }
        }
        for reason in PacketDrop.allCases where c.drops[reason.rawValue] > 0 { metadata["dropped: \(reason.label)"] = "\(c.drops[reason.rawValue])" }
        for error in FrameError.allCases where c.malformed[error.rawValue] > 0 { metadata["malformed: \(error.label)"] = "\(c.malformed[error.rawValue])" }
        logger.info("packet engine stopped", metadata: metadata)
    }
}

/// One packet thread: its own sockets on each interface (in the interface's fanout group when
/// there are several threads), its own sender, buffers and forwarder; the table shared.
final class PacketWorker: @unchecked Sendable {
    // @unchecked Sendable: everything but `inbox`, `published` and `finished` (locked) is used by
    // the worker's thread only, after `start`.
    let index: Int
    unowned let engine: PacketEngine
    let receivers: [PacketSocket]
    private let sender: PacketSocket
    private var forwarder: Forwarder
    private let epollFD: Int32
    private let wakeFD: Int32
    private let inbox = NIOLockedValueBox<[Command]>([])
    private let published = NIOLockedValueBox(PacketCounters())
    private let finished = NIOLockedValueBox(false)

    enum Command {
        case tunnels([Endpoint: TunnelConfig])
        case fragmentAddresses(Set<IPAddress>)
        /// Read the in-kernel path back now (the table changed).
        case review
        case stop
    }

    /// fwmark services' packets (NFLOG), and the buffers they are read and made into frames in.
    private let marked: PacketLogSocket?
    private let markedDatagram: UnsafeMutableRawBufferPointer
    private let markedFrame: UnsafeMutableRawBufferPointer

    init(index: Int, engine: PacketEngine, receivers: [PacketSocket], sender: PacketSocket, forwarder: Forwarder,
         marked: PacketLogSocket? = nil) throws {
        self.index = index
        self.engine = engine
        self.receivers = receivers
        self.sender = sender
        self.forwarder = forwarder
        self.marked = marked
        markedDatagram = .allocate(byteCount: marked == nil ? 0 : 1 << 17, alignment: 64)
        markedFrame = .allocate(byteCount: marked == nil ? 0 : PacketEngine.stride, alignment: 64)
        epollFD = lvs_epoll_create()
        wakeFD = lvs_eventfd()
        guard epollFD >= 0, wakeFD >= 0 else { throw PacketEngine.Failure(description: "epoll or eventfd unavailable") }
        _ = lvs_epoll_add(epollFD, wakeFD, UInt32(LVS_EPOLLIN), UInt64(receivers.count))
        for (k, r) in receivers.enumerated() { _ = lvs_epoll_add(epollFD, r.fd, UInt32(LVS_EPOLLIN), UInt64(k)) }
        if let marked { _ = lvs_epoll_add(epollFD, marked.fd, UInt32(LVS_EPOLLIN), UInt64(receivers.count + 1)) }
        // The first thread applies what the in-kernel path reports, also while no frame comes.
        if index == 0, let fastPath = engine.fastPath {
            _ = lvs_epoll_add(epollFD, fastPath.reports.fd, UInt32(LVS_EPOLLIN), UInt64(receivers.count + 2))
        }
    }

    deinit {
        close(epollFD)
        close(wakeFD)
        markedDatagram.deallocate()
        markedFrame.deallocate()
    }

    var counters: PacketCounters { published.withLockedValue { $0 } }

    var takesMarkedPackets: Bool { marked != nil }

    func submit(_ command: Command) {
        inbox.withLockedValue { $0.append(command) }
        lvs_eventfd_signal(wakeFD)
    }

    func waitUntilFinished() {
        for _ in 0..<200 where !finished.withLockedValue({ $0 }) { usleep(5000) }
    }

    func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            let worker = Unmanaged<PacketWorker>.fromOpaque(raw!).takeRetainedValue()
            worker.run()
            return nil
        }, context)
        precondition(created == 0, "cannot start a packet thread")
        pthread_detach(thread)
    }

    private func run() {
        let options = engine.options, state = engine.state, hops = engine.hops, logger = engine.logger
        lvs_name_thread("lvsd-packet-\(index)")
        // Forwarding is the kernel's softirq work when IPVS does it, ahead of every process: the
        // packet thread asks for the nearest thing, a nice value ahead of ordinary work.
        if options.niceValue != 0, case let code = lvs_raise_thread_priority(options.niceValue), code != 0 {
            logger.warning("packet thread keeps the default priority", metadata: ["errno": "\(code)"])
        }
        let batch = FrameBatch(count: min(max(options.batch, 1), 64), stride: PacketEngine.stride, headroom: PacketEngine.headroom)
        let events = lvs_epoll_events(Int32(receivers.count + 3))!
        defer {
            free(events)
            forwarder.release()
            finished.withLockedValue { $0 = true }
        }
        var nextTick: Int64 = 0
        var nextPublish: Int64 = 0
        var nextRefresh: Int64 = 0
        var nextReview: Int64 = 0
        let fastPath = engine.fastPath
        var missing: [IPAddress] = []
        missing.reserveCapacity(batch.count)
        var hopView = hops.snapshot
        var failed = 0
        var pollUntil: Int64 = 0
        var lastReports: Int64 = .min / 2
        let pollSpan = Int64(options.pollMicroseconds ?? (fastPath == nil ? 200 : 30)) * 1000
        loop: while true {
            // While the in-kernel path reports (without waking the thread), its ring is read every
            // 2 ms (64 choices taken ahead last 2 ms at 32000 new connections a second); otherwise
            // the thread sleeps until a frame comes, or for 100 ms.
            let sleep: Int32 = state.now - lastReports < 1_000_000_000 ? 2 : 100
            let n = lvs_epoll_wait(epollFD, events, Int32(receivers.count + 3), pollSpan > 0 && state.now < pollUntil ? 0 : sleep)
            if n < 0 && lvs_errno() != EINTR {
                logger.error("packet thread stops: epoll_wait failed", metadata: ["errno": "\(lvs_errno())"])
                break
            }
            for k in 0..<max(n, 0) where lvs_epoll_event_data(events, k) == UInt64(receivers.count) {
                lvs_eventfd_drain(wakeFD)
                hopView = hops.snapshot
                for command in inbox.withLockedValue({ q -> [Command] in defer { q = [] }; return q }) {
                    switch command {
                    case .tunnels(let t): forwarder.tunnels = t
                    case .fragmentAddresses(let a): forwarder.fragmentAddresses = a
                    case .review:
                        nextReview = 0
                        if index == 0 { fastPath?.refreshAhead(state: state, hops: hopView) }
                    case .stop: break loop
                    }
                }
            }
            if index == 0, let fastPath, fastPath.applyReports(state: state, hops: hopView) { lastReports = state.now }
            // The NFLOG socket only when epoll says it has something (no system call otherwise).
            if marked != nil {
                for k in 0..<max(n, 0) where lvs_epoll_event_data(events, k) == UInt64(receivers.count + 1) {
                    failed += forwardMarked(batch: batch, hops: hopView, missing: &missing)
                }
            }
            // Every interface, until each is drained (a bounded number of batches per wake-up).
            for (r, receiver) in receivers.enumerated() {
                let ingress = engine.interfaceIndexes[r]
                for _ in 0..<64 {
                    let got: Int
                    do {
                        got = try batch.receive(from: receiver)
                    } catch {
                        logger.debug("receive failed", metadata: ["error": "\(error)"])
                        break
                    }
                    if got == 0 { break }
                    // What the in-kernel path reported before these frames came is applied first.
                    if index == 0, let fastPath { fastPath.applyReports(state: state, hops: hopView) }
                    let now = state.now
                    pollUntil = now + pollSpan
                    state.withTable { table in
                        for i in 0..<got {
                            let slot = batch.slot(i)
                            let action = forwarder.handle(slot, start: PacketEngine.headroom, length: Int(batch.lengths[i]), flags: batch.flags[i],
                                                          interface: ingress, table: &table, hops: hopView, missing: &missing, now: now)
                            failed += queue(action, in: slot, batch: batch)
                        }
                    }
                    // Flows are handed over before the frames go out, so that what the frames
                    // bring back at once (a handshake's ACK after its SYN) already takes the
                    // kernel's path.
                    if let fastPath, !forwarder.offloads.isEmpty || !forwarder.withdrawals.isEmpty {
                        if !forwarder.withdrawals.isEmpty {
                            fastPath.poll(state: state, hops: hopView, withdrawals: forwarder.withdrawals)
                        }
                        fastPath.install(forwarder.offloads)
                        forwarder.clearOffloadQueues()
                    }
                    failed += batch.flush(via: sender)
                    if failed > 0 {
                        forwarder.sendFailed(failed)
                        failed = 0
                    }
                    askForNextHops(&missing)
                    if got < batch.count { break }
                }
            }
            let now = state.now
            if now >= nextTick {
                if index == 0 {
                    state.tick(now: now)
                    fastPath?.refreshAhead(state: state, hops: hopView)
                }
                nextTick = now + LoadBalancerState.tickInterval
                hopView = hops.snapshot
            }
            if now >= nextPublish {
                let c = forwarder.counters
                published.withLockedValue { $0 = c }
                nextPublish = now + 200_000_000
            }
            if index == 0, let fastPath, now >= nextReview {
                fastPath.poll(state: state, hops: hopView)
                nextReview = now + 500_000_000
            }
            if index == 0 && now >= nextRefresh {
                if nextRefresh != 0 { hops.refresh() }
                nextRefresh = now + 5_000_000_000
            }
        }
        if index == 0, let fastPath { fastPath.poll(state: state, hops: hopView) }
        let c = forwarder.counters
        published.withLockedValue { $0 = c }
    }

    /// Queues what the forwarder said to send: the frame in `buffer`, or its segments (which
    /// reuse one scratch area, so out they go before the next frame). Returns how many sends the
    /// kernel refused.
    @inline(__always)
    private func queue(_ action: FrameAction, in buffer: UnsafeMutableRawBufferPointer, batch: FrameBatch) -> Int {
        switch action {
        case .send(let start, let length, let interface):
            return batch.queue(slot: buffer, start: start, length: length, interface: interface, via: sender)
        case .sendSegments(let count, let interface):
            var failed = batch.flush(via: sender)
            for k in 0..<count {
                let (pointer, length) = forwarder.segment(k)
                failed += batch.queue(pointer, length: length, interface: interface, via: sender)
            }
            return failed + batch.flush(via: sender)
        default:
            return 0
        }
    }

    /// The fwmark services' packets NFLOG has (a bounded number of datagrams per call): each made
    /// into a frame as AF_PACKET would give it and forwarded with its mark. Returns how many sends
    /// the kernel refused.
    private func forwardMarked(batch: FrameBatch, hops: [IPAddress: NextHop], missing: inout [IPAddress]) -> Int {
        guard let marked else { return 0 }
        var failed = 0
        let state = engine.state
        for _ in 0..<64 {
            let n = marked.receive(into: markedDatagram)
            guard n > 0 else { break }
            let now = state.now
            PacketLogMessage.packets(in: UnsafeRawBufferPointer(rebasing: markedDatagram[0..<n])) { packet in
                let mtu = forwarder.interfaceMTUs[packet.inputInterface] ?? 1500
                guard let length = MarkedPacket.prepare(into: markedFrame, start: PacketEngine.headroom, hardwareHeader: packet.hardwareHeader,
                                                        payload: packet.payload, mtu: mtu) else {
                    forwarder.countMarkedUnusable()
                    return
                }
                let action = state.withTable { table in
                    forwarder.handle(markedFrame, start: PacketEngine.headroom, length: length, flags: 0, interface: packet.inputInterface,
                                     fwmark: packet.mark, table: &table, hops: hops, missing: &missing, now: now)
                }
                // Out before the next packet is made in the same buffer.
                failed += queue(action, in: markedFrame, batch: batch) + batch.flush(via: sender)
            }
        }
        askForNextHops(&missing)
        return failed
    }

    /// Has the kernel resolve the real servers a batch found without a next hop; empties the list.
    @inline(__always)
    private func askForNextHops(_ missing: inout [IPAddress]) {
        guard !missing.isEmpty else { return }
        for a in missing { engine.hops.ask(a) }
        missing.removeAll(keepingCapacity: true)
    }
}
