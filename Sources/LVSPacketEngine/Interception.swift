import Foundation
import LVSCore
import LinuxNet

/// Keeps the local stack from answering for the virtual services the packet engine forwards.
///
/// Why this way: the engine reads frames from AF_PACKET sockets, which see each frame before the
/// netdev ingress hook; an nftables rule there drops the frames the engine forwards, so the
/// kernel neither answers them (a director has the VIP on `lo`, and would reset a TCP connection
/// to a port nothing listens on) nor routes them (NAT replies from real servers would otherwise be
/// forwarded unrewritten). This needs no kernel module beyond nf_tables, no BPF program, and one
/// table to remove on the way out; NFQUEUE would cost a netlink round trip per packet, and AF_XDP
/// a BPF loader and per-driver support.
///
/// The rules match what the engine forwards: packets to a service's address, protocol and port
/// (any port for a port-0 service), and, for NAT real servers, their replies (source address,
/// protocol and port, to an address that is not the director's own: a health check's answers are
/// the director's), and IPv4 fragments to or from those addresses (the engine reassembles them).
///
/// fwmark services cannot be matched there: the mark is set later, by the operator's mangle rules
/// in the IP layer's prerouting hook. For them an `inet` table adds a prerouting chain just after
/// mangle (priority mangle + 10) that copies the TCP, UDP and SCTP packets carrying one of the
/// services' marks to the engine over NFLOG (`log group`, one packet at a time) and drops them, so
/// the kernel neither answers nor routes them; the engine forwards them as it does the rest. Replies from their NAT
/// real servers are taken at ingress like the others (by address, protocol and port, or address
/// and protocol for a real server without a port).
public struct Interception: Sendable, Hashable {
    public var interfaces: [String]
    public var services: Set<Tuple>
    public var portlessServices: Set<Host>
    public var natServers: Set<Tuple>
    public var portlessNATServers: Set<Host> = []
    public var marks: Set<UInt32> = []
    /// The NFLOG group marked packets are copied to.
    public static let logGroup: UInt16 = 0x4C56

    public struct Tuple: Sendable, Hashable, Comparable {
        public var address: IPAddress
        public var protocolName: String
        public var port: UInt16

        public static func < (a: Tuple, b: Tuple) -> Bool { (a.address.description, a.protocolName, a.port) < (b.address.description, b.protocolName, b.port) }
    }

    public struct Host: Sendable, Hashable, Comparable {
        public var address: IPAddress
        public var protocolName: String

        public static func < (a: Host, b: Host) -> Bool { (a.address.description, a.protocolName) < (b.address.description, b.protocolName) }
    }

    public static let table = "lvsd"

    /// The addresses packets are taken for as destinations (the VIPs) and as sources (NAT real
    /// servers' replies).
    public var destinations: Set<IPAddress> { Set(services.map(\.address)).union(portlessServices.map(\.address)) }
    public var sources: Set<IPAddress> { Set(natServers.map(\.address)).union(portlessNATServers.map(\.address)) }

    public init(interfaces: [String], services: [ServiceSnapshot] = []) {
        self.interfaces = interfaces
        var s: Set<Tuple> = [], h: Set<Host> = [], n: Set<Tuple> = []
        for service in services {
            if case .fwmark(let mark, _) = service.config.key {
                marks.insert(mark)
                for server in service.servers where server.config.forwarding == .masquerade {
                    let e = server.config.endpoint
                    for name in ["tcp", "udp"] {
                        if e.port == 0 {
                            portlessNATServers.insert(Host(address: e.address, protocolName: name))
                        } else {
                            n.insert(Tuple(address: e.address, protocolName: name, port: e.port))
                        }
                    }
                }
                continue
            }
            guard case .address(let proto, let address, let port) = service.config.key else { continue }
            let name = proto.name.lowercased()
            if port == 0 { h.insert(Host(address: address, protocolName: name)) } else { s.insert(Tuple(address: address, protocolName: name, port: port)) }
            for server in service.servers where server.config.forwarding == .masquerade {
                n.insert(Tuple(address: server.config.endpoint.address, protocolName: name,
                               port: server.config.endpoint.port == 0 ? port : server.config.endpoint.port))
            }
        }
        self.services = s
        portlessServices = h
        natServers = n
    }

