// /metrics for a large table: how long the table is held (the service listing taken under its
// lock, as lvsd's scrape does), how long rendering takes, and the page's size, for --servers real
// servers in --services virtual services with traffic counted on each; beside it, the same table
// as `ipvsadm -Ln --stats --exact` text (the listing exporters scrape today), for a ratio. Run by
// scripts/bench-metrics (which also scrapes a running lvsd against node_exporter); asserts no timing.
import ControlAPI
import Foundation
import LVSCore
import LVSState
import NIOCore
import NIOPosix
import Observability

let arguments = CommandLine.arguments
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
let servers = option("--servers").flatMap(Int.init) ?? 10_000
let serviceCount = option("--services").flatMap(Int.init) ?? 100
let rounds = option("--rounds").flatMap(Int.init) ?? 30

var ipvs = IPVS()
let perService = max(1, servers / serviceCount)
for s in 0..<serviceCount {
    let vip = Endpoint(IPAddress(v4: 0x0A00_0000 + UInt32(s + 1)), 80)
    let key = VirtualService.Key.address(.tcp, vip.address, vip.port)
    try! ipvs.addService(VirtualService.Config(key: key, scheduler: "wlc"))
    for r in 0..<perService {
        try! ipvs.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0xAC10_0000 + UInt32(s * perService + r + 1)), 8080), weight: Int32(r % 5 + 1)), to: key)
    }
    // A few connections per real server, so the figures have digits.
    for c in 0..<(perService * 3) {
        let client = Endpoint(IPAddress(v4: 0xC0A8_0000 + UInt32(c + 1)), UInt16(10_000 + s))
        _ = ipvs.inbound(.tcp(from: client, to: vip, flags: .syn, length: 60 + c), now: 0)
    }
}
ipvs.sampleRates()
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let state = LoadBalancerState(loops: [group.next()], ipvs: ipvs)

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}
func summary(_ xs: [Double]) -> (median: Double, p99: Double) {
    let s = xs.sorted()
    return (s[s.count / 2], s[min(s.count - 1, Int(Double(s.count) * 0.99))])
}

var held: [Double] = [], rendered: [Double] = [], withRates: [Double] = [], listed: [Double] = []
var size = 0, sizeWithRates = 0, listingSize = 0
for _ in 0..<rounds {
    var view = DirectorView()
    held.append(seconds {
        state.withTable { t in
            view.services = t.serviceSnapshots
            view.totals = t.totalStats
            view.connectionEntries = t.connectionCount
        }
    })
    rendered.append(seconds { size = MetricsPage.render(view).count })
    withRates.append(seconds { sizeWithRates = MetricsPage.render(view, backendRates: true).count })
    let snapshot = state.snapshot
    listed.append(seconds {
        let text = ListingFormat(endpointText: SaveFormat.numeric, exact: true).table(ListingOrder.sorted(snapshot.serviceSnapshots), format: .stats)
        listingSize = text.utf8.count
    })
}
let h = summary(held), r = summary(rendered), l = summary(listed), w = summary(withRates)
let total = zip(held, rendered).map { $0 + $1 }
let t = summary(total)
let realServers = serviceCount * perService
print("metrics for \(serviceCount) services, \(realServers) real servers (\(rounds) rounds; medians, p99 in brackets)")
print(String(format: "  table held (listing under the lock): %7.2f ms [%7.2f]", h.median * 1000, h.p99 * 1000))
print(String(format: "  rendering /metrics:                  %7.2f ms [%7.2f]  %d bytes", r.median * 1000, r.p99 * 1000, size))
print(String(format: "  rendering /metrics?rates=all:        %7.2f ms [%7.2f]  %d bytes", w.median * 1000, w.p99 * 1000, sizeWithRates))
print(String(format: "  /metrics in all:                     %7.2f ms [%7.2f]  (target: under 100 ms)", t.median * 1000, t.p99 * 1000))
print(String(format: "  ipvsadm -Ln --stats --exact text:    %7.2f ms [%7.2f]  %d bytes", l.median * 1000, l.p99 * 1000, listingSize))
print(String(format: "  ratio /metrics : ipvsadm listing:    %7.2fx time, %.2fx bytes", t.median / l.median, Double(size) / Double(listingSize)))
try? group.syncShutdownGracefully()
