import Glibc
import LVSCore
import LVSPacket
import LinuxNet
import Testing
@testable import LVSPacketEngine

/// The in-kernel path's programs: encoded as the kernel expects, accepted by its verifier, and
/// run on built frames in the kernel (BPF_PROG_TEST_RUN, root only) to check what they forward,
/// how they rewrite it, and what they leave to the engine.
@Suite struct FastPathTests {
    static let client = IPAddress("10.200.0.2")!
    static let vip = IPAddress("10.200.0.100")!
    static let rs = IPAddress("10.200.1.11")!
    static let clientMAC = MACAddress(2, 0xC8, 0, 0, 0, 2)
    static let frontMAC = MACAddress(2, 0xC8, 0, 0, 0, 1)
    static let backMAC = MACAddress(2, 0xC8, 0, 1, 0, 1)
    static let rsMAC = MACAddress(2, 0xC8, 0, 1, 0, 0x0B)
    static let isRoot = getuid() == 0

    @Test func instructionsAreEncodedAsStructBPFInsn() {
        // mov64 r6, r1 = 0xbf 0x16 0000 00000000; exit = 0x95.
        #expect(EBPFAssembler.encode(0xBF, .r6, .r1, 0, 0) == 0x16BF)
        var a = EBPFAssembler()
        let l = a.label()
        a.jump(.equal, .r1, 7, l)
        a.mov(.r0, -1)
        a.bind(l)
        a.exit()
        let code = a.finish()
        #expect(code.count == 3)
        // jeq r1, 7, +1
        #expect(code[0] == 0x0000_0007_0001_0115)
        // mov64 r0, -1
        #expect(code[1] == 0xFFFF_FFFF_0000_00B7)
        #expect(code[2] == 0x95)
        var m = EBPFAssembler()
        m.loadMap(.r1, fd: 9)
        #expect(m.finish() == [0x0000_0009_0000_1118, 0])
    }

    @Test func keysAndValuesAreInNetworkOrder() {
        let key = FastPathLayout.Key(protocolNumber: 6, source: FastPathTests.client.v4, sourcePort: 0x1234,
                                     destination: FastPathTests.vip.v4, destinationPort: 80)
        let bytes = withUnsafeBytes(of: key.bytes) { Array($0) }
        #expect(bytes == [10, 200, 0, 2, 10, 200, 0, 100, 0x12, 0x34, 0, 80, 6, 0, 0, 0])
        let value = FastPathLayout.value(action: .destination, address: FastPathTests.rs.v4, port: 8080, interface: 7,
                                         destinationMAC: FastPathTests.rsMAC, sourceMAC: FastPathTests.backMAC)
        #expect(value.count == FastPathLayout.valueSize)
        #expect(Array(value[0..<12]) == [2, 0, 0x1F, 0x90, 10, 200, 1, 11, 7, 0, 0, 0])
        #expect(Array(value[16..<28]) == [2, 0xC8, 0, 1, 0, 0x0B, 2, 0xC8, 0, 1, 0, 1])
        let usage = value.withUnsafeBytes { FastPathLayout.Usage(value: $0.baseAddress!) }
        #expect(usage == FastPathLayout.Usage(packets: 0, bytes: 0, lastSeen: 0, stopped: false))
    }

    /// A map with one flow, and both programs loaded over it.
    struct Loaded {
        let flows: EBPFHashMap
        let reports: EBPFRingBuffer
        let ingress: EBPFProgram
        let filter: EBPFProgram

