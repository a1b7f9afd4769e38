import LVSCore

/// A time in keepalived's resolution (its timers are microseconds; the files say seconds with up to
/// six decimals).
public typealias Microseconds = UInt64

/// A script keyword's value (`notify_up`, `quorum_up`, `misc_path`, `script`, ...): the command
/// split into argv as keepalived does it (no shell), and the user to run it as, when given.
public struct ScriptCommand: Hashable, Sendable {
    public var text: String
    public var argv: [String]
    public var user: String?
    public var group: String?

    public init(text: String, argv: [String], user: String? = nil, group: String? = nil) {
        self.text = text
        self.argv = argv
        self.user = user
        self.group = group
    }
}

/// `lvs_method` with its tunnel options.
public struct ForwardingDefinition: Hashable, Sendable {
    public var method: ForwardingMethod
    public var tunnel: TunnelConfig

    public init(method: ForwardingMethod, tunnel: TunnelConfig = TunnelConfig()) {
        self.method = method
        self.tunnel = tunnel
    }

    /// keepalived's name for the method.
    public var name: String {
        switch method {
        case .masquerade: return "NAT"
        case .gatewaying: return "DR"
        case .tunnel: return "TUN"
        case .local, .bypass: return method.listingName
        }
    }
}

/// What a `virtual_server` line names.
public enum VirtualServerAddress: Hashable, Sendable, CustomStringConvertible {
    case endpoint(IPAddress, UInt16)
    case fwmark(UInt32)
    case group(String)

    public var description: String {
        switch self {
        case .endpoint(let address, let port): return "\(address) \(port)"
        case .fwmark(let mark): return "fwmark \(mark)"
        case .group(let name): return "group \(name)"
        }
    }
}

/// One entry of a `virtual_server_group`.
public enum VirtualServerGroupEntry: Hashable, Sendable {
    /// An address or a range of addresses (first to last, inclusive), with a port (0 for none).
    case range(IPAddress, IPAddress, UInt16)
    case fwmark(UInt32, AddressFamily?)
}

public struct VirtualServerGroup: Hashable, Sendable {
    public var name: String
    public var entries: [VirtualServerGroupEntry]
    public var location: SourceLocation
}

/// The keywords every checker shares (keepalived's `install_checker_common_keywords`).
public struct CheckerConnection: Hashable, Sendable {
    public var connectIP: IPAddress?
    public var connectPort: UInt16?
    public var bindTo: IPAddress?
    public var bindPort: UInt16?
    public var bindInterface: String?
    public var connectTimeout: Microseconds?
    public var fwmark: UInt32?
    public var retry: UInt32?
    public var delayBeforeRetry: Microseconds?
    public var warmup: Microseconds?
    public var delayLoop: Microseconds?
    public var alpha: Bool?
    public var logAllFailures: Bool?

    public init() {}
}

/// An HTTP_GET / SSL_GET `url` block.
public struct URLCheck: Hashable, Sendable {
    public var path: String?
    /// The expected MD5 of the body, lower-case hex.
    public var digest: String?
    /// Accepted status codes as ranges; empty means keepalived's default 200-299.
    public var statusCodes: [ClosedRange<UInt16>] = []
    public var virtualhost: String?
    public var regex: String?
    public var regexNoMatch = false
    public var location: SourceLocation

    public init(location: SourceLocation) {
        self.location = location
    }
}

