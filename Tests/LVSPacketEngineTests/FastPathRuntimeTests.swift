import Glibc
import LVSCore
import LVSPacket
import LVSState
import LinuxNet
import NIOPosix
import Testing
@testable import LVSPacketEngine

/// The in-kernel path at run time, without interfaces: the forwarder hands a connection over at
/// its SYN, the loaded program forwards the segments that follow (BPF_PROG_TEST_RUN) and reports
/// those that move TCP's state, and the engine's side applies the reports to the table. Root only
/// (BPF maps and programs).
@Suite(.serialized) struct FastPathRuntimeTests {
    static let isRoot = getuid() == 0
    typealias F = ForwarderTests

    /// A table with one service over rs1, a forwarder that hands connections over, the path, and
    /// the shared state the engine's thread would use.
    struct Rig {
        var table: IPVS
        var forwarder: Forwarder
        let paths: ReturnPaths
        let fastPath: FastPath
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

        init(method: String) throws {
            table = IPVS()
            let session = IPVSAdmSessionShim()
            session.run(["-A", "-t", "207.175.44.110:8080", "-s", "rr"], on: &table)
            session.run(["-a", "-t", "207.175.44.110:8080", "-r", "172.16.0.2:80", method], on: &table)
            paths = ReturnPaths(capacity: table.connectionSlots)
            forwarder = Forwarder(returnPaths: paths)
            forwarder.interfaceMACs = [F.front: F.frontMAC, F.back: F.backMAC]
            forwarder.offloading = true
            fastPath = try FastPath(interfaces: [], capacity: 64, paths: paths)
        }

        /// The engine's part for a frame: decided, and what it hands over installed.
        mutating func engine(_ frame: [UInt8], from interface: Int32 = F.front) -> FrameAction {
            var buffer = [UInt8](repeating: 0, count: 4096 + 128)
            buffer.replaceSubrange(128..<(128 + frame.count), with: frame)
            var missing: [IPAddress] = []
            let action = buffer.withUnsafeMutableBytes { p in
                forwarder.handle(p, start: 128, length: frame.count, flags: 0, interface: interface, table: &table, hops: F.hops,
                                 missing: &missing, now: 1_000_000_000)
            }
            fastPath.install(forwarder.offloads)
            forwarder.clearOffloadQueues()
            return action
        }

        /// The kernel's part: the program's verdict (7: forwarded).
        func kernel(_ frame: [UInt8]) throws -> UInt32 {
            try fastPath.ingress.testRun(frame).result
        }
    }

    static func client(_ flags: UInt8, payload: Int = 0) -> [UInt8] {
        FrameBuilder.tcp(sourceMAC: F.clientMAC, destinationMAC: F.frontMAC, source: F.client, destination: F.vip, sourcePort: 40000,
                         destinationPort: 8080, flags: flags, payload: payload)
    }

    static func server(_ flags: UInt8, payload: Int = 0) -> [UInt8] {
        FrameBuilder.tcp(sourceMAC: F.rs1MAC, destinationMAC: F.backMAC, source: F.rs1, destination: F.client, sourcePort: 80,
                         destinationPort: 40000, flags: flags, payload: payload)
    }

    /// A NAT connection handed over at its SYN, whose SYN+ACK and ACK went through the kernel
    /// (their reports not applied yet), and the shared state the engine would use.
    static func handedOverNAT() throws -> (Rig, LoadBalancerState) {
        var rig = try Rig(method: "-m")
        var sent = false
        if case .send = rig.engine(client(0x02)) { sent = true }
        try #require(sent, "SYN not sent")
        let shared = LoadBalancerState(loops: [rig.group.next()], ipvs: rig.table)
        #expect(try rig.kernel(server(0x12)) == 7)
        #expect(try rig.kernel(client(0x10)) == 7)
        return (rig, shared)
    }

    func state(_ s: LoadBalancerState) -> String? { s.withTable { $0.connectionSnapshots(now: s.now).first?.stateName } }

