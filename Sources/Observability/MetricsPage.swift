import HealthCheck
import LVSCore
import LVSSync
import VRRP

/// `/metrics`: a `DirectorView` in Prometheus's text format.
///
/// Names follow Prometheus's conventions (base units, `_total` on counters) and map onto the
/// community exporters' so dashboards port over: the IPVS families are node_exporter's
/// `node_ipvs_*` with the `lvs_` prefix instead, with the same labels (`proto`, `local_address`,
/// `local_port`, `local_mark`, `remote_address`, `remote_port`); the VRRP families are
/// keepalived-exporter's `keepalived_*` names and labels (`iname`, `intf`, `vrid`) unchanged.
public enum MetricsPage {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// - Parameter backendRates: also the five rate gauges per real server (ipvsadm --rate's
    ///   estimator); without them a farm's page is a third smaller, and rate() over the
    ///   `lvs_backend_*_total` counters gives the same.
    public static func render(_ view: DirectorView, backendRates: Bool = false) -> [UInt8] {
        let backendCount = view.services.reduce(0) { $0 + $1.servers.count }
        var out = Exposition(capacity: 4096 + backendCount * (backendRates ? 2400 : 1600))
        process(view, &out)
        table(view, &out)
        let serviceLabels = view.services.map { labels(of: $0.config.key) }
        services(view, serviceLabels, &out)
        let backendLabels = zip(view.services, serviceLabels).map { service, base in
            service.servers.map { base.adding(["remote_address": "\($0.config.endpoint.address)", "remote_port": "\($0.config.endpoint.port)"]) }
        }
        backends(view, backendLabels, rates: backendRates, &out)
        checkers(view, &out)
        vrrp(view, &out)
        engine(view, &out)
        sync(view, &out)
        if !view.httpRequests.isEmpty {
            out.family("lvs_http_requests_total", .counter, "HTTP requests answered by lvsd's observability endpoint, by status code.")
            for c in view.httpRequests { out.sample("lvs_http_requests_total", LabelSet(["code": c.label]), c.value) }
        }
        return out.bytes
    }

    /// node_exporter's labels for a virtual service (a fwmark service has no address or port).
    static func labels(of key: VirtualService.Key) -> LabelSet {
        switch key {
        case .address(let proto, let address, let port):
            return LabelSet(["proto": proto.name, "local_address": "\(address)", "local_port": "\(port)", "local_mark": ""])
        case .fwmark(let mark, let family):
            // An IPv6 fwmark service (`-f N -6`) is another service with the same mark.
            return LabelSet(["proto": family == .inet6 ? "FWM6" : "FWM", "local_address": "", "local_port": "0", "local_mark": "\(mark)"])
        }
    }

    /// The five counters and five rates of `ipvsadm --stats` and `--rate`, one family each, for
    /// every object with its labels.
    private static func statistics(_ prefix: String, _ what: String, _ items: [(LabelSet, Counters, Rates)], rates withRates: Bool = true,
                                   _ out: inout Exposition) {
        let counters: [(String, String, KeyPath<Counters, UInt64>)] = [
            ("connections_total", "Connections scheduled", \.connections),
            ("incoming_packets_total", "Packets in (client to real server)", \.inPackets),
            ("outgoing_packets_total", "Packets out (real server to client)", \.outPackets),
            ("incoming_bytes_total", "Bytes in (client to real server)", \.inBytes),
            ("outgoing_bytes_total", "Bytes out (real server to client)", \.outBytes),
        ]
        for (suffix, help, path) in counters {
            let name = prefix + suffix
            out.family(name, .counter, "\(help) \(what) (ipvsadm --stats, not reset by -Z).")
            for (labels, c, _) in items { out.sample(name, labels, c[keyPath: path]) }
        }
        guard withRates else { return }
        let rates: [(String, String, KeyPath<Rates, UInt64>)] = [
            ("connections_per_second", "Connections per second", \.connectionsPerSecond),
            ("incoming_packets_per_second", "Packets in per second", \.inPacketsPerSecond),
            ("outgoing_packets_per_second", "Packets out per second", \.outPacketsPerSecond),
            ("incoming_bytes_per_second", "Bytes in per second", \.inBytesPerSecond),
            ("outgoing_bytes_per_second", "Bytes out per second", \.outBytesPerSecond),
        ]
        for (suffix, help, path) in rates {
            let name = prefix + suffix
            out.family(name, .gauge, "\(help) \(what), as ipvsadm --rate estimates it.")
            for (labels, _, r) in items { out.sample(name, labels, r[keyPath: path]) }
        }
    }

