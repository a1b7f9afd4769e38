import HealthCheck
import KeepalivedConfig
import LVSCore
import Testing
@testable import Director

/// The table served under health checks: the configured plan as the checkers see it.
@Suite struct HealthPlanTests {
    func plan(_ text: String) -> (KeepalivedConfiguration, TablePlan) {
        let c = KeepalivedConfiguration.load("/k", fileSystem: InMemoryFileSystem(["/k": text])).configuration
        return (c, TablePlan(c))
    }

    static let config = """
        virtual_server 10.0.0.1 80 {
            lvs_sched rr
            lvs_method NAT
            protocol TCP
            sorry_server 10.0.9.9 80
            sorry_server_inhibit
            real_server 10.0.1.1 80 {
                weight 2
                TCP_CHECK {
                }
            }
            real_server 10.0.1.2 80 {
                weight 3
                inhibit_on_failure
                TCP_CHECK {
                }
            }
        }
        """

    @Test func downServersLeaveOrDropToZeroAndTheSorryServerWaitsAtZero() throws {
        let (c, p) = plan(HealthPlanTests.config)
        let setup = Director.healthSetup(c, plan: p)
        #expect(setup.checkers.count == 2)
        var health = setup.services
        let up = Director.effectivePlan(p, health: health).services[0].servers.map { "\($0.endpoint) \($0.weight)" }
        #expect(up == ["10.0.1.1:80 2", "10.0.1.2:80 3", "10.0.9.9:80 0"])
        _ = health[0].checker(0, of: 0, .down("x"))
        _ = health[0].checker(0, of: 1, .down("x"))
        let down = Director.effectivePlan(p, health: health).services[0].servers.map { "\($0.endpoint) \($0.weight)" }
        #expect(down == ["10.0.9.9:80 1"], "quorum lost: the sorry server alone")
        _ = health[0].checker(0, of: 0, .up)
        let back = Director.effectivePlan(p, health: health).services[0].servers.map { "\($0.endpoint) \($0.weight)" }
        #expect(back == ["10.0.1.1:80 2", "10.0.1.2:80 0", "10.0.9.9:80 0"])
    }
}
