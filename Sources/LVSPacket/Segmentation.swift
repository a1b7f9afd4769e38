import LVSCore

/// Cuts a TCP super-packet (what GRO or a sender's TSO hands over: one header, up to 64 KiB of
/// payload) into segments of at most `mss` payload bytes, as the kernel's tcp_gso_segment does:
/// each with the headers copied, its sequence number advanced, FIN and PSH only on the last, CWR
/// only on the first, IPv4 identification counting up, and every checksum complete. Used where
/// the kernel cannot cut it on the way out (inside a tunnel).
public enum TCPSegmentation {
    /// Writes the segments of the TCP frame `f` (in `b`) into `out`, segment i at
    /// `i * stride + headroom`, its length in `lengths[i]`. Returns how many, or nil when `f` is
    /// not TCP, `mss` is 0, or there is not room for them all.
    public static func segment(_ b: UnsafeRawBufferPointer, _ f: Frame, mss: Int, into out: UnsafeMutableRawBufferPointer, stride: Int,
                               headroom: Int, lengths: UnsafeMutablePointer<Int>, maximum: Int) -> Int? {
        guard f.protocolNumber == IPProtocolNumber.tcp, mss > 0, f.fragment == .none else { return nil }
        let tcpHeader = Int(b[f.transport + 12] >> 4) * 4
        let headers = f.transport + tcpHeader
        let payload = f.end - headers
        guard payload > 0 else { return nil }
        let count = (payload + mss - 1) / mss
        guard count <= maximum, headroom + headers + mss <= stride, count * stride <= out.count else { return nil }
        let sequence = b.u32(f.transport + 4)
        let flags = b[f.transport + 13]
        let identification = f.isV6 ? 0 : b.u16(f.network + 4)
        for i in 0..<count {
            let o = i * stride + headroom
            let chunk = min(mss, payload - i * mss)
            let s = UnsafeMutableRawBufferPointer(rebasing: out[o..<(o + headers + chunk)])
            s.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[0..<headers]))
            UnsafeMutableRawBufferPointer(rebasing: s[headers...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: b[(headers + i * mss)..<(headers + i * mss + chunk)]))
            let n = f.network, t = f.transport
            let ipLength = headers - n + chunk
            if f.isV6 {
                s.setU16(n + 4, UInt16(ipLength - 40))
            } else {
                s.setU16(n + 2, UInt16(ipLength))
                s.setU16(n + 4, identification &+ UInt16(truncatingIfNeeded: i))
                s.setU16(n + 10, 0)
                s.setU16(n + 10, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(s), from: n, count: t - n)))
            }
            s.setU32(t + 4, sequence &+ UInt32(i * mss))
            var segmentFlags = flags
            if i != count - 1 { segmentFlags &= ~0x09 }  // FIN, PSH
            if i != 0 { segmentFlags &= ~0x80 }  // CWR
            s[t + 13] = segmentFlags
            s.setU16(t + 16, 0)
            let length = tcpHeader + chunk
            let pseudo = Checksum.pseudoHeader(source: f.source, destination: f.destination, protocolNumber: IPProtocolNumber.tcp, length: length)
            s.setU16(t + 16, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(s), from: t, count: length, initial: pseudo)))
            lengths[i] = headers + chunk
        }
        return count
    }
}
