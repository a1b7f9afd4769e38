/// What an engine extracted from a packet's headers.
public struct PacketSummary: Sendable, Hashable {
    public var protocolNumber: UInt8
    public var source: IPAddress
    public var sourcePort: UInt16
    public var destination: IPAddress
    public var destinationPort: UInt16
    /// The packet's firewall mark (0 for none).
    public var fwmark: UInt32
    public var tcpFlags: TCPFlags
    public var sctpChunk: SCTPChunk?
    /// Whole IP packet length in bytes.
    public var length: Int

    public init(
        protocolNumber: UInt8, source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16,
        fwmark: UInt32 = 0, tcpFlags: TCPFlags = [], sctpChunk: SCTPChunk? = nil, length: Int = 0
    ) {
        self.protocolNumber = protocolNumber
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
        self.fwmark = fwmark
        self.tcpFlags = tcpFlags
        self.sctpChunk = sctpChunk
        self.length = length
    }

    /// A TCP segment from client to VIP.
    public static func tcp(
        from client: Endpoint, to virtual: Endpoint, flags: TCPFlags, length: Int = 60, fwmark: UInt32 = 0
    ) -> PacketSummary {
        PacketSummary(protocolNumber: IPProtocol.tcp.rawValue, source: client.address, sourcePort: client.port,
                      destination: virtual.address, destinationPort: virtual.port, fwmark: fwmark,
                      tcpFlags: flags, length: length)
    }

    /// A UDP datagram from client to VIP.
    public static func udp(from client: Endpoint, to virtual: Endpoint, length: Int = 60, fwmark: UInt32 = 0) -> PacketSummary {
        PacketSummary(protocolNumber: IPProtocol.udp.rawValue, source: client.address, sourcePort: client.port,
                      destination: virtual.address, destinationPort: virtual.port, fwmark: fwmark, length: length)
    }
}

/// Names one connection-table entry for as long as it lives: an engine that keeps it (the proxy keeps
/// one per relayed connection) can report on it, and once the entry has expired the ID no longer
/// matches, even if its slot holds another connection by then.
public struct ConnectionID: Sendable, Hashable {
    public var index: Int32
    public var generation: UInt16

    public init(index: Int32, generation: UInt16) {
        self.index = index
        self.generation = generation
    }

    /// No entry (one-packet scheduling keeps none).
    public static let none = ConnectionID(index: -1, generation: 0)
}

/// Where to send a packet that belongs to a virtual service.
public struct Forwarding: Sendable, Hashable {
    /// The connection entry (valid until it expires); `.none` for one-packet scheduling.
    public var connection: ConnectionID
    /// The real server slot.
    public var server: Int32
    public var destination: Endpoint
    public var method: ForwardingMethod
    /// True when this packet created the connection.
    public var isNew: Bool

    public init(connection: ConnectionID, server: Int32, destination: Endpoint, method: ForwardingMethod, isNew: Bool) {
        self.connection = connection
        self.server = server
        self.destination = destination
        self.method = method
        self.isNew = isNew
    }
}

/// What to do with a packet from a client.
public enum InboundVerdict: Sendable, Hashable {
    /// Forward it to `destination` with `method`.
    case forward(Forwarding)
    /// Not for a virtual service: let the local stack have it.
    case notVirtual
    /// For a virtual service but it cannot start a connection (a TCP segment other than SYN with no
    /// entry, a port that a non-persistent service does not serve): let the local stack have it.
    case pass
    /// No real server is available: the kernel answers ICMP port unreachable and drops the packet.
    case noDestination(VirtualService.Key)
    /// Its connection's real server is gone, or the table is full: drop it.
    case drop
}

/// What to do with a packet from a real server.
public enum OutboundVerdict: Sendable, Hashable {
    /// A NAT reply: rewrite its source to `virtual` and send it to the client.
    case masquerade(connection: ConnectionID, virtual: Endpoint)
    /// Not a reply the table knows.
    case notOurs
}
