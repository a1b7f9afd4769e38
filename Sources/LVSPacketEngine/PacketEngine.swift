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

/// The `packet` engine: IPVS's data plane in user space. One thread reads the frames arriving on
/// the given interfaces (AF_PACKET), decides for each with the shared table (`Forwarder`), and
/// sends the rewritten frames out (NAT, direct routing, IP tunnelling); an nftables table keeps
/// the kernel from answering for the same packets (`Interception`). The table's clocks run on the
/// same thread between batches.
public final class PacketEngine: @unchecked Sendable {
    // @unchecked Sendable: `forwarder`, the sockets and the buffers belong to the packet thread;
    // `inbox`, `published` and `interception` are behind locks; `hops` is thread-safe.
    public struct Options: Sendable {
        public var interfaces: [String]
        /// Frames taken per system call.
        public var batch = 64
        /// The packet thread's nice value (0 leaves it as it is).
        public var niceValue: Int32 = 0
        /// After traffic, how long the packet thread keeps polling its sockets before it sleeps
        /// in epoll (0: it sleeps at once). Polling spares the wake-up of every small batch.
        public var pollMicroseconds = 200

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
    private let interfaceIndexes: [Int32]
    private var receivers: [PacketSocket] = []
    private let sender: PacketSocket
    private let epollFD: Int32
    private let wakeFD: Int32
    private var forwarder: Forwarder
    private let interception = NIOLockedValueBox<Interception?>(nil)
    /// What the sockets' filter lets through (VIPs, NAT real servers, IPv6 or not).
    private let filtered = NIOLockedValueBox<FilterSet>(FilterSet())

    struct FilterSet: Equatable {
        var destinations: Set<IPAddress> = []
        var sources: Set<IPAddress> = []
        var ipv6 = false

        func union(_ o: FilterSet) -> FilterSet {
            FilterSet(destinations: destinations.union(o.destinations), sources: sources.union(o.sources), ipv6: ipv6 || o.ipv6)
        }
    }
    private let published = NIOLockedValueBox(PacketCounters())
    private let inbox = NIOLockedValueBox<[Command]>([])
    private let finished = NIOLockedValueBox(false)

    enum Command {
        case tunnels([Endpoint: TunnelConfig])
        case stop
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
        do {
            sender = try PacketSocket()
            for i in indexes { receivers.append(try PacketSocket(receivingOn: i)) }
        } catch {
            throw Failure(description: "\(error) (the packet engine needs root, or CAP_NET_RAW and CAP_NET_ADMIN)")
        }
        epollFD = lvs_epoll_create()
        wakeFD = lvs_eventfd()
        guard epollFD >= 0, wakeFD >= 0 else { throw Failure(description: "epoll or eventfd unavailable") }
        _ = lvs_epoll_add(epollFD, wakeFD, UInt32(LVS_EPOLLIN), UInt64(receivers.count))
        for (k, r) in receivers.enumerated() { _ = lvs_epoll_add(epollFD, r.fd, UInt32(LVS_EPOLLIN), UInt64(k)) }
        let capacity = state.withTable { $0.connectionSlots }
        forwarder = Forwarder(capacity: capacity)
        let netlink = try? RouteNetlink()
        for i in indexes {
            if let link = try? netlink?.link(i), let mac = MACAddress(link.mac) { forwarder.interfaceMACs[i] = mac }
        }
        // The rules before the first frame: with no services they drop nothing, and the sockets
        // take nothing.
        try install(Interception(interfaces: options.interfaces))
        try filter(FilterSet())
    }

    /// Lets through the sockets only what `set` names.
    private func filter(_ set: FilterSet) throws {
        let program = SocketFilter.program(destinations: Array(set.destinations), sources: Array(set.sources), acceptIPv6: set.ipv6)
        for r in receivers {
            let code = SocketFilter.attach(program, to: r.fd)
            if code != 0 { throw Failure(description: "cannot attach the socket filter: \(String(cString: strerror(code)))") }
        }
        filtered.withLockedValue { $0 = set }
    }

    deinit {
        close(epollFD)
        close(wakeFD)
    }

