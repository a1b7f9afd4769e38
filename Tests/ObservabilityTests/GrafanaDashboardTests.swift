import Foundation
import HealthCheck
import LVSCore
import LVSSync
import Testing

@testable import Observability
@testable import VRRP

/// packaging/grafana/swiftlvs.json asks only for metrics /metrics has.
@Suite struct GrafanaDashboardTests {
    /// A page with every family: services, checkers, VRRP, the packet engine, sync.
    static func fullPage() -> String {
        var v = MetricsPageTests.view(MetricsPageTests.table())
        let tcp = VirtualService.Key.address(.tcp, IPAddress("10.0.0.1")!, 80)
        let a = Endpoint(IPAddress("192.168.1.10")!, 8080)
        let timing = CheckTiming(delayLoop: 1, retry: 0, delayBeforeRetry: 1, warmup: 0, timeout: 1)
        v.checkers = [.init(service: tcp, server: a, label: "TCP", target: a, state: CheckerState(timing: timing, alpha: false, now: 0))]
        v.vrrp = [VRRPHost.Status(name: "VI_1", interface: "eth0", virtualRouterID: 51, version: 2, family: "inet", state: "MASTER",
                                  priority: 100, configuredPriority: 100, master: nil, advertisementInterval: 1, addresses: [],
                                  group: nil, transitions: 1, statistics: VRRPInstance.Statistics(), dropped: 0)]
        v.enginePackets = [.init("forwarded", 1)]
        v.engineDrops = [.init("no next hop", 1)]
        var config = SyncDaemonConfig(state: .master)
        config.interface = "eth0"
        v.sync = [.init(status: SyncDaemonStatus(config, interfaceMTU: 1500), statistics: SyncDaemon.Statistics())]
        v.httpRequests = [.init("200", 1)]
        return String(decoding: MetricsPage.render(v, backendRates: true), as: UTF8.self)
    }

    @Test func everyMetricTheDashboardQueriesIsExported() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../packaging/grafana/swiftlvs.json")
        let json = try String(contentsOf: file, encoding: .utf8)
        _ = try JSONSerialization.jsonObject(with: Data(json.utf8))
        let exported = Set(Self.fullPage().split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) })
        let asked = Set(json.matches(of: #/\b(?:lvs|keepalived)_[a-z_]+/#).map { String($0.output) })
        #expect(asked.count >= 15)
        #expect(asked.subtracting(exported).isEmpty, "not exported: \(asked.subtracting(exported).sorted())")
    }
}
