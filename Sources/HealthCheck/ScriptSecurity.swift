#if canImport(Glibc)
import Glibc
#endif

/// The user and group a script runs as.
public struct ScriptIdentity: Hashable, Sendable, CustomStringConvertible {
    public var uid: uid_t
    public var gid: gid_t

    public init(uid: uid_t, gid: gid_t) {
        self.uid = uid
        self.gid = gid
    }

    /// The daemon's own.
    public static var current: ScriptIdentity { ScriptIdentity(uid: getuid(), gid: getgid()) }

    public var description: String { "\(uid):\(gid)" }

    /// `USER [GROUP]` from the passwd and group databases (the user's own group without GROUP);
    /// keepalived's message when either is not there.
    public static func lookup(user: String, group: String? = nil) -> Result<ScriptIdentity, LookupError> {
        var buffer = [CChar](repeating: 0, count: 16_384)
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        guard getpwnam_r(user, &entry, &buffer, buffer.count, &found) == 0 else {
            return .failure(LookupError(description: "Unable to resolve script username '\(user)' - ignoring"))
        }
        guard found != nil else { return .failure(LookupError(description: "Script user '\(user)' does not exist")) }
        var identity = ScriptIdentity(uid: entry.pw_uid, gid: entry.pw_gid)
        if let group {
            var groupEntry = Glibc.group()
            var foundGroup: UnsafeMutablePointer<Glibc.group>?
            guard getgrnam_r(group, &groupEntry, &buffer, buffer.count, &foundGroup) == 0 else {
                return .failure(LookupError(description: "Unable to resolve script group name '\(group)' - ignoring"))
            }
            guard foundGroup != nil else { return .failure(LookupError(description: "Script group '\(group)' does not exist")) }
            identity.gid = groupEntry.gr_gid
        }
        return .success(identity)
    }

    public struct LookupError: Error, Hashable, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }
}

/// keepalived's checks before it agrees to run a script (lib/notify.c): the program must be found
/// and executable by the user it runs as, and when that user is root (or the file is set-uid or
/// set-gid root), no part of its path may be writable by anyone but root. With
/// `enable_script_security` such a script is disabled; without, it runs and is reported.
public enum ScriptSecurity {
    /// What the checks need from the file system, so they can be tested without root.
    public struct FileView: Sendable {
        public struct Status: Hashable, Sendable {
            public var mode: mode_t
            public var uid: uid_t
            public var gid: gid_t

            public init(mode: mode_t, uid: uid_t, gid: gid_t) {
                self.mode = mode
                self.uid = uid
                self.gid = gid
            }

            var isDirectory: Bool { mode & S_IFMT == S_IFDIR }
            var isRegular: Bool { mode & S_IFMT == S_IFREG }
            var isLink: Bool { mode & S_IFMT == S_IFLNK }
        }

        /// lstat (follow false) or stat (follow true); nil with the errno when it fails.
        public var status: @Sendable (_ path: String, _ follow: Bool) -> Result<Status, Errno>
        public var realPath: @Sendable (String) -> Result<String, Errno>
        public var searchPath: [String]

        public init(status: @escaping @Sendable (String, Bool) -> Result<Status, Errno>,
                    realPath: @escaping @Sendable (String) -> Result<String, Errno>, searchPath: [String]) {
            self.status = status
            self.realPath = realPath
            self.searchPath = searchPath
        }

        public struct Errno: Error, Hashable, Sendable {
            public var code: Int32
            public init(_ code: Int32) { self.code = code }
            public var text: String { String(cString: strerror(code)) }
        }

        /// The machine's own file system, and PATH (or the usual directories without one).
        public static var host: FileView {
            let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            return FileView(
                status: { path, follow in
                    var s = stat()
                    let r = follow ? stat(path, &s) : lstat(path, &s)
                    return r == 0 ? .success(Status(mode: s.st_mode, uid: s.st_uid, gid: s.st_gid)) : .failure(Errno(errno))
                },
                realPath: { path in
                    guard let resolved = realpath(path, nil) else { return .failure(Errno(errno)) }
                    defer { free(resolved) }
                    return .success(String(cString: resolved))
                },
                searchPath: path.split(separator: ":", omittingEmptySubsequences: false).map { $0.isEmpty ? "." : String($0) })
        }
    }

    /// The outcome for one script.
    public struct Verdict: Hashable, Sendable {
        /// What to run (the program located in PATH when given by bare name); nil: disabled.
        public var argv: [String]?
        /// Root could be subverted through it (reported whether or not it is disabled).
        public var insecure: Bool
        /// keepalived's log lines about it.
        public var messages: [String]

