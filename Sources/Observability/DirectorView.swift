import HealthCheck
import LVSCore
import LVSSync
import VRRP

/// Everything the metrics, the JSON API and the dashboard show, gathered at one moment: the table's
/// services and counters, the checkers, the VRRP instances, the engine's and the sync daemons'
/// counters. A value: gathered on the director's loop (the table part under its lock, as
/// briefly as one listing), rendered anywhere else.
public struct DirectorView: Sendable {
    public var version = "0.1"
    public var engine = "proxy"
    /// Unix time (seconds) lvsd started at.
    public var startTime: Double = 0
    /// The table's clock (monotonic nanoseconds) when the view was taken.
    public var now: Int64 = 0
    public var services: [ServiceSnapshot] = []
    public var totals = Statistics()
    public var connectionEntries = 0
    public var connectionCapacity = 0
    public var checkers: [Checker] = []
    public var vrrp: [VRRPHost.Status] = []
    /// The packet engine's frames by what became of them; either engine's drops by reason; the
    /// proxy's connections to real servers that failed (each retried elsewhere or refused).
    public var enginePackets: [LabelledCount] = []
    public var engineDrops: [LabelledCount] = []
    public var realServerFailures: UInt64 = 0
    public var sync: [SyncDaemonView] = []
    public var syncTable = SyncCounters()
    public var reloads = Reloads()
    /// HTTP requests answered, by status code (filled in by the server).
    public var httpRequests: [LabelledCount] = []

    public init() {}

    /// A checker with the service and real server it checks.
    public struct Checker: Sendable, Hashable {
        public var service: VirtualService.Key
        public var server: Endpoint
        public var label: String
        public var target: Endpoint
        public var state: CheckerState

        public init(service: VirtualService.Key, server: Endpoint, label: String, target: Endpoint, state: CheckerState) {
            self.service = service
            self.server = server
            self.label = label
            self.target = target
            self.state = state
        }
    }

    public struct LabelledCount: Sendable, Hashable {
        public var label: String
        public var value: UInt64

        public init(_ label: String, _ value: UInt64) {
            self.label = label
            self.value = value
        }
    }

    public struct SyncDaemonView: Sendable, Hashable {
        public var status: SyncDaemonStatus
        public var statistics: SyncDaemon.Statistics

        public init(status: SyncDaemonStatus, statistics: SyncDaemon.Statistics) {
            self.status = status
            self.statistics = statistics
        }
    }

    /// Configuration loads since start: how many worked, how many were refused, and whether the
    /// last one worked.
    public struct Reloads: Sendable, Hashable {
        public var succeeded: UInt64 = 0
        public var failed: UInt64 = 0
        public var lastSucceeded = true
        /// Unix time of the last successful load (0: none).
        public var lastSuccessTime: Double = 0

        public init() {}
    }
}