    /// The nft script that replaces the engine's table with these rules in one transaction.
    public var script: String {
        var text = "add table netdev \(Self.table)\ndelete table netdev \(Self.table)\ntable netdev \(Self.table) {\n"
        // Each set is declared (so that the table's shape does not change), but a rule only
        // stands for a set with elements: every frame that comes in, DR replies routed through the
        // director included, runs this chain, and a lookup in an empty set still costs one.
        var rules: [String] = []
        for v6 in [false, true] {
            let (family, type, ip) = v6 ? ("6", "ipv6_addr", "ip6") : ("4", "ipv4_addr", "ip")
            // What a real server sends the director itself (a health check's answers) is the
            // director's: only what goes on to a client is a reply to translate.
            let sets: [(String, [String], String, String)] = [
                ("services" + family, services.filter { $0.address.isV6 == v6 }.sorted().map { "\($0.address) . \($0.protocolName) . \($0.port)" },
                 "\(type) . inet_proto . inet_service", "\(ip) daddr . meta l4proto . th dport @services\(family) drop"),
                ("hosts" + family, portlessServices.filter { $0.address.isV6 == v6 }.sorted().map { "\($0.address) . \($0.protocolName)" },
                 "\(type) . inet_proto", "\(ip) daddr . meta l4proto @hosts\(family) drop"),
                ("replies" + family, natServers.filter { $0.address.isV6 == v6 }.sorted().map { "\($0.address) . \($0.protocolName) . \($0.port)" },
                 "\(type) . inet_proto . inet_service", "\(ip) saddr . meta l4proto . th sport @replies\(family) fib daddr type != local drop"),
                ("replyhosts" + family, portlessNATServers.filter { $0.address.isV6 == v6 }.sorted().map { "\($0.address) . \($0.protocolName)" },
                 "\(type) . inet_proto", "\(ip) saddr . meta l4proto @replyhosts\(family) fib daddr type != local drop"),
            ]
            for (name, elements, setType, rule) in sets {
                text += "    set \(name) {\n        type \(setType)\n"
                if !elements.isEmpty { text += "        elements = { \(elements.joined(separator: ", ")) }\n" }
                text += "    }\n"
                if !elements.isEmpty { rules.append(rule) }
            }
        }
        // Fragments to a VIP or from a NAT real server: the engine reassembles them (IPVS sees whole
        // datagrams only, after the kernel's defragmentation). The fragment test comes before the
        // lookup, which whole packets then skip.
        let fragmentHosts = destinations.union(sources).filter { !$0.isV6 }
        text += "    set fragments4 {\n        type ipv4_addr\n"
        if !fragmentHosts.isEmpty {
            text += "        elements = { \(fragmentHosts.map(\.description).sorted().joined(separator: ", ")) }\n"
            rules.insert(contentsOf: ["ip frag-off & 0x3fff != 0 ip daddr @fragments4 drop",
                                      "ip frag-off & 0x3fff != 0 ip saddr @fragments4 fib daddr type != local drop"], at: 0)
        }
        text += "    }\n"
        for (i, interface) in interfaces.enumerated() {
            text += "    chain ingress\(i) {\n"
            text += "        type filter hook ingress device \"\(interface)\" priority -500; policy accept;\n"
            for rule in rules { text += "        \(rule)\n" }
            text += "    }\n"
        }
        text += "}\n"
        // fwmark services: after the operator's mangle rules have marked the packets.
        text += "add table inet \(Self.table)\ndelete table inet \(Self.table)\n"
        guard !marks.isEmpty else { return text }
        let names = interfaces.map { "\"\($0)\"" }.joined(separator: ", ")
        text += "table inet \(Self.table) {\n    set marks {\n        type mark\n"
        text += "        elements = { \(marks.sorted().map { String(format: "0x%08x", $0) }.joined(separator: ", ")) }\n    }\n"
        text += "    chain marked {\n        type filter hook prerouting priority mangle + 10; policy accept;\n"
        // Only what the engine forwards: TCP, UDP and SCTP, and no IPv4 fragment (ICMP to a
        // marked VIP, say, stays the kernel's; a dropped packet could not be handed back to it).
        let log = "log group \(Self.logGroup) snaplen 65535 queue-threshold 1 drop"
        text += "        iifname { \(names) } meta mark @marks meta nfproto ipv4 meta l4proto { tcp, udp, sctp } ip frag-off & 0x3fff == 0 \(log)\n"
        text += "        iifname { \(names) } meta mark @marks meta nfproto ipv6 meta l4proto { tcp, udp, sctp } \(log)\n    }\n}\n"
        return text
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Installs (or replaces) the rules.
    public func apply() throws {
        let result = Command.run(["nft", "-f", "-"], input: script)
        guard result.status == 0 else {
            throw Failure(description: "nft: \(result.output.isEmpty ? "exit status \(result.status)" : result.output.trimmingTrailingNewlines)")
        }
    }

    /// Removes the engine's table (nothing if it is not there).
    public static func remove() {
        _ = Command.run(["nft", "-f", "-"], input: "add table netdev \(table)\ndelete table netdev \(table)\nadd table inet \(table)\ndelete table inet \(table)\n")
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var s = self
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}
