/// An ipvsadm command line that ipvsadm 1.31 would refuse: the exact message it prints on stderr and
/// its exit status (2 for its own checks, 255 for option-parser errors and "Try …").
public struct IPVSAdmError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 2) {
        self.message = message
        self.exitCode = exitCode
    }

    public var description: String { message }

    static func tryHelp(_ program: String) -> IPVSAdmError {
        IPVSAdmError("Try `\(program) -h' or '\(program) --help' for more information.", exitCode: 255)
    }
}

/// Host and service names for the parser. The core resolves nothing by itself; the command-line tool
/// passes a resolver backed by /etc/hosts and /etc/services.
public protocol NameResolver: Sendable {
    /// An IPv4 address (host order) for a host name.
    func ipv4Address(forHost name: String) -> UInt32?
    /// A port for a service name and protocol (`tcp`, `udp`, `sctp`).
    func port(forService name: String, protocol: String) -> UInt16?
}

/// Resolves nothing: only numeric addresses and ports are accepted.
public struct NumericOnlyResolver: NameResolver {
    public init() {}
    public func ipv4Address(forHost name: String) -> UInt32? { nil }
    public func port(forService name: String, protocol: String) -> UInt16? { nil }
}

/// Parses ipvsadm 1.31 command lines: popt's option syntax (bundled short options, glued values,
/// `--long=value`, `-p`'s optional value), then ipvsadm's checks in ipvsadm's order.
public struct IPVSAdmParser: Sendable {
    public var resolver: any NameResolver
    public var program: String

    public init(program: String = "ipvsadm", resolver: any NameResolver = NumericOnlyResolver()) {
        self.program = program
        self.resolver = resolver
    }

    // MARK: Option table

    enum Command: Int, CaseIterable {
        case add = 0, edit, delete, flush, list, addServer, deleteServer, editServer, setTimeouts
        case startDaemon, stopDaemon, restore, save, zero

        var name: String {
            ["add-service", "edit-service", "delete-service", "flush", "list", "add-server", "delete-server",
             "edit-server", "set", "start-daemon", "stop-daemon", "restore", "save", "zero"][rawValue]
        }
    }

    /// ipvsadm's option bits, in the order its legality check walks them.
    enum Option: Int, CaseIterable {
        case numeric = 0, connection, service, scheduler, persistent, netmask, realServer, forward, weight
        case upperThreshold, lowerThreshold, mcastInterface, timeout, daemon, stats, rate, thresholds
        case persistentConnections, noSort, syncID, exact, onePacket, persistenceEngine, schedulerFlags
        case mcastGroup, mcastPort, mcastTTL, syncMaxLength, tunnelInfo, tunnelType, tunnelPort
        case tunnelNoChecksum, tunnelChecksum, tunnelRemoteChecksum
        /// SwiftLVS extension, after every ipvsadm 1.31 option so their checks come first.
        case proxyProtocol

        var name: String {
            ["numeric", "connection", "service-address", "scheduler", "persistent", "netmask", "real-server",
             "forwarding-method", "weight", "u-threshold", "l-threshold", "mcast-interface", "timeout", "daemon",
             "stats", "rate", "thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
             "sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen", "tun-info", "tun-type",
             "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum", "proxy-protocol"][rawValue]
        }
    }

