import LVSCore

/// The VRRP and global parts of keepalived's language (keepalived/vrrp/vrrp_parser.c,
/// keepalived/core/global_parser.c): the keywords SwiftLVS acts on are decoded into the model, the
/// others keepalived knows are checked for shape and kept as written.
extension Decoder {
    /// vrrp_instance keywords kept as settings (keepalived accepts them; SwiftLVS does not act on them yet).
    static let otherInstanceKeywords: Set<String> = [
        "vrf", "native_ipv6", "mcast_dst_ip", "track_src_ip", "unicast_ttl", "unicast_fault_no_peer", "check_unicast_src",
        "old_unicast_checksum", "dont_track_primary", "debug", "skip_check_adv_addr", "strict_mode", "accept", "no_accept",
        "promote_secondaries", "linkbeat_use_polling", "notify_master_rx_lower_pri", "notify_deleted", "notify_priority_changes",
        "lvs_sync_daemon_interface", "garp_master_refresh_repeat", "garp_lower_prio_delay", "garp_lower_prio_repeat",
        "down_timer_adverts", "garp_extra_if", "vmac_garp_intvl", "lower_prio_no_advert", "higher_prio_send_advert",
        "vmac_xmit_base", "use_vmac_addr", "use_ipvlan", "kernel_rx_buf_size", "track_process", "track_bfd",
        "track_group", "smtp_alert",
    ]

    static let otherGlobalKeywords: Set<String> = [
        "process_names", "process_name", "vrrp_process_name", "checker_process_name", "lvs_process_name", "bfd_process_name",
        "umask", "random_seed", "data_use_instance", "tmp_config_directory", "reload_check_config", "reload_time_file",
        "reload_repeat", "reload_file", "include_check", "config_save_dir", "startup_script", "shutdown_script",
        "startup_script_timeout", "shutdown_script_timeout", "max_auto_priority", "min_auto_priority_delay", "smtp_helo_name",
        "smtp_alert", "smtp_alert_vrrp", "smtp_alert_checker", "no_email_faults", "no_checker_emails", "checker_log_all_failures",
        "lvs_flush_on_stop", "lvs_flush_onstop", "lvs_notify_fifo", "lvs_notify_fifo_script", "rs_init_notifies",
        "lvs_netlink_cmd_rcv_bufs", "lvs_netlink_monitor_rcv_bufs", "lvs_netlink_cmd_rcv_bufs_force",
        "lvs_netlink_monitor_rcv_bufs_force", "nftables_ipvs", "nftables_ipvs_priority", "nftables_ipvs_start_fwmark",
        "notify_fifo", "notify_fifo_script", "vrrp_notify_fifo", "vrrp_notify_fifo_script", "default_interface",
        "disable_local_igmp", "vrrp_mcast_group4", "vrrp_mcast_group6", "vrrp_garp_master_delay", "vrrp_garp_master_repeat",
        "vrrp_garp_master_refresh", "vrrp_garp_master_refresh_repeat", "vrrp_garp_lower_prio_delay",
        "vrrp_garp_lower_prio_repeat", "vrrp_down_timer_adverts", "vrrp_garp_interval", "vrrp_gna_interval", "vrrp_min_garp",
        "vrrp_garp_extra_if", "vrrp_vmac_garp_intvl", "vrrp_lower_prio_no_advert", "vrrp_higher_prio_send_advert",
        "vrrp_iptables", "vrrp_ipsets", "nftables", "nftables_priority", "nftables_ifindex", "nftables_counters",
        "vrrp_check_unicast_src", "vrrp_skip_check_adv_addr", "vrrp_notify_priority_changes",
        "fifo_write_vrrp_states_on_reload", "vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_monitor_rcv_bufs",
        "vrrp_netlink_cmd_rcv_bufs_force", "vrrp_netlink_monitor_rcv_bufs_force", "process_monitor_rcv_bufs",
        "process_monitor_rcv_bufs_force", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier", "vrrp_startup_delay",
        "log_unknown_vrids", "vmac_prefix", "vmac_addr_prefix", "snmp_socket", "enable_traps", "enable_snmp_vrrp",
        "enable_snmp_keepalived", "enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_snmp_checker",
        "enable_dbus", "dbus_service_name", "bfd_priority", "bfd_no_swap", "bfd_rt_priority", "bfd_cpu_affinity",
        "bfd_rlimit_rttime", "bfd_rlimit_rtime", "vrrp_priority", "vrrp_no_swap", "vrrp_rt_priority", "vrrp_cpu_affinity",
        "vrrp_rlimit_rttime", "vrrp_rlimit_rtime", "checker_priority", "checker_no_swap", "checker_rt_priority",
        "checker_cpu_affinity", "checker_rlimit_rttime", "checker_rlimit_rtime", "vrrp_garp_lower_prio_delay",
        "linkbeat_use_polling", "instance", "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "use_pid_dir",
        "child_wait_time", "script_security",
    ]

