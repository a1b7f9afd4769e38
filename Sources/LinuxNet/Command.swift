import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Runs a system tool (nft) to completion: argv without a shell, `input` on its standard input,
/// its standard output and error collected. Blocking: call it off the packet path.
public enum Command {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
    }

    public static func run(_ argv: [String], input: String = "") -> Result {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { return Result(status: -1, output: String(cString: strerror(errno))) }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0]); close(toChild[1])
            return Result(status: -1, output: String(cString: strerror(errno)))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 2)
        for fd in toChild + fromChild { posix_spawn_file_actions_addclose(&actions, fd) }
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for p in cArguments { free(p) } }
        var pid: pid_t = 0
        let code = posix_spawnp(&pid, argv[0], &actions, nil, &cArguments, environ)
        close(toChild[0])
        close(fromChild[1])
        guard code == 0 else {
            close(toChild[1]); close(fromChild[0])
            return Result(status: -1, output: "\(argv[0]): \(String(cString: strerror(code)))")
        }
        // The input is small (a rule set): write it all, then read until the tool exits.
        let bytes = Array(input.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(toChild[1], $0.baseAddress, $0.count) }
            if n <= 0 { if errno == EINTR { continue }; break }
            written += n
        }
        close(toChild[1])
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fromChild[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            output += chunk[..<n]
        }
        close(fromChild[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exit = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Result(status: exit, output: String(decoding: output, as: UTF8.self))
    }
}

/// /proc/sys, by the dotted names sysctl uses.
public enum Sysctl {
    static func path(_ name: String) -> String { "/proc/sys/" + name.replacingDots() }

    public static func read(_ name: String) -> String? { read(path: path(name)) }

    static func read(path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), f) != nil else { return nil }
        let s = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.hasSuffix("\n") ? String(s.dropLast()) : s
    }

    /// Writes `value`; the error text when it could not be.
    @discardableResult
    public static func write(_ name: String, _ value: String) -> String? { write(path: path(name), value) }

    static func write(path: String, _ value: String) -> String? {
        guard let f = fopen(path, "w") else { return "\(path): \(String(cString: strerror(errno)))" }
        defer { fclose(f) }
        guard fputs(value + "\n", f) >= 0, fflush(f) == 0 else { return "\(path): \(String(cString: strerror(errno)))" }
        return nil
    }
}

extension Sysctl {
    /// An interface's setting, by path (its name may contain dots, as `vrrp.51` does):
    /// net/`family`/conf/`interface`/`key`.
    public static func read(interface: String, family: String, _ key: String) -> String? {
        read(path: "/proc/sys/net/\(family)/conf/\(interface)/\(key)")
    }

    @discardableResult
    public static func write(interface: String, family: String, _ key: String, _ value: String) -> String? {
        write(path: "/proc/sys/net/\(family)/conf/\(interface)/\(key)", value)
    }
}

extension String {
    /// net.ipv4.conf.eth0.rp_filter → net/ipv4/conf/eth0/rp_filter (an interface name may not
    /// contain a dot here; sysctl's own escaping with / is not needed for the names lvsd writes).
    func replacingDots() -> String { String(map { $0 == "." ? "/" : $0 }) }
}

/// if_nametoindex.
public func interfaceIndex(_ name: String) -> Int32? {
    let i = lvs_interface_index(name)
    return i > 0 ? Int32(i) : nil
}
