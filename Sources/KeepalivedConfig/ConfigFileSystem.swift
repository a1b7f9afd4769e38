/// What the configuration reader needs from the outside world, so that the reader itself stays
/// pure: reading a file, expanding an include pattern, and the facts `keepalived -t` checks
/// against the host (the host name for `@` lines, the interfaces that exist).
public protocol ConfigFileSystem {
    /// The contents of a regular file, or why it cannot be read.
    func read(_ path: String) -> Result<String, ConfigFileError>
    /// The paths matching a glob pattern, sorted, as glob(3) with GLOB_BRACE returns them.
    func glob(_ pattern: String) -> [String]
}

/// Why a configuration file could not be read, as keepalived words it.
public enum ConfigFileError: Error, Hashable, Sendable {
    case notFound
    case isDirectory
    /// Not a regular file, or executable (keepalived refuses both).
    case notRegular
    case unreadable(String)
    case tooLarge(Int)
}

/// Files held in memory: tests, fuzzing, and configurations handed over the control socket.
public struct InMemoryFileSystem: ConfigFileSystem, Sendable {
    public var files: [String: String]

    public init(_ files: [String: String] = [:]) {
        self.files = files
    }

    public func read(_ path: String) -> Result<String, ConfigFileError> {
        if let text = files[normalize(path)] { return .success(text) }
        let directory = normalize(path) + "/"
        return files.keys.contains { $0.hasPrefix(directory) } ? .failure(.isDirectory) : .failure(.notFound)
    }

    public func glob(_ pattern: String) -> [String] {
        let matcher = GlobPattern(PathName.normalize(pattern))
        return files.keys.filter { matcher.matches(normalize($0)) }.sorted()
    }

    /// In memory there are no symbolic links, so `..` can be resolved by the name alone.
    private func normalize(_ path: String) -> String { PathName.normalize(path) }
}

/// Path helpers that do not touch the disk.
public enum PathName {
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// `pattern` as seen from the directory of `includer` when it is relative.
    public static func resolve(_ pattern: String, from includer: String) -> String {
        if pattern.hasPrefix("/") { return pattern }
        let base = directory(of: includer)
        return base == "." ? pattern : base + "/" + pattern
    }

    /// Removes `.` components and repeated slashes and resolves `..` by the name (what the
    /// include-loop check and the in-memory files compare).
    public static func normalize(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            if part == "..", let last = parts.last, last != ".." { parts.removeLast() } else if part != ".." || !absolute { parts.append(part) }
        }
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
    }
}

/// A glob(3) pattern with `*`, `?`, `[...]` and `{a,b}` (GLOB_BRACE), matched against whole paths;
/// wildcards do not cross `/` and do not match a leading `.` of a name.
public struct GlobPattern: Sendable {
    private let alternatives: [[UInt8]]

    public init(_ pattern: String) {
        alternatives = GlobPattern.expandBraces(Array(pattern.utf8))
    }

    public var hasWildcards: Bool {
        alternatives.count > 1 || alternatives.contains { $0.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") } }
    }

    /// The literal paths a pattern without wildcards names (one per brace alternative).
    public var literals: [String] { alternatives.map { String(decoding: $0, as: UTF8.self) } }

    public func matches(_ path: String) -> Bool {
        let text = Array(path.utf8)
        return alternatives.contains { GlobPattern.match($0[...], text[...], atNameStart: true) }
    }

    static func expandBraces(_ pattern: [UInt8]) -> [[UInt8]] {
        guard let open = pattern.firstIndex(of: UInt8(ascii: "{")) else { return [pattern] }
        var depth = 0
        var close: Int?
        var commas: [Int] = []
        for i in open..<pattern.count {
            switch pattern[i] {
            case UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 { close = i }
            case UInt8(ascii: ","): if depth == 1 { commas.append(i) }
            default: break
            }
            if close != nil { break }
        }
        guard let close else { return [pattern] }
        let prefix = Array(pattern[..<open]), suffix = Array(pattern[(close + 1)...])
        var bounds = [open] + commas + [close]
        var results: [[UInt8]] = []
        for k in 0..<(bounds.count - 1) {
            let middle = Array(pattern[(bounds[k] + 1)..<bounds[k + 1]])
            results += expandBraces(prefix + middle + suffix)
            if results.count > 4096 { break }
        }
        bounds.removeAll()
        return results
    }

    static func match(_ p: ArraySlice<UInt8>, _ t: ArraySlice<UInt8>, atNameStart: Bool) -> Bool {
        var p = p, t = t, nameStart = atNameStart
        while let c = p.first {
            switch c {
            case UInt8(ascii: "*"):
                if nameStart, t.first == UInt8(ascii: ".") { return false }
                let rest = p.dropFirst()
                var i = t.startIndex
                while true {
                    if match(rest, t[i...], atNameStart: false) { return true }
                    if i == t.endIndex || t[i] == UInt8(ascii: "/") { return false }
                    i += 1
                }
            case UInt8(ascii: "?"):
                guard let ch = t.first, ch != UInt8(ascii: "/"), !(nameStart && ch == UInt8(ascii: ".")) else { return false }
                p = p.dropFirst(); t = t.dropFirst(); nameStart = false
            case UInt8(ascii: "["):
                guard let ch = t.first, ch != UInt8(ascii: "/"), let (matched, rest) = matchClass(p.dropFirst(), ch) else {
                    if p.count > 0, t.first == c, matchClass(p.dropFirst(), c) == nil { p = p.dropFirst(); t = t.dropFirst(); continue }
                    return false
                }
                guard matched else { return false }
                p = rest; t = t.dropFirst(); nameStart = false
            case UInt8(ascii: "\\") where p.count > 1:
                let literal = p[p.startIndex + 1]
                guard t.first == literal else { return false }
                p = p.dropFirst(2); t = t.dropFirst(); nameStart = false
            default:
                guard t.first == c else { return false }
                p = p.dropFirst(); t = t.dropFirst(); nameStart = c == UInt8(ascii: "/")
            }
        }
        return t.isEmpty
    }

    /// A `[...]` class after its `[`: whether `ch` is in it and the pattern after its `]`; nil when unclosed.
    static func matchClass(_ p: ArraySlice<UInt8>, _ ch: UInt8) -> (Bool, ArraySlice<UInt8>)? {
        var p = p
        var negate = false
        if let f = p.first, f == UInt8(ascii: "!") || f == UInt8(ascii: "^") { negate = true; p = p.dropFirst() }
        var matched = false
        var first = true
        while let c = p.first {
            if c == UInt8(ascii: "]") && !first { return (matched != negate, p.dropFirst()) }
            first = false
            if p.count >= 3, p[p.startIndex + 1] == UInt8(ascii: "-"), p[p.startIndex + 2] != UInt8(ascii: "]") {
                if c <= ch && ch <= p[p.startIndex + 2] { matched = true }
                p = p.dropFirst(3)
            } else {
                if c == ch { matched = true }
                p = p.dropFirst()
            }
        }
        return nil
    }
}
