import LVSCore
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import Testing
@testable import HealthCheck

/// Probes against real servers on loopback, including the bad ones: each ends within its timeout.
@Suite struct ProbeTests {
    /// Answers every connection with `reply` (after reading the request), then closes; nil: accepts and stays silent.
    final class Replier: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let reply: [UInt8]?
        init(_ reply: [UInt8]?) { self.reply = reply }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let reply else { return }
            context.writeAndFlush(NIOAny(ByteBuffer(bytes: reply))).whenComplete { _ in context.close(promise: nil) }
        }
    }

    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    func server(_ reply: [UInt8]?) throws -> (Channel, Endpoint) {
        let channel = try ServerBootstrap(group: ProbeTests.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { $0.pipeline.addHandler(Replier(reply)) }
            .bind(host: "127.0.0.1", port: 0).wait()
        return (channel, Endpoint(IPAddress("127.0.0.1")!, UInt16(channel.localAddress!.port!)))
    }

    func probe(_ kind: ProbeSpec.Kind, _ target: Endpoint, timeout: Instant = 1_000_000_000) throws -> ProbeResult {
        try Prober.run(ProbeSpec(kind: kind, target: target), timeout: timeout, on: ProbeTests.group.next()).wait()
    }

    @Test func tcpCheckSucceedsOnAHandshakeAndFailsOnARefusal() throws {
        let (channel, target) = try server(nil)
        #expect(try probe(.tcp, target) == .success)
        try channel.close().wait()
        // Port 1: nothing listens there (a port just closed could be taken by a parallel test).
        #expect(try !probe(.tcp, Endpoint(IPAddress("127.0.0.1")!, 1)).succeeded)
    }

    @Test func httpStatusAndDigest() throws {
        let body = "hello\n"
        let (ok, okTarget) = try server(Array("HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\n\(body)".utf8))
        defer { _ = ok.close() }
        let digest = MD5.hex(Array(body.utf8))
        #expect(try probe(.http([HTTPExpectation(path: "/", digest: digest)], virtualhost: nil), okTarget) == .success)
        #expect(try !probe(.http([HTTPExpectation(path: "/", digest: String(repeating: "0", count: 32))], virtualhost: nil), okTarget).succeeded)
        #expect(try !probe(.http([HTTPExpectation(path: "/", statusCodes: [301...302])], virtualhost: nil), okTarget).succeeded)
        let (bad, badTarget) = try server(Array("HTTP/1.0 503 Unavailable\r\n\r\n".utf8))
        defer { _ = bad.close() }
        #expect(try probe(.http([HTTPExpectation(path: "/")], virtualhost: nil), badTarget) == .failure("HTTP status code 503"))
    }

    @Test func silentGarbageAndHugeAnswersFailWithinTheTimeout() throws {
        let (silent, silentTarget) = try server(nil)
        defer { _ = silent.close() }
        #expect(try probe(.http([HTTPExpectation(path: "/")], virtualhost: nil), silentTarget, timeout: 300_000_000) == .failure("timeout"))
        let (garbage, garbageTarget) = try server(Array(repeating: 0x41, count: 100))
        defer { _ = garbage.close() }
        #expect(try probe(.http([HTTPExpectation(path: "/")], virtualhost: nil), garbageTarget) == .failure("no HTTP status line"))
        let (huge, hugeTarget) = try server(Array("HTTP/1.0 200 OK\r\n\r\n".utf8) + Array(repeating: 0x41, count: 3 << 20))
        defer { _ = huge.close() }
        #expect(try !probe(.http([HTTPExpectation(path: "/")], virtualhost: nil), hugeTarget, timeout: 3_000_000_000).succeeded)
    }
}

/// MISC_CHECK and the notify scripts: no shell, bounded in time, output thrown away.
@Suite struct ScriptTests {
    func misc(_ script: String, dynamic: Bool = false, timeout: Instant = 2_000_000_000) throws -> ProbeResult {
        try Prober.run(ProbeSpec(kind: .misc(argv: ["/bin/sh", "-c", script], dynamic: dynamic), target: Endpoint(IPAddress("127.0.0.1")!, 1)),
                       timeout: timeout, on: ProbeTests.group.next()).wait()
    }

    @Test func exitCodesAndDynamicWeights() throws {
        #expect(try misc("exit 0") == .success)
        #expect(try misc("exit 1") == .failure("exited with status 1"))
        #expect(try misc("exit 7") == .failure("exited with status 7"))
        #expect(try misc("exit 7", dynamic: true) == .successWithWeight(5))
        #expect(try misc("exit 1", dynamic: true) == .failure("exited with status 1"))
    }

