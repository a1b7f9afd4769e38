import Foundation
import LVSCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import Observability

#if canImport(Glibc)
import Glibc
#endif

/// The endpoint on loopback with a fixed view: answers, refusals, and clients that misbehave.
@Suite struct ObservabilityServerTests {
    struct FixedSource: ObservabilitySource {
        let loop: EventLoop
        let events = EventLog()
        let gathered = NIOLockedValueBox(0)

        func view() -> EventLoopFuture<DirectorView> {
            gathered.withLockedValue { $0 += 1 }
            var v = DirectorView()
            var t = IPVS()
            let key = VirtualService.Key.address(.tcp, IPAddress("127.0.0.1")!, 8080)
            try! t.addService(VirtualService.Config(key: key, scheduler: "rr"))
            // Enough real servers for a /metrics page of about a megabyte.
            for i in 0..<600 {
                try! t.addServer(RealServerConfig(Endpoint(IPAddress("10.1.\(i / 250).\(i % 250 + 1)")!, 80)), to: key)
            }
            v.services = t.serviceSnapshots
            return loop.makeSucceededFuture(v)
        }

        func connections(offset: Int, limit: Int) -> EventLoopFuture<(total: Int, page: [ConnectionSnapshot])> {
            loop.makeSucceededFuture((0, []))
        }
    }

    /// A blocking client socket with a receive timeout.
    final class Client {
        let fd: Int32

        init(port: Int, receiveBuffer: Int? = nil) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            if var size = receiveBuffer.map(Int32.init) { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4) }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
        }

        deinit { close(fd) }

        func send(_ text: String) { _ = trySend(text) }

        /// Whether the kernel took the bytes (false once the server has closed the connection).
        func trySend(_ text: String) -> Bool { text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } > 0 }

        /// Everything until the server closes (or the timeout).
        func readAll() -> String {
            var out = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                out += buffer[0..<n]
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    func withServer(_ limits: ObservabilityServer.Limits = .init(), _ body: (Int) throws -> Void) throws {
        try withServer(limits) { port, _ in try body(port) }
    }

    func withServer(_ limits: ObservabilityServer.Limits = .init(), _ body: (Int, FixedSource) throws -> Void) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let source = FixedSource(loop: group.next())
        let server = ObservabilityServer(group: group, source: source, logger: Logger(label: "test"), limits: limits)
        let address = try server.start(host: "127.0.0.1", port: 0).wait()
        defer { _ = try? server.stop().wait() }
        try body(address.port!, source)
    }

    func get(_ port: Int, _ target: String, method: String = "GET") throws -> String {
        let c = try Client(port: port)
        c.send("\(method) \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return c.readAll()
    }

    @Test func answersAndRefusals() throws {
        try withServer { port in
            let metrics = try get(port, "/metrics")
            #expect(metrics.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
            #expect(metrics.contains("\r\n\r\n# HELP lvs_build_info "))
            #expect(metrics.contains("lvs_service_real_servers{proto=\"TCP\",local_address=\"127.0.0.1\",local_port=\"8080\",local_mark=\"\"} 600\n"))
            let head = try get(port, "/metrics", method: "HEAD")
            #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.hasSuffix("\r\n\r\n"), "HEAD: no body")
            let page = try get(port, "/")
            #expect(page.contains("<title>SwiftLVS director</title>"))
            #expect(page.contains("Content-Security-Policy: default-src 'self'"))
            #expect(try get(port, "/nowhere").hasPrefix("HTTP/1.1 404 Not Found\r\n"))
            #expect(try get(port, "/api/v1/connections?limit=x").contains("\"error\" : \"query parameter 'limit' must be a whole number, not 'x'\""))
            let post = try get(port, "/metrics", method: "DELETE")
            #expect(post.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n") && post.contains("Allow: GET, HEAD\r\n"))
            // The requests answered so far are counted by code.
            let counted = try get(port, "/metrics")
            #expect(counted.contains("lvs_http_requests_total{code=\"404\"} 1\n"))
            #expect(counted.contains("lvs_http_requests_total{code=\"405\"} 1\n"))
        }
    }

    @Test func manyClientsShareOneGatheredView() throws {
        var limits = ObservabilityServer.Limits()
        limits.viewReuse = .seconds(30)
        try withServer(limits) { port, source in
            // Ten clients at once, each asking for the status twice, within the reuse time: the
            // director is asked once (the history's first sample included), not twenty-one times.
            let clients = try (0..<10).map { _ in try Client(port: port) }
            for c in clients { c.send("GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") }
            let answers = clients.map { $0.readAll() }
            #expect(answers.allSatisfy { $0.components(separatedBy: "HTTP/1.1 200 OK").count == 3 })
            #expect(source.gathered.withLockedValue { $0 } == 1)
        }
    }

    @Test func theDashboardHasNoExternalAssets() {
        let html = String(decoding: Dashboard.page, as: UTF8.self)
        #expect(!html.contains("src=\"http"), "no script or image from elsewhere")
        #expect(!html.contains("href=\"http"))
        #expect(!html.contains("innerHTML"), "names go in as text")
        #expect(!html.contains("insertAdjacentHTML") && !html.contains("document.write"))
    }

    @Test func aStuckClientDoesNotHoldUpOthers() throws {
        try withServer { port in
            // One client sends half a request and waits; another never reads its (large) answer.
            let silent = try Client(port: port)
            silent.send("GET /metr")
            let stuck = try Client(port: port, receiveBuffer: 4096)
            for _ in 0..<20 { stuck.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") }
            // Each answer must come within the client's receive timeout, while the others hang.
            for _ in 0..<5 { #expect(try get(port, "/api/v1/status").hasPrefix("HTTP/1.1 200 OK")) }
            _ = (silent, stuck)
        }
    }

    @Test func slowAndOversizedClientsAreCutOff() throws {
        var limits = ObservabilityServer.Limits()
        limits.idleTimeout = .milliseconds(300)
        limits.writeTimeout = .milliseconds(300)
        limits.requestTimeout = .milliseconds(800)
        limits.maximumConnections = 4
        try withServer(limits) { port in
            // Idle: closed after the idle timeout, without an answer.
            let idle = try Client(port: port)
            idle.send("GET /met")
            #expect(idle.readAll() == "")
            // A request trickled in a byte at a time (never idle for long): cut off at its deadline.
            let trickle = try Client(port: port)
            var refused = false
            for ch in "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + String(repeating: "a", count: 40) where !refused {
                refused = !trickle.trySend(String(ch))
                usleep(100_000)
            }
            #expect(refused, "the trickling client was not cut off")
            // A body over the limit: 413, and the connection closes.
            let big = try Client(port: port)
            big.send("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n" + String(repeating: "x", count: 20000))
            #expect(big.readAll().hasPrefix("HTTP/1.1 413 "))
            // Over the connection limit: closed on accept; the others are still served.
            var held = try (0..<4).map { _ in try Client(port: port) }
            let extra = try Client(port: port)
            #expect(extra.readAll() == "")
            // Once they go, new clients are served again.
            held.removeAll()
            var served = false
            for _ in 0..<50 where !served {
                served = (try? get(port, "/api/v1"))?.contains("\"paths\"") == true
                if !served { usleep(20_000) }
            }
            #expect(served)
        }
    }
}
