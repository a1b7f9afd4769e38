// The cost of health checking at scale: N real servers (default 1,000), each with a TCP_CHECK (or,
// with --http, an HTTP_GET with a digest) every second, on one event loop; the real servers are a
// separate python process on loopback, so the CPU measured (this process's user + system time) is
// the checker side only. Prints the CPU share of one core and the probes done; asserts no timing.
import Foundation
import HealthCheck
import LVSCore
import Logging
import NIOCore
import NIOPosix

let arguments = CommandLine.arguments
let count = arguments.firstIndex(of: "--servers").flatMap { Int(arguments[$0 + 1]) } ?? 1000
let seconds = arguments.firstIndex(of: "--seconds").flatMap { Double(arguments[$0 + 1]) } ?? 10
let http = arguments.contains("--http")
let basePort = 21000

var limit = rlimit()
getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
limit.rlim_cur = limit.rlim_max
setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)

// The real servers: one python process listening on `count` ports, answering HTTP and closing.
let servers = Process()
servers.executableURL = URL(fileURLWithPath: "/usr/bin/env")
servers.arguments = ["python3", "-c", """
    import selectors, socket, resource, sys
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sel = selectors.DefaultSelector()
    for p in range(\(basePort), \(basePort + count)):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p)); s.listen(64); s.setblocking(False); sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            try:
                c, _ = key.fileobj.accept()
                c.settimeout(0.2)
                try:
                    if c.recv(4096): c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n")
                except OSError: pass
                c.close()
            except OSError: pass
    """]
let pipe = Pipe()
servers.standardOutput = pipe
try servers.run()
guard String(decoding: pipe.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("ready") else {
    print("the real servers (python3) did not start")
    exit(1)
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
var logger = Logger(label: "bench")
logger.logLevel = .warning
let monitor = HealthMonitor(loop: group.next(), logger: logger)
let second: Instant = 1_000_000_000
let timing = CheckTiming(delayLoop: second, retry: 1, delayBeforeRetry: second, warmup: second, timeout: second)
let digest = MD5.hex(Array("ok\n".utf8))
var checkers: [HealthMonitor.Checker] = []
var healths: [ServiceHealth] = []
var names: [HealthMonitor.ServiceNames] = []
for i in 0..<count {
    let target = Endpoint(IPAddress("127.0.0.1")!, UInt16(basePort + i))
    let kind: ProbeSpec.Kind = http ? .http([HTTPExpectation(path: "/", digest: digest)], virtualhost: nil) : .tcp
    checkers.append(.init(service: i, server: 0, index: 0, spec: ProbeSpec(kind: kind, target: target), timing: timing,
                          alpha: false, identity: "\(i)", label: http ? "HTTP" : "TCP"))
    healths.append(ServiceHealth(servers: [.init(weight: 1, inhibitOnFailure: false, checkerCount: 1)]))
    names.append(.init(service: "vs\(i)", servers: ["rs\(i)"]))
}
let transitions = ManagedAtomicCounter()
_ = try monitor.start(services: healths, names: names, checkers: checkers, now: Instant(NIODeadline.now().uptimeNanoseconds)) { _, _ in
    transitions.add()
}.wait()

func cpu() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}
Thread.sleep(forTimeInterval: 2)  // past the warm-up spread
let c0 = cpu(), t0 = Date()
Thread.sleep(forTimeInterval: seconds)
let c1 = cpu(), t1 = Date()
let share = (c1 - c0) / t1.timeIntervalSince(t0) * 100
let health = try monitor.snapshot().wait()
let down = health.filter { !$0.servers[0].isUp }.count
print("\(count) real servers, \(http ? "HTTP_GET with digest" : "TCP_CHECK") every second for \(Int(seconds)) s on one event loop")
print(String(format: "checker CPU: %.1f %% of one core (target: under 20 %%: %.2fx of the budget)", share, share / 20))
print("real servers down at the end: \(down) (transitions reported: \(transitions.value))")
_ = try? monitor.stop().wait()
servers.terminate()
try? group.syncShutdownGracefully()

/// A counter bumped from the event loop and read at the end.
final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