    // MARK: global_defs

    mutating func globalDefinitions(_ node: ConfigNode, into g: inout GlobalDefinitions) {
        for item in block(node) {
            if item.keyword != "notification_email" { refuseBlock(item) }
            let value = item.words.count > 1 ? item.words[1] : ""
            switch item.keyword {
            case "router_id":
                guard item.words.count > 1 else { report(.generalError, "routerid name missing - ignoring", item); continue }
                g.routerID = value
            case "notification_email":
                let addresses = entries(item).flatMap { $0 }
                if addresses.isEmpty { report(.generalError, "Warning - empty notification_email block", item) }
                g.notificationEmail += addresses
            case "notification_email_from":
                guard item.words.count > 1 else { report(.generalError, "emailfrom missing - ignoring", item); continue }
                g.notificationEmailFrom = value
            case "smtp_server":
                guard item.words.count > 1 else { _ = word(item, 1); continue }
                if item.words.count > 2, UInt16(item.words[2]) == nil {
                    report(.generalError, "Invalid smtp server \(value) \(item.words[2])", item)
                    continue
                }
                g.smtpServer = item.words.dropFirst().joined(separator: " ")
            case "smtp_connect_timeout":
                guard let v = unsigned(item, 1, in: 0...4294) else {
                    report(.generalError, "smtp_connect_timeout '\(value)' must be in [0, 4294] - ignoring", item)
                    continue
                }
                g.smtpConnectTimeout = max(1, UInt32(v))
            case "script_user":
                guard item.words.count > 1 else { report(.generalError, "No script username specified", item); continue }
                g.scriptUser = value
                g.scriptGroup = item.words.count > 2 ? item.words[2] : nil
            case "enable_script_security": g.enableScriptSecurity = true
            case "vrrp_version":
                guard let v = integer(item, 1, in: 2...3) else { report(.generalError, "VRRP Error: Version must be either 2 or 3", item); continue }
                g.vrrpVersion = UInt8(v)
            case "vrrp_strict": g.vrrpStrict = true
            case "lvs_sync_daemon": g.lvsSyncDaemon = syncDaemon(item)
            case "lvs_timeouts": lvsTimeouts(item, &g)
            case "lvs_flush": g.lvsFlush = true
            case "dynamic_interfaces":
                g.dynamicInterfaces = true
                if item.words.count > 1, item.words[1] != "allow_if_changes" {
                    report(.generalError, "Unknown dynamic_interfaces option '\(item.words[1])'", item)
                }
            default:
                if Decoder.otherGlobalKeywords.contains(item.keyword) {
                    g.settings.append(KeywordSetting(keyword: item.keyword, arguments: Array(item.words.dropFirst()), location: item.location))
                } else {
                    unknown(item)
                }
            }
        }
    }

