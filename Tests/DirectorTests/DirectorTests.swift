import ControlAPI
@testable import Director
import Foundation
import LVSCore
import LVSProxyEngine
import Logging
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The director end to end on loopback: real sockets through the proxy engine, driven with ipvsadm
/// command lines, checked with plain HTTP clients. Every loop is bounded; everything is closed.
@Suite(.serialized) struct DirectorTests {
    /// One HTTP/1.0 request to host:port (the answer's body), or nil if the connection failed.
    static func get(_ host: String, _ port: Int, from source: String? = nil) -> String? {
        guard let fd = connectedSocket(port, host: host, from: source) else { return nil }
        defer { close(fd) }
        let request = Array("GET / HTTP/1.0\r\nHost: test\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return nil }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[split.upperBound...])
    }

    /// A director on its own event loop, with real servers beside it.
    // @unchecked Sendable: used from the test's thread only; closures that capture it run while the
    // test waits for them.
    final class Harness: @unchecked Sendable {
        let group: MultiThreadedEventLoopGroup
        let director: Director
        var backends: [Channel] = []

        init(workers: Int = 1, options: ProxyEngine.Options = ProxyEngine.Options()) throws {
            group = MultiThreadedEventLoopGroup(numberOfThreads: workers)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            director = Director(loops: Array(group.makeIterator()), logger: logger, engineOptions: options)
        }

        /// A real server answering `body`, on 127.0.0.1 and a free port.
        func backend(_ body: String) throws -> Int {
            let channel = try DemoBackends.start(on: group, host: "127.0.0.1", port: 0, body: body).wait()
            backends.append(channel)
            return channel.localAddress!.port!
        }

        /// A real server on 127.0.0.1 and a free port, each connection served by a new `handler()`.
        func backend(halfClosure: Bool = false, _ handler: @escaping @Sendable () -> ChannelHandler) throws -> Int {
            let channel = try ServerBootstrap(group: group)
                .childChannelOption(.allowRemoteHalfClosure, value: halfClosure)
                .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler()) } }
                .bind(host: "127.0.0.1", port: 0).wait()
            backends.append(channel)
            return channel.localAddress!.port!
        }

        /// A new rr virtual service on 127.0.0.1 over one masqueraded real server; its port.
        func service(over port: Int, options: String = "") throws -> Int {
            let vip = DirectorTests.freePort()
            try ipvsadm("-A -t 127.0.0.1:\(vip) -s rr")
            try ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(port) -m" + options)
            return vip
        }

        @discardableResult
        func ipvsadm(_ line: String) throws -> IPVSAdmOutput {
            try director.run(line.split(separator: " ").map(String.init)).wait()
        }

        func stop() {
            try? director.shutdown().wait()
            for b in backends { try? b.close().wait() }
            try? group.syncShutdownGracefully()
        }
    }

    /// Sends one datagram from a fresh socket and returns the reply and the port it came from.
    static func udpExchange(_ host: String, _ port: Int, _ payload: String) -> (String, Int)? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let bytes = Array(payload.utf8)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard sent == bytes.count else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        var from = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = withUnsafeMutablePointer(to: &from) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
        }
        guard n > 0 else { return nil }
        return (String(decoding: buffer[0..<n], as: UTF8.self), Int(UInt16(bigEndian: from.sin_port)))
    }

    /// A UDP real server answering "<name>:<payload>".
    final class UDPEcho: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let name: String
        init(name: String) { self.name = name }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var envelope = unwrapInboundIn(data)
            let text = envelope.data.readString(length: envelope.data.readableBytes) ?? ""
            context.writeAndFlush(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress,
                                                                    data: ByteBuffer(string: "\(name):\(text)"))), promise: nil)
        }
    }

    @Test func udpServicesRelayDatagramsPerClientFlow() throws {
        let h = try Harness()
        defer { h.stop() }
        var ports: [Int] = []
        for name in ["u1", "u2"] {
            let channel = try DatagramBootstrap(group: h.group)
                .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(UDPEcho(name: name)) } }
                .bind(host: "127.0.0.1", port: 0).wait()
            h.backends.append(channel)
            ports.append(channel.localAddress!.port!)
        }
        let vip = DirectorTests.freePort()
        try h.ipvsadm("-A -u 127.0.0.1:\(vip) -s rr")
        for p in ports { try h.ipvsadm("-a -u 127.0.0.1:\(vip) -r 127.0.0.1:\(p) -m") }
        var answers: [String] = []
        for i in 0..<4 {
            guard let (reply, from) = DirectorTests.udpExchange("127.0.0.1", vip, "ping\(i)") else {
                Issue.record("no reply to datagram \(i)")
                return
            }
            #expect(from == vip)  // replies come from the VIP
            answers.append(reply)
        }
        #expect(answers == ["u2:ping0", "u1:ping1", "u2:ping2", "u1:ping3"])
        let listing = try h.ipvsadm("-Ln -u 127.0.0.1:\(vip)").stdout
        // UDP flows are always inactive, as in the kernel.
        #expect(listing.split(separator: "\n").filter { $0.contains("Masq    1      0          2") }.count == 2)
        let stats = try h.ipvsadm("-Ln --stats --exact -u 127.0.0.1:\(vip)").stdout.split(separator: "\n")[2]
            .split(separator: " ").map(String.init)
        #expect(stats[2] == "4" && stats[3] == "4" && stats[4] == "4")  // conns, in packets, out packets
    }

    /// A real server that expects a PROXY v2 header and answers with the addresses it carried.
    final class ProxyHeaderEcho: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var bytes: [UInt8] = []
        private var answered = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
            guard !answered, bytes.count >= 28 else { return }
            answered = true
            let ok = Array(bytes[0..<12]) == ProxyProtocolV2.signature && bytes[12] == 0x21 && bytes[13] == 0x11
            let src = "\(bytes[16]).\(bytes[17]).\(bytes[18]).\(bytes[19]):\(Int(bytes[24]) << 8 | Int(bytes[25]))"
            let dst = "\(bytes[20]).\(bytes[21]).\(bytes[22]).\(bytes[23]):\(Int(bytes[26]) << 8 | Int(bytes[27]))"
            let body = ok ? "proxy \(src) \(dst)\n" : "no header\n"
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.0 200 OK\r\n\r\n" + body))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    @Test func proxyProtocolTellsTheRealServerWhoTheClientIs() throws {
        let h = try Harness()
        defer { h.stop() }
        let vip = try h.service(over: h.backend { ProxyHeaderEcho() }, options: " --proxy-protocol")
        let answer = DirectorTests.get("127.0.0.1", vip, from: "127.0.0.7") ?? "-"
        #expect(answer.hasPrefix("proxy 127.0.0.7:") && answer.hasSuffix(" 127.0.0.1:\(vip)\n"), "\(answer)")
        #expect(try h.ipvsadm("-Sn").stdout.contains(" -m -w 1 --proxy-protocol\n"))
    }

    @Test func proxyProtocolHeaders() {
        let v4 = ProxyProtocolV2.header(source: Endpoint(IPAddress("192.168.0.5")!, 40000),
                                        destination: Endpoint(IPAddress("10.0.0.1")!, 80), protocol: .tcp)
        #expect(v4 == ProxyProtocolV2.signature + [0x21, 0x11, 0, 12, 192, 168, 0, 5, 10, 0, 0, 1, 0x9C, 0x40, 0, 80])
        let v6 = ProxyProtocolV2.header(source: Endpoint(IPAddress("2001:db8::5")!, 1), destination: Endpoint(IPAddress("2001:db8::1")!, 443),
                                        protocol: .udp)
        #expect(v6.count == 16 + 36)
        #expect(Array(v6[12..<16]) == [0x21, 0x22, 0, 36])
        #expect(Array(v6[16..<20]) == [0x20, 0x01, 0x0d, 0xb8])
    }

    /// A real server that answers a little and then resets the connection.
    final class Reset: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")))
                .flatMap { () -> EventLoopFuture<Void> in
                    // SO_LINGER 0: the close below is a reset, not an orderly FIN.
                    guard let provider = channel as? SocketOptionProvider else { return channel.eventLoop.makeSucceededVoidFuture() }
                    return provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                }
                .whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// A keep-alive client: one connection, one request at a time; nil once the connection is gone.
    final class KeepAliveClient {
        let fd: Int32
        init?(port: Int) {
            guard let fd = DirectorTests.connectedSocket(port) else { return nil }
            self.fd = fd
        }
        deinit { close(fd) }

        func request() -> String? {
            let text = Array("GET / HTTP/1.1\r\nHost: t\r\n\r\n".utf8)
            guard write(fd, text, text.count) == text.count else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { return nil }
            let reply = String(decoding: buffer[0..<n], as: UTF8.self)
            return reply.range(of: "\r\n\r\n").map { String(reply[$0.upperBound...]) }
        }
    }

    @Test func aRealServerGoingAwayClosesOnlyItsClientsConnection() throws {
        let h = try Harness()
        defer { h.stop() }
        let good = try h.backend("steady\n")
        let steadyVIP = try h.service(over: good)
        let flakyVIP = try h.service(over: h.backend { Reset() })
        let steady = try #require(KeepAliveClient(port: steadyVIP))
        #expect(steady.request() == "steady\n")
        let flaky = try #require(KeepAliveClient(port: flakyVIP))
        _ = flaky.request()
        #expect(flaky.request() == nil)  // its real server reset: this client's connection is closed
        #expect(steady.request() == "steady\n")  // the other client is untouched
        #expect(steady.request() == "steady\n")
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The seed's first experiment on loopback: two real servers, rr, four requests alternate, and the
    /// listing shows the table with the right counters.
    @Test func seedRoundRobinExperiment() throws {
        let h = try Harness()
        defer { h.stop() }
        let p1 = try h.backend("lvs01 host!\n")
        let p2 = try h.backend("lvs02 host!\n")
        let vip = DirectorTests.freePort()
        try h.ipvsadm("-A -t 127.0.0.1:\(vip) -s rr")
        try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(p1) -m")
        try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(p2) -m")
        let answers = (0..<4).map { _ in DirectorTests.get("127.0.0.1", vip) ?? "-" }
        #expect(answers == ["lvs02 host!\n", "lvs01 host!\n", "lvs02 host!\n", "lvs01 host!\n"])
        let (low, high) = (min(p1, p2), max(p1, p2))  // listed by address, then port
        // The last close may still be on its way through the relay: give it up to two seconds.
        var listing = ""
        for _ in 0..<20 {
            listing = try h.ipvsadm("-Ln").stdout
            if listing.contains("0          2         \n  -> 127.0.0.1:\(high)") && listing.hasSuffix("0          2         \n") { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(listing == """
            IP Virtual Server version 1.2.1 (size=4096)
            Prot LocalAddress:Port Scheduler Flags
              -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
            TCP  127.0.0.1:\(vip) rr
              -> \(ListingFormat.left("127.0.0.1:\(low)", 28)) Masq    1      0          2         
              -> \(ListingFormat.left("127.0.0.1:\(high)", 28)) Masq    1      0          2         

            """)
        let stats = try h.ipvsadm("-Ln --stats -t 127.0.0.1:\(vip)").stdout
        #expect(stats.contains("TCP  127.0.0.1:\(vip)"))
        // Each connection ends as the kernel's would: both sides closed in order, TIME_WAIT.
        var entries: [Substring] = []
        for _ in 0..<20 {
            entries = try h.ipvsadm("-Lnc").stdout.split(separator: "\n").dropFirst(2).map { $0 }
            if entries.count == 4 && entries.allSatisfy({ $0.contains("TIME_WAIT") }) { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(entries.count == 4 && entries.allSatisfy { $0.contains("TIME_WAIT") }, "\(entries)")
    }

    /// The view the metrics and the dashboard show is the table's, and ipvsadm's changes are in the
    /// event log (a bad command is not).
    @Test func theObservedViewIsTheTable() throws {
        let h = try Harness()
        defer { h.stop() }
        let p1 = try h.backend("one\n")
        let vip = try h.service(over: p1)
        for _ in 0..<3 { _ = DirectorTests.get("127.0.0.1", vip) }
        _ = try? h.ipvsadm("-a -t 127.0.0.1:\(vip) -r nowhere")
        let view = try h.director.view().wait()
        #expect(view.engine == "proxy")
        #expect(view.services.count == 1 && view.services[0].servers.count == 1)
        #expect(view.services[0].totals.connections == 3)
        #expect(view.totals.totals.connections == 3)
        #expect(view.connectionEntries >= 3)
        let (total, page) = try h.director.connections(offset: 1, limit: 10).wait()
        #expect(total == view.connectionEntries && page.count == total - 1)
        let events = h.director.events.events().events.map(\.message)
        #expect(events == ["ipvsadm -A -t 127.0.0.1:\(vip) -s rr", "ipvsadm -a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(p1) -m"])
        #expect(Director.commandEvent(ControlRequest(argv: ["ipvsadm", "-R"], stdin: "-A -t 1.2.3.4:80\n\n-a -t 1.2.3.4:80 -r 5.6.7.8\n"))
            == "ipvsadm -R (2 rules)")
    }

    /// One table whatever the number of event loops: the kernel's proportions hold across loops.
    @Test(arguments: [1, 2])
    func weightedRoundRobinLandsFourThreeTwo(workers: Int) throws {
        let h = try Harness(workers: workers)
        defer { h.stop() }
        let ports = try ["a\n", "b\n", "c\n"].map { try h.backend($0) }
        let vip = DirectorTests.freePort()
        try h.ipvsadm("-A -t 127.0.0.1:\(vip) -s wrr")
        for (port, weight) in zip(ports, [4, 3, 2]) { try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(port) -m -w \(weight)") }
        var counts: [String: Int] = [:]
        for _ in 0..<900 { counts[DirectorTests.get("127.0.0.1", vip) ?? "-", default: 0] += 1 }
        #expect(counts == ["a\n": 400, "b\n": 300, "c\n": 200])
        let stats = try h.ipvsadm("-Ln --stats --exact -t 127.0.0.1:\(vip)").stdout
        #expect(stats.split(separator: "\n")[2].split(separator: " ")[2] == "900")
    }

    /// A burst of connections opened at once (a client's keep-alive pool) is served evenly by the
    /// relay threads, whichever of them the kernel woke to accept it; closed, they are uncounted.
    @Test func aBurstOfConnectionsIsSpreadOverTheRelayThreads() throws {
        let h = try Harness(workers: 2)
        defer { h.stop() }
        let vip = try h.service(over: try h.backend("x\n"))
        let clients = (0..<40).compactMap { _ in DirectorTests.connectedSocket(vip) }
        #expect(clients.count == 40)
        var loads = h.director.engine.relayLoads
        for _ in 0..<200 where loads.reduce(0, +) != clients.count {
            usleep(10_000)
            loads = h.director.engine.relayLoads
        }
        #expect(loads.reduce(0, +) == clients.count)
        #expect(loads.allSatisfy { abs($0 - clients.count / 2) <= 1 }, "loads \(loads)")
        for fd in clients { close(fd) }
        for _ in 0..<200 where h.director.engine.relayLoads.reduce(0, +) != 0 { usleep(10_000) }
        #expect(h.director.engine.relayLoads == [0, 0])
    }

    @Test(arguments: [1, 2])
    func persistenceKeepsAClientOnOneServer(workers: Int) throws {
        let h = try Harness(workers: workers)
        defer { h.stop() }
        let ports = try ["a\n", "b\n", "c\n"].map { try h.backend($0) }
        let vip = DirectorTests.freePort()
        try h.ipvsadm("-A -t 127.0.0.1:\(vip) -s rr -p 60")
        for port in ports { try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(port) -m") }
        let fromA = Set((0..<6).map { _ in DirectorTests.get("127.0.0.1", vip, from: "127.0.0.11") ?? "-" })
        let fromB = Set((0..<6).map { _ in DirectorTests.get("127.0.0.1", vip, from: "127.0.0.12") ?? "-" })
        #expect(fromA.count == 1 && !fromA.contains("-"))
        #expect(fromB.count == 1 && !fromB.contains("-"))
        #expect(fromA != fromB)
        let persistent = try h.ipvsadm("-Ln --persistent-conn").stdout
        #expect(persistent.split(separator: "\n").filter { $0.contains("->") && $0.contains(" 1 ") }.count >= 2)
    }

    @Test func aRealServerThatRefusesIsRetriedElsewhere() throws {
        let h = try Harness()
        defer { h.stop() }
        let good = try h.backend("good\n")
        let dead = DirectorTests.freePort()
        let vip = DirectorTests.freePort()
        try h.ipvsadm("-A -t 127.0.0.1:\(vip) -s rr")
        try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(good) -m")
        try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(dead) -m")
        for _ in 0..<4 { #expect(DirectorTests.get("127.0.0.1", vip) == "good\n") }
        // rr comes back to the dead server every other time; each time the connection moves on.
        let failures = h.director.state.realServerFailures
        #expect(failures == 4)
    }

    @Test func servicesThatCannotBeServedAreRefusedAndTheRestKeepsWorking() throws {
        let h = try Harness()
        defer { h.stop() }
        let backend = try h.backend("ok\n")
        let vip = DirectorTests.freePort()
        try h.ipvsadm("-A -t 127.0.0.1:\(vip) -s rr")
        try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(backend) -m")
        let before = try h.ipvsadm("-Sn").stdout
        // Not a local address, and a port in use: each fails with a clear error, nothing changes.
        let notLocal = try h.ipvsadm("-A -t 192.0.2.1:80 -s rr")
        #expect(notLocal.exitCode == 255)
        #expect(notLocal.stderr == "lvsd: cannot listen on TCP 192.0.2.1:80: Cannot assign requested address\n")
        let inUse = try h.ipvsadm("-A -t 127.0.0.1:\(backend) -s rr")
        #expect(inUse.stderr == "lvsd: cannot listen on TCP 127.0.0.1:\(backend): Address already in use\n")
        #expect(try h.ipvsadm("-Sn").stdout == before)
        #expect(DirectorTests.get("127.0.0.1", vip) == "ok\n")
        // ipvsadm's own errors come back unchanged.
        let bad = try h.ipvsadm("-A -t 127.0.0.1:\(vip) -s rr")
        #expect(bad.stderr == "Service already exists\n" && bad.exitCode == 255)
        // Deleting the service stops listening.
        try h.ipvsadm("-D -t 127.0.0.1:\(vip)")
        #expect(DirectorTests.get("127.0.0.1", vip) == nil)
    }

    @Test func controlSocketAnswersIpvsadmAndSurvivesGarbage() throws {
        let h = try Harness()
        defer { h.stop() }
        let path = NSTemporaryDirectory() + "lvsd-test-\(getpid()).sock"
        try h.director.serveControl(at: path).wait()
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        // A second director on the same socket refuses to start.
        let other = try Harness()
        defer { other.stop() }
        #expect(throws: (any Error).self) { try other.director.serveControl(at: path).wait() }
        // Garbage and an oversized frame only lose their own connection.
        for junk in [[UInt8](repeating: 0xFF, count: 64), ControlFraming.frame(Array("not json".utf8))] {
            guard case .success(let fd) = UnixSocket.connect(path) else {
                Issue.record("cannot connect to \(path)")
                return
            }
            _ = write(fd, junk, junk.count)
            var buffer = [UInt8](repeating: 0, count: 16)
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            #expect(read(fd, &buffer, 16) <= 0)
            close(fd)
        }
        let answer = try ControlClient.send(ControlRequest(argv: ["ipvsadm", "-A", "-t", "192.0.2.1:80", "-s", "rr"]), to: path)
        #expect(answer.exitCode == 255)
        let list = try ControlClient.send(ControlRequest(argv: ["ipvsadm", "-L", "--timeout"]), to: path)
        #expect(list == IPVSAdmOutput(stdout: "Timeout (tcp tcpfin udp): 900 120 300\n"))
        try h.director.shutdown().wait()
        #expect(access(path, F_OK) != 0)
    }

    // MARK: The TCP relay's edges

    /// A real server that reads its client's whole request, up to the client's FIN, and only then
    /// answers with the number of bytes it got.
    final class UntilEnd: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var received = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) { received += unwrapInboundIn(data).readableBytes }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard let e = event as? ChannelEvent, e == .inputClosed else { return }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "got \(received)\n"))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    /// A plain client socket connected to host:port (from `source` when given), with a receive
    /// timeout.
    static func connectedSocket(_ port: Int, host: String = "127.0.0.1", from source: String? = nil) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            _ = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if ok != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    /// Everything the socket sends until its end (or the timeout).
    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { return out }
            out += chunk[0..<n]
        }
    }

    @Test func aClientsHalfCloseReachesTheRealServerAndTheAnswerComesBack() throws {
        let h = try Harness()
        defer { h.stop() }
        let vip = try h.service(over: h.backend(halfClosure: true) { UntilEnd() })
        let fd = try #require(DirectorTests.connectedSocket(vip))
        defer { close(fd) }
        let request = [UInt8](repeating: 0x61, count: 100_000)
        #expect(write(fd, request, request.count) == request.count)
        shutdown(fd, Int32(SHUT_WR))  // the real server answers only once it sees this
        #expect(String(decoding: DirectorTests.readAll(fd), as: UTF8.self) == "got 100000\n")
    }

    /// A real server that sends `chunks` MiB of a known pattern, then closes. Each MiB is the same
    /// pattern behind its own number, so a lost, repeated or reordered piece shows.
    final class Flood: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        static let pattern: [UInt8] = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        static func chunk(_ k: Int) -> [UInt8] {
            var bytes = pattern
            withUnsafeBytes(of: UInt64(k).bigEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
            return bytes
        }
        let chunks: Int
        init(chunks: Int) { self.chunks = chunks }

        func channelActive(context: ChannelHandlerContext) {
            var last: EventLoopFuture<Void>?
            for k in 0..<chunks { last = context.write(wrapOutboundOut(ByteBuffer(bytes: Flood.chunk(k)))) }
            context.flush()
            let channel = context.channel
            last?.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    @Test func aSlowReaderGetsEveryByteInOrderAndTheRelayHoldsOnlyWhatItMust() throws {
        let h = try Harness()
        defer { h.stop() }
        let chunks = 16
        let size = chunks << 20
        let vip = try h.service(over: h.backend { Flood(chunks: chunks) })
        let fd = try #require(DirectorTests.connectedSocket(vip))
        defer { close(fd) }
        // Not reading for a while fills every buffer on the way: the relay must stop reading the real
        // server (back-pressure) rather than take the whole transfer in. (However busy the machine:
        // wait for the relay to start, then give it time to take more than it should.)
        func relayedBytes() throws -> Int {
            Int(try h.ipvsadm("-Ln --stats --exact").stdout.split(separator: "\n")[3].split(separator: " ")[6]) ?? -1
        }
        var waits = 0
        while try relayedBytes() <= 0, waits < 100 {
            Thread.sleep(forTimeInterval: 0.05)
            waits += 1
        }
        Thread.sleep(forTimeInterval: 0.3)
        let early = try relayedBytes()
        #expect(early > 0 && early < size, "\(early) bytes relayed before the client read any")
        let got = DirectorTests.readAll(fd)
        #expect(got.count == size)
        let wrong = (0..<chunks).first { k in got.count < (k + 1) << 20 || Array(got[(k << 20)..<((k + 1) << 20)]) != Flood.chunk(k) }
        #expect(wrong == nil, "MiB \(wrong ?? -1) differs")
        #expect(try relayedBytes() >= size)  // OutBytes counts what was relayed
    }

    @Test func aRealServerThatNeverAnswersIsGivenUpAfterTheTimeoutAndTheConnectionMovesOn() throws {
        let h = try Harness(options: ProxyEngine.Options(connectTimeout: .milliseconds(300)))
        defer { h.stop() }
        let good = try h.backend("good\n")
        // A listener whose accept queue is full: the kernel drops further SYNs, so connects hang.
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(silent) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(silent, $0, length); return getsockname(silent, $0, &length) }
        }
        listen(silent, 0)
        let silentPort = Int(UInt16(bigEndian: address.sin_port))
        let filler = try #require(DirectorTests.connectedSocket(silentPort))
        defer { close(filler) }
        let vip = DirectorTests.freePort()
        try h.ipvsadm("-A -t 127.0.0.1:\(vip) -s rr")
        try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(good) -m")
        try h.ipvsadm("-a -t 127.0.0.1:\(vip) -r 127.0.0.1:\(silentPort) -m")
        // rr tries the silent server first (the newest is at the head of the list), gives up on it
        // after 300 ms and goes to the other one.
        #expect(DirectorTests.get("127.0.0.1", vip) == "good\n")
        #expect(DirectorTests.get("127.0.0.1", vip) == "good\n")
        // rr comes back to the silent server for the second connection too; each time it moves on.
        #expect(h.director.state.realServerFailures == 2)
    }

    @Test func anIdleConnectionEndsWithItsTableEntry() throws {
        signal(SIGPIPE, SIG_IGN)  // the client below writes to a connection the relay has reset
        let h = try Harness()
        defer { h.stop() }
        try h.ipvsadm("--set 1 1 1")  // established connections time out after one idle second
        let vip = try h.service(over: h.backend("alive\n"))
        let client = try #require(KeepAliveClient(port: vip))
        #expect(client.request() == "alive\n")
        Thread.sleep(forTimeInterval: 0.4)
        #expect(client.request() == "alive\n")  // each request renews the entry
        Thread.sleep(forTimeInterval: 2)
        #expect(client.request() == nil)  // the entry expired and took the relayed connection with it
        #expect(try h.ipvsadm("-Lnc").stdout.split(separator: "\n").count == 2)  // headers only
    }
}
