/// Where a configuration item came from: the file as it was named (the `-f` path, or the include
/// pattern's match) and its 1-based line.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }
}

/// One finding about a configuration, in keepalived's words.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    /// keepalived's `config_err_t` categories, most severe first. `keepalived -t` exits with a code
    /// derived from the numerically largest category it met (`exitCode(for:)`), and so does `lvsd -t`.
    public enum Kind: Int, Comparable, Sendable {
        case fileNotFound = 1
        case badInterface = 2
        case fatal = 3
        case multipleFiles = 4
        case unknownKeyword = 5
        case unexpectedBlockStart = 6
        case missingBlockStart = 7
        case unexpectedBlockEnd = 8
        case missingBlockEnd = 9
        case unmatchedQuote = 10
        case missingParameter = 11
        case invalidNumber = 12
        case generalError = 13
        case warning = 14
        case deprecated = 15
        case securityError = 16

        public static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    public var kind: Kind
    public var location: SourceLocation?
    public var message: String

    public init(_ kind: Kind, _ message: String, at location: SourceLocation? = nil) {
        self.kind = kind
        self.message = message
        self.location = location
    }

    /// Whether the item the message is about was still applied (a warning, a deprecation) or was
    /// dropped or defaulted (everything else).
    public var isWarning: Bool { kind == .warning || kind == .deprecated }

    /// keepalived's layout: `(FILE: Line N) message`; without a place, the bare message.
    public var description: String {
        guard let location else { return message }
        return "(\(location.file): Line \(location.line)) \(message)"
    }

    /// The exit status of `keepalived -t` (and `lvsd -t`) for a set of findings: 0 when there are
    /// none; 6 for a security finding; 4 when the largest category is a missing file, a missing
    /// interface or a fatal error; 5 for everything else, warnings included.
    public static func exitCode(for diagnostics: [Diagnostic]) -> Int32 {
        guard let worst = diagnostics.map(\.kind).max() else { return 0 }
        switch worst {
        case .securityError: return 6
        case .fileNotFound, .badInterface, .fatal: return 4
        default: return 5
        }
    }
}
