/// The five counters IPVS keeps for every service, every real server and the whole table.
public struct Counters: Hashable, Sendable {
    public var connections: UInt64 = 0
    public var inPackets: UInt64 = 0
    public var outPackets: UInt64 = 0
    public var inBytes: UInt64 = 0
    public var outBytes: UInt64 = 0

    public init() {}

    public init(connections: UInt64, inPackets: UInt64, outPackets: UInt64, inBytes: UInt64, outBytes: UInt64) {
        self.connections = connections
        self.inPackets = inPackets
        self.outPackets = outPackets
        self.inBytes = inBytes
        self.outBytes = outBytes
    }

    /// Counter-wise difference with wrap-around, as the kernel subtracts a `-Z` baseline.
    public static func &- (lhs: Counters, rhs: Counters) -> Counters {
        Counters(
            connections: lhs.connections &- rhs.connections,
            inPackets: lhs.inPackets &- rhs.inPackets,
            outPackets: lhs.outPackets &- rhs.outPackets,
            inBytes: lhs.inBytes &- rhs.inBytes,
            outBytes: lhs.outBytes &- rhs.outBytes)
    }
}

/// Rates as `ipvsadm --rate` shows them: per second, bytes (not bits) for the byte rates.
public struct Rates: Hashable, Sendable {
    public var connectionsPerSecond: UInt64 = 0
    public var inPacketsPerSecond: UInt64 = 0
    public var outPacketsPerSecond: UInt64 = 0
    public var inBytesPerSecond: UInt64 = 0
    public var outBytesPerSecond: UInt64 = 0

    public init() {}
}

/// The kernel's rate estimator: sampled every 2 seconds, an EWMA with weight 1/4 kept in fixed point
/// (packet and connection rates scaled by 2^10, byte rates by 2^5). See ip_vs_est.c.
public struct RateEstimator: Hashable, Sendable {
    /// The sampling period the kernel uses.
    public static let intervalNanoseconds: Int64 = 2_000_000_000

    private var last = Counters()
    private var cps: Int64 = 0
    private var inpps: Int64 = 0
    private var outpps: Int64 = 0
    private var inbps: Int64 = 0
    private var outbps: Int64 = 0

    public init() {}

    /// Folds in one 2-second sample of the running totals.
    public mutating func sample(_ now: Counters) {
        func step(_ avg: inout Int64, _ current: UInt64, _ previous: UInt64, shift: Int64) {
            let rate = Int64(bitPattern: current &- previous) &<< shift
            avg &+= (rate &- avg) >> 2
        }
        step(&cps, now.connections, last.connections, shift: 9)
        step(&inpps, now.inPackets, last.inPackets, shift: 9)
        step(&outpps, now.outPackets, last.outPackets, shift: 9)
        step(&inbps, now.inBytes, last.inBytes, shift: 4)
        step(&outbps, now.outBytes, last.outBytes, shift: 4)
        last = now
    }

    /// Restarts the estimator from `now` with all rates zero, as `-Z` does.
    public mutating func reset(to now: Counters) {
        self = RateEstimator()
        last = now
    }

    /// The rounded rates the kernel reports.
    public var rates: Rates {
        func packets(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v &+ 0x1FF) >> 10) }
        func bytes(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v &+ 0xF) >> 5) }
        var r = Rates()
        r.connectionsPerSecond = packets(cps)
        r.inPacketsPerSecond = packets(inpps)
        r.outPacketsPerSecond = packets(outpps)
        r.inBytesPerSecond = bytes(inbps)
        r.outBytesPerSecond = bytes(outbps)
        return r
    }
}

/// Counters with a `-Z` baseline and a rate estimator: what each service, real server and the total keep.
public struct Statistics: Hashable, Sendable {
    /// Running totals since creation (never reset).
    public private(set) var totals = Counters()
    private var baseline = Counters()
    public private(set) var estimator = RateEstimator()

    public init() {}

    /// What ipvsadm shows: totals minus the baseline taken at the last `-Z`.
    public var counters: Counters { totals &- baseline }
    public var rates: Rates { estimator.rates }

    @inlinable
    public mutating func countConnection() { addConnections(1) }

    @usableFromInline
    mutating func addConnections(_ n: UInt64) { totals.connections &+= n }

    public mutating func countIn(bytes: Int) {
        totals.inPackets &+= 1
        totals.inBytes &+= UInt64(truncatingIfNeeded: bytes)
    }

    public mutating func countOut(bytes: Int) {
        totals.outPackets &+= 1
        totals.outBytes &+= UInt64(truncatingIfNeeded: bytes)
    }

    /// Adds arbitrary amounts (used by engines that batch their counting, and by tests).
    public mutating func add(_ delta: Counters) {
        totals.connections &+= delta.connections
        totals.inPackets &+= delta.inPackets
        totals.outPackets &+= delta.outPackets
        totals.inBytes &+= delta.inBytes
        totals.outBytes &+= delta.outBytes
    }

    public mutating func sampleRates() { estimator.sample(totals) }

    /// `-Z`: the shown counters and the rates restart from zero.
    public mutating func zero() {
        baseline = totals
        estimator.reset(to: totals)
    }
}
