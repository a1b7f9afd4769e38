import HealthCheck
import KeepalivedConfig
import LVSCore
import NIOCore

/// A script that passed keepalived's checks: what to run and as whom.
struct RunnableScript: Hashable, Sendable {
    var argv: [String]
    var identity: ScriptIdentity
}

/// keepalived's rules for who runs a script (lib/notify.c): the script's own `USER [GROUP]`, else
/// `script_user`, else the user `keepalived_script` when it exists, else the daemon's own; and,
/// under `enable_script_security`, no script root runs may be writable by anyone but root.
struct ScriptPolicy {
    /// The machine as the policy sees it (replaced in tests).
    struct Host: Sendable {
        var lookup: @Sendable (String, String?) -> Result<ScriptIdentity, ScriptIdentity.LookupError> = { ScriptIdentity.lookup(user: $0, group: $1) }
        var daemon = ScriptIdentity.current
        var files = ScriptSecurity.FileView.host
    }

    let host: Host
    let enforcing: Bool
    let scriptUser: (user: String, group: String?)?
    /// Resolved on first need, as keepalived does (so a file without scripts says nothing about users).
    private var defaultIdentity: Result<ScriptIdentity, Failure>?
    private var messages: [String] = []
    private var sawScript = false
    private var sawInsecure = false

    struct Failure: Error {}

    init(_ globals: GlobalDefinitions, host: Host) {
        self.host = host
        enforcing = globals.enableScriptSecurity
        scriptUser = globals.scriptUser.map { ($0, globals.scriptGroup) }
    }

    private mutating func fallbackIdentity() -> ScriptIdentity? {
        if defaultIdentity == nil {
            if let (user, group) = scriptUser {
                switch host.lookup(user, group) {
                case .success(let identity): defaultIdentity = .success(identity)
                case .failure(let e):
                    messages += [e.description, "Error setting global script uid/gid"]
                    defaultIdentity = .failure(Failure())
                }
            } else {
                switch host.lookup("keepalived_script", nil) {
                case .success(let identity): defaultIdentity = .success(identity)
                case .failure(let e):
                    messages.append(e.description)
                    if enforcing {
                        messages.append("Unable to set default user keepalived_script for script")
                        defaultIdentity = .failure(Failure())
                    } else {
                        defaultIdentity = .success(host.daemon)
                    }
                }
            }
        }
        return try? defaultIdentity?.get()
    }

    /// The script's own user when it names one, else the default; nil (with keepalived's line,
    /// `invalid` or `noDefault`) when there is none to be had.
    private mutating func identity(user: String?, group: String?, invalid: String, noDefault: String) -> ScriptIdentity? {
        if let user {
            guard case .success(let i) = host.lookup(user, group) else {
                messages.append(invalid)
                return nil
            }
            return i
        }
        guard let i = fallbackIdentity() else {
            messages.append(noDefault)
            return nil
        }
        return i
    }

    /// A notify or quorum script, or nil when it must not run (with why in the messages).
    mutating func prepare(_ command: ScriptCommand?, kind: String) -> RunnableScript? {
        guard let command, let program = command.argv.first,
              let identity = identity(user: command.user, group: command.group,
                                      invalid: "Invalid user/group for \(kind) script \(program) - ignoring",
                                      noDefault: "Failed to set default user for \(kind) script \(program) - ignoring") else { return nil }
        return checked(command.argv, as: identity)
    }

    /// A MISC_CHECK's misc_path with its `user` line; nil removes the checker.
    mutating func prepareMisc(_ command: ScriptCommand, user: String?, group: String?) -> RunnableScript? {
        let text = command.argv.joined(separator: " ")
        guard let identity = identity(user: user, group: group, invalid: "Failed to set uid/gid for misc checker script \(text) - removing",
                                      noDefault: "Unable to set default user for misc script \(text) - removing") else { return nil }
        guard let script = checked(command.argv, as: identity) else {
            messages.append("Disabling misc script \(text) \(sawInsecureLast ? "due to insecure" : "since not found/accessible")")
            return nil
        }
        return script
    }

    private var sawInsecureLast = false

    private mutating func checked(_ argv: [String], as identity: ScriptIdentity) -> RunnableScript? {
        let verdict = ScriptSecurity.check(argv, as: identity, daemon: host.daemon, enforcing: enforcing, files: host.files)
        messages += verdict.messages
        sawScript = true
        sawInsecureLast = verdict.insecure
        sawInsecure = sawInsecure || verdict.insecure
        return verdict.argv.map { RunnableScript(argv: $0, identity: identity) }
    }

