// How long a keepalived.conf reload takes at scale: 1,000 virtual servers x 10 real servers
// (generated in memory), read, checked and planned; then a changed copy (every tenth service with
// a new weight, a real server added and one removed) read, planned, diffed and applied to the
// table. Prints the figures; asserts nothing about time.
import KeepalivedConfig
import LVSCore

#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// Milliseconds with one decimal.
func ms(_ seconds: Double) -> String {
    let tenths = Int((seconds * 10_000).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

func config(services: Int, servers: Int, changed: Bool) -> String {
    var text = "global_defs {\n    router_id BENCH\n}\n"
    for s in 0..<services {
        text += "virtual_server 10.\(s / 250).\(s % 250).1 80 {\n    delay_loop 6\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n"
        for r in 0..<servers {
            if changed && s % 10 == 0 && r == 0 { continue }
            let weight = changed && s % 10 == 0 ? 7 : 1 + r % 3
            text += "    real_server 172.16.\(s / 250).\(r + 10 * (s % 25)) 8080 {\n        weight \(weight)\n        TCP_CHECK {\n            connect_timeout 3\n        }\n    }\n"
        }
        if changed && s % 10 == 0 { text += "    real_server 172.17.0.\(s % 250) 8080 {\n        weight 1\n    }\n" }
        text += "}\n"
    }
    return text
}

let services = CommandLine.arguments.contains("--quick") ? 100 : 1000
let servers = 10
let files = InMemoryFileSystem(["/a.conf": config(services: services, servers: servers, changed: false),
                                "/b.conf": config(services: services, servers: servers, changed: true)])
var settings = IPVSSettings()
settings.maxConnections = 1 << 12
var table = IPVS(settings: settings)

var t0 = now()
let first = KeepalivedConfiguration.load("/a.conf", fileSystem: files)
let firstPlan = TablePlan(first.configuration)
var t1 = now()
precondition(first.isValid, "generated configuration: \(first.diagnostics.prefix(3))")
let initial = TablePlan().changes(to: firstPlan)
let initialResults = TablePlan.apply(initial, to: &table)
var t2 = now()
print("initial load: \(services) virtual servers x \(servers) real servers, \(first.lines.count) lines")
print("  read+check+plan \(ms(t1 - t0)) ms, apply \(initial.count) changes \(ms(t2 - t1)) ms")

t0 = now()
let second = KeepalivedConfiguration.load("/b.conf", fileSystem: files)
let secondPlan = TablePlan(second.configuration)
t1 = now()
let changes = firstPlan.changes(to: secondPlan)
let results = TablePlan.apply(changes, to: &table)
t2 = now()
precondition(second.isValid && results.allSatisfy { $0.1 == nil } && initialResults.allSatisfy { $0.1 == nil })
print("reload: read+check+plan \(ms(t1 - t0)) ms, diff+apply \(changes.count) changes \(ms(t2 - t1)) ms")
print("reload total \(ms(t2 - t0)) ms (target: under 1000 ms)")
