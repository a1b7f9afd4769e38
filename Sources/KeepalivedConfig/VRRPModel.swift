import LVSCore

/// A known keyword kept as written, for the parts of keepalived's language that SwiftLVS reads and
/// checks but does not act on yet (and for `--dump-config`).
public struct KeywordSetting: Hashable, Sendable {
    public var keyword: String
    public var arguments: [String]
    /// The entries of a `{ ... }` list, one word list per line.
    public var entries: [[String]]?
    public var location: SourceLocation

    public init(keyword: String, arguments: [String], entries: [[String]]? = nil, location: SourceLocation) {
        self.keyword = keyword
        self.arguments = arguments
        self.entries = entries
        self.location = location
    }
}

/// One `virtual_ipaddress` / `static_ipaddress` entry: `ADDR[/LEN] [dev IF] [scope S] [brd B] [label L] ...`.
public struct VirtualAddressDefinition: Hashable, Sendable {
    public var address: IPAddress
    public var prefixLength: UInt8
    public var device: String?
    public var scope: String?
    public var broadcast: String?
    public var label: String?
    public var peer: String?
    /// Flags and options kept as words (`home`, `-nodad`, `no_track`, `use_vmac`, `preferred_lft N`, ...).
    public var options: [String] = []
    public var location: SourceLocation
}

/// A `track_interface`, `track_script` or `track_file` entry with its optional weight.
public struct TrackedItem: Hashable, Sendable {
    public var name: String
    public var weight: Int32?
    public var reverse = false
    public var location: SourceLocation
}

public struct VRRPInstanceDefinition: Hashable, Sendable {
    public enum InitialState: String, Hashable, Sendable {
        case master = "MASTER"
        case backup = "BACKUP"
    }

    public var name: String
    public var state: InitialState?
    public var interface: String?
    public var interfaceLocation: SourceLocation?
    public var virtualRouterID: UInt8?
    public var priority: UInt8?
    /// Microseconds; keepalived's default is one second.
    public var advertInterval: Microseconds = 1_000_000
    public var version: UInt8?
    public var nopreempt = false
    public var preemptDelay: Microseconds = 0
    public var authenticationType: String?
    public var authenticationPassword: String?
    public var virtualAddresses: [VirtualAddressDefinition] = []
    public var excludedAddresses: [VirtualAddressDefinition] = []
    public var virtualRoutes: [ConfigLine] = []
    public var virtualRules: [ConfigLine] = []
    public var unicastSourceIP: IPAddress?
    public var unicastPeers: [IPAddress] = []
    public var multicastSourceIP: IPAddress?
    public var trackInterfaces: [TrackedItem] = []
    public var trackScripts: [TrackedItem] = []
    public var trackFiles: [TrackedItem] = []
    /// `notify_master`, `notify_backup`, `notify_fault`, `notify_stop`, `notify`, ... by keyword.
    public var notify: [String: ScriptCommand] = [:]
    public var garpMasterDelay: UInt32?
    public var garpMasterRepeat: UInt32?
    public var garpMasterRefresh: UInt32?
    public var useVirtualMAC: String?
    public var smtpAlert: Bool?
    /// Other keywords keepalived accepts here, as written.
    public var settings: [KeywordSetting] = []
    public var location: SourceLocation

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

public struct VRRPScriptDefinition: Hashable, Sendable {
    public var name: String
    public var script: ScriptCommand?
    public var interval: UInt32 = 1
    public var timeout: UInt32?
    public var weight: Int32 = 0
    public var reverse = false
    public var rise: UInt32 = 1
    public var fall: UInt32 = 1
    public var user: String?
    public var initFail = false
    public var location: SourceLocation

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

public struct VRRPSyncGroupDefinition: Hashable, Sendable {
    public var name: String
    public var members: [String] = []
    public var notify: [String: ScriptCommand] = [:]
    public var trackScripts: [TrackedItem] = []
    public var trackInterfaces: [TrackedItem] = []
    public var trackFiles: [TrackedItem] = []
    public var settings: [KeywordSetting] = []
    public var location: SourceLocation

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

public struct TrackFileDefinition: Hashable, Sendable {
    public var name: String
    public var file: String?
    public var weight: Int32 = 1
    public var reverse = false
    public var initFile: [String]?
    public var location: SourceLocation

    public init(name: String, location: SourceLocation) {
        self.name = name
        self.location = location
    }
}

/// `lvs_sync_daemon IF [VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group IP]`.
public struct LVSSyncDaemonDefinition: Hashable, Sendable {
    public var interface: String
    public var instance: String?
    public var syncID: UInt8?
    public var maximumLength: UInt16?
    public var port: UInt16?
    public var ttl: UInt8?
    public var group: IPAddress?
    public var location: SourceLocation
}

public struct GlobalDefinitions: Hashable, Sendable {
    public var routerID: String?
    public var notificationEmail: [String] = []
    public var notificationEmailFrom: String?
    public var smtpServer: String?
    public var smtpConnectTimeout: UInt32?
    public var scriptUser: String?
    public var scriptGroup: String?
    public var enableScriptSecurity = false
    public var vrrpVersion: UInt8?
    public var vrrpStrict = false
    public var lvsSyncDaemon: LVSSyncDaemonDefinition?
    /// `lvs_timeouts tcp N tcpfin N udp N`, in seconds, as given.
    public var lvsTimeouts = LVSTimeouts()
    public var lvsFlush = false
    public var dynamicInterfaces = false
    /// Other keywords keepalived accepts here, as written.
    public var settings: [KeywordSetting] = []

    public init() {}
}

/// `lvs_timeouts`: each one given or not.
public struct LVSTimeouts: Hashable, Sendable {
    public var tcp: UInt32?
    public var tcpFin: UInt32?
    public var udp: UInt32?

    public init() {}
}
