import LVSCore
import Testing

@testable import LVSSync

/// A master table's traffic, through the codec, into a backup table: after the "failover" the
/// backup sends each connection's next segment to the real server the master chose.
@Suite struct MasterToBackupTests {
    let key = VirtualService.Key.address(.tcp, IPAddress("10.0.0.100")!, 80)
    let vip = Endpoint(IPAddress("10.0.0.100")!, 80)

    func table() throws -> IPVS {
        var t = IPVS()
        try t.addService(VirtualService.Config(key: key, scheduler: "rr"))
        for i in 1...3 {
            try t.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0xAC10_0000 + UInt32(i)), 80), forwarding: .gatewaying, weight: 1), to: key)
        }
        return t
    }

    @Test(arguments: [UInt8(0), 1])
    func connectionsKeepTheirRealServerAcrossAFailover(version: UInt8) throws {
        var master = try table()
        var settings = master.settings
        settings.sync.version = version
        master = IPVS(settings: settings)
        try master.addService(VirtualService.Config(key: key, scheduler: "rr"))
        for i in 1...3 {
            try master.addServer(RealServerConfig(Endpoint(IPAddress(v4: 0xAC10_0000 + UInt32(i)), 80), forwarding: .gatewaying, weight: 1), to: key)
        }
        try master.startSyncDaemon(SyncDaemonStatus(SyncDaemonConfig(state: .master), interfaceMTU: 1500))
        var chosen: [Endpoint: Endpoint] = [:]
        for i in 0..<500 {
            let client = Endpoint(IPAddress(v4: 0xC0A8_0000 + UInt32(i)), UInt16(2000 + i))
            guard case .forward(let f) = master.inbound(.tcp(from: client, to: vip, flags: .syn), now: 0) else { Issue.record("no"); return }
            chosen[client] = f.destination
            _ = master.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0)
            _ = master.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0)
        }
        var queue: [SyncedConnection] = []
        master.takeSyncQueue(into: &queue)
        #expect(queue.count == 500)
        let messages = SyncMessageWriter.messages(queue, version: version, syncID: 51, maxLength: 1472)
        #expect(messages.count == (version == 0 ? 9 : 13))
        var backup = try table()
        // The backup's scheduler would start elsewhere: one connection of its own first.
        _ = backup.inbound(.tcp(from: Endpoint(IPAddress("10.9.9.9")!, 1), to: vip, flags: .syn), now: 0)
        for m in messages {
            let d = SyncMessage.decode(m, ownSyncID: 51)
            #expect(d.refused == nil && d.version == version)
            for e in d.entries { #expect(backup.applySynced(e, now: 0) == .created) }
        }
        for (client, server) in chosen {
            guard case .forward(let f) = backup.inbound(.tcp(from: client, to: vip, flags: .ack), now: 1_000_000_000) else {
                Issue.record("the backup did not forward \(client)")
                return
            }
            #expect(f.destination == server && !f.isNew)
        }
    }
}
