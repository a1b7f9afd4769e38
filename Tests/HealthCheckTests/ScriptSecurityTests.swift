import Glibc
import HealthCheck
import LVSCore
import NIOPosix
import Testing

/// keepalived's checks of a script before it runs, over a file system described in the test.
@Suite struct ScriptSecurityTests {
    typealias Status = ScriptSecurity.FileView.Status

    static let root = ScriptIdentity(uid: 0, gid: 0)
    static let alice = ScriptIdentity(uid: 1000, gid: 1000)

    static func directory(_ mode: mode_t = 0o755, uid: uid_t = 0, gid: gid_t = 0) -> Status { Status(mode: S_IFDIR | mode, uid: uid, gid: gid) }
    static func file(_ mode: mode_t = 0o755, uid: uid_t = 0, gid: gid_t = 0) -> Status { Status(mode: S_IFREG | mode, uid: uid, gid: gid) }

    /// `entries` by path; `links` map a path to where it resolves.
    static func files(_ entries: [String: Status], links: [String: String] = [:], searchPath: [String] = ["/usr/sbin", "/usr/bin"]) -> ScriptSecurity.FileView {
        ScriptSecurity.FileView(
            status: { path, follow in
                if let target = links[path] {
                    return follow ? (entries[target].map { .success($0) } ?? .failure(.init(ENOENT))) : .success(Status(mode: S_IFLNK | 0o777, uid: 0, gid: 0))
                }
                return entries[path].map { .success($0) } ?? .failure(.init(ENOENT))
            },
            realPath: { path in
                if let target = links[path] { return entries[target] != nil ? .success(target) : .failure(.init(ENOENT)) }
                return entries[path] != nil ? .success(path) : .failure(.init(ENOENT))
            },
            searchPath: searchPath)
    }

    static let system: [String: Status] = [
        "/": directory(), "/usr": directory(), "/usr/bin": directory(), "/usr/bin/check": file(),
        "/tmp": directory(0o1777), "/tmp/check": file(),
        "/srv": directory(0o775, gid: 50), "/srv/check": file(),
        "/home": directory(), "/home/alice": directory(uid: 1000, gid: 1000), "/home/alice/check": file(0o755, uid: 1000, gid: 1000),
        "/usr/bin/plain": file(0o644), "/usr/bin/mine": file(0o700, uid: 1000, gid: 1000),
        "/usr/bin/suid": file(0o4755), "/usr/bin/open": file(0o757),
    ]

    func check(_ argv: [String], as identity: ScriptIdentity = root, daemon: ScriptIdentity = root, enforcing: Bool = true,
               links: [String: String] = [:]) -> ScriptSecurity.Verdict {
        ScriptSecurity.check(argv, as: identity, daemon: daemon, enforcing: enforcing, files: Self.files(Self.system, links: links))
    }

    @Test func aRootOwnedScriptInRootOwnedDirectoriesRuns() {
        let v = check(["/usr/bin/check", "--x"])
        #expect(v == ScriptSecurity.Verdict(argv: ["/usr/bin/check", "--x"], insecure: false, messages: []))
    }

    @Test func aBareNameIsFoundInThePath() {
        #expect(check(["check", "a"]).argv == ["/usr/bin/check", "a"])
        #expect(check(["nothere"]) == ScriptSecurity.Verdict(argv: nil, insecure: false, messages: ["Cannot find script nothere in path - disabling"]))
    }

    @Test func aStickyWorldWritableDirectoryIsSafe() {
        #expect(check(["/tmp/check"]).argv == ["/tmp/check"])
    }