    @Test(.enabled(if: isRoot)) func onlyTheSYNCrossesToTheEngineInDirectRouting() throws {
        var rig = try Rig(method: "-g")
        guard case .send = rig.engine(Self.client(0x02)) else { Issue.record("SYN not sent"); return }
        #expect(rig.fastPath.snapshot.offloaded == 1)
        let shared = LoadBalancerState(loops: [rig.group.next()], ipvs: rig.table)
        // The handshake's ACK, a request and the client's FIN go through the kernel.
        #expect(try rig.kernel(Self.client(0x10)) == 7)
        #expect(try rig.kernel(Self.client(0x18, payload: 100)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "ESTABLISHED")
        #expect(shared.withTable { $0.serviceSnapshots[0].servers[0].activeConnections } == 1)
        #expect(try rig.kernel(Self.client(0x11)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "FIN_WAIT")
        let counters = shared.withTable { $0.serviceSnapshots[0].counters }
        #expect(counters.inPackets == 4)
        #expect(counters.inBytes == UInt64(4 * 40 + 100))
        #expect(rig.fastPath.snapshot.withdrawn == 1)
        #expect(rig.fastPath.snapshot.unknownReports == 0)
        // Out of the map: what follows is the engine's again.
        #expect(try rig.kernel(Self.client(0x10)) == UInt32(bitPattern: -1))
        try rig.group.syncShutdownGracefully()
    }

