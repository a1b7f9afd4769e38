import LVSCore
import LVSPacket
import Testing
@testable import LVSPacketEngine

/// The packet path's decisions on built frames, without sockets: what is sent, where, and how it
/// was rewritten.
@Suite struct ForwarderTests {
    static let vip = IPAddress("207.175.44.110")!
    static let client = IPAddress("10.0.0.2")!
    static let rs1 = IPAddress("172.16.0.2")!
    static let rs2 = IPAddress("172.16.0.3")!
    static let clientMAC = MACAddress(2, 0, 0, 0, 0, 0x0C)
    static let frontMAC = MACAddress(2, 0, 0, 0, 1, 1)
    static let backMAC = MACAddress(2, 0, 0, 0, 2, 1)
    static let rs1MAC = MACAddress(2, 0, 0, 0, 2, 2)
    static let rs2MAC = MACAddress(2, 0, 0, 0, 2, 3)
    static let front: Int32 = 10, back: Int32 = 12

    static var hops: [IPAddress: NextHop] {
        [rs1: NextHop(interface: back, destinationMAC: rs1MAC, sourceMAC: backMAC, mtu: 1500, source: IPAddress("172.16.0.1")!),
         rs2: NextHop(interface: back, destinationMAC: rs2MAC, sourceMAC: backMAC, mtu: 1500, source: IPAddress("172.16.0.1")!)]
    }

    struct Rig {
        var table: IPVS
        var forwarder: Forwarder
        var missing: [IPAddress] = []
        var now: Int64 = 1_000_000_000
        var hops = ForwarderTests.hops

        init(method: String, maxConnections: Int = 1024, servers: [IPAddress] = [ForwarderTests.rs1, ForwarderTests.rs2], udp: Bool = false) {
            var settings = IPVSSettings()
            settings.maxConnections = maxConnections
            table = IPVS(settings: settings)
            let session = IPVSAdmSessionShim()
            session.run(["-A", udp ? "-u" : "-t", "207.175.44.110:8080", "-s", "rr"], on: &table)
            for s in servers { session.run(["-a", udp ? "-u" : "-t", "207.175.44.110:8080", "-r", "\(s):80", method], on: &table) }
            forwarder = Forwarder(capacity: table.connectionSlots)
            forwarder.interfaceMACs = [ForwarderTests.front: ForwarderTests.frontMAC, ForwarderTests.back: ForwarderTests.backMAC]
        }

        /// Hands a frame to the forwarder; returns the action and the bytes it would send.
        mutating func handle(_ frame: [UInt8], from interface: Int32 = ForwarderTests.front, partial: Bool = false) -> (FrameAction, [UInt8]) {
            let headroom = 128
            var buffer = [UInt8](repeating: 0, count: 4096 + headroom)
            buffer.replaceSubrange(headroom..<(headroom + frame.count), with: frame)
            if partial { buffer[headroom - 10] = 1 }
            let action = buffer.withUnsafeMutableBytes { p in
                forwarder.handle(p, start: headroom, length: frame.count, flags: 0, interface: interface, table: &table, hops: hops,
                                 missing: &missing, now: now)
            }
            if case .send(let start, let length, _) = action { return (action, Array(buffer[start..<(start + length)])) }
            return (action, [])
        }
    }

    static func syn(from port: UInt16 = 40000, flags: UInt8 = 0x02, ttl: UInt8 = 64, payload: Int = 0, df: Bool = true) -> [UInt8] {
        FrameBuilder.tcp(sourceMAC: clientMAC, destinationMAC: frontMAC, source: client, destination: vip, sourcePort: port, destinationPort: 8080,
                         flags: flags, ttl: ttl, payload: payload, dontFragment: df)
    }

    func parsed(_ bytes: [UInt8]) throws -> Frame { try bytes.withUnsafeBytes { try Frame.parse($0).get() } }

    @Test func directRoutingChangesTheMACsAndTheHopLimitOnly() throws {
        var rig = Rig(method: "-g")
        let frame = Self.syn()
        let (action, out) = rig.handle(frame)
        guard case .send(_, _, let interface) = action else { Issue.record("not sent: \(action)"); return }
        #expect(interface == Self.back)
        let f = try parsed(out)
        #expect(f.destination == Self.vip && f.destinationPort == 8080 && f.hopLimit == 63)
        #expect(Array(out[0..<6]) == Self.rs2MAC.array || Array(out[0..<6]) == Self.rs1MAC.array)
        #expect(Array(out[6..<12]) == Self.backMAC.array)
        #expect(Array(out[34...]) == Array(frame[34...]), "the TCP segment is untouched")
        let snapshot = rig.table.serviceSnapshots[0]
        #expect(snapshot.counters.inPackets == 1 && snapshot.counters.outPackets == 0)
    }

