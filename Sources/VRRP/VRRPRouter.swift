import LVSCore

/// Every vrrp_instance of a director, with what they track and their vrrp_sync_groups: events in
/// (packets, the time, script results, interfaces, files), effects out. Pure.
public struct VRRPRouter: Sendable {
    public struct Group: Sendable, Hashable {
        public var name: String
        /// Indices into `instances`.
        public var members: [Int]

        public init(name: String, members: [Int]) {
            self.name = name
            self.members = members
        }
    }

    public enum Event: Sendable, Hashable {
        /// `resuming`: the instances that were master before a reload and carry on as master.
        case start(resuming: Set<String> = [])
        case tick
        /// A VRRP packet arrived on `interface`.
        case received(interface: String, VRRPInstance.Received)
        /// A vrrp_script's exit: 0 is success.
        case script(name: String, success: Bool)
        /// An interface's state (administratively up and running).
        case interface(name: String, up: Bool)
        /// A tracked file's number (keepalived: unreadable or not a number is 0).
        case file(name: String, value: Int64)
        /// `keeping`: masters a reload keeps (they leave silently, their addresses stay).
        case shutdown(keeping: Set<String> = [])
    }

    public enum Effect: Sendable, Hashable {
        case instance(Int, VRRPInstance.Effect)
        /// Every member of the group is now in `to` (its notify scripts run).
        case group(Int, to: VRRPStateMachine.State)
        case log(VRRPLogLevel, String)
    }

    public private(set) var instances: [VRRPInstance]
    public let groups: [Group]
    /// Scripts that failed weight-0 tracking etc. are known by name; those not yet heard from
    /// count as good (or failed with init_fail).
    public private(set) var scripts: [String: VRRPTracking.ScriptStatus]
    public private(set) var interfaces: [String: Bool] = [:]
    public private(set) var files: [String: Int64] = [:]
    /// Packets for a VRID no instance on that interface has, by interface.
    public private(set) var unknownVRID: [String: Int] = [:]
    private var groupOf: [Int: Int] = [:]
    private var groupState: [Int: VRRPStateMachine.State] = [:]
    /// Each instance's own fault reason (nil: none), before its group is taken into account.
    private var ownFault: [String?]
    private var started = false

    public init(instances: [VRRPInstance], groups: [Group] = [], scripts: [String: VRRPTracking.ScriptStatus] = [:]) {
        self.instances = instances
        self.groups = groups
        self.scripts = scripts
        ownFault = Array(repeating: nil, count: instances.count)
        for (g, group) in groups.enumerated() { for m in group.members { groupOf[m] = g } }
    }

    public var nextDeadline: Int64? {
        var best: Int64?
        for (i, instance) in instances.enumerated() {
            guard let d = instance.nextDeadline else { continue }
            // A member held back by its group waits for the others' timers, not its own.
            if held(i, at: d) { continue }
            best = min(best ?? d, d)
        }
        return best
    }

    public mutating func handle(_ event: Event, at now: Int64) -> [Effect] {
        var effects: [Effect] = []
        switch event {
        case .start(let resuming):
            started = true
            for i in instances.indices {
                let (priority, fault) = evaluate(i)
                ownFault[i] = fault
                effects += wrap(i, instances[i].setPriority(priority, at: now).filter { if case .log = $0 { return false }; return true })
            }
            for i in instances.indices {
                let groupFault = groupOf[i].map { g in groups[g].members.contains { ownFault[$0] != nil } } ?? false
                if let reason = ownFault[i] ?? (groupFault ? "sync group member in FAULT" : nil) {
                    effects += wrap(i, instances[i].fault(true, reason: reason, at: now))
                } else {
                    effects += follow(i, instances[i].start(at: now, resumingMaster: resuming.contains(instances[i].name)), at: now)
                }
            }
        case .tick:
            for i in instances.indices {
                guard let d = instances[i].nextDeadline, now >= d else { continue }
                if instances[i].masterDownExpired(at: now), let g = groupOf[i] {
                    // RFC-free keepalived rule: a sync group goes master only when every member
                    // would, so that its links never split between two directors.
                    guard !held(i, at: now) else { continue }
                    for m in groups[g].members where instances[m].state == .backup {
                        effects += wrap(m, instances[m].follow(.master, at: now))
                    }
                    continue
                }
                effects += follow(i, instances[i].tick(at: now), at: now)
            }
        case .received(let interface, let packet):
            guard packet.bytes.count >= 2 else {
                unknownVRID[interface, default: 0] += 1
                return []
            }
            let vrid = packet.bytes[1]
            guard let i = instances.firstIndex(where: {
                $0.settings.interface == interface && $0.settings.virtualRouterID == vrid && $0.settings.isV6 == packet.source.isV6
            }) else {
                unknownVRID[interface, default: 0] += 1
                return []
            }
            effects += follow(i, instances[i].receive(packet, at: now), at: now)
        case .script(let name, let success):
            guard var status = scripts[name] else { return [] }
            let changed = status.record(success: success)
            scripts[name] = status
            if changed {
                effects.append(.log(.info, "VRRP_Script(\(name)) \(success ? "succeeded" : "failed")"))
                effects += reevaluate(at: now)
            }
        case .interface(let name, let up):
            guard interfaces[name] != up else { return [] }
            interfaces[name] = up
            if started { effects.append(.log(.info, "Netlink reports \(name) \(up ? "up" : "down")")) }
            effects += reevaluate(at: now)
        case .file(let name, let value):
            guard files[name] != value else { return [] }
            files[name] = value
            effects += reevaluate(at: now)
        case .shutdown(let keeping):
            for i in instances.indices {
                if keeping.contains(instances[i].name), instances[i].state == .master {
                    instances[i].abandon()
                } else {
                    effects += wrap(i, instances[i].shutdown(at: now))
                }
            }
        }
        return effects + groupChanges()
    }

