import LVSCore
import Testing
@testable import KeepalivedConfig

/// The typed model and keepalived's checks on it.
@Suite struct ConfigurationTests {
    func load(_ text: String, files: [String: String] = [:], interfaces: Set<String>? = ["eth0", "lo"],
              keepDefaults: Bool = false) -> KeepalivedConfiguration.Loaded {
        var all = files
        all["/k.conf"] = text
        var loaded = KeepalivedConfiguration.load("/k.conf", fileSystem: InMemoryFileSystem(all),
                                                  environment: .init(interfaces: interfaces, configID: "lb1"))
        if !keepDefaults { loaded.diagnostics.removeAll(where: ConfigurationTests.isDefaulting) }
        return loaded
    }

    /// keepalived -t reports a virtual server without `protocol`, `lvs_sched` or `lvs_method`; the
    /// tests about something else leave those lines out of their configurations and these findings out.
    static func isDefaulting(_ d: Diagnostic) -> Bool {
        ["no protocol set", "no scheduler set", "no forwarding method set"].contains { d.message.contains($0) }
    }

    @Test func missingProtocolSchedulerAndMethodAreReportedAndDefaultedAsKeepalivedDoes() {
        let loaded = load("virtual_server 10.0.0.1 53 {\n real_server 10.0.1.1 53 {\n }\n}", keepDefaults: true)
        #expect(loaded.diagnostics.map(\.message) == [
            "Virtual server [10.0.0.1]:none:53: no protocol set - defaulting to UDP",
            "Virtual server [10.0.0.1]:udp:53: no scheduler set, setting default 'wlc'",
            "Virtual server [10.0.0.1]:udp:53: no forwarding method set, setting default NAT",
        ])
        #expect(TablePlan(loaded.configuration).services.map(\.config) == [VirtualService.Config(key: .address(.udp, IPAddress("10.0.0.1")!, 53))])
    }

    /// Seed 002's director: VRRP master for the VIP and a DR service with TCP checks (old keywords).
    static let seed = """
        ! Configuration File for keepalived
        global_defs {
           notification_email {
             root@localhost
           }
           notification_email_from keepalived@localhost
           smtp_server 127.0.0.1
           smtp_connect_timeout 30
           router_id LVS_DEVEL
        }
        vrrp_instance VI_1 {
            state MASTER
            interface eth0
            virtual_router_id 51
            priority 100
            advert_int 1
            authentication {
                auth_type PASS
                auth_pass 1111
            }
            virtual_ipaddress {
                192.168.1.200/24 dev eth0 label eth0:1
            }
        }
        virtual_server 192.168.1.200 80 {
            delay_loop 6
            lb_algo wrr
            lb_kind DR
            persistence_timeout 50
            protocol TCP
            real_server 192.168.1.201 80 {
                weight 3
                TCP_CHECK {
                    connect_timeout 3
                    retry 3
                    delay_before_retry 3
                    connect_port 80
                }
            }
            real_server 192.168.1.202 80 {
                weight 1
                HTTP_GET {
                    url {
                        path /health
                        status_code 200-299 301
                        digest 9b3a0c85a887a256d6939da88aabd8cd
                    }
                    nb_get_retry 2
                }
            }
        }
        """

    @Test func seedDirectorIsModelledInFull() throws {
        let loaded = load(ConfigurationTests.seed)
        #expect(loaded.diagnostics.map(\.message) == ["nb_get_retry is deprecated - please use 'retry'"])
        let c = loaded.configuration
        #expect(c.globalDefinitions.routerID == "LVS_DEVEL")
        #expect(c.globalDefinitions.notificationEmail == ["root@localhost"])
        let vi = try #require(c.instances.first)
        #expect(vi.state == .master && vi.virtualRouterID == 51 && vi.priority == 100 && vi.advertInterval == 1_000_000)
        #expect(vi.authenticationType == "PASS" && vi.authenticationPassword == "1111")
        #expect(vi.virtualAddresses.first?.address == IPAddress("192.168.1.200") && vi.virtualAddresses.first?.prefixLength == 24)
        #expect(vi.virtualAddresses.first?.label == "eth0:1")
        let vs = try #require(c.virtualServers.first)
        #expect(vs.address == .endpoint(IPAddress("192.168.1.200")!, 80))
        #expect(vs.scheduler == "wrr" && vs.forwarding?.method == .gatewaying && vs.persistenceTimeout == 50 && vs.delayLoop == 6_000_000)
        #expect(vs.realServers.map(\.weight) == [3, 1])
        #expect(vs.realServers[0].checkers.first?.kind == .tcp)
        #expect(vs.realServers[0].checkers.first?.connection.retry == 3)
        #expect(vs.realServers[0].location == SourceLocation(file: "/k.conf", line: 31))
        let url = try #require(vs.realServers[1].checkers.first?.urls.first)
        #expect(url.path == "/health" && url.statusCodes == [200...299, 301...301] && url.digest == "9b3a0c85a887a256d6939da88aabd8cd")
        let plan = TablePlan(c)
        #expect(plan.services.map(\.config) == [VirtualService.Config(key: .address(.tcp, IPAddress("192.168.1.200")!, 80), scheduler: "wrr",
                                                                      flags: .persistent, persistenceTimeout: 50)])
        #expect(plan.services[0].servers.map(\.forwarding) == [.gatewaying, .gatewaying])
    }

    @Test func newAndOldKeywordNamesMeanTheSame() {
        let old = load("virtual_server 10.0.0.1 80 {\n lb_algo rr\n lb_kind NAT\n real_server 10.0.1.1 8080 {\n }\n}")
        let new = load("virtual_server 10.0.0.1 80 {\n lvs_sched rr\n lvs_method NAT\n real_server 10.0.1.1 8080 {\n }\n}")
        #expect(TablePlan(old.configuration) == TablePlan(new.configuration))
        #expect(old.isValid && new.isValid)
    }

    @Test func findingsNameTheFileAndLine() {
        let loaded = load("""
            virtual_server 10.0.0.1 80 {
                lvs_sched fastest
                lvs_method BRIDGE
                persistence_timeout 99999999
                real_server 10.0.1.1 80 {
                    weight -1
                }
                bogus 1
            }
            include extra.conf
            """, files: ["/extra.conf": "virtual_server 10.0.0.300 80 {\n}\n"])
        #expect(loaded.diagnostics.map(\.description) == [
            "(/k.conf: Line 2) Invalid lvs_scheduler 'fastest' - ignoring",
            "(/k.conf: Line 3) PARSER : unknown [BRIDGE] routing method for virtual server.",
            "(/k.conf: Line 4) number '99999999' outside range [1, 2678400]",
            "(/k.conf: Line 4) persistence_timeout invalid",
            "(/k.conf: Line 6) negative number '-1'",
            "(/k.conf: Line 6) Real server weight -1 is outside range 0-2147483647",
            "(/k.conf: Line 8) Unknown keyword 'bogus'",
            "(/extra.conf: Line 1) Invalid virtual server IP address/port 10.0.0.300/80 - skipping",
        ])
        #expect(loaded.exitCode == 5)
    }

    @Test func unknownKeywordsAreReportedAndTheirBlocksSkipped() {
        let loaded = load("virtual_server 10.0.0.1 80 {\n future_block {\n  weight 5\n }\n real_server 10.0.1.1 80 {\n }\n}")
        #expect(loaded.diagnostics.map(\.message) == ["Unknown keyword 'future_block'"])
        #expect(loaded.configuration.virtualServers.first?.realServers.count == 1)
    }

    @Test func unbalancedBracesAreReportedWhereTheyAre() {
        let extra = load("virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n }\n}\n}")
        #expect(extra.diagnostics.map(\.description) == ["(/k.conf: Line 5) Extra '}' found"])
        let missing = load("virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n }\n")
        #expect(missing.diagnostics.map(\.description) == ["(/k.conf: Line 1) There are 1 missing '}'s or extra '{'s"])
        #expect(missing.configuration.virtualServers.count == 1)
    }

    @Test func missingFilesAndInterfacesAreEnvironmentFindings() {
        let loaded = KeepalivedConfiguration.load("/nowhere.conf", fileSystem: InMemoryFileSystem())
        #expect(loaded.diagnostics.map(\.description) == ["Unable to find configuration file /nowhere.conf"])
        #expect(loaded.exitCode == 4)
        let vrrp = load("vrrp_instance VI_1 {\n interface eth9\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n}")
        #expect(vrrp.diagnostics.map(\.description) == ["(/k.conf: Line 2) WARNING - interface eth9 for vrrp_instance VI_1 doesn't exist",
                                                         "Non-existent interface specified in configuration"])
        #expect(vrrp.exitCode == 5)
    }

    @Test func duplicateVirtualServersAndRealServers() {
        let loaded = load("""
            virtual_server 10.0.0.1 80 {
                real_server 10.0.1.1 80 {
                }
                real_server 10.0.1.1 80 {
                }
            }
            virtual_server 10.0.0.1 80 {
                real_server 10.0.1.2 80 {
                }
            }
            """)
        #expect(loaded.diagnostics.map(\.description) == [
            "(/k.conf: Line 4) VS [10.0.0.1]:udp:80: real server [10.0.1.1]:80 is duplicated - removing second rs",
            "(/k.conf: Line 7) Virtual server [10.0.0.1]:udp:80 is defined twice (first at /k.conf:1) - ignoring the second",
        ])
        #expect(TablePlan(loaded.configuration).services.map(\.servers.count) == [1])
    }

    @Test func groupsExpandToOneServicePerAddressAndMark() {
        let loaded = load("""
            virtual_server_group web {
                10.0.0.1-3 80
                10.0.1.0/31 443
                fwmark 7
            }
            virtual_server group web {
                lvs_sched sh
                sh-port
                real_server 10.0.2.1 80 {
                    weight 2
                }
            }
            """)
        #expect(loaded.isValid)
        let keys = TablePlan(loaded.configuration).services.map(\.config.key)
        let ip = { (text: String) in IPAddress(text)! }
        #expect(keys == [.address(.udp, ip("10.0.0.1"), 80), .address(.udp, ip("10.0.0.2"), 80), .address(.udp, ip("10.0.0.3"), 80),
                         .address(.udp, ip("10.0.1.0"), 443), .address(.udp, ip("10.0.1.1"), 443), .fwmark(7, .inet)])
        #expect(TablePlan(loaded.configuration).services[0].config.flags == [.scheduler2])
    }

    @Test func tunnelOptionsAndTheirRules() {
        let loaded = load("""
            virtual_server 10.0.0.1 80 {
                lvs_method TUN type gue port 6080 csum
                real_server 10.0.1.1 80 {
                }
                real_server 10.0.1.2 80 {
                    lvs_method TUN type ipip csum
                }
            }
            """)
        #expect(loaded.diagnostics.map(\.message) == ["ipip tunnels do not support checksum option."])
        let servers = TablePlan(loaded.configuration).services[0].servers
        #expect(servers[0].tunnel == TunnelConfig(kind: .gue, port: 6080, checksum: .checksum))
        #expect(servers[1].tunnel == TunnelConfig())
    }

    @Test func scriptsAreSplitWithoutAShell() {
        let loaded = load("""
            virtual_server 10.0.0.1 80 {
                quorum_up "/usr/local/bin/alert 'quorum up' \\x41" nobody
                real_server 10.0.1.1 80 {
                    MISC_CHECK {
                        misc_path "/bin/check --host 10.0.1.1"
                        misc_timeout 5
                        misc_dynamic
                    }
                }
            }
            """)
        #expect(loaded.isValid)
        let vs = loaded.configuration.virtualServers[0]
        #expect(vs.quorumUp?.argv == ["/usr/local/bin/alert", "quorum up", "A"])
        #expect(vs.quorumUp?.user == "nobody")
        #expect(vs.realServers[0].checkers[0].miscPath?.argv == ["/bin/check", "--host", "10.0.1.1"])
        #expect(vs.realServers[0].checkers[0].miscDynamic)
    }

    @Test func timersTakeSixDecimals() {
        let loaded = load("virtual_server 10.0.0.1 80 {\n delay_loop 0.5\n connect_timeout 1.0000005\n real_server 10.0.1.1 80 {\n }\n}")
        #expect(loaded.configuration.virtualServers[0].delayLoop == 500_000)
        #expect(loaded.configuration.virtualServers[0].connectTimeout == 1_000_001)
        #expect(loaded.diagnostics.map(\.message) == ["number '1.0000005' has too many decimal places"])
    }
}

