/// One logical line of a configuration after keepalived's pre-processing: comments removed, `@`
/// conditions applied, `$` macros and `~SEQ`/`~LST` expanded, includes read, and every `{` and `}`
/// on a line of its own.
public struct ConfigLine: Hashable, Sendable {
    /// The words as keepalived's keyword handlers see them (double quotes group and are removed).
    public var words: [String]
    /// The line's text, for keywords that split it again the shell's way (scripts).
    public var text: String
    public var location: SourceLocation

    public init(words: [String], text: String, location: SourceLocation) {
        self.words = words
        self.text = text
        self.location = location
    }
}

/// keepalived's configuration reader (lib/parser.c `read_line`), as a pure function of the files it
/// is given: it turns a configuration file and its includes into logical lines and findings.
///
/// The order of work on a line is keepalived's: comments, then `@id` conditions, `$NAME=`
/// definitions, `~SEQ`/`~LST`, `$` substitution (repeated while it changes something), `include`,
/// and last the brace split. Unlike keepalived it refuses include loops and bounds every expansion,
/// so that no input can make it run without end.
public struct ConfigReader {
    public struct Options: Sendable {
        /// The id `@id` lines are compared with (keepalived's `-i`, default: the short host name).
        public var configID: String?
        public var maximumIncludeDepth = 32
        /// Logical lines produced in all, after every expansion.
        public var maximumLines = 4_000_000
        /// Bytes of one line after substitution.
        public var maximumLineLength = 65_536
        /// Bytes of one file.
        public var maximumFileSize = 64 << 20
        /// Seeds `${_RANDOM}`.
        public var randomSeed: UInt64 = 0x5EED

        public init(configID: String? = nil) {
            self.configID = configID
        }
    }

    let fileSystem: any ConfigFileSystem
    let options: Options
    private(set) var lines: [ConfigLine] = []
    private(set) var diagnostics: [Diagnostic] = []
    private var definitions: [String: Definition] = [:]
    private var openFiles: [String] = []
    private var collecting: (name: String, value: [String])?
    private var random: UInt64
    private var stopped = false
    /// The place of the physical line being worked on.
    private var here = SourceLocation(file: "", line: 0)

    struct Definition {
        var lines: [String]
        var isMultiline: Bool { lines.count > 1 }
    }

    public init(fileSystem: any ConfigFileSystem, options: Options = Options()) {
        self.fileSystem = fileSystem
        self.options = options
        random = options.randomSeed | 1
    }

    /// Reads `path` (and what it includes) into logical lines.
    public static func read(_ path: String, fileSystem: any ConfigFileSystem, options: Options = Options())
        -> (lines: [ConfigLine], diagnostics: [Diagnostic]) {
        var reader = ConfigReader(fileSystem: fileSystem, options: options)
        reader.readMain(path)
        return (reader.lines, reader.diagnostics)
    }

    mutating func readMain(_ path: String) {
        switch fileSystem.read(path) {
        case .success(let text):
            readFile(path, text: text)
        case .failure(let error):
            report(.fileNotFound, ConfigReader.describe(error, path: path), at: nil)
        }
    }

    static func describe(_ error: ConfigFileError, path: String) -> String {
        switch error {
        case .notFound: return "Unable to find configuration file \(path)"
        case .isDirectory: return "Configuration file '\(path)' is a directory - skipping"
        case .notRegular: return "Configuration file '\(path)' is not a regular non-executable file - skipping"
        case .unreadable(let why): return "Configuration file '\(path)' open problem (\(why)) - skipping"
        case .tooLarge(let size): return "Configuration file '\(path)' is too large (\(size) bytes) - skipping"
        }
    }

    private mutating func report(_ kind: Diagnostic.Kind, _ message: String, at location: SourceLocation?) {
        diagnostics.append(Diagnostic(kind, message, at: location))
    }

    // MARK: Files

