import LVSCore

/// The value readers keepalived's keyword handlers share (lib/parser.c), with their messages.
/// A reader that fails reports why and returns nil; the caller then keeps its default, as
/// keepalived does.
struct Decoder {
    var diagnostics: [Diagnostic] = []

    mutating func report(_ kind: Diagnostic.Kind, _ message: String, _ node: ConfigNode) {
        diagnostics.append(Diagnostic(kind, message, at: node.location))
    }

    mutating func report(_ kind: Diagnostic.Kind, _ message: String, at location: SourceLocation?) {
        diagnostics.append(Diagnostic(kind, message, at: location))
    }

    mutating func unknown(_ node: ConfigNode) {
        // Its block (if any) is skipped with it; the `{` is not a finding of its own.
        if let last = diagnostics.last, last.kind == .unexpectedBlockStart, last.location == node.location { diagnostics.removeLast() }
        report(.unknownKeyword, "Unknown keyword '\(node.keyword)'", node)
    }

    /// A keyword that takes no block was followed by one: keepalived ignores the `{`.
    mutating func refuseBlock(_ node: ConfigNode) {
        if node.block != nil { report(.unexpectedBlockStart, "Unexpected '{' - ignoring", node) }
    }

    /// The block of a block keyword; reports a missing `{` (the keyword's contents are then empty).
    mutating func block(_ node: ConfigNode) -> [ConfigNode] {
        guard let block = node.block else {
            report(.missingBlockStart, "Missing '{' at beginning of configuration block", node)
            return []
        }
        return block
    }

    /// A `{ ... }` list: every line inside as its words.
    mutating func entries(_ node: ConfigNode) -> [[String]] {
        entryLines(node).map(\.words)
    }

    /// A `{ ... }` list: every line inside, with its place.
    mutating func entryLines(_ node: ConfigNode) -> [ConfigLine] {
        guard let block = node.block else {
            report(.missingBlockStart, "'{' missing from beginning of block \(node.keyword)", node)
            return []
        }
        if node.words.count > 1 {
            report(.generalError, "Block \(node.keyword) has extra parameters \(node.words.dropFirst().joined(separator: " ")) ...", node)
        }
        var lines: [ConfigLine] = []
        func flatten(_ nodes: [ConfigNode]) {
            for n in nodes {
                lines.append(n.line)
                if let inner = n.block { flatten(inner) }
            }
        }
        flatten(block)
        return lines
    }

    /// Word `index` of the line, or keepalived's missing-parameter message.
    mutating func word(_ node: ConfigNode, _ index: Int) -> String? {
        if index < node.words.count { return node.words[index] }
        report(.missingParameter,
               "*** Configuration line starting `\(node.words[0])` is missing a parameter after keyword `\(node.words[node.words.count - 1])` at word position \(index + 1)",
               node)
        return nil
    }

    // MARK: Numbers (read_unsigned / read_int / read_timer)

    /// keepalived's `read_unsigned_strvec`: base 10, no sign.
    mutating func unsigned(_ node: ConfigNode, _ index: Int, in range: ClosedRange<UInt64>) -> UInt64? {
        guard let text = word(node, index) else { return nil }
        return unsigned(text, in: range, node)
    }

