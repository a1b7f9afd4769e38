import LVSCore
import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#endif

/// What to probe and how: the part of a checker that the I/O needs.
public struct ProbeSpec: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// TCP_CHECK: the handshake completes.
        case tcp
        /// HTTP_GET: each url's status (and digest, when given) matches.
        case http([HTTPExpectation], virtualhost: String?)
        /// MISC_CHECK: the program exits 0 (with `dynamic`, 2...255 is also a success, with weight
        /// code - 2); `timeout` is misc_timeout.
        case misc(argv: [String], dynamic: Bool, identity: ScriptIdentity? = nil)
        /// SMTP_CHECK: a 220 banner, then HELO answered with 250.
        case smtp(heloName: String)
        /// UDP_CHECK: the payload is sent; with a reply pattern the answer must match it, without
        /// one, silence until the timeout is a success and only an ICMP error fails.
        case udp(payload: [UInt8], reply: Prober.ReplyPattern?)
        /// DNS_CHECK: a query for name and type answered with rcode 0.
        case dns(name: String, type: String)
        /// PING_CHECK: an ICMP (or ICMPv6) echo answered.
        case ping
        /// FILE_CHECK: the number in a track file. With weight 0, non-zero means down (`reverse`:
        /// zero means down); otherwise the real server's weight becomes base + number x weight
        /// (negated by `reverse`), and down at 0 or below.
        case file(path: String, weight: Int32, reverse: Bool, baseWeight: Int32)
    }

    public var kind: Kind
    public var target: Endpoint
    public var bindTo: IPAddress?
    public var bindPort: UInt16?
    /// SSL_GET: HTTP over TLS (the certificate is not verified, as keepalived does not), with SNI
    /// when a server name is given (`enable_sni`).
    public var tls: TLSOptions?

    public init(kind: Kind, target: Endpoint, bindTo: IPAddress? = nil, bindPort: UInt16? = nil, tls: TLSOptions? = nil) {
        self.kind = kind
        self.target = target
        self.bindTo = bindTo
        self.bindPort = bindPort
        self.tls = tls
    }
}

public struct TLSOptions: Hashable, Sendable {
    public var serverName: String?

    public init(serverName: String? = nil) {
        self.serverName = serverName
    }

    /// One context for every TLS probe (building one is costly).
    static let context: NIOSSLContext? = {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return try? NIOSSLContext(configuration: configuration)
    }()

    /// Adds the TLS client in front of the handlers of `channel`.
    func install(on channel: Channel) throws {
        guard let context = TLSOptions.context else { throw TLSUnavailable() }
        let name = serverName.flatMap { IPAddress($0) == nil ? $0 : nil }
        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: name))
    }
}

struct TLSUnavailable: Error, CustomStringConvertible {
    var description: String { "TLS is not available" }
}

public struct HTTPExpectation: Hashable, Sendable {
    public var path: String
    /// Accepted status codes; empty means 200-299.
    public var statusCodes: [ClosedRange<UInt16>]
    public var digest: String?
    public var virtualhost: String?

    public init(path: String, statusCodes: [ClosedRange<UInt16>] = [], digest: String? = nil, virtualhost: String? = nil) {
        self.path = path
        self.statusCodes = statusCodes
        self.digest = digest
        self.virtualhost = virtualhost
    }

    public func accepts(_ status: UInt16) -> Bool {
        statusCodes.isEmpty ? (200...299).contains(status) : statusCodes.contains { $0.contains(status) }
    }
}

/// Runs probes on an event loop, each bounded by its timeout (connect, request and answer in all).
public enum Prober {
    /// The most of a body HTTP_GET reads; a bigger answer fails the check (keepalived would read on).
    public static let maximumBody = 1 << 20

