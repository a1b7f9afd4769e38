import HealthCheck
import KeepalivedConfig
import LVSCore
import NIOCore

/// Health checks from keepalived.conf driving the table: the table served is the configured one
/// with the real servers that are down taken out (or, with inhibit_on_failure, left in at weight 0),
/// and the sorry server in their place while a service has lost its quorum.
extension Director {
    /// What the checkers of a configuration are, in the monitor's terms.
    struct HealthSetup {
        var services: [ServiceHealth] = []
        var names: [HealthMonitor.ServiceNames] = []
        var checkers: [HealthMonitor.Checker] = []
        /// Checker kinds in the file that this build does not run yet (their real servers count as up).
        var unsupported: Set<String> = []
        /// Who is who, with their scripts, service by service (as `services`).
        var roster: [Roster.Service] = []
        /// What checking the scripts found (keepalived's lines).
        var scriptMessages: [String] = []
    }

    /// How long a notify or quorum script may run before it is killed.
    static let notifyTimeout: Instant = 60 * second

    static let second: Instant = 1_000_000_000

    static func healthSetup(_ configuration: KeepalivedConfiguration, plan: TablePlan,
                            scripts: ScriptPolicy.Host = ScriptPolicy.Host()) -> HealthSetup {
        var setup = HealthSetup()
        var policy = ScriptPolicy(configuration.globalDefinitions, host: scripts)
        for (si, service) in plan.services.enumerated() {
            guard let d = service.definition else {
                setup.services.append(ServiceHealth(servers: []))
                setup.names.append(.init(service: "\(service.config.key)", servers: []))
                setup.roster.append(Roster.Service(key: service.config.key, name: "\(service.config.key)"))
                continue
            }
            let vs = configuration.virtualServers[d]
            let protocolName = service.config.key.isFwmark ? "fwm" : (vs.protocolName?.name.lowercased() ?? "tcp")
            var servers: [ServiceHealth.Server] = []
            var serverNames: [String] = []
            var rosterServers: [Roster.Server] = []
            for (ri, rs) in vs.realServers.enumerated() where ri < service.servers.count {
                let configured = service.servers[ri]
                var checkerCount = 0
                for checker in rs.checkers {
                    let kind: ProbeSpec.Kind
                    switch checker.kind {
                    case .tcp: kind = .tcp
                    case .http, .ssl:
                        kind = .http(checker.urls.compactMap { u in
                            u.path.map { HTTPExpectation(path: $0, statusCodes: u.statusCodes, digest: u.digest, virtualhost: u.virtualhost) }
                        }, virtualhost: checker.virtualhost ?? rs.virtualhost ?? vs.virtualhost)
                    case .misc:
                        guard let path = checker.miscPath, !path.argv.isEmpty,
                              let script = policy.prepareMisc(path, user: checker.user, group: checker.group) else { continue }
                        kind = .misc(argv: script.argv, dynamic: checker.miscDynamic, identity: script.identity)
                    case .smtp:
                        kind = .smtp(heloName: checker.heloName ?? "smtpchecker.keepalived.org")
                    case .udp:
                        kind = .udp(payload: checker.payload ?? [], reply: checker.requireReply.map {
                            Prober.ReplyPattern(hex: $0, minimumLength: Int(checker.minReplyLength ?? 0), maximumLength: Int(checker.maxReplyLength ?? 255))
                        })
                    case .dns:
                        kind = .dns(name: checker.dnsName ?? "", type: checker.dnsType ?? "SOA")
                    case .ping:
                        kind = .ping
                    case .file:
                        guard let track = configuration.trackFiles.first(where: { $0.name == checker.trackFile }), let path = track.file else { continue }
                        kind = .file(path: path, weight: checker.weight ?? track.weight, reverse: checker.reverse || track.reverse,
                                     baseWeight: configured.weight)
                    default:
                        setup.unsupported.insert(checker.kind.rawValue)
                        continue
                    }
                    let c = checker.connection
                    let delayLoop = Instant(c.delayLoop ?? rs.delayLoop ?? vs.delayLoop ?? 60_000_000) * 1000
                    // MISC_CHECK: misc_timeout (unset or 0: the delay loop), retry 0 by default.
                    let miscTimeout = checker.miscTimeout.flatMap { $0 == 0 ? nil : Instant($0) * Director.second } ?? delayLoop
                    let timing = CheckTiming(
                        delayLoop: delayLoop,
                        retry: c.retry ?? rs.retry ?? vs.retry ?? (checker.kind == .misc ? 0 : checker.kind == .dns ? 3 : 1),
                        delayBeforeRetry: c.delayBeforeRetry.map { Instant($0) * 1000 } ?? rs.delayBeforeRetry.map { Instant($0) * 1000 }
                            ?? vs.delayBeforeRetry.map { Instant($0) * 1000 }
                            ?? (checker.kind == .http || checker.kind == .ssl ? 3 * Director.second : checker.kind == .dns ? delayLoop : Director.second),
                        warmup: c.warmup.map { Instant($0) * 1000 } ?? rs.warmup.map { Instant($0) * 1000 } ?? vs.warmup.map { Instant($0) * 1000 } ?? delayLoop,
                        timeout: checker.kind == .misc ? miscTimeout : Instant(c.connectTimeout ?? rs.connectTimeout ?? vs.connectTimeout ?? 5_000_000) * 1000)
                    let target = Endpoint(c.connectIP ?? rs.address, c.connectPort ?? (configured.endpoint.port == 0 ? service.config.key.port : configured.endpoint.port))
                    let tls = checker.kind == .ssl
                        ? TLSOptions(serverName: checker.enableSNI == true ? (checker.virtualhost ?? rs.virtualhost ?? vs.virtualhost) : nil) : nil
                    let spec = ProbeSpec(kind: kind, target: target, bindTo: c.bindTo, bindPort: c.bindPort, tls: tls)
                    setup.checkers.append(HealthMonitor.Checker(
                        service: si, server: servers.count, index: checkerCount, spec: spec, timing: timing,
                        alpha: c.alpha ?? rs.alpha ?? vs.alpha,
                        identity: "\(service.config.key)|\(configured.endpoint)|\(checkerCount)|\(spec)",
                        label: Director.label(checker.kind)))
                    checkerCount += 1
                }
                servers.append(ServiceHealth.Server(weight: configured.weight, inhibitOnFailure: rs.inhibitOnFailure ?? vs.inhibitOnFailure,
                                                    checkerCount: checkerCount))
                let serverName = "[\(configured.endpoint.address)]:\(protocolName):\(configured.endpoint.port)"
                serverNames.append(serverName)
                rosterServers.append(Roster.Server(endpoint: configured.endpoint, name: serverName,
                                                   notifyUp: policy.prepare(rs.notifyUp, kind: "notify"),
                                                   notifyDown: policy.prepare(rs.notifyDown, kind: "notify")))
            }
            setup.services.append(ServiceHealth(servers: servers, quorum: vs.quorum, hysteresis: vs.hysteresis))
            let name: String
            switch service.config.key {
            case .address(_, let ip, let port): name = "[\(ip)]:\(protocolName):\(port)"
            case .fwmark(let mark, _): name = "FWM \(mark)"
            }
            setup.names.append(.init(service: name, servers: serverNames))
            setup.roster.append(Roster.Service(key: service.config.key, name: name, omega: vs.omega,
                                               quorumUp: policy.prepare(vs.quorumUp, kind: "notify"),
                                               quorumDown: policy.prepare(vs.quorumDown, kind: "notify"), servers: rosterServers))
        }
        setup.scriptMessages = policy.finish()
        return setup
    }