        init(action: FastPathLayout.Action, key: FastPathLayout.Key, address: IPAddress = FastPathTests.rs, port: UInt16 = 80,
             report: Bool = false, ring: Int = 1 << 16) throws {
            flows = try EBPFHashMap(keySize: FastPathLayout.keySize, valueSize: FastPathLayout.valueSize, capacity: 64)
            reports = try EBPFRingBuffer(size: ring, recordSize: FastPathLayout.reportSize)
            ingress = try EBPFProgram(.schedClassifier, FastPathLayout.ingressProgram(flows: flows.fd, reports: reports.fd),
                                      expectedAttach: EBPFProgram.tcxIngress)
            filter = try EBPFProgram(.socketFilter, FastPathLayout.socketFilter(flows: flows.fd, destinations: [FastPathTests.vip],
                                                                               sources: [FastPathTests.rs], acceptIPv6: false))
            let value = FastPathLayout.value(action: action, address: address.v4, port: port, interface: 42,
                                             destinationMAC: action == .source ? FastPathTests.clientMAC : FastPathTests.rsMAC,
                                             sourceMAC: action == .source ? FastPathTests.frontMAC : FastPathTests.backMAC, report: report)
            var k = key.bytes
            let code = value.withUnsafeBytes { v in withUnsafeBytes(of: &k) { flows.update(key: $0.baseAddress!, value: v.baseAddress!) } }
            #expect(code == 0)
        }

        /// The socket filter's verdict. A test run gives socket filters the frame past its Ethernet
        /// header (a packet socket gives it whole): the header goes in twice.
        func filtered(_ frame: [UInt8]) throws -> (result: UInt32, frame: [UInt8]) {
            try filter.testRun(Array(frame.prefix(14)) + frame)
        }

        /// What the program reported since the last call.
        func reported() -> [FastPathLayout.Report] {
            var out = [UInt8](repeating: 0, count: FastPathLayout.reportSize * 256)
            let n = out.withUnsafeMutableBytes { reports.read(into: $0.baseAddress!, count: 256) }
            return (0..<n).map { i in out.withUnsafeBytes { FastPathLayout.Report($0.baseAddress! + i * FastPathLayout.reportSize) } }
        }

        func usage(_ key: FastPathLayout.Key) -> FastPathLayout.Usage? {
            var k = key.bytes
            var v = [UInt8](repeating: 0, count: FastPathLayout.valueSize)
            let found = v.withUnsafeMutableBytes { out in withUnsafeBytes(of: &k) { flows.lookup(key: $0.baseAddress!, into: out.baseAddress!) } }
            return found ? v.withUnsafeBytes { FastPathLayout.Usage(value: $0.baseAddress!) } : nil
        }
    }

    static let inbound = FastPathLayout.Key(protocolNumber: 6, source: client.v4, sourcePort: 40000, destination: vip.v4, destinationPort: 80)

    static func segment(flags: UInt8 = 0x10, payload: Int = 100, ttl: UInt8 = 64) -> [UInt8] {
        FrameBuilder.tcp(sourceMAC: clientMAC, destinationMAC: frontMAC, source: client, destination: vip, sourcePort: 40000,
                         destinationPort: 80, flags: flags, ttl: ttl, payload: payload)
    }

    static func ipHeaderValid(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBytes { Checksum.fold(Checksum.sum($0, from: 14, count: 20)) == 0xFFFF }
    }

    @Test(.enabled(if: isRoot)) func directRoutingChangesOnlyTheMACsAndTheHopLimit() throws {
        let rig = try Loaded(action: .macsOnly, key: FastPathTests.inbound)
        let frame = FastPathTests.segment()
        let (result, out) = try rig.ingress.testRun(frame)
        #expect(result == 7)  // TCX_REDIRECT
        #expect(out.count == frame.count)
        #expect(Array(out[0..<6]) == FastPathTests.rsMAC.array)
        #expect(Array(out[6..<12]) == FastPathTests.backMAC.array)
        #expect(out[22] == 63)
        #expect(FastPathTests.ipHeaderValid(out))
        #expect(Array(out[24...]) != Array(frame[24...]))
        // Past the TTL and header checksum, the datagram is untouched.
        #expect(Array(out[26...]) == Array(frame[26...]))
        let usage = try #require(rig.usage(FastPathTests.inbound))
        #expect(usage.packets == 1)
        #expect(usage.bytes == UInt64(frame.count - 14))
        #expect(usage.lastSeen > 0)
        // The sockets do not take what the program forwards.
        #expect(try rig.filtered(frame).result == 0)
    }

