import LVSCore
import Testing
@testable import LVSPacket

@Suite struct RewriteTests {
    static let rip = IPAddress("172.16.0.2")!
    static let vip = IPAddress("207.175.44.110")!

    /// Applies `edit` to the frame and returns the bytes and the re-read frame.
    func edited(_ bytes: [UInt8], _ edit: (UnsafeMutableRawBufferPointer, inout Frame) -> Void) -> ([UInt8], Frame) {
        var copy = bytes
        copy.withUnsafeMutableBytes { p in
            guard case .success(var f) = Frame.parse(UnsafeRawBufferPointer(p)) else { Issue.record("unreadable"); return }
            edit(p, &f)
        }
        let f = try! copy.withUnsafeBytes { Frame.parse($0) }.get()
        return (copy, f)
    }

    static let builders: [PacketBuilder] = [
        PacketBuilder(),
        PacketBuilder(protocolNumber: IPProtocolNumber.udp),
        PacketBuilder(protocolNumber: IPProtocolNumber.udp, udpChecksum: false),
        PacketBuilder(protocolNumber: IPProtocolNumber.sctp),
        PacketBuilder(options: [1, 1, 1, 0]),
        PacketBuilder(payload: Array(repeating: 0xAB, count: 1001)),
    ]

    @Test(arguments: builders) func natTowardTheRealServerKeepsEveryChecksumRight(_ b: PacketBuilder) {
        let (bytes, f) = edited(b.frame()) { p, f in Rewrite.setDestination(p, &f, address: Self.rip, port: 80) }
        #expect(f.destination == Self.rip && f.destinationPort == 80 && f.source == b.source && f.sourcePort == b.sourcePort)
        #expect(checksumsValid(bytes))
        if !b.udpChecksum { #expect(bytes[14 + 20 + 6] == 0 && bytes[14 + 20 + 7] == 0, "a UDP datagram without checksum stays without") }
        let (back, g) = edited(bytes) { p, f in Rewrite.setDestination(p, &f, address: b.destination, port: b.destinationPort) }
        #expect(g.destination == b.destination && back == b.frame(), "undoing the rewrite gives the original bytes")
    }

    @Test func natOfRepliesAndOfIPv6() {
        let reply = PacketBuilder(source: Self.rip, destination: IPAddress("10.0.0.2")!, sourcePort: 80, destinationPort: 40000, flags: 0x12)
        let (bytes, f) = edited(reply.frame()) { p, f in Rewrite.setSource(p, &f, address: Self.vip, port: 8080) }
        #expect(f.source == Self.vip && f.sourcePort == 8080 && checksumsValid(bytes))
        for proto in [IPProtocolNumber.tcp, IPProtocolNumber.udp] {
            let v6 = PacketBuilder(source: IPAddress("2001:db8::2")!, destination: IPAddress("2001:db8::100")!, protocolNumber: proto)
            let (b6, g) = edited(v6.frame()) { p, f in Rewrite.setDestination(p, &f, address: IPAddress("2001:db8:1::7")!, port: 80) }
            #expect(g.destination == IPAddress("2001:db8:1::7")! && checksumsValid(b6))
        }
    }

    @Test func theHopLimitDropsByOneAndStopsAtOne() {
        let (bytes, f) = edited(PacketBuilder().frame()) { p, f in #expect(Rewrite.decrementHopLimit(p, &f)) }
        #expect(f.hopLimit == 63, "the IPv4 header checksum is checked by the parser")
        #expect(checksumsValid(bytes))
        _ = edited(PacketBuilder(ttl: 1).frame()) { p, f in #expect(!Rewrite.decrementHopLimit(p, &f)) }
        let (_, g) = edited(PacketBuilder(source: IPAddress("2001:db8::2")!, destination: IPAddress("2001:db8::1")!, ttl: 2).frame()) { p, f in
            #expect(Rewrite.decrementHopLimit(p, &f))
        }
        #expect(g.hopLimit == 1)
    }

    @Test func directRoutingChangesOnlyTheMACs() {
        let original = PacketBuilder().frame()
        let rs = MACAddress(0x52, 0x54, 0, 0x12, 0x34, 0x56), me = MACAddress(0x52, 0x54, 0, 0xAA, 0xBB, 0xCC)
        let (bytes, _) = edited(original) { p, _ in Rewrite.setMACs(p, destination: rs, source: me) }
        #expect(Array(bytes[0..<6]) == rs.array && Array(bytes[6..<12]) == me.array)
        #expect(Array(bytes[12...]) == Array(original[12...]))
    }

    @Test func aPartialChecksumIsCompleted() {
        var bytes = PacketBuilder(payload: Array(repeating: 7, count: 33)).frame()
        bytes[50] = 0x12; bytes[51] = 0x34
        #expect(!checksumsValid(bytes))
        let (fixed, _) = edited(bytes) { p, f in Rewrite.completeTransportChecksum(p, f) }
        #expect(checksumsValid(fixed))
    }
}

@Suite struct TunnelTests {
    static let kinds: [Tunnel.Kind] = [.ipip, .gue(port: 6080, checksum: false), .gue(port: 6080, checksum: true), .gre(checksum: false), .gre(checksum: true)]

    @Test(arguments: kinds) func encapsulationWrapsTheDatagramAndCanBeUnwrapped(_ kind: Tunnel.Kind) throws {
        let inner = PacketBuilder(payload: Array(repeating: 1, count: 100)).frame()
        let headroom = 64
        var buffer = [UInt8](repeating: 0, count: headroom) + inner
        let director = IPAddress("172.16.0.1")!, rs = IPAddress("172.16.0.2")!
        let result = buffer.withUnsafeMutableBytes { p -> (start: Int, length: Int)? in
            let f = try! Frame.parse(UnsafeRawBufferPointer(rebasing: p[headroom...])).get()
            return Tunnel.encapsulate(p, f.moved(by: headroom), kind: kind, source: director, destination: rs, identification: 7, flowHash: 0xBEEF,
                                      destinationMAC: MACAddress(2, 0, 0, 0, 0, 9), sourceMAC: MACAddress(2, 0, 0, 0, 0, 8))
        }
        let (start, length) = try #require(result)
        let frame = Array(buffer[start..<(start + length)])
        let outer = try frame.withUnsafeBytes { try Frame.parse($0).get() }
        #expect(outer.source == director && outer.destination == rs && outer.hopLimit == 64 && outer.dontFragment)
        #expect(length == 14 + Tunnel.overhead(kind) + inner.count - 14)
        if case .gue(_, let checksum) = kind {
            #expect(outer.protocolNumber == IPProtocolNumber.udp && outer.destinationPort == 6080)
            if checksum { #expect(checksumsValid(frame)) } else { #expect(frame[14 + 20 + 6] == 0 && frame[14 + 20 + 7] == 0) }
        }
        if case .gre(true) = kind {
            #expect(frame.withUnsafeBytes { Checksum.fold(Checksum.sum($0, from: 34, count: length - 34)) } == 0xFFFF)
        }
        let at = try #require(frame.withUnsafeBytes { Tunnel.innerOffset($0, outer, guePort: 6080) })
        #expect(Array(frame[at...]) == Array(inner[14...]), "the inner datagram is untouched")
    }

    @Test func tooLittleHeadroomIsRefused() {
        var bytes = PacketBuilder().frame()
        let r = bytes.withUnsafeMutableBytes { p -> (start: Int, length: Int)? in
            let f = try! Frame.parse(UnsafeRawBufferPointer(p)).get()
            return Tunnel.encapsulate(p, f, kind: .ipip, source: IPAddress("1.1.1.1")!, destination: IPAddress("2.2.2.2")!, identification: 0,
                                      flowHash: 0, destinationMAC: .zero, sourceMAC: .zero)
        }
        #expect(r == nil)
    }
}

@Suite struct ICMPTests {
    static let me = IPAddress("10.0.0.1")!

    @Test func fragmentationNeededQuotesTheDatagram() throws {
        let big = PacketBuilder(payload: Array(repeating: 3, count: 1400)).frame()
        var out = [UInt8](repeating: 0, count: 2048)
        let length = try #require(big.withUnsafeBytes { b in
            out.withUnsafeMutableBytes { o in
                ICMPMessage.write(.tooBig(mtu: 1480), about: try! Frame.parse(b).get(), in: b, from: Self.me, sourceMAC: MACAddress(2, 0, 0, 0, 0, 5), into: o)
            }
        })
        #expect(length == 14 + 576)
        let reply = Array(out[..<length])
        let f = try reply.withUnsafeBytes { try Frame.parse($0).get() }
        #expect(f.protocolNumber == 1 && f.icmpType == 3 && f.icmpCode == 4 && f.destination == IPAddress("10.0.0.2")! && f.source == Self.me)
        #expect(reply[40] == 0x05 && reply[41] == 0xC8, "next-hop MTU 1480")
        #expect(Array(reply[0..<6]) == Array(big[6..<12]), "back to the sender's MAC")
        #expect(checksumsValid(reply))
        let q = try #require(reply.withUnsafeBytes { ICMPMessage.quote($0, f) })
        #expect(q.source == IPAddress("10.0.0.2")! && q.destinationPort == 8080 && q.hasPorts)
    }

    @Test func ipv6PacketTooBigAndTimeExceeded() throws {
        let b6 = PacketBuilder(source: IPAddress("2001:db8::2")!, destination: IPAddress("2001:db8::100")!, payload: Array(repeating: 1, count: 1500)).frame()
        var out = [UInt8](repeating: 0, count: 2048)
        let length = try #require(b6.withUnsafeBytes { b in
            out.withUnsafeMutableBytes { o in
                ICMPMessage.write(.tooBig(mtu: 1400), about: try! Frame.parse(b).get(), in: b, from: IPAddress("2001:db8::1")!, sourceMAC: .zero, into: o)
            }
        })
        #expect(length == 14 + 1280)
        #expect(checksumsValid(Array(out[..<length])))
        let small = PacketBuilder(ttl: 1).frame()
        let l2 = try #require(small.withUnsafeBytes { b in
            out.withUnsafeMutableBytes { o in
                ICMPMessage.write(.timeExceeded, about: try! Frame.parse(b).get(), in: b, from: Self.me, sourceMAC: .zero, into: o)
            }
        })
        #expect(l2 == 14 + 20 + 8 + small.count - 14 && out[34] == 11 && checksumsValid(Array(out[..<l2])))
    }

    @Test func noErrorsAboutErrorsOrLaterFragments() throws {
        let error = PacketBuilder(protocolNumber: IPProtocolNumber.icmp, payload: [3, 1, 0, 0, 0, 0, 0, 0]).frame()
        let echo = PacketBuilder(protocolNumber: IPProtocolNumber.icmp, payload: [8, 0, 0, 0, 0, 1, 0, 1]).frame()
        #expect(!error.withUnsafeBytes { ICMPMessage.mayAnswer($0, try! Frame.parse($0).get()) })
        #expect(echo.withUnsafeBytes { ICMPMessage.mayAnswer($0, try! Frame.parse($0).get()) })
        #expect(PacketBuilder().frame().withUnsafeBytes { ICMPMessage.mayAnswer($0, try! Frame.parse($0).get()) })
    }

    @Test func relatedErrorsAreTranslatedBothWays() throws {
        // The real server (172.16.0.2:80) reports a problem with a segment the client sent it
        // (10.0.0.2:40000, after NAT).
        let quoted = PacketBuilder(source: IPAddress("10.0.0.2")!, destination: IPAddress("172.16.0.2")!, sourcePort: 40000, destinationPort: 80).ipBytes()
        let error = PacketBuilder(source: IPAddress("172.16.0.2")!, destination: IPAddress("10.0.0.2")!, protocolNumber: IPProtocolNumber.icmp,
                                  payload: [3, 3, 0, 0, 0, 0, 0, 0] + Array(quoted.prefix(28))).frame()
        var bytes = error
        bytes.withUnsafeMutableBytes { p in
            var f = try! Frame.parse(UnsafeRawBufferPointer(p)).get()
            let q = ICMPMessage.quote(UnsafeRawBufferPointer(p), f)!
            #expect(q.destination == IPAddress("172.16.0.2")! && q.destinationPort == 80)
            // Out to the client: it must look like it is about the virtual service 207.175.44.110:8080.
            ICMPMessage.translate(p, &f, q, inbound: false, address: RewriteTests.vip, port: 8080)
        }
        #expect(checksumsValid(bytes))
        let f = try bytes.withUnsafeBytes { try Frame.parse($0).get() }
        let q = try #require(bytes.withUnsafeBytes { ICMPMessage.quote($0, f) })
        #expect(f.source == RewriteTests.vip && q.destination == RewriteTests.vip && q.destinationPort == 8080)
        #expect(q.source == IPAddress("10.0.0.2")! && q.sourcePort == 40000)
        let quotedHeaderValid = bytes.withUnsafeBytes { Checksum.fold(Checksum.sum($0, from: q.network, count: 20)) == 0xFFFF }
        #expect(quotedHeaderValid)
    }
}