    private mutating func readFile(_ path: String, text: String) {
        if text.utf8.count > options.maximumFileSize {
            report(.fileNotFound, ConfigReader.describe(.tooLarge(text.utf8.count), path: path), at: here.line > 0 ? here : nil)
            return
        }
        let saved = here
        openFiles.append(path)
        defer {
            openFiles.removeLast()
            here = saved
        }
        var number = 0
        for physical in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if stopped { return }
            number += 1
            here = SourceLocation(file: path, line: number)
            var bytes = Array(physical)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            physicalLine(bytes)
        }
        finishDefinition()
    }

    private mutating func physicalLine(_ bytes: [UInt8]) {
        if collecting != nil, bytes.isEmpty {
            finishDefinition()
            return
        }
        guard let (text, continued) = decomment(bytes) else { return }
        if collecting != nil {
            collecting!.value.append(String(decoding: text, as: UTF8.self))
            if !continued { finishDefinition() }
            return
        }
        process(text + (continued ? [UInt8(ascii: "\\")] : []), depth: 0)
    }

    private mutating func finishDefinition() {
        guard let (name, value) = collecting else { return }
        collecting = nil
        let kept = value.filter { !$0.isEmpty }
        definitions[name] = Definition(lines: kept.isEmpty ? [""] : kept)
    }

    /// keepalived's `decomment`: leading blanks, `#`/`!` comments outside double quotes, `\#` and
    /// `\!` escapes, trailing blanks; nil for a line with nothing left. `continued` when it ended in `\`.
    private mutating func decomment(_ line: [UInt8]) -> (text: [UInt8], continued: Bool)? {
        var start = 0
        while start < line.count, line[start] == UInt8(ascii: " ") || line[start] == UInt8(ascii: "\t") { start += 1 }
        var out: [UInt8] = []
        out.reserveCapacity(line.count - start)
        var inQuotes = false
        var continued = false
        var i = start
        while i < line.count {
            let c = line[i]
            if c == UInt8(ascii: "\"") {
                inQuotes.toggle()
            } else if c == UInt8(ascii: "\\") {
                if i + 1 == line.count {
                    continued = true
                    i += 1
                    continue
                }
                let next = line[i + 1]
                if !inQuotes && (next == UInt8(ascii: "#") || next == UInt8(ascii: "!")) {
                    out.append(next)
                } else {
                    out.append(c)
                    out.append(next)
                }
                i += 2
                continue
            } else if !inQuotes && (c == UInt8(ascii: "#") || c == UInt8(ascii: "!")) {
                if line.last == UInt8(ascii: "\\") { continued = true }
                break
            }
            out.append(c)
            i += 1
        }
        if inQuotes {
            report(.generalError, "Unterminated quote '\(String(decoding: line[start...], as: UTF8.self))'", at: here)
        }
        while let last = out.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { out.removeLast() }
        if out.isEmpty && !continued { return nil }
        return (out, continued)
    }

    // MARK: One logical line

    private mutating func process(_ input: [UInt8], depth: Int) {
        if stopped { return }
        guard depth < 64 else {
            report(.generalError, "Configuration line expansion nested too deeply - skipping '\(String(decoding: input.prefix(80), as: UTF8.self))'", at: here)
            return
        }
        var text = input
        var remainder: [String] = []
        var passes = 0
        while true {
            passes += 1
            if passes > 64 {
                report(.generalError, "Parameter substitution on line does not settle - skipping", at: here)
                return
            }
            if text.first == UInt8(ascii: "@") {
                guard let kept = applyCondition(text) else { return }
                text = kept
                if text.isEmpty { return }
            }
            if text.first == UInt8(ascii: "$"), defineMacro(text) { return }
            if text.starts(with: Array("~SEQ".utf8)) {
                expandSequence(text, depth: depth)
                return
            }
            if text.starts(with: Array("~LST".utf8)) {
                expandList(text, depth: depth)
                return
            }
            if text.first == UInt8(ascii: "~") { break }
            guard text.contains(UInt8(ascii: "$")) else { break }
            guard let (substituted, more) = substitute(text) else { break }
            remainder = more + remainder
            guard let (clean, _) = decomment(substituted) else {
                text = []
                break
            }
            text = clean
            if !(text.first == UInt8(ascii: "@") || text.contains(UInt8(ascii: "$"))) { break }
        }
        if !text.isEmpty {
            if !include(text, depth: depth) { splitBraces(text) }
        }
        for line in remainder {
            if let (clean, continued) = decomment(Array(line.utf8)) {
                process(clean + (continued ? [UInt8(ascii: "\\")] : []), depth: depth + 1)
            }
        }
    }

    /// `@id rest` and `@^id rest`: the rest when the condition holds, nil when the line is dropped.
    private func applyCondition(_ text: [UInt8]) -> [UInt8]? {
        var i = 1
        let negate = text.count > 1 && text[1] == UInt8(ascii: "^")
        if negate { i = 2 }
        let idStart = i
        while i < text.count, text[i] != UInt8(ascii: " "), text[i] != UInt8(ascii: "\t") { i += 1 }
        guard i < text.count else { return nil }
        let id = String(decoding: text[idStart..<i], as: UTF8.self)
        let matches = options.configID.map { $0 == id } ?? false
        guard matches != negate else { return nil }
        while i < text.count, text[i] == UInt8(ascii: " ") || text[i] == UInt8(ascii: "\t") { i += 1 }
        return Array(text[i...])
    }

    private static func isNameStart(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || c == UInt8(ascii: "_")
    }

    private static func isNameCharacter(_ c: UInt8) -> Bool {
        isNameStart(c) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    /// `$NAME=value` (no blank before `=`); a value ending in `\` starts a multi-line definition.
    private mutating func defineMacro(_ text: [UInt8]) -> Bool {
        var i = 1
        guard i < text.count, ConfigReader.isNameStart(text[i]) else { return false }
        while i < text.count, ConfigReader.isNameCharacter(text[i]) { i += 1 }
        guard i < text.count, text[i] == UInt8(ascii: "=") else { return false }
        let name = String(decoding: text[1..<i], as: UTF8.self)
        i += 1
        while i < text.count, text[i] == UInt8(ascii: " ") || text[i] == UInt8(ascii: "\t") { i += 1 }
        var value = Array(text[i...])
        if value.last == UInt8(ascii: "\\") {
            value.removeLast()
            while let last = value.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { value.removeLast() }
            finishDefinition()
            collecting = (name, [String(decoding: value, as: UTF8.self)])
            return true
        }
        definitions[name] = Definition(lines: [String(decoding: value, as: UTF8.self)])
        return true
    }

    /// One pass of `$NAME` / `${NAME}` substitution: the new line and, for a multi-line definition
    /// referenced at the end of the line, the lines that follow it; nil when nothing was replaced.
    private mutating func substitute(_ text: [UInt8]) -> ([UInt8], [String])? {
        var out: [UInt8] = []
        var changed = false
        var more: [String] = []
        var i = 0
        while i < text.count {
            guard text[i] == UInt8(ascii: "$"), i + 1 < text.count else {
                out.append(text[i])
                i += 1
                continue
            }
            var nameStart = i + 1, nameEnd: Int, next: Int
            var parameters: [UInt8] = []
            if text[nameStart] == UInt8(ascii: "{") {
                nameStart += 1
                var j = nameStart
                while j < text.count, ConfigReader.isNameCharacter(text[j]) { j += 1 }
                nameEnd = j
                if j < text.count, text[j] == UInt8(ascii: " ") {
                    var k = j
                    while k < text.count, text[k] != UInt8(ascii: "}") { k += 1 }
                    parameters = Array(text[(j + 1)..<min(k, text.count)])
                    j = k
                }
                guard j < text.count, text[j] == UInt8(ascii: "}"), nameEnd > nameStart, ConfigReader.isNameStart(text[nameStart]) else {
                    out.append(text[i])
                    i += 1
                    continue
                }
                next = j + 1
            } else {
                guard ConfigReader.isNameStart(text[nameStart]) else {
                    out.append(text[i])
                    i += 1
                    continue
                }
                var j = nameStart
                while j < text.count, ConfigReader.isNameCharacter(text[j]) { j += 1 }
                nameEnd = j
                next = j
                if j < text.count, ![UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: ","), UInt8(ascii: ")")].contains(text[j]) {
                    out.append(text[i])
                    i += 1
                    continue
                }
            }
            let name = String(decoding: text[nameStart..<nameEnd], as: UTF8.self)
            guard let value = lookUp(name, parameters: parameters) else {
                out.append(text[i])
                i += 1
                continue
            }
            if value.count > 1 {
                // keepalived only expands a multi-line definition referenced at the end of a line.
                guard next == text.count else {
                    out.append(text[i])
                    i += 1
                    continue
                }
                more = Array(value.dropFirst())
            }
            out += Array(value[0].utf8)
            changed = true
            if out.count > options.maximumLineLength {
                report(.generalError, "Parameter substitution on line would exceed maximum line length", at: here)
                return (Array(out.prefix(options.maximumLineLength)), [])
            }
            i = next
        }
        return changed ? (out, more) : nil
    }

    private mutating func lookUp(_ name: String, parameters: [UInt8]) -> [String]? {
        switch name {
        case "_PWD" where definitions[name] == nil: return [PathName.directory(of: here.file)]
        case "_INSTANCE" where definitions[name] == nil: return [options.configID ?? ""]
        case "_HASH" where definitions[name] == nil: return ["#"]
        case "_BANG" where definitions[name] == nil: return ["!"]
        case "_RANDOM" where definitions[name] == nil:
            let numbers = parameters.split(separator: UInt8(ascii: " ")).compactMap { Int(String(decoding: $0, as: UTF8.self)) }
            let low = numbers.first ?? 0, high = numbers.count > 1 ? numbers[1] : 32767
            guard high >= low else { return [String(low)] }
            random = random &* 6364136223846793005 &+ 1442695040888963407
            return [String(low + Int((random >> 33) % UInt64(high - low + 1)))]
        default:
            guard parameters.isEmpty else { return nil }
            return definitions[name]?.lines
        }
    }

    // MARK: ~SEQ and ~LST

    private mutating func expandSequence(_ text: [UInt8], depth: Int) {
        let whole = String(decoding: text, as: UTF8.self)
        var rest = text.dropFirst(4)
        var hex = false
        if rest.first == UInt8(ascii: "x") {
            hex = true
            rest = rest.dropFirst()
        }
        guard let (arguments, body) = ConfigReader.parenthesised(rest) else {
            report(.generalError, "Invalid ~SEQ specification '\(whole)'", at: here)
            return
        }
        var substitutedArguments = arguments
        if arguments.contains(UInt8(ascii: "$")), let (s, more) = substitute(arguments) {
            if !more.isEmpty {
                report(.generalError, "~SEQ parameter is multiline definition '\(whole)'", at: here)
                report(.generalError, "Invalid ~SEQ specification '\(whole)'", at: here)
                return
            }
            substitutedArguments = s
        }
        let fields = String(decoding: substitutedArguments, as: UTF8.self).split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingBlanks() }
        guard fields.count >= 2, fields.count <= 4, let variable = fields.first, !variable.isEmpty,
              variable.utf8.allSatisfy(ConfigReader.isNameCharacter) else {
            report(.generalError, "Invalid ~SEQ definition '\(whole)'", at: here)
            report(.generalError, "Invalid ~SEQ specification '\(whole)'", at: here)
            return
        }
        let numbers = fields.dropFirst().map(ConfigReader.cNumber)
        guard numbers.allSatisfy({ $0 != nil }) else {
            report(.generalError, "Invalid ~SEQ definition '\(whole)'", at: here)
            report(.generalError, "Invalid ~SEQ specification '\(whole)'", at: here)
            return
        }
        let n = numbers.map { $0! }
        var start: Int, step: Int, end: Int
        switch n.count {
        case 1:
            end = n[0]
            step = end < 1 ? -1 : 1
            start = end < 0 ? -1 : 1
        case 2:
            start = n[0]
            end = n[1]
            step = start <= end ? 1 : -1
        default:
            start = n[0]
            step = n[1]
            end = n[2]
            if step == 0 || (step > 0 && start > end) || (step < 0 && start < end) {
                report(.generalError, "Invalid ~SEQ values '\(whole)'", at: here)
                report(.generalError, "Invalid ~SEQ specification '\(whole)'", at: here)
                return
            }
        }
        if hex && (start < 0 || end < 0) {
            report(.generalError, "~SEQx is only valid for positive numbers '\(whole)'", at: here)
            report(.generalError, "Invalid ~SEQ specification '\(whole)'", at: here)
            return
        }
        var value = start
        var emitted = 0
        while step > 0 ? value <= end : value >= end {
            emitted += 1
            if stopped { return }
            if emitted > 1_000_000 {
                report(.generalError, "~SEQ produces too many lines '\(whole)'", at: here)
                return
            }
            definitions[variable] = Definition(lines: [hex ? String(value, radix: 16) : String(value)])
            process(Array(body), depth: depth + 1)
            let (next, overflow) = value.addingReportingOverflow(step)
            if overflow { break }
            value = next
        }
    }

    private mutating func expandList(_ text: [UInt8], depth: Int) {
        let whole = String(decoding: text, as: UTF8.self)
        guard let (arguments, body) = ConfigReader.parenthesised(text.dropFirst(4)) else {
            report(.generalError, "Invalid ~LST specification '\(whole)'", at: here)
            return
        }
        let inner = String(decoding: arguments, as: UTF8.self)
        var groups: [[String]] = []
        var variables: [String]
        if inner.trimmingBlanks().hasPrefix("{") {
            var sets: [[String]] = []
            var current = ""
            var inBraces = false
            for ch in inner {
                if ch == "{" { inBraces = true; current = ""; continue }
                if ch == "}" {
                    inBraces = false
                    sets.append(current.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingBlanks() })
                    continue
                }
                if inBraces { current.append(ch) }
            }
            guard let names = sets.first, !names.isEmpty, names.allSatisfy({ !$0.isEmpty }), sets.count > 1 else {
                report(.generalError, "Invalid ~LST specification '\(whole)'", at: here)
                return
            }
            variables = names
            for values in sets.dropFirst() {
                if values.count > names.count {
                    report(.generalError, "~LST specification has too many values '\(whole)'", at: here)
                    return
                }
                groups.append(values + Array(repeating: "", count: names.count - values.count))
            }
        } else {
            let fields = inner.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingBlanks() }
            guard fields.count >= 2, !fields[0].isEmpty else {
                report(.generalError, "Invalid ~LST specification '\(whole)'", at: here)
                return
            }
            variables = [fields[0]]
            groups = fields.dropFirst().map { [$0] }
        }
        for values in groups {
            if stopped { return }
            for (name, value) in zip(variables, values) { definitions[name] = Definition(lines: [value]) }
            process(Array(body), depth: depth + 1)
        }
    }

    /// `( ... ) rest` after optional blanks: the bytes inside and the rest without leading blanks.
    private static func parenthesised(_ text: ArraySlice<UInt8>) -> ([UInt8], ArraySlice<UInt8>)? {
        var t = text
        while t.first == UInt8(ascii: " ") || t.first == UInt8(ascii: "\t") { t = t.dropFirst() }
        guard t.first == UInt8(ascii: "(") else { return nil }
        var depth = 0
        var i = t.startIndex
        while i < t.endIndex {
            if t[i] == UInt8(ascii: "(") { depth += 1 }
            if t[i] == UInt8(ascii: ")") {
                depth -= 1
                if depth == 0 { break }
            }
            i += 1
        }
        guard i < t.endIndex else { return nil }
        var body = t[(i + 1)...]
        while body.first == UInt8(ascii: " ") || body.first == UInt8(ascii: "\t") { body = body.dropFirst() }
        return (Array(t[(t.startIndex + 1)..<i]), body)
    }

    /// strtol with base 0: decimal, `0x` hex, leading-0 octal, optional sign; empty is 0.
    static func cNumber(_ text: String) -> Int? {
        if text.isEmpty { return 0 }
        var s = Substring(text)
        var negative = false
        if s.first == "-" || s.first == "+" {
            negative = s.first == "-"
            s = s.dropFirst()
        }
        var radix = 10
        if s.hasPrefix("0x") || s.hasPrefix("0X") {
            radix = 16
            s = s.dropFirst(2)
        } else if s.count > 1, s.first == "0" {
            radix = 8
            s = s.dropFirst()
        }
        guard let value = Int(s, radix: radix) else { return nil }
        return negative ? -value : value
    }

    // MARK: include

    /// `include PATTERN` (and keepalived's includer/m/w/b/a): reads every match, in glob order.
    private mutating func include(_ text: [UInt8], depth: Int) -> Bool {
        let keyword = Array("include".utf8)
        guard text.starts(with: keyword) else { return false }
        var i = keyword.count
        if i < text.count, "rmwba".utf8.contains(text[i]) { i += 1 }
        guard i < text.count, text[i] == UInt8(ascii: " ") || text[i] == UInt8(ascii: "\t") else { return false }
        while i < text.count, text[i] == UInt8(ascii: " ") || text[i] == UInt8(ascii: "\t") { i += 1 }
        guard i < text.count else { return false }
        let pattern = String(decoding: text[i...], as: UTF8.self)
        let includer = here
        let resolved = PathName.resolve(pattern, from: includer.file)
        guard openFiles.count <= options.maximumIncludeDepth else {
            report(.fileNotFound, "Includes nested more than \(options.maximumIncludeDepth) deep - skipping '\(pattern)'", at: includer)
            return true
        }
        let glob = GlobPattern(resolved)
        var matches = fileSystem.glob(resolved)
        if matches.isEmpty && !glob.hasWildcards {
            matches = glob.literals
        }
        if matches.isEmpty {
            report(.fileNotFound, "No config files matched '\(pattern)'.", at: includer)
            return true
        }
        for path in matches {
            if stopped { return true }
            let normalized = PathName.normalize(path)
            if openFiles.contains(where: { PathName.normalize($0) == normalized }) {
                report(.fileNotFound, "Configuration file '\(path)' includes itself (include loop) - skipping", at: includer)
                continue
            }
            switch fileSystem.read(path) {
            case .success(let contents):
                // A definition being collected ends where its file ends.
                finishDefinition()
                readFile(path, text: contents)
            case .failure(.notFound):
                report(.fileNotFound, "Config files missing '\(pattern)'.", at: includer)
            case .failure(let error):
                report(.fileNotFound, ConfigReader.describe(error, path: path), at: includer)
            }
        }
        return true
    }

    // MARK: Braces and words

    private mutating func splitBraces(_ input: [UInt8]) {
        let text = input[...]
        while !text.isEmpty {
            var i = text.startIndex
            var brace: Int?
            while i < text.endIndex {
                let c = text[i]
                if c == UInt8(ascii: "\"") {
                    guard let close = text[(i + 1)...].firstIndex(of: UInt8(ascii: "\"")) else { break }
                    i = close + 1
                    continue
                }
                if c == UInt8(ascii: "{") || c == UInt8(ascii: "}") {
                    brace = i
                    break
                }
                i += 1
            }
            guard let at = brace else {
                emit(text)
                return
            }
            if at > text.startIndex { emit(text[..<at]) }
            emit(text[at...at])
            var rest = text[(at + 1)...]
            while rest.first == UInt8(ascii: " ") || rest.first == UInt8(ascii: "\t") { rest = rest.dropFirst() }
            if rest.isEmpty { return }
            // The residue is a line of its own and is pre-processed again.
            process(Array(rest), depth: 1)
            return
        }
    }

    private mutating func emit(_ slice: ArraySlice<UInt8>) {
        var end = slice.endIndex
        while end > slice.startIndex, slice[end - 1] == UInt8(ascii: " ") || slice[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        let text = Array(slice[slice.startIndex..<end])
        let words = ConfigReader.words(text, report: { message in
            diagnostics.append(Diagnostic(.unmatchedQuote, message, at: here))
        })
        guard !words.isEmpty else { return }
        if lines.count >= options.maximumLines {
            report(.fatal, "Configuration has more than \(options.maximumLines) lines after expansion - stopping", at: here)
            stopped = true
            return
        }
        lines.append(ConfigLine(words: words, text: String(decoding: text, as: UTF8.self), location: here))
    }

    /// keepalived's `alloc_strvec_r`: words separated by blanks; a word starting with `"` runs to
    /// the next `"` (no escapes); an unquoted word also ends at a `"`.
    static func words(_ text: [UInt8], report: (String) -> Void) -> [String] {
        var words: [String] = []
        var i = 0
        func isSpace(_ c: UInt8) -> Bool {
            c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == 0x0C || c == 0x0A || c == 0x0D || c == 0x0B
        }
        while i < text.count {
            while i < text.count, isSpace(text[i]) { i += 1 }
            guard i < text.count else { break }
            if text[i] == UInt8(ascii: "\"") {
                guard let close = text[(i + 1)...].firstIndex(of: UInt8(ascii: "\"")) else {
                    report("Unmatched quote: '\(String(decoding: text, as: UTF8.self))'")
                    break
                }
                words.append(String(decoding: text[(i + 1)..<close], as: UTF8.self))
                i = close + 1
            } else {
                let start = i
                while i < text.count, !isSpace(text[i]), text[i] != UInt8(ascii: "\"") { i += 1 }
                words.append(String(decoding: text[start..<i], as: UTF8.self))
            }
        }
        return words
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func trimmingBlanks() -> String {
        let bytes = Array(utf8)
        var start = 0, end = bytes.count
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
