/// A real server (the kernel's "destination") as the table holds it: its configuration, its flags and
/// its live connection counts.
public struct RealServer: Sendable, Hashable {
    public internal(set) var config: RealServerConfig
    /// The most recent non-zero weight (set on add even when zero); Maglev's table is built from it.
    public internal(set) var lastWeight: Int32
    /// Cleared when the server is deleted while connections still reference it.
    public internal(set) var isAvailable: Bool
    /// Set by the upper connection threshold, cleared by the lower one.
    public internal(set) var isOverloaded: Bool
    public internal(set) var activeConnections: UInt32
    public internal(set) var inactiveConnections: UInt32
    public internal(set) var persistentConnections: UInt32
    public internal(set) var stats: Statistics
    /// The service slot this server belongs to.
    public internal(set) var service: Int32
    /// Its index in the service's list (kernel order, newest first); -1 once deleted.
    var position: Int32

    init(config: RealServerConfig, service: Int32) {
        self.config = config
        self.lastWeight = config.weight
        self.isAvailable = true
        self.isOverloaded = false
        self.activeConnections = 0
        self.inactiveConnections = 0
        self.persistentConnections = 0
        self.stats = Statistics()
        self.service = service
        self.position = -1
    }

    @inlinable public var weight: Int32 { config.weight }
    @inlinable public var endpoint: Endpoint { config.endpoint }

    /// The load lc, wlc, lblc, lblcr and twos compare: `active * 256 + inactive`.
    @inlinable public var overhead: UInt64 {
        UInt64(activeConnections) << 8 &+ UInt64(inactiveConnections)
    }

    /// The total the thresholds are compared with.
    @inlinable var connectionCount: UInt64 { UInt64(activeConnections) + UInt64(inactiveConnections) }

    /// Whether any connection or template still references this server.
    var isReferenced: Bool {
        activeConnections != 0 || inactiveConnections != 0 || persistentConnections != 0
    }
}