    private static func process(_ view: DirectorView, _ out: inout Exposition) {
        out.family("lvs_build_info", .gauge, "lvsd's version and forwarding engine (always 1).")
        out.sample("lvs_build_info", LabelSet(["version": view.version, "engine": view.engine]), 1 as UInt64)
        out.family("process_start_time_seconds", .gauge, "Start time of lvsd since the Unix epoch in seconds.")
        out.sample("process_start_time_seconds", LabelSet(), view.startTime)
        out.family("lvs_config_loads_total", .counter, "Configuration loads (start and reloads), by result.")
        out.sample("lvs_config_loads_total", LabelSet(["result": "success"]), view.reloads.succeeded)
        out.sample("lvs_config_loads_total", LabelSet(["result": "failure"]), view.reloads.failed)
        out.family("lvs_config_last_load_successful", .gauge, "Whether the last configuration load was applied (1) or refused (0).")
        out.sample("lvs_config_last_load_successful", LabelSet(), view.reloads.lastSucceeded)
        out.family("lvs_config_last_load_success_timestamp_seconds", .gauge, "When a configuration was last applied, in Unix seconds (0: never).")
        out.sample("lvs_config_last_load_success_timestamp_seconds", LabelSet(), view.reloads.lastSuccessTime)
    }

    private static func table(_ view: DirectorView, _ out: inout Exposition) {
        out.family("lvs_connection_entries", .gauge, "Connection table entries in use (connections and persistence templates).")
        out.sample("lvs_connection_entries", LabelSet(), view.connectionEntries)
        out.family("lvs_connection_entries_limit", .gauge, "Connection table capacity.")
        out.sample("lvs_connection_entries_limit", LabelSet(), view.connectionCapacity)
        out.family("lvs_services", .gauge, "Virtual services in the table.")
        out.sample("lvs_services", LabelSet(), view.services.count)
        statistics("lvs_", "over all virtual services", [(LabelSet(), view.totals.totals, view.totals.rates)], &out)
    }

    private static func services(_ view: DirectorView, _ labels: [LabelSet], _ out: inout Exposition) {
        out.family("lvs_service_info", .gauge, "A virtual service with its scheduler and flags (always 1).")
        for (s, l) in zip(view.services, labels) {
            let flags = SaveFormat.schedulerFlagNames(s.config.flags, scheduler: s.config.scheduler).joined(separator: ",")
            out.sample("lvs_service_info", l.adding(["scheduler": s.config.scheduler, "flags": flags, "persistent": s.config.isPersistent ? "1" : "0"]), 1 as UInt64)
        }
        out.family("lvs_service_persistence_timeout_seconds", .gauge, "Persistence timeout of a persistent virtual service (-p).")
        for (s, l) in zip(view.services, labels) where s.config.isPersistent {
            out.sample("lvs_service_persistence_timeout_seconds", l, UInt64(s.config.persistenceTimeout))
        }
        out.family("lvs_service_real_servers", .gauge, "Real servers in a virtual service.")
        for (s, l) in zip(view.services, labels) { out.sample("lvs_service_real_servers", l, s.servers.count) }
        statistics("lvs_service_", "for a virtual service", zip(view.services, labels).map { ($1, $0.totals, $0.rates) }, &out)
    }

    private static func backends(_ view: DirectorView, _ labels: [[LabelSet]], rates: Bool, _ out: inout Exposition) {
        var items: [(LabelSet, RealServerSnapshot)] = []
        for (s, l) in zip(view.services, labels) { items += zip(l, s.servers) }
        let gauges: [(String, String, (RealServerSnapshot) -> UInt64)] = [
            ("lvs_backend_weight", "Weight of a real server (-w; 0 while quiesced).", { UInt64(max(0, $0.config.weight)) }),
            ("lvs_backend_connections_active", "Active connections of a real server (ActiveConn).", { UInt64($0.activeConnections) }),
            ("lvs_backend_connections_inactive", "Inactive connections of a real server (InActConn).", { UInt64($0.inactiveConnections) }),
            ("lvs_backend_connections_persistent", "Persistence templates pointing at a real server (PersistConn).", { UInt64($0.persistentConnections) }),
            ("lvs_backend_overloaded", "Whether a real server is over its upper threshold (-x) and takes no new connections.", { $0.isOverloaded ? 1 : 0 }),
        ]
        for (name, help, value) in gauges {
            out.family(name, .gauge, help)
            for (l, r) in items { out.sample(name, l, value(r)) }
        }
        statistics("lvs_backend_", "for a real server", items.map { ($0, $1.totals, $1.rates) }, rates: rates, &out)
        // Health, for the real servers that have checkers.
        var up: [ServerKey: Bool] = [:]
        for c in view.checkers {
            let key = ServerKey(service: c.service, server: c.server)
            up[key] = (up[key] ?? true) && c.state.isUp
        }
        guard !up.isEmpty else { return }
        out.family("lvs_backend_healthy", .gauge, "Whether every health checker of a real server passes (1) or not (0).")
        for (s, l) in zip(view.services, labels) {
            for (r, rl) in zip(s.servers, l) {
                if let healthy = up[ServerKey(service: s.config.key, server: r.config.endpoint)] {
                    out.sample("lvs_backend_healthy", rl, healthy)
                }
            }
        }
    }

