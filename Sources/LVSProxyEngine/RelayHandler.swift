import LVSCore
import NIOCore
import NIOPosix

/// One side of a relayed connection. Bytes read on this side are written to the partner side; when
/// the partner cannot take more, this side stops reading (back-pressure); a half-close is passed on
/// as a half-close; a reset or close of either side closes the other. Every chunk and close is
/// reported to LVSCore as the segment it stands for, so the connection's state and counters are live.
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let engine: ProxyEngine
    /// `.input` on the client side (client → real server), `.output` on the real-server side.
    let direction: PacketDirection
    var connection: ConnectionID = .none
    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var sawFin = false
    /// This side's output was half-closed (the partner's peer sent FIN).
    private var outputClosed = false

    init(engine: ProxyEngine, direction: PacketDirection) {
        self.engine = engine
        self.direction = direction
    }

    static func join(_ a: RelayHandler, _ b: RelayHandler, connection: ConnectionID) {
        a.partner = b
        b.partner = a
        a.connection = connection
        b.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if connection != .none { engine.account(connection, direction, flags: .ack, bytes: buffer.readableBytes) }
        partner?.partnerWrite(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.partnerWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            sawFin = true
            if connection != .none { engine.account(connection, direction, flags: [.fin, .ack], bytes: 0) }
            partner?.partnerCloseOutput()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // An end without FIN is a reset, except after this side's output was half-closed: then the
        // socket reports the peer's orderly close as the channel going inactive.
        if !sawFin && connection != .none {
            engine.account(connection, direction, flags: outputClosed ? [.fin, .ack] : .rst, bytes: 0)
        }
        sawFin = true
        partner?.partnerClose()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    // MARK: Called by the partner

    private func partnerWrite(_ buffer: ByteBuffer) { context?.write(wrapOutboundOut(buffer), promise: nil) }
    private func partnerFlush() { context?.flush() }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    private func partnerCloseOutput() {
        guard let context else { return }
        // Half-close toward this side once what is queued has been flushed.
        outputClosed = true
        context.flush()
        context.close(mode: .output, promise: nil)
    }

    private func partnerClose() {
        guard let context else { return }
        context.close(promise: nil)
    }
}

/// The first handler on an accepted client connection: schedules it, connects to the chosen real
/// server (another one if that fails), then joins the two sides with relay handlers. Afterwards it
/// only passes events on.
final class FrontendHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let engine: ProxyEngine
    let virtual: Endpoint

    init(engine: ProxyEngine, virtual: Endpoint) {
        self.engine = engine
        self.virtual = virtual
    }

    /// The endpoint of a socket address, read from the sockaddr itself (no text round trip).
    static func endpoint(_ address: SocketAddress?) -> Endpoint? {
        switch address {
        case .v4(let a):
            return Endpoint(IPAddress(v4: UInt32(bigEndian: a.address.sin_addr.s_addr)), UInt16(bigEndian: a.address.sin_port))
        case .v6(let a):
            let bytes = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 0..<8 {
                high = high << 8 | UInt64(bytes[i])
                low = low << 8 | UInt64(bytes[i + 8])
            }
            return Endpoint(IPAddress(v6High: high, low: low), UInt16(bigEndian: a.address.sin6_port))
        default:
            return nil
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        let client = context.channel
        if let from = FrontendHandler.endpoint(client.remoteAddress),
           let first = engine.schedule(client: from, virtual: virtual) {
            FrontendHandler.attempt(first, engine: engine, virtual: virtual, client: client, from: from, tried: [])
        } else {
            client.close(promise: nil)
        }
        context.fireChannelActive()
    }

    private static func attempt(
        _ forwarding: Forwarding, engine: ProxyEngine, virtual: Endpoint, client: Channel, from: Endpoint, tried: Set<Int32>
    ) {
        engine.connect(to: forwarding.destination, on: client.eventLoop).whenComplete { result in
            switch result {
            case .success(let server):
                guard client.isActive else {
                    engine.account(forwarding.connection, .input, flags: .rst, bytes: 0)
                    server.close(promise: nil)
                    return
                }
                // The handshake the table would have seen: SYN-ACK from the server, ACK from the client.
                engine.account(forwarding.connection, .output, flags: [.syn, .ack], bytes: 0)
                engine.account(forwarding.connection, .input, flags: .ack, bytes: 0)
                if engine.state.withTable({ $0.realServer(forwarding.server).config.proxyProtocol }) {
                    let header = ProxyProtocolV2.header(source: from, destination: virtual, protocol: .tcp)
                    server.writeAndFlush(ByteBuffer(bytes: header), promise: nil)
                }
                let front = RelayHandler(engine: engine, direction: .input)
                let back = RelayHandler(engine: engine, direction: .output)
                RelayHandler.join(front, back, connection: forwarding.connection)
                do {
                    try server.pipeline.syncOperations.addHandler(back)
                    try client.pipeline.syncOperations.addHandler(front)
                } catch {
                    client.close(promise: nil)
                    server.close(promise: nil)
                    return
                }
                // The real server's side reads from the start (its handler is in place before the
                // loop's next read); the client's side starts reading now that it has somewhere to go.
                client.setOption(.autoRead, value: true).whenComplete { _ in }
            case .failure(let error):
                engine.logger.debug("real server did not answer", metadata: [
                    "rip": "\(forwarding.destination)", "error": "\(error)",
                ])
                var tried = tried
                guard client.isActive,
                      let next = engine.reschedule(forwarding, client: from, virtual: virtual, tried: &tried) else {
                    client.close(promise: nil)
                    return
                }
                attempt(next, engine: engine, virtual: virtual, client: client, from: from, tried: tried)
            }
        }
    }
}
