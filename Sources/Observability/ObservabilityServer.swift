import Foundation
import LVSCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where the endpoint's facts come from (the director). `view` gathers on the director's loop and
/// may complete on any loop; rendering happens on the server's own.
public protocol ObservabilitySource: Sendable {
    func view() -> EventLoopFuture<DirectorView>
    /// Entries `offset ..< offset + limit` of the connection table, and how many there are.
    func connections(offset: Int, limit: Int) -> EventLoopFuture<(total: Int, page: [ConnectionSnapshot])>
    var events: EventLog { get }
}

/// `lvsd --http ADDR:PORT`: `/metrics`, `/api/v1/...` and the dashboard, read-only, on NIOHTTP1.
///
/// It runs on its own event loop, so neither a slow client nor rendering a large page holds up
/// the control loop or the engine. Each client is bounded: the request head and body are limited,
/// a connection idle for `idleTimeout` is closed, a response the client does not take within
/// `writeTimeout` closes the connection, and at most `maximumConnections` are served at once
/// (more are closed on accept).
public final class ObservabilityServer: Sendable {
    public struct Limits: Sendable {
        public var maximumConnections = 64
        public var maximumBody = 16 << 10
        public var idleTimeout: TimeAmount = .seconds(30)
        public var writeTimeout: TimeAmount = .seconds(30)
        /// From a connection's first byte (or the end of its last answer) to the end of its next
        /// request: a client that trickles a request in is cut off.
        public var requestTimeout: TimeAmount = .seconds(10)
        /// How long one gathered view answers every client that asks.
        public var viewReuse: TimeAmount = .milliseconds(100)

        public init() {}
    }

    let group: EventLoopGroup
    let source: ObservabilitySource
    let logger: Logger
    let limits: Limits
    private let channel = NIOLockedValueBox<Channel?>(nil)
    private let sampling = NIOLockedValueBox<RepeatedTask?>(nil)
    /// The last view and the one being gathered: however many clients ask, the director's loop
    /// gathers at most one view at a time and one every `limits.viewReuse`.
    private let cache = NIOLockedValueBox<(view: DirectorView?, taken: NIODeadline, pending: EventLoopFuture<DirectorView>?)>((nil, .distantPast, nil))
    let history: RateHistory
    let open = NIOLockedValueBox(0)
    let answered = NIOLockedValueBox<[Int: UInt64]>([:])

    public init(group: EventLoopGroup, source: ObservabilitySource, logger: Logger, limits: Limits = Limits(),
                history: RateHistory = RateHistory()) {
        self.group = group
        self.history = history
        self.source = source
        self.logger = logger
        self.limits = limits
    }

    /// Binds and serves; the future gives the address bound (port 0 picks one).
    public func start(host: String, port: Int) -> EventLoopFuture<SocketAddress> {
        let server = self
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let admitted = server.open.withLockedValue { n -> Bool in
                    guard n < server.limits.maximumConnections else { return false }
                    n += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in server.open.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try sync.addHandler(IdleStateHandler(allTimeout: server.limits.idleTimeout))
                    try sync.addHandler(ObservabilityHandler(server: server))
                }
            }
            .bind(host: host, port: port)
            .map { bound in
                server.channel.withLockedValue { $0 = bound }
                server.startSampling(on: bound.eventLoop)
                return bound.localAddress!
            }
    }

    /// The sparklines' samples, every `history.interval` seconds, from the server's own loop.
    private func startSampling(on loop: EventLoop) {
        let history = self.history
        let task = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(Int64(history.interval * 1000))) { _ in
            self.view(on: loop).whenSuccess { history.record($0, at: Date().timeIntervalSince1970) }
        }
        sampling.withLockedValue { $0 = task }
    }

    public func stop() -> EventLoopFuture<Void> {
        sampling.withLockedValue { $0?.cancel() }
        guard let c = channel.withLockedValue({ $0 }) else { return group.next().makeSucceededVoidFuture() }
        return c.close()
    }

    /// A view no older than `limits.viewReuse`, gathered once for every client that asks meanwhile.
    func view(on loop: EventLoop) -> EventLoopFuture<DirectorView> {
        let now = NIODeadline.now()
        var started: EventLoopFuture<DirectorView>?
        let shared = cache.withLockedValue { c -> EventLoopFuture<DirectorView> in
            if let v = c.view, now - c.taken < limits.viewReuse { return loop.makeSucceededFuture(v) }
            if let p = c.pending { return p }
            let f = source.view()
            c.pending = f
            started = f
            return f
        }
        if let started {
            started.whenComplete { result in
                self.cache.withLockedValue { c in
                    c.pending = nil
                    if case .success(let v) = result {
                        c.view = v
                        c.taken = .now()
                    }
                }
            }
        }
        return shared.hop(to: loop)
    }

    func count(_ status: Int) {
        answered.withLockedValue { $0[status, default: 0] += 1 }
    }

    var requestCounts: [DirectorView.LabelledCount] {
        answered.withLockedValue { $0 }.sorted { $0.key < $1.key }.map { DirectorView.LabelledCount("\($0.key)", $0.value) }
    }

    /// The answer to one request: status, content type and body (HEAD sends the head only).
    struct Answer {
        var status: Int
        var contentType: String
        var body: [UInt8]
        var allow = false

        static func json(_ body: [UInt8]) -> Answer { Answer(status: 200, contentType: "application/json", body: body) }

        static func problem(_ p: HTTPRoute.Problem) -> Answer {
            var a = Answer(status: p.status, contentType: "application/json", body: APIDocuments.problem(p))
            a.allow = p.status == 405
            return a
        }
    }

    /// What `route` answers (on any loop: the view is gathered by the source, rendered here).
    func answer(_ route: HTTPRoute, on loop: EventLoop) -> EventLoopFuture<Answer> {
        switch route {
        case .dashboard:
            return loop.makeSucceededFuture(Answer(status: 200, contentType: "text/html; charset=utf-8", body: Dashboard.page))
        case .history(let after):
            return loop.makeSucceededFuture(.json(APIDocuments.history(history.samples(after: after), interval: history.interval)))
        case .events(let after, let limit):
            let (events, next) = source.events.events(after: after, limit: limit)
            return loop.makeSucceededFuture(.json(APIDocuments.events(events, next: next)))
        case .connections(let offset, let limit):
            return source.connections(offset: offset, limit: limit).hop(to: loop).map { total, page in
                .json(APIDocuments.connections(page, total: total, offset: offset, limit: limit))
            }
        case .metrics, .index, .status, .services, .checkers, .vrrp, .sync:
            return view(on: loop).map { view in
                switch route {
                case .metrics(let backendRates):
                    var v = view
                    v.httpRequests = self.requestCounts
                    return Answer(status: 200, contentType: MetricsPage.contentType, body: MetricsPage.render(v, backendRates: backendRates))
                case .index: return .json(APIDocuments.index(view))
                case .status: return .json(APIDocuments.status(view))
                case .services: return .json(APIDocuments.services(view))
                case .checkers: return .json(APIDocuments.checkers(view))
                case .vrrp: return .json(APIDocuments.vrrp(view))
                default: return .json(APIDocuments.sync(view))
                }
            }
        }
    }
}

