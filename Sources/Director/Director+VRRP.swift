import ControlAPI
import Dispatch
import Foundation
import HealthCheck
import KeepalivedConfig
import LVSCore
import Logging
import NIOCore
import Observability
import VRRP

#if canImport(Glibc)
import Glibc
#endif

/// keepalived's VRRP side: the vrrp_instance blocks run by a VRRP host, their notify scripts,
/// vrrp_scripts run on their intervals, ha_suspend, and `lvsd status`.
extension Director {
    /// Makes `plan` the running VRRP configuration (on the loop, after the table is applied). An
    /// unchanged one keeps its host, so a reload does not make masters step down.
    func startVRRP(_ plan: VRRPPlan) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            for m in plan.messages { self.logger.warning("\(m)") }
            let unchanged = plan.identity == self.vrrpPlan.identity && (self.vrrp != nil || plan.isEmpty)
            let checksUnchanged = plan.checks == self.vrrpPlan.checks
            let previous = self.vrrpPlan
            self.vrrpPlan = plan
            self.syncConfigurationChanged(from: previous, to: plan)
            if let name = plan.syncInstance, let current = self.vrrpStates[name] { self.syncFollow(name, current) }
            self.syncStartBoth()
            if unchanged {
                if !checksUnchanged, let host = self.vrrp { self.startChecks(plan.checks, host: host) }
                return self.loop.makeSucceededVoidFuture()
            }
            let resuming = Set(Director.keptMasters(from: previous, to: plan, states: self.vrrpStates).keys)
            return self.stopVRRP(announcing: previous, successor: plan).flatMap {
                guard !plan.isEmpty else { return self.loop.makeSucceededVoidFuture() }
                guard geteuid() == 0 else {
                    self.logger.error("VRRP needs root (raw sockets, addresses): the vrrp_instance blocks are not run")
                    return self.loop.makeSucceededVoidFuture()
                }
                let promise = self.loop.makePromise(of: Void.self)
                let loop = self.loop
                let director = self
                self.vrrpQueue.async {
                    do {
                        let host = try VRRPHost(instances: plan.setups, groups: plan.groups, scripts: plan.scripts, files: plan.files,
                                                resuming: resuming) { event in
                            loop.execute { director.vrrpEvent(event) }
                        }
                        host.start()
                        loop.execute {
                            self.vrrp = host
                            self.startChecks(plan.checks, host: host)
                            self.logger.info("VRRP started", metadata: ["instances": "\(plan.setups.count)"])
                            promise.succeed(())
                        }
                    } catch {
                        loop.execute {
                            self.logger.error("VRRP cannot start: \(error)")
                            promise.succeed(())
                        }
                    }
                }
                return promise.futureResult
            }
        }
    }

    /// Stops the running host: its masters send priority 0 and give their addresses up; then
    /// notify_stop and the generic notify's STOP run (one second at most, as keepalived allows).
    /// For a reload (`successor`), the masters the new configuration still has (same name,
    /// interface, VRID and family) leave silently and stay master in the new host, and only the
    /// instances it no longer has are announced as stopped.
    func stopVRRP(announcing plan: VRRPPlan? = nil, successor: VRRPPlan? = nil) -> EventLoopFuture<Void> {
        loop.flatSubmit {
            for task in self.vrrpChecks { task.cancel() }
            self.vrrpChecks = []
            guard let host = self.vrrp else { return self.loop.makeSucceededVoidFuture() }
            self.vrrp = nil
            let plan = plan ?? self.vrrpPlan
            let keeping = successor.map { Director.keptMasters(from: plan, to: $0, states: self.vrrpStates) } ?? [:]
            let promise = self.loop.makePromise(of: Void.self)
            self.vrrpQueue.async {
                host.stop(keeping: keeping)
                promise.succeed(())
            }
            return promise.futureResult.flatMap {
                let remaining = Set(successor?.setups.map(\.settings.name) ?? [])
                self.vrrpStates = self.vrrpStates.filter { remaining.contains($0.key) }
                var runs: [EventLoopFuture<Void>] = []
                for setup in plan.setups where !remaining.contains(setup.settings.name) {
                    let name = setup.settings.name
                    runs += self.notifyScripts(plan.instanceNotify[name], kind: "INSTANCE", name: name, state: "STOP",
                                               priority: Int(setup.settings.priority), timeout: Director.shutdownScriptTimeout)
                }
                let remainingGroups = Set(successor?.groups.map(\.name) ?? [])
                for group in plan.groups where !remainingGroups.contains(group.name) {
                    runs += self.notifyScripts(plan.groupNotify[group.name], kind: "GROUP", name: group.name, state: "STOP", priority: 0,
                                               timeout: Director.shutdownScriptTimeout)
                }
                return EventLoopFuture.andAllComplete(runs, on: self.loop)
            }
        }
    }

    /// The masters of `old` that `new` has again as the same router, with what they will hold.
    static func keptMasters(from old: VRRPPlan, to new: VRRPPlan, states: [String: VRRPStateMachine.State]) -> [String: VRRPHost.Successor] {
        var kept: [String: VRRPHost.Successor] = [:]
        for n in new.setups {
            let s = n.settings
            guard states[s.name] == .master, let o = old.setups.first(where: { $0.settings.name == s.name })?.settings,
                  o.interface == s.interface, o.virtualRouterID == s.virtualRouterID, o.isV6 == s.isV6 else { continue }
            kept[s.name] = VRRPHost.Successor(addresses: Set(s.addresses.map(\.address)), routes: n.routes, virtualMACInterface: s.virtualMACInterface)
        }
        return kept
    }

    /// vrrp_scripts on their intervals; each result goes to the host.
    private func startChecks(_ checks: [VRRPPlan.Check], host: VRRPHost) {
        for task in vrrpChecks { task.cancel() }
        let loop = self.loop
        vrrpChecks = checks.map { check in
            loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: .nanoseconds(check.interval)) { [weak self] _ in
                guard let self else { return loop.makeSucceededVoidFuture() }
                return ScriptRunner.run(check.script.argv, as: check.script.identity, timeout: check.timeout, on: self.loop).map { outcome in
                    if outcome == .timedOut { self.logger.info("VRRP_Script(\(check.name)) timed_out") }
                    host.post(.script(name: check.name, success: outcome == .exited(0)))
                }
            }
        }
    }

    /// What the VRRP thread reports, on the loop.
    private func vrrpEvent(_ event: VRRPHost.Event) {
        switch event {
        case .log(let level, let message):
            switch level {
            case .debug: logger.debug("\(message)")
            case .info: logger.info("\(message)")
            case .warning: logger.warning("\(message)")
            case .error: logger.error("\(message)")
            }
        case .transition(let name, let from, let to, let priority):
            guard to != .initialize else { return }
            let wasMaster = vrrpStates[name] == .master
            // After a reload an instance arrives again in the state it had: nothing to announce.
            let unchanged = vrrpStates[name] == to && from == .initialize
            vrrpStates[name] = to
            syncFollow(name, to)
            if unchanged { return }
            events.record(.vrrp, "(\(name)) Entering \(to.rawValue) STATE (priority \(priority))")
            _ = notifyScripts(vrrpPlan.instanceNotify[name], kind: "INSTANCE", name: name, state: to.rawValue, priority: Int(priority),
                              timeout: Director.notifyTimeout)
            // ha_suspend: the services on this instance's addresses come and go with mastership.
            if !suspendable.isEmpty, wasMaster != (to == .master) {
                _ = apply(served(Director.effectivePlan(configuredPlan, health: health)))
            }
        case .group(let name, let to):
            guard to != .initialize else { return }
            _ = notifyScripts(vrrpPlan.groupNotify[name], kind: "GROUP", name: name, state: to.rawValue, priority: 0, timeout: Director.notifyTimeout)
        }
    }

    /// notify_STATE without arguments, and `notify` with keepalived's four: TYPE NAME STATE PRIORITY.
    private func notifyScripts(_ notify: VRRPPlan.Notify?, kind: String, name: String, state: String, priority: Int,
                               timeout: Instant) -> [EventLoopFuture<Void>] {
        guard let notify else { return [] }
        var runs: [EventLoopFuture<Void>] = []
        if let s = notify.byState[state] { runs.append(run(s, timeout: timeout)) }
        if let g = notify.generic {
            runs.append(run(RunnableScript(argv: g.argv + [kind, name, state, "\(priority)"], identity: g.identity), timeout: timeout))
        }
        return runs
    }

    /// The plan without the ha_suspend services whose address belongs to an instance that is not
    /// master here.
    func served(_ plan: TablePlan) -> TablePlan {
        guard !suspendable.isEmpty else { return plan }
        var p = plan
        p.services.removeAll { service in
            guard suspendable.contains(service.config.key), case .address(_, let address, _) = service.config.key,
                  let owner = vrrpPlan.owners[address] else { return false }
            return vrrpStates[owner] != .master
        }
        return p
    }

    /// The services a configuration marks ha_suspend.
    static func suspendable(_ configuration: KeepalivedConfiguration, plan: TablePlan) -> Set<VirtualService.Key> {
        Set(plan.services.compactMap { s in s.definition.flatMap { configuration.virtualServers[$0].haSuspend ? s.config.key : nil } })
    }

    /// `lvsd status`: the instances as the VRRP thread last published them.
    public var vrrpStatus: [VRRPHost.Status] { vrrp?.status ?? [] }

    /// `lvsd status --json`: one object per instance, its counters included.
    static func statusJSON(_ list: [VRRPHost.Status], sync: [SyncDaemonJSON] = []) -> String {
        struct Status: Encodable {
            var vrrp: [VRRPHost.Status]
            var sync: [SyncDaemonJSON]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(Status(vrrp: list, sync: sync)) else { return "{}\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The listing `lvsd status` prints.
    static func statusText(_ list: [VRRPHost.Status], running: Bool) -> String {
        guard running || !list.isEmpty else { return "VRRP: no vrrp_instance is running\n" }
        var out = "VRRP instances:\n"
        let header = ["Name", "Interface", "VRID", "Ver", "State", "Prio", "Conf", "Master", "Adv(s)", "Trans", "Rcvd", "Sent", "Dropped"]
        var rows = [header]
        for s in list {
            rows.append([s.name, s.interface, "\(s.virtualRouterID)", "v\(s.version)", s.state, "\(s.priority)", "\(s.configuredPriority)",
                         s.master ?? "-", String(format: "%g", s.advertisementInterval), "\(s.transitions)", "\(s.statistics.advertisementsReceived)",
                         "\(s.statistics.advertisementsSent)", "\(s.dropped)"])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for r in rows {
            out += r.enumerated().map { c, v in v.padding(toLength: widths[c] + 2, withPad: " ", startingAt: 0) }.joined()
                .trimmingTrailingSpaces() + "\n"
        }
        for s in list where !s.addresses.isEmpty {
            out += "  \(s.name): \(s.addresses.joined(separator: " "))\(s.group.map { "  (sync group \($0))" } ?? "")\n"
        }
        return out
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