    /// Everything found, ending with keepalived's warning when scripts run without script security.
    mutating func finish() -> [String] {
        if sawScript && !enforcing {
            messages.append("SECURITY VIOLATION - check scripts are being executed but script_security not enabled."
                            + (sawInsecure ? " There are insecure scripts." : ""))
        }
        return messages
    }
}

/// The names and scripts of the services the checkers watch, kept so that what leaves the
/// configuration (on reload) or goes with the daemon (on shutdown) is announced as keepalived does.
enum Roster {
    struct Server: Sendable {
        var endpoint: Endpoint
        var name: String
        var notifyUp: RunnableScript?
        var notifyDown: RunnableScript?
    }

    struct Service: Sendable {
        var key: VirtualService.Key
        var name: String
        var omega = false
        var quorumUp: RunnableScript?
        var quorumDown: RunnableScript?
        var servers: [Server] = []
    }

    /// What announcing departures means: log lines and scripts to run, in order.
    struct Farewell: Equatable {
        var lines: [String] = []
        var scripts: [RunnableScript] = []
    }

    /// keepalived's check/ipwrapper.c on reload (`next` given) and on shutdown (`next` nil).
    /// Reload: a real server that was in the table and is no longer configured is announced as
    /// removed and, if it was up, its notify_down runs; a service that is gone entirely also runs
    /// quorum_down if it had its quorum. Shutdown: every real server in the table is announced as
    /// shutting down; with `omega` the notify_down of those up and the service's quorum_down run.
    static func farewell(_ running: [Service], health: [ServiceHealth], next: [Service]?) -> Farewell {
        var out = Farewell()
        for (si, service) in running.enumerated() {
            let h = si < health.count ? health[si] : nil
            let successor = next?.first(where: { $0.key == service.key })
            let stopping = next == nil
            let kept = Set(successor?.servers.map(\.endpoint) ?? [])
            for (ri, server) in service.servers.enumerated() where !kept.contains(server.endpoint) {
                let state = h.flatMap { ri < $0.servers.count ? $0.servers[ri] : nil }
                let up = state?.isUp ?? true
                let inTable = up || state?.inhibitOnFailure == true
                if inTable {
                    out.lines.append("\(stopping ? "Shutting down" : "Removing") \(up ? "" : "(inhibited) ")service \(server.name) from VS \(service.name)")
                }
                if inTable && up && (!stopping || service.omega), let down = server.notifyDown { out.scripts.append(down) }
            }
            if stopping {
                if service.omega, let down = service.quorumDown { out.scripts.append(down) }
            } else if successor == nil, h?.hasQuorum ?? true, let down = service.quorumDown {
                out.scripts.append(down)
            }
        }
        return out
    }
}

extension Director {
    /// How long a script run on the way out may take (keepalived: one second).
    static let shutdownScriptTimeout: Instant = second

    /// notify_up / notify_down / quorum_up / quorum_down for what just changed (without a shell,
    /// with a timeout; what they print is not kept).
    func runScripts(for actions: [ServiceHealth.Action], of service: Int, roster: [Roster.Service]) {
        guard service < roster.count else { return }
        let r = roster[service]
        for action in actions {
            let script: RunnableScript?
            switch action {
            case .serve(let s, _): script = s < r.servers.count ? r.servers[s].notifyUp : nil
            case .withdraw(let s, _): script = s < r.servers.count ? r.servers[s].notifyDown : nil
            case .quorumRegained: script = r.quorumUp
            case .quorumLost: script = r.quorumDown
            }
            if let script { run(script, timeout: Director.notifyTimeout) }
        }
    }

    @discardableResult
    func run(_ script: RunnableScript, timeout: Instant) -> EventLoopFuture<Void> {
        ScriptRunner.run(script.argv, as: script.identity, timeout: timeout, on: loop).map { outcome in
            if outcome != .exited(0) {
                self.logger.warning("script \(script.argv.joined(separator: " ")) ended with \(outcome)")
            }
        }
    }

    /// Logs the farewell and runs its scripts; done when they have all ended.
    func announce(_ farewell: Roster.Farewell, timeout: Instant) -> EventLoopFuture<Void> {
        for line in farewell.lines { logger.info("\(line)") }
        return EventLoopFuture.andAllComplete(farewell.scripts.map { run($0, timeout: timeout) }, on: loop)
    }
}
