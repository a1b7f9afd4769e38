import LVSCore

/// One VRRP instance's protocol state (RFC 3768 §6.4, RFC 5798 §6.4), pure and clock-driven:
/// events and the time in, actions out. Times are nanoseconds on any monotonic clock.
public struct VRRPStateMachine: Sendable {
    public enum State: String, Sendable, Hashable {
        case initialize = "INIT"
        case backup = "BACKUP"
        case master = "MASTER"
        case fault = "FAULT"
    }

    public struct Configuration: Sendable, Hashable {
        public var version: UInt8
        public var virtualRouterID: UInt8
        /// 1...255; 255 owns the addresses.
        public var priority: UInt8
        /// Advertisement_Interval, nanoseconds (keepalived's advert_int).
        public var advertisementInterval: Int64
        public var preempt: Bool
        /// After start, how long a higher-priority backup waits before it preempts (preempt_delay).
        public var preemptDelay: Int64
        /// This router's address on the interface (the tie-break between equal priorities).
        public var primaryAddress: IPAddress

        public init(version: UInt8 = 2, virtualRouterID: UInt8, priority: UInt8 = 100, advertisementInterval: Int64 = 1_000_000_000,
                    preempt: Bool = true, preemptDelay: Int64 = 0, primaryAddress: IPAddress) {
            self.version = version
            self.virtualRouterID = virtualRouterID
            self.priority = priority
            self.advertisementInterval = advertisementInterval
            self.preempt = preempt
            self.preemptDelay = preemptDelay
            self.primaryAddress = primaryAddress
        }
    }

    public enum Action: Sendable, Hashable {
        /// Send an advertisement with this priority (0: this master is leaving).
        case advertise(priority: UInt8)
        /// The state changed (own the addresses and announce them on `master`, drop them on the rest).
        case transition(from: State, to: State)
    }

