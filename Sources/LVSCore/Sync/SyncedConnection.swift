/// One connection (or persistence template) as the IPVS sync protocol carries it from a master to
/// its backups: the kernel's `ip_vs_sync_conn` fields, in host order. `LVSSync` turns it into bytes.
public struct SyncedConnection: Sendable, Hashable {
    public var protocolNumber: UInt8
    /// Connection flags (`ConnectionFlags`), as sent; a receiver masks them (`backupMask`).
    public var flags: UInt32
    /// The protocol's state number (TCP and SCTP as `TCPState`/`SCTPState`; templates 0 or 1).
    public var state: UInt16
    public var client: IPAddress
    public var clientPort: UInt16
    public var virtual: IPAddress
    public var virtualPort: UInt16
    public var destination: IPAddress
    public var destinationPort: UInt16
    public var fwmark: UInt32
    /// The entry's current timeout in seconds; 0 (what version 0 messages carry) means the
    /// protocol's timeout for the state.
    public var timeout: UInt32
    /// TCP sequence adjustment of NAT connections with an application helper, if sent.
    public var sequence: SyncSequence?
    /// Persistence-engine data and name (the SIP engine's Call-ID), if sent.
    public var persistenceEngineData: [UInt8]?
    public var persistenceEngineName: String?

    public init(protocolNumber: UInt8, flags: UInt32, state: UInt16, client: IPAddress, clientPort: UInt16,
                virtual: IPAddress, virtualPort: UInt16, destination: IPAddress, destinationPort: UInt16,
                fwmark: UInt32 = 0, timeout: UInt32 = 0) {
        self.protocolNumber = protocolNumber
        self.flags = flags
        self.state = state
        self.client = client
        self.clientPort = clientPort
        self.virtual = virtual
        self.virtualPort = virtualPort
        self.destination = destination
        self.destinationPort = destinationPort
        self.fwmark = fwmark
        self.timeout = timeout
    }

    /// The entry's addresses are IPv6 (the sync protocol has one family per entry).
    public var isV6: Bool { client.isV6 }
    public var isTemplate: Bool { flags & ConnectionFlags.template.rawValue != 0 }

    /// The flags a backup keeps from a message (the kernel's IP_VS_CONN_F_BACKUP_MASK): forwarding
    /// method, NOOUTPUT, INACTIVE, the sequence bits, NO_CPORT and TEMPLATE.
    public static let backupMask: UInt32 = 0x1F87
    /// The flags a message updates on an entry the backup already has (INACTIVE and the sequence bits).
    public static let backupUpdateMask: UInt32 = 0x0700
}

/// The sequence-adjustment option: for each direction the initial sequence number, the delta and the
/// previous delta.
public struct SyncSequence: Sendable, Hashable {
    public var inInitial: UInt32, inDelta: UInt32, inPreviousDelta: UInt32
    public var outInitial: UInt32, outDelta: UInt32, outPreviousDelta: UInt32

    public init(inInitial: UInt32 = 0, inDelta: UInt32 = 0, inPreviousDelta: UInt32 = 0,
                outInitial: UInt32 = 0, outDelta: UInt32 = 0, outPreviousDelta: UInt32 = 0) {
        self.inInitial = inInitial
        self.inDelta = inDelta
        self.inPreviousDelta = inPreviousDelta
        self.outInitial = outInitial
        self.outDelta = outDelta
        self.outPreviousDelta = outPreviousDelta
    }
}

/// The sysctls that decide what a master sends (`net.ipv4.vs.sync_*`).
public struct SyncSettings: Sendable, Hashable {
    /// sync_version: 1 (the default) or 0 (IPv4 only, no fwmark, no timeout).
    public var version: UInt8 = 1
    /// sync_threshold "3 50": a connection is sent at its 3rd packet and every 50 after.
    public var threshold: UInt32 = 3
    /// The second number of sync_threshold; 0 sends only at the threshold.
    public var period: UInt32 = 50
    /// sync_persist_mode: connections controlled by a template are not sent, only the templates.
    public var persistMode = false
    /// How many entries wait for the sending thread at most (the kernel's sync_qlen_max is memory-
    /// based); more are dropped and counted.
    public var queueLimit = 1 << 18

    public init() {}
}

/// A running sync daemon as `ipvsadm -L --daemon` shows it: the kernel fills what ipvsadm left out.
public struct SyncDaemonStatus: Sendable, Hashable {
    public var state: String
    public var interface: String
    public var syncID: UInt8
    public var maxLength: UInt16
    public var group: IPAddress
    public var port: UInt16
    public var ttl: UInt8

    public init(state: String, interface: String, syncID: UInt8, maxLength: UInt16, group: IPAddress, port: UInt16, ttl: UInt8) {
        self.state = state
        self.interface = interface
        self.syncID = syncID
        self.maxLength = maxLength
        self.group = group
        self.port = port
        self.ttl = ttl
    }

    public var isMaster: Bool { state == SyncDaemonState.master.rawValue }

    /// The kernel's defaults: group 224.0.0.81, port 8848, TTL 1; the message size is the MTU (1500
    /// for a master, the interface's clamped to 1500...65535 for a backup) less the IP and UDP
    /// headers, and a given size is clamped to 1 (master) or 1024 (backup) up to 65535 less them.
    public init(_ config: SyncDaemonConfig, interfaceMTU: Int) {
        let group = config.group ?? IPAddress(v4: 0xE000_0051)
        let header = group.isV6 ? 48 : 28
        let maxLength: Int
        if let m = config.maxLength {
            maxLength = min(max(Int(m), config.state == .master ? 1 : 1024), 65535 - header)
        } else {
            maxLength = (config.state == .master ? 1500 : min(max(interfaceMTU, 1500), 65535)) - header
        }
        self.init(state: config.state.rawValue, interface: config.interface, syncID: config.syncID, maxLength: UInt16(maxLength),
                  group: group, port: config.port ?? 8848, ttl: config.ttl ?? 1)
    }

    /// The `-L --daemon` line.
    public var listingLine: String {
        "\(state) sync daemon (mcast=\(interface), syncid=\(syncID), maxlen=\(maxLength), group=\(group), port=\(port), ttl=\(ttl))\n"
    }
}
