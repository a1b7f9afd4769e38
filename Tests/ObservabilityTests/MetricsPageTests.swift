import HealthCheck
import LVSCore
import LVSSync
import Testing
@testable import VRRP
@testable import Observability

/// The Prometheus page: the format's rules (each family's HELP and TYPE once, before its samples;
/// counters end in _total; labels escaped), and the figures being the table's.
@Suite struct MetricsPageTests {
    /// A table with two services (one fwmark), three real servers and some traffic.
    static func table() -> IPVS {
        var t = IPVS()
        let vip = Endpoint(IPAddress("10.0.0.1")!, 80)
        let tcp = VirtualService.Key.address(.tcp, vip.address, vip.port)
        try! t.addService(VirtualService.Config(key: tcp, scheduler: "rr"))
        try! t.addService(VirtualService.Config(key: .fwmark(7, .inet), scheduler: "wlc"))
        for (i, host) in ["192.168.1.10", "192.168.1.11"].enumerated() {
            try! t.addServer(RealServerConfig(Endpoint(IPAddress(host)!, 8080), weight: Int32(i + 1)), to: tcp)
        }
        try! t.addServer(RealServerConfig(Endpoint(IPAddress("192.168.1.12")!, 0)), to: .fwmark(7, .inet))
        return t
    }

    static func view(_ t: IPVS) -> DirectorView {
        var v = DirectorView()
        v.services = t.serviceSnapshots
        v.totals = t.totalStats
        v.connectionEntries = t.connectionCount
        v.connectionCapacity = t.settings.maxConnections
        return v
    }

    /// name{labels} value, parsed back.
    struct Sample: Hashable {
        var name: String
        var labels: [String: String]
        var value: String
    }

