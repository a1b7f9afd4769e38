import Foundation
import LVSCore
import LVSPacket
import LVSPacketEngine
import NIOCore
import Observability

/// What `lvsd --http` shows: the director gathers a `DirectorView` on its loop (the table part in
/// one pass under the table's lock, as a listing does, without copying the connection table) and
/// the endpoint renders it on its own loop.
extension Director: ObservabilitySource {
    public func view() -> EventLoopFuture<DirectorView> {
        loop.submit { self.gatherView() }
    }

    public func connections(offset: Int, limit: Int) -> EventLoopFuture<(total: Int, page: [ConnectionSnapshot])> {
        loop.submit {
            let s = self.state
            let now = s.now
            return s.withTable { t in (t.connectionCount, t.connectionSnapshots(now: now, offset: offset, limit: limit)) }
        }
    }

    /// On the loop.
    func gatherView() -> DirectorView {
        var v = DirectorView()
        v.engine = packetEngine == nil ? "proxy" : "packet"
        v.startTime = startTime
        let now = state.now
        v.now = now
        var daemons: [SyncDaemonStatus] = []
        state.withTable { t in
            v.services = t.serviceSnapshots
            v.totals = t.totalStats
            v.connectionEntries = t.connectionCount
            v.connectionCapacity = t.settings.maxConnections
            v.syncTable = t.syncCounters
            daemons = t.syncDaemons
        }
        let roster = self.roster
        v.checkers = monitor.checkerStatuses.compactMap { c in
            guard c.service < roster.count, c.server < roster[c.service].servers.count else { return nil }
            return DirectorView.Checker(service: roster[c.service].key, server: roster[c.service].servers[c.server].endpoint,
                                        label: c.label, target: c.target, state: c.state)
        }
        v.vrrp = vrrpStatus
        if let packet = packetEngine {
            let c = packet.counters
            v.enginePackets = [
                .init("received", c.received), .init("passed", c.passed), .init("forwarded", c.forwarded), .init("replies", c.replies),
                .init("icmp sent", c.icmpSent), .init("related", c.related), .init("fragments", c.fragments), .init("reassembled", c.reassembled),
                .init("kernel forwarded", c.kernelForwarded), .init("connections offloaded", c.offloaded),
                .init("connections taken back", c.withdrawn), .init("offload refused", c.offloadRefused),
                .init("kernel reports", c.kernelReports), .init("kernel reports for unknown flows", c.unknownReports),
                .init("syns scheduled in kernel", c.scheduledInKernel), .init("syns reopened in kernel", c.reopenedInKernel),
                .init("syns from kernel refused", c.scheduledInKernelRefused),
            ]
            v.engineDrops = PacketDrop.allCases.map { .init($0.label, c.drops[$0.rawValue]) }
                + FrameError.allCases.map { .init("malformed \($0.label)", c.malformed[$0.rawValue]) }
        } else {
            v.engineDrops = [.init("out of descriptors or connection slots", state.droppedConnections)]
        }
        v.realServerFailures = state.realServerFailures
        v.sync = syncDaemonViews(daemons)
        v.reloads = loads
        return v
    }

    /// A configuration load ended (at start or on reload): counted, and in the event log.
    func noteLoad(_ outcome: ConfigurationOutcome, path: String) {
        if outcome.applied {
            loads.succeeded += 1
            loads.lastSucceeded = true
            loads.lastSuccessTime = Date().timeIntervalSince1970
            let changes = outcome.changes.count
            events.record(.config, "Configuration \(path) applied: \(changes) change\(changes == 1 ? "" : "s")"
                + (outcome.failures.isEmpty ? "" : "; failed: \(outcome.failures.joined(separator: "; "))"))
        } else {
            loads.failed += 1
            loads.lastSucceeded = false
            let why = (outcome.diagnostics.filter { $0.kind != .warning }.map { "\($0)" } + outcome.failures).prefix(3).joined(separator: "; ")
            events.record(.config, "Configuration \(path) refused, the running one is kept" + (why.isEmpty ? "" : ": \(why)"))
        }
    }
}
