/// Prometheus's text exposition format (version 0.0.4), written straight into bytes: a family's
/// `# HELP` and `# TYPE` lines, then its samples. Label sets are built once per object and reused
/// by every family that describes it, which is what keeps a page of 10,000 real servers cheap.
public struct Exposition {
    public enum Kind: String {
        case counter, gauge
    }

    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 1 << 16) {
        bytes.reserveCapacity(capacity)
    }

    /// Starts a family: its name, kind and help text.
    public mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        append("# HELP ")
        append(name)
        bytes.append(0x20)
        for b in help.utf8 {
            switch b {
            case UInt8(ascii: "\\"): append("\\\\")
            case UInt8(ascii: "\n"): append("\\n")
            default: bytes.append(b)
            }
        }
        append("\n# TYPE ")
        append(name)
        bytes.append(0x20)
        append(kind.rawValue)
        bytes.append(0x0A)
    }

    /// One sample; `labels` comes from `Exposition.labels` (empty: none).
    public mutating func sample(_ name: String, _ labels: LabelSet = LabelSet(), _ value: UInt64) {
        head(name, labels)
        digits(value)
        bytes.append(0x0A)
    }

    public mutating func sample(_ name: String, _ labels: LabelSet = LabelSet(), _ value: Int) {
        head(name, labels)
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        digits(UInt64(value.magnitude))
        bytes.append(0x0A)
    }

    public mutating func sample(_ name: String, _ labels: LabelSet = LabelSet(), _ value: Double) {
        head(name, labels)
        if value.isNaN {
            append("NaN")
        } else if value.isInfinite {
            append(value < 0 ? "-Inf" : "+Inf")
        } else if value == value.rounded(), value.magnitude < 1e15 {
            if value < 0 { bytes.append(UInt8(ascii: "-")) }
            digits(UInt64(value.magnitude))
        } else {
            append("\(value)")
        }
        bytes.append(0x0A)
    }

    public mutating func sample(_ name: String, _ labels: LabelSet = LabelSet(), _ value: Bool) {
        sample(name, labels, value ? 1 : 0 as UInt64)
    }

    private mutating func head(_ name: String, _ labels: LabelSet) {
        append(name)
        if !labels.bytes.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            bytes.append(contentsOf: labels.bytes)
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(0x20)
    }

    private mutating func append(_ s: String) {
        bytes.append(contentsOf: s.utf8)
    }

    private mutating func digits(_ value: UInt64) {
        var v = value
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for UInt64.max's 20 digits
        withUnsafeMutableBytes(of: &scratch) { raw in
            var i = raw.count
            repeat {
                i -= 1
                raw[i] = 0x30 &+ UInt8(v % 10)
                v /= 10
            } while v > 0
            bytes.append(contentsOf: raw[i...])
        }
    }
}

/// A set of labels, escaped and joined once (`a="x",b="y"`); `adding` extends it.
public struct LabelSet: Sendable, Hashable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public init(_ pairs: KeyValuePairs<String, String>) {
        for (k, v) in pairs { add(k, v) }
    }

    public func adding(_ pairs: KeyValuePairs<String, String>) -> LabelSet {
        var copy = self
        for (k, v) in pairs { copy.add(k, v) }
        return copy
    }

    public mutating func add(_ name: String, _ value: String) {
        if !bytes.isEmpty { bytes.append(UInt8(ascii: ",")) }
        bytes.append(contentsOf: name.utf8)
        bytes.append(contentsOf: "=\"".utf8)
        for b in value.utf8 {
            switch b {
            case UInt8(ascii: "\\"): bytes.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\""): bytes.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: "\\n".utf8)
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
