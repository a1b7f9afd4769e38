import KeepalivedConfig
import LVSCore
import Testing
import VRRP
@testable import Director

/// keepalived.conf's vrrp_instance, vrrp_script, track_file and vrrp_sync_group blocks as the VRRP
/// host runs them: keepalived's defaults, its rules for weights, the scripts and the routes.
@Suite struct VRRPPlanTests {
    static func plan(_ text: String) -> VRRPPlan {
        let c = KeepalivedConfiguration.load("/k", fileSystem: InMemoryFileSystem(["/k": text])).configuration
        return VRRPPlan(c, scripts: ScriptPolicyTests.host())
    }

    @Test func keepalivedsDefaultsApply() {
        let p = Self.plan("""
            vrrp_instance VI_1 {
                state MASTER
                interface eth0
                virtual_router_id 51
                authentication {
                    auth_type PASS
                    auth_pass longer-than-eight
                }
                virtual_ipaddress {
                    192.168.122.50/24 dev eth0 label eth0:1
                    192.168.122.51
                }
                virtual_ipaddress_excluded {
                    192.168.122.52
                }
            }
            """)
        let s = p.setups[0].settings
        // No priority with state MASTER: keepalived makes it the owner.
        #expect(s.priority == 255 && s.version == 2 && s.advertisementInterval == 1_000_000_000 && s.preempt)
        #expect(s.authentication == .password(Array("longer-t".utf8)))
        #expect(s.addresses.map(\.prefixLength) == [24, 32, 32] && s.addresses[0].label == "eth0:1" && s.addresses[2].excluded)
        #expect(s.advertisedAddresses == [IPAddress("192.168.122.50")!, IPAddress("192.168.122.51")!])
        #expect(s.announcements.delay == 5_000_000_000 && s.announcements.repeatCount == 5 && s.announcements.refresh == 0)
        #expect(s.destinations == [VRRPInstance.group4] && p.setups[0].resolveSource)
        #expect(p.owners[IPAddress("192.168.122.52")!] == "VI_1")
    }

    @Test func versionsIntervalsAndGlobals() {
        let p = Self.plan("""
            global_defs {
                vrrp_version 3
                vrrp_garp_master_delay 2
                vrrp_garp_master_refresh 60
                vrrp_mcast_group4 224.0.0.99
            }
            vrrp_instance A {
                interface eth0
                virtual_router_id 1
                advert_int 0.25
                virtual_ipaddress {
                    10.0.0.1
                }
            }
            vrrp_instance B {
                interface eth0
                virtual_router_id 2
                version 2
                advert_int 1.4
                unicast_src_ip 10.0.0.5
                unicast_peer {
                    10.0.0.6
                }
                virtual_ipaddress {
                    10.0.0.2
                }
            }
            vrrp_instance C {
                interface eth0
                virtual_router_id 3
                virtual_ipaddress {
                    2001:db8::1/64
                }
            }
            """)
        let (a, b, c) = (p.setups[0].settings, p.setups[1].settings, p.setups[2].settings)
        #expect(a.version == 3 && a.advertisementInterval == 250_000_000 && a.destinations == [IPAddress("224.0.0.99")!])
        #expect(a.announcements.delay == 2_000_000_000 && a.announcements.refresh == 60_000_000_000)
        #expect(b.version == 2 && b.advertisementInterval == 1_000_000_000, "v2 rounds to whole seconds")
        #expect(p.messages.contains { $0.contains("(B) VRRPv2 advertisement interval 1.4s must be an integer. rounding") })
        #expect(b.sourceAddress == IPAddress("10.0.0.5")! && !p.setups[1].resolveSource && b.destinations == [IPAddress("10.0.0.6")!])
        #expect(c.isV6 && c.version == 3 && c.destinations == [VRRPInstance.group6])
    }

