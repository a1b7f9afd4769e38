import LVSCore
import Testing

@testable import LVSPacketEngine

/// The nftables rules the packet engine installs.
@Suite struct InterceptionTests {
    static func services(_ build: (inout IPVS) throws -> Void) rethrows -> [ServiceSnapshot] {
        var t = IPVS()
        try build(&t)
        return t.serviceSnapshots
    }

    /// TCP 10.0.0.1:80 (rr) over one real server.
    static func oneServer(_ server: Endpoint, _ forwarding: ForwardingMethod) throws -> [ServiceSnapshot] {
        try services { t in
            let key = VirtualService.Key.address(.tcp, IPAddress("10.0.0.1")!, 80)
            try t.addService(VirtualService.Config(key: key, scheduler: "rr"))
            try t.addServer(RealServerConfig(server, forwarding: forwarding), to: key)
        }
    }

    @Test func addressServicesAreTakenAtIngressAndNoMarkChainIsMade() throws {
        let script = Interception(interfaces: ["eth0"], services: try Self.oneServer(Endpoint(IPAddress("10.0.1.2")!, 8080), .masquerade)).script
        #expect(script.contains("elements = { 10.0.0.1 . tcp . 80 }"))
        #expect(script.contains("elements = { 10.0.1.2 . tcp . 8080 }"))
        #expect(script.contains("type filter hook ingress device \"eth0\" priority -500; policy accept;"))
        #expect(script.hasSuffix("add table inet lvsd\ndelete table inet lvsd\n"), "a previous run's mark chain goes")
    }

    @Test func onlySetsWithElementsHaveARuleAndWholePacketsSkipTheFragmentLookups() throws {
        let script = Interception(interfaces: ["eth0"], services: try Self.oneServer(Endpoint(IPAddress("10.0.1.2")!, 80), .gatewaying)).script
        let chain = script.components(separatedBy: "chain ingress0 {\n")[1].components(separatedBy: "    }\n")[0]
        #expect(chain == """
                    type filter hook ingress device "eth0" priority -500; policy accept;
                    ip frag-off & 0x3fff != 0 ip daddr @fragments4 drop
                    ip frag-off & 0x3fff != 0 ip saddr @fragments4 fib daddr type != local drop
                    ip daddr . meta l4proto . th dport @services4 drop

            """, "DR only: no reply rule, no IPv6 rule, no rule for a port-less host")
        for set in ["services4", "hosts4", "replies4", "replyhosts4", "services6", "hosts6", "replies6", "replyhosts6", "fragments4"] {
            #expect(script.contains("    set \(set) {\n"), "every set is declared: \(set)")
        }
        let empty = Interception(interfaces: ["eth0"], services: []).script
        #expect(empty.contains("priority -500; policy accept;\n    }\n"), "no service: a chain without rules")
    }

    @Test func fwmarkServicesAreTakenAfterMangleByTheirMarks() throws {
        let s = try Self.services { t in
            try t.addService(VirtualService.Config(key: .fwmark(1, .inet), scheduler: "rr"))
            try t.addService(VirtualService.Config(key: .fwmark(0x2A, .inet), scheduler: "rr"))
            try t.addServer(RealServerConfig(Endpoint(IPAddress("10.0.1.2")!, 0), forwarding: .masquerade), to: .fwmark(1, .inet))
            try t.addServer(RealServerConfig(Endpoint(IPAddress("10.0.1.3")!, 8080), forwarding: .masquerade), to: .fwmark(0x2A, .inet))
            try t.addServer(RealServerConfig(Endpoint(IPAddress("10.0.1.4")!, 0), forwarding: .gatewaying), to: .fwmark(0x2A, .inet))
        }
        let i = Interception(interfaces: ["eth0", "eth1"], services: s)
        #expect(i.marks == [1, 0x2A])
        #expect(i.sources == [IPAddress("10.0.1.2")!, IPAddress("10.0.1.3")!], "NAT real servers only")
        let script = i.script
        #expect(script.contains("elements = { 10.0.1.2 . tcp, 10.0.1.2 . udp }"), "a real server without a port: by address and protocol")
        #expect(script.contains("elements = { 10.0.1.3 . tcp . 8080, 10.0.1.3 . udp . 8080 }"))
        #expect(script.contains("ip saddr . meta l4proto @replyhosts4 fib daddr type != local drop"))
        #expect(script.contains("elements = { 0x00000001, 0x0000002a }"))
        #expect(script.contains("type filter hook prerouting priority mangle + 10; policy accept;"))
        #expect(script.contains("iifname { \"eth0\", \"eth1\" } meta mark @marks meta nfproto ipv4 meta l4proto { tcp, udp, sctp } ip frag-off & 0x3fff == 0 log group \(Interception.logGroup) snaplen 65535 queue-threshold 1 drop"))
        #expect(script.contains("iifname { \"eth0\", \"eth1\" } meta mark @marks meta nfproto ipv6 meta l4proto { tcp, udp, sctp } log group"))
    }
}
