import LVSCore
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
        #expect(try !probe(.tcp, target).succeeded)
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