    struct ServerKey: Hashable {
        var service: VirtualService.Key
        var server: Endpoint
    }

    private static func checkers(_ view: DirectorView, _ out: inout Exposition) {
        guard !view.checkers.isEmpty else { return }
        var seen: [ServerKey: Int] = [:]
        let labelled = view.checkers.map { c -> LabelSet in
            let key = ServerKey(service: c.service, server: c.server)
            let index = seen[key, default: 0]
            seen[key] = index + 1
            return labels(of: c.service).adding([
                "remote_address": "\(c.server.address)", "remote_port": "\(c.server.port)",
                "checker": c.label, "index": "\(index)", "target": "\(c.target)",
            ])
        }
        let families: [(String, Exposition.Kind, String, (CheckerState) -> UInt64)] = [
            ("lvs_checker_up", .gauge, "Whether a health checker finds its real server up (1) or down (0).", { $0.isUp ? 1 : 0 }),
            ("lvs_checker_probes_total", .counter, "Probes a health checker ran.", { $0.probes }),
            ("lvs_checker_failed_probes_total", .counter, "Probes of a health checker that failed.", { $0.failedProbes }),
            ("lvs_checker_transitions_total", .counter, "Times a health checker found its real server changed between up and down.", { $0.transitions }),
        ]
        for (name, kind, help, value) in families {
            out.family(name, kind, help)
            for (c, l) in zip(view.checkers, labelled) { out.sample(name, l, value(c.state)) }
        }
    }

    /// keepalived's own numbering of states (VRRP_STATE_INIT, _BACK, _MAST, _FAULT), which
    /// keepalived-exporter exports.
    static func stateNumber(_ state: String) -> Int {
        switch state.uppercased() {
        case "BACKUP": return 1
        case "MASTER": return 2
        case "FAULT": return 3
        default: return 0
        }
    }

    private static func vrrp(_ view: DirectorView, _ out: inout Exposition) {
        guard !view.vrrp.isEmpty else { return }
        let labels = view.vrrp.map { LabelSet(["iname": $0.name, "intf": $0.interface, "vrid": "\($0.virtualRouterID)"]) }
        out.family("keepalived_vrrp_state", .gauge, "State of a VRRP instance: 0 init, 1 backup, 2 master, 3 fault.")
        for (v, l) in zip(view.vrrp, labels) { out.sample("keepalived_vrrp_state", l, stateNumber(v.state)) }
        out.family("keepalived_vrrp_priority", .gauge, "Effective priority of a VRRP instance (after tracking).")
        for (v, l) in zip(view.vrrp, labels) { out.sample("keepalived_vrrp_priority", l, v.priority) }
        out.family("keepalived_vrrp_configured_priority", .gauge, "Configured priority of a VRRP instance.")
        for (v, l) in zip(view.vrrp, labels) { out.sample("keepalived_vrrp_configured_priority", l, v.configuredPriority) }
        out.family("keepalived_vrrp_transitions_total", .counter, "State changes of a VRRP instance.")
        for (v, l) in zip(view.vrrp, labels) { out.sample("keepalived_vrrp_transitions_total", l, v.transitions) }
        let counters: [(String, String, KeyPath<VRRPInstance.Statistics, Int>)] = [
            ("keepalived_advert_rcvd_total", "Adverts received.", \.advertisementsReceived),
            ("keepalived_advert_sent_total", "Adverts sent.", \.advertisementsSent),
            ("keepalived_become_master_total", "Times the instance became master.", \.becameMaster),
            ("keepalived_release_master_total", "Times the instance released master.", \.releasedMaster),
            ("keepalived_packet_len_err_total", "Adverts dropped for their length.", \.packetLengthErrors),
            ("keepalived_advert_interval_err_total", "Adverts dropped for another advert interval.", \.intervalErrors),
            ("keepalived_ip_ttl_err_total", "Adverts dropped for a TTL (hop limit) other than 255.", \.ttlErrors),
            ("keepalived_invalid_type_rcvd_total", "Adverts dropped for their type.", \.invalidType),
            ("keepalived_version_err_total", "Adverts dropped for their VRRP version.", \.versionErrors),
            ("keepalived_checksum_err_total", "Adverts dropped for a bad checksum.", \.checksumErrors),
            ("keepalived_addr_list_err_total", "Adverts whose address list differs from ours.", \.addressListErrors),
            ("keepalived_invalid_authtype_total", "Adverts dropped for an unknown authentication type.", \.invalidAuthenticationType),
            ("keepalived_authtype_mismatch_total", "Adverts dropped for another authentication type.", \.authenticationTypeMismatch),
            ("keepalived_auth_failure_total", "Adverts dropped for failed authentication.", \.authenticationFailures),
            ("keepalived_unknown_peer_total", "Adverts dropped from a source that is not a configured unicast peer.", \.unknownPeer),
            ("keepalived_pri_zero_rcvd_total", "Priority 0 adverts received.", \.priorityZeroReceived),
            ("keepalived_pri_zero_sent_total", "Priority 0 adverts sent.", \.priorityZeroSent),
        ]
        for (name, help, path) in counters {
            out.family(name, .counter, help)
            for (v, l) in zip(view.vrrp, labels) { out.sample(name, l, v.statistics[keyPath: path]) }
        }
    }

