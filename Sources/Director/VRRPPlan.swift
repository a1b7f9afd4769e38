import KeepalivedConfig
import LVSCore
import VRRP

/// keepalived.conf's VRRP part as the VRRP host runs it: instances with keepalived's defaults
/// applied, sync groups, what is tracked, the vrrp_scripts to run and the notify scripts.
struct VRRPPlan: Sendable {
    struct Check: Sendable, Hashable {
        var name: String
        var script: RunnableScript
        /// Nanoseconds.
        var interval: Int64
        var timeout: Int64
    }

    /// notify_master / _backup / _fault / _stop, and `notify` (given the generic arguments).
    struct Notify: Sendable, Hashable {
        var byState: [String: RunnableScript] = [:]
        var generic: RunnableScript?
    }

    var setups: [VRRPHost.InstanceSetup] = []
    var groups: [(name: String, members: [String])] = []
    var scripts: [String: VRRPTracking.ScriptStatus] = [:]
    var files: [String: String] = [:]
    var checks: [Check] = []
    var instanceNotify: [String: Notify] = [:]
    var groupNotify: [String: Notify] = [:]
    /// Virtual addresses by the instance that owns them (for ha_suspend).
    var owners: [IPAddress: String] = [:]
    var messages: [String] = []
    /// lvs_sync_daemon: the daemon to run and the instance whose state it follows (master while
    /// the instance is master, backup otherwise); without an instance, a master and a backup.
    var syncDaemon: SyncDaemonConfig?
    var syncInstance: String?

    var isEmpty: Bool { setups.isEmpty }

    /// What decides whether a running VRRP host can stay as it is on reload.
    var identity: String {
        "\(setups.map { "\($0.settings)|\($0.resolveSource)|\($0.routes)" })|\(groups.map { "\($0.name):\($0.members)" })|\(scripts.keys.sorted())|\(files.sorted { $0.key < $1.key })"
    }

    static let second: Int64 = 1_000_000_000

    init() {}