    @Test func natRewritesTowardTheServerAndBackToTheClient() throws {
        var rig = Rig(method: "-m", servers: [Self.rs1])
        let (action, out) = rig.handle(Self.syn())
        guard case .send = action else { Issue.record("not sent: \(action)"); return }
        let f = try parsed(out)
        #expect(f.destination == Self.rs1 && f.destinationPort == 80 && f.source == Self.client)
        // The real server answers; it goes back out of the client's interface to the client's MAC, from the VIP.
        let reply = FrameBuilder.tcp(sourceMAC: Self.rs1MAC, destinationMAC: Self.backMAC, source: Self.rs1, destination: Self.client,
                                     sourcePort: 80, destinationPort: 40000, flags: 0x12)
        let (back, bytes) = rig.handle(reply, from: Self.back)
        guard case .send(_, _, let interface) = back else { Issue.record("reply not sent: \(back)"); return }
        #expect(interface == Self.front)
        let r = try parsed(bytes)
        #expect(r.source == Self.vip && r.sourcePort == 8080 && r.destination == Self.client)
        #expect(Array(bytes[0..<6]) == Self.clientMAC.array && Array(bytes[6..<12]) == Self.frontMAC.array)
        #expect(FrameBuilder.checksumsValid(bytes) && FrameBuilder.checksumsValid(out))
        #expect(rig.forwarder.counters.replies == 1)
    }

    @Test func aPartialChecksumStaysPartialThroughNAT() throws {
        var rig = Rig(method: "-m", servers: [Self.rs1])
        var frame = Self.syn()
        // What a local sender leaves: the pseudo-header's sum, uncomplemented.
        let f0 = try parsed(frame)
        let pseudo = Checksum.fold(Checksum.pseudoHeader(source: f0.source, destination: f0.destination, protocolNumber: 6, length: f0.end - f0.transport))
        frame[50] = UInt8(pseudo >> 8); frame[51] = UInt8(pseudo & 0xFF)
        let (_, out) = rig.handle(frame, partial: true)
        let f = try parsed(out)
        let expected = Checksum.fold(Checksum.pseudoHeader(source: f.source, destination: f.destination, protocolNumber: 6, length: f.end - f.transport))
        #expect(UInt16(out[50]) << 8 | UInt16(out[51]) == expected)
    }

    @Test func noNextHopIsCountedAndAsked() {
        var rig = Rig(method: "-g", servers: [Self.rs1])
        rig.hops = [:]
        let (action, _) = rig.handle(Self.syn())
        #expect(action == .drop(.noNextHop) && rig.missing == [Self.rs1])
    }

    @Test func theHopLimitRunsOutWithTimeExceeded() throws {
        var rig = Rig(method: "-g")
        let (action, out) = rig.handle(Self.syn(ttl: 1))
        guard case .send(_, _, let interface) = action else { Issue.record("no answer: \(action)"); return }
        #expect(interface == Self.front)
        let f = try parsed(out)
        #expect(f.protocolNumber == 1 && f.icmpType == 11 && f.source == Self.vip && f.destination == Self.client)
        #expect(rig.forwarder.counters.drops[PacketDrop.hopLimit.rawValue] == 1)
    }

    @Test func tooBigWithDFGetsFragmentationNeeded() throws {
        var rig = Rig(method: "-g")
        rig.hops[Self.rs1]!.mtu = 600
        rig.hops[Self.rs2]!.mtu = 600
        let (action, out) = rig.handle(Self.syn(payload: 1000))
        guard case .send = action else { Issue.record("no answer: \(action)"); return }
        let f = try parsed(out)
        #expect(f.icmpType == 3 && f.icmpCode == 4 && UInt16(out[40]) << 8 | UInt16(out[41]) == 600)
        var tunnelRig = Rig(method: "-i").withHops(mtu: 1040)
        let (tunnelled, tout) = tunnelRig.handle(Self.syn(payload: 1000))
        guard case .send = tunnelled else { Issue.record("no answer: \(tunnelled)"); return }
        #expect(UInt16(tout[40]) << 8 | UInt16(tout[41]) == 1020, "the tunnel's 20 bytes come off the MTU")
    }

    @Test func tunnellingWrapsTheDatagram() throws {
        var rig = Rig(method: "-i", servers: [Self.rs1])
        let frame = Self.syn()
        let (action, out) = rig.handle(frame)
        guard case .send = action else { Issue.record("not sent: \(action)"); return }
        let outer = try parsed(out)
        #expect(outer.protocolNumber == 4 && outer.source == IPAddress("172.16.0.1")! && outer.destination == Self.rs1)
        let inner = try #require(out.withUnsafeBytes { Tunnel.innerOffset($0, outer) })
        let f = try out.withUnsafeBytes { try Frame.parseIP($0, at: inner).get() }
        #expect(f.destination == Self.vip && f.hopLimit == 63)
    }