    @Test func trackingWeightsScriptsFilesAndOwners() {
        let p = Self.plan("""
            vrrp_script chk_up {
                script "/bin/check"
                interval 2
                weight 20
                rise 2
                fall 3
            }
            vrrp_script chk_down {
                script "/bin/check --down"
                weight -30
            }
            vrrp_script unused {
                script "/bin/check"
            }
            track_file f1 {
                file /run/f1
                weight 5
            }
            vrrp_instance VI_1 {
                interface eth0
                virtual_router_id 51
                priority 100
                track_script {
                    chk_up
                    chk_down weight -10
                }
                track_interface {
                    eth1 weight -25
                    eth2
                }
                track_file {
                    f1
                }
                virtual_ipaddress {
                    10.0.0.1
                }
            }
            vrrp_instance OWNER {
                interface eth0
                virtual_router_id 52
                priority 255
                track_script {
                    chk_up
                }
                track_interface {
                    eth1 weight 10
                }
                virtual_ipaddress {
                    10.0.0.2
                }
            }
            """)
        let s = p.setups[0].settings
        #expect(s.trackedScripts == ["chk_up": .init(20), "chk_down": .init(-10)])
        #expect(s.trackedInterfaces == ["eth1": .init(-25), "eth2": .init(0)])
        #expect(s.trackedFiles == ["f1": .init(5)] && p.files == ["f1": "/run/f1"])
        // Only the scripts something tracks run; each with its interval, rise and fall.
        #expect(p.checks.map(\.name) == ["chk_down", "chk_up"])
        #expect(p.checks[1].interval == 2_000_000_000 && p.checks[1].timeout == 2_000_000_000 && p.checks[1].script.argv == ["/bin/check"])
        #expect(p.scripts["chk_up"] == VRRPTracking.ScriptStatus(rise: 2, fall: 3))
        // The owner keeps no weighted tracking.
        let o = p.setups[1].settings
        #expect(o.trackedScripts.isEmpty && o.trackedInterfaces == ["eth1": .init(0)])
        #expect(p.messages.contains("(OWNER) ignoring weighted track_script chk_up with priority 255"))
    }

    @Test func syncGroupsNotifyAndRoutes() {
        let p = Self.plan("""
            vrrp_sync_group G {
                group {
                    VI_1
                    VI_2
                }
                notify "/bin/up group"
                notify_master /bin/up
            }
            vrrp_instance VI_1 {
                interface eth0
                virtual_router_id 1
                notify_backup "/bin/down now"
                notify /bin/up
                virtual_ipaddress {
                    10.0.0.1
                }
                virtual_routes {
                    10.9.0.0/16 via 10.0.0.254
                    src 10.0.0.1 to 10.8.0.0/16 dev eth1 metric 5 table 100
                    blackhole 10.7.0.0/16
                    default via 10.0.0.254
                    10.6.0.0/16 frobnicate
                }
            }
            vrrp_instance VI_2 {
                interface eth1
                virtual_router_id 2
                virtual_ipaddress {
                    10.1.0.1
                }
            }
            """)
        #expect(p.groups.count == 1 && p.groups[0].name == "G" && p.groups[0].members == ["VI_1", "VI_2"])
        #expect(p.groupNotify["G"]?.generic?.argv == ["/bin/up", "group"] && p.groupNotify["G"]?.byState["MASTER"]?.argv == ["/bin/up"])
        #expect(p.instanceNotify["VI_1"]?.byState["BACKUP"]?.argv == ["/bin/down", "now"] && p.instanceNotify["VI_1"]?.generic?.argv == ["/bin/up"])
        let r = p.setups[0].routes
        #expect(r.count == 4)
        #expect(r[0] == VRRPHost.Route(destination: IPAddress("10.9.0.0")!, prefixLength: 16, isV6: false, gateway: IPAddress("10.0.0.254")!))
        #expect(r[1] == VRRPHost.Route(destination: IPAddress("10.8.0.0")!, prefixLength: 16, isV6: false, device: "eth1",
                                       source: IPAddress("10.0.0.1")!, metric: 5, table: 100, scope: 253))
        #expect(r[2].type == 6 && r[3].destination == nil && r[3].prefixLength == 0)
        #expect(p.messages.contains { $0.contains("'frobnicate' is not understood - ignoring") })
    }

    @Test func lvsSyncDaemonFollowsItsInstance() {
        let instance = """
            vrrp_instance VI_1 {
                interface eth0
                virtual_router_id 51
                virtual_ipaddress {
                    10.0.0.100
                }
            }
            """
        let p = Self.plan("global_defs {\n lvs_sync_daemon eth1 VI_1 maxlen 1200 port 9000 ttl 2 group 239.1.1.1\n}\n" + instance)
        #expect(p.syncInstance == "VI_1")
        #expect(p.syncDaemon?.interface == "eth1" && p.syncDaemon?.syncID == 51, "the sync id defaults to the VRID")
        #expect(p.syncDaemon?.maxLength == 1200 && p.syncDaemon?.port == 9000 && p.syncDaemon?.ttl == 2)
        #expect(p.syncDaemon?.group == IPAddress("239.1.1.1")!)
        #expect(Self.plan("global_defs {\n lvs_sync_daemon eth1 VI_1 id 7\n}\n" + instance).syncDaemon?.syncID == 7)
        let missing = Self.plan("global_defs {\n lvs_sync_daemon eth1 VI_9\n}\n" + instance)
        #expect(missing.syncDaemon == nil && missing.messages.contains("Unable to find vrrp instance VI_9 for lvs_syncd - clearing lvs_syncd config"))
        let alone = Self.plan("global_defs {\n lvs_sync_daemon eth1\n}\n" + instance)
        #expect(alone.syncInstance == nil && alone.syncDaemon?.syncID == 0)
    }
}
