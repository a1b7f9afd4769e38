import Testing
@testable import LVSCore

/// Connections an engine forwards outside the table: when they may be handed over, and how the
/// segments and traffic reported back move the table as the packets themselves would have.
@Suite struct OffloadTests {
    let vip = ep("10.0.0.100:80")
    let key = tcp("10.0.0.100:80")
    let client = ep("192.168.0.5:40000")

    func state(_ t: IPVS) -> String? { t.connectionSnapshots(now: 0).first { !$0.isTemplate }?.stateName }

    func opened(_ t: inout IPVS) throws -> ConnectionID {
        guard case .forward(let f) = t.inbound(.tcp(from: client, to: vip, flags: .syn, length: 60), now: 0) else {
            throw Failure.notForwarded
        }
        return f.connection
    }

    enum Failure: Error { case notForwarded }

    @Test func aConnectionJustScheduledMayGoOnlyWhenItsSegmentsAreReported() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        let id = try opened(&t)
        #expect(state(t) == "SYN_RECV")
        #expect(!t.mayOffload(id))
        #expect(t.mayOffload(id, reported: true))
        #expect(!t.mayOffload(id, afterPackets: 2, reported: true))
        _ = t.inbound(.tcp(from: client, to: vip, flags: .ack), now: 0)
        #expect(t.mayOffload(id))
        _ = t.inbound(.tcp(from: client, to: vip, flags: [.fin, .ack]), now: 0)
        #expect(!t.mayOffload(id, reported: true))
    }

    @Test func reportedSegmentsMoveTheStateWithoutCounting() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        let id = try opened(&t)
        let before = t.serviceSnapshot(key)!.counters
        // The handshake's ACK, reported: ESTABLISHED, active, and it may stay handed over.
        let established = t.offloadedSegment(id, direction: .input, tcpFlags: .ack, now: second)
        #expect(established)
        #expect(state(t) == "ESTABLISHED")
        #expect(t.server(key, "172.16.0.2")?.activeConnections == 1)
        #expect(t.connectionSnapshots(now: second).first?.expiresIn == 900_000)
        // A FIN: FIN_WAIT as the input-only table has it, inactive, and taken back.
        let kept = t.offloadedSegment(id, direction: .input, tcpFlags: [.fin, .ack], now: 2 * second)
        #expect(!kept)
        #expect(state(t) == "FIN_WAIT")
        #expect(t.server(key, "172.16.0.2")?.activeConnections == 0)
        #expect(t.server(key, "172.16.0.2")?.inactiveConnections == 1)
        // Packets and bytes come with offloadedTraffic, not with the reports.
        #expect(t.serviceSnapshot(key)!.counters == before)
        _ = t.offloadedTraffic(id, inPackets: 3, inBytes: 300, outPackets: 0, outBytes: 0, idle: 0, now: 2 * second)
        #expect(t.serviceSnapshot(key)!.counters.inPackets == before.inPackets + 3)
        #expect(t.serviceSnapshot(key)!.counters.inBytes == before.inBytes + 300)
    }

    @Test func natRepliesReportedMoveTheStateAsOutboundWould() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:8080", 1)])
        let id = try opened(&t)
        // The real server's SYN+ACK leaves it in SYN_RECV, still handed over.
        let afterSynAck = t.offloadedSegment(id, direction: .output, tcpFlags: [.syn, .ack], now: 0)
        #expect(afterSynAck)
        #expect(state(t) == "SYN_RECV")
        let afterAck = t.offloadedSegment(id, direction: .input, tcpFlags: .ack, now: 0)
        #expect(afterAck)
        #expect(state(t) == "ESTABLISHED")
        let afterFin = t.offloadedSegment(id, direction: .output, tcpFlags: [.fin, .ack], now: 0)
        #expect(!afterFin)
        #expect(state(t) == "FIN_WAIT")
        #expect(t.serviceSnapshot(key)!.counters.outPackets == 0)
    }

    @Test func aGoneConnectionIsNotMovedAndNotKept() throws {
        var t = try makeTable(scheduler: "rr", servers: [("172.16.0.2:80", 1)], method: .gatewaying)
        let id = try opened(&t)
        t.forget(connection: id)
        let kept = t.offloadedSegment(id, direction: .input, tcpFlags: .ack, now: 0)
        #expect(!kept)
        #expect(t.connectionCount == 0)
    }
}
