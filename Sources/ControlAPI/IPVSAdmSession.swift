import LVSCore

/// What one ipvsadm invocation prints and returns.
public struct IPVSAdmOutput: Codable, Sendable, Hashable {
    public var stdout: String
    public var stderr: String
    public var exitCode: Int32

    public init(stdout: String = "", stderr: String = "", exitCode: Int32 = 0) {
        self.stdout = stdout
        self.stderr = stderr
        self.exitCode = exitCode
    }
}

/// Runs ipvsadm command lines against a table, with ipvsadm 1.31's outputs, messages and exit
/// statuses: validation errors exit 2, option-parser errors and refused changes 255, listing errors 1.
/// `lvsd` runs it for every `ipvsadm` request; it is pure, so tests run it directly.
public struct IPVSAdmSession: Sendable {
    public var resolver: any NameResolver
    public var names: any NameLookup
    /// The MTU of a network interface, nil if the host has no such interface (`--start-daemon`
    /// checks the interface and sizes a backup's messages with it).
    public var interfaceMTU: @Sendable (String) -> Int?

    public init(resolver: any NameResolver = NumericOnlyResolver(), names: any NameLookup = NumericNames(),
                interfaceMTU: @escaping @Sendable (String) -> Int? = { _ in 1500 }) {
        self.resolver = resolver
        self.names = names
        self.interfaceMTU = interfaceMTU
    }

    public static let versionLine = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"

    /// Whether a command line may change the table (anything but listings, -S, -h, -v and lines that
    /// do not parse).
    public func changesTable(_ argv: [String]) -> Bool {
        let args = Array(argv.dropFirst()).filter { $0 != "--json" }
        guard let command = try? IPVSAdmParser(resolver: resolver).parse(args) else { return false }
        switch command {
        case .list, .save, .help, .version: return false
        default: return true
        }
    }

    /// Runs one command line (`argv[0]` is the program name as typed). `stdin` feeds `-R`.
    public func run(_ argv: [String], stdin: String = "", on ipvs: inout IPVS, now: Int64) -> IPVSAdmOutput {
        var args = Array(argv.dropFirst())
        let program = argv.first ?? "ipvsadm"
        // Extension: --json on listings (not an ipvsadm option; removed before ipvsadm's parsing).
        let json = args.contains("--json")
        args.removeAll { $0 == "--json" }
        let parser = IPVSAdmParser(program: program, resolver: resolver)
        let command: IPVSAdmCommand
        do {
            command = try parser.parse(args)
        } catch {
            return IPVSAdmOutput(stderr: error.message + "\n", exitCode: error.exitCode)
        }
        return execute(command, program: program, stdin: stdin, json: json, on: &ipvs, now: now)
    }

    func execute(
        _ command: IPVSAdmCommand, program: String, stdin: String, json: Bool, on ipvs: inout IPVS, now: Int64
    ) -> IPVSAdmOutput {
        switch command {
        case .help:
            return IPVSAdmOutput(stdout: IPVSAdmSession.usage(program))
        case .version:
            return IPVSAdmOutput(stdout: IPVSAdmSession.versionLine)
        case .list(let request):
            return list(request, json: json, ipvs: ipvs, now: now)
        case .save(let numeric):
            let format = numeric ? SaveFormat.numeric : names.formatter
            return IPVSAdmOutput(stdout: SaveFormat.render(ListingOrder.sorted(ipvs.serviceSnapshots), format: format))
        case .restore:
            return restore(stdin, program: program, on: &ipvs, now: now)
        case .startDaemon(let config):
            do throws(ServiceTableError) {
                try ipvs.checkSyncFamilies()
                guard let mtu = interfaceMTU(config.interface) else { throw ServiceTableError.noDevice(config.interface) }
                try ipvs.startSyncDaemon(SyncDaemonStatus(config, interfaceMTU: mtu))
                return IPVSAdmOutput()
            } catch {
                return IPVSAdmOutput(stderr: error.description + "\n", exitCode: 255)
            }
        case .stopDaemon(let state, _):
            do throws(ServiceTableError) {
                try ipvs.stopSyncDaemon(state)
                return IPVSAdmOutput()
            } catch {
                return IPVSAdmOutput(stderr: error.description + "\n", exitCode: 255)
            }
        default:
            do {
                try ipvs.apply(command)
                return IPVSAdmOutput()
            } catch {
                return IPVSAdmOutput(stderr: error.description + "\n", exitCode: 255)
            }
        }
    }

    /// `-R`: each line is a command line (words `ipvsadm` dropped). A validation error ends the restore
    /// with its status; a refused change is reported and the restore goes on; the status is the last
    /// line's.
    func restore(_ text: String, program: String, on ipvs: inout IPVS, now: Int64) -> IPVSAdmOutput {
        var out = IPVSAdmOutput()
        let parser = IPVSAdmParser(program: program, resolver: resolver)
        for words in SaveFormat.restoreLines(text) {
            let command: IPVSAdmCommand
            do {
                command = try parser.parse(words)
            } catch {
                out.stderr += error.message + "\n"
                out.exitCode = error.exitCode
                return out
            }
            if case .restore = command {
                out.stderr += IPVSAdmError.tryHelpMessage(program) + "\n"
                out.exitCode = 255
                return out
            }
            let r = execute(command, program: program, stdin: "", json: false, on: &ipvs, now: now)
            out.stdout += r.stdout
            out.stderr += r.stderr
            out.exitCode = r.exitCode
        }
        return out
    }

