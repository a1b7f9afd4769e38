/// Per-state timeouts, in milliseconds, with the kernel's defaults.
public struct Timeouts: Sendable, Hashable {
    /// Indexed by `TCPState.rawValue`.
    public var tcp: [UInt32] = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120].map { $0 * 1000 }
    /// Indexed by `SCTPState.rawValue`.
    public var sctp: [UInt32] = [2, 4, 61, 61, 61, 61, 61, 61, 900, 61, 61, 61, 4, 61].map { $0 * 1000 }
    public var udp: UInt32 = 300 * 1000
    /// Other single-state protocols (and the initial timeout before the first state transition).
    public var other: UInt32 = 60 * 1000
    public static let initial: UInt32 = 3 * 1000
    /// How long an expiring entry that still controls connections is postponed.
    public static let postponed: UInt32 = 60 * 1000

    /// The largest value `--set` accepts (31 days), in seconds.
    public static let maximumSetSeconds: UInt32 = 2_678_400

    public init() {}

    /// The three values `ipvsadm -L --timeout` shows, in seconds: tcp (ESTABLISHED), tcpfin (FIN_WAIT), udp.
    public var listed: (tcp: UInt32, tcpFin: UInt32, udp: UInt32) {
        (tcp[Int(TCPState.established.rawValue)] / 1000, tcp[Int(TCPState.finWait.rawValue)] / 1000, udp / 1000)
    }

    /// `--set tcp tcpfin udp`: each value in seconds; 0 leaves that timeout as it is.
    public mutating func set(tcp established: UInt32, tcpFin: UInt32, udp: UInt32) throws(ServiceTableError) {
        for v in [established, tcpFin, udp] where v > Timeouts.maximumSetSeconds {
            throw .invalid("timeout \(v) is above \(Timeouts.maximumSetSeconds) seconds")
        }
        if established != 0 { tcp[Int(TCPState.established.rawValue)] = established * 1000 }
        if tcpFin != 0 { tcp[Int(TCPState.finWait.rawValue)] = tcpFin * 1000 }
        if udp != 0 { self.udp = udp * 1000 }
    }
}

/// The IPVS sysctls that change what the connection logic does (defaults as the kernel's).
public struct IPVSSettings: Sendable, Hashable {
    /// conn_reuse_mode: a new SYN on a TIME_WAIT/CLOSE entry reschedules (bit 1); bit 2 adds FIN_WAIT for
    /// connections whose replies are not seen.
    public var connectionReuseMode: Int = 1
    /// expire_nodest_conn: drop entries whose real server was deleted when their next packet arrives.
    public var expireNoDestinationConnections = false
    /// expire_quiescent_template: persistence templates to a weight-0 server are no longer honoured.
    public var expireQuiescentTemplate = false
    /// sloppy_tcp: schedule on any non-RST segment, not only SYN.
    public var sloppyTCP = false
    /// sloppy_sctp: schedule on any chunk, not only INIT.
    public var sloppySCTP = false
    /// secure_tcp >= 2: the DoS-defence transition tables.
    public var secureTCP = false
    /// The hard bound of the connection table (connections plus templates).
    public var maxConnections: Int = 1 << 20
    public var scheduler = SchedulerSettings()
    /// What a sync master sends (sync_version, sync_threshold, sync_persist_mode).
    public var sync = SyncSettings()
    /// Seed of the connection hash (keep it secret in production so clients cannot aim at one chain).
    public var hashSeed: UInt64 = 0x1F2E_3D4C_5B6A_7988

    public init() {}
}