    static func parse(_ text: String) throws -> (samples: [Sample], types: [String: String], helps: Set<String>) {
        var samples: [Sample] = []
        var types: [String: String] = [:]
        var helps: Set<String> = []
        var sampled: Set<String> = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if line.hasPrefix("# HELP ") {
                let name = String(line.dropFirst(7).prefix { $0 != " " })
                #expect(helps.insert(name).inserted, "HELP \(name) twice")
                continue
            }
            if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                #expect(parts.count == 2)
                let name = String(parts[0])
                #expect(types[name] == nil, "TYPE \(name) twice")
                #expect(!sampled.contains(name), "TYPE \(name) after its samples")
                types[name] = String(parts[1])
                continue
            }
            var name = ""
            var labels: [String: String] = [:]
            var rest = Substring(line)
            name = String(rest.prefix { $0 != "{" && $0 != " " })
            rest = rest.dropFirst(name.count)
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    let key = String(rest.prefix { $0 != "=" })
                    rest = rest.dropFirst(key.count + 2)  // ="
                    var value = ""
                    while let ch = rest.first, ch != "\"" {
                        rest = rest.dropFirst()
                        if ch == "\\" {
                            let esc = rest.removeFirst()
                            value.append(esc == "n" ? "\n" : esc)
                        } else {
                            value.append(ch)
                        }
                    }
                    rest = rest.dropFirst()  // closing quote
                    if rest.first == "," { rest = rest.dropFirst() }
                    labels[key] = value
                }
                rest = rest.dropFirst()
            }
            #expect(rest.first == " ", "a space before the value: \(line)")
            let value = String(rest.dropFirst())
            #expect(Double(value) != nil || ["NaN", "+Inf", "-Inf"].contains(value), "value of \(line)")
            #expect(types[name] != nil, "\(name) sampled before its TYPE")
            sampled.insert(name)
            samples.append(Sample(name: name, labels: labels, value: value))
        }
        return (samples, types, helps)
    }

    static func render(_ v: DirectorView) -> String { String(decoding: MetricsPage.render(v), as: UTF8.self) }

    @Test func everyFamilyIsDeclaredOnceAndCountersEndInTotal() throws {
        let text = Self.render(Self.view(Self.table()))
        #expect(text.hasSuffix("\n"))
        let (samples, types, helps) = try Self.parse(text)
        #expect(Set(types.keys) == helps)
        for (name, type) in types {
            #expect(type == "counter" || type == "gauge")
            #expect(name.hasSuffix("_total") == (type == "counter"), "\(name) is a \(type)")
            #expect(name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "snake_case: \(name)")
        }
        // No two samples with the same name and labels.
        let keys = samples.map { "\($0.name)\($0.labels.sorted { $0.key < $1.key })" }
        #expect(Set(keys).count == keys.count)
    }

    @Test func theTableFiguresAreTheListingsFigures() throws {
        var t = Self.table()
        let tcp = VirtualService.Key.address(.tcp, IPAddress("10.0.0.1")!, 80)
        // Five scheduled connections with traffic, as the engines count them.
        for i in 0..<5 {
            let client = Endpoint(IPAddress("172.16.0.\(i + 1)")!, 40000)
            _ = t.inbound(.tcp(from: client, to: Endpoint(IPAddress("10.0.0.1")!, 80), flags: .syn), now: 0)
        }
        let v = Self.view(t)
        let (samples, _, _) = try Self.parse(Self.render(v))
        func value(_ name: String, _ labels: [String: String] = [:]) -> String? {
            samples.first { s in s.name == name && labels.allSatisfy { k, v in s.labels[k] == v } }?.value
        }
        let service = v.services.first { $0.config.key == tcp }!
        #expect(value("lvs_connections_total") == "\(v.totals.totals.connections)")
        #expect(value("lvs_service_connections_total", ["local_address": "10.0.0.1", "local_port": "80", "proto": "TCP"]) == "\(service.totals.connections)")
        #expect(service.totals.connections == 5)
        for rs in service.servers {
            let labels = ["local_address": "10.0.0.1", "remote_address": "\(rs.config.endpoint.address)", "remote_port": "8080"]
            #expect(value("lvs_backend_connections_total", labels) == "\(rs.totals.connections)")
            #expect(value("lvs_backend_connections_active", labels) == "\(rs.activeConnections)")
            #expect(value("lvs_backend_connections_inactive", labels) == "\(rs.inactiveConnections)")
            #expect(value("lvs_backend_weight", labels) == "\(rs.config.weight)")
            #expect(value("lvs_backend_incoming_bytes_total", labels) == "\(rs.totals.inBytes)")
        }
        // node_exporter's labels for a fwmark service.
        #expect(value("lvs_service_info", ["proto": "FWM", "local_mark": "7", "local_address": "", "local_port": "0"]) == "1")
        #expect(value("lvs_service_info", ["local_port": "80", "scheduler": "rr"]) == "1")
        #expect(value("lvs_connection_entries") == "\(v.connectionEntries)")
        #expect(value("lvs_service_connections_per_second") != nil)
        #expect(value("lvs_backend_connections_per_second") == nil, "backend rates only with ?rates=all")
        let all = try Self.parse(String(decoding: MetricsPage.render(v, backendRates: true), as: UTF8.self)).samples
        #expect(all.filter { $0.name == "lvs_backend_connections_per_second" }.count == 3)
        #expect(v.connectionEntries == 5)
    }

    @Test func zeroingTheTableDoesNotMakeCountersGoBack() throws {
        var t = Self.table()
        _ = t.inbound(.tcp(from: Endpoint(IPAddress("172.16.0.1")!, 40000), to: Endpoint(IPAddress("10.0.0.1")!, 80), flags: .syn), now: 0)
        try t.zero()
        let (samples, _, _) = try Self.parse(Self.render(Self.view(t)))
        #expect(samples.first { $0.name == "lvs_service_connections_total" && $0.labels["local_port"] == "80" }?.value == "1")
        #expect(t.serviceSnapshots.first { $0.config.key.port == 80 }?.counters.connections == 0, "ipvsadm --stats shows 0 after -Z")
    }

    @Test func checkersGiveHealthPerRealServer() throws {
        let t = Self.table()
        var v = Self.view(t)
        let tcp = VirtualService.Key.address(.tcp, IPAddress("10.0.0.1")!, 80)
        let timing = CheckTiming(delayLoop: 1_000_000_000, retry: 0, delayBeforeRetry: 1_000_000_000, warmup: 0, timeout: 1_000_000_000)
        var down = CheckerState(timing: timing, alpha: false, now: 0)
        _ = down.record(.failure("connection refused"), at: 0)
        let up = CheckerState(timing: timing, alpha: false, now: 0)
        let a = Endpoint(IPAddress("192.168.1.10")!, 8080), b = Endpoint(IPAddress("192.168.1.11")!, 8080)
        v.checkers = [
            .init(service: tcp, server: a, label: "TCP", target: a, state: up),
            .init(service: tcp, server: a, label: "HTTP", target: a, state: down),
            .init(service: tcp, server: b, label: "TCP", target: b, state: up),
        ]
        let (samples, _, _) = try Self.parse(Self.render(v))
        let healthy = samples.filter { $0.name == "lvs_backend_healthy" }
        #expect(healthy.count == 2, "only real servers with checkers")
        #expect(healthy.first { $0.labels["remote_address"] == "192.168.1.10" }?.value == "0")
        #expect(healthy.first { $0.labels["remote_address"] == "192.168.1.11" }?.value == "1")
        let checks = samples.filter { $0.name == "lvs_checker_up" }
        #expect(checks.map(\.value) == ["1", "0", "1"])
        #expect(checks.map { $0.labels["index"]! } == ["0", "1", "0"])
        #expect(samples.first { $0.name == "lvs_checker_failed_probes_total" && $0.labels["checker"] == "HTTP" }?.value == "1")
    }

    @Test func vrrpAsKeepalivedExporterNamesIt() throws {
        var v = DirectorView()
        var stats = VRRPInstance.Statistics()
        stats.advertisementsSent = 42
        stats.becameMaster = 1
        v.vrrp = [VRRPHost.Status(name: "VI_\"1\"", interface: "eth0", virtualRouterID: 51, version: 3, family: "inet", state: "MASTER",
                                  priority: 90, configuredPriority: 100, master: nil, advertisementInterval: 1, addresses: ["10.0.0.1"],
                                  group: nil, transitions: 2, statistics: stats, dropped: 0)]
        let (samples, _, _) = try Self.parse(Self.render(v))
        let labels = ["iname": "VI_\"1\"", "intf": "eth0", "vrid": "51"]
        func value(_ name: String) -> String? { samples.first { $0.name == name && $0.labels == labels }?.value }
        #expect(value("keepalived_vrrp_state") == "2")
        #expect(value("keepalived_vrrp_priority") == "90")
        #expect(value("keepalived_vrrp_configured_priority") == "100")
        #expect(value("keepalived_advert_sent_total") == "42")
        #expect(value("keepalived_become_master_total") == "1")
        #expect(MetricsPage.stateNumber("BACKUP") == 1 && MetricsPage.stateNumber("FAULT") == 3 && MetricsPage.stateNumber("INIT") == 0)
    }

    @Test func engineAndSyncCountersByReason() throws {
        var v = DirectorView()
        v.engineDrops = [.init("no next hop", 3), .init("refused by the table", 1)]
        v.enginePackets = [.init("icmp sent", 9)]
        var stats = SyncDaemon.Statistics()
        stats.messagesSent = 10
        stats.refused = ["other sync id": 4]
        var config = SyncDaemonConfig(state: .master)
        config.interface = "eth1"
        config.syncID = 5
        let status = SyncDaemonStatus(config, interfaceMTU: 1500)
        v.sync = [.init(status: status, statistics: stats)]
        let (samples, _, _) = try Self.parse(Self.render(v))
        #expect(samples.contains(.init(name: "lvs_engine_dropped_total", labels: ["reason": "no_next_hop"], value: "3")))
        #expect(samples.contains(.init(name: "lvs_engine_dropped_total", labels: ["reason": "refused_by_the_table"], value: "1")))
        #expect(samples.contains(.init(name: "lvs_engine_packets_total", labels: ["result": "icmp_sent"], value: "9")))
        let daemon = ["state": "master", "interface": "eth1", "syncid": "5"]
        #expect(samples.contains(.init(name: "lvs_sync_messages_sent_total", labels: daemon, value: "10")))
        #expect(samples.contains(.init(name: "lvs_sync_messages_refused_total", labels: daemon.merging(["reason": "other_sync_id"]) { a, _ in a }, value: "4")))
    }

    @Test func exposition() {
        var e = Exposition()
        e.family("x_total", .counter, "a \\ back\nslash")
        e.sample("x_total", LabelSet(["a": "q\"uote", "b": "back\\slash\nline"]), UInt64.max)
        e.sample("x_total", LabelSet(), 0 as UInt64)
        e.family("g", .gauge, "g")
        e.sample("g", LabelSet(), -12)
        e.sample("g", LabelSet(), 1.5)
        e.sample("g", LabelSet(), 3.0)
        e.sample("g", LabelSet(), Double.nan)
        e.sample("g", LabelSet(), true)
        #expect(String(decoding: e.bytes, as: UTF8.self) == """
            # HELP x_total a \\\\ back\\nslash
            # TYPE x_total counter
            x_total{a="q\\"uote",b="back\\\\slash\\nline"} 18446744073709551615
            x_total 0
            # HELP g g
            # TYPE g gauge
            g -12
            g 1.5
            g 3
            g NaN
            g 1

            """)
        #expect(MetricsPage.snakeCase("not scheduled") == "not_scheduled")
        #expect(MetricsPage.snakeCase("malformed truncatedIP") == "malformed_truncatedip")
    }
}
