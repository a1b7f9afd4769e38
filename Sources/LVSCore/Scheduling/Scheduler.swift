/// The weighted comparison every least-load scheduler makes: `load(a) * weight(b) > load(b) * weight(a)`
/// ("b is less loaded than a" when a was the best so far). Exact: the products are 128-bit, where
/// the kernel's signed 64-bit products could overflow.
@inline(__always)
func moreLoaded(_ loadA: UInt64, weightA: Int32, than loadB: UInt64, weightB: Int32) -> Bool {
    loadA.multipliedFullWidth(by: UInt64(max(0, weightB))) > loadB.multipliedFullWidth(by: UInt64(max(0, weightA)))
}

/// What a scheduler may look at when it picks a real server for a new flow.
public struct FlowKey: Sendable, Hashable {
    public var protocolNumber: UInt8
    public var source: IPAddress
    public var sourcePort: UInt16
    /// The packet's destination: the VIP for address services; lblc, lblcr and dh hash it.
    public var destination: IPAddress
    public var destinationPort: UInt16

    public init(protocolNumber: UInt8, source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16) {
        self.protocolNumber = protocolNumber
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
    }

    /// The source port the sh-port/mh-port hashes use: the TCP/UDP/SCTP port, 0 for other protocols.
    @inlinable var hashPort: UInt32 {
        switch protocolNumber {
        case IPProtocol.tcp.rawValue, IPProtocol.udp.rawValue, IPProtocol.sctp.rawValue: return UInt32(sourcePort)
        default: return 0
        }
    }
}

/// A service's real servers in kernel list order (newest first), as the schedulers see them.
public struct ServerPool {
    @usableFromInline let members: [Int32]
    @usableFromInline let servers: [RealServer]

    @inlinable init(members: [Int32], servers: [RealServer]) {
        self.members = members
        self.servers = servers
    }

    @inlinable var count: Int { members.count }

    @inlinable subscript(position: Int) -> RealServer { servers[Int(members[position])] }

    @inlinable func id(at position: Int) -> Int32 { members[position] }
}

/// The schedulers IPVS has, by the name ipvsadm uses.
public enum SchedulerKind: String, Sendable, CaseIterable, Hashable {
    case roundRobin = "rr"
    case weightedRoundRobin = "wrr"
    case leastConnection = "lc"
    case weightedLeastConnection = "wlc"
    case shortestExpectedDelay = "sed"
    case neverQueue = "nq"
    case localityBased = "lblc"
    case localityBasedReplicated = "lblcr"
    case destinationHashing = "dh"
    case sourceHashing = "sh"
    case maglev = "mh"
    case weightedFailover = "fo"
    case weightedOverflow = "ovf"
    case powerOfTwoChoices = "twos"
    /// The kernel accepts `none`: a service that never finds a real server.
    case none = "none"

    public var name: String { rawValue }
}

/// Tunables of the schedulers that the kernel fixes at build time or by sysctl.
public struct SchedulerSettings: Sendable, Hashable {
    /// Maglev table size: a prime; the kernel's default build (CONFIG_IP_VS_MH_TAB_INDEX=12) uses 4093.
    public var maglevTableSize: Int = 4093
    /// CONFIG_IP_VS_MH_TAB_INDEX / 2: how many significant bits of weight/gcd Maglev keeps.
    public var maglevWeightBits: Int = 6
    /// sysctl lblc_expiration / lblcr_expiration, in nanoseconds (24 h).
    public var localityExpiration: Int64 = 24 * 3600 * 1_000_000_000
    /// Seed for `twos`' random choices.
    public var randomSeed: UInt64 = 0x5EED

    public init() {}

    /// The primes CONFIG_IP_VS_MH_TAB_INDEX 8...17 select.
    public static let maglevPrimes = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]
}

/// A scheduler bound to one service, with whatever state it keeps between picks.
enum SchedulerState: Sendable {
    case none
    case roundRobin(RoundRobin)
    case weightedRoundRobin(WeightedRoundRobin)
    case leastLoad(LeastLoadIndex)
    case neverQueue
    case localityBased(LocalityBased)
    case localityBasedReplicated(LocalityBasedReplicated)
    case destinationHashing(DestinationHashing)
    case sourceHashing(SourceHashing)
    case maglev(Maglev)
    case weightedFailover
    case weightedOverflow
    case powerOfTwoChoices(SchedulerRandom)

