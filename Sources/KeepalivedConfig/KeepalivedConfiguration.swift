import LVSCore

/// A keepalived.conf as understood: every block keepalived knows, typed, each with its file and line.
public struct KeepalivedConfiguration: Hashable, Sendable {
    public var globalDefinitions = GlobalDefinitions()
    public var staticAddresses: [VirtualAddressDefinition] = []
    public var staticRoutes: [ConfigLine] = []
    public var staticRules: [ConfigLine] = []
    public var vrrpScripts: [VRRPScriptDefinition] = []
    public var trackFiles: [TrackFileDefinition] = []
    public var syncGroups: [VRRPSyncGroupDefinition] = []
    public var instances: [VRRPInstanceDefinition] = []
    public var virtualServerGroups: [VirtualServerGroup] = []
    public var virtualServers: [VirtualServerDefinition] = []
    /// Other top-level keywords keepalived accepts (`garp_group`, `net_namespace`, ...), as written.
    public var settings: [KeywordSetting] = []

    public init() {}

    /// The host facts `keepalived -t` checks a configuration against.
    public struct Environment: Sendable {
        /// The interfaces that exist; nil skips the check.
        public var interfaces: Set<String>?
        /// For `@id` lines (keepalived's `-i`, by default the short host name).
        public var configID: String?

        public init(interfaces: Set<String>? = nil, configID: String? = nil) {
            self.interfaces = interfaces
            self.configID = configID
        }
    }

    /// The outcome of reading a configuration.
    public struct Loaded: Sendable {
        public var configuration: KeepalivedConfiguration
        public var diagnostics: [Diagnostic]
        /// The lines after include and macro expansion (for `--dump-config`).
        public var lines: [ConfigLine]

        /// Whether `keepalived -t` would accept it (no finding at all, warnings included).
        public var isValid: Bool { diagnostics.isEmpty }
        /// Whether it can be applied: nothing worse than a warning about something left out.
        public var hasErrors: Bool { diagnostics.contains { !$0.isWarning } }
        public var exitCode: Int32 { Diagnostic.exitCode(for: diagnostics) }
    }

    /// Reads, checks and models the configuration at `path`.
    public static func load(_ path: String, fileSystem: any ConfigFileSystem, environment: Environment = Environment(),
                            readerOptions: ConfigReader.Options? = nil) -> Loaded {
        var options = readerOptions ?? ConfigReader.Options()
        if options.configID == nil { options.configID = environment.configID }
        let (lines, readDiagnostics) = ConfigReader.read(path, fileSystem: fileSystem, options: options)
        let (nodes, treeDiagnostics) = ConfigNode.tree(of: lines)
        var decoder = Decoder()
        decoder.diagnostics = readDiagnostics + treeDiagnostics
        var configuration = KeepalivedConfiguration()
        var names = Names()
        for node in nodes { configuration.root(node, &decoder, &names) }
        configuration.validateLVS(&decoder)
        configuration.validateVRRP(&decoder, environment: environment)
        return Loaded(configuration: configuration, diagnostics: decoder.diagnostics, lines: lines)
    }

    private static let otherRootKeywords: Set<String> = [
        "linkbeat_use_polling", "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "use_pid_dir", "instance",
        "child_wait_time", "SSL", "track_group", "garp_group", "linkbeat_interfaces", "vrrp_track_process",
        "interface_up_down_delays", "bfd_instance",
    ]

    /// The names defined so far, for the duplicate checks (tens of thousands of instances are real:
    /// keepalived.conf(5)'s own ~SEQ example makes 65,024).
    struct Names {
        var instances: Set<String> = []
        var syncGroups: Set<String> = []
        var groups: Set<String> = []
    }

    /// Appends a decoded block whose name must not have been defined before; a second one is
    /// reported with `duplicate(name)` and left out.
    private static func add<T>(_ item: T?, _ name: KeyPath<T, String>, to list: inout [T], names: inout Set<String>, _ node: ConfigNode,
                        _ d: inout Decoder, duplicate: (String) -> String) {
        guard let item else { return }
        guard names.insert(item[keyPath: name]).inserted else {
            d.report(.generalError, duplicate(item[keyPath: name]), node)
            return
        }
        list.append(item)
    }