        public init(argv: [String]?, insecure: Bool, messages: [String]) {
            self.argv = argv
            self.insecure = insecure
            self.messages = messages
        }
    }

    /// `name` as exec would find it: a path as it is; a bare name in the first directory of the
    /// search path that holds a regular file by that name.
    public static func locate(_ name: String, files: FileView) -> String? {
        if name.contains("/") { return name }
        for directory in files.searchPath {
            let candidate = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            if case .success(let s) = files.status(candidate, true), s.isRegular { return candidate }
        }
        return nil
    }

    public static func check(_ argv: [String], as identity: ScriptIdentity, daemon: ScriptIdentity = .current,
                             enforcing: Bool, files: FileView = .host) -> Verdict {
        var verdict = Verdict(argv: nil, insecure: false, messages: [])
        guard let name = argv.first, !name.isEmpty else { return verdict }
        guard let program = locate(name, files: files) else {
            verdict.messages.append("Cannot find script \(name) in path - disabling")
            return verdict
        }
        if identity != daemon && daemon.uid != 0 {
            verdict.messages.append("Unable to set uid:gid \(identity) for script \(program) - disabling")
            return verdict
        }
        let real: String
        switch files.realPath(program) {
        case .failure(let e):
            verdict.messages.append("Script \(program) cannot be accessed - \(e.text)")
            return verdict
        case .success(let r): real = r
        }
        guard case .success(let file) = files.status(real, true) else {
            verdict.messages.append("Unable to access script `\(program)` - disabling")
            return verdict
        }
        guard executable(file, by: identity) else {
            verdict.messages.append("WARNING - script '\(program)' is not executable for uid:gid \(identity) - disabling.")
            return verdict
        }
        let setuidRoot = file.uid == 0 && file.mode & S_IXUSR != 0 && file.mode & S_ISUID != 0
        let setgidRoot = file.gid == 0 && file.mode & S_IXGRP != 0 && file.mode & S_ISGID != 0
        if identity.uid == 0 || identity.gid == 0 || setuidRoot || setgidRoot {
            for path in program == real ? [program] : [program, real] {
                let finding = pathFinding(path, enforcing: enforcing, files: files)
                verdict.messages += finding.messages
                verdict.insecure = verdict.insecure || finding.insecure
                if finding.disable { return verdict }
            }
        }
        verdict.argv = [program] + argv.dropFirst()
        return verdict
    }

    /// Every directory on the way to `path`, and `path` itself, must belong to root and not be
    /// writable by a group other than root's or by all (a directory with the sticky bit excepted).
    static func pathFinding(_ path: String, enforcing: Bool, files: FileView) -> (messages: [String], insecure: Bool, disable: Bool) {
        var prefixes: [String] = []
        var index = path.startIndex
        while let slash = path[index...].firstIndex(of: "/") {
            prefixes.append(slash == path.startIndex ? "/" : String(path[..<slash]))
            index = path.index(after: slash)
        }
        prefixes.append(path)
        for (i, prefix) in prefixes.enumerated() {
            let last = i == prefixes.count - 1
            let s: FileView.Status
            switch files.status(prefix, false) {
            case .success(let status): s = status
            case .failure(let e):
                if [EACCES, ELOOP, ENOENT, ENOTDIR].contains(e.code) {
                    return (["check_script_secure could not find script '\(path)' - disabling"], false, true)
                }
                return (["check_script_secure('\(path)') returned errno \(e.code) - \(e.text) - disabling"], false, true)
            }
            if (!last && !s.isDirectory) || (last && !s.isRegular && !s.isLink) {
                return (["Wrong file type found in script path '\(path)'."], false, true)
            }
            let writableByOthers = (s.gid != 0 && s.mode & S_IWGRP != 0) || s.mode & S_IWOTH != 0
            let guarded = (s.isDirectory && s.mode & S_ISVTX == 0) || s.isRegular
            if s.uid != 0 || (guarded && writableByOthers) {
                return (["Unsafe permissions found for script '\(path)'\(enforcing ? " - disabling" : "")."], true, enforcing)
            }
        }
        return ([], false, false)
    }

    /// Whether `identity` may execute a file with status `s` (root: any execute bit).
    static func executable(_ s: FileView.Status, by identity: ScriptIdentity) -> Bool {
        guard s.isRegular else { return false }
        if identity.uid == 0 { return s.mode & (S_IXUSR | S_IXGRP | S_IXOTH) != 0 }
        if s.uid == identity.uid { return s.mode & S_IXUSR != 0 }
        if s.gid == identity.gid { return s.mode & S_IXGRP != 0 }
        return s.mode & S_IXOTH != 0
    }
}
