import Glibc
import HealthCheck
import KeepalivedConfig
import LVSCore
import Testing
@testable import Director

/// Who runs the notify, quorum and MISC_CHECK scripts of a configuration, which of them may run,
/// and what is announced when real servers leave (reload) or the daemon stops (omega).
@Suite struct ScriptPolicyTests {
    static let users: [String: ScriptIdentity] = [
        "root": ScriptIdentity(uid: 0, gid: 0), "keepalived_script": ScriptIdentity(uid: 900, gid: 900),
        "alice": ScriptIdentity(uid: 1000, gid: 1000),
    ]

    static func host(users: [String: ScriptIdentity] = users) -> ScriptPolicy.Host {
        typealias Status = ScriptSecurity.FileView.Status
        let entries: [String: Status] = [
            "/": Status(mode: S_IFDIR | 0o755, uid: 0, gid: 0), "/bin": Status(mode: S_IFDIR | 0o755, uid: 0, gid: 0),
            "/bin/up": Status(mode: S_IFREG | 0o755, uid: 0, gid: 0), "/bin/down": Status(mode: S_IFREG | 0o755, uid: 0, gid: 0),
            "/bin/check": Status(mode: S_IFREG | 0o755, uid: 0, gid: 0),
            "/bin/unsafe": Status(mode: S_IFREG | 0o777, uid: 0, gid: 0),
        ]
        return ScriptPolicy.Host(
            lookup: { user, group in
                guard var identity = users[user] else { return .failure(.init(description: "Script user '\(user)' does not exist")) }
                if let group { identity.gid = group == "wheel" ? 10 : identity.gid }
                return .success(identity)
            },
            daemon: ScriptIdentity(uid: 0, gid: 0),
            files: ScriptSecurity.FileView(
                status: { path, _ in entries[path].map { .success($0) } ?? .failure(.init(ENOENT)) },
                realPath: { path in entries[path] != nil ? .success(path) : .failure(.init(ENOENT)) },
                searchPath: ["/bin"]))
    }

    static func config(globals: String = "", notifyUp: String = "\"/bin/up arg\"", misc: String = "misc_path /bin/check",
                       omega: Bool = false) -> String {
        """
        global_defs {
        \(globals)
        }
        virtual_server 10.0.0.1 80 {
            protocol TCP
            \(omega ? "omega" : "")
            quorum_down /bin/down
            real_server 10.0.1.1 80 {
                notify_up \(notifyUp)
                notify_down "/bin/down 1"
                MISC_CHECK {
                    \(misc)
                }
            }
            real_server 10.0.1.2 80 {
                TCP_CHECK {
                }
            }
        }
        """
    }

    func setup(_ text: String, users: [String: ScriptIdentity] = users) -> Director.HealthSetup {
        let c = KeepalivedConfiguration.load("/k", fileSystem: InMemoryFileSystem(["/k": text])).configuration
        return Director.healthSetup(c, plan: TablePlan(c), scripts: Self.host(users: users))
    }

    @Test func scriptsRunAsKeepalivedScriptByDefaultAndAsTheirOwnUserWhenGiven() {
        let s = setup(Self.config(notifyUp: "\"/bin/up arg\" alice wheel"))
        let server = s.roster[0].servers[0]
        #expect(server.notifyUp == RunnableScript(argv: ["/bin/up", "arg"], identity: ScriptIdentity(uid: 1000, gid: 10)))
        #expect(server.notifyDown == RunnableScript(argv: ["/bin/down", "1"], identity: ScriptIdentity(uid: 900, gid: 900)))
        #expect(s.roster[0].quorumDown?.identity == ScriptIdentity(uid: 900, gid: 900))
        guard case .misc(let argv, _, let identity) = s.checkers[0].spec.kind else {
            Issue.record("the MISC_CHECK is missing")
            return
        }
        #expect(argv == ["/bin/check"] && identity == ScriptIdentity(uid: 900, gid: 900))
        #expect(s.scriptMessages == ["SECURITY VIOLATION - check scripts are being executed but script_security not enabled."])
    }

    @Test func scriptUserIsTheDefaultAndTheDaemonsOwnUserIsTheLastResort() {
        let s = setup(Self.config(globals: "script_user alice"))
        #expect(s.roster[0].servers[0].notifyDown?.identity == ScriptIdentity(uid: 1000, gid: 1000))
        var users = Self.users
        users["keepalived_script"] = nil
        let fallback = setup(Self.config(), users: users)
        #expect(fallback.roster[0].servers[0].notifyDown?.identity == ScriptIdentity(uid: 0, gid: 0))
        #expect(fallback.scriptMessages.first == "Script user 'keepalived_script' does not exist")
    }