    private mutating func root(_ node: ConfigNode, _ d: inout Decoder, _ names: inout Names) {
        switch node.keyword {
        case "global_defs": d.globalDefinitions(node, into: &globalDefinitions)
        case "static_ipaddress":
            guard let block = node.block else {
                d.report(.missingBlockStart, "'{' missing from beginning of block static_ipaddress", node)
                return
            }
            for entry in block {
                if let address = d.virtualAddress(entry, instance: "static") { staticAddresses.append(address) }
            }
        case "static_routes": staticRoutes += d.entryLines(node)
        case "static_rules": staticRules += d.entryLines(node)
        case "vrrp_script":
            if let s = d.vrrpScript(node) { vrrpScripts.append(s) }
        case "track_file", "vrrp_track_file":
            if node.keyword == "vrrp_track_file" {
                d.report(.deprecated, "\"vrrp_track_file\" is deprecated, please use \"track_file\"", node)
            }
            if let t = d.trackFile(node) { trackFiles.append(t) }
        case "vrrp_sync_group":
            Self.add(d.syncGroup(node), \.name, to: &syncGroups, names: &names.syncGroups, node, &d) { "vrrp sync group \($0) already defined" }
        case "vrrp_instance":
            Self.add(d.vrrpInstance(node), \.name, to: &instances, names: &names.instances, node, &d) { "vrrp instance \($0) already defined" }
        case "virtual_server_group":
            Self.add(d.virtualServerGroup(node), \.name, to: &virtualServerGroups, names: &names.groups, node, &d) {
                "virtual server group \($0) already defined - ignoring the second"
            }
        case "virtual_server":
            if let vs = d.virtualServer(node) { virtualServers.append(vs) }
        default:
            if KeepalivedConfiguration.otherRootKeywords.contains(node.keyword) {
                settings.append(KeywordSetting(keyword: node.keyword, arguments: Array(node.words.dropFirst()),
                                               entries: node.block.map { $0.map(\.words) }, location: node.location))
            } else {
                d.unknown(node)
            }
        }
    }

    // MARK: After parsing (keepalived's validate_check_config, in its order)

    private mutating func validateLVS(_ d: inout Decoder) {
        let groupNames = Set(virtualServerGroups.map(\.name))
        var kept: [VirtualServerDefinition] = []
        var seen: [String: SourceLocation] = [:]
        for var vs in virtualServers {
            let place = vs.location
            if case .group(let name) = vs.address, !groupNames.contains(name) {
                d.report(.generalError, "Virtual server group \(name) specified but not configured - ignoring virtual server \(vs.trio)", at: place)
                continue
            }
            if vs.realServers.isEmpty {
                d.report(.generalError, "Virtual server \(vs.trio) has no real servers - ignoring", at: place)
                continue
            }
            if vs.haSuspend, case .fwmark = vs.address {
                d.report(.generalError, "Virtual server \(vs.trio): cannot use ha_suspend with fwmarks - clearing ha_suspend", at: place)
                vs.haSuspend = false
            }
            switch vs.address {
            case .endpoint(_, let port):
                if vs.protocolName == nil {
                    // keepalived 2.2.7 (check_data.c): the kernel's default for protocol 0 is UDP, so it says so.
                    d.report(.generalError, "Virtual server \(vs.trio): no protocol set - defaulting to UDP", at: place)
                    vs.protocolName = .udp
                }
                if vs.onePacket, vs.protocolName != .udp {
                    d.report(.generalError, "Virtual server \(vs.trio): one packet scheduling requires UDP - resetting", at: place)
                    vs.onePacket = false
                }
                if port == 0, vs.persistenceTimeout == nil {
                    d.report(.generalError, "Virtual server \(vs.trio): zero port only valid for persistent services - setting", at: place)
                    vs.persistenceTimeout = 360
                }
            case .fwmark:
                if vs.protocolName != nil {
                    d.report(.warning, "Warning: Virtual server \(vs.trio): protocol specified for fwmark - protocol will be ignored", at: place)
                }
            case .group:
                if vs.protocolName == nil {
                    d.report(.generalError, "Virtual server \(vs.trio): no protocol set - defaulting to UDP", at: place)
                    vs.protocolName = .udp
                }
            }
            if vs.scheduler == nil {
                d.report(.generalError, "Virtual server \(vs.trio): no scheduler set, setting default 'wlc'", at: place)
                vs.scheduler = "wlc"
            }
            // Duplicate real servers: keepalived keeps the first.
            var servers: [RealServerDefinition] = []
            var defaultMethodReported = false
            for var rs in vs.realServers {
                if servers.contains(where: { $0.address == rs.address && $0.port == rs.port }) {
                    d.report(.generalError, "VS \(vs.trio): real server [\(rs.address)]:\(rs.port) is duplicated - removing second rs", at: rs.location)
                    continue
                }
                if rs.forwarding == nil {
                    if vs.forwarding == nil, !defaultMethodReported {
                        defaultMethodReported = true
                        d.report(.generalError, "Virtual server \(vs.trio): no forwarding method set, setting default NAT", at: place)
                        vs.forwarding = ForwardingDefinition(method: .masquerade)
                    }
                    rs.forwarding = vs.forwarding ?? ForwardingDefinition(method: .masquerade)
                }
                if rs.weight == nil { rs.weight = vs.weight ?? 1 }
                if case .endpoint(_, let vport) = vs.address {
                    if rs.port == 0 {
                        rs.port = vport
                    } else if rs.forwarding?.method != .masquerade, rs.port != vport {
                        d.report(.warning, "WARNING - virtual server \(vs.trio) and real server [\(rs.address)]:\(rs.port) ports don't match - resetting", at: rs.location)
                        rs.port = vport
                    }
                }
                servers.append(rs)
            }
            vs.realServers = servers
            if vs.forwarding == nil { vs.forwarding = ForwardingDefinition(method: .masquerade) }
            if var sorry = vs.sorryServer {
                if sorry.forwarding == nil { sorry.forwarding = vs.forwarding }
                if case .endpoint(_, let vport) = vs.address, sorry.port == 0 { sorry.port = vport }
                vs.sorryServer = sorry
            }
            let total = vs.realServers.reduce(UInt64(0)) { $0 + UInt64($1.weight ?? 1) }
            if UInt64(vs.quorum) > total {
                d.report(.warning, "Warning - quorum \(vs.quorum) for \(vs.trio) exceeds total weight of real servers \(total), reducing quorum to \(total)", at: place)
                vs.quorum = UInt32(max(1, total))
            }
            if vs.hysteresis >= vs.quorum {
                let lowered = vs.quorum - 1
                d.report(.generalError, "Virtual server \(vs.trio): hysteresis \(vs.hysteresis) >= quorum \(vs.quorum); setting hysteresis to \(lowered)", at: place)
                vs.hysteresis = lowered
            }
            // Not a keepalived check: two blocks for one virtual service would fight over it.
            let identity = "\(vs.address)|\(vs.protocolName?.name ?? "")|\(vs.family.map { "\($0)" } ?? "")"
            if let first = seen[identity] {
                d.report(.generalError, "Virtual server \(vs.trio) is defined twice (first at \(first)) - ignoring the second", at: place)
                continue
            }
            seen[identity] = place
            kept.append(vs)
        }
        virtualServers = kept
        // keepalived's script security check needs the scripts on disk; it comes with the checkers.
    }