    /// ipvsadm's command/option table: `+` required, `x` illegal, `1` one of an exclusive group,
    /// space optional.
    static func rule(_ command: Command, _ option: Option) -> Character {
        switch command {
        case .add, .edit:
            switch option {
            case .service: return "+"
            case .scheduler, .persistent, .netmask, .persistenceEngine, .schedulerFlags, .onePacket: return " "
            default: return "x"
            }
        case .delete:
            return option == .service ? "+" : "x"
        case .flush, .setTimeouts, .restore:
            return "x"
        case .save:
            return option == .numeric ? " " : "x"
        case .zero:
            return option == .service ? " " : "x"
        case .addServer, .editServer:
            switch option {
            case .service, .realServer: return "+"
            case .forward, .weight, .upperThreshold, .lowerThreshold, .tunnelType, .tunnelPort, .tunnelNoChecksum,
                 .tunnelChecksum, .tunnelRemoteChecksum, .proxyProtocol: return " "
            default: return "x"
            }
        case .deleteServer:
            return option == .service || option == .realServer ? "+" : "x"
        case .list:
            switch option {
            case .numeric, .stats, .rate, .thresholds, .persistentConnections, .noSort, .syncID, .exact, .tunnelInfo:
                return " "
            case .connection, .service, .timeout, .daemon: return "1"
            default: return "x"
            }
        case .startDaemon:
            switch option {
            case .mcastInterface, .syncID, .mcastGroup, .mcastPort, .mcastTTL, .syncMaxLength: return " "
            default: return "x"
            }
        case .stopDaemon:
            return option == .syncID ? " " : "x"
        }
    }

    private struct Spec {
        enum Argument { case none, required, optional }
        var short: Character?
        var long: String?
        var argument: Argument
        var id: String
    }

    private static let specs: [Spec] = [
        Spec(short: "A", long: "add-service", argument: .none, id: "A"),
        Spec(short: "E", long: "edit-service", argument: .none, id: "E"),
        Spec(short: "D", long: "delete-service", argument: .none, id: "D"),
        Spec(short: "C", long: "clear", argument: .none, id: "C"),
        Spec(short: "R", long: "restore", argument: .none, id: "R"),
        Spec(short: "S", long: "save", argument: .none, id: "S"),
        Spec(short: "a", long: "add-server", argument: .none, id: "a"),
        Spec(short: "e", long: "edit-server", argument: .none, id: "e"),
        Spec(short: "d", long: "delete-server", argument: .none, id: "d"),
        Spec(short: "L", long: "list", argument: .none, id: "L"),
        Spec(short: "l", long: nil, argument: .none, id: "L"),
        Spec(short: "Z", long: "zero", argument: .none, id: "Z"),
        Spec(short: nil, long: "set", argument: .none, id: "set"),
        Spec(short: nil, long: "start-daemon", argument: .required, id: "start-daemon"),
        Spec(short: nil, long: "stop-daemon", argument: .required, id: "stop-daemon"),
        Spec(short: "h", long: "help", argument: .none, id: "h"),
        Spec(short: "v", long: "version", argument: .none, id: "v"),
        Spec(short: "t", long: "tcp-service", argument: .required, id: "t"),
        Spec(short: "u", long: "udp-service", argument: .required, id: "u"),
        Spec(short: nil, long: "sctp-service", argument: .required, id: "sctp"),
        Spec(short: "f", long: "fwmark-service", argument: .required, id: "f"),
        Spec(short: "s", long: "scheduler", argument: .required, id: "s"),
        Spec(short: "p", long: "persistent", argument: .optional, id: "p"),
        Spec(short: "M", long: "netmask", argument: .required, id: "M"),
        Spec(short: "r", long: "real-server", argument: .required, id: "r"),
        Spec(short: "g", long: "gatewaying", argument: .none, id: "g"),
        Spec(short: "i", long: "ipip", argument: .none, id: "i"),
        Spec(short: "m", long: "masquerading", argument: .none, id: "m"),
        Spec(short: "w", long: "weight", argument: .required, id: "w"),
        Spec(short: "x", long: "u-threshold", argument: .required, id: "x"),
        Spec(short: "y", long: "l-threshold", argument: .required, id: "y"),
        Spec(short: "c", long: "connection", argument: .none, id: "c"),
        Spec(short: nil, long: "timeout", argument: .none, id: "timeout"),
        Spec(short: nil, long: "daemon", argument: .none, id: "daemon"),
        Spec(short: nil, long: "stats", argument: .none, id: "stats"),
        Spec(short: nil, long: "rate", argument: .none, id: "rate"),
        Spec(short: nil, long: "thresholds", argument: .none, id: "thresholds"),
        Spec(short: nil, long: "persistent-conn", argument: .none, id: "persistent-conn"),
        Spec(short: nil, long: "nosort", argument: .none, id: "nosort"),
        Spec(short: nil, long: "sort", argument: .none, id: "sort"),
        Spec(short: "n", long: "numeric", argument: .none, id: "n"),
        Spec(short: nil, long: "syncid", argument: .required, id: "syncid"),
        Spec(short: nil, long: "mcast-interface", argument: .required, id: "mcast-interface"),
        Spec(short: nil, long: "mcast-group", argument: .required, id: "mcast-group"),
        Spec(short: nil, long: "mcast-port", argument: .required, id: "mcast-port"),
        Spec(short: nil, long: "mcast-ttl", argument: .required, id: "mcast-ttl"),
        Spec(short: nil, long: "sync-maxlen", argument: .required, id: "sync-maxlen"),
        Spec(short: "6", long: "ipv6", argument: .none, id: "6"),
        Spec(short: "o", long: "ops", argument: .none, id: "o"),
        Spec(short: nil, long: "pe", argument: .required, id: "pe"),
        Spec(short: "b", long: "sched-flags", argument: .required, id: "b"),
        Spec(short: nil, long: "tun-type", argument: .required, id: "tun-type"),
        Spec(short: nil, long: "tun-port", argument: .required, id: "tun-port"),
        Spec(short: nil, long: "tun-nocsum", argument: .none, id: "tun-nocsum"),
        Spec(short: nil, long: "tun-csum", argument: .none, id: "tun-csum"),
        Spec(short: nil, long: "tun-remcsum", argument: .none, id: "tun-remcsum"),
        Spec(short: "X", long: "exact", argument: .none, id: "X"),
        Spec(short: nil, long: "tun-info", argument: .none, id: "tun-info"),
        Spec(short: nil, long: "proxy-protocol", argument: .none, id: "proxy-protocol"),
    ]