    private mutating func lvsTimeouts(_ node: ConfigNode, _ g: inout GlobalDefinitions) {
        guard node.words.count > 1 else { report(.generalError, "lvs_timeouts requires at least one option", node); return }
        var i = 1
        while i < node.words.count {
            let option = node.words[i]
            guard ["tcp", "tcpfin", "udp"].contains(option) else {
                report(.generalError, "Unknown option \(option) specified for lvs_timeouts", node)
                i += 1
                continue
            }
            guard i + 1 < node.words.count else {
                report(.generalError, "No value specified for lvs_timeout \(option) - ignoring", node)
                return
            }
            guard let v = unsigned(node.words[i + 1], in: 0...2_678_400, node) else {
                report(.generalError, "Invalid lvs_timeout \(option) (\(node.words[i + 1])) - ignoring", node)
                i += 2
                continue
            }
            switch option {
            case "tcp": g.lvsTimeouts.tcp = UInt32(v)
            case "tcpfin": g.lvsTimeouts.tcpFin = UInt32(v)
            default: g.lvsTimeouts.udp = UInt32(v)
            }
            i += 2
        }
    }

    private mutating func syncDaemon(_ node: ConfigNode) -> LVSSyncDaemonDefinition? {
        guard node.words.count > 1 else { report(.generalError, "lvs_sync_daemon requires interface", node); return nil }
        let interface = node.words[1]
        guard interface.utf8.count < 16 else {
            report(.generalError, "lvs_sync_daemon interface name '\(interface)' too long - ignoring", node)
            return nil
        }
        var sync = LVSSyncDaemonDefinition(interface: interface, location: node.location)
        var i = 2
        if i < node.words.count, !["id", "maxlen", "port", "ttl", "group", "inst"].contains(node.words[i]) {
            sync.instance = node.words[i]
            i += 1
        }
        while i < node.words.count {
            let option = node.words[i]
            guard i + 1 < node.words.count else {
                report(.generalError, "No value specified for lvs_sync_daemon \(option) - ignoring", node)
                break
            }
            let value = node.words[i + 1]
            switch option {
            case "inst": sync.instance = value
            case "id":
                if let v = UInt8(value) { sync.syncID = v } else { report(.generalError, "Invalid syncid (\(value)) - defaulting to vrid", node) }
            case "maxlen":
                if let v = UInt16(value), v >= 1, v <= 65507 { sync.maximumLength = v } else {
                    report(.generalError, "Invalid lvs_sync_daemon maxlen (\(value)) - ignoring", node)
                }
            case "port":
                if let v = UInt16(value), v >= 1 { sync.port = v } else { report(.generalError, "Invalid lvs_sync_daemon port (\(value)) - ignoring", node) }
            case "ttl":
                if let v = UInt8(value), v >= 1 { sync.ttl = v } else { report(.generalError, "Invalid lvs_sync_daemon ttl (\(value)) - ignoring", node) }
            case "group":
                guard let ip = IPAddress(value) else { report(.generalError, "Invalid lvs_sync_daemon group (\(value)) - ignoring", node); break }
                let multicast = ip.isV6 ? (ip.high >> 56) == 0xFF : (ip.v4 >> 28) == 0xE
                guard multicast else {
                    report(.generalError, "lvs_sync_daemon group address \(value) is not multicast - ignoring", node)
                    break
                }
                sync.group = ip
            default:
                if UInt8(option) != nil, sync.syncID == nil {
                    report(.deprecated, "Please use keyword \"id\" before lvs_sync_daemon SYNCID", node)
                    sync.syncID = UInt8(option)
                    i += 1
                    continue
                }
                report(.generalError, "Unknown option \(option) specified for lvs_sync_daemon", node)
                i += 1
                continue
            }
            i += 2
        }
        return sync
    }

    // MARK: vrrp_instance

    mutating func vrrpInstance(_ node: ConfigNode) -> VRRPInstanceDefinition? {
        guard node.words.count == 2 else {
            report(.generalError, "vrrp_instance must have a name", node)
            return nil
        }
        let name = node.words[1]
        var vi = VRRPInstanceDefinition(name: name, location: node.location)
        for item in block(node) {
            instanceKeyword(item, &vi)
        }
        if vi.state == .master, vi.authenticationType == "AH" {
            report(.generalError, "(\(name)) Initial state master is incompatible with AH authentication - clearing", at: nil)
            vi.state = nil
        }
        return vi
    }

