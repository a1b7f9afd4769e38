@testable import LVSCore

func v4(_ s: String) -> IPAddress { IPAddress(s)! }
func ep(_ s: String) -> Endpoint {
    let colon = s.lastIndex(of: ":")!
    var host = String(s[..<colon])
    if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
    return Endpoint(IPAddress(host)!, UInt16(s[s.index(after: colon)...])!)
}
func tcp(_ s: String) -> VirtualService.Key {
    let e = ep(s)
    return .address(.tcp, e.address, e.port)
}
func udp(_ s: String) -> VirtualService.Key {
    let e = ep(s)
    return .address(.udp, e.address, e.port)
}

let second: Int64 = 1_000_000_000

/// A table with one service and real servers added in the given order (so kernel list order is reversed).
func makeTable(
    _ key: VirtualService.Key = tcp("10.0.0.100:80"), scheduler: String, flags: ServiceFlags = [],
    servers: [(String, Int32)], method: ForwardingMethod = .masquerade, settings: IPVSSettings = IPVSSettings()
) throws -> IPVS {
    var ipvs = IPVS(settings: settings)
    try ipvs.addService(VirtualService.Config(key: key, scheduler: scheduler, flags: flags))
    for (address, weight) in servers {
        try ipvs.addServer(RealServerConfig(ep(address), forwarding: method, weight: weight), to: key)
    }
    return ipvs
}

/// Runs one complete NAT TCP connection (handshake, request, reply, close from both sides), as a
/// client like socat does, and returns the real server it reached.
@discardableResult
func connectAndClose(
    _ ipvs: inout IPVS, from client: Endpoint, to virtual: Endpoint, now: Int64
) -> Endpoint? {
    guard case .forward(let f) = ipvs.inbound(.tcp(from: client, to: virtual, flags: .syn), now: now) else { return nil }
    let server = f.destination
    func reply(_ flags: TCPFlags) {
        _ = ipvs.outbound(PacketSummary(protocolNumber: 6, source: server.address, sourcePort: server.port,
                                        destination: client.address, destinationPort: client.port,
                                        tcpFlags: flags, length: 60), now: now)
    }
    if f.method == .masquerade { reply([.syn, .ack]) }
    _ = ipvs.inbound(.tcp(from: client, to: virtual, flags: .ack), now: now)
    if f.method == .masquerade { reply([.fin, .ack]) }
    _ = ipvs.inbound(.tcp(from: client, to: virtual, flags: [.fin, .ack]), now: now)
    if f.method == .masquerade { reply(.ack) }
    return server
}

/// Opens one connection (SYN only) and returns the real server chosen.
func open(_ ipvs: inout IPVS, from client: Endpoint, to virtual: Endpoint, now: Int64 = 0) -> Endpoint? {
    guard case .forward(let f) = ipvs.inbound(.tcp(from: client, to: virtual, flags: .syn), now: now) else { return nil }
    return f.destination
}

/// The hosts a series of sequential, fully closed connections reach (client ports 40000, 40001, …).
func sequence(_ ipvs: inout IPVS, _ n: Int, vip: String = "10.0.0.100:80", client: String = "10.0.0.2",
              firstPort: UInt16 = 40000, now: Int64 = 0) -> [String] {
    (0..<n).map { i in
        let s = connectAndClose(&ipvs, from: Endpoint(v4(client), firstPort + UInt16(i)), to: ep(vip), now: now)
        return s.map { "\($0.address)" } ?? "-"
    }
}

extension IPVS {
    func server(_ key: VirtualService.Key, _ address: String) -> RealServerSnapshot? {
        serviceSnapshot(key)?.servers.first { "\($0.config.endpoint.address)" == address }
    }
}
