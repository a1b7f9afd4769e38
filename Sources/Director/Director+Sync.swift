import ControlAPI
import KeepalivedConfig
import LVSCore
import LVSSync
import Observability
import VRRP

/// Connection sync in the director: the daemons the table lists (`ipvsadm --start-daemon`, or
/// keepalived.conf's lvs_sync_daemon following its VRRP instance) run as `SyncDaemon` threads.
extension Director {
    /// Makes the running daemons the ones the table lists: those it no longer lists (or lists
    /// differently) stop, new ones start. A daemon whose socket cannot be opened is taken out of
    /// the table again; the reasons are returned (and logged).
    func reconcileSync() -> [String] {
        let wanted = state.withTable { $0.syncDaemons }
        var errors: [String] = []
        for (role, daemon) in syncRunning where !wanted.contains(daemon.status) {
            daemon.stop()
            syncRunning[role] = nil
            logger.info("Stopping IPVS sync daemon", metadata: ["state": "\(role)", "interface": "\(daemon.status.interface)"])
            events.record(.sync, "Stopping IPVS sync daemon (\(role), \(daemon.status.interface), syncid \(daemon.status.syncID))")
        }
        for status in wanted where syncRunning[status.state]?.status != status {
            do {
                let daemon = try SyncDaemon(status: status, state: state, version: state.withTable { $0.settings.sync.version }, logger: logger)
                daemon.start()
                syncRunning[status.state] = daemon
                logger.info("Starting IPVS sync daemon", metadata: [
                    "state": "\(status.state)", "interface": "\(status.interface)", "syncid": "\(status.syncID)",
                    "group": "\(status.group):\(status.port)",
                ])
                events.record(.sync, "Starting IPVS sync daemon (\(status.state), \(status.interface), syncid \(status.syncID))")
            } catch {
                if let role = SyncDaemonState(rawValue: status.state) { state.withTable { try? $0.stopSyncDaemon(role) } }
                let message = "cannot start the \(status.state) sync daemon on \(status.interface): \(error)"
                logger.error("\(message)")
                events.record(.sync, message)
                errors.append(message)
            }
        }
        return errors
    }

    /// lvs_sync_daemon: the instance it names went to `to`. Master: the backup daemon stops and
    /// the master starts; any other state: the other way round (as keepalived does).
    func syncFollow(_ name: String, _ to: VRRPStateMachine.State) {
        guard let config = vrrpPlan.syncDaemon, vrrpPlan.syncInstance == name, to != .initialize else { return }
        syncRun(config, as: to == .master ? [.master] : [.backup], stopping: to == .master ? [.backup] : [.master])
    }

    /// lvs_sync_daemon without a VRRP instance: a master and a backup daemon, both always on.
    func syncStartBoth() {
        guard let config = vrrpPlan.syncDaemon, vrrpPlan.syncInstance == nil else { return }
        syncRun(config, as: [.master, .backup], stopping: [])
    }

    /// The table runs `config` in each of `roles` (restarted if it ran otherwise) and none of
    /// `others`; then the threads follow the table.
    private func syncRun(_ config: SyncDaemonConfig, as roles: [SyncDaemonState], stopping others: [SyncDaemonState]) {
        guard let mtu = session.interfaceMTU(config.interface) else {
            logger.error("lvs_sync_daemon: no interface \(config.interface)")
            return
        }
        state.withTable { t in
            for role in others where t.syncDaemon(role) != nil { try? t.stopSyncDaemon(role) }
            for role in roles {
                var c = config
                c.state = role
                let wanted = SyncDaemonStatus(c, interfaceMTU: mtu)
                if let running = t.syncDaemon(role), running != wanted { try? t.stopSyncDaemon(role) }
                if t.syncDaemon(role) == nil { try? t.startSyncDaemon(wanted) }
            }
        }
        _ = reconcileSync()
    }

    /// A configuration without lvs_sync_daemon (or with another one) replaces one with it: the
    /// daemons it started stop.
    func syncConfigurationChanged(from old: VRRPPlan, to new: VRRPPlan) {
        guard old.syncDaemon != nil, old.syncDaemon != new.syncDaemon || old.syncInstance != new.syncInstance else { return }
        stopSync()
    }

    /// Stops every daemon (a master sends what it holds first).
    func stopSync() {
        state.withTable { t in
            try? t.stopSyncDaemon(.master)
            try? t.stopSyncDaemon(.backup)
        }
        _ = reconcileSync()
    }

    /// The `lvsd status` lines for the sync daemons.
    func syncStatusText() -> String {
        let (daemons, counters) = state.withTable { ($0.syncDaemons, $0.syncCounters) }
        guard !daemons.isEmpty else { return "" }
        var out = "Sync daemons:\n"
        for d in daemons {
            out += "  " + d.listingLine
            let s = syncRunning[d.state]?.statistics ?? SyncDaemon.Statistics()
            if d.isMaster {
                out += "    sent \(s.messagesSent) messages, \(s.entriesSent) entries; \(s.sendFailures) messages failed; "
                    + "queued \(counters.queued), queue overflow \(counters.queueOverflow)"
                if s.omitted > 0 { out += ", \(s.omitted) IPv6 entries left out (version 0)" }
                out += "\n"
            } else {
                out += "    received \(s.messagesReceived) messages, \(s.entriesReceived) entries; created \(counters.created), "
                    + "updated \(counters.updated), replaced \(counters.replaced), stale \(counters.stale)\n"
                out += "    dropped: no service \(counters.noService), no real server \(counters.noDestination), table full \(counters.tableFull)"
                for (why, n) in s.refused.sorted(by: { $0.key < $1.key }) { out += ", message \(why) \(n)" }
                for (why, n) in s.skipped.sorted(by: { $0.key < $1.key }) { out += ", entry \(why) \(n)" }
                out += "\n"
            }
        }
        return out
    }

    /// The sync daemons the table lists, with their threads' counters (zero for one not running).
    func syncDaemonViews(_ daemons: [SyncDaemonStatus]) -> [DirectorView.SyncDaemonView] {
        daemons.map { DirectorView.SyncDaemonView(status: $0, statistics: syncRunning[$0.state]?.statistics ?? SyncDaemon.Statistics()) }
    }

    /// The sync daemons and their counters for `lvsd status --json` (as /api/v1/sync).
    func syncStatusJSON() -> [SyncDaemonJSON] {
        let (daemons, counters) = state.withTable { ($0.syncDaemons, $0.syncCounters) }
        return syncDaemonViews(daemons).map { SyncDaemonJSON($0, table: counters) }
    }
}