    mutating func unsigned(_ text: String, in range: ClosedRange<UInt64>, _ node: ConfigNode) -> UInt64? {
        let trimmed = text.trimmingBlanks()
        if trimmed.hasPrefix("-") {
            report(.invalidNumber, "negative number '\(text)'", node)
            return nil
        }
        let digits = trimmed.hasPrefix("+") ? String(trimmed.dropFirst()) : trimmed
        guard digits.isEmpty || digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            report(.invalidNumber, "invalid number '\(text)'", node)
            return nil
        }
        guard let value = digits.isEmpty ? 0 : UInt64(digits), value <= UInt64(UInt32.max) || range.upperBound > UInt64(UInt32.max) else {
            report(.invalidNumber, "number '\(text)' outside unsigned integer range", node)
            return nil
        }
        guard range.contains(value) else {
            report(.invalidNumber, "number '\(text)' outside range [\(range.lowerBound), \(range.upperBound)]", node)
            return nil
        }
        return value
    }

    /// keepalived's `read_int_strvec`: base 10, optional sign.
    mutating func integer(_ node: ConfigNode, _ index: Int, in range: ClosedRange<Int64>) -> Int64? {
        guard let text = word(node, index) else { return nil }
        return integer(text, in: range, node)
    }

    mutating func integer(_ text: String, in range: ClosedRange<Int64>, _ node: ConfigNode) -> Int64? {
        let trimmed = text.trimmingBlanks()
        var digits = Substring(trimmed)
        var negative = false
        if digits.first == "-" || digits.first == "+" {
            negative = digits.first == "-"
            digits = digits.dropFirst()
        }
        guard digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            report(.invalidNumber, "invalid number '\(text)'", node)
            return nil
        }
        guard let magnitude = digits.isEmpty ? 0 : Int64(digits), magnitude <= Int64(Int32.max) + (negative ? 1 : 0) else {
            report(.invalidNumber, "number '\(text)' outside integer range", node)
            return nil
        }
        let value = negative ? -magnitude : magnitude
        guard range.contains(value) else {
            report(.invalidNumber, "number '\(text)' outside range [\(range.lowerBound), \(range.upperBound)]", node)
            return nil
        }
        return value
    }

    /// keepalived's `read_timer`/`read_decimal_unsigned`: seconds with up to six decimals, as
    /// microseconds. Too many decimals are rounded (with a message) and still accepted.
    mutating func timer(_ node: ConfigNode, _ index: Int, minimum: Microseconds = 0, maximum: Microseconds = UInt64.max - 1) -> Microseconds? {
        guard let text = word(node, index) else { return nil }
        return decimal(text, places: 6, minimum: minimum, maximum: maximum, node)
    }

    mutating func decimal(_ text: String, places: Int, minimum: UInt64, maximum: UInt64, _ node: ConfigNode) -> UInt64? {
        if text.hasPrefix("-") {
            report(.invalidNumber, "negative number '\(text)'", node)
            return nil
        }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        var fraction = parts.count > 1 ? String(parts[1]) : ""
        let isDigits: (Substring) -> Bool = { $0.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
        guard isDigits(whole), isDigits(Substring(fraction)) else {
            report(.invalidNumber, "invalid number '\(text)'", node)
            return nil
        }
        var roundUp = false
        if fraction.count > places {
            report(.invalidNumber, "number '\(text)' has too many decimal places", node)
            let next = fraction.utf8[fraction.utf8.index(fraction.utf8.startIndex, offsetBy: places)]
            roundUp = next >= UInt8(ascii: "5")
            fraction = String(fraction.prefix(places))
        }
        fraction += String(repeating: "0", count: places - fraction.count)
        var scale: UInt64 = 1
        for _ in 0..<places { scale *= 10 }
        guard let w = whole.isEmpty ? 0 : UInt64(whole), let f = UInt64(fraction.isEmpty ? "0" : fraction),
              case let (scaled, overflow) = w.multipliedReportingOverflow(by: scale), !overflow,
              case let (sum, overflow2) = scaled.addingReportingOverflow(f + (roundUp ? 1 : 0)), !overflow2 else {
            report(.invalidNumber, "number '\(text)' outside unsigned decimal range", node)
            return nil
        }
        guard sum >= minimum && sum <= maximum else {
            func show(_ v: UInt64) -> String {
                let frac = String(v % scale)
                return "\(v / scale).\(String(repeating: "0", count: places - frac.count))\(frac)"
            }
            report(.invalidNumber, "number '\(text)' outside range [\(show(minimum)), \(show(maximum))]", node)
            return nil
        }
        return sum
    }

    /// An optional boolean (`true|on|yes`, `false|off|no`); no word means true. nil when invalid.
    func optionalBool(_ node: ConfigNode, _ index: Int = 1) -> Bool? {
        guard index < node.words.count else { return true }
        switch node.words[index] {
        case "true", "on", "yes": return true
        case "false", "off", "no": return false
        default: return nil
        }
    }

    // MARK: Scripts

    /// A script keyword (`notify_up "CMD ARGS" [USER [GROUP]]`): the raw line split the shell's way
    /// (keepalived's `alloc_strvec_quoted_escaped`), the command split again into argv.
    mutating func script(_ node: ConfigNode) -> ScriptCommand? {
        guard let words = ScriptWords.split(node.line.text) else {
            report(.unmatchedQuote, "String '\(node.line.text)': missing terminating quote", node)
            return nil
        }
        guard words.count > 1 else {
            _ = word(node, 1)
            return nil
        }
        let command = words[1]
        let argv = ScriptWords.split(command) ?? [command]
        return ScriptCommand(text: command, argv: argv, user: words.count > 2 ? words[2] : nil, group: words.count > 3 ? words[3] : nil)
    }

    // MARK: Addresses

    /// keepalived's `inet_stosockaddr` for LVS addresses: IPv6 when the text has a `:`.
    static func address(_ text: String) -> IPAddress? {
        IPAddress(text)
    }

    /// A port word: keepalived's `read_unsigned(port, 1, 65535)`; `0` or absent is no port.
    mutating func port(_ text: String?, _ node: ConfigNode) -> UInt16?? {
        guard let text else { return .some(nil) }
        if !text.isEmpty, text.utf8.allSatisfy({ $0 == UInt8(ascii: "0") }) { return .some(nil) }
        guard let value = UInt16(text), value >= 1 else { return nil }
        return .some(value)
    }
}

