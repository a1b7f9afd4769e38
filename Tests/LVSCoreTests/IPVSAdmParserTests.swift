import Testing
@testable import LVSCore

/// ipvsadm 1.31's command-line behaviour: accepted forms and every refusal with its exact message and
/// exit status (reference §5.4–5.5).
@Suite struct IPVSAdmParserTests {
    let parser = IPVSAdmParser(program: "/usr/sbin/ipvsadm")

    func parse(_ line: String) throws(IPVSAdmError) -> IPVSAdmCommand {
        try parser.parse(line.split(separator: " ").map(String.init))
    }

    static let refusals: [(String, String, Int32)] = [
        ("-A -t 1.2.3.4", "Zero port specified for non-persistent service", 2),
        ("-A -t [2001:db8::1]", "illegal virtual server address[:port] specified", 2),
        ("-A -t 1.2.3.4:nosuchsvc", "illegal virtual server address[:port] specified", 2),
        ("-A -t 1.2.3.4:65536", "illegal virtual server address[:port] specified", 2),
        ("-A -t 1.2.3.4:-1", "illegal virtual server address[:port] specified", 2),
        ("-A -t 12345", "illegal virtual server address[:port] specified", 2),
        ("-A -t no.such.host.invalid:80", "illegal virtual server address[:port] specified", 2),
        ("-A -t 1.2.3.4:80 -p 0", "invalid timeout value `0' specified", 2),
        ("-A -t 1.2.3.4:80 -p 2678401", "invalid timeout value `2678401' specified", 2),
        ("-A -t 1.2.3.4:80 -p abc", "invalid timeout value `abc' specified", 2),
        ("-A -t [2001:db8::1]:80 -M 129", "illegal ipv6 netmask specified", 2),
        ("-A -t 1.2.3.4:80 -p -M garbage.invalid", "illegal virtual server persistent mask specified", 2),
        ("-A -t 1.2.3.4:80 -o", "One-Packet Scheduling is only for UDP virtual services", 2),
        ("-A -f 0", "invalid fwmark value `0' specified", 2),
        ("-A -f -5", "invalid fwmark value `-5' specified", 2),
        ("-A -f 4294967296", "invalid fwmark value `4294967296' specified", 2),
        ("-A -f abc", "invalid fwmark value `abc' specified", 2),
        ("-A -6 -f 1", "-6 used before -f\n", 2),
        ("-A -t 1.2.3.4:80 -b sh-port", "incompatible scheduler flag `sh-port'", 2),
        ("-A -t 1.2.3.4:80 -s rr -b bogus", "invalid scheduler flag `bogus'", 2),
        ("-A -t 1.2.3.4:80 -r 5.6.7.8", "Illegal 'real-server' option with the 'add-service' command", 2),
        ("-A -t 1.2.3.4:80 -w 3", "Illegal 'weight' option with the 'add-service' command", 2),
        ("-A", "You need to supply the 'service-address' option for the 'add-service' command", 2),
        ("-A -s rr", "You need to supply the 'service-address' option for the 'add-service' command", 2),
        ("-A -t 1.1.1.1:80 -t 2.2.2.2:81", "multiple 'service-address' options specified", 2),
        ("-L -t 1.2.3.4:80 -f 5", "multiple 'service-address' options specified", 2),
        ("-A -t 1.2.3.4:80 -p 100 -p", "multiple 'persistent' options specified", 2),
        ("-L -n -n", "multiple 'numeric' options specified", 2),
        ("-A -t 1.2.3.4:80 -A", "invalid option `-A'", 2),
        ("-L -A", "invalid option `-A'", 2),
        ("-C -C", "invalid option `-C'", 2),
        ("--clear --list", "invalid option `--list'", 2),
        ("-A -t 1.2.3.4:80 extra", "unexpected argument extra", 2),
        ("-D -t 1.2.3.4:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command", 2),
        ("-C -t 1.2.3.4:80", "Illegal 'service-address' option with the 'flush' command", 2),
        ("-a -t 1.2.3.4:80", "You need to supply the 'real-server' option for the 'add-server' command", 2),
        ("-a -r 5.6.7.8", "You need to supply the 'service-address' option for the 'add-server' command", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -w -1", "illegal weight specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -w abc", "illegal weight specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -w 0x10", "illegal weight specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -w 2147483648", "illegal weight specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -x abc", "illegal u_threshold specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -x 2147483648", "illegal u_threshold specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -y -1", "illegal l_threshold specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -g -m", "multiple 'forwarding-method' options specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue --tun-port 6080 --tun-csum --tun-remcsum",
         "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gre --tun-remcsum", "Illegal 'tun-remcsum' option with the 'gre' tunnel type", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type ipip --tun-csum", "Illegal 'tun-csum' option with the 'ipip' tunnel type", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type vxlan", "illegal tunnel type specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 --tun-port 0", "illegal tunnel port specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 --tun-type gre", "Tunnel options conflict with forward method", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -m --tun-csum", "Tunnel options conflict with forward method", 2),
        ("-a -t 1.2.3.4:80 -r [2001:db8::5]:8080 -m", "Different address family is allowed only for tunneling servers", 2),
        ("-a -t 1.2.3.4:80 -r bad..addr", "illegal real server address[:port] specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8:99999", "illegal real server address[:port] specified", 2),
        ("-a -t 1.2.3.4:80 -r [2001:db8::5]", "illegal real server address[:port] specified", 2),
        ("-a -t 1.2.3.4:80 -r 5.6.7.8 -p", "Illegal 'persistent' option with the 'add-server' command", 2),
        ("-d -t 1.2.3.4:80 -r 5.6.7.8 -w 5", "Illegal 'weight' option with the 'delete-server' command", 2),
        ("-L -c -n --stats", "options conflicts in the list command", 2),
        ("-L --timeout --stats", "options conflicts in the list command", 2),
        ("-L --daemon --persistent-conn", "options conflicts in the list command", 2),
        ("-L --timeout --daemon", "The option 'daemon' conflicts with the 'timeout' option in the 'list' command", 2),
        ("-L -c --timeout", "The option 'timeout' conflicts with the 'connection' option in the 'list' command", 2),
        ("-L -t 1.2.3.4:80 -c", "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 2),
        ("-L -s rr", "Illegal 'scheduler' option with the 'list' command", 2),
        ("-S -c", "Illegal 'connection' option with the 'save' command", 2),
        ("-R -n", "Illegal 'numeric' option with the 'restore' command", 2),
        ("--set 1 2", "--set option requires 3 timeout values", 2),
        ("--set 1 2 3 4", "unexpected argument 4", 2),
        ("--set a b c", "invalid timeout value `a' specified", 2),
        ("--set 2678400 2678401 1", "invalid timeout value `2678401' specified", 2),
        ("--set -1 2 3", "-1: unknown option", 255),
        ("--start-daemon foo", "illegal start-daemon parameter specified", 2),
        ("--stop-daemon bogus", "illegal start_daemon specified", 2),
        ("--start-daemon backup --syncid 256", "illegal syncid specified", 2),
        ("--start-daemon backup --syncid -1", "illegal syncid specified", 2),
        ("--start-daemon master --mcast-group 10.0.0.1", "invalid IPv4 mcast-group `10.0.0.1'", 2),
        ("--start-daemon master --mcast-group 2001:db8::1", "invalid IPv6 mcast-group `2001:db8::1'", 2),
        ("--start-daemon master --mcast-port 0", "illegal mcast-port specified", 2),
        ("--start-daemon master --mcast-ttl 256", "illegal mcast-ttl specified", 2),
        ("--start-daemon master --sync-maxlen 0", "illegal sync-maxlen specified", 2),
        ("--start-daemon master --sync-maxlen 65508", "illegal sync-maxlen specified", 2),
        ("--start-daemon master -t 1.2.3.4:80", "Illegal 'service-address' option with the 'start-daemon' command", 2),
        ("--stop-daemon master --mcast-interface eth0", "Illegal 'mcast-interface' option with the 'stop-daemon' command", 2),
        ("-A -t 1.2.3.4:80 --bogus", "--bogus: unknown option", 255),
        ("-A -t 1.2.3.4:80 -Q", "-Q: unknown option", 255),
        ("-A -t", "-t: missing argument", 255),
        ("-L -t", "-t: missing argument", 255),
        ("-Atn 1.2.3.4:80", "illegal virtual server address[:port] specified", 2),
        ("-A -t 1.2.3.4:80 --proxy-protocol", "Illegal 'proxy-protocol' option with the 'add-service' command", 2),
    ]

    @Test(arguments: refusals)
    func refusesLikeIpvsadm(_ line: String, _ message: String, _ exitCode: Int32) {
        #expect(throws: IPVSAdmError(message, exitCode: exitCode)) { try self.parse(line) }
    }

    @Test(arguments: ["-Q", "--bogus", "-p", "-t 1.2.3.4:80", "-n -L", "-s rr -A -t 1.2.3.4:80", "#"])
    func firstOptionMustBeACommand(_ line: String) {
        let message = "Try `/usr/sbin/ipvsadm -h' or '/usr/sbin/ipvsadm --help' for more information."
        #expect(throws: IPVSAdmError(message, exitCode: 255)) { try self.parse(line) }
    }

    @Test func parsesServiceCommands() throws {
        #expect(try parse("-A -t 10.1.1.1:80 -s rr") == .addService(VirtualService.Config(key: tcp("10.1.1.1:80"), scheduler: "rr")))
        #expect(try parse("-At 10.1.1.1:80") == .addService(VirtualService.Config(key: tcp("10.1.1.1:80"))))
        #expect(try parse("-A -t 1.2.3.4:0 -p") == .addService(VirtualService.Config(
            key: tcp("1.2.3.4:0"), flags: .persistent, persistenceTimeout: 360)))
        #expect(try parse("-A -u 10.1.1.1:53 -s sh -p50 -M 255.255.255.0 -o -b sh-port,sh-fallback") == .addService(
            VirtualService.Config(key: udp("10.1.1.1:53"), scheduler: "sh", flags: [.persistent, .onePacket, .scheduler1, .scheduler2],
                                  persistenceTimeout: 50, netmask: 0xFFFF_FF00)))
        #expect(try parse("-A -f 7 -6 -s mh -b mh-port") == .addService(VirtualService.Config(
            key: .fwmark(7, .inet6), scheduler: "mh", flags: .scheduler2)))
        #expect(try parse("-E --tcp-service=10.1.1.1:80 --scheduler=verylongschedulername") == .editService(
            VirtualService.Config(key: tcp("10.1.1.1:80"), scheduler: "verylongschedul")))
        // -M before an IPv6 service is read as IPv4 and then reset to 128 by the service.
        #expect(try parse("-A -M 64 -t [2001:db8::1]:80 -p") == .addService(VirtualService.Config(
            key: .address(.tcp, IPAddress("2001:db8::1")!, 80), flags: .persistent, persistenceTimeout: 360, netmask: 128)))
        #expect(try parse("-A -t 1.2.3.4:80 -p 10 -M 24") == .addService(VirtualService.Config(
            key: tcp("1.2.3.4:80"), flags: .persistent, persistenceTimeout: 10, netmask: 24)))
        #expect(try parse("-A -t 0x01020304:80") == .addService(VirtualService.Config(key: tcp("1.2.3.4:80"))))
        #expect(try parse("-A --sctp-service 1.2.3.4:5000 -s sed") == .addService(VirtualService.Config(
            key: .address(.sctp, v4("1.2.3.4"), 5000), scheduler: "sed")))
        #expect(try parse("-D -t 1.2.3.4:80") == .deleteService(tcp("1.2.3.4:80")))
        #expect(try parse("-C") == .clear)
        #expect(try parse("-Z") == .zero(nil))
        #expect(try parse("-Z -t 1.2.3.4:80") == .zero(tcp("1.2.3.4:80")))
        #expect(try parse("--set 0 120 300") == .setTimeouts(tcp: 0, tcpFin: 120, udp: 300))
        #expect(try parse("-h") == .help)
        #expect(try parse("--version") == .version)
    }

    @Test func parsesServerCommands() throws {
        let key = tcp("1.2.3.4:80")
        #expect(try parse("-a -t 1.2.3.4:80 -r 5.6.7.8") == .addServer(key, RealServerConfig(ep("5.6.7.8:80"))))
        // Direct routing and tunnelling force the service port.
        #expect(try parse("-a -t 1.2.3.4:80 -r 5.6.7.8:8080 -g -w 3") == .addServer(key, RealServerConfig(ep("5.6.7.8:80"), weight: 3)))
        #expect(try parse("-a -t 1.2.3.4:80 -r 5.6.7.8:8080 -m -w 0 -x 100 -y 50") == .addServer(key, RealServerConfig(
            ep("5.6.7.8:8080"), forwarding: .masquerade, weight: 0, upperThreshold: 100, lowerThreshold: 50)))
        #expect(try parse("-e -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue --tun-port 6080 --tun-remcsum") == .editServer(
            key, RealServerConfig(ep("5.6.7.8:80"), forwarding: .tunnel, tunnel: TunnelConfig(kind: .gue, port: 6080, checksum: .remoteChecksum))))
        #expect(try parse("-a -t 1.2.3.4:80 -r [2001:db8::5]:80 -i") == .addServer(key, RealServerConfig(
            Endpoint(IPAddress("2001:db8::5")!, 80), forwarding: .tunnel)))
        #expect(try parse("-a -f 5 -r 5.6.7.8 -m") == .addServer(.fwmark(5, .inet), RealServerConfig(ep("5.6.7.8:0"), forwarding: .masquerade)))
        #expect(try parse("-d -t 1.2.3.4:80 -r 5.6.7.8:8080") == .deleteServer(key, ep("5.6.7.8:8080")))
        #expect(try parse("-a -t 1.2.3.4:80 -r 5.6.7.8 --weight=2147483647") == .addServer(key, RealServerConfig(ep("5.6.7.8:80"), weight: .max)))
        #expect(try parse("-a -t 1.2.3.4:80 -r 5.6.7.8 -w 007") == .addServer(key, RealServerConfig(ep("5.6.7.8:80"), weight: 7)))
    }

    @Test func parsesListRequests() throws {
        #expect(try parser.parse([]) == .list(ListRequest()))
        var r = ListRequest()
        r.numeric = true
        r.subject = .connections
        #expect(try parse("-Lnc") == .list(r))
        r = ListRequest()
        r.format = .stats
        r.exact = true
        r.subject = .service(tcp("1.2.3.4:80"))
        #expect(try parse("-l --stats --tun-info -X -t 1.2.3.4:80") == .list(r))
        r = ListRequest()
        r.subject = .timeouts
        #expect(try parse("-L --timeout") == .list(r))
        r = ListRequest()
        r.sort = false
        r.format = .persistentConnections
        #expect(try parse("-L --nosort --sort --persistent-conn") == .list(r))
        #expect(try parse("-S -n") == .save(numeric: true))
    }

    @Test func parsesDaemonCommands() throws {
        var d = SyncDaemonConfig(state: .backup)
        d.interface = "eth1"
        d.syncID = 7
        d.group = v4("239.1.1.1")
        d.port = 9000
        d.ttl = 3
        d.maxLength = 1400
        #expect(try parse("--start-daemon backup --mcast-interface eth1 --syncid 7 --mcast-group 239.1.1.1 --mcast-port 9000 --mcast-ttl 3 --sync-maxlen 1400") == .startDaemon(d))
        #expect(try parse("--stop-daemon master --syncid 3") == .stopDaemon(.master, syncID: 3))
    }

    @Test func resolverSuppliesNames() throws {
        struct Names: NameResolver {
            func ipv4Address(forHost name: String) -> UInt32? { name == "web1" ? 0x0A00_0001 : nil }
            func port(forService name: String, protocol proto: String) -> UInt16? { name == "http" && proto == "tcp" ? 80 : nil }
        }
        let p = IPVSAdmParser(resolver: Names())
        #expect(try p.parse(["-A", "-t", "web1:http"]) == .addService(VirtualService.Config(key: tcp("10.0.0.1:80"))))
        #expect(throws: IPVSAdmError.self) { try p.parse(["-A", "-u", "web1:http"]) }
    }

    @Test func kernelSideErrorsComeFromTheTable() throws {
        var t = IPVS()
        #expect(throws: ServiceTableError.schedulerNotFound("foo")) { try t.apply(try self.parse("-A -t 1.2.3.4:80 -s foo")) }
        try t.apply(try parse("-A -t 1.2.3.4:80 -s rr"))
        #expect(throws: ServiceTableError.serviceExists(tcp("1.2.3.4:80"))) { try t.apply(try self.parse("-A -t 1.2.3.4:80")) }
        #expect(throws: ServiceTableError.serviceNotDefined(tcp("1.2.3.4:81"))) { try t.apply(try self.parse("-a -t 1.2.3.4:81 -r 5.6.7.8")) }
    }
}