    @Test func anUnknownUserDisablesTheScriptOrRemovesTheChecker() {
        let s = setup(Self.config(notifyUp: "/bin/up bob", misc: "misc_path /bin/check\nuser bob"))
        #expect(s.roster[0].servers[0].notifyUp == nil)
        #expect(s.checkers.count == 1, "only the TCP_CHECK of the second server is left")
        #expect(s.scriptMessages.contains("Invalid user/group for notify script /bin/up - ignoring"))
        #expect(s.scriptMessages.contains("Failed to set uid/gid for misc checker script /bin/check - removing"))
        let globalUnknown = setup(Self.config(globals: "script_user bob"))
        #expect(globalUnknown.roster[0].servers[0].notifyDown == nil)
        #expect(Array(globalUnknown.scriptMessages.prefix(2)) == ["Script user 'bob' does not exist", "Error setting global script uid/gid"])
    }

    @Test func scriptSecurityDisablesUnsafeScriptsAndRequiresAUser() {
        let s = setup(Self.config(globals: "enable_script_security\nscript_user root", notifyUp: "/bin/unsafe", misc: "misc_path /bin/unsafe"))
        #expect(s.roster[0].servers[0].notifyUp == nil)
        #expect(s.roster[0].servers[0].notifyDown != nil)
        #expect(s.checkers.count == 1)
        #expect(s.scriptMessages == [
            "Unsafe permissions found for script '/bin/unsafe' - disabling.",
            "Disabling misc script /bin/unsafe due to insecure",
            "Unsafe permissions found for script '/bin/unsafe' - disabling.",
        ])
        var users = Self.users
        users["keepalived_script"] = nil
        let noDefault = setup(Self.config(globals: "enable_script_security"), users: users)
        #expect(noDefault.roster[0].quorumDown == nil)
        #expect(noDefault.scriptMessages.contains("Unable to set default user keepalived_script for script"))
        let relaxed = setup(Self.config(globals: "script_user root", notifyUp: "/bin/unsafe"))
        #expect(relaxed.roster[0].servers[0].notifyUp != nil)
        let unprotected = setup(Self.config(notifyUp: "/bin/unsafe"))
        #expect(unprotected.scriptMessages == ["SECURITY VIOLATION - check scripts are being executed but script_security not enabled."],
                "keepalived_script running it cannot become root through it")
        #expect(relaxed.scriptMessages.last == "SECURITY VIOLATION - check scripts are being executed but script_security not enabled. There are insecure scripts.")
    }

    @Test func reloadAnnouncesRemovedServersAndShutdownHonoursOmega() {
        let s = setup(Self.config(omega: true))
        var health = s.services
        _ = health[0].checker(0, of: 1, .down("x"))
        let down = RunnableScript(argv: ["/bin/down", "1"], identity: ScriptIdentity(uid: 900, gid: 900))
        let quorumDown = RunnableScript(argv: ["/bin/down"], identity: ScriptIdentity(uid: 900, gid: 900))

        let stop = Roster.farewell(s.roster, health: health, next: nil)
        #expect(stop.lines == ["Shutting down service [10.0.1.1]:tcp:80 from VS [10.0.0.1]:tcp:80"])
        #expect(stop.scripts == [down, quorumDown])

        let plain = setup(Self.config(omega: false))
        let quiet = Roster.farewell(plain.roster, health: health, next: nil)
        #expect(quiet.lines.count == 1 && quiet.scripts.isEmpty, "without omega, no scripts on the way out")

        var fewer = plain.roster
        fewer[0].servers.removeFirst()
        let reload = Roster.farewell(plain.roster, health: health, next: fewer)
        #expect(reload == Roster.Farewell(lines: ["Removing service [10.0.1.1]:tcp:80 from VS [10.0.0.1]:tcp:80"], scripts: [down]))
        let gone = Roster.farewell(plain.roster, health: health, next: [])
        #expect(gone.scripts == [down, quorumDown], "the service itself is gone: quorum_down too")
        #expect(Roster.farewell(plain.roster, health: health, next: plain.roster) == Roster.Farewell())
    }
}