    private static let instanceValueBlocks: Set<String> = [
        "virtual_ipaddress", "virtual_ipaddress_excluded", "virtual_routes", "virtual_rules", "unicast_peer",
        "track_interface", "track_script", "track_file", "track_process", "track_bfd", "authentication",
    ]

    private mutating func instanceKeyword(_ node: ConfigNode, _ vi: inout VRRPInstanceDefinition) {
        if !Decoder.instanceValueBlocks.contains(node.keyword) { refuseBlock(node) }
        let value = node.words.count > 1 ? node.words[1] : ""
        let name = vi.name
        switch node.keyword {
        case "state":
            guard let v = word(node, 1) else { return }
            switch v {
            case "MASTER": vi.state = .master
            case "BACKUP":
                if vi.state == .master { report(.generalError, "(\(name)) state previously set as MASTER - ignoring BACKUP", node) } else { vi.state = .backup }
            default:
                report(.generalError, "(\(name)) unknown state '\(v)', defaulting to BACKUP", node)
                vi.state = .backup
            }
        case "interface":
            guard let v = word(node, 1) else { return }
            guard v.utf8.count < 16 else { report(.generalError, "Interface name '\(v)' too long - ignoring", node); return }
            vi.interface = v
            vi.interfaceLocation = node.location
        case "virtual_router_id":
            guard let v = unsigned(node, 1, in: 1...255) else {
                report(.generalError, "(\(name)): VRID '\(value)' not valid - must be between 1 & 255", node)
                return
            }
            vi.virtualRouterID = UInt8(v)
        case "priority":
            guard let v = unsigned(node, 1, in: 1...255) else {
                report(.generalError, "(\(name)) Priority not valid! must be between 1 & 255. Using default 100", node)
                vi.priority = 100
                return
            }
            vi.priority = UInt8(v)
        case "advert_int":
            guard let text = word(node, 1) else { return }
            guard let v = decimal(text, places: 6, minimum: 10_000, maximum: 255_000_000, node) else {
                report(.generalError, "(\(name)) Advert interval (\(text)) not valid! Must be > 0 - ignoring", node)
                return
            }
            vi.advertInterval = v
        case "version":
            guard let v = integer(node, 1, in: 2...3) else { report(.generalError, "(\(name)): Version must be either 2 or 3", node); return }
            vi.version = UInt8(v)
        case "nopreempt": vi.nopreempt = true
        case "preempt": vi.nopreempt = false
        case "preempt_delay":
            guard let text = word(node, 1) else { return }
            guard let v = decimal(text, places: 6, minimum: 0, maximum: 1_000_000_000, node) else {
                report(.generalError, "(\(name)) Preempt_delay not valid! must be between 0-1000", node)
                vi.preemptDelay = 0
                return
            }
            vi.preemptDelay = v
        case "authentication":
            for entry in block(node) {
                refuseBlock(entry)
                switch entry.keyword {
                case "auth_type":
                    guard let t = word(entry, 1) else { continue }
                    guard t == "PASS" || t == "AH" else { report(.generalError, "(\(name)) unknown authentication type '\(t)'", entry); continue }
                    vi.authenticationType = t
                case "auth_pass":
                    guard let p = word(entry, 1) else { continue }
                    if p.utf8.count > 8 { report(.generalError, "Truncating auth_pass to 8 characters", entry) }
                    vi.authenticationPassword = String(decoding: p.utf8.prefix(8), as: UTF8.self)
                default: unknown(entry)
                }
            }
        case "virtual_ipaddress", "virtual_ipaddress_excluded":
            guard let block = node.block else {
                report(.missingBlockStart, "'{' missing from beginning of block \(node.keyword)", node)
                return
            }
            for entry in block {
                refuseBlock(entry)
                guard let address = virtualAddress(entry, instance: name) else { continue }
                if node.keyword == "virtual_ipaddress" { vi.virtualAddresses.append(address) } else { vi.excludedAddresses.append(address) }
            }
        case "virtual_routes": vi.virtualRoutes += entryLines(node)
        case "virtual_rules": vi.virtualRules += entryLines(node)
        case "unicast_src_ip", "mcast_src_ip":
            guard let text = word(node, 1) else { return }
            guard let ip = IPAddress(text) else {
                report(.generalError, "Configuration error: VRRP instance[\(name)] malformed src address[\(text)]. Skipping...", node)
                return
            }
            if node.keyword == "unicast_src_ip" { vi.unicastSourceIP = ip } else { vi.multicastSourceIP = ip }
        case "unicast_peer":
            for entry in entries(node) {
                guard let ip = IPAddress(entry[0]) else {
                    report(.generalError, "Configuration error: VRRP instance[\(name)] malformed unicast peer address[\(entry[0])]. Skipping...", node)
                    continue
                }
                vi.unicastPeers.append(ip)
            }
        case "track_interface": vi.trackInterfaces += tracked(node, instance: name, range: -253...253)
        case "track_script": vi.trackScripts += tracked(node, instance: name, range: -253...253)
        case "track_file": vi.trackFiles += tracked(node, instance: name, range: -254...254)
        case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
            if vi.notify[node.keyword] != nil {
                report(.generalError, "(\(name)) \(node.keyword) script already specified - ignoring \(value)", node)
                return
            }
            if let s = script(node) { vi.notify[node.keyword] = s }
        case "garp_master_delay":
            guard let v = unsigned(node, 1, in: 0...4294) else { report(.generalError, "(\(name)): garp_master_delay '\(value)' invalid - ignoring", node); return }
            vi.garpMasterDelay = UInt32(v)
        case "garp_master_repeat":
            guard let v = unsigned(node, 1, in: 0...UInt64(UInt32.max)) else { report(.generalError, "(\(name)): garp_master_repeat '\(value)' invalid - ignoring", node); return }
            if v == 0 { report(.generalError, "(\(name)): garp_master_repeat must be greater than 0, setting to 1", node) }
            vi.garpMasterRepeat = UInt32(max(v, 1))
        case "garp_master_refresh":
            guard let v = unsigned(node, 1, in: 0...UInt64(UInt32.max)) else { report(.generalError, "(\(name)): Invalid garp_master_refresh '\(value)' - ignoring", node); return }
            vi.garpMasterRefresh = UInt32(v)
        case "use_vmac":
            vi.useVirtualMAC = node.words.count > 1 ? value : ""
        case "lvs_sync_daemon_interface":
            report(.deprecated, "(\(name)) Specifying lvs_sync_daemon_interface against a vrrp is deprecated.", node)
            report(.deprecated, "      \(String(repeating: " ", count: name.utf8.count))Please use global lvs_sync_daemon", node)
            vi.settings.append(KeywordSetting(keyword: node.keyword, arguments: Array(node.words.dropFirst()), location: node.location))
        default:
            if Decoder.otherInstanceKeywords.contains(node.keyword) {
                vi.settings.append(KeywordSetting(keyword: node.keyword, arguments: Array(node.words.dropFirst()),
                                                  entries: node.block.map { $0.map(\.words) }, location: node.location))
            } else {
                unknown(node)
            }
        }
    }

