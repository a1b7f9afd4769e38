// lvsd, the SwiftLVS director daemon: argument parsing and wiring only.
import ControlAPI
import Director
import Dispatch
import Foundation
import KeepalivedConfig
import LVSPacketEngine
import LVSProxyEngine
import LinuxNet
import Logging
import NIOCore
import NIOPosix
import Observability

#if canImport(Glibc)
import Glibc
#endif

let usage = """
    Usage: lvsd [options]
           lvsd demo          three demo real servers and a wrr service on 127.0.0.1:8080
           lvsd reload        have the running lvsd read its configuration file again (as SIGHUP)
           lvsd status [--json]
                              the running lvsd's VRRP instances: state, priority (effective and
                              configured), master, advert interval, transitions and counters
           lvsd realserver start|stop|run ...
                              a DR/TUN real server's set-up (lvsd realserver --help)
    Options:
      -f, --use-file PATH     keepalived configuration file (keepalived.conf); SIGHUP reloads it.
                              Without -f: $LVSD_CONFIG if set (empty: none), else
                              /etc/keepalived/keepalived.conf, else /etc/swiftlvs/keepalived.conf,
                              whichever exists; with none, the table is driven by ipvsadm alone
      -t, --config-test[=PATH]
                              check the configuration (-f, or PATH, or
                              /etc/keepalived/keepalived.conf), print what is wrong, exit 0 if valid
          --dump-config       print the configuration as understood (after include and macro
                              expansion) and the table it asks for, then exit
      -i, --config-id ID      the id `@ID` lines are matched against (default: short host name)
          --engine NAME       proxy (default), packet or kernel
          --interface IF[,IF...]
                              packet engine: the interfaces whose traffic it forwards (clients'
                              side, and the real servers' side for NAT replies)
          --packet-nice N     packet engine: the packet thread's nice value (default 0)
          --packet-threads N  packet engine: threads forwarding (each interface's flows spread over
                              them; default 1)
          --packet-poll-us N  packet engine: after traffic, poll the sockets for N microseconds
                              before sleeping (default 30, or 200 with --packet-offload off;
                              0 sleeps at once)
          --packet-offload on|off|N
                              packet engine: hand established connections to an eBPF program on
                              the interfaces that forwards their plain segments in the kernel
                              (on, the default; N: once the engine has seen N client packets of
                              a connection; off: every packet through the engine)
          --http ADDR:PORT    serve /metrics (Prometheus), /api/v1 (JSON) and the dashboard (/)
                              on ADDR:PORT, read-only (e.g. 127.0.0.1:9180; [::1]:9180)
          --control PATH      control socket (also LVSD_SOCKET; default /run/lvsd.sock as root,
                              otherwise $XDG_RUNTIME_DIR/lvsd.sock or /tmp/lvsd-UID.sock)
      -n, --dont-fork         stay in the foreground (lvsd always does)
      -l, --log-console       log to the console (stderr; lvsd always does)
      -D, --log-detail        detailed logging
      -S, --log-facility N    also log to syslog (/dev/log), facility LOCAL0..LOCAL7 (N 0-7)
          --workers N         relay threads and event loops serving connections (default 1)
          --relay-scheduling batch|normal
                              scheduling policy of the relay threads (batch: SCHED_BATCH, a relay
                              woken by traffic does not preempt the running thread; default batch
                              with one worker, normal with several)
      -h, --help              this text
      -v, --version           version

    """

func fail(_ message: String, code: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data("lvsd: \(message)\n".utf8))
    exit(code)
}

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "realserver" {
    realServerCommand(Array(CommandLine.arguments.dropFirst(2)))
}