    @Test func aFullTableRefusesNewFlowsAndKeepsTheOld() {
        var rig = Rig(method: "-g", maxConnections: 2)
        for port: UInt16 in [1000, 1001] {
            guard case .send = rig.handle(Self.syn(from: port)).0 else { Issue.record("flow \(port) refused"); return }
        }
        #expect(rig.handle(Self.syn(from: 1002)).0 == .drop(.table))
        guard case .send = rig.handle(Self.syn(from: 1000, flags: 0x10)).0 else { Issue.record("an old flow stopped"); return }
    }

    @Test func packetsThatAreNotForAServiceAreLeftToTheKernel() {
        var rig = Rig(method: "-g")
        let other = FrameBuilder.tcp(sourceMAC: Self.clientMAC, destinationMAC: Self.frontMAC, source: Self.client,
                                     destination: IPAddress("207.175.44.111")!, sourcePort: 1, destinationPort: 8080, flags: 0x02)
        #expect(rig.handle(other).0 == .pass)
        let otherPort = FrameBuilder.tcp(sourceMAC: Self.clientMAC, destinationMAC: Self.frontMAC, source: Self.client,
                                         destination: Self.vip, sourcePort: 1, destinationPort: 8081, flags: 0x02)
        #expect(rig.handle(otherPort).0 == .pass)
        #expect(rig.handle([0x01, 0x02]).0 == .pass)
        var arp = Self.syn()
        arp[12] = 0x08; arp[13] = 0x06
        #expect(rig.handle(arp).0 == .pass)
        #expect(rig.handle(Self.syn(flags: 0x10)).0 == .drop(.notScheduled), "an ACK that starts nothing")
    }

    /// An ICMP error frame from `source` to `destination` quoting (the first 28 bytes of) `quoted`.
    static func icmpError(from source: IPAddress, to destination: IPAddress, quoting quoted: [UInt8], mac: MACAddress, to peer: MACAddress) -> [UInt8] {
        var icmp: [UInt8] = [3, 4, 0, 0, 0, 0, 0x05, 0xDC] + Array(quoted[14..<min(quoted.count, 14 + 28)])
        let sum = icmp.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: $0.count)) }
        icmp[2] = UInt8(sum >> 8); icmp[3] = UInt8(sum & 0xFF)
        var ip: [UInt8] = [0x45, 0] + FrameBuilder.be16(UInt16(20 + icmp.count)) + [0, 1, 0, 0, 64, 1, 0, 0]
            + FrameBuilder.be32(source.v4) + FrameBuilder.be32(destination.v4)
        let h = ip.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: 20)) }
        ip[10] = UInt8(h >> 8); ip[11] = UInt8(h & 0xFF)
        return peer.array + mac.array + [0x08, 0x00] + ip + icmp
    }

    @Test func icmpErrorsAboutANATConnectionAreTranslatedBothWays() throws {
        var rig = Rig(method: "-m", servers: [Self.rs1])
        guard case .send = rig.handle(Self.syn()).0 else { Issue.record("SYN not sent"); return }
        // A router on the client's side: a reply the director sent (VIP:8080 -> client) was too big.
        let sentToClient = FrameBuilder.tcp(sourceMAC: Self.frontMAC, destinationMAC: Self.clientMAC, source: Self.vip, destination: Self.client,
                                            sourcePort: 8080, destinationPort: 40000, flags: 0x12)
        let router = IPAddress("10.0.0.254")!
        let inbound = Self.icmpError(from: router, to: Self.vip, quoting: sentToClient, mac: Self.clientMAC, to: Self.frontMAC)
        let (a, out) = rig.handle(inbound)
        guard case .send(_, _, let interface) = a else { Issue.record("not forwarded: \(a)"); return }
        #expect(interface == Self.back)
        let f = try parsed(out)
        let q = try #require(out.withUnsafeBytes { ICMPMessage.quote($0, f) })
        #expect(f.destination == Self.rs1 && q.source == Self.rs1 && q.sourcePort == 80 && q.destination == Self.client)
        #expect(FrameBuilder.checksumsValid(out))
        // The real server's side: a segment forwarded to it (client -> 172.16.0.2:80) could not be delivered.
        let forwarded = FrameBuilder.tcp(sourceMAC: Self.backMAC, destinationMAC: Self.rs1MAC, source: Self.client, destination: Self.rs1,
                                         sourcePort: 40000, destinationPort: 80, flags: 0x10)
        let outbound = Self.icmpError(from: Self.rs1, to: Self.client, quoting: forwarded, mac: Self.rs1MAC, to: Self.backMAC)
        let (b, back) = rig.handle(outbound, from: Self.back)
        guard case .send(_, _, let toClient) = b else { Issue.record("not sent back: \(b)"); return }
        #expect(toClient == Self.front)
        let g = try parsed(back)
        let r = try #require(back.withUnsafeBytes { ICMPMessage.quote($0, g) })
        #expect(g.source == Self.vip && r.destination == Self.vip && r.destinationPort == 8080 && r.source == Self.client)
        #expect(rig.forwarder.counters.related == 2)
        // About nothing the table knows: the kernel's.
        let stray = Self.icmpError(from: router, to: Self.vip, quoting: FrameBuilder.tcp(sourceMAC: Self.frontMAC, destinationMAC: Self.clientMAC,
            source: Self.vip, destination: Self.client, sourcePort: 8080, destinationPort: 1, flags: 0x12), mac: Self.clientMAC, to: Self.frontMAC)
        #expect(rig.handle(stray).0 == .pass)
    }

    @Test func noRealServerAnswersPortUnreachable() throws {
        var rig = Rig(method: "-g", servers: [], udp: true)
        let datagram = FrameBuilder.udp(sourceMAC: Self.clientMAC, destinationMAC: Self.frontMAC, source: Self.client, destination: Self.vip,
                                        sourcePort: 5000, destinationPort: 8080)
        let (action, out) = rig.handle(datagram)
        guard case .send = action else { Issue.record("no answer: \(action)"); return }
        let f = try parsed(out)
        #expect(f.icmpType == 3 && f.icmpCode == 3)
    }
}

