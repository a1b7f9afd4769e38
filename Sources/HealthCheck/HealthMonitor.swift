import LVSCore
import Logging
import NIOCore

/// Runs the checkers of a set of virtual services on one event loop: each probes on its own
/// schedule (`CheckerState`), at most `maximumInFlight` at a time (the rest wait their turn), and
/// every change of a real server or of a service's quorum is handed to `report`, with keepalived's
/// log lines, once per change (never per probe).
public final class HealthMonitor: @unchecked Sendable {
    // @unchecked Sendable: every stored property is only used on `loop` (all entry points hop there).

    /// One checker of one real server of one service.
    public struct Checker: Sendable {
        public var service: Int
        public var server: Int
        public var index: Int
        public var spec: ProbeSpec
        public var timing: CheckTiming
        public var alpha: Bool
        /// Stays the same across reloads for the same checker (its state is carried over).
        public var identity: String
        /// keepalived's name for the checker in log lines (`TCP`, `HTTP`, ...).
        public var label: String

        public init(service: Int, server: Int, index: Int, spec: ProbeSpec, timing: CheckTiming, alpha: Bool, identity: String, label: String) {
            self.service = service
            self.server = server
            self.index = index
            self.spec = spec
            self.timing = timing
            self.alpha = alpha
            self.identity = identity
            self.label = label
        }
    }

    /// What a service looks like to the log: its name and its servers' names.
    public struct ServiceNames: Sendable {
        public var service: String
        public var servers: [String]

        public init(service: String, servers: [String]) {
            self.service = service
            self.servers = servers
        }
    }

    public let loop: EventLoop
    let logger: Logger
    let maximumInFlight: Int
    private var checkers: [Checker] = []
    private var states: [CheckerState] = []
    public private(set) var services: [ServiceHealth] = []
    private var names: [ServiceNames] = []
    private var timers: [Scheduled<Void>?] = []
    private var waiting: [Int] = []
    private var inFlight = 0
    private var generation = 0
    private var random: UInt64 = 0x9E37_79B9_7F4A_7C15
    private var report: @Sendable (Int, [ServiceHealth.Action]) -> Void = { _, _ in }
    /// Gets each transition's log line too (the director's event log).
    let note: @Sendable (String) -> Void

    public init(loop: EventLoop, logger: Logger, maximumInFlight: Int = 256, note: @escaping @Sendable (String) -> Void = { _ in }) {
        self.loop = loop
        self.logger = logger
        self.maximumInFlight = maximumInFlight
        self.note = note
    }

    private func tell(_ line: String, reason: String? = nil) {
        if let reason {
            logger.info("\(line)", metadata: ["reason": "\(reason)"])
            note("\(line) (\(reason))")
        } else {
            logger.info("\(line)")
            note(line)
        }
    }

    /// Replaces what is checked. A checker with the same identity as a running one keeps its state
    /// (a real server that is down stays down across a reload), as does a service's quorum.
    /// Returns, on the loop, the services' health as it starts.
    public func start(services: [ServiceHealth], names: [ServiceNames], checkers: [Checker], now: Instant,
                      report: @escaping @Sendable (Int, [ServiceHealth.Action]) -> Void) -> EventLoopFuture<[ServiceHealth]> {
        loop.submit {
            var previous: [String: CheckerState] = [:]
            for (c, s) in zip(self.checkers, self.states) { previous[c.identity] = s }
            self.stopTimers()
            self.generation += 1
            self.checkers = checkers
            self.names = names
            self.report = report
            var services = services
            self.states = checkers.map { c in
                if let kept = previous[c.identity], kept.timing == c.timing { return kept }
                return CheckerState(timing: c.timing, alpha: c.alpha, now: now, warmupFraction: self.nextRandom())
            }
            for (c, s) in zip(checkers, self.states) where !s.isUp {
                _ = services[c.service].checker(c.index, of: c.server, .down(s.lastFailure ?? "not yet checked"))
            }
            self.services = services
            self.timers = Array(repeating: nil, count: checkers.count)
            for i in checkers.indices { self.schedule(i, at: self.states[i].nextProbe, now: now) }
            return services
        }
    }