    @Test(.enabled(if: isRoot)) func natRewritesDestinationAndKeepsChecksums() throws {
        let rig = try Loaded(action: .destination, key: FastPathTests.inbound, port: 8080)
        let (result, out) = try rig.ingress.testRun(FastPathTests.segment())
        #expect(result == 7)
        #expect(Array(out[30..<34]) == [10, 200, 1, 11])
        #expect(Array(out[36..<38]) == [0x1F, 0x90])
        #expect(FastPathTests.ipHeaderValid(out))
        #expect(FrameBuilder.checksumsValid(out))
    }

    @Test(.enabled(if: isRoot)) func natRepliesGetTheVirtualServiceAsSource() throws {
        let key = FastPathLayout.Key(protocolNumber: 17, source: FastPathTests.rs.v4, sourcePort: 9000, destination: FastPathTests.client.v4,
                                     destinationPort: 5555)
        let rig = try Loaded(action: .source, key: key, address: FastPathTests.vip, port: 53)
        var reply = FrameBuilder.udp(sourceMAC: FastPathTests.rsMAC, destinationMAC: FastPathTests.backMAC, source: FastPathTests.rs,
                                     destination: FastPathTests.client, sourcePort: 9000, destinationPort: 5555)
        reply += [UInt8](repeating: 0, count: 6)  // at least the 48 bytes the programs read
        reply[17] = UInt8(reply.count - 14)
        reply[16] = 0
        reply[38] = 0
        reply[39] = UInt8(reply.count - 34)
        reply[24] = 0
        reply[25] = 0
        let sum = reply.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 14, count: 20)) }
        reply[24] = UInt8(sum >> 8)
        reply[25] = UInt8(sum & 0xFF)
        reply[40] = 0
        reply[41] = 0  // no UDP checksum: it must stay none
        let (result, out) = try rig.ingress.testRun(reply)
        #expect(result == 7)
        #expect(Array(out[26..<30]) == [10, 200, 0, 100])
        #expect(Array(out[34..<36]) == [0, 53])
        #expect(out[40] == 0 && out[41] == 0)
        #expect(FastPathTests.ipHeaderValid(out))
    }

    @Test(.enabled(if: isRoot)) func aNewSYNStopsTheFlowForTheEngine() throws {
        let rig = try Loaded(action: .macsOnly, key: FastPathTests.inbound)
        let syn = FastPathTests.segment(flags: 0x02, payload: 0)
        // The engine's socket takes the SYN, the program leaves it...
        #expect(try rig.filtered(syn).result == 0x40000)
        #expect(try rig.ingress.testRun(syn).result == UInt32(bitPattern: -1))
        #expect(rig.usage(FastPathTests.inbound)?.stopped == true)
        #expect(rig.reported().isEmpty)
        // ...and everything after it, until the engine withdraws the flow.
        #expect(try rig.ingress.testRun(FastPathTests.segment()).result == UInt32(bitPattern: -1))
        #expect(try rig.filtered(FastPathTests.segment()).result == 0x40000)
        #expect(try rig.ingress.testRun(FastPathTests.segment(flags: 0x11)).result == UInt32(bitPattern: -1))
        #expect(rig.reported().isEmpty)
    }

    @Test(.enabled(if: isRoot)) func segmentsThatMoveTheStateAreForwardedAndReported() throws {
        let rig = try Loaded(action: .destination, key: FastPathTests.inbound)
        // Plain segments of a flow handed over in ESTABLISHED: forwarded, not reported.
        #expect(try rig.ingress.testRun(FastPathTests.segment()).result == 7)
        #expect(rig.reported().isEmpty)
        // SYN+ACK: forwarded (the sockets do not take it) and reported, with the flow's figures.
        let synAck = FastPathTests.segment(flags: 0x12, payload: 0)
        #expect(try rig.filtered(synAck).result == 0)
        #expect(try rig.ingress.testRun(synAck).result == 7)
        var reports = rig.reported()
        #expect(reports.count == 1)
        #expect(reports.first?.key == FastPathTests.inbound)
        #expect(reports.first?.flags == [.syn, .ack])
        #expect(reports.first?.isLast == false)
        #expect(reports.first?.usage.packets == 2)
        #expect(reports.first?.usage.bytes == UInt64(FastPathTests.segment().count - 14 + synAck.count - 14))
        #expect(rig.usage(FastPathTests.inbound)?.packets == 2)
        // A FIN: forwarded, reported with the figures it ends on, and the flow is out of the map.
        let fin = FastPathTests.segment(flags: 0x11, payload: 0)
        #expect(try rig.filtered(fin).result == 0)
        let (result, out) = try rig.ingress.testRun(fin)
        #expect(result == 7)
        #expect(Array(out[0..<6]) == FastPathTests.rsMAC.array)
        reports = rig.reported()
        #expect(reports.count == 1)
        #expect(reports.first?.flags == [.fin, .ack])
        #expect(reports.first?.isLast == true)
        #expect(reports.first?.usage.packets == 3)
        #expect(rig.usage(FastPathTests.inbound) == nil)
        // What follows is the engine's.
        #expect(try rig.ingress.testRun(FastPathTests.segment()).result == UInt32(bitPattern: -1))
        #expect(try rig.filtered(FastPathTests.segment()).result == 0x40000)
    }

    @Test(.enabled(if: isRoot)) func aDRFlowClosedByItsClientsFINIsReopenedByItsNextSYN() throws {
        let rig = try Loaded(action: .macsOnly, key: FastPathTests.inbound)
        #expect(try rig.ingress.testRun(FastPathTests.segment(flags: 0x11, payload: 0)).result == 7)
        #expect(rig.reported().map(\.isLast) == [true])
        // Closed, in place: the segments that follow are the engine's (the sockets take them).
        #expect(rig.usage(FastPathTests.inbound)?.stopped == true)
        #expect(try rig.ingress.testRun(FastPathTests.segment(flags: 0x10, payload: 0)).result == UInt32(bitPattern: -1))
        #expect(try rig.filtered(FastPathTests.segment(flags: 0x10, payload: 0)).result == 0x40000)
        // A SYN from the same client port: the sockets leave it, the program reopens the flow,
        // forwards the SYN to the same real server and reports it as reopened.
        let syn = FastPathTests.segment(flags: 0x02, payload: 0)
        #expect(try rig.filtered(syn).result == 0)
        let (result, out) = try rig.ingress.testRun(syn)
        #expect(result == 7)
        #expect(Array(out[0..<6]) == FastPathTests.rsMAC.array)
        let reports = rig.reported()
        #expect(reports.count == 1)
        #expect(reports.first?.flags == .syn)
        #expect(reports.first?.reopened == true)
        #expect(reports.first?.isNewConnection == true)
        #expect(rig.usage(FastPathTests.inbound)?.stopped == false)
        // Open again; the handshake's ACK is reported, once.
        #expect(try rig.ingress.testRun(FastPathTests.segment(flags: 0x10, payload: 0)).result == 7)
        #expect(try rig.ingress.testRun(FastPathTests.segment(flags: 0x18)).result == 7)
        #expect(rig.reported().map(\.flags) == [.ack])
        // A second SYN on the open flow stops it for the engine, as before.
        #expect(try rig.ingress.testRun(syn).result == UInt32(bitPattern: -1))
    }

    @Test(.enabled(if: isRoot)) func aResetEndsTheFlowToo() throws {
        let rig = try Loaded(action: .macsOnly, key: FastPathTests.inbound)
        #expect(try rig.ingress.testRun(FastPathTests.segment(flags: 0x04, payload: 0)).result == 7)
        #expect(rig.reported().map(\.isLast) == [true])
        #expect(rig.usage(FastPathTests.inbound) == nil)
    }

    @Test(.enabled(if: isRoot)) func theFirstPlainSegmentIsReportedWhenTheValueAsks() throws {
        // Handed over at its SYN: the handshake's ACK is reported, once.
        let rig = try Loaded(action: .macsOnly, key: FastPathTests.inbound, report: true)
        #expect(try rig.ingress.testRun(FastPathTests.segment(flags: 0x10, payload: 0)).result == 7)
        #expect(try rig.ingress.testRun(FastPathTests.segment(flags: 0x18)).result == 7)
        let reports = rig.reported()
        #expect(reports.count == 1)
        #expect(reports.first?.flags == .ack)
        #expect(reports.first?.isLast == false)
        #expect(reports.first?.key == FastPathTests.inbound)
    }

    @Test(.enabled(if: isRoot)) func aFullRingSendsTheSegmentToTheEngine() throws {
        // One page holds 73 reports of 56 bytes (header included).
        let rig = try Loaded(action: .macsOnly, key: FastPathTests.inbound, ring: Int(sysconf(Int32(_SC_PAGESIZE))))
        let synAck = FastPathTests.segment(flags: 0x12, payload: 0)
        var forwarded = 0
        for _ in 0..<200 {
            guard try rig.ingress.testRun(synAck).result == 7 else { break }
            forwarded += 1
        }
        #expect(forwarded > 0 && forwarded < 200)
        // The one the ring had no room for is the engine's, and not counted here.
        let usage = try #require(rig.usage(FastPathTests.inbound))
        #expect(usage.stopped)
        #expect(usage.packets == UInt64(forwarded))
        #expect(usage.bytes == UInt64(forwarded * (synAck.count - 14)))
        #expect(rig.reported().count == forwarded)
        // Room again, but the flow stays the engine's until it withdraws it.
        #expect(try rig.ingress.testRun(synAck).result == UInt32(bitPattern: -1))
    }

    @Test(.enabled(if: isRoot)) func whatTheProgramLeavesTheSocketsTake() throws {
        let rig = try Loaded(action: .macsOnly, key: FastPathTests.inbound)
        let other = FrameBuilder.tcp(sourceMAC: FastPathTests.clientMAC, destinationMAC: FastPathTests.frontMAC, source: FastPathTests.client,
                                     destination: FastPathTests.vip, sourcePort: 40001, destinationPort: 80, flags: 0x10, payload: 20)
        var options = FastPathTests.segment()
        options[14] = 0x46
        var fragment = FastPathTests.segment()
        fragment[20] |= 0x20
        for frame in [other, FastPathTests.segment(ttl: 1), options, fragment, FastPathTests.segment(flags: 0x02)] {
            #expect(try rig.ingress.testRun(frame).result == UInt32(bitPattern: -1))
            #expect(try rig.filtered(frame).result == 0x40000)
        }
        // Not to a VIP, not from a NAT real server, ARP: neither.
        let past = FrameBuilder.tcp(sourceMAC: FastPathTests.clientMAC, destinationMAC: FastPathTests.frontMAC, source: FastPathTests.client,
                                    destination: IPAddress("10.9.9.9")!, sourcePort: 40000, destinationPort: 80, flags: 0x10, payload: 20)
        #expect(try rig.ingress.testRun(past).result == UInt32(bitPattern: -1))
        #expect(try rig.filtered(past).result == 0)
        let arp = FastPathTests.frontMAC.array + FastPathTests.clientMAC.array + [0x08, 0x06] + [UInt8](repeating: 0, count: 46)
        #expect(try rig.filtered(arp).result == 0)
        #expect(try rig.ingress.testRun(arp).result == UInt32(bitPattern: -1))
        #expect(rig.usage(FastPathTests.inbound)?.packets == 0)
    }

    /// The engine starts with no service: its sockets' filter, with no address to let through
    /// and the SYN path's maps, is one the kernel takes (and lets nothing through).
    @Test(.enabled(if: isRoot)) func theFilterWithNoAddressLoads() throws {
        let flows = try EBPFHashMap(keySize: FastPathLayout.keySize, valueSize: FastPathLayout.valueSize, capacity: 64)
        let ahead = try SynAhead()
        for withAhead in [false, true] {
            let filter = try EBPFProgram(.socketFilter, FastPathLayout.socketFilter(
                flows: flows.fd, destinations: [], sources: [], acceptIPv6: false,
                ahead: withAhead ? (ahead.services.fd, ahead.decisions.fd) : nil))
            let frame = FastPathTests.segment(flags: 0x02)
            #expect(try filter.testRun(Array(frame.prefix(14)) + frame).result == 0)
        }
    }
}
