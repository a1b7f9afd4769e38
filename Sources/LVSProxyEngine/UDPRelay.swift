import LVSCore
import LVSState
import NIOCore
import NIOPosix

/// The UDP side of the proxy engine. Each client flow (client address and port) that LVSCore
/// schedules gets its own socket connected to the chosen real server; datagrams go out on it and
/// replies come back to the client from the VIP. A flow lives as long as its connection entry in the
/// table (the UDP timeout, 300 s by default, renewed by every datagram either way); with one-packet
/// scheduling (`-o`) each datagram is scheduled on its own and its reply flow is kept briefly.
final class UDPFrontendHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    struct FlowKey: Hashable {
        var client: Endpoint
        var server: Endpoint
    }

    final class Flow {
        let channel: Channel
        let server: SocketAddress
        var connection: ConnectionID
        var lastUse: NIODeadline

        init(channel: Channel, server: SocketAddress, connection: ConnectionID, lastUse: NIODeadline) {
            self.channel = channel
            self.server = server
            self.connection = connection
            self.lastUse = lastUse
        }
    }

    let engine: ProxyEngine
    let virtual: Endpoint
    private var flows: [FlowKey: Flow] = [:]
    private var pending: [FlowKey: [ByteBuffer]] = [:]
    private var sweeper: RepeatedTask?
    /// How long a one-packet flow's socket waits for replies.
    static let onePacketLinger: TimeAmount = .seconds(5)
    /// Each flow holds a socket: a flood of new sources must not exhaust descriptors.
    static let maximumFlows = 65536
    /// Datagrams held per flow while its socket is being opened.
    static let maximumPending = 64
    /// Datagrams dropped because of those bounds.
    private(set) var dropped: UInt64 = 0

    init(engine: ProxyEngine, virtual: Endpoint) {
        self.engine = engine
        self.virtual = virtual
    }

    func channelActive(context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        sweeper = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            handler.value.sweep()
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        sweeper?.cancel()
        for flow in flows.values { flow.channel.close(promise: nil) }
        flows = [:]
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let client = ProxyEngine.endpoint(envelope.remoteAddress) else { return }
        let bytes = envelope.data.readableBytes
        let now = engine.state.now
        let verdict = engine.state.withTable { $0.inbound(.udp(from: client, to: virtual, length: bytes + 28), now: now) }
        guard case .forward(let f) = verdict else { return }  // no real server: dropped and counted
        let key = FlowKey(client: client, server: f.destination)
        if let flow = flows[key] {
            flow.connection = f.connection
            flow.lastUse = .now()
            flow.channel.writeAndFlush(AddressedEnvelope(remoteAddress: flow.server, data: envelope.data), promise: nil)
            return
        }
        if var queued = pending[key] {
            guard queued.count < UDPFrontendHandler.maximumPending else {
                dropped &+= 1
                return
            }
            queued.append(envelope.data)
            pending[key] = queued
            return
        }
        guard flows.count + pending.count < UDPFrontendHandler.maximumFlows else {
            dropped &+= 1
            return
        }
        pending[key] = [envelope.data]
        open(key, connection: f.connection, listener: context.channel)
    }

    private func open(_ key: FlowKey, connection: ConnectionID, listener: Channel) {
        let engine = self.engine
        let handler = NIOLoopBound(self, eventLoop: listener.eventLoop)
        let server: SocketAddress
        let clientAddress: SocketAddress
        do {
            server = try ProxyEngine.socketAddress(key.server)
            clientAddress = try ProxyEngine.socketAddress(key.client)
        } catch {
            pending[key] = nil
            return
        }
        let bind = key.server.address.isV6 ? "::" : "0.0.0.0"
        DatagramBootstrap(group: listener.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        UDPReplyHandler(engine: engine, listener: listener, client: clientAddress, key: key, frontend: handler))
                }
            }
            .bind(host: bind, port: 0)
            .flatMap { channel in channel.connect(to: server).map { channel } }
            .whenComplete { result in
                let me = handler.value
                let queued = me.pending.removeValue(forKey: key) ?? []
                guard case .success(let channel) = result else {
                    engine.state.countRealServerFailure()
                    return
                }
                let flow = Flow(channel: channel, server: server, connection: connection, lastUse: .now())
                me.flows[key] = flow
                for datagram in queued {
                    channel.write(AddressedEnvelope(remoteAddress: server, data: datagram), promise: nil)
                }
                channel.flush()
            }
    }

    /// A reply from a real server for a flow: counted on its connection, which it keeps alive.
    func replied(_ key: FlowKey, bytes: Int) {
        guard let flow = flows[key] else { return }
        flow.lastUse = .now()
        if flow.connection != .none {
            let now = engine.state.now
            let connection = flow.connection
            engine.state.withTable { $0.update(connection: connection, direction: .output, tcpFlags: [], bytes: bytes + 28, now: now) }
        }
    }

    /// Closes flows whose connection entry has expired (or, for one-packet flows, that have been idle).
    func sweep() {
        let now = NIODeadline.now()
        for (key, flow) in flows {
            let expired = flow.connection != .none
                ? !engine.state.withTable { $0.isLive(connection: flow.connection) }
                : now - flow.lastUse > UDPFrontendHandler.onePacketLinger
            if expired {
                flows[key] = nil
                flow.channel.close(promise: nil)
            }
        }
    }
}

/// Receives a real server's replies on a flow's socket and sends them to the client from the VIP.
final class UDPReplyHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let engine: ProxyEngine
    let listener: Channel
    let client: SocketAddress
    let key: UDPFrontendHandler.FlowKey
    let frontend: NIOLoopBound<UDPFrontendHandler>

    init(engine: ProxyEngine, listener: Channel, client: SocketAddress, key: UDPFrontendHandler.FlowKey,
         frontend: NIOLoopBound<UDPFrontendHandler>) {
        self.engine = engine
        self.listener = listener
        self.client = client
        self.key = key
        self.frontend = frontend
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        frontend.value.replied(key, bytes: envelope.data.readableBytes)
        listener.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: envelope.data), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // An ICMP port unreachable from the real server surfaces here: the flow stays until it expires.
    }
}
