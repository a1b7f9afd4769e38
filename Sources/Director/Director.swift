import ControlAPI
import Dispatch
import Foundation
import HealthCheck
import KeepalivedConfig
import LVSCore
import LVSState
import LVSPacketEngine
import LVSProxyEngine
import LVSSync
import Logging
import NIOCore
import NIOPosix
import Observability
import VRRP

/// The director: owns the virtual server table, runs the forwarding engine (whose first worker keeps
/// the table's clocks: expiry, rates), applies keepalived.conf, and answers ipvsadm over the control
/// socket.
public final class Director: @unchecked Sendable {
    // @unchecked Sendable: the table is behind `state`'s lock; `control`, `controlPath`,
    // `configurationPath` and `appliedPlan` are only used on the control loop (`state.loop`).
    public let state: LoadBalancerState
    public let engine: ProxyEngine
    let logger: Logger
    let session: IPVSAdmSession
    private var control: Channel?
    private var controlPath: String?
    /// The keepalived.conf given with -f, and the table it asked for when last applied
    /// (only touched on the control loop).
    var configurationPath: String?
    var appliedPlan = TablePlan()
    /// The table the configuration asks for, before the checkers' view of it.
    var configuredPlan = TablePlan()
    var health: [ServiceHealth] = []
    /// The names and scripts that go with `health`.
    var roster: [Roster.Service] = []
    lazy var monitor = HealthMonitor(loop: state.loop, logger: logger) { [events] line in events.record(.health, line) }
    /// Table changes are applied one after the other (a reload and a checker may both want one).
    var applying: EventLoopFuture<Void>?
    /// With `--engine packet`: it forwards every service, and the proxy serves none.
    public private(set) var packetEngine: PacketEngine?
    /// The packet engine's rule and next-hop updates, one at a time (nft and netlink block).
    private let packetUpdates = DispatchQueue(label: "lvsd-packet-updates")
    /// VRRP (control loop only): the host running the instances, what it runs, the states it
    /// reported, the vrrp_script timers, the services ha_suspend withdraws while not master.
    var vrrp: VRRPHost?
    var vrrpPlan = VRRPPlan()
    var vrrpStates: [String: VRRPStateMachine.State] = [:]
    var vrrpChecks: [RepeatedTask] = []
    var suspendable: Set<VirtualService.Key> = []
    /// VRRP start and stop block (sockets, a priority-0 advert, addresses): off the loop.
    let vrrpQueue = DispatchQueue(label: "lvsd-vrrp")
    /// The sync daemons running, by state (control loop only).
    var syncRunning: [String: SyncDaemon] = [:]
    /// What happened, for the dashboard and /api/v1/events; configuration loads (control loop only).
    public let events = EventLog()
    var loads = DirectorView.Reloads()
    let startTime = Date().timeIntervalSince1970

    /// - Parameter loops: the worker event loops; the first also runs the control plane.
    public init(loops: [EventLoop], settings: IPVSSettings = IPVSSettings(), logger: Logger,
                session: IPVSAdmSession = IPVSAdmSession(), engineOptions: ProxyEngine.Options = ProxyEngine.Options()) {
        self.logger = logger
        self.session = session
        state = LoadBalancerState(loops: loops, ipvs: IPVS(settings: settings, now: Int64(NIODeadline.now().uptimeNanoseconds)))
        engine = ProxyEngine(state: state, logger: logger, options: engineOptions)
    }

    public var loop: EventLoop { state.loop }

    /// Hands forwarding to the packet engine (before any service is added).
    public func usePacketEngine(_ options: PacketEngine.Options) throws {
        let engine = try PacketEngine(state: state, logger: logger, options: options)
        engine.start()
        packetEngine = engine
        logger.info("packet engine started", metadata: ["interfaces": "\(options.interfaces.joined(separator: ","))"])
    }

    /// Whether the proxy engine is to listen for a service.
    func proxied(_ key: VirtualService.Key) -> Bool {
        packetEngine == nil && ProxyEngine.serves(key)
    }