    /// `track_interface` / `track_script` / `track_file` entries: `NAME [weight W [reverse]]`.
    mutating func tracked(_ node: ConfigNode, instance: String, range: ClosedRange<Int64>) -> [TrackedItem] {
        var items: [TrackedItem] = []
        // "track interface", "track script", "track file", as keepalived names them.
        let kind = "track " + node.keyword.dropFirst("track_".count)
        for line in entryLines(node) {
            let entry = line.words
            var item = TrackedItem(name: entry[0], location: line.location)
            var i = 1
            while i < entry.count {
                switch entry[i] {
                case "weight":
                    guard i + 1 < entry.count else {
                        report(.generalError, "(\(instance)) weight without value specified for \(kind) \(entry[0]) - ignoring", node)
                        i += 1
                        continue
                    }
                    if let w = integer(entry[i + 1], in: range, node) { item.weight = Int32(w) } else {
                        report(.generalError, "(\(instance)) weight for \(kind) \(entry[0]) must be in [\(range.lowerBound)..\(range.upperBound)] inclusive. Ignoring...", node)
                    }
                    i += 2
                case "reverse":
                    item.reverse = true
                    i += 1
                case "noreverse":
                    i += 1
                default:
                    report(.generalError, "(\(instance)) unknown \(kind) \(entry[0]) option \(entry[i]) - ignoring", node)
                    i += 1
                }
            }
            items.append(item)
        }
        return items
    }