    /// keepalived's name for a checker in its log lines.
    static func label(_ kind: CheckerDefinition.Kind) -> String {
        switch kind {
        case .tcp: return "TCP"
        case .http: return "HTTP"
        case .ssl: return "SSL"
        case .smtp: return "SMTP"
        case .misc: return "Misc"
        case .dns: return "DNS"
        case .udp: return "UDP"
        case .ping: return "PING"
        case .file: return "FILE"
        case .bfd: return "BFD"
        }
    }

    /// The table to serve: the configured plan as the checkers see it.
    static func effectivePlan(_ plan: TablePlan, health: [ServiceHealth]) -> TablePlan {
        var effective = plan
        for (si, service) in plan.services.enumerated() where si < health.count {
            let h = health[si]
            var servers: [RealServerConfig] = []
            for (ri, server) in service.servers.enumerated() {
                guard ri < h.servers.count else {
                    servers.append(server)
                    continue
                }
                var s = server
                if h.servers[ri].isUp {
                    s.weight = h.servers[ri].weight
                } else if h.servers[ri].inhibitOnFailure {
                    s.weight = 0
                } else {
                    continue
                }
                servers.append(s)
            }
            if let sorry = service.sorryServer {
                if !h.hasQuorum {
                    // keepalived takes the live real servers out and serves the sorry server alone.
                    servers = [sorry]
                } else if service.sorryServerInhibit, !servers.contains(where: { $0.endpoint == sorry.endpoint }) {
                    var idle = sorry
                    idle.weight = 0
                    servers.append(idle)
                }
            }
            effective.services[si].servers = servers
        }
        return effective
    }
}