    init(kind: SchedulerKind, pool: ServerPool, settings: SchedulerSettings) {
        switch kind {
        case .none: self = .none
        case .roundRobin: self = .roundRobin(RoundRobin())
        case .weightedRoundRobin: self = .weightedRoundRobin(WeightedRoundRobin(pool))
        case .leastConnection: self = .leastLoad(LeastLoadIndex(.leastConnection, pool))
        case .weightedLeastConnection: self = .leastLoad(LeastLoadIndex(.weightedLeastConnection, pool))
        case .shortestExpectedDelay: self = .leastLoad(LeastLoadIndex(.shortestExpectedDelay, pool))
        case .neverQueue: self = .neverQueue
        case .localityBased: self = .localityBased(LocalityBased(settings: settings))
        case .localityBasedReplicated: self = .localityBasedReplicated(LocalityBasedReplicated(settings: settings))
        case .destinationHashing: self = .destinationHashing(DestinationHashing(pool))
        case .sourceHashing: self = .sourceHashing(SourceHashing(pool))
        case .maglev: self = .maglev(Maglev(pool, settings: settings))
        case .weightedFailover: self = .weightedFailover
        case .weightedOverflow: self = .weightedOverflow
        case .powerOfTwoChoices: self = .powerOfTwoChoices(SchedulerRandom(seed: settings.randomSeed))
        }
    }

    /// Picks a real server (its id) for a new flow, or nil for "no destination available".
    mutating func pick(_ pool: ServerPool, flow: FlowKey, flags: ServiceFlags, now: Int64) -> Int32? {
        switch self {
        case .none:
            return nil
        case .roundRobin(var s):
            let r = s.pick(pool)
            self = .roundRobin(s)
            return r
        case .weightedRoundRobin(var s):
            let r = s.pick(pool)
            self = .weightedRoundRobin(s)
            return r
        case .leastLoad(let s):
            return s.pick(pool)
        case .neverQueue:
            return NeverQueue.pick(pool)
        case .localityBased(var s):
            self = .none
            let r = s.pick(pool, flow: flow, now: now)
            self = .localityBased(s)
            return r
        case .localityBasedReplicated(var s):
            self = .none
            let r = s.pick(pool, flow: flow, now: now)
            self = .localityBasedReplicated(s)
            return r
        case .destinationHashing(let s):
            return s.pick(pool, flow: flow)
        case .sourceHashing(let s):
            return s.pick(pool, flow: flow, flags: flags)
        case .maglev(let s):
            return s.pick(pool, flow: flow, flags: flags)
        case .weightedFailover:
            return WeightedFailover.pick(pool)
        case .weightedOverflow:
            return WeightedOverflow.pick(pool)
        case .powerOfTwoChoices(var random):
            let r = PowerOfTwoChoices.pick(pool, random: &random)
            self = .powerOfTwoChoices(random)
            return r
        }
    }

    /// A real server was added at the head of the list.
    mutating func serverAdded(_ pool: ServerPool) {
        switch self {
        case .roundRobin(var s):
            s.serverAdded()
            self = .roundRobin(s)
        default:
            serversChanged(pool, edit: false)
        }
    }

    /// The real server at `position` was removed from the list (`pool` no longer has it).
    mutating func serverRemoved(at position: Int, id: Int32, _ pool: ServerPool) {
        switch self {
        case .roundRobin(var s):
            s.serverRemoved(at: position)
            self = .roundRobin(s)
        case .localityBased(var s):
            self = .none
            s.forget(id)
            self = .localityBased(s)
        case .localityBasedReplicated(var s):
            self = .none
            s.forget(id)
            self = .localityBasedReplicated(s)
        default:
            serversChanged(pool, edit: false)
        }
    }

    /// A real server was edited (`-e`).
    mutating func serverEdited(_ pool: ServerPool) {
        serversChanged(pool, edit: true)
    }

    private mutating func serversChanged(_ pool: ServerPool, edit: Bool) {
        switch self {
        case .weightedRoundRobin(var s):
            s.serversChanged(pool)
            self = .weightedRoundRobin(s)
        case .leastLoad(var s):
            self = .none
            s.rebuild(pool)
            self = .leastLoad(s)
        case .destinationHashing(var s):
            // dh has no update hook in the kernel: an edit leaves its table as it was.
            if !edit {
                self = .none
                s.rebuild(pool)
                self = .destinationHashing(s)
            }
        case .sourceHashing(var s):
            self = .none
            s.rebuild(pool)
            self = .sourceHashing(s)
        case .maglev(var s):
            self = .none
            s.rebuild(pool)
            self = .maglev(s)
        default:
            break
        }
    }

    /// The connection counts or overload flag of the real server at `position` changed.
    @inline(__always)
    mutating func loadChanged(at position: Int, _ pool: ServerPool) {
        if case .leastLoad(var s) = self {
            self = .none
            s.update(position: position, pool)
            self = .leastLoad(s)
        }
    }

    /// Periodic housekeeping (lblc/lblcr cache expiry); call about once a minute.
    mutating func housekeeping(now: Int64) {
        switch self {
        case .localityBased(var s):
            self = .none
            s.expire(now: now)
            self = .localityBased(s)
        case .localityBasedReplicated(var s):
            self = .none
            s.expire(now: now)
            self = .localityBasedReplicated(s)
        default:
            break
        }
    }
}
