import LVSCore
import Logging
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The director's table, shared by the worker event loops: every access holds the lock, for as long
/// as one decision or one update takes (never across I/O).
public final class LoadBalancerState: @unchecked Sendable {
    // @unchecked Sendable: `table` and `failures` are only read or written inside `lock`.
    private let lock = NIOLock()
    private var table: IPVS
    private var failures: UInt64 = 0
    /// The event loops connections are served on; the first also runs the control plane.
    public let loops: [EventLoop]

    public init(loops: [EventLoop], ipvs: IPVS = IPVS()) {
        precondition(!loops.isEmpty, "at least one event loop")
        self.loops = loops
        self.table = ipvs
    }

    /// The control plane's loop (timers, control socket, listener bookkeeping).
    public var loop: EventLoop { loops[0] }

    /// Runs `body` with the table, under the lock.
    @inline(__always)
    public func withTable<R>(_ body: (inout IPVS) throws -> R) rethrows -> R {
        try lock.withLock { try body(&table) }
    }

    /// A copy of the table (cheap: the connection table is shared until one side writes).
    public var snapshot: IPVS { withTable { $0 } }

    /// Connections the proxy could not open to a real server (each was retried elsewhere or refused).
    public var realServerFailures: UInt64 { lock.withLock { failures } }

    func countRealServerFailure() { lock.withLock { failures &+= 1 } }

    /// The clock the table runs on: monotonic time.
    public var now: Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }
}

/// The `proxy` engine: a full-NAT TCP relay on sockets. For each TCP virtual service it listens on
/// VIP:port; each accepted connection is scheduled by LVSCore, connected to the chosen real server
/// (retrying another one if that fails) and relayed both ways with back-pressure and half-close.
/// The connection table and counters live in LVSCore, so `ipvsadm -L` shows live truth.
public final class ProxyEngine: @unchecked Sendable {
    // @unchecked Sendable: `listeners` is touched only on `state.loop` (the control plane's loop);
    // the table is reached through the state's lock.
    public let state: LoadBalancerState
    let logger: Logger
    /// How long a connection to a real server may take before another one is tried.
    public var connectTimeout: TimeAmount = .seconds(3)
    /// One listening channel per worker loop for each service.
    private var listeners: [VirtualService.Key: [Channel]] = [:]

    public init(state: LoadBalancerState, logger: Logger) {
        self.state = state
        self.logger = logger
    }

    public var listeningKeys: Set<VirtualService.Key> { Set(listeners.keys) }

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
    public func listen(_ keys: Set<VirtualService.Key>) -> EventLoopFuture<[ListenError]> {
        state.loop.preconditionInEventLoop()
        let binds = keys.filter(ProxyEngine.serves).map { key in
            listen(key).map { Optional<ListenError>.none }.recover { error in
                ListenError(key: key, reason: (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)")
            }
        }
        return EventLoopFuture.whenAllSucceed(binds, on: state.loop).map { $0.compactMap { $0 } }
    }

    /// Closes the listeners of `keys`.
    public func stopListening(_ keys: Set<VirtualService.Key>) {
        state.loop.preconditionInEventLoop()
        for key in keys {
            guard let channels = listeners.removeValue(forKey: key) else { continue }
            for channel in channels { channel.close(promise: nil) }
            logger.info("stopped listening", metadata: ["vip": "\(key)"])
        }
    }

    /// Binds the service on every worker loop (with SO_REUSEPORT when there are several, so the
    /// kernel spreads new connections over them). Either all bind or none stays bound.
    private func listen(_ key: VirtualService.Key) -> EventLoopFuture<Void> {
        guard case .address(let proto, let address, let port) = key else { return state.loop.makeSucceededVoidFuture() }
        let engine = self
        let shared = state.loops.count > 1
        let virtual = Endpoint(address, port)
        let binds: [EventLoopFuture<Channel>] = state.loops.map { loop in
            if proto == .udp {
                return DatagramBootstrap(group: loop)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .channelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: shared ? 1 : 0)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(UDPFrontendHandler(engine: engine, virtual: virtual))
                        }
                    }
                    .bind(host: "\(address)", port: Int(port))
            }
            return ServerBootstrap(group: loop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: shared ? 1 : 0)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.autoRead, value: false)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(FrontendHandler(engine: engine, virtual: virtual))
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
            engine.listeners[key] = channels
            engine.logger.info("listening", metadata: ["vip": "\(key)", "loops": "\(channels.count)"])
        }
    }

    /// Closes every listener (connections in flight are left to finish).
    public func stop() -> EventLoopFuture<Void> {
        let all = listeners.values.flatMap { $0 }.map { $0.close() }
        listeners = [:]
        return EventLoopFuture.andAllComplete(all, on: state.loop)
    }

    // MARK: Connections

    /// Schedules a new client connection; nil when no real server is available.
    func schedule(client: Endpoint, virtual: Endpoint) -> Forwarding? {
        let now = state.now
        let verdict = state.withTable { $0.inbound(.tcp(from: client, to: virtual, flags: .syn, length: 60), now: now) }
        if case .forward(let f) = verdict { return f }
        return nil
    }

    /// A real server refused or did not answer: drop that connection entry and schedule again,
    /// giving up when the scheduler keeps choosing a server that already failed.
    func reschedule(_ failed: Forwarding, client: Endpoint, virtual: Endpoint, tried: inout Set<Int32>) -> Forwarding? {
        state.countRealServerFailure()
        tried.insert(failed.server)
        let now = state.now
        state.withTable {
            $0.update(connection: failed.connection, direction: .input, tcpFlags: .rst, bytes: 0, now: now)
            $0.forget(connection: failed.connection)
        }
        guard let next = schedule(client: client, virtual: virtual) else { return nil }
        if tried.contains(next.server) {
            state.withTable { $0.forget(connection: next.connection) }
            return nil
        }
        return next
    }

    func connect(to destination: Endpoint, on loop: EventLoop) -> EventLoopFuture<Channel> {
        // A socket address built from the numbers: connect(host:) would go through name resolution.
        let address: SocketAddress
        do {
            address = try ProxyEngine.socketAddress(destination)
        } catch {
            return loop.makeFailedFuture(error)
        }
        return ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(to: address)
    }

    /// The socket address of an endpoint, built from its numbers.
    static func socketAddress(_ endpoint: Endpoint) throws -> SocketAddress {
        try SocketAddress(ipAddress: "\(endpoint.address)", port: Int(endpoint.port))
    }

    /// Reports a relayed chunk or a half-close to the table.
    func account(_ connection: ConnectionID, _ direction: PacketDirection, flags: TCPFlags, bytes: Int) {
        let now = state.now
        state.withTable { $0.update(connection: connection, direction: direction, tcpFlags: flags, bytes: bytes, now: now) }
    }
}