var configFile: String?
var configTest = false
var dumpConfig = false
var reloadRequest = false
var statusRequest: String?
var configID: String?
var engineName = "proxy"
var interfaces: [String] = []
var packetNice: Int32 = 0
var packetPoll: Int?
var packetThreads = 1
var packetOffload: UInt32? = 0
var controlPath: String?
var httpAddress: (host: String, port: Int)?
var detail = false
var syslogFacility: Int?
var demo = false
var workers = 1
var engineOptions = ProxyEngine.Options()
var args = Array(CommandLine.arguments.dropFirst())[...]
@MainActor
func value(_ option: String) -> String {
    guard let v = args.popFirst() else { fail("option \(option) needs a value") }
    return v
}
while let arg = args.popFirst() {
    var name = arg
    var inline: String?
    if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") {
        name = String(arg[..<eq])
        inline = String(arg[arg.index(after: eq)...])
    }
    switch name {
    case "-f", "--use-file": configFile = inline ?? value(name)
    case "-t", "--config-test":
        configTest = true
        if let inline { configFile = inline }
    case "--dump-config": dumpConfig = true
    case "-i", "--config-id": configID = inline ?? value(name)
    case "reload": reloadRequest = true
    case "status": statusRequest = "status"
    case "--json" where statusRequest != nil: statusRequest = "status-json"
    case "--engine": engineName = inline ?? value(name)
    case "--control": controlPath = inline ?? value(name)
    case "--http":
        let text = inline ?? value(name)
        guard let address = HTTPAddress.parse(text) else { fail("--http takes ADDR:PORT (127.0.0.1:9180, [::1]:9180), not '\(text)'") }
        httpAddress = address
    case "--interface", "-I": interfaces += (inline ?? value(name)).split(separator: ",").map(String.init)
    case "--packet-nice":
        guard let n = Int32(inline ?? value(name)), (-20...19).contains(n) else { fail("--packet-nice takes a number from -20 to 19") }
        packetNice = n
    case "--packet-threads":
        guard let n = Int(inline ?? value(name)), (1...64).contains(n) else { fail("--packet-threads takes a number from 1 to 64") }
        packetThreads = n
    case "--packet-poll-us":
        guard let n = Int(inline ?? value(name)), (0...100_000).contains(n) else { fail("--packet-poll-us takes a number from 0 to 100000") }
        packetPoll = n
    case "--packet-offload":
        switch inline ?? value(name) {
        case "on": packetOffload = 0
        case "off": packetOffload = nil
        case let text:
            guard let n = UInt32(text), n <= 1_000_000 else { fail("--packet-offload takes on, off or a number of packets") }
            packetOffload = n
        }
    case "-n", "--dont-fork", "-l", "--log-console": break
    case "-D", "--log-detail": detail = true
    case "-S", "--log-facility":
        guard let n = Int(inline ?? value(name)), (0...7).contains(n) else { fail("--log-facility takes a number from 0 to 7 (LOCAL0 to LOCAL7)") }
        syslogFacility = n
    case "--workers":
        guard let n = Int(inline ?? value(name)), n >= 1, n <= 64 else { fail("--workers takes a number from 1 to 64") }
        workers = n
    case "--relay-scheduling":
        switch inline ?? value(name) {
        case "batch": engineOptions.batchScheduling = true
        case "normal": engineOptions.batchScheduling = false
        default: fail("--relay-scheduling takes batch or normal")
        }
    case "demo", "--demo": demo = true
    case "-h", "--help":
        print(usage, terminator: "")
        exit(0)
    case "-v", "--version":
        print("lvsd (SwiftLVS) 0.1")
        exit(0)
    default: fail("unknown option \(arg)\n\(usage)")
    }
}

if reloadRequest || statusRequest != nil {
    let socket = controlPath ?? ControlSocketPath.resolve()
    do {
        let output = try ControlClient.send(reloadRequest ? ControlRequest.reload : ControlRequest(argv: [], action: statusRequest), to: socket)
        FileHandle.standardOutput.write(Data(output.stdout.utf8))
        FileHandle.standardError.write(Data(output.stderr.utf8))
        exit(output.exitCode)
    } catch {
        fail("cannot reach lvsd on \(socket): \(error)", code: 1)
    }
}

