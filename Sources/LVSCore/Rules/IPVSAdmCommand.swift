/// One ipvsadm command line, parsed and validated: the typed rule model behind `ipvsadm`, `-R` and the
/// control API.
public enum IPVSAdmCommand: Sendable, Hashable {
    case addService(VirtualService.Config)
    case editService(VirtualService.Config)
    case deleteService(VirtualService.Key)
    case clear
    /// `-R`: read commands from standard input.
    case restore
    /// `-S`: print the table in `-R` format.
    case save(numeric: Bool)
    case addServer(VirtualService.Key, RealServerConfig)
    case editServer(VirtualService.Key, RealServerConfig)
    case deleteServer(VirtualService.Key, Endpoint)
    case list(ListRequest)
    case zero(VirtualService.Key?)
    /// `--set tcp tcpfin udp`, in seconds; 0 leaves a value unchanged.
    case setTimeouts(tcp: UInt32, tcpFin: UInt32, udp: UInt32)
    case startDaemon(SyncDaemonConfig)
    case stopDaemon(SyncDaemonState, syncID: UInt8)
    case help
    case version

    /// Whether the command changes the table (and so reports kernel errors with exit status 255).
    public var isModifying: Bool {
        switch self {
        case .list, .save, .help, .version, .restore: return false
        default: return true
        }
    }
}

/// What `-L` asks for.
public struct ListRequest: Sendable, Hashable {
    public enum Format: Sendable, Hashable {
        case standard, stats, rate, thresholds, persistentConnections, tunnelInfo
    }

    public enum Subject: Sendable, Hashable {
        /// The whole table (with the version header).
        case table
        /// One service (no header).
        case service(VirtualService.Key)
        /// `-c`: the connection table.
        case connections
        /// `--timeout`.
        case timeouts
        /// `--daemon`.
        case daemons
    }

    public var subject: Subject = .table
    public var format: Format = .standard
    public var numeric = false
    public var exact = false
    public var sort = true
    /// `-c --persistent-conn`: show persistence-engine data.
    public var persistenceEngineData = false

    public init() {}
}

public enum SyncDaemonState: String, Sendable, Hashable {
    case master
    case backup
}

/// `--start-daemon` parameters; nil fields are left to the kernel's defaults.
public struct SyncDaemonConfig: Sendable, Hashable {
    public var state: SyncDaemonState
    public var interface: String = "eth0"
    public var syncID: UInt8 = 0
    public var maxLength: UInt16?
    public var group: IPAddress?
    public var port: UInt16?
    public var ttl: UInt8?

    public init(state: SyncDaemonState) { self.state = state }
}

extension IPVS {
    /// Applies a table-changing command with the kernel's checks. Listing, saving and daemon
    /// commands are not table changes and are left to the caller.
    public mutating func apply(_ command: IPVSAdmCommand) throws(ServiceTableError) {
        switch command {
        case .addService(let c): try addService(c)
        case .editService(let c): try editService(c)
        case .deleteService(let k): try deleteService(k)
        case .clear: clear()
        case .addServer(let k, let s): try addServer(s, to: k)
        case .editServer(let k, let s): try editServer(s, in: k)
        case .deleteServer(let k, let e): try deleteServer(e, from: k)
        case .zero(let k): try zero(k)
        case .setTimeouts(let t, let f, let u): try setTimeouts(tcp: t, tcpFin: f, udp: u)
        case .list, .save, .restore, .help, .version, .startDaemon, .stopDaemon: break
        }
    }
}
