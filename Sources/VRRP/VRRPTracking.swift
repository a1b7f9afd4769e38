/// What moves an instance's priority or puts it in FAULT: vrrp_script results, tracked
/// interfaces and tracked files (keepalived's vrrp_track.c), pure.
public struct VRRPTracking: Sendable, Hashable {
    /// How one tracked thing counts.
    public struct Weight: Sendable, Hashable {
        /// 0: failing puts the instance in FAULT; > 0 added while good; < 0 added (taken off) while bad.
        public var weight: Int32
        /// `reverse`: the weight counts the other way round (added while bad, or taken off while good).
        public var reverse: Bool

        public init(_ weight: Int32 = 0, reverse: Bool = false) {
            self.weight = weight
            self.reverse = reverse
        }
    }

    /// A vrrp_script's standing from its exit codes (rise/fall as keepalived counts them).
    public struct ScriptStatus: Sendable, Hashable {
        public let rise: UInt32
        public let fall: UInt32
        /// 0 ..< rise + fall; good from `rise` on.
        public private(set) var count: UInt32
        /// No result yet (keepalived's "init"): a weighted script moves nothing, a weight-0 one
        /// keeps its instances in FAULT; the first result decides either way.
        public private(set) var isKnown: Bool

        /// `initFail`: start failed rather than unknown.
        public init(rise: UInt32 = 1, fall: UInt32 = 1, initFail: Bool = false) {
            self.rise = max(1, rise)
            self.fall = max(1, fall)
            count = initFail ? 0 : self.rise - 1
            isKnown = initFail
        }

        public var isGood: Bool { count >= rise }

        /// One result; whether the standing changed (the first result always does). `rise`
        /// successes in a row make a failed script good (and its count full); `fall` failures in
        /// a row make a good one failed.
        public mutating func record(success: Bool) -> Bool {
            let before = isGood
            let first = !isKnown
            isKnown = true
            if success {
                count = count + 1 < rise ? count + 1 : rise + fall - 1
            } else {
                count = count > rise ? count - 1 : 0
            }
            return first || before != isGood
        }
    }

    /// A script's part: nothing (or FAULT for weight 0) until its first result.
    public static func scriptContribution(_ w: Weight, _ status: ScriptStatus) -> (delta: Int64, fault: Bool) {
        guard status.isKnown else { return (0, w.weight == 0) }
        return contribution(w, good: status.isGood)
    }

    /// The part of the priority one tracked item gives, and whether it faults the instance.
    /// `good`: the script succeeds, the interface is up; files use `value` instead.
    public static func contribution(_ w: Weight, good: Bool) -> (delta: Int64, fault: Bool) {
        if w.weight == 0 { return (0, w.reverse ? good : !good) }
        let counts = w.weight > 0 ? good != w.reverse : good == w.reverse
        return (counts ? Int64(w.weight) : 0, false)
    }

    /// A tracked file: its number times the weight (negated by `reverse`), kept in -254...253;
    /// -254 is a fault. Weight 0: a non-zero number is a fault (with `reverse`, zero is).
    public static func fileContribution(_ w: Weight, value: Int64) -> (delta: Int64, fault: Bool) {
        if w.weight == 0 { return (0, w.reverse ? value == 0 : value != 0) }
        // Any file's number fits once bounded: the product is clamped anyway.
        let bounded = min(1_000_000, max(-1_000_000, value))
        let status = min(253, max(-254, bounded * Int64(w.weight) * (w.reverse ? -1 : 1)))
        return status == -254 ? (0, true) : (status, false)
    }

    /// keepalived's effective priority: base plus the deltas, kept in 1...254; the address owner
    /// (255) does not move.
    public static func effectivePriority(base: UInt8, delta: Int64) -> UInt8 {
        guard base != 255 else { return 255 }
        return UInt8(min(254, max(1, Int64(base) + delta)))
    }
}
