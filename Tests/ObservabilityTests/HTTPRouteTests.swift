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