/// A health checker block inside a `real_server`.
public struct CheckerDefinition: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        case tcp = "TCP_CHECK"
        case http = "HTTP_GET"
        case ssl = "SSL_GET"
        case smtp = "SMTP_CHECK"
        case misc = "MISC_CHECK"
        case dns = "DNS_CHECK"
        case udp = "UDP_CHECK"
        case ping = "PING_CHECK"
        case file = "FILE_CHECK"
        case bfd = "BFD_CHECK"
    }

    public var kind: Kind
    public var connection = CheckerConnection()
    // HTTP_GET / SSL_GET
    public var urls: [URLCheck] = []
    public var virtualhost: String?
    public var httpProtocol: String?
    public var enableSNI: Bool?
    public var fastRecovery: Bool?
    // SMTP_CHECK
    public var heloName: String?
    // MISC_CHECK
    public var miscPath: ScriptCommand?
    public var miscTimeout: UInt32?
    public var miscDynamic = false
    public var user: String?
    public var group: String?
    // DNS_CHECK
    public var dnsType: String?
    public var dnsName: String?
    // UDP_CHECK
    public var payload: [UInt8]?
    public var requireReply: String?
    public var minReplyLength: UInt16?
    public var maxReplyLength: UInt16?
    // FILE_CHECK
    public var trackFile: String?
    public var weight: Int32?
    public var reverse = false
    // BFD_CHECK
    public var bfdName: String?
    public var location: SourceLocation

    public init(kind: Kind, location: SourceLocation) {
        self.kind = kind
        self.location = location
    }
}

/// A `real_server` block (or the `sorry_server` line, which has only an address).
public struct RealServerDefinition: Hashable, Sendable {
    public var address: IPAddress
    /// 0 when the line gave none: it then takes the virtual server's port.
    public var port: UInt16
    public var weight: Int32?
    public var forwarding: ForwardingDefinition?
    public var upperThreshold: UInt32?
    public var lowerThreshold: UInt32?
    public var inhibitOnFailure: Bool?
    public var notifyUp: ScriptCommand?
    public var notifyDown: ScriptCommand?
    public var alpha: Bool?
    public var retry: UInt32?
    public var delayBeforeRetry: Microseconds?
    public var warmup: Microseconds?
    public var connectTimeout: Microseconds?
    public var delayLoop: Microseconds?
    public var smtpAlert: Bool?
    public var virtualhost: String?
    public var checkers: [CheckerDefinition] = []
    public var location: SourceLocation

    public init(address: IPAddress, port: UInt16, location: SourceLocation) {
        self.address = address
        self.port = port
        self.location = location
    }

    public var endpoint: Endpoint { Endpoint(address, port) }
}

/// A `virtual_server` block.
public struct VirtualServerDefinition: Hashable, Sendable {
    public var address: VirtualServerAddress
    public var family: AddressFamily?
    public var delayLoop: Microseconds?
    /// `lvs_sched` / `lb_algo`; nil means keepalived's default, wlc.
    public var scheduler: String?
    public var forwarding: ForwardingDefinition?
    public var persistenceTimeout: UInt32?
    public var persistenceGranularity: UInt32?
    public var persistenceEngine: String?
    public var protocolName: IPProtocol?
    public var onePacket = false
    public var schedulerFlags: ServiceFlags = []
    public var haSuspend = false
    public var virtualhost: String?
    public var alpha = false
    public var omega = false
    public var quorum: UInt32 = 1
    public var hysteresis: UInt32 = 0
    public var quorumUp: ScriptCommand?
    public var quorumDown: ScriptCommand?
    public var weight: Int32?
    public var retry: UInt32?
    public var delayBeforeRetry: Microseconds?
    public var warmup: Microseconds?
    public var connectTimeout: Microseconds?
    public var inhibitOnFailure = false
    public var smtpAlert: Bool?
    public var sorryServer: RealServerDefinition?
    public var sorryServerInhibit = false
    public var realServers: [RealServerDefinition] = []
    public var location: SourceLocation

    public init(address: VirtualServerAddress, location: SourceLocation) {
        self.address = address
        self.location = location
    }

    /// keepalived's name for a virtual server in messages: `[IP]:tcp:PORT`, `FWM N`, `[group]:N`.
    public var trio: String {
        switch address {
        case .endpoint(let ip, let port):
            return "[\(ip)]:\(protocolName.map { $0.name.lowercased() } ?? "none"):\(port)"
        case .fwmark(let mark): return "FWM \(mark)"
        case .group(let name): return "[\(name)]:0"
        }
    }
}