    @Test func hangingAndFloodingScriptsEndWithinTheirTimeout() throws {
        #expect(try !misc("sleep 30", timeout: 300_000_000).succeeded)
        #expect(try misc("yes | head -c 50000000; exit 0") == .success)
        let missing = try Prober.run(ProbeSpec(kind: .misc(argv: ["/nonexistent/check"], dynamic: false), target: Endpoint(IPAddress("127.0.0.1")!, 1)),
                                     timeout: 1_000_000_000, on: ProbeTests.group.next()).wait()
        #expect(!missing.succeeded)
    }

    @Test func argumentsAreNotInterpretedByAShell() throws {
        let outcome = try ScriptRunner.run(["/bin/test", "a b", "=", "a b"], timeout: 1_000_000_000, on: ProbeTests.group.next()).wait()
        #expect(outcome == .exited(0))
    }
}

/// UDP_CHECK, DNS_CHECK and SMTP_CHECK against real peers on loopback.
@Suite struct DatagramAndSMTPTests {
    final class Echo: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let answer: @Sendable ([UInt8]) -> [UInt8]?
        init(_ answer: @escaping @Sendable ([UInt8]) -> [UInt8]?) { self.answer = answer }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var envelope = unwrapInboundIn(data)
            let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) ?? []
            guard let reply = answer(bytes) else { return }
            context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: ByteBuffer(bytes: reply))), promise: nil)
        }
    }

    func udpServer(_ answer: @escaping @Sendable ([UInt8]) -> [UInt8]?) throws -> (Channel, Endpoint) {
        let channel = try DatagramBootstrap(group: ProbeTests.group).channelInitializer { $0.pipeline.addHandler(Echo(answer)) }
            .bind(host: "127.0.0.1", port: 0).wait()
        return (channel, Endpoint(IPAddress("127.0.0.1")!, UInt16(channel.localAddress!.port!)))
    }

    func probe(_ kind: ProbeSpec.Kind, _ target: Endpoint, timeout: Instant = 500_000_000) throws -> ProbeResult {
        try Prober.run(ProbeSpec(kind: kind, target: target), timeout: timeout, on: ProbeTests.group.next()).wait()
    }

    @Test func udpReplyPatternsAndSilence() throws {
        let (echo, target) = try udpServer { $0 }
        defer { _ = echo.close() }
        #expect(try probe(.udp(payload: [0xAB, 0xCD], reply: Prober.ReplyPattern(hex: "abxd")), target) == .success)
        #expect(try !probe(.udp(payload: [0xAB, 0xCD], reply: Prober.ReplyPattern(hex: "ffff")), target).succeeded)
        let (mute, muteTarget) = try udpServer { _ in nil }
        defer { _ = mute.close() }
        #expect(try probe(.udp(payload: [1], reply: nil), muteTarget, timeout: 200_000_000) == .success)
        #expect(try !probe(.udp(payload: [1], reply: Prober.ReplyPattern(hex: "")), muteTarget, timeout: 200_000_000).succeeded)
    }

    @Test func udpToAClosedPortFails() throws {
        #expect(try !probe(.udp(payload: [1], reply: nil), Endpoint(IPAddress("127.0.0.1")!, 1)).succeeded)
    }

    @Test func dnsAnswersAreJudgedByIdAndRcode() throws {
        let (ok, okTarget) = try udpServer { q in var r = q; r[2] |= 0x80; return r }
        defer { _ = ok.close() }
        #expect(try probe(.dns(name: "example.com", type: "A"), okTarget) == .success)
        let (refused, refusedTarget) = try udpServer { q in var r = q; r[2] |= 0x80; r[3] = 5; return r }
        defer { _ = refused.close() }
        #expect(try probe(.dns(name: "example.com", type: "A"), refusedTarget) == .failure("read error occurred. (rcode = 5)"))
        #expect(Prober.dnsQuery(id: 0x1234, name: "a.bc", type: "MX") == [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 97, 2, 98, 99, 0, 0, 15, 0, 1])
    }

    /// Speaks first (the banner), then answers each line it reads.
    final class SMTPServer: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let banner: String, answer: String
        init(banner: String, answer: String) { self.banner = banner; self.answer = answer }
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(NIOAny(ByteBuffer(string: banner)), promise: nil)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(NIOAny(ByteBuffer(string: answer)), promise: nil)
        }
    }

    func smtpServer(banner: String, answer: String) throws -> (Channel, Endpoint) {
        let channel = try ServerBootstrap(group: ProbeTests.group)
            .childChannelInitializer { $0.pipeline.addHandler(SMTPServer(banner: banner, answer: answer)) }
            .bind(host: "127.0.0.1", port: 0).wait()
        return (channel, Endpoint(IPAddress("127.0.0.1")!, UInt16(channel.localAddress!.port!)))
    }

    @Test func smtpDialogue() throws {
        let (good, goodTarget) = try smtpServer(banner: "220-mail ESMTP\r\n220 ready\r\n", answer: "250 hello\r\n")
        defer { _ = good.close() }
        #expect(try probe(.smtp(heloName: "lb"), goodTarget) == .success)
        let (busy, busyTarget) = try smtpServer(banner: "421 busy\r\n", answer: "")
        defer { _ = busy.close() }
        #expect(try probe(.smtp(heloName: "lb"), busyTarget) == .failure("SMTP banner 421"))
        let (rude, rudeTarget) = try smtpServer(banner: "220 ok\r\n", answer: "550 no\r\n")
        defer { _ = rude.close() }
        #expect(try probe(.smtp(heloName: "lb"), rudeTarget) == .failure("SMTP HELO answered 550"))
    }
}