    public static func run(_ spec: ProbeSpec, timeout: Instant, on loop: EventLoop) -> EventLoopFuture<ProbeResult> {
        guard loop.inEventLoop else { return loop.flatSubmit { run(spec, timeout: timeout, on: loop) } }
        let outcome = loop.makePromise(of: ProbeResult.self)
        // The probe and its deadline race; the first to finish answers (on the loop, so no lock).
        let promise = loop.makePromise(of: ProbeResult.self)
        let answered = NIOLoopBoundBox(false, eventLoop: loop)
        var silenceIsSuccess = false
        if case .udp(_, nil) = spec.kind { silenceIsSuccess = true }
        let onDeadline: ProbeResult = silenceIsSuccess ? .success : .failure("timeout")
        let deadline = loop.scheduleTask(in: .nanoseconds(timeout)) {
            guard !answered.value else { return }
            answered.value = true
            outcome.succeed(onDeadline)
        }
        promise.futureResult.whenSuccess { result in
            deadline.cancel()
            guard !answered.value else { return }
            answered.value = true
            outcome.succeed(result)
        }
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: "\(spec.target.address)", port: Int(spec.target.port))
        } catch {
            promise.succeed(.failure("bad address \(spec.target)"))
            return outcome.futureResult
        }
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(timeout))
        // SO_REUSEADDR only matters for a bound source (bindto/bind_port); a plain connect needs no
        // option set (each costs a system call per probe).
        if let bind = spec.bindTo, let local = try? SocketAddress(ipAddress: "\(bind)", port: Int(spec.bindPort ?? 0)) {
            bootstrap = bootstrap.channelOption(.socketOption(.so_reuseaddr), value: 1).bind(to: local)
        }
        switch spec.kind {
        case .ping:
            let v6 = spec.target.address.isV6
            let identifier = UInt16.random(in: 1...UInt16.max)
            let echo = Prober.echoRequest(identifier: identifier, v6: v6)
            guard let pingAddress = try? SocketAddress(ipAddress: "\(spec.target.address)", port: 0) else {
                promise.succeed(.failure("bad address"))
                return outcome.futureResult
            }
            if geteuid() == 0 {
                // Root: a raw ICMP socket, as keepalived uses (a ping socket also needs the group in
                // net.ipv4.ping_group_range, which containers often leave empty).
                rawExchange(echo, with: spec.target.address, at: pingAddress, on: loop, promise: promise, until: outcome.futureResult) { reply in
                    Prober.isEchoReply(reply, identifier: identifier, v6: v6, withIPHeader: !v6) ? .success : nil
                }
            } else {
                exchange(echo, with: pingAddress, on: loop, promise: promise, until: outcome.futureResult,
                         subtype: .init(rawValue: v6 ? Int32(IPPROTO_ICMPV6) : Int32(IPPROTO_ICMP))) { reply in
                    // The kernel's ping socket hands over the ICMP message itself, with its own identifier.
                    Prober.isEchoReply(reply, identifier: nil, v6: v6, withIPHeader: false) ? .success : nil
                }
            }
        case .file(let path, let weight, let reverse, let base):
            promise.succeed(Prober.trackFile(path: path, weight: weight, reverse: reverse, base: base))
        case .smtp(let heloName):
            bootstrap.channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(SMTPDialogue(promise: promise, heloName: heloName)) }
            }.connect(to: address).whenComplete { result in
                switch result {
                case .failure(let error): promise.succeed(.failure(Prober.describe(error)))
                case .success(let channel): outcome.futureResult.whenComplete { _ in channel.close(promise: nil) }
                }
            }
        case .udp(let payload, let reply):
            exchange(payload, with: address, on: loop, promise: promise, until: outcome.futureResult) { answer in
                guard let reply else { return .success }
                return reply.matches(answer) ? .success : .failure("UDP check reply data mismatch")
            }
        case .dns(let name, let type):
            let id = UInt16.random(in: 1...UInt16.max)
            exchange(Prober.dnsQuery(id: id, name: name, type: type), with: address, on: loop, promise: promise,
                     until: outcome.futureResult) { answer in
                Prober.dnsVerdict(answer, id: id)
            }
        case .misc(let argv, let dynamic, let identity):
            ScriptRunner.run(argv, as: identity, timeout: timeout, on: loop).whenSuccess { outcome in
                switch outcome {
                case .exited(0): promise.succeed(.success)
                case .exited(let code) where dynamic && code >= 2: promise.succeed(.successWithWeight(code - 2))
                case .exited(let code): promise.succeed(.failure("exited with status \(code)"))
                case .signalled(let signal): promise.succeed(.failure("killed by signal \(signal)"))
                case .timedOut: promise.succeed(.failure("timed out"))
                case .failedToStart(let why): promise.succeed(.failure("cannot run \(argv[0]): \(why)"))
                }
            }
            return outcome.futureResult
        case .tcp:
            bootstrap.connect(to: address).whenComplete { result in
                switch result {
                case .success(let channel):
                    promise.succeed(.success)
                    channel.close(promise: nil)
                case .failure(let error):
                    promise.succeed(.failure(Prober.describe(error)))
                }
            }
        case .http(let urls, let virtualhost):
            check(urls[...], virtualhost: virtualhost, address: address, target: spec.target, tls: spec.tls, bootstrap: bootstrap, promise: promise)
        }
        return outcome.futureResult
    }

    /// Whether `packet` is an echo reply (to `identifier`, when given); a raw IPv4 socket hands
    /// over the IP header too.
    public static func isEchoReply(_ packet: [UInt8], identifier: UInt16?, v6: Bool, withIPHeader: Bool) -> Bool {
        var start = 0
        if withIPHeader {
            guard let first = packet.first, first >> 4 == 4 else { return false }
            start = Int(first & 0x0F) * 4
        }
        guard packet.count >= start + 8, packet[start] == (v6 ? 129 : 0), packet[start + 1] == 0 else { return false }
        guard let identifier else { return true }
        return UInt16(packet[start + 4]) << 8 | UInt16(packet[start + 5]) == identifier
    }

    /// An ICMP echo request (RFC 792; ICMPv6: RFC 4443), with its checksum (the kernel fills in
    /// the ICMPv6 one and the identifier of a ping socket).
    public static func echoRequest(identifier: UInt16, v6: Bool) -> [UInt8] {
        var packet: [UInt8] = [v6 ? 128 : 8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xFF), 0, 1]
        packet += Array("SwiftLVS PING_CHECK".utf8)
        if !v6 {
            var sum: UInt32 = 0
            var i = 0
            while i < packet.count {
                sum += UInt32(packet[i]) << 8 | (i + 1 < packet.count ? UInt32(packet[i + 1]) : 0)
                i += 2
            }
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            let checksum = ~UInt16(sum)
            packet[2] = UInt8(checksum >> 8)
            packet[3] = UInt8(checksum & 0xFF)
        }
        return packet
    }

    /// FILE_CHECK's verdict on a track file's contents (a missing or unreadable file reads as 0, as
    /// keepalived's does).
    public static func trackFile(path: String, weight: Int32, reverse: Bool, base: Int32) -> ProbeResult {
        var value: Int64 = 0
        if let f = fopen(path, "r") {
            var buffer = [CChar](repeating: 0, count: 64)
            if fgets(&buffer, 64, f) != nil {
                let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                value = Int64(text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).first ?? "") ?? 0
            }
            fclose(f)
        }
        if weight == 0 {
            return (value != 0) != reverse ? .failure("track file \(path) is \(value)") : .success
        }
        let effective = Int64(base) + value * Int64(weight) * (reverse ? -1 : 1)
        if effective <= 0 { return .failure("track file \(path) is \(value): weight \(effective)") }
        return .successWithWeight(Int32(clamping: effective))
    }

    /// keepalived's Host header: the virtualhost, else the address with `:port` unless it is 80.
    public static func hostHeader(_ target: Endpoint, virtualhost: String?) -> String {
        if let virtualhost { return virtualhost }
        let address = target.address.isV6 ? "[\(target.address)]" : "\(target.address)"
        return target.port == 80 ? address : "\(address):\(target.port)"
    }

    /// An HTTP/1.0 GET as keepalived's checker and genhash send it; the answer's header and body.
    public static func fetch(_ target: Endpoint, path: String, virtualhost: String?, tls: TLSOptions? = nil, timeout: Instant, on loop: EventLoop)
        -> EventLoopFuture<(header: [UInt8], body: [UInt8])> {
        guard loop.inEventLoop else {
            return loop.flatSubmit { fetch(target, path: path, virtualhost: virtualhost, tls: tls, timeout: timeout, on: loop) }
        }
        let answer = loop.makePromise(of: HTTPAnswer.self)
        let deadline = loop.scheduleTask(in: .nanoseconds(timeout)) { answer.fail(ChannelError.connectTimeout(.nanoseconds(timeout))) }
        answer.futureResult.whenComplete { _ in deadline.cancel() }
        guard let address = try? SocketAddress(ipAddress: "\(target.address)", port: Int(target.port)) else {
            answer.fail(ChannelError.badInterfaceAddressFamily)
            return answer.futureResult.map { ($0.header, $0.body) }
        }
        get(path, host: hostHeader(target, virtualhost: virtualhost), tls: tls, address: address,
            bootstrap: ClientBootstrap(group: loop).connectTimeout(.nanoseconds(timeout)), answer: answer)
        return answer.futureResult.map { ($0.header, $0.body) }
    }

    /// One GET on a new connection (keepalived's request), its answer collected into `answer`.
    private static func get(_ path: String, host: String, tls: TLSOptions?, address: SocketAddress, bootstrap: ClientBootstrap,
                            answer: EventLoopPromise<HTTPAnswer>) {
        let request = "GET \(path) HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: \(host)\r\n\r\n"
        bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try tls?.install(on: channel)
                try channel.pipeline.syncOperations.addHandler(HTTPAnswerCollector(answer))
            }
        }.connect(to: address).whenComplete { result in
            switch result {
            case .failure(let error): answer.fail(error)
            case .success(let channel):
                channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
                answer.futureResult.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    /// The urls one after the other, each on its own connection (as keepalived does).
    private static func check(_ urls: ArraySlice<HTTPExpectation>, virtualhost: String?, address: SocketAddress, target: Endpoint,
                              tls: TLSOptions?, bootstrap: ClientBootstrap, promise: EventLoopPromise<ProbeResult>) {
        guard let url = urls.first else {
            promise.succeed(.success)
            return
        }
        let answer = promise.futureResult.eventLoop.makePromise(of: HTTPAnswer.self)
        get(url.path, host: hostHeader(target, virtualhost: url.virtualhost ?? virtualhost), tls: tls, address: address,
            bootstrap: bootstrap, answer: answer)
        answer.futureResult.whenComplete { result in
            switch result {
            case .failure(let error):
                promise.succeed(.failure(describe(error)))
            case .success(let got):
                guard let status = got.status else {
                    promise.succeed(.failure("no HTTP status line"))
                    return
                }
                guard url.accepts(status) else {
                    promise.succeed(.failure("HTTP status code \(status)"))
                    return
                }
                if let digest = url.digest {
                    let actual = MD5.hex(got.body)
                    guard actual == digest else {
                        promise.succeed(.failure("MD5 digest error to [\(target.address)]:\(target.port) url \(url.path), result = \(actual), expected \(digest)"))
                        return
                    }
                }
                check(urls.dropFirst(), virtualhost: virtualhost, address: address, target: target, tls: tls, bootstrap: bootstrap, promise: promise)
            }
        }
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? NIOConnectionError, let first = e.connectionErrors.first { return describe(first.error) }
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
        return "\(error)"
    }
}

struct HTTPAnswer: Sendable {
    var status: UInt16?
    var header: [UInt8] = []
    var body: [UInt8]
}

struct AnswerTooLarge: Error, CustomStringConvertible {
    var description: String { "answer larger than \(Prober.maximumBody) bytes" }
}

/// Collects an HTTP/1.0 answer until the server closes: the status from the first line and the body
/// after the blank line.
final class HTTPAnswerCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var bytes: [UInt8] = []
    private let answer: EventLoopPromise<HTTPAnswer>
    private var done = false

    init(_ answer: EventLoopPromise<HTTPAnswer>) { self.answer = answer }

    private func finish(_ result: Result<HTTPAnswer, Error>) {
        guard !done else { return }
        done = true
        answer.completeWith(result)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        var buffer = unwrapInboundIn(data)
        bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        if bytes.count > Prober.maximumBody + 16384 {
            finish(.failure(AnswerTooLarge()))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.success(HTTPAnswerCollector.parse(bytes)))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A TLS peer that closes without close_notify still delivered its answer.
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls {
            finish(.success(HTTPAnswerCollector.parse(bytes)))
        } else {
            finish(.failure(error))
        }
        context.close(promise: nil)
    }

    static func parse(_ bytes: [UInt8]) -> HTTPAnswer {
        var headerEnd: Int?
        var i = 0
        while i + 3 < bytes.count {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
                headerEnd = i
                break
            }
            i += 1
        }
        // "HTTP/x.y NNN ...": the three digits after the first blank.
        var status: UInt16?
        if bytes.count >= 12, bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"), bytes[2] == UInt8(ascii: "T"),
           bytes[3] == UInt8(ascii: "P"), bytes[4] == UInt8(ascii: "/"), let blank = bytes.prefix(16).firstIndex(of: 32),
           blank + 3 < bytes.count {
            let digits = bytes[(blank + 1)...(blank + 3)]
            if digits.allSatisfy({ $0 >= 48 && $0 <= 57 }), blank + 4 == bytes.count || bytes[blank + 4] == 32 || bytes[blank + 4] == 13 {
                status = digits.reduce(0) { $0 * 10 + UInt16($1 - 48) }
            }
        }
        let body = headerEnd.map { Array(bytes[($0 + 4)...]) } ?? []
        let header = headerEnd.map { Array(bytes[..<($0 + 4)]) } ?? bytes
        return HTTPAnswer(status: status, header: header, body: body)
    }
}