    /// One `virtual_ipaddress` line.
    mutating func virtualAddress(_ node: ConfigNode, instance: String) -> VirtualAddressDefinition? {
        let words = node.words
        let text = words[0]
        var addressText = Substring(text)
        var prefix: UInt8?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            prefix = UInt8(text[text.index(after: slash)...])
        }
        guard let ip = IPAddress(addressText) else {
            report(.generalError, "VRRP parsed invalid IP \(text). skipping IP...", node)
            return nil
        }
        let maximum: UInt8 = ip.isV6 ? 128 : 32
        if text.contains("/"), prefix == nil || prefix! > maximum {
            report(.generalError, "Invalid address prefix len \(text[text.index(after: text.firstIndex(of: "/")!)...]) for address \(addressText) - using \(maximum)", node)
            prefix = maximum
        }
        var vip = VirtualAddressDefinition(address: ip, prefixLength: prefix ?? maximum, location: node.location)
        var i = 1
        let valued: Set<String> = ["dev", "scope", "brd", "broadcast", "label", "peer", "preferred_lft", "track_group"]
        while i < words.count {
            let option = words[i]
            if valued.contains(option) {
                guard i + 1 < words.count else {
                    report(.generalError, "No \(option) parameter specified for \(text)", node)
                    return nil
                }
                let v = words[i + 1]
                switch option {
                case "dev":
                    if vip.device != nil { report(.generalError, "Cannot specify ipaddress device more than once for \(text)", node); return nil }
                    vip.device = v
                case "scope":
                    if ip.isV6 { report(.generalError, "Cannot specify scope for IPv6 addresses (\(text)) - ignoring scope", node) } else {
                        guard ["global", "nowhere", "host", "link", "site"].contains(v) || UInt8(v) != nil else {
                            report(.generalError, "Invalid scope '\(v)' specified for \(text) - ignoring", node)
                            i += 2
                            continue
                        }
                        vip.scope = v
                    }
                case "brd", "broadcast":
                    if ip.isV6 {
                        report(.generalError, "VRRP is trying to assign a broadcast \(v) to the IPv6 address \(text) !!?? WTF... skipping VIP...", node)
                        return nil
                    }
                    guard v == "+" || v == "-" || IPAddress.parseDottedQuad(v) != nil else {
                        report(.generalError, "VRRP is trying to assign invalid broadcast \(v). skipping VIP...", node)
                        return nil
                    }
                    vip.broadcast = v
                case "label":
                    if ip.isV6 { report(.generalError, "Cannot specify label for IPv6 addresses (\(text)) - ignoring label", node) } else {
                        guard v.utf8.count <= 15 else {
                            report(.generalError, "Address label \(v) is longer than maximum length 15 - removing address", node)
                            return nil
                        }
                        vip.label = v
                    }
                case "peer": vip.peer = v
                default: vip.options += [option, v]
                }
                i += 2
                continue
            }
            switch option {
            case "home", "-nodad", "mngtmpaddr", "noprefixroute", "autojoin", "no_track", "use_vmac":
                vip.options.append(option)
            default:
                report(.generalError, "Unknown configuration entry '\(option)' for ip address - ignoring", node)
            }
            i += 1
        }
        return vip
    }

    // MARK: vrrp_script, vrrp_sync_group

    mutating func vrrpScript(_ node: ConfigNode) -> VRRPScriptDefinition? {
        guard let name = word(node, 1) else { return nil }
        var script = VRRPScriptDefinition(name: name, location: node.location)
        for item in block(node) {
            refuseBlock(item)
            let value = item.words.count > 1 ? item.words[1] : ""
            switch item.keyword {
            case "script": script.script = self.script(item)
            case "interval":
                guard let v = unsigned(item, 1, in: 0...4294) else {
                    report(.generalError, "(\(name)): vrrp script interval '\(value)' must be between 1 and 4294 - ignoring", item)
                    continue
                }
                if v == 0 { report(.generalError, "(\(name)): vrrp script interval must be greater than 0, setting to 1", item) }
                script.interval = UInt32(max(v, 1))
            case "timeout":
                guard let v = unsigned(item, 1, in: 0...4294) else { report(.generalError, "(\(name)): vrrp script timeout '\(value)' invalid - ignoring", item); continue }
                if v == 0 { report(.generalError, "(\(name)): vrrp script timeout must be greater than 0, setting to 1", item) }
                script.timeout = UInt32(max(v, 1))
            case "weight":
                guard let w = integer(item, 1, in: -253...253) else {
                    report(.generalError, "vrrp_script \(name) weight \(value) must be in [-253, 253]", item)
                    continue
                }
                script.weight = Int32(w)
                if item.words.count > 2 {
                    if item.words[2] == "reverse" { script.reverse = true } else {
                        report(.generalError, "vrrp_script \(name) unknown weight option \(item.words[2])", item)
                    }
                }
            case "rise", "fall":
                guard let v = unsigned(item, 1, in: 1...UInt64(Int32.max)) else {
                    report(.generalError, "(\(name)): vrrp script \(item.keyword) value '\(value)' invalid, defaulting to 1", item)
                    continue
                }
                if item.keyword == "rise" { script.rise = UInt32(v) } else { script.fall = UInt32(v) }
            case "user":
                guard item.words.count > 1 else { _ = word(item, 1); continue }
                script.user = value
            case "init_fail": script.initFail = true
            default: unknown(item)
            }
        }
        guard script.script != nil else {
            report(.generalError, "No script set for vrrp_script \(name) - removing", node)
            return nil
        }
        return script
    }

    mutating func syncGroup(_ node: ConfigNode) -> VRRPSyncGroupDefinition? {
        guard node.words.count == 2 else {
            report(.generalError, "vrrp_sync_group must have a name - skipping", node)
            return nil
        }
        let name = node.words[1]
        var group = VRRPSyncGroupDefinition(name: name, location: node.location)
        for item in block(node) {
            switch item.keyword {
            case "group":
                if !group.members.isEmpty {
                    report(.generalError, "Group list already specified for sync group \(name)", item)
                    continue
                }
                group.members = entries(item).flatMap { $0 }
                if group.members.isEmpty { report(.generalError, "Warning - sync group \(name) has empty group block", item) }
            case "track_interface": group.trackInterfaces += tracked(item, instance: name, range: -253...253)
            case "track_script": group.trackScripts += tracked(item, instance: name, range: -253...253)
            case "track_file": group.trackFiles += tracked(item, instance: name, range: -254...254)
            case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify", "notify_deleted":
                refuseBlock(item)
                if group.notify[item.keyword] != nil {
                    report(.generalError, "vrrp group \(name): \(item.keyword) script already specified - ignoring \(item.words.count > 1 ? item.words[1] : "")", item)
                    continue
                }
                if let s = script(item) { group.notify[item.keyword] = s }
            case "smtp_alert", "global_tracking", "sync_group_tracking_weight", "notify_priority_changes", "track_process", "track_bfd":
                if item.keyword == "global_tracking" {
                    report(.deprecated, "(\(name)) global_tracking is deprecated. Use track_interface/script/file on the sync group", item)
                }
                group.settings.append(KeywordSetting(keyword: item.keyword, arguments: Array(item.words.dropFirst()),
                                                     entries: item.block.map { $0.map(\.words) }, location: item.location))
            default:
                refuseBlock(item)
                unknown(item)
            }
        }
        return group
    }
}