    /// The program found the client's flow just before the engine took it back, and reports its
    /// FIN after: the report still moves the table and counts what the engine's copy missed.
    @Test(.enabled(if: isRoot)) func aFINReportedAfterItsConnectionWasTakenBackStillCounts() throws {
        let (rig, shared) = try Self.handedOverNAT()
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "ESTABLISHED")
        let id = try #require(rig.fastPath.connections.first)
        rig.fastPath.poll(state: shared, hops: F.hops, withdrawals: [id])
        #expect(rig.fastPath.connections.isEmpty)
        let before = shared.withTable { $0.serviceSnapshots[0].counters }
        // The flow as the program still had it (one packet counted, the ACK), and its FIN.
        let key = FastPathLayout.Key(protocolNumber: 6, source: F.client.v4, sourcePort: 40000, destination: F.vip.v4, destinationPort: 8080)
        var value = FastPathLayout.value(action: .destination, address: F.rs1.v4, port: 80, interface: F.back, destinationMAC: F.rs1MAC,
                                         sourceMAC: F.backMAC)
        value[32] = 1
        value[40] = 40
        var k = key.bytes
        _ = value.withUnsafeBytes { v in withUnsafeBytes(of: &k) { rig.fastPath.flows.update(key: $0.baseAddress!, value: v.baseAddress!) } }
        #expect(try rig.kernel(Self.client(0x11)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "CLOSE_WAIT")
        #expect(shared.withTable { $0.serviceSnapshots[0].counters.inPackets } == before.inPackets + 1)
        #expect(rig.fastPath.snapshot.unknownReports == 0)
        try rig.group.syncShutdownGracefully()
    }

    @Test(.enabled(if: isRoot)) func aNATRealServerFINRacingAWithdrawalIsNotLost() throws {
        let (rig, shared) = try Self.handedOverNAT()
        #expect(try rig.kernel(Self.server(0x18, payload: 200)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "ESTABLISHED")
        // The real server's FIN goes through the kernel, which takes its flow out of the map; the
        // engine takes the connection back before it has read that report.
        #expect(try rig.kernel(Self.server(0x11)) == 7)
        let id = try #require(rig.fastPath.connections.first)
        rig.fastPath.poll(state: shared, hops: F.hops, withdrawals: [id])
        #expect(state(shared) == "FIN_WAIT")
        let counters = shared.withTable { $0.serviceSnapshots[0].counters }
        #expect(counters.outPackets == 3)
        #expect(counters.outBytes == UInt64(3 * 40 + 200))
        #expect(counters.inPackets == 2)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(rig.fastPath.snapshot.unknownReports == 0)
        #expect(rig.fastPath.snapshot.withdrawn == 1)
        try rig.group.syncShutdownGracefully()
    }

    /// A client SYN as it comes in to this host: in a test run the frame is this host's when its
    /// destination MAC is the loopback device's (zero).
    static func incomingSYN(port: UInt16) -> [UInt8] {
        FrameBuilder.tcp(sourceMAC: F.clientMAC, destinationMAC: MACAddress(0, 0, 0, 0, 0, 0), source: F.client, destination: F.vip,
                         sourcePort: port, destinationPort: 8080, flags: 0x02)
    }

    /// The socket filter's verdict for a frame (a test run gives it the frame past its Ethernet
    /// header: the header goes in twice).
    static func filtered(_ filter: EBPFProgram, _ frame: [UInt8]) throws -> UInt32 {
        try filter.testRun(Array(frame.prefix(14)) + frame).result
    }

    @Test(.enabled(if: isRoot)) func synsScheduledInTheKernelGetTheEnginesChoicesAndTheirConnections() throws {
        var rig = try Rig(method: "-g")
        IPVSAdmSessionShim().run(["-a", "-t", "207.175.44.110:8080", "-r", "172.16.0.3:80", "-g"], on: &rig.table)
        let expected: [IPAddress] = (0..<6).compactMap { i in
            var copy = rig.table
            var n: IPAddress?
            for k in 0...i {
                if case .forward(let f) = copy.inbound(.tcp(from: Endpoint(F.client, UInt16(30000 + k)), to: Endpoint(F.vip, 8080), flags: .syn),
                                                       now: 0) { n = f.destination.address }
            }
            return n
        }
        _ = try #require(rig.fastPath.ahead)
        let shared = LoadBalancerState(loops: [rig.group.next()], ipvs: rig.table)
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        let filter = try rig.fastPath.socketFilter(destinations: [F.vip], sources: [], acceptIPv6: false)
        for i in 0..<6 {
            let syn = Self.incomingSYN(port: UInt16(30000 + i))
            // Not for the engine's socket: the flow is in the map, the kernel forwards the SYN.
            #expect(try Self.filtered(filter, syn) == 0)
            let (verdict, out) = try rig.fastPath.ingress.testRun(syn)
            #expect(verdict == 7)
            rig.fastPath.applyReports(state: shared, hops: F.hops)
            // Out to the real server the engine's scheduler would have chosen, by its MAC.
            let server = try #require(shared.withTable { t in t.connectionSnapshots(now: 0).first(where: { $0.client.port == UInt16(30000 + i) }) })
            #expect(server.destination.address == expected[i])
            let mac = expected[i] == F.rs1 ? F.rs1MAC : F.rs2MAC
            #expect(Array(out[0..<6]) == withUnsafeBytes(of: mac.bytes) { Array($0) })
            #expect(server.stateName == "SYN_RECV")
        }
        #expect(rig.fastPath.snapshot.scheduledAhead == 6)
        #expect(rig.fastPath.snapshot.offloaded == 6)
        #expect(rig.fastPath.snapshot.unknownReports == 0)
        // The handshake's ACK through the kernel: ESTABLISHED; the SYN and the ACK counted.
        #expect(try rig.kernel(FrameBuilder.tcp(sourceMAC: F.clientMAC, destinationMAC: F.frontMAC, source: F.client, destination: F.vip,
                                                sourcePort: 30000, destinationPort: 8080, flags: 0x10)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        rig.fastPath.poll(state: shared, hops: F.hops)
        let first = try #require(shared.withTable { t in t.connectionSnapshots(now: 0).first(where: { $0.client.port == 30000 }) })
        #expect(first.stateName == "ESTABLISHED")
        #expect(shared.withTable { $0.serviceSnapshots[0].counters.inPackets } == 7)
        #expect(shared.withTable { $0.serviceSnapshots[0].counters.connections } == 6)
        try rig.group.syncShutdownGracefully()
    }

    @Test(.enabled(if: isRoot)) func withNoChoiceWaitingTheSYNGoesToTheEngine() throws {
        var rig = try Rig(method: "-g")
        // lc decides nothing ahead.
        IPVSAdmSessionShim().run(["-E", "-t", "207.175.44.110:8080", "-s", "lc"], on: &rig.table)
        let shared = LoadBalancerState(loops: [rig.group.next()], ipvs: rig.table)
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        let filter = try rig.fastPath.socketFilter(destinations: [F.vip], sources: [], acceptIPv6: false)
        #expect(try Self.filtered(filter, Self.incomingSYN(port: 30000)) != 0)
        #expect(try rig.kernel(Self.incomingSYN(port: 30000)) == UInt32(bitPattern: -1))
        // Under rr, a change to the table voids the choices waiting until they are made again.
        IPVSAdmSessionShim().run(["-E", "-t", "207.175.44.110:8080", "-s", "rr"], on: &rig.table)
        shared.withTable { $0 = rig.table }
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(try Self.filtered(filter, Self.incomingSYN(port: 30001)) == 0)
        // A change to the table stops the choices at once, before the engine makes them again.
        let ahead = try #require(rig.fastPath.ahead)
        shared.observeConfigurationChanges { ahead.tableChanged() }
        shared.withTable { t in IPVSAdmSessionShim().run(["-e", "-t", "207.175.44.110:8080", "-r", "172.16.0.2", "-g", "-w", "2"], on: &t) }
        #expect(try Self.filtered(filter, Self.incomingSYN(port: 30003)) != 0)
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        shared.withTable { t in IPVSAdmSessionShim().run(["-d", "-t", "207.175.44.110:8080", "-r", "172.16.0.2"], on: &t) }
        #expect(shared.withTable { $0.serviceSnapshots[0].servers.isEmpty })
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(try Self.filtered(filter, Self.incomingSYN(port: 30002)) != 0)
        // The SYN that took a choice before the change: its real server left, so no connection,
        // and its flow is taken back.
        #expect(try rig.kernel(Self.incomingSYN(port: 30001)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(shared.withTable { $0.connectionCount } == 0)
        #expect(rig.fastPath.snapshot.refusedSyns == 1)
        #expect(try rig.kernel(Self.incomingSYN(port: 30001)) == UInt32(bitPattern: -1))
        try rig.group.syncShutdownGracefully()
    }

    func flowInMap(_ rig: Rig, port: UInt16 = 40000) -> FastPathLayout.Usage? {
        var k = FastPathLayout.Key(protocolNumber: 6, source: F.client.v4, sourcePort: port, destination: F.vip.v4, destinationPort: 8080).bytes
        var v = [UInt8](repeating: 0, count: FastPathLayout.valueSize)
        let found = v.withUnsafeMutableBytes { out in withUnsafeBytes(of: &k) { rig.fastPath.flows.lookup(key: $0.baseAddress!, into: out.baseAddress!) } }
        return found ? v.withUnsafeBytes { FastPathLayout.Usage(value: $0.baseAddress!) } : nil
    }

    @Test(.enabled(if: isRoot)) func aClosedDRFlowReopensForItsClientsNextSYNAndLeavesWithItsConnection() throws {
        guard let (rig, shared, filter) = try Self.closedDR() else { Issue.record("SYN not sent"); return }
        #expect(state(shared) == "FIN_WAIT")
        // The flow stays, closed, while its connection is in the table.
        #expect(flowInMap(rig)?.stopped == true)
        // The client's next connection from the same port: its SYN goes on in the kernel, to the
        // same real server, and the table's connection goes on (SYN_RECV), as IPVS has it.
        #expect(try Self.filtered(filter, Self.client(0x02)) == 0)
        #expect(try rig.kernel(Self.client(0x02)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "SYN_RECV")
        #expect(shared.withTable { $0.connectionCount } == 1)
        #expect(rig.fastPath.snapshot.reopened == 1)
        #expect(try rig.kernel(Self.client(0x10)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "ESTABLISHED")
        #expect(try rig.kernel(Self.client(0x11)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "FIN_WAIT")
        // When the table lets the connection go, its closed flow leaves the map.
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(flowInMap(rig) != nil)
        shared.withTable { $0.expire(now: shared.now + 1_000_000_000_000) }
        #expect(shared.withTable { $0.connectionCount } == 0)
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(flowInMap(rig) == nil)
        #expect(rig.fastPath.snapshot.unknownReports == 0)
        try rig.group.syncShutdownGracefully()
    }

    /// A DR connection closed by its client's FIN, its flow left in the map, closed.
    static func closedDR() throws -> (Rig, LoadBalancerState, EBPFProgram)? {
        var rig = try Rig(method: "-g")
        rig.table.logsRemovals = true
        guard case .send = rig.engine(client(0x02)) else { return nil }
        let shared = LoadBalancerState(loops: [rig.group.next()], ipvs: rig.table)
        let filter = try rig.fastPath.socketFilter(destinations: [F.vip], sources: [], acceptIPv6: false)
        #expect(try rig.kernel(client(0x10)) == 7)
        #expect(try rig.kernel(client(0x11)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        return (rig, shared, filter)
    }

    @Test(.enabled(if: isRoot)) func aSYNReopeningAFlowWhoseConnectionExpiredMeanwhileMakesANewOneWhereItWent() throws {
        guard let (rig, shared, filter) = try Self.closedDR() else { Issue.record("SYN not sent"); return }
        let old = try #require(shared.withTable { $0.connectionSnapshots(now: shared.now).first })
        // The connection expires before the engine has taken its closed flow out of the map (it
        // does so at its next tick): a SYN from the client port is forwarded by the kernel.
        shared.withTable { $0.expire(now: shared.now + 1_000_000_000_000) }
        #expect(shared.withTable { $0.connectionCount } == 0)
        #expect(try Self.filtered(filter, Self.client(0x02)) == 0)
        #expect(try rig.kernel(Self.client(0x02)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        // A new connection, on the real server the SYN went to, handed over as any other.
        let new = try #require(shared.withTable { $0.connectionSnapshots(now: shared.now).first })
        #expect(new.stateName == "SYN_RECV")
        #expect(new.destination == old.destination)
        #expect(shared.withTable { $0.connectionCount } == 1)
        #expect(rig.fastPath.snapshot.reopened == 1)
        #expect(rig.fastPath.snapshot.refusedSyns == 0)
        #expect(rig.fastPath.connections.count == 1)
        // The old connection's removal, drained at the tick, leaves the new one's flow alone.
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(flowInMap(rig)?.stopped == false)
        #expect(try rig.kernel(Self.client(0x10)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(shared.withTable { $0.connectionSnapshots(now: shared.now).first?.stateName } == "ESTABLISHED")
        try rig.group.syncShutdownGracefully()
    }

    @Test(.enabled(if: isRoot)) func aFlowReopenedJustBeforeItsConnectionsRemovalIsDrainedStays() throws {
        guard let (rig, shared, _) = try Self.closedDR() else { Issue.record("SYN not sent"); return }
        // The SYN reopens the flow in the kernel; before its report is read, the table lets the
        // old connection go and the engine drains the removal: the reopened flow stays.
        #expect(try rig.kernel(Self.client(0x02)) == 7)
        shared.withTable { $0.expire(now: shared.now + 1_000_000_000_000) }
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(flowInMap(rig)?.stopped == false)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(shared.withTable { $0.connectionSnapshots(now: shared.now).first?.stateName } == "SYN_RECV")
        #expect(rig.fastPath.snapshot.refusedSyns == 0)
        try rig.group.syncShutdownGracefully()
    }

    @Test(.enabled(if: isRoot)) func aClosedFlowLeavesAsSoonAsItsRealServerIsDeleted() throws {
        guard let (rig, shared, filter) = try Self.closedDR() else { Issue.record("SYN not sent"); return }
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(flowInMap(rig)?.stopped == true)
        // A change that leaves the real server in place leaves the flow too.
        shared.withTable { IPVSAdmSessionShim().run(["-e", "-t", "207.175.44.110:8080", "-r", "172.16.0.2:80", "-g", "-w", "3"], on: &$0) }
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(flowInMap(rig)?.stopped == true)
        // Deleted (a DR real server's port is the service's): its connection stays in the table until it expires, as in IPVS, but a SYN from
        // the client port is not forwarded to it in the kernel any more; it goes to the engine.
        shared.withTable { IPVSAdmSessionShim().run(["-d", "-t", "207.175.44.110:8080", "-r", "172.16.0.2:8080"], on: &$0) }
        rig.fastPath.refreshAhead(state: shared, hops: F.hops)
        #expect(flowInMap(rig) == nil)
        #expect(shared.withTable { $0.connectionCount } == 1)
        #expect(try Self.filtered(filter, Self.client(0x02)) != 0)
        #expect(try rig.kernel(Self.client(0x02)) != 7)
        try rig.group.syncShutdownGracefully()
    }

    @Test(.enabled(if: isRoot)) func aClosedFlowWhoseConnectionWouldBeReusedLeavesAtOnce() throws {
        var rig = try Rig(method: "-g")
        rig.table.logsRemovals = true
        // conn_reuse_mode 3: a DR connection in FIN_WAIT is started afresh by a new SYN.
        var settings = rig.table.settings
        settings.connectionReuseMode = 3
        rig.table = IPVS(settings: settings)
        rig.table.logsRemovals = true
        IPVSAdmSessionShim().run(["-A", "-t", "207.175.44.110:8080", "-s", "rr"], on: &rig.table)
        IPVSAdmSessionShim().run(["-a", "-t", "207.175.44.110:8080", "-r", "172.16.0.2:80", "-g"], on: &rig.table)
        guard case .send = rig.engine(Self.client(0x02)) else { Issue.record("SYN not sent"); return }
        let shared = LoadBalancerState(loops: [rig.group.next()], ipvs: rig.table)
        #expect(try rig.kernel(Self.client(0x10)) == 7)
        #expect(try rig.kernel(Self.client(0x11)) == 7)
        rig.fastPath.applyReports(state: shared, hops: F.hops)
        #expect(state(shared) == "FIN_WAIT")
        #expect(flowInMap(rig) == nil)
        try rig.group.syncShutdownGracefully()
    }
}
