import CLinux
import LVSCore

#if canImport(Glibc)
import Glibc
#endif

/// A route-netlink (rtnetlink) socket for the questions the packet engine asks the kernel: which
/// interface and next hop reach an address, the Ethernet address of a neighbour, an interface's
/// own address and MTU; and the addresses `lvsd realserver` puts on an interface. Blocking, one
/// request at a time: call it off the packet path.
public final class RouteNetlink {
    let fd: Int32
    private var sequence: UInt32 = 1

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init() throws {
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw Failure(description: "netlink socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    // MARK: Messages

    static let getLink: UInt16 = 18, newAddress: UInt16 = 20, deleteAddress: UInt16 = 21, getAddress: UInt16 = 22
    static let getRoute: UInt16 = 26, getNeighbour: UInt16 = 30
    static let request: UInt16 = 1, acknowledge: UInt16 = 4, dump: UInt16 = 0x300, replace: UInt16 = 0x100, create: UInt16 = 0x400

    /// One attribute: type and value, padded to 4 bytes.
    static func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
        let length = 4 + value.count
        var a = le16(UInt16(length)) + le16(type) + value
        while a.count % 4 != 0 { a.append(0) }
        return a
    }

    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { le16(UInt16(v & 0xFFFF)) + le16(UInt16(v >> 16)) }

    /// Sends one request and collects the answers (several for a dump) as (type, body) pairs.
    func exchange(_ type: UInt16, flags: UInt16, body: [UInt8]) throws -> [(type: UInt16, body: ArraySlice<UInt8>)] {
        sequence &+= 1
        let seq = sequence
        let message = Self.le32(UInt32(16 + body.count)) + Self.le16(type) + Self.le16(flags | Self.request) + Self.le32(seq) + Self.le32(0) + body
        // No address: an unconnected netlink socket sends to the kernel.
        let sent = message.withUnsafeBytes { m in send(fd, m.baseAddress, m.count, 0) }
        guard sent == message.count else { throw Failure(description: "netlink send: \(String(cString: strerror(errno)))") }
        var answers: [(UInt16, ArraySlice<UInt8>)] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure(description: "netlink receive: \(String(cString: strerror(errno)))") }
            var at = 0
            while at + 16 <= n {
                let length = Int(UInt32(buffer[at]) | UInt32(buffer[at + 1]) << 8 | UInt32(buffer[at + 2]) << 16 | UInt32(buffer[at + 3]) << 24)
                let kind = UInt16(buffer[at + 4]) | UInt16(buffer[at + 5]) << 8
                let replySeq = UInt32(buffer[at + 8]) | UInt32(buffer[at + 9]) << 8 | UInt32(buffer[at + 10]) << 16 | UInt32(buffer[at + 11]) << 24
                guard length >= 16, at + length <= n else { break }
                if replySeq == seq {
                    switch kind {
                    case 3: // NLMSG_DONE
                        return answers
                    case 2: // NLMSG_ERROR: 0 is an acknowledgement
                        let code = Int32(bitPattern: UInt32(buffer[at + 16]) | UInt32(buffer[at + 17]) << 8 | UInt32(buffer[at + 18]) << 16 | UInt32(buffer[at + 19]) << 24)
                        if code == 0 { return answers }
                        throw Failure(description: String(cString: strerror(-code)))
                    default:
                        answers.append((kind, buffer[(at + 16)..<(at + length)]))
                        if flags & Self.dump == 0 && flags & Self.acknowledge == 0 { return answers }
                    }
                }
                at += (length + 3) & ~3
            }
        }
    }

    /// The attributes after a fixed header of `skip` bytes.
    static func attributes(_ body: ArraySlice<UInt8>, skip: Int) -> [UInt16: ArraySlice<UInt8>] {
        var result: [UInt16: ArraySlice<UInt8>] = [:]
        var at = body.startIndex + skip
        while at + 4 <= body.endIndex {
            let length = Int(UInt16(body[at]) | UInt16(body[at + 1]) << 8)
            let type = (UInt16(body[at + 2]) | UInt16(body[at + 3]) << 8) & 0x3FFF
            guard length >= 4, at + length <= body.endIndex else { break }
            result[type] = body[(at + 4)..<(at + length)]
            at += (length + 3) & ~3
        }
        return result
    }

    static func int32(_ b: ArraySlice<UInt8>?) -> Int32? {
        guard let b, b.count >= 4 else { return nil }
        let s = b.startIndex
        return Int32(bitPattern: UInt32(b[s]) | UInt32(b[s + 1]) << 8 | UInt32(b[s + 2]) << 16 | UInt32(b[s + 3]) << 24)
    }

    // MARK: Questions

    /// How the kernel would send a packet to `destination`.
    public struct Route: Sendable, Hashable {
        public var interface: Int32
        /// The next hop when it is not the destination itself.
        public var gateway: IPAddress?
        /// The address the kernel would send from.
        public var preferredSource: IPAddress?
        /// The route's own MTU, when it has one (the interface's otherwise).
        public var mtu: Int?
        /// The destination is one of this host's addresses.
        public var isLocal: Bool
    }

    public func route(to destination: IPAddress) throws -> Route {
        let family: UInt8 = destination.isV6 ? UInt8(AF_INET6) : UInt8(AF_INET)
        let length: UInt8 = destination.isV6 ? 128 : 32
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
        let header: [UInt8] = [family, length, 0, 0, 0, 0, 0, 0] + Self.le32(0)
        let answers = try exchange(Self.getRoute, flags: 0, body: header + Self.attribute(1 /* RTA_DST */, destination.networkBytes))
        guard let answer = answers.first, answer.body.count >= 12 else { throw Failure(description: "no route to \(destination)") }
        let a = Self.attributes(answer.body, skip: 12)
        let type = answer.body[answer.body.startIndex + 7]
        guard let oif = Self.int32(a[4 /* RTA_OIF */]) else { throw Failure(description: "no route to \(destination)") }
        var mtu: Int?
        if let metrics = a[8 /* RTA_METRICS */] {
            let m = Self.attributes(metrics, skip: 0)
            if let v = Self.int32(m[2 /* RTAX_MTU */]), v > 0 { mtu = Int(v) }
        }
        return Route(interface: oif, gateway: a[5 /* RTA_GATEWAY */].flatMap { IPAddress(networkBytes: $0) },
                     preferredSource: a[7 /* RTA_PREFSRC */].flatMap { IPAddress(networkBytes: $0) }, mtu: mtu, isLocal: type == 2 /* RTN_LOCAL */)
    }

    /// A neighbour's Ethernet address on `interface`, when the kernel has one that is usable
    /// (reachable, stale, delay, probe or permanent).
    public func neighbour(_ address: IPAddress, on interface: Int32) throws -> [UInt8]? {
        let family: UInt8 = address.isV6 ? UInt8(AF_INET6) : UInt8(AF_INET)
        // struct ndmsg: family, pad1, pad2 (u16), ifindex (i32), state (u16), flags, type.
        let header: [UInt8] = [family, 0, 0, 0] + Self.le32(UInt32(bitPattern: interface)) + [0, 0, 0, 0]
        let answers = try exchange(Self.getNeighbour, flags: Self.dump, body: header)
        let wanted = address.networkBytes
        for answer in answers where answer.body.count >= 12 {
            let b = answer.body
            let s = b.startIndex
            let index = Self.int32(b[(s + 4)..<(s + 8)])
            let state = UInt16(b[s + 8]) | UInt16(b[s + 9]) << 8
            guard index == interface else { continue }
            let a = Self.attributes(b, skip: 12)
            guard let dst = a[1 /* NDA_DST */], Array(dst) == wanted else { continue }
            // NUD_INCOMPLETE 0x01 and NUD_FAILED 0x20 have no usable address.
            guard state & 0xDE != 0, let mac = a[2 /* NDA_LLADDR */], mac.count == 6 else { return nil }
            return Array(mac)
        }
        return nil
    }

    /// An interface's name, Ethernet address and MTU.
    public struct Link: Sendable, Hashable {
        public var index: Int32
        public var name: String
        public var mac: [UInt8]
        public var mtu: Int
        public var isUp: Bool
        /// IFF_RUNNING: it has carrier (keepalived's "up" is up and running).
        public var isRunning: Bool
    }

    public func link(_ index: Int32) throws -> Link {
        // struct ifinfomsg: family, pad, type (u16), index (i32), flags (u32), change (u32).
        let header: [UInt8] = [0, 0, 0, 0] + Self.le32(UInt32(bitPattern: index)) + Self.le32(0) + Self.le32(0)
        let answers = try exchange(Self.getLink, flags: 0, body: header)
        guard let answer = answers.first, answer.body.count >= 16 else { throw Failure(description: "no interface \(index)") }
        let a = Self.attributes(answer.body, skip: 16)
        let flags = Self.int32(answer.body[(answer.body.startIndex + 8)..<(answer.body.startIndex + 12)]) ?? 0
        let name = a[3 /* IFLA_IFNAME */].map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } ?? "if\(index)"
        return Link(index: index, name: name, mac: a[1 /* IFLA_ADDRESS */].map(Array.init) ?? [], mtu: Int(Self.int32(a[4 /* IFLA_MTU */]) ?? 1500),
                    isUp: flags & 1 != 0, isRunning: flags & 0x40 != 0)
    }

    /// The addresses on an interface (with their prefix lengths).
    public func addresses(on index: Int32) throws -> [(address: IPAddress, prefix: Int)] {
        let header: [UInt8] = [0, 0, 0, 0] + Self.le32(0)
        var result: [(IPAddress, Int)] = []
        for answer in try exchange(Self.getAddress, flags: Self.dump, body: header) where answer.body.count >= 8 {
            let b = answer.body
            let s = b.startIndex
            guard Self.int32(b[(s + 4)..<(s + 8)]) == index else { continue }
            let a = Self.attributes(b, skip: 8)
            if let local = (a[2 /* IFA_LOCAL */] ?? a[1 /* IFA_ADDRESS */]).flatMap({ IPAddress(networkBytes: $0) }) {
                result.append((local, Int(b[s + 1])))
            }
        }
        return result
    }

    /// Adds (or, `delete`, removes) `address`/`prefix` on the interface, scope host for a /32 or
    /// /128 on loopback as `ip addr add VIP/32 dev lo` gives.
    public func setAddress(_ address: IPAddress, prefix: Int, on index: Int32, label: String? = nil, delete: Bool = false) throws {
        try setAddress(address, prefix: prefix, on: index, label: label, scope: 0, broadcast: nil, noDAD: false, delete: delete)
    }

    /// The full form (keepalived's virtual_ipaddress): `scope` as rtnetlink numbers it (0 global,
    /// 200 site, 253 link, 254 host), `broadcast` for IPv4, `noDAD` to use an IPv6 address at once.
    public func setAddress(_ address: IPAddress, prefix: Int, on index: Int32, label: String?, scope: UInt8, broadcast: IPAddress?,
                           noDAD: Bool, delete: Bool) throws {
        let family: UInt8 = address.isV6 ? UInt8(AF_INET6) : UInt8(AF_INET)
        // struct ifaddrmsg: family, prefixlen, flags, scope, index (u32).
        let header: [UInt8] = [family, UInt8(prefix), noDAD ? 0x02 /* IFA_F_NODAD */ : 0, scope] + Self.le32(UInt32(bitPattern: index))
        var body = header + Self.attribute(2 /* IFA_LOCAL */, address.networkBytes) + Self.attribute(1 /* IFA_ADDRESS */, address.networkBytes)
        if let label { body += Self.attribute(3 /* IFA_LABEL */, Array(label.utf8) + [0]) }
        if let broadcast, !address.isV6 { body += Self.attribute(4 /* IFA_BROADCAST */, broadcast.networkBytes) }
        _ = try exchange(delete ? Self.deleteAddress : Self.newAddress, flags: Self.acknowledge | (delete ? 0 : Self.create | Self.replace), body: body)
    }

    /// Adds (or removes) a route: `destination/prefix` (nil: default) via `gateway` or directly on
    /// `interface`, with its source, metric, table (main when nil), scope and type (1 unicast,
    /// 6 blackhole, 7 unreachable, 8 prohibit).
    public func setRoute(_ destination: IPAddress?, prefix: Int, v6: Bool, gateway: IPAddress?, interface: Int32?, source: IPAddress?,
                         metric: UInt32?, table: UInt32?, scope: UInt8, type: UInt8, delete: Bool) throws {
        let family: UInt8 = v6 ? UInt8(AF_INET6) : UInt8(AF_INET)
        let t = table ?? 254
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol (4: static), scope, type, flags.
        var body: [UInt8] = [family, UInt8(prefix), 0, 0, UInt8(t < 256 ? t : 252), 4, scope, type] + Self.le32(0)
        if let destination { body += Self.attribute(1 /* RTA_DST */, destination.networkBytes) }
        if let gateway { body += Self.attribute(5 /* RTA_GATEWAY */, gateway.networkBytes) }
        if let interface { body += Self.attribute(4 /* RTA_OIF */, Self.le32(UInt32(bitPattern: interface))) }
        if let source { body += Self.attribute(7 /* RTA_PREFSRC */, source.networkBytes) }
        if let metric { body += Self.attribute(6 /* RTA_PRIORITY */, Self.le32(metric)) }
        if t >= 256 { body += Self.attribute(15 /* RTA_TABLE */, Self.le32(t)) }
        _ = try exchange(delete ? 25 /* RTM_DELROUTE */ : 24 /* RTM_NEWROUTE */, flags: Self.acknowledge | (delete ? 0 : Self.create | Self.replace), body: body)
    }

    // MARK: Links

    /// Creates a macvlan on `base` (mode 1 private, as keepalived's use_vmac; 4 bridge) with its
    /// own Ethernet address, and brings it up; its index. An existing one of that name is
    /// replaced when it is not a macvlan of `base` with that address.
    public func createMacvlan(named name: String, on base: Int32, mac: [UInt8], mode: UInt32 = 1) throws -> Int32 {
        let existing = lvs_interface_index(name)
        if existing > 0 {
            if let l = try? link(existing), l.mac == mac { try setLink(existing, up: true); return existing }
            try deleteLink(existing)
        }
        // struct ifinfomsg: family, pad, type, index, flags, change. Created down.
        let header: [UInt8] = [0, 0, 0, 0] + Self.le32(0) + Self.le32(0) + Self.le32(0)
        let data = Self.attribute(1 /* IFLA_MACVLAN_MODE */, Self.le32(mode))
        let info = Self.attribute(1 /* IFLA_INFO_KIND */, Array("macvlan".utf8)) + Self.attribute(2 /* IFLA_INFO_DATA */, data)
        let body = header + Self.attribute(3 /* IFLA_IFNAME */, Array(name.utf8) + [0]) + Self.attribute(5 /* IFLA_LINK */, Self.le32(UInt32(bitPattern: base)))
            + Self.attribute(1 /* IFLA_ADDRESS */, mac) + Self.attribute(18 /* IFLA_LINKINFO */, info)
        _ = try exchange(16 /* RTM_NEWLINK */, flags: Self.acknowledge | Self.create | 0x200 /* NLM_F_EXCL */, body: body)
        let index = lvs_interface_index(name)
        guard index > 0 else { throw Failure(description: "macvlan \(name) was not created") }
        // IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE: none } } while it is down: no
        // link-local of its own (where IPv6 is off this fails, and does not matter).
        let noLinkLocal = Self.attribute(26 /* IFLA_AF_SPEC */, Self.attribute(UInt16(AF_INET6), Self.attribute(8, [1])))
        _ = try? exchange(16 /* RTM_NEWLINK */, flags: Self.acknowledge,
                          body: [0, 0, 0, 0] + Self.le32(UInt32(bitPattern: index)) + Self.le32(0) + Self.le32(0) + noLinkLocal)
        try setLink(index, up: true)
        return index
    }

    public func setLink(_ index: Int32, up: Bool) throws {
        let header: [UInt8] = [0, 0, 0, 0] + Self.le32(UInt32(bitPattern: index)) + Self.le32(up ? 1 : 0) + Self.le32(1)
        _ = try exchange(16 /* RTM_NEWLINK */, flags: Self.acknowledge, body: header)
    }

    public func deleteLink(_ index: Int32) throws {
        let header: [UInt8] = [0, 0, 0, 0] + Self.le32(UInt32(bitPattern: index)) + Self.le32(0) + Self.le32(0)
        _ = try exchange(17 /* RTM_DELLINK */, flags: Self.acknowledge, body: header)
    }
}
