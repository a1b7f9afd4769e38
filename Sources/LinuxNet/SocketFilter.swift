import CLinux
import LVSCore

/// A classic BPF program for a packet socket that lets through only the frames the packet engine
/// may forward: IPv4 to one of the given destinations (the VIPs) or from one of the given sources
/// (NAT real servers, whose replies it rewrites), and IPv6 only when asked (all of it, then).
/// Everything else (ARP, traffic routed past the director, other hosts' flows) never reaches
/// the engine's socket, so the kernel neither copies it nor wakes the engine for it.
public enum SocketFilter {
    /// One instruction, in struct sock_filter's memory layout (code, jt, jf, k; little-endian).
    static func instruction(_ code: UInt16, _ jt: UInt8, _ jf: UInt8, _ k: UInt32) -> UInt64 {
        UInt64(code) | UInt64(jt) << 16 | UInt64(jf) << 24 | UInt64(k) << 32
    }

    static let loadHalf: UInt16 = 0x28, loadWord: UInt16 = 0x20, jumpEqual: UInt16 = 0x15, ret: UInt16 = 0x06

    /// More addresses than this and the filter lets all IPv4 through (BPF jumps reach 255 ahead).
    public static let maximumAddresses = 120

    /// The program: accepted frames whole (up to 256 KiB), the rest dropped. 802.1Q frames (a tag
    /// the NIC did not take off) are let through for the engine to read.
    public static func program(destinations: [IPAddress], sources: [IPAddress], acceptIPv6: Bool) -> [UInt64] {
        let v4d = Array(Set(destinations.filter { !$0.isV6 }.map(\.v4))).sorted()
        let v4s = Array(Set(sources.filter { !$0.isV6 }.map(\.v4))).sorted()
        let accept = instruction(ret, 0, 0, 0x40000)
        let drop = instruction(ret, 0, 0, 0)
        // 0 ethertype; 1 IPv4 -> 6; 2 802.1Q -> accept; 3 IPv6 -> accept or drop; 4 drop; 5 accept.
        let head = [instruction(loadHalf, 0, 0, 12), instruction(jumpEqual, 4, 0, 0x0800), instruction(jumpEqual, 2, 0, 0x8100),
                    instruction(jumpEqual, acceptIPv6 ? 1 : 0, 0, 0x86DD), drop, accept]
        if v4d.count + v4s.count > maximumAddresses { return head + [accept] }
        // The IPv4 part: load the destination, a match accepts; the source likewise; else drop.
        var v4: [UInt64] = []
        let acceptAt = 1 + v4d.count + 1 + v4s.count + 1
        v4.append(instruction(loadWord, 0, 0, 30))
        for a in v4d { v4.append(instruction(jumpEqual, UInt8(acceptAt - v4.count - 1), 0, a)) }
        v4.append(instruction(loadWord, 0, 0, 26))
        for a in v4s { v4.append(instruction(jumpEqual, UInt8(acceptAt - v4.count - 1), 0, a)) }
        v4.append(drop)
        v4.append(accept)
        return head + v4
    }

    /// Puts `program` on the socket (replacing any filter it had); the errno when refused.
    public static func attach(_ program: [UInt64], to fd: Int32) -> Int32 {
        program.withUnsafeBufferPointer { lvs_attach_filter(fd, $0.baseAddress, Int32($0.count)) }
    }
}
