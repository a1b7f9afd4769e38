/// The transport protocols IPVS balances.
public enum IPProtocol: UInt8, Sendable, Hashable, CaseIterable {
    case tcp = 6
    case udp = 17
    case sctp = 132

    /// The name the kernel and ipvsadm print (`TCP`, `UDP`, `SCTP`).
    public var name: String {
        switch self {
        case .tcp: return "TCP"
        case .udp: return "UDP"
        case .sctp: return "SCTP"
        }
    }
}

/// Service flag bits, as the kernel's `IP_VS_SVC_F_*`.
public struct ServiceFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let persistent = ServiceFlags(rawValue: 0x0001)
    public static let hashed = ServiceFlags(rawValue: 0x0002)
    public static let onePacket = ServiceFlags(rawValue: 0x0004)
    /// `flag-1`, also `sh-fallback` and `mh-fallback`.
    public static let scheduler1 = ServiceFlags(rawValue: 0x0008)
    /// `flag-2`, also `sh-port` and `mh-port`.
    public static let scheduler2 = ServiceFlags(rawValue: 0x0010)
    /// `flag-3`.
    public static let scheduler3 = ServiceFlags(rawValue: 0x0020)

    public static let schedulerFlags: ServiceFlags = [.scheduler1, .scheduler2, .scheduler3]
}

/// A virtual service: what ipvsadm `-A` creates.
public enum VirtualService {
    /// What identifies a virtual service: protocol, address and port, or a firewall mark (per family).
    public enum Key: Hashable, Sendable, CustomStringConvertible {
        case address(IPProtocol, IPAddress, UInt16)
        case fwmark(UInt32, AddressFamily)

        public var family: AddressFamily {
            switch self {
            case .address(_, let address, _): return address.family
            case .fwmark(_, let family): return family
            }
        }

        public var isFwmark: Bool {
            if case .fwmark = self { return true }
            return false
        }

        public var port: UInt16 {
            if case .address(_, _, let port) = self { return port }
            return 0
        }

        public var description: String {
            switch self {
            case .address(let proto, let address, let port):
                return "\(proto.name) \(Endpoint(address, port))"
            case .fwmark(let mark, let family):
                return family == .inet6 ? "FWM \(mark) IPv6" : "FWM \(mark)"
            }
        }
    }

    /// Everything `-A`/`-E` sets on a service. `-E` replaces all of it, as ipvsadm always sends every field.
    public struct Config: Hashable, Sendable {
        public var key: Key
        /// The scheduler name as given (`wlc` by default); resolved against `SchedulerKind` when applied.
        public var scheduler: String
        public var flags: ServiceFlags
        /// Persistence timeout in seconds (meaningful with `.persistent`).
        public var persistenceTimeout: UInt32
        /// Persistence granularity: an IPv4 mask (host order) or an IPv6 prefix length.
        public var netmask: UInt32
        /// Persistence engine name (`sip`), if any.
        public var persistenceEngine: String?

        public init(
            key: Key,
            scheduler: String = "wlc",
            flags: ServiceFlags = [],
            persistenceTimeout: UInt32 = 0,
            netmask: UInt32? = nil,
            persistenceEngine: String? = nil
        ) {
            self.key = key
            self.scheduler = scheduler
            self.flags = flags
            self.persistenceTimeout = persistenceTimeout
            self.netmask = netmask ?? Config.defaultNetmask(for: key.family)
            self.persistenceEngine = persistenceEngine
        }

        public static func defaultNetmask(for family: AddressFamily) -> UInt32 {
            family == .inet6 ? 128 : 0xFFFF_FFFF
        }

        public var isPersistent: Bool { flags.contains(.persistent) }
    }
}

/// How a real server is reached, as the kernel's `IP_VS_CONN_F_FWD_MASK` values.
public enum ForwardingMethod: UInt8, Sendable, Hashable, CaseIterable {
    case masquerade = 0
    case local = 1
    case tunnel = 2
    case gatewaying = 3
    case bypass = 4

    /// The name `ipvsadm -L` prints in the Forward column.
    public var listingName: String {
        switch self {
        case .masquerade: return "Masq"
        case .local: return "Local"
        case .tunnel: return "Tunnel"
        case .gatewaying: return "Route"
        case .bypass: return "Bypass"
        }
    }
}

/// Tunnel encapsulation for `-i` real servers.
public struct TunnelConfig: Hashable, Sendable {
    public enum Kind: UInt8, Sendable, Hashable {
        case ipip = 0
        case gue = 1
        case gre = 2

        public var name: String {
            switch self {
            case .ipip: return "ipip"
            case .gue: return "gue"
            case .gre: return "gre"
            }
        }
    }

    /// Checksum handling: the kernel's `IP_VS_TUNNEL_ENCAP_FLAG_*` (nocsum 0, csum 1, remcsum 2).
    public enum Checksum: UInt8, Sendable, Hashable {
        case none = 0
        case checksum = 1
        case remoteChecksum = 2
    }

    public var kind: Kind
    public var port: UInt16
    public var checksum: Checksum

    public init(kind: Kind = .ipip, port: UInt16 = 0, checksum: Checksum = .none) {
        self.kind = kind
        self.port = port
        self.checksum = checksum
    }
}

/// Everything `-a`/`-e` sets on a real server. `-e` replaces all of it.
public struct RealServerConfig: Hashable, Sendable {
    public var endpoint: Endpoint
    public var forwarding: ForwardingMethod
    public var weight: Int32
    public var upperThreshold: UInt32
    public var lowerThreshold: UInt32
    public var tunnel: TunnelConfig
    /// SwiftLVS extension (`--proxy-protocol`): the proxy engine opens each connection to this real
    /// server with a PROXY protocol v2 header carrying the client's and the VIP's addresses.
    public var proxyProtocol: Bool

    public init(
        _ endpoint: Endpoint,
        forwarding: ForwardingMethod = .gatewaying,
        weight: Int32 = 1,
        upperThreshold: UInt32 = 0,
        lowerThreshold: UInt32 = 0,
        tunnel: TunnelConfig = TunnelConfig(),
        proxyProtocol: Bool = false
    ) {
        self.endpoint = endpoint
        self.forwarding = forwarding
        self.weight = weight
        self.upperThreshold = upperThreshold
        self.lowerThreshold = lowerThreshold
        self.tunnel = tunnel
        self.proxyProtocol = proxyProtocol
    }
}