    private mutating func validateVRRP(_ d: inout Decoder, environment: Environment) {
        if let existing = environment.interfaces, !globalDefinitions.dynamicInterfaces {
            var missing = false
            func check(_ name: String, _ message: String, _ location: SourceLocation?) {
                guard !existing.contains(name) else { return }
                missing = true
                d.report(.warning, message, at: location)
            }
            func checkRoutes(_ routes: [ConfigLine]) {
                for route in routes {
                    for (i, word) in route.words.enumerated() where (word == "dev" || word == "oif") && i + 1 < route.words.count {
                        check(route.words[i + 1], "WARNING - interface \(route.words[i + 1]) for VROUTE nexthop doesn't exist", route.location)
                    }
                }
            }
            func checkAddresses(_ addresses: [VirtualAddressDefinition]) {
                for a in addresses {
                    if let dev = a.device { check(dev, "WARNING - interface \(dev) for ip address \(a.address) doesn't exist", a.location) }
                }
            }
            checkAddresses(staticAddresses)
            checkRoutes(staticRoutes)
            for vi in instances {
                if vi.interface == "lo" {
                    d.report(.generalError, "(\(vi.name)) cannot use a loopback interface (lo) for vrrp - ignoring", at: vi.interfaceLocation)
                    continue
                }
                if let name = vi.interface {
                    check(name, "WARNING - interface \(name) for vrrp_instance \(vi.name) doesn't exist", vi.interfaceLocation ?? vi.location)
                }
                for t in vi.trackInterfaces { check(t.name, "(\(vi.name)) tracked interface \(t.name) doesn't exist", t.location) }
                checkAddresses(vi.virtualAddresses + vi.excludedAddresses)
                checkRoutes(vi.virtualRoutes)
            }
            if missing {
                d.report(.badInterface, "Non-existent interface specified in configuration", at: nil)
                return
            }
            for i in instances.indices where instances[i].interface == "lo" { instances[i].interface = nil }
        }
        for vi in instances {
            if vi.virtualRouterID == nil {
                d.report(.generalError, "(\(vi.name)) the virtual router id must be set", at: vi.location)
                return
            }
            if vi.interface == nil && vi.unicastPeers.isEmpty {
                d.report(.generalError, "(\(vi.name)) Unknown interface!", at: vi.location)
                return
            }
        }
        let instanceNames = Set(instances.map(\.name))
        for group in syncGroups {
            for member in group.members where !instanceNames.contains(member) {
                d.report(.generalError, "Virtual router \(member) specified in sync group \(group.name) doesn't exist - ignoring", at: group.location)
            }
        }
        let scriptNames = Set(vrrpScripts.map(\.name))
        for vi in instances {
            for t in vi.trackScripts where !scriptNames.contains(t.name) {
                d.report(.generalError, "(\(vi.name)) track script \(t.name) not found, ignoring...", at: t.location)
            }
        }
        for vi in instances where vi.virtualAddresses.isEmpty {
            d.report(.generalError, "(\(vi.name)) No VIP specified; at least one is sensible", at: vi.location)
        }
        var seen: [String: String] = [:]
        for vi in instances {
            guard let vrid = vi.virtualRouterID, let interface = vi.interface, vi.unicastPeers.isEmpty else { continue }
            let family = vi.virtualAddresses.first?.address.isV6 == true ? 6 : 4
            let key = "\(interface)|\(vrid)|\(family)"
            if let other = seen[key] {
                d.report(.generalError, "\(other) and \(vi.name) both use VRID \(vrid) with IPv\(family) on interface \(interface)", at: vi.location)
            }
            seen[key] = vi.name
        }
    }
}
