import LVSCore

/// What the fuzzer checks for every input taken as a sync message: decoding never traps, what is
/// decoded encodes and decodes back to itself, and a bounded backup table applying it stays
/// within its bound.
public enum SyncFuzzing {
    public static func exercise(_ bytes: UnsafeRawBufferPointer) {
        let syncID = bytes.count > 1 ? bytes[1] : 0
        for own in [UInt8(0), syncID, syncID &+ 1] {
            let d = SyncMessage.decode(bytes, ownSyncID: own)
            precondition(d.entries.count + d.skipped.count <= 255, "more entries than a message can count")
            guard !d.entries.isEmpty else { continue }
            let again = SyncMessageWriter.messages(d.entries, version: d.version, syncID: d.syncID, maxLength: 65507)
                .flatMap { SyncMessage.decode($0, ownSyncID: own).entries }
            precondition(again == d.entries, "decoded entries do not survive encoding")
            var table = backup
            for e in d.entries { table.applySynced(e, now: 0) }
            precondition(table.connectionCount <= 64, "the backup table passed its bound")
        }
    }

    /// A backup with one service of each kind the entries may name.
    static let backup: IPVS = {
        var settings = IPVSSettings()
        settings.maxConnections = 64
        var t = IPVS(settings: settings)
        let v4 = IPAddress(v4: 0x0A00_0064)
        for (proto, port) in [(IPProtocol.tcp, UInt16(80)), (.udp, 53), (.sctp, 80)] {
            let key = VirtualService.Key.address(proto, v4, port)
            try? t.addService(VirtualService.Config(key: key, scheduler: "rr"))
            try? t.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0xAC10_0002), port), forwarding: .gatewaying, weight: 1), to: key)
        }
        return t
    }()
}