    init(_ c: KeepalivedConfiguration, scripts host: ScriptPolicy.Host = ScriptPolicy.Host()) {
        let g = c.globalDefinitions
        func global(_ keyword: String) -> [String]? { g.settings.last { $0.keyword == keyword }?.arguments }
        func globalNumber(_ keyword: String) -> Double? { global(keyword)?.first.flatMap(Double.init) }
        var policy = ScriptPolicy(g, host: host)
        let definitions = Dictionary(c.vrrpScripts.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let fileDefinitions = Dictionary(c.trackFiles.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var groupOf: [String: VRRPSyncGroupDefinition] = [:]
        for group in c.syncGroups { for m in group.members { groupOf[m] = group } }
        var usedScripts = Set<String>()
        if let d = g.lvsSyncDaemon, d.instance == nil {
            // No instance: both daemons run all the time (keepalived's checker starts them), sync id 0.
            var config = SyncDaemonConfig(state: .backup)
            config.interface = d.interface
            config.syncID = d.syncID ?? 0
            config.maxLength = d.maximumLength
            config.port = d.port
            config.ttl = d.ttl
            config.group = d.group
            syncDaemon = config
        } else if let d = g.lvsSyncDaemon {
            if let name = d.instance, let vi = c.instances.first(where: { $0.name == name }), let vrid = vi.virtualRouterID {
                var config = SyncDaemonConfig(state: .backup)
                config.interface = d.interface
                // Without an id, keepalived uses the instance's VRID.
                config.syncID = d.syncID ?? vrid
                config.maxLength = d.maximumLength
                config.port = d.port
                config.ttl = d.ttl
                config.group = d.group
                syncDaemon = config
                syncInstance = name
            } else {
                messages.append("Unable to find vrrp instance \(d.instance ?? "") for lvs_syncd - clearing lvs_syncd config")
            }
        }

        for vi in c.instances {
            guard let vrid = vi.virtualRouterID else { continue }
            let v6 = vi.virtualAddresses.first?.address.isV6 ?? vi.unicastPeers.first?.isV6 ?? vi.unicastSourceIP?.isV6 ?? false
            let version = vi.version ?? g.vrrpVersion ?? (v6 ? 3 : 2)
            let priority = vi.priority ?? (vi.state == .master ? 255 : 100)
            var interval = Int64(vi.advertInterval) * 1000
            if version == 2 {
                let seconds = max(1, (interval + Self.second / 2) / Self.second)
                if seconds * Self.second != interval {
                    messages.append("(\(vi.name)) VRRPv2 advertisement interval \(Double(interval) / 1e9)s must be an integer. rounding")
                }
                interval = seconds * Self.second
            } else {
                interval = min(4095, max(1, interval / 10_000_000)) * 10_000_000
            }
            var authentication = VRRPAdvertisement.Authentication.none
            if version == 2, !v6, let type = vi.authenticationType {
                authentication = type == "PASS" ? .password(Array((vi.authenticationPassword ?? "").utf8.prefix(8))) : .ah
            } else if vi.authenticationType != nil {
                messages.append("(\(vi.name)) authentication is VRRPv2 over IPv4 only - ignoring")
            }
            var addresses: [VRRPInstance.Address] = []
            for (list, excluded) in [(vi.virtualAddresses, false), (vi.excludedAddresses, true)] {
                for a in list {
                    addresses.append(VRRPInstance.Address(a.address, prefixLength: a.prefixLength, device: a.device, scope: a.scope,
                                                          broadcast: a.broadcast.flatMap { IPAddress($0) }, label: a.label, excluded: excluded))
                    owners[a.address] = vi.name
                }
            }
            var timing = VRRPInstance.AnnouncementTiming()
            timing.delay = Int64(Double(vi.garpMasterDelay.map(Double.init) ?? globalNumber("vrrp_garp_master_delay") ?? 5) * 1e9)
            timing.repeatCount = Int(vi.garpMasterRepeat.map(Double.init) ?? globalNumber("vrrp_garp_master_repeat") ?? 5)
            timing.refresh = Int64(Double(vi.garpMasterRefresh.map(Double.init) ?? globalNumber("vrrp_garp_master_refresh") ?? 0) * 1e9)
            timing.refreshRepeat = Int(vi.settings.last { $0.keyword == "garp_master_refresh_repeat" }?.arguments.first.flatMap(Int.init)
                                       ?? globalNumber("vrrp_garp_master_refresh_repeat").map { Int($0) } ?? 1)

            let group = groupOf[vi.name]
            let owner = priority == 255
            var interfaces: [String: VRRPTracking.Weight] = [:]
            for t in vi.trackInterfaces + (group?.trackInterfaces ?? []) {
                var w = VRRPTracking.Weight(t.weight ?? 0, reverse: t.reverse)
                if w.weight != 0, owner || group != nil {
                    messages.append("(\(vi.name)) \(owner ? "cannot use a weighted track_interface with priority 255" : "weighted track_interface in a sync group") - setting weight of \(t.name) to 0")
                    w.weight = 0
                }
                interfaces[t.name] = w
            }
            var tracked: [String: VRRPTracking.Weight] = [:]
            for t in vi.trackScripts + (group?.trackScripts ?? []) {
                guard let d = definitions[t.name] else { continue }
                let w = VRRPTracking.Weight(t.weight ?? d.weight, reverse: t.reverse || d.reverse)
                if w.weight != 0, owner || group != nil {
                    messages.append("(\(vi.name)) ignoring weighted track_script \(t.name) \(owner ? "with priority 255" : "in a sync group")")
                    continue
                }
                tracked[t.name] = w
                usedScripts.insert(t.name)
            }
            var trackedFiles: [String: VRRPTracking.Weight] = [:]
            for t in vi.trackFiles + (group?.trackFiles ?? []) {
                guard let d = fileDefinitions[t.name], let path = d.file else { continue }
                var w = VRRPTracking.Weight(t.weight ?? d.weight, reverse: t.reverse || d.reverse)
                if w.weight != 0, owner || group != nil {
                    if t.weight == nil && d.weight == 1 { w.weight = 0 } else {
                        messages.append("(\(vi.name)) ignoring weighted track_file \(t.name) \(owner ? "with priority 255" : "in a sync group")")
                        continue
                    }
                }
                trackedFiles[t.name] = w
                files[t.name] = path
            }
            let has = { (k: String) in vi.settings.contains { $0.keyword == k } }
            let multicastGroup = global(v6 ? "vrrp_mcast_group6" : "vrrp_mcast_group4")?.first.flatMap { IPAddress($0) }
            let source = vi.unicastSourceIP ?? vi.multicastSourceIP
            let settings = VRRPInstance.Settings(
                name: vi.name, interface: vi.interface ?? "", isV6: v6, version: version, virtualRouterID: vrid, priority: priority,
                advertisementInterval: interval, preempt: !vi.nopreempt, preemptDelay: Int64(vi.preemptDelay) * 1000,
                authentication: authentication, addresses: addresses, sourceAddress: source ?? (v6 ? .anyV6 : .anyV4),
                unicastPeers: vi.unicastPeers, multicastGroup: multicastGroup, announcements: timing,
                trackedInterfaces: interfaces, trackedScripts: tracked, trackedFiles: trackedFiles,
                checkUnicastSource: has("check_unicast_src"),
                skipAddressCheck: has("skip_check_adv_addr") || g.settings.contains { $0.keyword == "vrrp_skip_check_adv_addr" },
                trackPrimaryInterface: !has("dont_track_primary"),
                virtualMACInterface: vi.useVirtualMAC.map { $0.isEmpty ? "vrrp.\(vrid)" : $0 })
            var routes: [VRRPHost.Route] = []
            for line in vi.virtualRoutes {
                switch Self.route(line.words) {
                case .success(let r): routes.append(r)
                case .failure(let why): messages.append("(\(vi.name)) virtual_routes line \(line.location.line): \(why.text) - ignoring")
                }
            }
            if !vi.virtualRules.isEmpty { messages.append("(\(vi.name)) virtual_rules are not applied by this build") }
            var withKey = settings
            withKey.authenticationKey = VRRPAuthenticationHeader.key(Array((vi.authenticationPassword ?? "").utf8))
            setups.append(VRRPHost.InstanceSetup(settings: withKey, resolveSource: source == nil, routes: routes))
            instanceNotify[vi.name] = Self.notify(vi.notify, kind: "notify", policy: &policy)
        }
        let known = Set(setups.map(\.settings.name))
        for group in c.syncGroups {
            groups.append((group.name, group.members.filter(known.contains)))
            groupNotify[group.name] = Self.notify(group.notify, kind: "notify", policy: &policy)
        }
        for name in usedScripts.sorted() {
            guard let d = definitions[name] else { continue }
            self.scripts[name] = VRRPTracking.ScriptStatus(rise: d.rise, fall: d.fall, initFail: d.initFail)
            guard let command = d.script,
                  let script = policy.prepare(ScriptCommand(text: command.text, argv: command.argv, user: d.user ?? command.user, group: command.group),
                                              kind: "vrrp") else {
                messages.append("Disabling track script \(name) since not found/accessible")
                continue
            }
            let interval = Int64(max(1, d.interval)) * Self.second
            checks.append(Check(name: name, script: script, interval: interval, timeout: d.timeout.map { Int64($0) * Self.second } ?? interval))
        }
        messages += policy.finish().map { $0.replacingOccurrences("check scripts are", "scripts are") }
    }

    static func notify(_ scripts: [String: ScriptCommand], kind: String, policy: inout ScriptPolicy) -> Notify {
        var n = Notify()
        for (keyword, command) in scripts.sorted(by: { $0.key < $1.key }) {
            guard let script = policy.prepare(command, kind: kind) else { continue }
            switch keyword {
            case "notify": n.generic = script
            case "notify_master": n.byState["MASTER"] = script
            case "notify_backup": n.byState["BACKUP"] = script
            case "notify_fault": n.byState["FAULT"] = script
            case "notify_stop": n.byState["STOP"] = script
            default: break
            }
        }
        return n
    }

    struct RouteError: Error { var text: String }

    /// One virtual_routes line, the common iproute2 forms: `[src IP] [to] DEST[/LEN] [via|gw GW]
    /// [dev|oif IF] [scope S] [table N] [metric N]`, with `blackhole`, `unreachable` or `prohibit`
    /// before the destination.
    static func route(_ words: [String]) -> Result<VRRPHost.Route, RouteError> {
        var r = VRRPHost.Route(destination: nil, prefixLength: 0, isV6: false)
        var i = 0
        var haveDestination = false
        var scoped = false
        func next() -> String? {
            i += 1
            return i < words.count ? words[i] : nil
        }
        while i < words.count {
            let w = words[i]
            switch w {
            case "src":
                guard let v = next(), let a = IPAddress(v) else { return .failure(RouteError(text: "bad src")) }
                r.source = a
            case "via", "gw":
                guard var v = next() else { return .failure(RouteError(text: "missing gateway")) }
                if v == "inet" || v == "inet6", let n = next() { v = n }
                guard let a = IPAddress(v) else { return .failure(RouteError(text: "bad gateway \(v)")) }
                r.gateway = a
            case "dev", "oif":
                guard let v = next() else { return .failure(RouteError(text: "missing device")) }
                r.device = v
            case "scope":
                guard let v = next() else { return .failure(RouteError(text: "missing scope")) }
                r.scope = VRRPHost.scope(v)
                scoped = true
            case "table":
                guard let v = next() else { return .failure(RouteError(text: "missing table")) }
                switch v {
                case "main": r.table = 254
                case "local": r.table = 255
                case "default": r.table = 253
                default:
                    guard let n = UInt32(v) else { return .failure(RouteError(text: "table \(v) must be a number")) }
                    r.table = n
                }
            case "metric", "priority", "preference":
                guard let v = next(), let n = UInt32(v) else { return .failure(RouteError(text: "bad metric")) }
                r.metric = n
            case "blackhole": r.type = 6
            case "unreachable": r.type = 7
            case "prohibit": r.type = 8
            case "to": break
            case "no_track", "onlink": break
            default:
                guard !haveDestination else { return .failure(RouteError(text: "'\(w)' is not understood")) }
                haveDestination = true
                if w == "default" {
                    r.destination = nil
                    r.prefixLength = 0
                } else {
                    let parts = w.split(separator: "/", maxSplits: 1).map(String.init)
                    guard let a = IPAddress(parts[0]) else { return .failure(RouteError(text: "bad destination \(w)")) }
                    let full = a.isV6 ? 128 : 32
                    guard let len = parts.count == 2 ? Int(parts[1]) : full, (0...full).contains(len) else {
                        return .failure(RouteError(text: "bad prefix length in \(w)"))
                    }
                    r.destination = a
                    r.prefixLength = len
                    r.isV6 = a.isV6
                }
            }
            i += 1
        }
        guard haveDestination else { return .failure(RouteError(text: "no destination")) }
        if let gw = r.gateway { r.isV6 = gw.isV6 || r.isV6 }
        // As `ip route add`: a route without a gateway is on the link.
        if !scoped, r.gateway == nil, r.type == 1 { r.scope = 253 }
        return .success(r)
    }
}

extension String {
    fileprivate func replacingOccurrences(_ a: String, _ b: String) -> String {
        guard let range = range(of: a) else { return self }
        return replacingCharacters(in: range, with: b)
    }
}
