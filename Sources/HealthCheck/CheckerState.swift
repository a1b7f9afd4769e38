/// Nanoseconds on the monotonic clock the caller runs on.
public typealias Instant = Int64

/// When a checker probes, as keepalived times it (check_api.c): every `delayLoop` while its
/// result does not change; after a failure, `retry` more probes `delayBeforeRetry` apart before
/// the real server is declared down; the first probe after a random part of `warmup`.
public struct CheckTiming: Hashable, Sendable {
    public var delayLoop: Instant
    public var retry: UInt32
    public var delayBeforeRetry: Instant
    public var warmup: Instant
    /// How long one probe may take in all (connect, request, answer).
    public var timeout: Instant

    public init(delayLoop: Instant = 60_000_000_000, retry: UInt32 = 1, delayBeforeRetry: Instant = 1_000_000_000,
                warmup: Instant = 0, timeout: Instant = 5_000_000_000) {
        self.delayLoop = delayLoop
        self.retry = retry
        self.delayBeforeRetry = delayBeforeRetry
        self.warmup = warmup
        self.timeout = timeout
    }
}

/// What one probe found.
public enum ProbeResult: Hashable, Sendable {
    case success
    /// keepalived's words for what went wrong (`connection refused`, `status code 503`, ...).
    case failure(String)
    /// MISC_CHECK with `misc_dynamic`: success, with the weight the script's exit code asks for.
    case successWithWeight(Int32)

    public var succeeded: Bool {
        if case .failure = self { return false }
        return true
    }
}

/// One checker's state: up or down, the retries it has used, and when it probes next. Pure: the
/// caller runs the probes and the clock.
public struct CheckerState: Hashable, Sendable {
    public let timing: CheckTiming
    public private(set) var isUp: Bool
    /// Failed probes in a row since the last success (or since the start).
    public private(set) var failures: UInt32 = 0
    public private(set) var nextProbe: Instant
    /// The weight a `misc_dynamic` script asked for last, if any.
    public private(set) var dynamicWeight: Int32?
    /// Why the last probe failed (for listings and the log line of a transition).
    public private(set) var lastFailure: String?
    /// Probes run, those that failed, and up/down changes, since the checker started (kept across
    /// reloads with its state); when the last probe ended.
    public private(set) var probes: UInt64 = 0
    public private(set) var failedProbes: UInt64 = 0
    public private(set) var transitions: UInt64 = 0
    public private(set) var lastProbe: Instant?

    public enum Transition: Hashable, Sendable {
        case up
        case down(String)
        case weight(Int32)
    }

    /// - Parameters:
    ///   - alpha: keepalived's `alpha`: start down, and come up only after a successful probe.
    ///   - warmupFraction: where in `0..<warmup` the first probe falls (a random number in 0..<1,
    ///     given by the caller so that this stays deterministic).
    public init(timing: CheckTiming, alpha: Bool, now: Instant, warmupFraction: Double = 0) {
        self.timing = timing
        isUp = !alpha
        nextProbe = now + Instant(Double(timing.warmup) * min(max(warmupFraction, 0), 0.999_999))
    }

    /// Records a probe's result and schedules the next; returns the change it makes, if any.
    public mutating func record(_ result: ProbeResult, at now: Instant) -> Transition? {
        probes &+= 1
        lastProbe = now
        switch result {
        case .success, .successWithWeight:
            lastFailure = nil
            failures = 0
            nextProbe = now + timing.delayLoop
            var transition: Transition? = isUp ? nil : .up
            if !isUp { transitions &+= 1 }
            if case .successWithWeight(let w) = result, w != dynamicWeight {
                dynamicWeight = w
                if transition == nil { transition = .weight(w) }
            }
            isUp = true
            return transition
        case .failure(let why):
            lastFailure = why
            failures &+= 1
            failedProbes &+= 1
            // keepalived retries `retry` times before it calls a real server down; a server that
            // is already down is simply probed again every delay_loop.
            if isUp && failures <= timing.retry {
                nextProbe = now + timing.delayBeforeRetry
                return nil
            }
            nextProbe = now + timing.delayLoop
            guard isUp else { return nil }
            isUp = false
            transitions &+= 1
            return .down(why)
        }
    }
}
