/// A virtual service's health as keepalived keeps it (check/ipwrapper.c): each real server is up
/// only while every one of its checkers is; the sum of the weights of the real servers that are up
/// is compared with `quorum`, with `hysteresis`, and losing quorum brings in the sorry server.
public struct ServiceHealth: Hashable, Sendable {
    public struct Server: Hashable, Sendable {
        public var weight: Int32
        public var inhibitOnFailure: Bool
        /// Checkers that are down now (by index).
        public var down: Set<Int>
        public var checkerCount: Int

        public var isUp: Bool { down.isEmpty }

        /// All checkers start up; those that start down (`alpha`) are reported by the monitor.
        public init(weight: Int32, inhibitOnFailure: Bool, checkerCount: Int) {
            self.weight = weight
            self.inhibitOnFailure = inhibitOnFailure
            self.checkerCount = checkerCount
            down = []
        }
    }

    /// What the table should do.
    public enum Action: Hashable, Sendable {
        /// Put the real server in the pool with this weight (added, or its weight restored).
        case serve(server: Int, weight: Int32)
        /// Take it out: removed, or with `inhibit_on_failure` left in with weight 0.
        case withdraw(server: Int, inhibit: Bool)
        case quorumLost
        case quorumRegained
    }

    public private(set) var servers: [Server]
    public let quorum: UInt32
    public let hysteresis: UInt32
    public private(set) var hasQuorum: Bool

    public init(servers: [Server], quorum: UInt32 = 1, hysteresis: UInt32 = 0) {
        self.servers = servers
        self.quorum = quorum
        self.hysteresis = hysteresis
        hasQuorum = true
        hasQuorum = liveWeight >= UInt64(quorum)
    }

    public var liveWeight: UInt64 {
        servers.reduce(0) { $0 + ($1.isUp ? UInt64(max($1.weight, 0)) : 0) }
    }

    /// A checker of real server `server` changed state.
    public mutating func checker(_ checker: Int, of server: Int, _ transition: CheckerState.Transition) -> [Action] {
        guard servers.indices.contains(server) else { return [] }
        let wasUp = servers[server].isUp
        var actions: [Action] = []
        switch transition {
        case .up: servers[server].down.remove(checker)
        case .down: servers[server].down.insert(checker)
        case .weight(let w):
            servers[server].weight = w
            if servers[server].isUp { actions.append(.serve(server: server, weight: w)) }
        }
        let isUp = servers[server].isUp
        if wasUp && !isUp { actions.append(.withdraw(server: server, inhibit: servers[server].inhibitOnFailure)) }
        if !wasUp && isUp { actions.append(.serve(server: server, weight: servers[server].weight)) }
        actions += quorumActions()
        return actions
    }

    /// keepalived's quorum with hysteresis: lost below `quorum - hysteresis`, regained at
    /// `quorum + hysteresis` or more.
    private mutating func quorumActions() -> [Action] {
        let live = liveWeight
        if hasQuorum, live < UInt64(quorum) &- min(UInt64(hysteresis), UInt64(quorum)) {
            hasQuorum = false
            return [.quorumLost]
        }
        if !hasQuorum, live >= UInt64(quorum) + UInt64(hysteresis) {
            hasQuorum = true
            return [.quorumRegained]
        }
        return []
    }
}