@Suite struct TrackFileTests {
    @Test func weightZeroMeansNonZeroIsDownAndWeightsScale() throws {
        let path = "/tmp/swiftlvs-track-\(getpid())"
        defer { unlink(path) }
        func write(_ text: String) { let f = fopen(path, "w"); fputs(text, f); fclose(f) }
        write("0\n")
        #expect(Prober.trackFile(path: path, weight: 0, reverse: false, base: 1) == .success)
        write("3\n")
        #expect(!Prober.trackFile(path: path, weight: 0, reverse: false, base: 1).succeeded)
        #expect(Prober.trackFile(path: path, weight: 0, reverse: true, base: 1) == .success)
        #expect(Prober.trackFile(path: path, weight: 10, reverse: false, base: 5) == .successWithWeight(35))
        #expect(!Prober.trackFile(path: path, weight: -10, reverse: false, base: 5).succeeded)
        #expect(Prober.trackFile(path: "/nonexistent/x", weight: 0, reverse: false, base: 1) == .success)
    }
}

@Suite struct PingTests {
    /// Root uses a raw ICMP socket; others a ping socket, which needs net.ipv4.ping_group_range to
    /// include their group: skipped when neither is possible.
    static var permitted: Bool {
        if geteuid() == 0 { return true }
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), Int32(IPPROTO_ICMP))
        if s >= 0 { close(s) }
        return s >= 0
    }

    @Test(.enabled(if: PingTests.permitted)) func loopbackAnswersAnEcho() throws {
        let result = try Prober.run(ProbeSpec(kind: .ping, target: Endpoint(IPAddress("127.0.0.1")!, 0)), timeout: 1_000_000_000,
                                    on: ProbeTests.group.next()).wait()
        #expect(result == .success)
        let v6 = try Prober.run(ProbeSpec(kind: .ping, target: Endpoint(IPAddress("::1")!, 0)), timeout: 1_000_000_000,
                                on: ProbeTests.group.next()).wait()
        #expect(v6 == .success)
    }

    @Test func echoRepliesAreRecognised() {
        var reply = Prober.echoRequest(identifier: 0x1234, v6: false)
        reply[0] = 0
        #expect(Prober.isEchoReply(reply, identifier: 0x1234, v6: false, withIPHeader: false))
        #expect(!Prober.isEchoReply(reply, identifier: 0x4321, v6: false, withIPHeader: false))
        #expect(Prober.isEchoReply([0x45] + Array(repeating: 0, count: 19) + reply, identifier: 0x1234, v6: false, withIPHeader: true))
        #expect(!Prober.isEchoReply([0x46] + Array(repeating: 0, count: 19) + reply, identifier: 0x1234, v6: false, withIPHeader: true),
                "IP options move the ICMP header")
        #expect(!Prober.isEchoReply(Prober.echoRequest(identifier: 0x1234, v6: false), identifier: nil, v6: false, withIPHeader: false),
                "our own request, seen on a raw socket")
        #expect(!Prober.isEchoReply([0x45, 0], identifier: nil, v6: false, withIPHeader: true))
        #expect(!Prober.isEchoReply([], identifier: nil, v6: true, withIPHeader: false))
    }

    @Test func echoRequestChecksum() {
        let packet = Prober.echoRequest(identifier: 0x1234, v6: false)
        var sum: UInt32 = 0
        for i in stride(from: 0, to: packet.count, by: 2) { sum += UInt32(packet[i]) << 8 | (i + 1 < packet.count ? UInt32(packet[i + 1]) : 0) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        #expect(sum == 0xFFFF)
    }
}
