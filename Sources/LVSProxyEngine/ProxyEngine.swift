import CLinux
import LVSCore
import LVSState
import LinuxNet
import Logging
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The `proxy` engine: a full-NAT relay on sockets. Each TCP virtual service is served by the relay
/// workers (one thread and epoll instance each, all on one table; see `TCPRelayWorker`); each UDP
/// virtual service by a datagram channel per worker event loop (see `UDPFrontendHandler`).
/// The connection table and counters live in LVSCore, so `ipvsadm -L` shows live truth.
public final class ProxyEngine: @unchecked Sendable {
    // @unchecked Sendable: `tcpListeners`, `udpListeners` and `freeBind` are touched only on `state.loop` (the
    // control plane's loop); the table is reached through the state's lock; the workers take commands
    // through their own locked inboxes.
    public let state: LoadBalancerState
    let logger: Logger
    /// How the engine runs.
    public struct Options: Sendable {
        /// How long a connection to a real server may take before another one is tried.
        public var connectTimeout: TimeAmount = .seconds(3)
        /// Run the TCP relay threads under SCHED_BATCH: a relay woken by a packet does not preempt
        /// the thread that is running, so it takes the work of many connections in one wake-up
        /// instead of one at a time. Off gives the default policy. Unset: batch with one relay
        /// thread, the default policy with several (measured against HAProxy with two threads,
        /// once connections were spread evenly: p99 1.00x and 1.03x against 1.16x and 1.06x).
        public var batchScheduling: Bool?

        public init(connectTimeout: TimeAmount = .seconds(3), batchScheduling: Bool? = nil) {
            self.connectTimeout = connectTimeout
            self.batchScheduling = batchScheduling
        }
    }

    public let options: Options
    private let workers: [TCPRelayWorker]
    private var tcpListeners: Set<VirtualService.Key> = []
    /// One datagram channel per worker loop for each UDP service.
    private var udpListeners: [VirtualService.Key: [Channel]] = [:]
    private var stopped: EventLoopFuture<Void>?

    /// Starts one TCP relay worker for each of the state's event loops.
    public init(state: LoadBalancerState, logger: Logger, options: Options = Options()) {
        self.state = state
        self.logger = logger
        self.options = options
        lvs_raise_file_limit()
        workers = state.loops.indices.map { i in
            TCPRelayWorker(state: state, logger: logger, name: "lvsd-relay-\(i)", connectTimeout: options.connectTimeout.nanoseconds,
                           runsClock: i == 0, batchScheduling: options.batchScheduling ?? (state.loops.count == 1))
        }
        let peers = workers.map { TCPRelayWorker.Peer(worker: $0) }
        for worker in workers {
            worker.peers = peers
            worker.start()
        }
    }

    public var listeningKeys: Set<VirtualService.Key> { tcpListeners.union(udpListeners.keys) }

    /// The TCP connections each relay thread serves (or has been handed and not yet taken up).
    public var relayLoads: [Int] { workers.map(\.currentLoad) }

    /// Why a virtual service could not be served.
    public struct ListenError: Error, CustomStringConvertible {
        public var key: VirtualService.Key
        public var reason: String
        public var description: String { "cannot listen on \(key): \(reason)" }
    }

    /// Services the proxy serves: TCP and UDP services with an address and a port (fwmark services,
    /// port 0 and SCTP need the packet engine).
    public static func serves(_ key: VirtualService.Key) -> Bool {
        switch key {
        case .address(.tcp, _, let port), .address(.udp, _, let port): return port != 0
        default: return false
        }
    }

    /// Opens listeners for `keys` (services the proxy serves); succeeds with the ones that failed.
    /// Addresses that may be listened on before they are this host's: VRRP's virtual addresses,
    /// which come and go with mastership (IP_FREEBIND). Set on the control loop.
    public var freeBind: Set<IPAddress> = []

    public func listen(_ keys: Set<VirtualService.Key>) -> EventLoopFuture<[ListenError]> {
        state.loop.preconditionInEventLoop()
        let binds = keys.filter(ProxyEngine.serves).map { key in
            listen(key).map { Optional<ListenError>.none }.recover { error in
                if let error = error as? ListenError { return error }
                let reason = (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)"
                return ListenError(key: key, reason: reason)
            }
        }
        return EventLoopFuture.whenAllSucceed(binds, on: state.loop).map { $0.compactMap { $0 } }
    }

