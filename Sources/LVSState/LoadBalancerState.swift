import LVSCore
import NIOConcurrencyHelpers
import NIOCore

/// The director's table, shared by the engine's workers and the control plane: every access holds
/// the lock, for as long as one decision or one update (or one batch of packets) takes, never
/// across I/O.
public final class LoadBalancerState: @unchecked Sendable {
    // @unchecked Sendable: `table` and `failures` are only read or written inside `lock`.
    private let lock = NIOLock()
    private var table: IPVS
    private var failures: UInt64 = 0
    private var dropped: UInt64 = 0
    private var configurationObserver: (@Sendable () -> Void)?
    /// The event loops connections are served on; the first also runs the control plane.
    public let loops: [EventLoop]

    public init(loops: [EventLoop], ipvs: IPVS = IPVS()) {
        precondition(!loops.isEmpty, "at least one event loop")
        self.loops = loops
        self.table = ipvs
    }

    /// The control plane's loop (timers, control socket, listener bookkeeping).
    public var loop: EventLoop { loops[0] }

    /// Runs `body` with the table, under the lock.
    @inline(__always)
    public func withTable<R>(_ body: (inout IPVS) throws -> R) rethrows -> R {
        try lock.withLock {
            let generation = table.generation
            defer { if table.generation != generation { configurationObserver?() } }
            return try body(&table)
        }
    }

    /// `observer` runs, under the lock and on the thread that made it, after each change to the
    /// services or real servers (`IPVS.generation`): for what must follow at once (the packet
    /// engine's choices taken ahead). It must be quick and must not use the table.
    public func observeConfigurationChanges(_ observer: @escaping @Sendable () -> Void) {
        lock.withLock { configurationObserver = observer }
    }

    /// A copy of the table (cheap: the connection table is shared until one side writes).
    public var snapshot: IPVS { withTable { $0 } }

    /// Connections the proxy could not open to a real server (each was retried elsewhere or refused).
    public var realServerFailures: UInt64 { lock.withLock { failures } }

    public func countRealServerFailure() { lock.withLock { failures &+= 1 } }

    /// New connections closed at once because the engine was out of descriptors or connection slots.
    public var droppedConnections: UInt64 { lock.withLock { dropped } }

    public func countDroppedConnection() { lock.withLock { dropped &+= 1 } }

    /// The clock the table runs on: monotonic time.
    public var now: Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    /// How often the table's connections are expired (the kernel's timer granularity is finer; see README).
    public static let tickInterval: Int64 = 100_000_000
    private var nextRateSample: Int64 = 0
    private var nextHousekeeping: Int64 = 0

    /// The table's clocks, run every `tickInterval` by the engine's first worker between its batches of
    /// events (so the periodic work runs on the thread that mostly holds the table, instead of
    /// contending for it from another one): expiry each tick, the rate estimator every 2 s, the
    /// schedulers' caches every 60 s.
    public func tick(now: Int64) {
        lock.withLock {
            table.expire(now: now)
            if nextRateSample == 0 {
                nextRateSample = now + 2_000_000_000
                nextHousekeeping = now + 60_000_000_000
            }
            while now >= nextRateSample {
                table.sampleRates()
                nextRateSample += 2_000_000_000
            }
            if now >= nextHousekeeping {
                table.schedulerHousekeeping(now: now)
                nextHousekeeping = now + 60_000_000_000
            }
        }
    }
}