    /// Starts the packet thread.
    public func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            let engine = Unmanaged<PacketEngine>.fromOpaque(raw!).takeRetainedValue()
            engine.run()
            return nil
        }, context)
        precondition(created == 0, "cannot start the packet thread")
        pthread_detach(thread)
    }

    /// The table changed: the interception rules, the real servers' next hops and the tunnel types
    /// follow. Blocking (nft, netlink): call it off an event loop's hot path.
    public func tableChanged() throws {
        let services = state.withTable { $0.serviceSnapshots }
        let wanted = Interception(interfaces: options.interfaces, services: services)
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
        submit(.tunnels(tunnels))
        var set = FilterSet()
        for t in wanted.services { set.destinations.insert(t.address) }
        for h in wanted.portlessServices { set.destinations.insert(h.address) }
        for t in wanted.natServers { set.sources.insert(t.address) }
        set.ipv6 = set.destinations.contains { $0.isV6 } || set.sources.contains { $0.isV6 }
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

    /// The counters as of the last batch.
    public var counters: PacketCounters { published.withLockedValue { $0 } }

    /// Stops the thread and removes the interception rules.
    public func stop() {
        submit(.stop)
        for _ in 0..<200 where !finished.withLockedValue({ $0 }) { usleep(5000) }
        hops.stop()
        Interception.remove()
        interception.withLockedValue { $0 = nil }
        let c = counters
        var metadata: Logger.Metadata = ["received": "\(c.received)", "forwarded": "\(c.forwarded)", "replies": "\(c.replies)",
                                         "passed": "\(c.passed)", "icmp": "\(c.icmpSent)"]
        for reason in PacketDrop.allCases where c.drops[reason.rawValue] > 0 { metadata["dropped: \(reason.label)"] = "\(c.drops[reason.rawValue])" }
        for error in FrameError.allCases where c.malformed[error.rawValue] > 0 { metadata["malformed: \(error.label)"] = "\(c.malformed[error.rawValue])" }
        logger.info("packet engine stopped", metadata: metadata)
    }

    private func submit(_ command: Command) {
        inbox.withLockedValue { $0.append(command) }
        lvs_eventfd_signal(wakeFD)
    }

    // MARK: The packet thread

    private func run() {
        lvs_name_thread("lvsd-packet")
        // Forwarding is the kernel's softirq work when IPVS does it, ahead of every process: the
        // packet thread asks for the nearest thing, a nice value ahead of ordinary work.
        if options.niceValue != 0, case let code = lvs_raise_thread_priority(options.niceValue), code != 0 {
            logger.warning("packet thread keeps the default priority", metadata: ["errno": "\(code)"])
        }
        let batch = FrameBatch(count: min(max(options.batch, 1), 64), stride: PacketEngine.stride, headroom: PacketEngine.headroom)
        let events = lvs_epoll_events(Int32(receivers.count + 1))!
        defer {
            free(events)
            forwarder.release()
            finished.withLockedValue { $0 = true }
        }
        var nextTick: Int64 = 0
        var nextPublish: Int64 = 0
        var nextRefresh: Int64 = 0
        var missing: [IPAddress] = []
        missing.reserveCapacity(batch.count)
        var hopView = hops.snapshot
        var failed = 0
        var pollUntil: Int64 = 0
        let pollSpan = Int64(options.pollMicroseconds) * 1000
        loop: while true {
            let n = lvs_epoll_wait(epollFD, events, Int32(receivers.count + 1), pollSpan > 0 && state.now < pollUntil ? 0 : 100)
            if n < 0 && lvs_errno() != EINTR {
                logger.error("packet thread stops: epoll_wait failed", metadata: ["errno": "\(lvs_errno())"])
                break
            }
            for k in 0..<max(n, 0) where lvs_epoll_event_data(events, k) == UInt64(receivers.count) {
                lvs_eventfd_drain(wakeFD)
                for command in inbox.withLockedValue({ q -> [Command] in defer { q = [] }; return q }) {
                    switch command {
                    case .tunnels(let t): forwarder.tunnels = t
                    case .stop: break loop
                    }
                }
                hopView = hops.snapshot
            }
            // Every interface, until each is drained (a bounded number of batches per wake-up).
            for (r, receiver) in receivers.enumerated() {
                let ingress = interfaceIndexes[r]
                for _ in 0..<64 {
                    let got: Int
                    do {
                        got = try batch.receive(from: receiver)
                    } catch {
                        logger.debug("receive failed", metadata: ["error": "\(error)"])
                        break
                    }
                    if got == 0 { break }
                    let now = state.now
                    pollUntil = now + pollSpan
                    state.withTable { table in
                        for i in 0..<got {
                            let slot = batch.slot(i)
                            let action = forwarder.handle(slot, start: PacketEngine.headroom, length: Int(batch.lengths[i]), flags: batch.flags[i],
                                                          interface: ingress, table: &table, hops: hopView, missing: &missing, now: now)
                            switch action {
                            case .send(let start, let length, let interface):
                                failed += batch.queue(slot: slot, start: start, length: length, interface: interface, via: sender)
                            case .sendSegments(let count, let interface):
                                // The segments reuse one scratch area: out they go before the next frame.
                                failed += batch.flush(via: sender)
                                for k in 0..<count {
                                    let (pointer, length) = forwarder.segment(k)
                                    failed += batch.queue(pointer, length: length, interface: interface, via: sender)
                                }
                                failed += batch.flush(via: sender)
                            default:
                                break
                            }
                        }
                    }
                    failed += batch.flush(via: sender)
                    if failed > 0 {
                        forwarder.sendFailed(failed)
                        failed = 0
                    }
                    if !missing.isEmpty {
                        for a in missing { hops.ask(a) }
                        missing.removeAll(keepingCapacity: true)
                    }
                    if got < batch.count { break }
                }
            }
            let now = state.now
            if now >= nextTick {
                state.tick(now: now)
                nextTick = now + LoadBalancerState.tickInterval
                hopView = hops.snapshot
            }
            if now >= nextPublish {
                let c = forwarder.counters
                published.withLockedValue { $0 = c }
                nextPublish = now + 200_000_000
            }
            if now >= nextRefresh {
                if nextRefresh != 0 { hops.refresh() }
                nextRefresh = now + 5_000_000_000
            }
        }
        let c = forwarder.counters
        published.withLockedValue { $0 = c }
    }
}
