import LVSCore
import NIOCore
import NIOPosix

/// UDP_CHECK, DNS_CHECK and SMTP_CHECK exchanges (keepalived's check_udp.c, check_dns.c,
/// check_smtp.c), each bounded by the probe's deadline.
extension Prober {
    /// What an answering datagram must look like for UDP_CHECK's `require_reply`: hex with `x`
    /// nibble wildcards, compared from the start; and the length bounds.
    public struct ReplyPattern: Hashable, Sendable {
        public var nibbles: [UInt8?]
        public var minimumLength: Int
        public var maximumLength: Int

        public init(hex: String, minimumLength: Int = 0, maximumLength: Int = 255) {
            nibbles = hex.utf8.compactMap { c -> UInt8?? in
                if c == UInt8(ascii: "x") || c == UInt8(ascii: "X") { return .some(nil) }
                return ScriptHex.value(c).map { .some($0) }
            }
            self.minimumLength = minimumLength
            self.maximumLength = maximumLength
        }

        public func matches(_ reply: [UInt8]) -> Bool {
            guard reply.count >= minimumLength, reply.count <= maximumLength, reply.count * 2 >= nibbles.count else { return false }
            for (i, nibble) in nibbles.enumerated() {
                guard let nibble else { continue }
                let byte = reply[i / 2]
                if (i % 2 == 0 ? byte >> 4 : byte & 15) != nibble { return false }
            }
            return true
        }
    }

    /// Sends `payload` to `target` on a connected UDP socket and collects answers until `decide`
    /// returns a result, an ICMP error arrives, or the loop's deadline (set by `run`) ends it.
    static func exchange(_ payload: [UInt8], with target: SocketAddress, on loop: EventLoop, promise: EventLoopPromise<ProbeResult>,
                         until done: EventLoopFuture<ProbeResult>, subtype: NIOBSDSocket.ProtocolSubtype = .default,
                         decide: @escaping @Sendable ([UInt8]) -> ProbeResult?) {
        DatagramBootstrap(group: loop)
            .protocolSubtype(subtype)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramCollector(promise: promise, decide: decide))
                }
            }
            .connect(to: target)
            .whenComplete { send(payload, to: target, over: $0, promise: promise, until: done) }
    }

    /// Sends the probe's datagram once the channel is up; the channel closes when the probe has its
    /// answer (or its deadline came).
    static func send(_ payload: [UInt8], to target: SocketAddress, over result: Result<Channel, Error>, promise: EventLoopPromise<ProbeResult>,
                     until done: EventLoopFuture<ProbeResult>) {
        switch result {
        case .failure(let error):
            promise.succeed(.failure(describe(error)))
        case .success(let channel):
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: payload)), promise: nil)
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// `exchange` on a raw socket of the ICMP protocol of `address`, connected to it (so only its
    /// packets arrive; the kernel computes the ICMPv6 checksum). The socket is made here and handed
    /// to NIO: NIO's own raw sockets try IPV6_V6ONLY, which raw IPv6 sockets refuse.
    static func rawExchange(_ payload: [UInt8], with address: IPAddress, at target: SocketAddress, on loop: EventLoop, promise: EventLoopPromise<ProbeResult>,
                            until done: EventLoopFuture<ProbeResult>, decide: @escaping @Sendable ([UInt8]) -> ProbeResult?) {
        let fd = socket(address.isV6 ? AF_INET6 : AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                        address.isV6 ? Int32(IPPROTO_ICMPV6) : Int32(IPPROTO_ICMP))
        guard fd >= 0 else {
            promise.succeed(.failure(String(cString: strerror(errno))))
            return
        }
        let connected = target.withSockAddr { connect(fd, $0, socklen_t($1)) }
        guard connected == 0 else {
            promise.succeed(.failure(String(cString: strerror(errno))))
            close(fd)
            return
        }
        DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramCollector(promise: promise, decide: decide))
                }
            }
            .withBoundSocket(fd)
            .whenComplete { send(payload, to: target, over: $0, promise: promise, until: done) }
    }

    /// A DNS query (RFC 1035 §4.1) for `name` and `type`, recursion desired.
    public static func dnsQuery(id: UInt16, name: String, type: String) -> [UInt8] {
        var q: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") where !label.isEmpty {
            let bytes = Array(label.utf8.prefix(63))
            q.append(UInt8(bytes.count))
            q += bytes
        }
        q.append(0)
        let types: [String: UInt16] = ["A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "RRSIG": 46, "DNSKEY": 48]
        let t = types[type.uppercased()] ?? 6
        q += [UInt8(t >> 8), UInt8(t & 0xFF), 0, 1]
        return q
    }

    /// keepalived's verdict on a DNS answer: same id, a response, rcode 0; nil for a datagram to
    /// ignore (another id, a query).
    public static func dnsVerdict(_ reply: [UInt8], id: UInt16) -> ProbeResult? {
        guard reply.count >= 12 else { return nil }
        guard UInt16(reply[0]) << 8 | UInt16(reply[1]) == id, reply[2] & 0x80 != 0 else { return nil }
        let rcode = reply[3] & 0x0F
        return rcode == 0 ? .success : .failure("read error occurred. (rcode = \(rcode))")
    }
}

enum ScriptHex {
    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

final class DatagramCollector: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let promise: EventLoopPromise<ProbeResult>
    let decide: @Sendable ([UInt8]) -> ProbeResult?

    private var done = false

    init(promise: EventLoopPromise<ProbeResult>, decide: @escaping @Sendable ([UInt8]) -> ProbeResult?) {
        self.promise = promise
        self.decide = decide
    }

    private func finish(_ result: ProbeResult) {
        guard !done else { return }
        done = true
        promise.succeed(result)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) ?? []
        if let verdict = decide(bytes) { finish(verdict) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A connected UDP socket reports the ICMP error of the real server (port unreachable).
        finish(.failure(Prober.describe(error)))
    }
}

/// SMTP_CHECK: a 220 banner, HELO accepted with 250, then QUIT.
final class SMTPDialogue: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let promise: EventLoopPromise<ProbeResult>
    let heloName: String
    private var pending: [UInt8] = []
    private var sentHelo = false
    private var done = false

    init(promise: EventLoopPromise<ProbeResult>, heloName: String) {
        self.promise = promise
        self.heloName = heloName
    }

    private func finish(_ result: ProbeResult) {
        guard !done else { return }
        done = true
        promise.succeed(result)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readBytes(length: buffer.readableBytes) ?? []
        guard pending.count <= 65536 else {
            finish(.failure("SMTP answer too long"))
            context.close(promise: nil)
            return
        }
        // A reply is complete at a line "NNN text" (a dash after the code means more lines follow).
        while let end = pending.firstIndex(of: 10) {
            let line = Array(pending[..<end])
            pending.removeFirst(end + 1)
            guard line.count >= 3, let code = Int(String(decoding: line.prefix(3), as: UTF8.self)) else {
                finish(.failure("bad SMTP reply"))
                context.close(promise: nil)
                return
            }
            if line.count > 3, line[3] == UInt8(ascii: "-") { continue }
            if !sentHelo {
                guard code == 220 else {
                    finish(.failure("SMTP banner \(code)"))
                    context.close(promise: nil)
                    return
                }
                sentHelo = true
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HELO \(heloName)\r\n")), promise: nil)
            } else {
                if code == 250 {
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "QUIT\r\n")), promise: nil)
                    finish(.success)
                } else {
                    finish(.failure("SMTP HELO answered \(code)"))
                }
                context.close(promise: nil)
                return
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure("connection closed"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        finish(.failure(Prober.describe(error)))
        context.close(promise: nil)
    }
}
