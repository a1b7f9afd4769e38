import LVSCore

/// IPv4 reassembly, as the kernel's defragmentation does it before IPVS sees a datagram
/// (net/ipv4/ip_fragment.c): fragments are kept by source, destination, identification and
/// protocol until every 8-byte block up to the last fragment's end has arrived, then given back as
/// one datagram (the first fragment's header, MF and offset cleared). Overlaps that disagree are
/// not repaired: the later bytes win, as the kernel's do. A datagram not complete within the
/// timeout (the kernel's ipfrag_time, 30 s) is forgotten; so is the oldest when `maximum` are open.
public struct IPv4Reassembler {
    struct Key: Hashable {
        var source: UInt32
        var destination: UInt32
        var identification: UInt16
        var protocolNumber: UInt8
    }

    struct Entry {
        var header: [UInt8] = []
        var payload = [UInt8](repeating: 0, count: 65536)
        /// One bit per 8-byte block received.
        var blocks = [UInt64](repeating: 0, count: 65536 / 8 / 64)
        var end: Int?
        var deadline: Int64
        var started: Int64
    }

    private var entries: [Key: Entry] = [:]
    public let maximum: Int
    public let timeout: Int64
    /// Datagrams given up on (timed out, or pushed out by newer ones).
    public private(set) var abandoned = 0

    public init(maximum: Int = 1024, timeout: Int64 = 30_000_000_000) {
        self.maximum = maximum
        self.timeout = timeout
    }

    public var pending: Int { entries.count }

    /// Adds the fragment `f` (read from `b`); the whole datagram (IP header and payload) once the
    /// last piece is in, else nil. A fragment whose pieces do not fit a datagram is dropped.
    public mutating func add(_ b: UnsafeRawBufferPointer, _ f: Frame, now: Int64) -> [UInt8]? {
        guard !f.isV6, f.fragment != .none else { return nil }
        expire(now: now)
        let n = f.network
        let flags = b.u16(n + 6)
        let offset = Int(flags & 0x1FFF) * 8
        let more = flags & 0x2000 != 0
        let headerLength = f.transport - n
        let data = f.end - f.transport
        guard offset + data <= 65535 - headerLength, more ? data % 8 == 0 && data > 0 : true else { return nil }
        let key = Key(source: f.source.v4, destination: f.destination.v4, identification: b.u16(n + 4), protocolNumber: f.protocolNumber)
        if entries[key] == nil {
            if entries.count >= maximum, let oldest = entries.min(by: { $0.value.started < $1.value.started })?.key {
                entries[oldest] = nil
                abandoned += 1
            }
            entries[key] = Entry(deadline: now + timeout, started: now)
        }
        // Out of the table while it is changed, so its 64 KiB are not copied.
        var e = entries.removeValue(forKey: key)!
        if offset == 0 { e.header = Array(b[n..<(n + headerLength)]) }
        if !more {
            // Two different ends: a corrupt datagram.
            if let end = e.end, end != offset + data { return nil }
            e.end = offset + data
        }
        for i in 0..<data { e.payload[offset + i] = b[f.transport + i] }
        var block = offset / 8
        while block * 8 < offset + data {
            e.blocks[block >> 6] |= 1 << UInt64(block & 63)
            block += 1
        }
        guard let end = e.end, !e.header.isEmpty, Self.complete(e.blocks, upTo: end) else {
            entries[key] = e
            return nil
        }
        var datagram = e.header + e.payload[0..<end]
        let total = UInt16(datagram.count)
        datagram.withUnsafeMutableBytes { p in
            p.setU16(2, total)
            p.setU16(6, p.u16(6) & 0x4000)
            p.setU16(10, 0)
            p.setU16(10, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(p), from: 0, count: e.header.count)))
        }
        return datagram
    }

    static func complete(_ blocks: [UInt64], upTo end: Int) -> Bool {
        let count = (end + 7) / 8
        for block in 0..<count where blocks[block >> 6] & (1 << UInt64(block & 63)) == 0 { return false }
        return true
    }

    /// Forgets the datagrams past their time.
    public mutating func expire(now: Int64) {
        guard entries.contains(where: { $0.value.deadline <= now }) else { return }
        let before = entries.count
        entries = entries.filter { $0.value.deadline > now }
        abandoned += before - entries.count
    }
}

/// IPv4 fragmentation on the way out (ip_fragment): a datagram without DF that is larger than the
/// path's MTU goes as fragments of at most `mtu` bytes, each with the datagram's header (options
/// not copied into later fragments are kept: IPVS's real servers see the same), offsets in 8-byte
/// units and MF on all but the last.
public enum IPv4Fragmentation {
    /// Writes the fragments of the frame `f` in `b` into `out` (fragment i at `i * stride +
    /// headroom`, Ethernet header included), their lengths in `lengths`. How many; nil when it
    /// cannot (IPv6, DF, too many).
    public static func fragment(_ b: UnsafeRawBufferPointer, _ f: Frame, mtu: Int, into out: UnsafeMutableRawBufferPointer, stride: Int,
                                headroom: Int, lengths: UnsafeMutablePointer<Int>, maximum: Int) -> Int? {
        guard !f.isV6, !f.dontFragment else { return nil }
        let headerLength = f.transport - f.network
        let room = (mtu - headerLength) / 8 * 8
        guard room >= 8 else { return nil }
        let payload = f.end - f.transport
        let count = (payload + room - 1) / room
        let original = Int(b.u16(f.network + 6) & 0x1FFF) * 8
        let originalMore = b.u16(f.network + 6) & 0x2000 != 0
        guard count <= maximum, headroom + f.network + headerLength + room <= stride, count * stride <= out.count else { return nil }
        for i in 0..<count {
            let o = i * stride + headroom
            let chunk = min(room, payload - i * room)
            let length = f.network + headerLength + chunk
            let s = UnsafeMutableRawBufferPointer(rebasing: out[o..<(o + length)])
            s.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[0..<(f.network + headerLength)]))
            UnsafeMutableRawBufferPointer(rebasing: s[(f.network + headerLength)...])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: b[(f.transport + i * room)..<(f.transport + i * room + chunk)]))
            let n = f.network
            let more = i < count - 1 || originalMore
            s.setU16(n + 2, UInt16(headerLength + chunk))
            s.setU16(n + 6, UInt16((original + i * room) / 8) | (more ? 0x2000 : 0))
            s.setU16(n + 10, 0)
            s.setU16(n + 10, Checksum.finish(Checksum.sum(UnsafeRawBufferPointer(s), from: n, count: headerLength)))
            lengths[i] = length
        }
        return count
    }
}