    /// A label value from a human one ("not scheduled" to "not_scheduled").
    static func snakeCase(_ s: String) -> String {
        var out = ""
        var gap = false
        for ch in s {
            if ch.isLetter || ch.isNumber {
                if gap && !out.isEmpty { out.append("_") }
                out.append(contentsOf: ch.lowercased())
                gap = false
            } else {
                gap = true
            }
        }
        return out
    }

    private static func engine(_ view: DirectorView, _ out: inout Exposition) {
        if !view.enginePackets.isEmpty {
            out.family("lvs_engine_packets_total", .counter, "Frames the packet engine took, by what became of them.")
            for c in view.enginePackets { out.sample("lvs_engine_packets_total", LabelSet(["result": snakeCase(c.label)]), c.value) }
        }
        out.family("lvs_engine_dropped_total", .counter, "Packets (packet engine) or connections (proxy engine) dropped, by reason.")
        for c in view.engineDrops { out.sample("lvs_engine_dropped_total", LabelSet(["reason": snakeCase(c.label)]), c.value) }
        out.family("lvs_engine_real_server_failures_total", .counter, "Connections to a real server that failed (each retried on another or refused).")
        out.sample("lvs_engine_real_server_failures_total", LabelSet(), view.realServerFailures)
    }

    private static func sync(_ view: DirectorView, _ out: inout Exposition) {
        let t = view.syncTable
        out.family("lvs_sync_queued_total", .counter, "Connection states queued for the sync master daemon.")
        out.sample("lvs_sync_queued_total", LabelSet(), t.queued)
        out.family("lvs_sync_queue_overflow_total", .counter, "Connection states the full sync queue refused.")
        out.sample("lvs_sync_queue_overflow_total", LabelSet(), t.queueOverflow)
        out.family("lvs_sync_applied_total", .counter, "Connection states a sync backup received, by what it did with them.")
        let applied: [(String, UInt64)] = [("created", t.created), ("updated", t.updated), ("replaced", t.replaced), ("stale", t.stale),
                                           ("no_service", t.noService), ("no_destination", t.noDestination), ("table_full", t.tableFull)]
        for (result, value) in applied { out.sample("lvs_sync_applied_total", LabelSet(["result": result]), value) }
        guard !view.sync.isEmpty else { return }
        let labels = view.sync.map { LabelSet(["state": $0.status.state, "interface": $0.status.interface, "syncid": "\($0.status.syncID)"]) }
        let counters: [(String, String, KeyPath<SyncDaemon.Statistics, UInt64>)] = [
            ("lvs_sync_messages_sent_total", "Sync messages sent.", \.messagesSent),
            ("lvs_sync_entries_sent_total", "Connection entries sent in sync messages.", \.entriesSent),
            ("lvs_sync_send_failures_total", "Sync messages the kernel would not take (their entries are lost).", \.sendFailures),
            ("lvs_sync_entries_omitted_total", "Entries sync protocol version 0 cannot carry (IPv6).", \.omitted),
            ("lvs_sync_messages_received_total", "Sync messages received.", \.messagesReceived),
            ("lvs_sync_entries_received_total", "Connection entries received in sync messages.", \.entriesReceived),
        ]
        for (name, help, path) in counters {
            out.family(name, .counter, help)
            for (d, l) in zip(view.sync, labels) { out.sample(name, l, d.statistics[keyPath: path]) }
        }
        out.family("lvs_sync_messages_refused_total", .counter, "Sync messages refused from some point on, by reason.")
        for (d, l) in zip(view.sync, labels) {
            for (reason, n) in d.statistics.refused.sorted(by: { $0.key < $1.key }) {
                out.sample("lvs_sync_messages_refused_total", l.adding(["reason": snakeCase(reason)]), n)
            }
        }
        out.family("lvs_sync_entries_skipped_total", .counter, "Single sync entries skipped, by reason.")
        for (d, l) in zip(view.sync, labels) {
            for (reason, n) in d.statistics.skipped.sorted(by: { $0.key < $1.key }) {
                out.sample("lvs_sync_entries_skipped_total", l.adding(["reason": snakeCase(reason)]), n)
            }
        }
    }
}