    public private(set) var configuration: Configuration
    public private(set) var state: State = .initialize
    /// The priority in effect (tracking scripts and interfaces move it).
    public private(set) var priority: UInt8
    /// v3: the interval the master advertises, learnt from its adverts (v2: ours).
    public private(set) var masterAdvertisementInterval: Int64
    /// The address of the master this backup last heard.
    public private(set) var masterAddress: IPAddress?
    public private(set) var transitions = 0
    private var advertisementDeadline: Int64?
    private var masterDownDeadline: Int64?
    private var startedAt: Int64 = 0

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        priority = configuration.priority
        masterAdvertisementInterval = configuration.advertisementInterval
    }

    /// Skew_Time: v2 (256 - Priority) / 256 s; v3 ((256 - Priority) x Master_Adver_Interval) / 256.
    public var skewTime: Int64 {
        let p = Int64(256 - Int(priority))
        return configuration.version == 3 ? p * masterAdvertisementInterval / 256 : p * 1_000_000_000 / 256
    }

    /// Master_Down_Interval: 3 x (Master_)Advertisement_Interval + Skew_Time.
    public var masterDownInterval: Int64 { 3 * masterAdvertisementInterval + skewTime }

    /// When `tick` next has something to do.
    public var nextDeadline: Int64? {
        switch state {
        case .master: return advertisementDeadline
        case .backup: return masterDownDeadline
        default: return nil
        }
    }

    /// Startup (RFC §6.4.1): the address owner becomes master at once, the others backup.
    /// `resumingMaster`: this router was master before a reload and carries on as master (it
    /// yields as usual to a better one).
    public mutating func start(at now: Int64, resumingMaster: Bool = false) -> [Action] {
        startedAt = now
        guard state == .initialize else { return [] }
        return priority == 255 || resumingMaster ? becomeMaster(at: now) : becomeBackup(at: now)
    }

    /// Leaves without a word (a reload hands this master's role to its successor).
    public mutating func abandon() {
        advertisementDeadline = nil
        masterDownDeadline = nil
        state = .initialize
    }

    /// Timers.
    public mutating func tick(at now: Int64) -> [Action] {
        switch state {
        case .master:
            guard let d = advertisementDeadline, now >= d else { return [] }
            advertisementDeadline = now + configuration.advertisementInterval
            return [.advertise(priority: priority)]
        case .backup:
            guard let d = masterDownDeadline, now >= d else { return [] }
            return becomeMaster(at: now)
        default:
            return []
        }
    }

    /// An advertisement for this VRID that passed the receive checks (TTL, checksum,
    /// authentication, addresses), from `sender`.
    public mutating func received(_ advert: VRRPAdvertisement, from sender: IPAddress, at now: Int64) -> [Action] {
        switch state {
        case .backup:
            if advert.priority == 0 {
                // The master is leaving: take over after Skew_Time only.
                masterDownDeadline = now + skewTime
                return []
            }
            if !mayPreempt(at: now) || advert.priority >= priority {
                if configuration.version == 3 { masterAdvertisementInterval = Int64(advert.interval) * 10_000_000 }
                masterAddress = sender
                masterDownDeadline = now + masterDownInterval
            }
            // A lower-priority master while this backup may preempt: its adverts are let go,
            // and the master-down timer ends it.
            return []
        case .master:
            if advert.priority == 0 {
                advertisementDeadline = now + configuration.advertisementInterval
                return [.advertise(priority: priority)]
            }
            let wins = advert.priority > priority || (advert.priority == priority && Self.greater(sender, configuration.primaryAddress))
            // keepalived answers a lower master at once ("forcing new election"), so that it
            // hears the better one and steps down without waiting for our next advert.
            guard wins else { return [.advertise(priority: priority)] }
            if configuration.version == 3 { masterAdvertisementInterval = Int64(advert.interval) * 10_000_000 }
            masterAddress = sender
            return becomeBackup(at: now)
        default:
            return []
        }
    }

    /// Whether a lower master's adverts are let go (preempt on, preempt_delay over).
    public func mayPreempt(at now: Int64) -> Bool {
        configuration.preempt && now >= startedAt + configuration.preemptDelay
    }

    /// Shutdown (RFC §6.4.3): a master sends priority 0 so its backups take over at once.
    public mutating func shutdown(at now: Int64) -> [Action] {
        let from = state
        var actions: [Action] = from == .master ? [.advertise(priority: 0)] : []
        advertisementDeadline = nil
        masterDownDeadline = nil
        state = .initialize
        if from != .initialize { actions.append(.transition(from: from, to: .initialize)) }
        return actions
    }

    /// A tracked interface or weight-0 script failed (`true`), or recovered.
    public mutating func fault(_ failed: Bool, at now: Int64) -> [Action] {
        if failed {
            guard state != .fault else { return [] }
            let from = state
            var actions: [Action] = from == .master ? [.advertise(priority: 0)] : []
            advertisementDeadline = nil
            masterDownDeadline = nil
            state = .fault
            transitions += 1
            actions.append(.transition(from: from, to: .fault))
            return actions
        }
        guard state == .fault else { return [] }
        state = .initialize
        return priority == 255 ? becomeMaster(at: now) : becomeBackup(at: now)
    }

    /// The effective priority changes (vrrp_script and track weights); 1...254 unless the owner.
    public mutating func setPriority(_ p: UInt8, at now: Int64) -> [Action] {
        priority = max(1, p)
        // A master advertises its new priority at once, so a higher backup can take over.
        if state == .master {
            advertisementDeadline = now + configuration.advertisementInterval
            return [.advertise(priority: priority)]
        }
        return []
    }

    /// A vrrp_sync_group moves this member with the others: to MASTER (from BACKUP), to BACKUP
    /// (a master steps down without a priority-0 advert: the group's new master is elsewhere), or
    /// to FAULT and out of it (`.initialize`: leave FAULT as `fault(false)` does).
    public mutating func follow(_ target: State, at now: Int64) -> [Action] {
        switch (state, target) {
        case (.backup, .master): return becomeMaster(at: now)
        case (.master, .backup): return becomeBackup(at: now)
        case (.fault, .initialize): return fault(false, at: now)
        case (let s, .fault) where s != .fault: return fault(true, at: now)
        default: return []
        }
    }

    private mutating func becomeMaster(at now: Int64) -> [Action] {
        let from = state
        state = .master
        transitions += 1
        masterDownDeadline = nil
        masterAddress = configuration.primaryAddress
        advertisementDeadline = now + configuration.advertisementInterval
        return [.advertise(priority: priority), .transition(from: from, to: .master)]
    }

    private mutating func becomeBackup(at now: Int64) -> [Action] {
        let from = state
        state = .backup
        transitions += 1
        advertisementDeadline = nil
        masterDownDeadline = now + masterDownInterval
        return [.transition(from: from, to: .backup)]
    }

    /// The RFC's "primary IP address is greater": as unsigned numbers, most significant first.
    static func greater(_ a: IPAddress, _ b: IPAddress) -> Bool {
        (a.high, a.low) > (b.high, b.low)
    }
}