if configTest || dumpConfig {
    // keepalived's -t: findings on stderr in its words, exit 0 only for a file with none.
    let file = configFile ?? DefaultConfiguration.find(environment: ProcessInfo.processInfo.environment) ?? DefaultConfiguration.paths[0]
    var environment = HostFacts.environment
    if let configID { environment.configID = configID }
    let loaded = KeepalivedConfiguration.load(file, fileSystem: DiskConfigFiles(), environment: environment)
    if dumpConfig {
        FileHandle.standardOutput.write(Data(ConfigurationDump.text(of: loaded).utf8))
        exit(loaded.hasErrors ? 1 : 0)
    }
    FileHandle.standardError.write(Data(loaded.diagnostics.map { "\($0)\n" }.joined().utf8))
    exit(loaded.exitCode)
}
switch engineName {
case "proxy": break
case "packet": if interfaces.isEmpty { fail("--engine packet needs --interface IF[,IF...]") }
case "kernel": fail("the kernel engine is not available in this build (use --engine proxy or packet)")
default: fail("unknown engine \(engineName) (proxy, packet or kernel)")
}

let logLevel: Logger.Level = detail ? .debug : .info
// Under systemd, stderr is the journal: levels as <N> prefixes, no second timestamp.
let toJournal = JournalLogHandler.standardErrorIsTheJournal()
let syslogLocal = syslogFacility
LoggingSystem.bootstrap { label in
    var console: LogHandler
    if toJournal {
        console = JournalLogHandler()
    } else {
        console = StreamLogHandler.standardError(label: label)
    }
    console.logLevel = logLevel
    guard let syslogLocal else { return console }
    var syslog = SyslogLogHandler(local: syslogLocal)
    syslog.logLevel = logLevel
    return MultiplexLogHandler([console, syslog])
}
if configFile == nil && !demo {
    configFile = DefaultConfiguration.find(environment: ProcessInfo.processInfo.environment)
}
let logger = Logger(label: "lvsd")

let path = controlPath ?? ControlSocketPath.resolve()
let group = MultiThreadedEventLoopGroup(numberOfThreads: workers)
let names = FileNames()
// --start-daemon checks its interface and sizes a backup's messages by the interface's MTU.
let interfaceMTU: @Sendable (String) -> Int? = { name in
    guard let index = interfaceIndex(name) else { return nil }
    return (try? RouteNetlink().link(index).mtu) ?? 1500
}
let director = Director(loops: Array(group.makeIterator()), logger: logger,
                        session: IPVSAdmSession(resolver: names, names: names, interfaceMTU: interfaceMTU), engineOptions: engineOptions)
// A second lvsd must stop before its packet engine would replace the running one's interception
// rules; the packet engine is in place before the control socket takes commands.
if Director.controlSocketInUse(path) { fail("another lvsd is already running on \(path)", code: 1) }
if engineName == "packet" {
    do {
        var options = PacketEngine.Options(interfaces: interfaces)
        options.niceValue = packetNice
        if let packetPoll { options.pollMicroseconds = packetPoll }
        options.threads = packetThreads
        options.offload = packetOffload != nil
        options.offloadAfterPackets = packetOffload ?? 0
        try director.usePacketEngine(options)
    } catch {
        fail("\(error)", code: 1)
    }
}
do {
    try director.serveControl(at: path).wait()
} catch {
    director.packetEngine?.stop()
    fail("\(error)", code: 1)
}
logger.info("lvsd started", metadata: ["engine": "\(engineName)", "control": "\(path)", "workers": "\(workers)"])

// The observability endpoint has its own event loop: its clients never wait on the control loop's
// work, nor it on theirs.
var observability: ObservabilityServer?
if let httpAddress {
    let httpGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = ObservabilityServer(group: httpGroup, source: director, logger: logger)
    do {
        let bound = try server.start(host: httpAddress.host, port: httpAddress.port).wait()
        logger.info("HTTP endpoint ready", metadata: ["address": "\(bound)", "paths": "/ /metrics /api/v1"])
        observability = server
    } catch {
        try? director.shutdown().wait()
        fail("--http \(httpAddress.host):\(httpAddress.port): \(error)", code: 1)
    }
}