/// What a reload changes.
@Suite struct TablePlanTests {
    func plan(_ text: String) -> TablePlan {
        TablePlan(KeepalivedConfiguration.load("/k", fileSystem: InMemoryFileSystem(["/k": text])).configuration)
    }

    @Test func onlyTheDifferenceIsApplied() {
        let before = plan("""
            virtual_server 10.0.0.1 80 {
                lvs_sched rr
                protocol TCP
                real_server 10.0.1.1 80 {
                    weight 1
                }
                real_server 10.0.1.2 80 {
                }
            }
            virtual_server 10.0.0.2 80 {
                protocol TCP
                real_server 10.0.1.1 80 {
                }
            }
            """)
        let after = plan("""
            virtual_server 10.0.0.1 80 {
                lvs_sched rr
                protocol TCP
                real_server 10.0.1.1 80 {
                    weight 5
                }
                real_server 10.0.1.3 80 {
                }
            }
            virtual_server 10.0.0.3 80 {
                protocol TCP
                lvs_sched wrr
                real_server 10.0.1.1 80 {
                }
            }
            """)
        let ip = { (text: String) in IPAddress(text)! }
        let vs1 = VirtualService.Key.address(.tcp, ip("10.0.0.1"), 80)
        let vs3 = VirtualService.Key.address(.tcp, ip("10.0.0.3"), 80)
        let masq = { (a: String, w: Int32) in RealServerConfig(Endpoint(ip(a), 80), forwarding: .masquerade, weight: w) }
        #expect(before.changes(to: after) == [
            .deleteService(.address(.tcp, ip("10.0.0.2"), 80)),
            .deleteServer(Endpoint(ip("10.0.1.2"), 80), vs1),
            .editServer(masq("10.0.1.1", 5), vs1),
            .addServer(masq("10.0.1.3", 1), vs1),
            .addService(VirtualService.Config(key: vs3, scheduler: "wrr")),
            .addServer(masq("10.0.1.1", 1), vs3),
        ])
        #expect(after.changes(to: after).isEmpty)
    }

    @Test func applyingKeepsUnchangedServersAndTheirCounters() throws {
        var table = IPVS()
        let first = plan("virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.1.1 80 {\n }\n real_server 10.0.1.2 80 {\n }\n}")
        #expect(TablePlan.apply(TablePlan().changes(to: first), to: &table).allSatisfy { $0.1 == nil })
        let key = VirtualService.Key.address(.tcp, IPAddress("10.0.0.1")!, 80)
        let before = try #require(table.serviceSnapshots.first)
        let second = plan("virtual_server 10.0.0.1 80 {\n protocol TCP\n real_server 10.0.1.1 80 {\n weight 4\n }\n real_server 10.0.1.2 80 {\n }\n}")
        #expect(TablePlan.apply(first.changes(to: second), to: &table).allSatisfy { $0.1 == nil })
        let servers = try #require(table.serviceSnapshots.first?.servers)
        #expect(servers.map(\.config.weight).sorted() == [1, 4])
        #expect(table.serviceSnapshots.first?.config == before.config)
        #expect(table.serviceHandle(for: key) != nil)
    }
}
