import Foundation
import KeepalivedConfig

#if canImport(Glibc)
import Glibc
#endif

/// keepalived.conf files on disk: regular, non-executable files only (as keepalived insists), and
/// include patterns expanded with glob(3) (GLOB_BRACE, sorted).
public struct DiskConfigFiles: ConfigFileSystem, Sendable {
    public var maximumSize = 64 << 20

    public init() {}

    public func read(_ path: String) -> Result<String, ConfigFileError> {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return errno == ENOENT ? .failure(.notFound) : .failure(.unreadable(String(cString: strerror(errno))))
        }
        if info.st_mode & S_IFMT == S_IFDIR { return .failure(.isDirectory) }
        guard info.st_mode & S_IFMT == S_IFREG, info.st_mode & 0o111 == 0 else { return .failure(.notRegular) }
        guard Int(info.st_size) <= maximumSize else { return .failure(.tooLarge(Int(info.st_size))) }
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(.unreadable(String(cString: strerror(errno))))
        }
        return .success(String(decoding: data, as: UTF8.self))
    }

    public func glob(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard Glibc.glob(pattern, GLOB_BRACE, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }
    }
}

/// What `-t` checks a configuration against on this host.
public enum HostFacts {
    /// The network interfaces that exist (/sys/class/net).
    public static func interfaces() -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [])
    }

    /// keepalived's default config id: the host name up to its first dot.
    public static func shortHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(name.split(separator: ".", maxSplits: 1).first ?? "")
    }

    public static var environment: KeepalivedConfiguration.Environment {
        KeepalivedConfiguration.Environment(interfaces: interfaces(), configID: shortHostName())
    }
}
