import Foundation
import LVSCore

/// `--json` listings (a SwiftLVS extension): the same facts as the text listings, for scripts and
/// monitoring, with exact numbers.
public enum ListingJSON {
    struct Stats: Codable {
        var connections, inPackets, outPackets, inBytes, outBytes: UInt64
        var connectionsPerSecond, inPacketsPerSecond, outPacketsPerSecond, inBytesPerSecond, outBytesPerSecond: UInt64

        init(_ c: Counters, _ r: Rates) {
            connections = c.connections
            inPackets = c.inPackets
            outPackets = c.outPackets
            inBytes = c.inBytes
            outBytes = c.outBytes
            connectionsPerSecond = r.connectionsPerSecond
            inPacketsPerSecond = r.inPacketsPerSecond
            outPacketsPerSecond = r.outPacketsPerSecond
            inBytesPerSecond = r.inBytesPerSecond
            outBytesPerSecond = r.outBytesPerSecond
        }
    }

    struct Server: Codable {
        var address: String
        var port: UInt16
        var forward: String
        var weight: Int32
        var upperThreshold: UInt32
        var lowerThreshold: UInt32
        var activeConnections: UInt32
        var inactiveConnections: UInt32
        var persistentConnections: UInt32
        var overloaded: Bool
        var tunnel: String?
        var proxyProtocol: Bool
        var stats: Stats
    }

    struct Service: Codable {
        var `protocol`: String?
        var address: String?
        var port: UInt16?
        var fwmark: UInt32?
        var family: String
        var scheduler: String
        var flags: [String]
        var persistent: UInt32?
        var netmask: String?
        var persistenceEngine: String?
        var onePacket: Bool
        var stats: Stats
        var servers: [Server]
    }

    struct Table: Codable {
        var version = "1.2.1"
        var services: [Service]
        var totals: Stats?
    }

    struct Connection: Codable {
        var `protocol`: String
        var state: String
        var expiresSeconds: Int64
        var client: String
        var virtual: String
        var destination: String
        var template: Bool
    }

    /// The JSON every listing and API document is written in: pretty, keys sorted, slashes plain.
    public static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func service(_ s: ServiceSnapshot) -> Service {
        let c = s.config
        var out = Service(
            family: c.key.family == .inet6 ? "inet6" : "inet", scheduler: c.scheduler,
            flags: SaveFormat.schedulerFlagNames(c.flags, scheduler: c.scheduler),
            persistent: c.isPersistent ? c.persistenceTimeout : nil,
            netmask: c.isPersistent ? (c.key.family == .inet6 ? "\(c.netmask)" : IPAddress.dottedQuad(c.netmask)) : nil,
            persistenceEngine: c.persistenceEngine, onePacket: c.flags.contains(.onePacket),
            stats: Stats(s.counters, s.rates),
            servers: s.servers.map { r in
                Server(address: "\(r.config.endpoint.address)", port: r.config.endpoint.port,
                       forward: r.config.forwarding.listingName, weight: r.config.weight,
                       upperThreshold: r.config.upperThreshold, lowerThreshold: r.config.lowerThreshold,
                       activeConnections: r.activeConnections, inactiveConnections: r.inactiveConnections,
                       persistentConnections: r.persistentConnections, overloaded: r.isOverloaded,
                       tunnel: r.config.forwarding == .tunnel ? r.config.tunnel.kind.name : nil,
                       proxyProtocol: r.config.proxyProtocol,
                       stats: Stats(r.counters, r.rates))
            })
        switch c.key {
        case .address(let proto, let address, let port):
            out.protocol = proto.name
            out.address = "\(address)"
            out.port = port
        case .fwmark(let mark, _):
            out.fwmark = mark
        }
        return out
    }

    public static func table(_ services: [ServiceSnapshot], totals: Statistics?) -> String {
        encode(Table(services: services.map(service), totals: totals.map { Stats($0.counters, $0.rates) }))
    }

    static func connection(_ c: ConnectionSnapshot) -> Connection {
        Connection(protocol: c.protocolName, state: c.stateName, expiresSeconds: c.expiresIn / 1000,
                   client: "\(c.client)", virtual: "\(c.virtual)", destination: "\(c.destination)", template: c.isTemplate)
    }

    public static func connections(_ entries: [ConnectionSnapshot]) -> String {
        encode(entries.map(connection))
    }

    /// A page of the connection table: `total` entries in all, these from `offset`.
    public static func connections(_ page: [ConnectionSnapshot], total: Int, offset: Int, limit: Int) -> String {
        struct Page: Encodable {
            var limit, offset, total: Int
            var connections: [Connection]
        }
        return encode(Page(limit: limit, offset: offset, total: total, connections: page.map(connection)))
    }

    /// A sync daemon (also in `lvsd status --json`, with its counters).
    public struct Daemon: Codable, Sendable {
        var state: String
        var interface: String
        var syncID: UInt8
        var maxLength: UInt16
        var group: String
        var port: UInt16
        var ttl: UInt8

        public init(_ d: SyncDaemonStatus) {
            state = d.state
            interface = d.interface
            syncID = d.syncID
            maxLength = d.maxLength
            group = "\(d.group)"
            port = d.port
            ttl = d.ttl
        }
    }

    public static func daemons(_ daemons: [SyncDaemonStatus]) -> String {
        encode(daemons.map(Daemon.init))
    }
}
