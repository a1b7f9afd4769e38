import ControlAPI
import Dispatch
import HealthCheck
import KeepalivedConfig
import LVSCore
import LVSProxyEngine
import Logging
import NIOCore

/// keepalived.conf: applying its virtual servers, and reloading it with only the difference applied.
extension Director {
    /// What a load or reload did.
    public struct ConfigurationOutcome: Sendable {
        /// Whether the new configuration is now the running one.
        public var applied: Bool
        public var diagnostics: [Diagnostic]
        public var changes: [TablePlan.Change]
        /// Changes the table refused, with why.
        public var failures: [String]

        /// The control socket's answer for `lvsd reload`.
        public var output: IPVSAdmOutput {
            var stderr = diagnostics.map { "\($0)\n" }.joined() + failures.map { "lvsd: \($0)\n" }.joined()
            if !applied { stderr += "lvsd: configuration not applied; the running one is kept\n" }
            let stdout = applied ? "configuration applied: \(changes.count) change\(changes.count == 1 ? "" : "s")\n" : ""
            return IPVSAdmOutput(stdout: stdout, stderr: stderr, exitCode: applied && failures.isEmpty ? 0 : 1)
        }
    }

    /// Findings that mean part of the file was not understood; a reload with any of them keeps the
    /// running configuration.
    static func blocksReload(_ d: Diagnostic) -> Bool {
        switch d.kind {
        case .warning, .deprecated, .securityError, .badInterface, .multipleFiles: return false
        default: return true
        }
    }

    /// Reads `path` and applies it. At start-up (`initial`) what could be understood is applied and
    /// every finding is logged, as keepalived does; on reload a file with errors changes nothing.
    public func loadConfiguration(_ path: String, initial: Bool, fileSystem: any ConfigFileSystem & Sendable = DiskConfigFiles(),
                                  environment: KeepalivedConfiguration.Environment = HostFacts.environment)
        -> EventLoopFuture<ConfigurationOutcome> {
        let promise = loop.makePromise(of: ConfigurationOutcome.self)
        // Reading and parsing touch the disk: off the event loop.
        DispatchQueue.global().async {
            let loaded = KeepalivedConfiguration.load(path, fileSystem: fileSystem, environment: environment)
            self.loop.execute {
                for finding in loaded.diagnostics {
                    self.logger.warning("\(finding)", metadata: ["config": "\(path)"])
                }
                // A file that is not there (or not readable) is never "an empty configuration".
                if let unreadable = loaded.diagnostics.first(where: { $0.kind == .fileNotFound && $0.location == nil }) {
                    self.logger.error("\(unreadable)", metadata: ["config": "\(path)"])
                    promise.succeed(ConfigurationOutcome(applied: false, diagnostics: loaded.diagnostics, changes: [],
                                                         failures: [unreadable.message]))
                    return
                }
                if !initial, loaded.diagnostics.contains(where: Director.blocksReload) {
                    self.logger.error("reload refused: configuration has errors; the running one is kept", metadata: ["config": "\(path)"])
                    promise.succeed(ConfigurationOutcome(applied: false, diagnostics: loaded.diagnostics, changes: [], failures: []))
                    return
                }
                self.configurationPath = path
                self.configure(loaded.configuration).map { outcome in
                    var outcome = outcome
                    outcome.diagnostics = loaded.diagnostics
                    return outcome
                }.cascade(to: promise)
            }
        }
        return promise.futureResult.map { outcome in
            self.noteLoad(outcome, path: path)
            return outcome
        }
    }

    /// Reads the configuration file given at start again (SIGHUP, `lvsd reload`).
    public func reload() -> EventLoopFuture<ConfigurationOutcome> {
        loop.flatSubmit {
            guard let path = self.configurationPath else {
                return self.loop.makeSucceededFuture(ConfigurationOutcome(
                    applied: false, diagnostics: [Diagnostic(.fatal, "lvsd was not started with a configuration file (-f)")], changes: [], failures: []))
            }
            self.logger.info("Reloading configuration", metadata: ["config": "\(path)"])
            return self.loadConfiguration(path, initial: false)
        }
    }

