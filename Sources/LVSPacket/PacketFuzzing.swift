import LVSCore

/// What the fuzzer (Fuzz/PacketFuzzer) and the corpus regression test run on each input: read it
/// as a frame and, when it reads, put it through every rewrite, checking that none reaches outside
/// the frame and that a rewritten frame still reads. A failed check traps.
public enum PacketFuzzing {
    public static func exercise(_ input: UnsafeRawBufferPointer) {
        guard case .success(let frame) = Frame.parse(input) else { return }
        precondition(frame.network <= frame.transport && frame.transport <= frame.end && frame.end <= input.count)
        let headroom = 64
        let room = headroom + input.count + 1600
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: room, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let seed = input.count > 0 ? input[input.count - 1] : 0

        func load() -> Frame {
            UnsafeMutableRawBufferPointer(rebasing: buffer[headroom..<(headroom + input.count)]).copyMemory(from: input)
            return frame.moved(by: headroom)
        }
        let frameView = UnsafeMutableRawBufferPointer(rebasing: buffer[headroom..<(headroom + input.count)])

        // NAT both ways, with and without a partial checksum; the frame must still read.
        for partial in [false, true] {
            var f = load()
            let other = frame.isV6 ? IPAddress(v6High: 0x2001_0db8_0000_0000, low: UInt64(seed)) : IPAddress(v4: 0x0A00_0000 | UInt32(seed))
            Rewrite.setDestination(buffer, &f, address: other, port: UInt16(seed) << 8 | 1, partial: partial)
            Rewrite.setSource(buffer, &f, address: other, port: 80, partial: partial)
            _ = Rewrite.decrementHopLimit(buffer, &f)
            Rewrite.completeTransportChecksum(buffer, f)
            guard case .success(let again) = Frame.parse(UnsafeRawBufferPointer(frameView)) else { preconditionFailure("a rewritten frame no longer reads") }
            precondition(again.destination == other && again.source == other)
        }

        // ICMP: quote and translate an error; write errors about the frame.
        do {
            var f = load()
            if let q = ICMPMessage.quote(UnsafeRawBufferPointer(buffer), f) {
                precondition(q.network >= f.transport && q.transport <= f.end + 40)
                ICMPMessage.translate(buffer, &f, q, inbound: seed & 1 == 0, address: frame.isV6 ? .anyV6 : .anyV4, port: 1)
            }
            let out = UnsafeMutableRawBufferPointer(rebasing: buffer[(headroom + input.count)...])
            let rel = frame
            for e in [ICMPMessage.Error.tooBig(mtu: 1280 + Int(seed)), .timeExceeded, .portUnreachable] {
                if let n = ICMPMessage.write(e, about: rel, in: input, from: frame.destination, sourceMAC: .zero, into: out) {
                    precondition(n <= out.count)
                }
            }
            _ = ICMPMessage.mayAnswer(input, frame)
        }

        // Tunnels: wrap and find the inner datagram again.
        for kind in [Tunnel.Kind.ipip, .gue(port: 6080, checksum: true), .gre(checksum: seed & 2 != 0)] where !frame.isV6 || kind == .ipip {
            let f = load()
            guard let (start, length) = Tunnel.encapsulate(buffer, f, kind: kind, source: IPAddress(v4: 1), destination: IPAddress(v4: 2),
                                                            identification: 1, flowHash: UInt32(seed), destinationMAC: .zero, sourceMAC: .zero) else { continue }
            precondition(start >= 0 && start + length <= room)
            let wrapped = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[start..<(start + length)])
            if case .success(let outer) = Frame.parse(wrapped) {
                if let inner = Tunnel.innerOffset(wrapped, outer, guePort: 6080) { precondition(inner < length) }
            }
        }
        _ = Tunnel.innerOffset(input, frame, guePort: UInt16(seed))

        // Reassembly of a fragment (twice: a duplicate), and fragmentation of what has no DF.
        if frame.fragment != .none {
            var r = IPv4Reassembler(maximum: 4)
            _ = r.add(input, frame, now: 0)
            if let whole = r.add(input, frame, now: 1) { precondition(whole.count <= 65535 + 60) }
        }
        if !frame.dontFragment && !frame.isV6 {
            let stride = 2048
            let out = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * 16, alignment: 16)
            defer { out.deallocate() }
            let lengths = UnsafeMutablePointer<Int>.allocate(capacity: 16)
            defer { lengths.deallocate() }
            if let count = IPv4Fragmentation.fragment(input, frame, mtu: 68 + Int(seed), into: out, stride: stride, headroom: 16,
                                                      lengths: lengths, maximum: 16) {
                for i in 0..<count {
                    let s = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out)[(i * stride + 16)..<(i * stride + 16 + lengths[i])])
                    guard case .success = Frame.parse(s) else { preconditionFailure("a fragment does not read") }
                }
            }
        }

        // Segmentation of whatever TCP payload there is, with a small MSS from the input.
        if frame.protocolNumber == IPProtocolNumber.tcp {
            let stride = 2048
            let out = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * 8, alignment: 16)
            defer { out.deallocate() }
            let lengths = UnsafeMutablePointer<Int>.allocate(capacity: 8)
            defer { lengths.deallocate() }
            if let count = TCPSegmentation.segment(input, frame, mss: Int(seed % 200) + 1, into: out, stride: stride, headroom: 64,
                                                   lengths: lengths, maximum: 8) {
                for i in 0..<count {
                    precondition(64 + lengths[i] <= stride)
                    let s = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out)[(i * stride + 64)..<(i * stride + 64 + lengths[i])])
                    guard case .success = Frame.parse(s) else { preconditionFailure("a segment does not read") }
                }
            }
        }
    }
}