    /// The table changed: the packet engine updates its rules and next hops (off the loop).
    func tableChanged() {
        guard let engine = packetEngine else { return }
        let logger = self.logger
        packetUpdates.async {
            do {
                try engine.tableChanged()
            } catch {
                logger.error("packet engine cannot follow the table", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Commands

    /// Runs an ipvsadm command line. A change that adds a virtual service the engine cannot listen on
    /// is refused as a whole with a clear error, and the table stays as it was and stays served: the
    /// command is first run on a copy, the listeners it needs are opened, and only then is it applied.
    public func execute(_ request: ControlRequest) -> EventLoopFuture<IPVSAdmOutput> {
        if let action = request.action {
            switch action {
            case "reload":
                return reload().map(\.output)
            case "status":
                return loop.submit {
                    IPVSAdmOutput(stdout: Director.statusText(self.vrrpStatus, running: self.vrrp != nil) + self.syncStatusText())
                }
            case "status-json":
                return loop.submit { IPVSAdmOutput(stdout: Director.statusJSON(self.vrrpStatus, sync: self.syncStatusJSON())) }
            default:
                return loop.makeSucceededFuture(IPVSAdmOutput(stderr: "lvsd: unknown request '\(action)'\n", exitCode: 2))
            }
        }
        return loop.flatSubmit {
            let s = self.state
            let now = s.now
            if !self.session.changesTable(request.argv) {
                // Listings format a copy, outside the lock.
                var copy = s.snapshot
                return s.loop.makeSucceededFuture(self.session.run(request.argv, stdin: request.stdin, on: &copy, now: now))
            }
            let wanted: Set<VirtualService.Key> = {
                var trial = s.snapshot
                _ = self.session.run(request.argv, stdin: request.stdin, on: &trial, now: now)
                return Set(trial.serviceSnapshots.map(\.config.key).filter(self.proxied))
            }()
            let missing = wanted.subtracting(self.engine.listeningKeys)
            return self.engine.listen(missing).map { failures in
                guard failures.isEmpty else {
                    self.engine.stopListening(missing.subtracting(failures.map(\.key)))
                    var output = IPVSAdmOutput(exitCode: 255)
                    for f in failures {
                        self.logger.error("cannot serve virtual service", metadata: ["vip": "\(f.key)", "error": "\(f.reason)"])
                        output.stderr += "lvsd: \(f)\n"
                    }
                    return output
                }
                var (output, keys) = s.withTable { table -> (IPVSAdmOutput, [VirtualService.Key]) in
                    let output = self.session.run(request.argv, stdin: request.stdin, on: &table, now: s.now)
                    return (output, table.serviceSnapshots.map(\.config.key))
                }
                self.engine.stopListening(self.engine.listeningKeys.subtracting(keys))
                self.tableChanged()
                if output.exitCode == 0 { self.events.record(.config, Director.commandEvent(request)) }
                let refused = self.reconcileSync()
                if !refused.isEmpty {
                    output.stderr += refused.map { "lvsd: \($0)\n" }.joined()
                    output.exitCode = 255
                }
                return output
            }
        }
    }

    /// How a table change from ipvsadm reads in the event log (a restore by its rule count).
    static func commandEvent(_ request: ControlRequest) -> String {
        let args = request.argv.dropFirst()
        if args.contains(where: { $0 == "-R" || $0 == "--restore" }) {
            let rules = request.stdin.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.count
            return "ipvsadm \(args.joined(separator: " ")) (\(rules) rule\(rules == 1 ? "" : "s"))"
        }
        return "ipvsadm \(args.joined(separator: " "))"
    }

    /// Applies an ipvsadm command line from code (demo set-up, tests); fails with its stderr.
    public func run(_ args: [String]) -> EventLoopFuture<IPVSAdmOutput> {
        execute(ControlRequest(argv: ["ipvsadm"] + args))
    }

    // MARK: Control socket

    /// Whether another lvsd answers on `path` (checked again when the socket is opened).
    public static func controlSocketInUse(_ path: String) -> Bool { ControlSocketFile.isAnswering(path) }

    public struct ControlSocketError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Listens for ipvsadm on a Unix socket (mode 0600). Refuses to take over a socket another lvsd is
    /// answering on; removes a stale one.
    public func serveControl(at path: String) -> EventLoopFuture<Void> {
        if ControlSocketFile.isAnswering(path) {
            return loop.makeFailedFuture(ControlSocketError(description: "another lvsd is already running on \(path)"))
        }
        ControlSocketFile.removeStale(path)
        let director = self
        let previousMask = ControlSocketFile.restrictUmask()
        let bound = ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ControlFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(ControlRequestHandler(director: director))
                }
            }
            .bind(unixDomainSocketPath: path)
        bound.whenComplete { _ in ControlSocketFile.restoreUmask(previousMask) }
        return bound.flatMap { channel in
            director.loop.submit {
                director.control = channel
                director.controlPath = path
                ControlSocketFile.makePrivate(path)
                director.logger.info("control socket ready", metadata: ["path": "\(path)"])
            }
        }
    }

    /// Stops listening everywhere and removes the control socket; relayed connections are closed by
    /// the event loop group's shutdown that follows. The real servers are announced as shutting
    /// down first (with `omega`, their notify_down and quorum_down scripts run, for a second at most).
    public func shutdown() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            let farewell = Roster.farewell(self.roster, health: self.health, next: nil)
            self.roster = []
            return self.announce(farewell, timeout: Director.shutdownScriptTimeout)
        }.flatMap {
            self.stopVRRP()
        }.flatMap {
            self.stopSync()
            if let packet = self.packetEngine {
                // Blocks for the packet thread to end and nft to remove the rules (well under a second).
                self.packetUpdates.sync { packet.stop() }
            }
            let closing = [self.engine.stop(), self.control?.close() ?? self.loop.makeSucceededVoidFuture(), self.monitor.stop()]
            if let path = self.controlPath { ControlSocketFile.removeStale(path) }
            return EventLoopFuture.andAllComplete(closing, on: self.loop)
        }
    }
}

