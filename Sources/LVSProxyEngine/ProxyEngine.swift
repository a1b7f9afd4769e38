import LVSCore
import Logging
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// The director's table, owned by one event loop: every access happens on `loop`.
public final class LoadBalancerState: @unchecked Sendable {
    // @unchecked Sendable: `ipvs` is only read or written on `loop` (checked by `assertOnLoop` in
    // debug builds); other threads reach it by submitting work to the loop.
    public let loop: EventLoop
    public var ipvs: IPVS
    /// Connections the proxy could not open to a real server (each was retried elsewhere or refused).
    public var realServerFailures: UInt64 = 0

    public init(loop: EventLoop, ipvs: IPVS = IPVS()) {
        self.loop = loop
        self.ipvs = ipvs
    }

    @inline(__always)
    public func assertOnLoop() { loop.preconditionInEventLoop() }

    /// The clock the table runs on: the event loop's monotonic time.
    public var now: Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }
}

/// The `proxy` engine: a full-NAT TCP relay on sockets. For each TCP virtual service it listens on
/// VIP:port; each accepted connection is scheduled by LVSCore, connected to the chosen real server
/// (retrying another one if that fails) and relayed both ways with back-pressure and half-close.
/// The connection table and counters live in LVSCore, so `ipvsadm -L` shows live truth.
public final class ProxyEngine: @unchecked Sendable {
    // @unchecked Sendable: all mutable state (`listeners`) is touched only on `state.loop`.
    public let state: LoadBalancerState
    let logger: Logger
    /// How long a connection to a real server may take before another one is tried.
    public var connectTimeout: TimeAmount = .seconds(3)
    private var listeners: [VirtualService.Key: Channel] = [:]

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
        state.assertOnLoop()
        let binds = keys.filter(ProxyEngine.serves).map { key in
            listen(key).map { Optional<ListenError>.none }.recover { error in
                ListenError(key: key, reason: (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)")
            }
        }
        return EventLoopFuture.whenAllSucceed(binds, on: state.loop).map { $0.compactMap { $0 } }
    }

    /// Closes the listeners of `keys`.
    public func stopListening(_ keys: Set<VirtualService.Key>) {
        state.assertOnLoop()
        for key in keys {
            guard let channel = listeners.removeValue(forKey: key) else { continue }
            channel.close(promise: nil)
            logger.info("stopped listening", metadata: ["vip": "\(key)"])
        }
    }

    private func listen(_ key: VirtualService.Key) -> EventLoopFuture<Void> {
        guard case .address(let proto, let address, let port) = key else { return state.loop.makeSucceededVoidFuture() }
        let engine = self
        if proto == .udp {
            return DatagramBootstrap(group: state.loop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            UDPFrontendHandler(engine: engine, virtual: Endpoint(address, port)))
                    }
                }
                .bind(host: "\(address)", port: Int(port))
                .map { channel in
                    engine.listeners[key] = channel
                    engine.logger.info("listening", metadata: ["vip": "\(key)"])
                }
        }
        let bootstrap = ServerBootstrap(group: state.loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FrontendHandler(engine: engine, virtual: Endpoint(address, port)))
                }
            }
        return bootstrap.bind(host: "\(address)", port: Int(port)).map { channel in
            engine.state.assertOnLoop()
            engine.listeners[key] = channel
            engine.logger.info("listening", metadata: ["vip": "\(key)"])
        }
    }

    /// Closes every listener (connections in flight are left to finish).
    public func stop() -> EventLoopFuture<Void> {
        let all = listeners.values.map { $0.close() }
        listeners = [:]
        return EventLoopFuture.andAllComplete(all, on: state.loop)
    }

    // MARK: Connections

    /// Schedules a new client connection; nil when no real server is available.
    func schedule(client: Endpoint, virtual: Endpoint) -> Forwarding? {
        let verdict = state.ipvs.inbound(.tcp(from: client, to: virtual, flags: .syn, length: 60), now: state.now)
        if case .forward(let f) = verdict { return f }
        return nil
    }

    /// A real server refused or did not answer: drop that connection entry and schedule again,
    /// giving up when the scheduler keeps choosing a server that already failed.
    func reschedule(_ failed: Forwarding, client: Endpoint, virtual: Endpoint, tried: inout Set<Int32>) -> Forwarding? {
        state.realServerFailures &+= 1
        tried.insert(failed.server)
        state.ipvs.update(connection: failed.connection, direction: .input, tcpFlags: .rst, bytes: 0, now: state.now)
        state.ipvs.forget(connection: failed.connection)
        guard let next = schedule(client: client, virtual: virtual) else { return nil }
        if tried.contains(next.server) {
            state.ipvs.forget(connection: next.connection)
            return nil
        }
        return next
    }

    func connect(to destination: Endpoint) -> EventLoopFuture<Channel> {
        // A socket address built from the numbers: connect(host:) would go through name resolution.
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: "\(destination.address)", port: Int(destination.port))
        } catch {
            return state.loop.makeFailedFuture(error)
        }
        return ClientBootstrap(group: state.loop)
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
    func account(_ connection: Int32, _ direction: PacketDirection, flags: TCPFlags, bytes: Int) {
        state.ipvs.update(connection: connection, direction: direction, tcpFlags: flags, bytes: bytes, now: state.now)
    }
}