    func list(_ request: ListRequest, json: Bool, ipvs: IPVS, now: Int64) -> IPVSAdmOutput {
        let format = ListingFormat(endpointText: request.numeric ? SaveFormat.numeric : names.formatter, exact: request.exact)
        switch request.subject {
        case .table:
            let services = ListingOrder.sorted(ipvs.serviceSnapshots, sort: request.sort)
            if json { return IPVSAdmOutput(stdout: ListingJSON.table(services, totals: ipvs.totalStats)) }
            return IPVSAdmOutput(stdout: format.table(services, format: request.format))
        case .service(let key):
            guard let s = ipvs.serviceSnapshot(key) else {
                return IPVSAdmOutput(stderr: ServiceTableError.noSuchService(key).description + "\n", exitCode: 1)
            }
            let services = ListingOrder.sorted([s], sort: request.sort)
            if json { return IPVSAdmOutput(stdout: ListingJSON.table(services, totals: nil)) }
            return IPVSAdmOutput(stdout: format.table(services, format: request.format, header: false))
        case .connections:
            let entries = ipvs.connectionSnapshots(now: now)
            if json { return IPVSAdmOutput(stdout: ListingJSON.connections(entries)) }
            return IPVSAdmOutput(stdout: format.connections(entries, withPersistenceEngineData: request.persistenceEngineData))
        case .timeouts:
            return IPVSAdmOutput(stdout: ListingFormat.timeouts(ipvs.timeouts))
        case .daemons:
            if json { return IPVSAdmOutput(stdout: ListingJSON.daemons(ipvs.syncDaemons)) }
            return IPVSAdmOutput(stdout: ipvs.syncDaemons.map(\.listingLine).joined())
        }
    }

    /// The usage text for `-h`: every command and option ipvsadm 1.31 has, in SwiftLVS's words.
    public static func usage(_ program: String) -> String {
        """
        \(versionLine.dropLast())
        Usage:
          \(program) -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
          \(program) -D virtual-service
          \(program) -C
          \(program) -R
          \(program) -S [-n]
          \(program) -a|e virtual-service -r server-address [options]
          \(program) -d virtual-service -r server-address
          \(program) -L|l [virtual-service] [options]
          \(program) -Z [virtual-service]
          \(program) --set tcp tcpfin udp
          \(program) --start-daemon {master|backup} [daemon-options]
          \(program) --stop-daemon {master|backup}
          \(program) -h

        Commands (long or short):
          --add-service     -A   add a virtual service
          --edit-service    -E   replace a virtual service's options
          --delete-service  -D   delete a virtual service
          --clear           -C   delete every virtual service
          --restore         -R   read commands from standard input
          --save            -S   print the table as commands for -R
          --add-server      -a   add a real server
          --edit-server     -e   replace a real server's options
          --delete-server   -d   delete a real server
          --list            -L|-l  list the table
          --zero            -Z   zero the counters of one or every service
          --set tcp tcpfin udp   set the connection timeouts (seconds; 0 keeps a value)
          --start-daemon         start connection synchronisation
          --stop-daemon          stop connection synchronisation
          --help            -h   this text

        virtual-service:
          --tcp-service|-t  host[:port]
          --udp-service|-u  host[:port]
          --sctp-service    host[:port]
          --fwmark-service|-f mark     a firewall mark greater than zero

        Options:
          --ipv6         -6          the fwmark service is IPv6
          --scheduler    -s name     rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos (default wlc)
          --pe           name        persistence engine (sip)
          --persistent   -p [secs]   persistence (360 s when no value is given)
          --netmask      -M mask     persistence granularity
          --real-server  -r host[:port]
          --gatewaying   -g          direct routing (default)
          --ipip         -i          tunnelling
          --masquerading -m          NAT
          --tun-type     type        ipip|gue|gre (default ipip)
          --tun-port     port        tunnel destination port (gue)
          --tun-nocsum | --tun-csum | --tun-remcsum   tunnel checksum
          --weight       -w weight   0 to 2147483647 (default 1)
          --u-threshold  -x n        upper connection threshold
          --l-threshold  -y n        lower connection threshold
          --connection   -c          list connections
          --timeout                  list timeouts
          --daemon                   list sync daemons
          --stats | --rate | --thresholds | --persistent-conn | --tun-info   listing formats
          --exact        -X          exact numbers
          --nosort | --sort          listing order
          --ops          -o          one-packet scheduling
          --numeric      -n          numeric addresses and ports
          --sched-flags  -b flags    scheduler flags, comma-separated
          --json                     (SwiftLVS) listings as JSON
          --proxy-protocol           (SwiftLVS, -a/-e) PROXY protocol v2 header toward this real server
        Daemon options:
          --syncid id | --sync-maxlen bytes | --mcast-interface name | --mcast-group address
          --mcast-port port | --mcast-ttl ttl

        """
    }
}

extension IPVSAdmError {
    static func tryHelpMessage(_ program: String) -> String {
        "Try `\(program) -h' or '\(program) --help' for more information."
    }
}