if let configFile {
    var environment = HostFacts.environment
    if let configID { environment.configID = configID }
    do {
        let outcome = try director.loadConfiguration(configFile, initial: true, environment: environment).wait()
        if !outcome.applied {
            // Nothing was served yet: give the control socket back before saying why.
            try? director.shutdown().wait()
            fail("\(configFile): \(outcome.failures.joined(separator: "; "))", code: 1)
        }
        logger.info("configuration applied", metadata: ["config": "\(configFile)", "changes": "\(outcome.changes.count)"])
    } catch {
        fail("\(configFile): \(error)", code: 1)
    }
}

if demo {
    let servers = [("127.0.0.1", 18181, "rs1 host!\n", 3), ("127.0.0.1", 18182, "rs2 host!\n", 2), ("127.0.0.1", 18183, "rs3 host!\n", 1)]
    do {
        for (host, port, body, _) in servers {
            _ = try DemoBackends.start(on: group, host: host, port: port, body: body).wait()
        }
        var commands = [["-A", "-t", "127.0.0.1:8080", "-s", "wrr"]]
        for (host, port, _, weight) in servers {
            commands.append(["-a", "-t", "127.0.0.1:8080", "-r", "\(host):\(port)", "-m", "-w", "\(weight)"])
        }
        for c in commands {
            let out = try director.run(c).wait()
            if out.exitCode != 0 { fail("demo set-up (ipvsadm \(c.joined(separator: " "))): \(out.stderr)", code: 1) }
        }
    } catch {
        fail("demo set-up: \(error)", code: 1)
    }
    let socketHint = controlPath == nil ? "" : "LVSD_SOCKET=\(path) "
    let dashboardHint = httpAddress.map { a in
        let host = a.host.contains(":") ? "[\(a.host)]" : a.host
        return "\n  open http://\(host):\(a.port)/ (the dashboard; metrics on /metrics)"
    } ?? ""
    print("""
        SwiftLVS demo: a wrr virtual service on 127.0.0.1:8080 over three real servers (weights 3:2:1).
        Try, in another terminal:
          curl http://127.0.0.1:8080/
          \(socketHint)swift run ipvsadm -Ln\(dashboardHint)
        Stop with Ctrl-C.
        """)
    fflush(nil)  // flush stdout even when it is a file or a pipe
}

// SIGINT/SIGTERM: stop listening, remove the control socket, close connections, exit.
var signalSources: [DispatchSourceSignal] = []
for sig in [SIGINT, SIGTERM] {
    signal(sig, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
    source.setEventHandler {
        logger.info("stopping", metadata: ["signal": "\(sig)"])
        SystemdNotify.send("STOPPING=1")
        _ = observability?.stop()
        director.shutdown().whenComplete { _ in
            // Not from the event loop itself: hand the group's shutdown to the main queue.
            DispatchQueue.main.async {
                group.shutdownGracefully { _ in exit(0) }
            }
        }
    }
    source.resume()
    signalSources.append(source)
}
// SIGHUP: read the configuration file again and apply only what changed (keepalived's reload).
signal(SIGHUP, SIG_IGN)
let hangUp = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .main)
hangUp.setEventHandler {
    SystemdNotify.send("RELOADING=1")
    director.reload().whenComplete { result in
        SystemdNotify.send("READY=1")
        if case .success(let outcome) = result, outcome.applied {
            logger.info("configuration reloaded", metadata: ["changes": "\(outcome.changes.count)"])
        }
    }
}
hangUp.resume()
signalSources.append(hangUp)
SystemdNotify.send("READY=1\nSTATUS=serving")
dispatchMain()