    /// A member waiting for the rest of its group: its timer ran out, another's has not.
    private func held(_ i: Int, at now: Int64) -> Bool {
        guard let g = groupOf[i], instances[i].masterDownExpired(at: now) else { return false }
        return groups[g].members.contains { m in
            m != i && instances[m].state != .master && !instances[m].masterDownExpired(at: now)
        }
    }

    /// The priority and fault an instance's tracking gives now.
    func evaluate(_ i: Int) -> (UInt8, String?) {
        let s = instances[i].settings
        var delta: Int64 = 0
        var fault: String?
        if s.trackPrimaryInterface, interfaces[s.interface] == false { fault = "Interface \(s.interface) down" }
        for (name, w) in s.trackedInterfaces.sorted(by: { $0.key < $1.key }) {
            let c = VRRPTracking.contribution(w, good: interfaces[name] ?? true)
            delta += c.delta
            if c.fault, fault == nil { fault = "tracked interface \(name) is down" }
        }
        for (name, w) in s.trackedScripts.sorted(by: { $0.key < $1.key }) {
            let c = scripts[name].map { VRRPTracking.scriptContribution(w, $0) } ?? (delta: 0, fault: false)
            delta += c.delta
            if c.fault, fault == nil { fault = "tracked script \(name) failed" }
        }
        for (name, w) in s.trackedFiles.sorted(by: { $0.key < $1.key }) {
            let c = VRRPTracking.fileContribution(w, value: files[name] ?? 0)
            delta += c.delta
            if c.fault, fault == nil { fault = "tracked file \(name) is in fault" }
        }
        return (VRRPTracking.effectivePriority(base: s.priority, delta: delta), fault)
    }

    /// Tracking changed: priorities move, faults come and go (a whole group's together).
    private mutating func reevaluate(at now: Int64) -> [Effect] {
        guard started else { return [] }
        var effects: [Effect] = []
        for i in instances.indices {
            let (priority, fault) = evaluate(i)
            ownFault[i] = fault
            effects += wrap(i, instances[i].setPriority(priority, at: now))
        }
        for i in instances.indices {
            let members = groupOf[i].map { groups[$0].members } ?? [i]
            let faults = ownFault
            let reason = members.lazy.compactMap { faults[$0] }.first
            if let reason, instances[i].state == .backup || instances[i].state == .master {
                effects += wrap(i, instances[i].fault(true, reason: ownFault[i] ?? "sync group member: \(reason)", at: now))
            } else if reason == nil, instances[i].state == .fault {
                effects += wrap(i, instances[i].fault(false, reason: "", at: now))
            }
        }
        return effects
    }

    /// An instance's own effects, and its group following a change of state it made.
    private mutating func follow(_ i: Int, _ own: [VRRPInstance.Effect], at now: Int64) -> [Effect] {
        var effects = wrap(i, own)
        guard let g = groupOf[i] else { return effects }
        for case .transition(_, let to) in own {
            for m in groups[g].members where m != i {
                switch (to, instances[m].state) {
                case (.backup, .master), (.master, .backup), (.fault, .backup), (.fault, .master):
                    effects += wrap(m, instances[m].follow(to, at: now))
                default:
                    break
                }
            }
        }
        return effects
    }

    private func wrap(_ i: Int, _ effects: [VRRPInstance.Effect]) -> [Effect] {
        effects.map { .instance(i, $0) }
    }

    /// Groups whose members have all arrived in a new state.
    private mutating func groupChanges() -> [Effect] {
        var effects: [Effect] = []
        for (g, group) in groups.enumerated() {
            guard let first = group.members.first.map({ instances[$0].state }),
                  group.members.allSatisfy({ instances[$0].state == first }), groupState[g] != first else { continue }
            groupState[g] = first
            if first == .initialize, !started { continue }
            effects.append(.log(.info, "VRRP_Group(\(group.name)) Syncing instances to \(first.rawValue) state"))
            effects.append(.group(g, to: first))
        }
        return effects
    }
}