    public func stop() -> EventLoopFuture<Void> {
        loop.submit {
            self.stopTimers()
            self.generation += 1
            self.checkers = []
            self.states = []
        }
    }

    private func stopTimers() {
        for t in timers { t?.cancel() }
        timers = []
        waiting = []
    }

    private func nextRandom() -> Double {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return Double(random >> 11) / Double(1 << 53)
    }

    private func schedule(_ i: Int, at when: Instant, now: Instant) {
        let generation = self.generation
        timers[i] = loop.scheduleTask(in: .nanoseconds(max(0, when - now))) {
            guard generation == self.generation else { return }
            self.due(i)
        }
    }

    private func due(_ i: Int) {
        guard inFlight < maximumInFlight else {
            waiting.append(i)
            return
        }
        probe(i)
    }

    private func probe(_ i: Int) {
        inFlight += 1
        let generation = self.generation
        let checker = checkers[i]
        Prober.run(checker.spec, timeout: checker.timing.timeout, on: loop).whenComplete { result in
            self.inFlight -= 1
            if let next = self.waiting.first {
                self.waiting.removeFirst()
                self.probe(next)
            }
            guard generation == self.generation else { return }
            let outcome = (try? result.get()) ?? .failure("probe error")
            self.completed(i, outcome)
        }
    }

    private func completed(_ i: Int, _ result: ProbeResult) {
        let now = Instant(NIODeadline.now().uptimeNanoseconds)
        let c = checkers[i]
        let transition = states[i].record(result, at: now)
        schedule(i, at: states[i].nextProbe, now: now)
        guard let transition else { return }
        let target = "[\(c.spec.target.address)]:tcp:\(c.spec.target.port)"
        switch transition {
        case .down(let why):
            tell("\(c.label) connection to \(target) failed.", reason: why)
        case .up:
            tell("\(c.label) connection to \(target) success.")
        case .weight(let w):
            tell("\(c.label) check of \(target) sets weight \(w).")
        }
        let actions = services[c.service].checker(c.index, of: c.server, transition)
        let n = names[c.service]
        for action in actions {
            switch action {
            case .serve(let s, _): tell("Adding service \(n.servers[s]) to VS \(n.service)")
            case .withdraw(let s, let inhibit):
                tell("Removing \(inhibit ? "(inhibited) " : "")service \(n.servers[s]) from VS \(n.service)")
            case .quorumLost:
                let h = services[c.service]
                tell("Lost quorum \(h.quorum)-\(h.hysteresis)=\(Int64(h.quorum) - Int64(h.hysteresis)) > \(h.liveWeight) for VS \(n.service)")
            case .quorumRegained:
                let h = services[c.service]
                tell("Gained quorum \(h.quorum)+\(h.hysteresis)=\(Int64(h.quorum) + Int64(h.hysteresis)) <= \(h.liveWeight) for VS \(n.service)")
            }
        }
        if !actions.isEmpty { report(c.service, actions) }
    }

    /// The current health of every service (on the loop).
    public func snapshot() -> EventLoopFuture<[ServiceHealth]> {
        loop.submit { self.services }
    }

    /// One checker as the metrics and the dashboard show it.
    public struct CheckerStatus: Sendable, Hashable {
        public var service: Int
        public var server: Int
        /// keepalived's name for its kind (`TCP`, `HTTP`, ...) and what it probes.
        public var label: String
        public var target: Endpoint
        public var state: CheckerState
    }

    /// Every checker running, in configuration order (on the loop; call from it).
    public var checkerStatuses: [CheckerStatus] {
        zip(checkers, states).map { c, s in
            CheckerStatus(service: c.service, server: c.server, label: c.label, target: c.spec.target, state: s)
        }
    }
}
