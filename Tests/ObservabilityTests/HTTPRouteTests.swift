import LVSCore
import Testing

@testable import Observability

@Suite struct HTTPRouteTests {
    func route(_ target: String, _ method: String = "GET") -> Result<HTTPRoute, HTTPRoute.Problem> {
        HTTPRoute.resolve(method: method, target: target)
    }

    func status(_ target: String, _ method: String = "GET") -> Int {
        if case .failure(let p) = route(target, method) { return p.status }
        return 200
    }

    @Test func paths() throws {
        #expect(try route("/").get() == .dashboard)
        #expect(try route("/index.html").get() == .dashboard)
        #expect(try route("/metrics").get() == .metrics(backendRates: false))
        #expect(try route("/metrics?rates=all").get() == .metrics(backendRates: true))
        #expect(try route("/metrics?rates=services").get() == .metrics(backendRates: false))
        #expect(try route("/metrics/").get() == .metrics(backendRates: false))
        #expect(try route("/api/v1").get() == .index)
        #expect(try route("/api/v1/services").get() == .services)
        #expect(try route("/api/v1/checkers").get() == .checkers)
        #expect(try route("/api/v1/vrrp").get() == .vrrp)
        #expect(try route("/api/v1/sync").get() == .sync)
        #expect(try route("/api/v1/status").get() == .status)
        #expect(try route("/api/v1/connections").get() == .connections(offset: 0, limit: 100))
        #expect(try route("/api/v1/connections?offset=200&limit=50").get() == .connections(offset: 200, limit: 50))
        #expect(try route("/api/v1/events?after=17").get() == .events(after: 17, limit: 1000))
        #expect(try route("/metrics", "HEAD").get() == .metrics(backendRates: false))
        for path in HTTPRoute.apiPaths { #expect(status(path) == 200, "\(path) is listed and served") }
    }

    @Test func unknownPathsAre404() {
        for target in ["/metric", "/api/v2/services", "/api/v1/services/extra", "/../etc/passwd", "/%00"] {
            #expect(status(target) == 404, "\(target)")
        }
    }

    @Test func writesAre405() {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            #expect(status("/metrics", method) == 405)
        }
    }

    @Test func badQueriesAre400WithTheReason() {
        let cases: [(String, String)] = [
            ("/api/v1/connections?limit=0", "query parameter 'limit' must be from 1 to 10000, not 0"),
            ("/api/v1/connections?limit=10001", "query parameter 'limit' must be from 1 to 10000, not 10001"),
            ("/api/v1/connections?limit=-1", "query parameter 'limit' must be a whole number, not '-1'"),
            ("/api/v1/connections?offset=ten", "query parameter 'offset' must be a whole number, not 'ten'"),
            ("/api/v1/connections?offset=", "query parameter 'offset' must be a whole number, not ''"),
            ("/api/v1/connections?offset=99999999999999999999", "query parameter 'offset' must be a whole number, not '99999999999999999999'"),
            ("/api/v1/connections?page=2", "unknown query parameter 'page' (known: limit, offset)"),
            ("/api/v1/connections?limit=1&limit=2", "query parameter 'limit' given twice"),
            ("/metrics?x", "unknown query parameter 'x' (known: rates)"),
            ("/metrics?rates=some", "query parameter 'rates' must be services or all, not 'some'"),
            ("/api/v1/services?x", "unknown query parameter 'x' (this path takes none)"),
            ("/api/v1/events?after=%zz", "malformed query string"),
            ("/api/v1/events?=1", "malformed query string: a parameter without a name"),
        ]
        for (target, message) in cases {
            #expect(route(target) == .failure(HTTPRoute.Problem(400, message)), "\(target)")
        }
    }

    @Test func queriesArePercentDecoded() throws {
        #expect(try route("/api/v1/connections?%6cimit=%35").get() == .connections(offset: 0, limit: 5))
        #expect(try route("/api/v1/connections?&&limit=5&").get() == .connections(offset: 0, limit: 5))
    }

