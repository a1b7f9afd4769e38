import LVSCore
import LVSPacket

/// The bytes a master puts on the wire besides the VRRP message itself: the IPv4 header of an
/// advert, gratuitous ARPs and unsolicited neighbour advertisements (keepalived's vrrp_arp.c and
/// vrrp_ndisc.c formats). Pure.
public enum VRRPFrames {
    /// An advert's IPv4 packet: TOS 0xC0 (internetwork control), TTL 255, no DF, protocol 112.
    public static func ipv4Packet(_ message: [UInt8], source: IPAddress, destination: IPAddress, identification: UInt16) -> [UInt8] {
        let total = 20 + message.count
        var h: [UInt8] = [0x45, 0xC0, UInt8(total >> 8), UInt8(total & 0xFF), UInt8(identification >> 8), UInt8(identification & 0xFF),
                          0, 0, 255, 112, 0, 0]
        h += source.networkBytes
        h += destination.networkBytes
        let sum = h.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: 20)) }
        h[10] = UInt8(sum >> 8)
        h[11] = UInt8(sum & 0xFF)
        return h + message
    }

    /// A gratuitous ARP: a broadcast request whose sender and target are both the address
    /// (target hardware ff:ff:ff:ff:ff:ff, as keepalived sends it).
    public static func gratuitousARP(mac: [UInt8], address: IPAddress) -> [UInt8] {
        let broadcast = [UInt8](repeating: 0xFF, count: 6)
        var f = broadcast + mac + [0x08, 0x06]
        f += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]
        f += mac + address.networkBytes + broadcast + address.networkBytes
        return f
    }

    /// An unsolicited neighbour advertisement (RFC 4861 §7.2.6) from the address itself to all
    /// nodes: override set, router set when the interface forwards, the target link-layer option.
    public static func unsolicitedNeighbourAdvertisement(mac: [UInt8], address: IPAddress, router: Bool) -> [UInt8] {
        let allNodes = IPAddress("ff02::1")!
        var icmp: [UInt8] = [136, 0, 0, 0, (router ? 0x80 : 0) | 0x20, 0, 0, 0]
        icmp += address.networkBytes
        icmp += [2, 1] + mac
        let pseudo = Checksum.pseudoHeader(source: address, destination: allNodes, protocolNumber: 58, length: icmp.count)
        let sum = icmp.withUnsafeBytes { Checksum.finish(Checksum.sum($0, from: 0, count: $0.count, initial: pseudo)) }
        icmp[2] = UInt8(sum >> 8)
        icmp[3] = UInt8(sum & 0xFF)
        var f: [UInt8] = [0x33, 0x33, 0, 0, 0, 1] + mac + [0x86, 0xDD]
        f += [0x60, 0, 0, 0, UInt8(icmp.count >> 8), UInt8(icmp.count & 0xFF), 58, 255]
        f += address.networkBytes + allNodes.networkBytes
        return f + icmp
    }

    /// The virtual router MAC of RFC 3768 §7.3 / RFC 5798 §7.3 (use_vmac).
    public static func virtualMAC(vrid: UInt8, v6: Bool) -> [UInt8] {
        [0x00, 0x00, 0x5E, 0x00, v6 ? 0x02 : 0x01, vrid]
    }
}