/// keepalived's shell-like splitting for script commands: blanks separate words; `'...'` and
/// `"..."` quote (and join with adjacent text); backslash escapes (`\n`, `\t`, `\xHH`, octal, ...).
enum ScriptWords {
    static func split(_ text: String) -> [String]? {
        var words: [String] = []
        var current: [UInt8] = []
        var inWord = false
        var quote: UInt8?
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if let q = quote {
                if c == q {
                    quote = nil
                    i += 1
                    continue
                }
                if c == UInt8(ascii: "\\"), i + 1 < bytes.count {
                    i = escape(bytes, i, into: &current)
                    continue
                }
                current.append(c)
                i += 1
                continue
            }
            switch c {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), 0x0A, 0x0D, 0x0B, 0x0C:
                if inWord {
                    words.append(String(decoding: current, as: UTF8.self))
                    current = []
                    inWord = false
                }
                i += 1
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                quote = c
                inWord = true
                i += 1
            case UInt8(ascii: "\\"):
                guard i + 1 < bytes.count else { return nil }
                inWord = true
                i = escape(bytes, i, into: &current)
            default:
                current.append(c)
                inWord = true
                i += 1
            }
        }
        if quote != nil { return nil }
        if inWord { words.append(String(decoding: current, as: UTF8.self)) }
        return words
    }

    /// Decodes the escape starting at the backslash `bytes[i]`; returns the index after it.
    private static func escape(_ bytes: [UInt8], _ i: Int, into out: inout [UInt8]) -> Int {
        let c = bytes[i + 1]
        switch c {
        case UInt8(ascii: "a"): out.append(7)
        case UInt8(ascii: "b"): out.append(8)
        case UInt8(ascii: "E"): out.append(0x1B)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "v"): out.append(0x0B)
        case UInt8(ascii: "x"):
            var j = i + 2
            var value: UInt32 = 0
            while j < bytes.count, let d = hexValue(bytes[j]) {
                value = (value << 4 | UInt32(d)) & 0xFF
                j += 1
            }
            out.append(UInt8(value))
            return j
        case UInt8(ascii: "c") where i + 2 < bytes.count:
            out.append(bytes[i + 2] & 0x1F)
            return i + 3
        case UInt8(ascii: "0")...UInt8(ascii: "7"):
            var j = i + 1
            var value: UInt32 = 0
            while j < bytes.count, j < i + 4, bytes[j] >= UInt8(ascii: "0"), bytes[j] <= UInt8(ascii: "7") {
                value = value << 3 | UInt32(bytes[j] - UInt8(ascii: "0"))
                j += 1
            }
            out.append(UInt8(truncatingIfNeeded: value))
            return j
        default: out.append(c)
        }
        return i + 2
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
