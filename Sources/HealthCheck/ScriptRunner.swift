import CLinux
import Dispatch
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program as keepalived runs check and notify scripts: no shell (argv as given), standard
/// input, output and error on /dev/null (a script that floods its output cannot fill a pipe), in a
/// process group of its own, killed (the whole group) when it outlives its timeout. Never blocks
/// the event loop: the wait happens on a background thread. With an identity other than the
/// daemon's, the program runs as that user and group (`script_user`, `user`).
public enum ScriptRunner {
    public enum Outcome: Hashable, Sendable {
        case exited(Int32)
        case signalled(Int32)
        case timedOut
        case failedToStart(String)
    }

    public static func run(_ argv: [String], as identity: ScriptIdentity? = nil, timeout: Instant, on loop: EventLoop) -> EventLoopFuture<Outcome> {
        let promise = loop.makePromise(of: Outcome.self)
        guard let program = argv.first, !program.isEmpty else {
            promise.succeed(.failedToStart("empty command"))
            return promise.futureResult
        }
        let started: Result<pid_t, ScriptSecurity.FileView.Errno>
        if let identity, identity != .current {
            started = spawn(argv, as: identity)
        } else {
            started = spawn(argv)
        }
        switch started {
        case .failure(let error):
            promise.succeed(.failedToStart(error.text))
        case .success(let child):
            wait(for: child, timeout: timeout, on: loop, promise: promise)
        }
        return promise.futureResult
    }

    /// posix_spawnp: the fast way, when the script runs as the daemon's own user.
    private static func spawn(_ argv: [String]) -> Result<pid_t, ScriptSecurity.FileView.Errno> {
        var pid: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in Int32(0)...2 {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for p in cArguments { free(p) } }
        let code = posix_spawnp(&pid, argv[0], &actions, &attributes, &cArguments, environ)
        return code == 0 ? .success(pid) : .failure(.init(code))
    }

    /// fork, change user, exec: posix_spawn cannot change the user. A bare program name is looked
    /// up in PATH first (the child must not).
    private static func spawn(_ argv: [String], as identity: ScriptIdentity) -> Result<pid_t, ScriptSecurity.FileView.Errno> {
        guard let path = ScriptSecurity.locate(argv[0], files: .host) else { return .failure(.init(ENOENT)) }
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for p in cArguments { free(p) } }
        var error: Int32 = 0
        let pid = lvs_spawn_as(path, &cArguments, environ, identity.uid, identity.gid, &error)
        return pid > 0 ? .success(pid) : .failure(.init(error))
    }

    private static func wait(for child: pid_t, timeout: Instant, on loop: EventLoop, promise: EventLoopPromise<Outcome>) {
        let killer = loop.scheduleTask(in: .nanoseconds(timeout)) {
            kill(-child, SIGKILL)
        }
        DispatchQueue.global().async {
            var status: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(child, &status, 0) } while result < 0 && errno == EINTR
            loop.execute { killer.cancel() }
            let outcome: Outcome
            if result < 0 {
                outcome = .failedToStart(String(cString: strerror(errno)))
            } else if status & 0x7F == 0 {
                outcome = .exited((status >> 8) & 0xFF)
            } else {
                let signal = status & 0x7F
                outcome = signal == SIGKILL ? .timedOut : .signalled(signal)
            }
            promise.succeed(outcome)
        }
    }
}