/// One client connection: requests in order (pipelined ones wait their turn), one answer each.
final class ObservabilityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: ObservabilityServer
    private var head: HTTPRequestHead?
    private var bodyBytes = 0
    private var refused = false
    private var deadline: Scheduled<Void>?

    init(server: ObservabilityServer) { self.server = server }

    func channelActive(context: ChannelHandlerContext) {
        armDeadline(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    /// The next request must be complete within `requestTimeout`.
    private func armDeadline(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: server.limits.requestTimeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            bodyBytes = 0
        case .body(let chunk):
            bodyBytes += chunk.readableBytes
            if bodyBytes > server.limits.maximumBody, let h = head {
                // Answered at once, and the connection closed after it: the rest is not read.
                refused = true
                head = nil
                deadline?.cancel()
                write(.problem(HTTPRoute.Problem(413, "request body over \(server.limits.maximumBody) bytes")), keepAlive: false,
                      headOnly: false, version: h.version, context: context, channel: context.channel)
            }
        case .end:
            guard let h = head else { return }
            head = nil
            deadline?.cancel()
            respond(to: h, context: context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let channel = context.channel
        let route = HTTPRoute.resolve(method: request.method.rawValue, target: request.uri)
        let answer: EventLoopFuture<ObservabilityServer.Answer>
        switch route {
        case .failure(let p): answer = loop.makeSucceededFuture(.problem(p))
        case .success(let r): answer = server.answer(r, on: loop)
        }
        let keepAlive = request.isKeepAlive
        let headOnly = request.method == .HEAD
        // Every answer future completes on this channel's loop.
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        answer.whenComplete { result in
            let a: ObservabilityServer.Answer
            switch result {
            case .success(let ok): a = ok
            case .failure(let error): a = .problem(HTTPRoute.Problem(503, "lvsd could not gather the answer: \(error)"))
            }
            bound.value.handler.write(a, keepAlive: keepAlive, headOnly: headOnly, version: request.version, context: bound.value.context, channel: channel)
        }
    }

    private func write(_ a: ObservabilityServer.Answer, keepAlive: Bool, headOnly: Bool, version: HTTPVersion,
                       context: ChannelHandlerContext, channel: Channel) {
        server.count(a.status)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: a.contentType)
        headers.add(name: "Content-Length", value: "\(a.body.count)")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        if a.contentType.hasPrefix("text/html") {
            // The dashboard is self-contained: nothing from elsewhere, no inline handlers.
            headers.add(name: "Content-Security-Policy", value: "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
        }
        if a.allow { headers.add(name: "Allow", value: "GET, HEAD") }
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: a.status), headers: headers))), promise: nil)
        if !headOnly && !a.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: a.body)))), promise: nil)
        }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        // A client that does not take the answer in time loses its connection.
        let timeout = context.eventLoop.scheduleTask(in: server.limits.writeTimeout) { channel.close(promise: nil) }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        done.futureResult.whenComplete { result in
            timeout.cancel()
            if case .failure = result {
                channel.close(promise: nil)
            } else if !keepAlive {
                channel.close(promise: nil)
            } else {
                bound.value.handler.armDeadline(bound.value.context)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