    /// Makes `configuration` the running one: its checkers start (those it shares with the running
    /// one keep their state), and the table becomes what it asks for as the checkers see it.
    func configure(_ configuration: KeepalivedConfiguration) -> EventLoopFuture<ConfigurationOutcome> {
        loop.flatSubmit {
            let plan = TablePlan(configuration)
            let setup = Director.healthSetup(configuration, plan: plan)
            let vrrp = VRRPPlan(configuration)
            // VRRP's addresses may be listened on before this director is their master.
            self.engine.freeBind = Set(vrrp.owners.keys)
            for kind in setup.unsupported.sorted() {
                self.logger.warning("\(kind) is not run by this build yet: its real servers count as up")
            }
            for line in setup.scriptMessages { self.logger.warning("\(line)") }
            // The listeners first: a service that cannot be served refuses the whole configuration
            // before anything (the checkers included) has changed.
            let wanted = Set(plan.services.map(\.config.key).filter(self.proxied))
            let missing = wanted.subtracting(self.engine.listeningKeys)
            return self.engine.listen(missing).flatMap { refused in
                guard refused.isEmpty else {
                    self.engine.stopListening(missing.subtracting(refused.map(\.key)))
                    for f in refused {
                        self.logger.error("cannot serve virtual service", metadata: ["vip": "\(f.key)", "error": "\(f.reason)"])
                    }
                    return self.loop.makeSucceededFuture(ConfigurationOutcome(applied: false, diagnostics: [], changes: [],
                                                                              failures: refused.map { "\($0)" }))
                }
                let now = Instant(NIODeadline.now().uptimeNanoseconds)
                let roster = setup.roster
                return self.monitor.start(services: setup.services, names: setup.names, checkers: setup.checkers, now: now) { [weak self] service, actions in
                    self?.healthChanged()
                    self?.runScripts(for: actions, of: service, roster: roster)
                }.flatMap { health in
                    _ = self.announce(Roster.farewell(self.roster, health: self.health, next: roster), timeout: Director.notifyTimeout)
                    self.roster = roster
                    self.configuredPlan = plan
                    self.health = health
                    self.vrrpPlan.owners = vrrp.owners
                    self.suspendable = Director.suspendable(configuration, plan: plan)
                    return self.apply(self.served(Director.effectivePlan(plan, health: health))).flatMap { outcome in
                        self.startVRRP(vrrp).map { outcome }
                    }
                }
            }
        }
    }

    /// A checker changed a real server or a quorum: the table follows.
    func healthChanged() {
        monitor.snapshot().whenSuccess { health in
            self.health = health
            _ = self.apply(self.served(Director.effectivePlan(self.configuredPlan, health: health)))
        }
    }

    /// Takes the table from the last applied plan to `plan`: listeners for new services are opened
    /// first (if one cannot be, nothing changes), then the changes are made under the table's lock.
    /// One application at a time, in the order asked.
    func apply(_ plan: TablePlan) -> EventLoopFuture<ConfigurationOutcome> {
        loop.flatSubmit {
            let previous = self.applying ?? self.loop.makeSucceededVoidFuture()
            let result = previous.flatMap { self.applyNow(plan) }
            self.applying = result.map { _ in () }
            return result
        }
    }

    private func applyNow(_ plan: TablePlan) -> EventLoopFuture<ConfigurationOutcome> {
        loop.flatSubmit {
            let changes = self.appliedPlan.changes(to: plan)
            let wanted = Set(plan.services.map(\.config.key).filter(self.proxied))
            let missing = wanted.subtracting(self.engine.listeningKeys)
            return self.engine.listen(missing).map { refused in
                guard refused.isEmpty else {
                    self.engine.stopListening(missing.subtracting(refused.map(\.key)))
                    let failures = refused.map { "\($0)" }
                    for f in refused {
                        self.logger.error("cannot serve virtual service", metadata: ["vip": "\(f.key)", "error": "\(f.reason)"])
                    }
                    return ConfigurationOutcome(applied: false, diagnostics: [], changes: [], failures: failures)
                }
                let s = self.state
                let (results, keys) = s.withTable { table in
                    (TablePlan.apply(changes, to: &table), table.serviceSnapshots.map(\.config.key))
                }
                self.engine.stopListening(self.engine.listeningKeys.subtracting(keys))
                self.tableChanged()
                self.appliedPlan = plan
                var failures: [String] = []
                for (change, error) in results {
                    if let error {
                        failures.append("\(change): \(error)")
                        self.logger.error("configuration change refused", metadata: ["change": "\(change)", "error": "\(error)"])
                    } else {
                        self.logger.info("\(change)")
                    }
                }
                return ConfigurationOutcome(applied: true, diagnostics: [], changes: changes, failures: failures)
            }
        }
    }
}