    /// One option occurrence from the command line, as popt hands them out.
    struct Occurrence {
        var id: String
        /// As typed, for "invalid option" messages (`-L`, `--list`).
        var typed: String
        var value: String?
    }

    enum Token {
        case option(Occurrence)
        case positional(String)
        /// popt's error: the option as typed and popt's message.
        case error(String, String)
    }

    /// Splits arguments the way popt does.
    static func tokenize(_ args: [String]) -> [Token] {
        var tokens: [Token] = []
        var i = 0
        var onlyPositional = false
        // An option's occurrence, its value glued to it (`-p50`, `--weight=5`) or taken from the next
        // argument: always for a required value, for an optional one only if it does not look like
        // an option.
        func occurrence(_ spec: Spec, typed: String, glued: String?) -> Token {
            switch spec.argument {
            case .none:
                return .option(Occurrence(id: spec.id, typed: typed, value: nil))
            case .required, .optional:
                if let glued { return .option(Occurrence(id: spec.id, typed: typed, value: glued)) }
                if i < args.count, spec.argument == .required || !args[i].hasPrefix("-") {
                    i += 1
                    return .option(Occurrence(id: spec.id, typed: typed, value: args[i - 1]))
                }
                return spec.argument == .required
                    ? .error(typed, "missing argument") : .option(Occurrence(id: spec.id, typed: typed, value: nil))
            }
        }
        while i < args.count {
            let arg = args[i]
            i += 1
            if onlyPositional || arg == "-" || !arg.hasPrefix("-") {
                tokens.append(.positional(arg))
                continue
            }
            if arg == "--" {
                onlyPositional = true
                continue
            }
            if arg.hasPrefix("--") {
                var name = String(arg.dropFirst(2))
                var glued: String? = nil
                if let eq = name.firstIndex(of: "=") {
                    glued = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                guard let spec = specs.first(where: { $0.long == name }) else {
                    tokens.append(.error(arg, "unknown option"))
                    return tokens
                }
                let token = occurrence(spec, typed: "--" + name, glued: glued)
                tokens.append(token)
                if case .error = token { return tokens }
                continue
            }
            // A bundle of short options: -Lnc, -p50, -At1.2.3.4:80 (an option with a value takes the
            // rest of the bundle as it).
            let chars = Array(arg.dropFirst())
            var k = 0
            while k < chars.count {
                let c = chars[k]
                k += 1
                guard let spec = specs.first(where: { $0.short == c }) else {
                    tokens.append(.error("-" + String(c), "unknown option"))
                    return tokens
                }
                let rest = spec.argument != .none && k < chars.count ? String(chars[k...]) : nil
                let token = occurrence(spec, typed: "-" + String(c), glued: rest)
                tokens.append(token)
                if case .error = token { return tokens }
                if spec.argument != .none { break }
            }
        }
        return tokens
    }

    // MARK: Parsing

    /// Parses the arguments after the program name.
    public func parse(_ args: [String]) throws(IPVSAdmError) -> IPVSAdmCommand {
        if args.isEmpty {
            return .list(ListRequest())
        }
        var state = ParseState(parser: self)
        let tokens = IPVSAdmParser.tokenize(args)
        var positionals: [String] = []
        var first = true
        var pendingError: (String, String)? = nil
        for token in tokens {
            switch token {
            case .positional(let p):
                if first { throw .tryHelp(program) }
                positionals.append(p)
            case .error(let typed, let message):
                if first { throw .tryHelp(program) }
                pendingError = (typed, message)
            case .option(let o):
                if first {
                    first = false
                    switch o.id {
                    case "h": return .help
                    case "v": return .version
                    default: break
                    }
                    guard let command = IPVSAdmParser.command(for: o.id) else { throw .tryHelp(program) }
                    state.command = command
                    if command == .startDaemon || command == .stopDaemon {
                        try state.daemonState(o.value ?? "", start: command == .startDaemon)
                    }
                    continue
                }
                try state.take(o)
            }
            if pendingError != nil { break }
        }
        if let (typed, message) = pendingError {
            throw IPVSAdmError("\(typed): \(message)", exitCode: 255)
        }
        if first { throw .tryHelp(program) }
        var rest = positionals[...]
        if state.command == .setTimeouts {
            guard rest.count >= 3 else { throw IPVSAdmError("--set option requires 3 timeout values") }
            let values = try rest.prefix(3).map { (v: String) throws(IPVSAdmError) -> UInt32 in
                guard let n = IPVSAdmParser.number(v, 0, Int64(Timeouts.maximumSetSeconds)) else {
                    throw IPVSAdmError("invalid timeout value `\(v)' specified")
                }
                return UInt32(n)
            }
            state.timeouts = (values[0], values[1], values[2])
            rest = rest.dropFirst(3)
        }
        if let extra = rest.first { throw IPVSAdmError("unexpected argument \(extra)") }
        return try state.finish()
    }

    static func command(for id: String) -> Command? {
        switch id {
        case "A": return .add
        case "E": return .edit
        case "D": return .delete
        case "C": return .flush
        case "R": return .restore
        case "S": return .save
        case "a": return .addServer
        case "e": return .editServer
        case "d": return .deleteServer
        case "L": return .list
        case "Z": return .zero
        case "set": return .setTimeouts
        case "start-daemon": return .startDaemon
        case "stop-daemon": return .stopDaemon
        case "h", "v": return nil
        default: return nil
        }
    }

    static let commandIDs: Set<String> = ["A", "E", "D", "C", "R", "S", "a", "e", "d", "L", "Z", "set", "start-daemon", "stop-daemon", "h", "v"]

    /// ipvsadm's `string_to_number`: base-10 `strtol` that must consume the whole string (leading blanks
    /// and zeros allowed), within `min...max`.
    static func number(_ text: String, _ min: Int64, _ max: Int64) -> Int64? {
        var bytes = Substring(text).utf8[...]
        while let f = bytes.first, f == 0x20 || (f >= 0x09 && f <= 0x0D) { bytes = bytes.dropFirst() }
        var negative = false
        if let f = bytes.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") {
            negative = f == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        guard !bytes.isEmpty else { return nil }
        var value: Int64 = 0
        for b in bytes {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(b - 0x30))
            if o1 || o2 { return nil }
            value = a
        }
        if negative { value = -value }
        return value >= min && value <= max ? value : nil
    }
}