    @Test func addresses() {
        #expect(HTTPAddress.parse("127.0.0.1:9180")! == ("127.0.0.1", 9180))
        #expect(HTTPAddress.parse("[::1]:9180")! == ("::1", 9180))
        #expect(HTTPAddress.parse("localhost:0")! == ("localhost", 0))
        for bad in ["127.0.0.1", "::1:9180", "[::1]9180", ":9180", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:+80", "[::1"] {
            #expect(HTTPAddress.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct EventLogTests {
    @Test func keepsTheLastEventsInOrder() {
        let clock = Clock()
        let log = EventLog(capacity: 3, clock: { clock.tick() })
        for i in 1...5 { log.record(.health, "event \(i)") }
        let all = log.events()
        #expect(all.events.map(\.message) == ["event 3", "event 4", "event 5"])
        #expect(all.events.map(\.sequence) == [3, 4, 5])
        #expect(all.events.map(\.time) == [3, 4, 5])
        #expect(all.next == 6)
        #expect(log.events(after: 4).events.map(\.sequence) == [5])
        #expect(log.events(after: 5).events.isEmpty)
        #expect(log.events(after: 0, limit: 2).events.map(\.sequence) == [3, 4])
        // A reader that fell behind gets what is still kept.
        #expect(log.events(after: 1).events.map(\.sequence) == [3, 4, 5])
    }

    final class Clock: @unchecked Sendable {
        // @unchecked Sendable: only the test's single thread ticks it.
        var now = 0.0
        func tick() -> Double {
            now += 1
            return now
        }
    }
}

@Suite struct RateHistoryTests {
    static func view(_ connections: [UInt64]) -> DirectorView {
        var t = IPVS()
        let key = VirtualService.Key.address(.tcp, IPAddress("10.0.0.1")!, 80)
        try! t.addService(VirtualService.Config(key: key, scheduler: "rr"))
        for i in connections.indices { try! t.addServer(RealServerConfig(Endpoint(IPAddress("192.168.0.\(i + 1)")!, 80)), to: key) }
        var v = DirectorView()
        v.services = t.serviceSnapshots
        // Counters as if these many connections had gone to each.
        let wanted = Dictionary(uniqueKeysWithValues: connections.enumerated().map { (Endpoint(IPAddress("192.168.0.\($0.offset + 1)")!, 80), $0.element) })
        for (si, s) in v.services.enumerated() {
            var total: UInt64 = 0
            for (ri, r) in s.servers.enumerated() {
                let n = wanted[r.config.endpoint]!
                v.services[si].servers[ri].totals.connections = n
                total += n
            }
            v.services[si].totals.connections = total
        }
        return v
    }

    @Test func newConnectionsPerSecondBetweenSamples() {
        let h = RateHistory(interval: 2, length: 3)
        h.record(Self.view([0, 0]), at: 100)
        #expect(h.samples(after: 0).times.isEmpty, "the first sample is the baseline")
        h.record(Self.view([10, 4]), at: 102)
        h.record(Self.view([30, 4]), at: 104)
        let s = h.samples(after: 0)
        #expect(s.times == [102, 104])
        #expect(s.series["TCP|10.0.0.1|80"] == [7, 10])
        #expect(s.series["TCP|10.0.0.1|80>192.168.0.1:80"] == [5, 10])
        #expect(s.series["TCP|10.0.0.1|80>192.168.0.2:80"] == [2, 0])
        #expect(h.samples(after: 102).times == [104])
        #expect(h.samples(after: 102).series["TCP|10.0.0.1|80"] == [10])
        #expect(h.samples(after: 104).times.isEmpty)
        // Only `length` samples are kept; a counter that went back (a server added again) gives 0.
        h.record(Self.view([31, 4]), at: 106)
        h.record(Self.view([1, 4]), at: 108)
        let kept = h.samples(after: 0)
        #expect(kept.times == [104, 106, 108])
        #expect(kept.series["TCP|10.0.0.1|80>192.168.0.1:80"] == [10, 0.5, 0])
    }

    @Test func keysAreTheDashboards() {
        let v6 = VirtualService.Key.address(.udp, IPAddress("2001:db8::1")!, 53)
        #expect(RateHistory.key(v6) == "UDP|2001:db8::1|53")
        #expect(RateHistory.key(v6, Endpoint(IPAddress("2001:db8::2")!, 53)) == "UDP|2001:db8::1|53>[2001:db8::2]:53")
        #expect(RateHistory.key(.fwmark(7, .inet)) == "FWM|7")
        #expect(HTTPRoute.resolve(method: "GET", target: "/api/v1/history?after=1796226179.72") == .success(.history(after: 1796226179.72)))
        #expect(HTTPRoute.resolve(method: "GET", target: "/api/v1/history?after=-1")
            == .failure(HTTPRoute.Problem(400, "query parameter 'after' must be a Unix time in seconds, not '-1'")))
    }
}
