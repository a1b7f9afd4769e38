import ControlAPI
import Foundation
import HealthCheck
import LVSCore
import VRRP

/// The `/api/v1` documents. Services and connections are what `ipvsadm -Ln --json` and
/// `ipvsadm -Lnc --json` print; the rest is what `lvsd status --json` and the metrics show.
public enum APIDocuments {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        Array(ListingJSON.encode(value).utf8)
    }

    struct Index: Encodable {
        var version: String
        var paths: [String]
    }

    public static func index(_ view: DirectorView) -> [UInt8] {
        encode(Index(version: view.version, paths: HTTPRoute.apiPaths))
    }

    struct Status: Encodable {
        var version: String
        var engine: String
        var startTime: Double
        var services: Int
        var realServers: Int
        var connectionEntries: Int
        var connectionCapacity: Int
        var configuration: Reloads
        var vrrp: [String: String]

        struct Reloads: Encodable {
            var succeeded: UInt64
            var failed: UInt64
            var lastSucceeded: Bool
            var lastSuccessTime: Double
        }
    }

    public static func status(_ view: DirectorView) -> [UInt8] {
        let r = view.reloads
        return encode(Status(
            version: view.version, engine: view.engine, startTime: view.startTime, services: view.services.count,
            realServers: view.services.reduce(0) { $0 + $1.servers.count }, connectionEntries: view.connectionEntries,
            connectionCapacity: view.connectionCapacity,
            configuration: .init(succeeded: r.succeeded, failed: r.failed, lastSucceeded: r.lastSucceeded, lastSuccessTime: r.lastSuccessTime),
            vrrp: Dictionary(view.vrrp.map { ($0.name, $0.state) }, uniquingKeysWith: { a, _ in a })))
    }

    public static func services(_ view: DirectorView) -> [UInt8] {
        Array(ListingJSON.table(ListingOrder.sorted(view.services), totals: view.totals).utf8)
    }

    struct ServiceRef: Encodable {
        var `protocol`: String?
        var address: String?
        var port: UInt16?
        var fwmark: UInt32?

        init(_ key: VirtualService.Key) {
            switch key {
            case .address(let p, let a, let port):
                `protocol` = p.name
                address = "\(a)"
                self.port = port
            case .fwmark(let mark, _):
                fwmark = mark
            }
        }
    }

    struct ServerRef: Encodable {
        var address: String
        var port: UInt16
    }

    struct Checker: Encodable {
        var service: ServiceRef
        var server: ServerRef
        var checker: String
        var target: String
        var up: Bool
        var lastFailure: String?
        var consecutiveFailures: UInt32
        var probes: UInt64
        var failedProbes: UInt64
        var transitions: UInt64
        /// Seconds since the last probe ended (nil: not probed yet).
        var lastProbeAgeSeconds: Double?
    }

    public static func checkers(_ view: DirectorView) -> [UInt8] {
        encode(view.checkers.map { c in
            Checker(service: ServiceRef(c.service), server: ServerRef(address: "\(c.server.address)", port: c.server.port),
                    checker: c.label, target: "\(c.target)", up: c.state.isUp, lastFailure: c.state.lastFailure,
                    consecutiveFailures: c.state.failures, probes: c.state.probes, failedProbes: c.state.failedProbes,
                    transitions: c.state.transitions,
                    lastProbeAgeSeconds: c.state.lastProbe.map { Double(max(0, view.now - $0) / 1_000_000) / 1000 })
        })
    }

    public static func vrrp(_ view: DirectorView) -> [UInt8] {
        encode(view.vrrp)
    }

    public static func sync(_ view: DirectorView) -> [UInt8] {
        encode(view.sync.map { SyncDaemonJSON($0, table: view.syncTable) })
    }

    struct Events: Encodable {
        var next: UInt64
        var events: [EventLog.Event]
    }

    public static func events(_ events: [EventLog.Event], next: UInt64) -> [UInt8] {
        encode(Events(next: next, events: events))
    }

    struct History: Encodable {
        var interval: Double
        var times: [Double]
        var series: [String: [Double]]
    }

    public static func history(_ samples: (times: [Double], series: [String: [Double]]), interval: Double) -> [UInt8] {
        let round = { (x: Double) in (x * 100).rounded() / 100 }
        return encode(History(interval: interval, times: samples.times,
                              series: samples.series.mapValues { $0.map(round) }))
    }

    /// A page of the connection table: `total` entries in all, these from `offset`.
    public static func connections(_ page: [ConnectionSnapshot], total: Int, offset: Int, limit: Int) -> [UInt8] {
        Array(ListingJSON.connections(page, total: total, offset: offset, limit: limit).utf8)
    }

    /// A refusal as JSON (`{"error": ..., "status": ...}`).
    public static func problem(_ p: HTTPRoute.Problem) -> [UInt8] {
        struct Body: Encodable {
            var status: Int
            var error: String
        }
        return encode(Body(status: p.status, error: p.message))
    }
}

/// A sync daemon with its counters, in `/api/v1/sync` and `lvsd status --json`.
public struct SyncDaemonJSON: Encodable, Sendable {
    var daemon: ListingJSON.Daemon
    var messagesSent: UInt64
    var entriesSent: UInt64
    var sendFailures: UInt64
    var omittedEntries: UInt64
    var messagesReceived: UInt64
    var entriesReceived: UInt64
    var refusedMessages: [String: UInt64]
    var skippedEntries: [String: UInt64]
    /// The table's side, the same for every daemon: what was queued, what a backup did with entries.
    var table: SyncCounters

    public init(_ d: DirectorView.SyncDaemonView, table: SyncCounters) {
        let s = d.statistics
        daemon = ListingJSON.Daemon(d.status)
        messagesSent = s.messagesSent
        entriesSent = s.entriesSent
        sendFailures = s.sendFailures
        omittedEntries = s.omitted
        messagesReceived = s.messagesReceived
        entriesReceived = s.entriesReceived
        refusedMessages = s.refused
        skippedEntries = s.skipped
        self.table = table
    }
}