    /// Closes the listeners of `keys`.
    public func stopListening(_ keys: Set<VirtualService.Key>) {
        state.loop.preconditionInEventLoop()
        for key in keys {
            if tcpListeners.remove(key) != nil {
                for worker in workers { worker.submit(.stopListening(key)) }
            } else if let channels = udpListeners.removeValue(forKey: key) {
                for channel in channels { channel.close(promise: nil) }
            } else {
                continue
            }
            logger.info("stopped listening", metadata: ["vip": "\(key)"])
        }
    }

    /// Binds the service once; with several workers each gets its own descriptor of the one
    /// listening socket and watches it exclusively (EPOLLEXCLUSIVE), so a new connection wakes one
    /// worker, whichever is free, rather than waiting in the queue of a busy one (as SO_REUSEPORT's
    /// per-socket queues would have it). The socket closes when the last worker lets go of it.
    private func listen(_ key: VirtualService.Key) -> EventLoopFuture<Void> {
        guard case .address(let proto, let address, let port) = key else { return state.loop.makeSucceededVoidFuture() }
        let virtual = Endpoint(address, port)
        if proto == .tcp {
            let listener: Int32
            switch TCPSocket.listen(on: virtual, freeBind: freeBind.contains(address)) {
            case .success(let fd): listener = fd
            case .failure(let error): return state.loop.makeFailedFuture(ListenError(key: key, reason: error.description))
            }
            var fds = [listener]
            while fds.count < workers.count {
                let copy = dup(listener)
                guard copy >= 0 else {
                    let reason = TCPSocket.reason(lvs_errno())
                    for fd in fds { close(fd) }
                    return state.loop.makeFailedFuture(ListenError(key: key, reason: reason))
                }
                fds.append(copy)
            }
            for (worker, fd) in zip(workers, fds) {
                worker.submit(.listen(fd: fd, key: key, virtual: virtual, shared: workers.count > 1))
            }
            tcpListeners.insert(key)
            logger.info("listening", metadata: ["vip": "\(key)", "workers": "\(fds.count)"])
            return state.loop.makeSucceededVoidFuture()
        }
        let engine = self
        let shared = state.loops.count > 1
        let binds: [EventLoopFuture<Channel>] = state.loops.map { loop in
            DatagramBootstrap(group: loop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(ChannelOptions.Types.SocketOption(level: NIOBSDSocket.OptionLevel(rawValue: Int32(address.isV6 ? IPPROTO_IPV6 : IPPROTO_IP)),
                                                                 name: NIOBSDSocket.Option(rawValue: address.isV6 ? 76 /* IPV6_FREEBIND */ : 15 /* IP_FREEBIND */)),
                               value: freeBind.contains(address) ? 1 : 0)
                .channelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: shared ? 1 : 0)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UDPFrontendHandler(engine: engine, virtual: virtual))
                    }
                }
                .bind(host: "\(address)", port: Int(port))
        }
        return EventLoopFuture.whenAllComplete(binds, on: state.loop).flatMapThrowing { results in
            let channels = results.compactMap { try? $0.get() }
            if channels.count < results.count {
                for c in channels { c.close(promise: nil) }
                for case .failure(let error) in results { throw error }
            }
            engine.udpListeners[key] = channels
            engine.logger.info("listening", metadata: ["vip": "\(key)", "loops": "\(channels.count)"])
        }
    }

    /// Closes every listener and every relayed TCP connection; UDP flows go with their event loops.
    /// The workers end with it: a second call only waits for the first.
    public func stop() -> EventLoopFuture<Void> {
        state.loop.preconditionInEventLoop()
        if let stopped { return stopped }
        var closing = udpListeners.values.flatMap { $0 }.map { $0.close() }
        udpListeners = [:]
        tcpListeners = []
        for worker in workers {
            let done = state.loop.makePromise(of: Void.self)
            worker.submit(.stop(done: done))
            closing.append(done.futureResult)
        }
        let all = EventLoopFuture.andAllComplete(closing, on: state.loop)
        stopped = all
        return all
    }

    /// The socket address of an endpoint, built from its numbers.
    static func socketAddress(_ endpoint: Endpoint) throws -> SocketAddress {
        try SocketAddress(ipAddress: "\(endpoint.address)", port: Int(endpoint.port))
    }

    /// The endpoint of a socket address, read from the sockaddr itself (no text round trip).
    static func endpoint(_ address: SocketAddress?) -> Endpoint? {
        switch address {
        case .v4(let a):
            return Endpoint(IPAddress(v4: UInt32(bigEndian: a.address.sin_addr.s_addr)), UInt16(bigEndian: a.address.sin_port))
        case .v6(let a):
            var raw = RawSocketAddress()
            raw.storage = a.address
            return raw.endpoint
        default:
            return nil
        }
    }
}