    @Test func aGroupWritableDirectoryOrANonRootOwnerIsUnsafeForRoot() {
        let srv = check(["/srv/check"])
        #expect(srv == ScriptSecurity.Verdict(argv: nil, insecure: true, messages: ["Unsafe permissions found for script '/srv/check' - disabling."]))
        let home = check(["/home/alice/check"])
        #expect(home.argv == nil && home.insecure)
        let relaxed = check(["/srv/check"], enforcing: false)
        #expect(relaxed == ScriptSecurity.Verdict(argv: ["/srv/check"], insecure: true, messages: ["Unsafe permissions found for script '/srv/check'."]))
        let open = check(["/usr/bin/open"])
        #expect(open.argv == nil && open.insecure, "a world-writable script")
    }

    @Test func anotherUsersScriptNeedsNoProtection() {
        #expect(check(["/home/alice/check"], as: Self.alice).argv == ["/home/alice/check"])
        let suid = check(["/usr/bin/suid"], as: Self.alice)
        #expect(suid.argv == ["/usr/bin/suid"], "set-uid root, but its path is root's alone")
    }

    @Test func theScriptMustBeExecutableByItsUser() {
        #expect(check(["/usr/bin/plain"]).messages == ["WARNING - script '/usr/bin/plain' is not executable for uid:gid 0:0 - disabling."])
        #expect(check(["/usr/bin/mine"], as: ScriptIdentity(uid: 1001, gid: 1001)).argv == nil)
        #expect(check(["/usr/bin/mine"], as: Self.alice).argv == ["/usr/bin/mine"])
    }

    @Test func onlyRootCanRunAScriptAsSomeoneElse() {
        let v = check(["/usr/bin/check"], as: Self.root, daemon: Self.alice)
        #expect(v.messages == ["Unable to set uid:gid 0:0 for script /usr/bin/check - disabling"])
        #expect(check(["/usr/bin/check"], as: Self.alice, daemon: Self.alice).argv != nil)
    }

    @Test func aLinkIsCheckedWhereItPointsToo() {
        let v = check(["/usr/bin/linked"], links: ["/usr/bin/linked": "/srv/check"])
        #expect(v == ScriptSecurity.Verdict(argv: nil, insecure: true, messages: ["Unsafe permissions found for script '/srv/check' - disabling."]))
        #expect(check(["/usr/bin/gone"], links: ["/usr/bin/gone": "/nowhere"]).messages == ["Script /usr/bin/gone cannot be accessed - No such file or directory"])
    }

    @Test func theHostViewSeesThisMachine() {
        let v = ScriptSecurity.check(["sh", "-c", "true"], as: .current, enforcing: false)
        #expect(v.argv?.first?.hasSuffix("/sh") == true)
    }

    @Test(.enabled(if: getuid() == 0, "changing user needs root"))
    func aScriptRunsAsItsUser() throws {
        guard case .success(let nobody) = ScriptIdentity.lookup(user: "nobody") else { return }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let asNobody = try ScriptRunner.run(["/bin/sh", "-c", "test \"$(id -u):$(id -g):$(id -G)\" = \"\(nobody.uid):\(nobody.gid):\(nobody.gid)\""],
                                            as: nobody, timeout: 2_000_000_000, on: loop).wait()
        #expect(asNobody == .exited(0))
        let bare = try ScriptRunner.run(["sh", "-c", "test $(id -u) = \(nobody.uid)"], as: nobody, timeout: 2_000_000_000, on: loop).wait()
        #expect(bare == .exited(0), "a bare name is found in PATH")
        let missing = try ScriptRunner.run(["/nonexistent"], as: nobody, timeout: 2_000_000_000, on: loop).wait()
        #expect(missing == .failedToStart("No such file or directory"))
    }

    @Test func usersAreLookedUp() {
        #expect(ScriptIdentity.lookup(user: "root") == .success(ScriptIdentity(uid: 0, gid: 0)))
        #expect(ScriptIdentity.lookup(user: "no-such-user-here") == .failure(.init(description: "Script user 'no-such-user-here' does not exist")))
        #expect(ScriptIdentity.lookup(user: "root", group: "no-such-group") == .failure(.init(description: "Script group 'no-such-group' does not exist")))
    }
}