extension ForwarderTests.Rig {
    func withHops(mtu: Int) -> ForwarderTests.Rig {
        var r = self
        for k in r.hops.keys { r.hops[k]!.mtu = mtu }
        return r
    }
}

import ControlAPI

/// ipvsadm command lines applied to a table, as the director applies them.
struct IPVSAdmSessionShim {
    let session = IPVSAdmSession()

    func run(_ args: [String], on table: inout IPVS) {
        let out = session.run(["ipvsadm"] + args, on: &table, now: 0)
        precondition(out.exitCode == 0, "ipvsadm \(args): \(out.stderr)")
    }
}

/// Frames with correct checksums, for the forwarder's tests.
enum FrameBuilder {
    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xFFFF)) }

    static func ipv4(source: IPAddress, destination: IPAddress, protocolNumber: UInt8, transport: [UInt8], ttl: UInt8, dontFragment: Bool) -> [UInt8] {
        var t = transport
        let pseudo = Checksum.pseudoHeader(source: source, destination: destination, protocolNumber: protocolNumber, length: t.count)
        let at = protocolNumber == 6 ? 16 : 6
        t.withUnsafeMutableBytes { p in
            let sum = Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 0, count: p.count, initial: pseudo))
            p[at] = UInt8(sum >> 8); p[at + 1] = UInt8(sum & 0xFF)
        }
        var h: [UInt8] = [0x45, 0] + be16(UInt16(20 + t.count)) + [0, 1, dontFragment ? 0x40 : 0, 0, ttl, protocolNumber, 0, 0]
        h += be32(source.v4) + be32(destination.v4)
        let sum = h.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: 20)) }
        h[10] = UInt8(sum >> 8); h[11] = UInt8(sum & 0xFF)
        return h + t
    }

    static func tcp(sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPAddress, destination: IPAddress, sourcePort: UInt16,
                    destinationPort: UInt16, flags: UInt8, ttl: UInt8 = 64, payload: Int = 0, dontFragment: Bool = true) -> [UInt8] {
        let t = be16(sourcePort) + be16(destinationPort) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
            + [UInt8](repeating: 0x61, count: payload)
        return destinationMAC.array + sourceMAC.array + [0x08, 0x00]
            + ipv4(source: source, destination: destination, protocolNumber: 6, transport: t, ttl: ttl, dontFragment: dontFragment)
    }

    static func udp(sourceMAC: MACAddress, destinationMAC: MACAddress, source: IPAddress, destination: IPAddress, sourcePort: UInt16,
                    destinationPort: UInt16) -> [UInt8] {
        let t = be16(sourcePort) + be16(destinationPort) + be16(12) + [0, 0] + Array("ping".utf8)
        return destinationMAC.array + sourceMAC.array + [0x08, 0x00]
            + ipv4(source: source, destination: destination, protocolNumber: 17, transport: t, ttl: 64, dontFragment: false)
    }

    /// The IPv4 header and TCP/UDP/ICMP checksums of a frame are right.
    static func checksumsValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { b in
            guard case .success(let f) = Frame.parse(b) else { return false }
            let length = f.end - f.transport
            let pseudo = f.protocolNumber == 1 ? 0 : Checksum.pseudoHeader(source: f.source, destination: f.destination, protocolNumber: f.protocolNumber, length: length)
            return Checksum.fold(Checksum.sum(b, from: f.transport, count: length, initial: pseudo)) == 0xFFFF
        }
    }
}
