import Foundation
import Testing
@testable import KeepalivedConfig

/// The pre-processing examples of keepalived.conf(5) (2.2.7), each with what the manual says it
/// produces.
@Suite struct ManualExampleTests {
    func words(_ text: String, id: String? = nil) -> [[String]] {
        ConfigReader.read("/etc/keepalived/keepalived.conf", fileSystem: InMemoryFileSystem(["/etc/keepalived/keepalived.conf": text]),
                          options: ConfigReader.Options(configID: id)).lines.map(\.words)
    }

    func joined(_ text: String, id: String? = nil) -> [String] { words(text, id: id).map { $0.joined(separator: " ") } }

    @Test func conditionalConfiguration() {
        let text = """
            global_defs {
                @main   router_id main_router
                @backup router_id backup_router
            }
            vrrp_instance VRRP {
                @main    unicast_src_ip 1.2.3.4
                @backup  unicast_src_ip 1.2.3.5
                @backup2 unicast_src_ip 1.2.3.6
                unicast_peer {
                    @^main    1.2.3.4
                    @^backup  1.2.3.5
                    @^backup2 1.2.3.6
                }
            }
            """
        let main = joined(text, id: "main")
        #expect(main.contains("router_id main_router") && !main.contains("router_id backup_router"))
        #expect(main.filter { $0.hasPrefix("1.2.3.") } == ["1.2.3.5", "1.2.3.6"])
        #expect(joined(text, id: "backup").contains("router_id backup_router"))
        #expect(!joined(text, id: "other").contains { $0.hasPrefix("router_id") })
    }

    @Test func substitutionIsAtReplacementTime() {
        let text = """
            $ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}
            $ADDRESS_BASE_SUB=0
            ${ADDRESS_BASE}.100/32
            $ADDRESS_BASE_SUB=10
            ${ADDRESS_BASE}.100/32
            """
        #expect(joined(text) == ["10.2.0.100/32", "10.2.10.100/32"])
    }

    @Test func substitutionWithConditions() {
        let text = "@main $PRIORITY=240\n@backup $PRIORITY=200\nvrrp_instance VI_0 {\n    priority $PRIORITY\n}"
        #expect(joined(text, id: "main") == ["vrrp_instance VI_0", "{", "priority 240", "}"])
        #expect(joined(text, id: "backup") == ["vrrp_instance VI_0", "{", "priority 200", "}"])
        #expect(joined("$IF_MAIN=@main\n$IF_MAIN priority 240", id: "main") == ["priority 240"])
        #expect(joined("$IF_MAIN=@main\n$IF_MAIN priority 240", id: "low").isEmpty)
    }

    @Test func multiLineDefinition() {
        let text = #"""
            $INSTANCE= \
            vrrp_instance VI_${NUM} { \
                interface eth0.${NUM} \
                use_vmac vrrp${NUM}.1 \
                virtual_router_id 1 \
                @high priority 130 \
                @low priority 120 \
                advert_int 1 \
                virtual_ipaddress { \
                    10.0.${NUM}.254/24 \
                } \
                track_script { \
                    offset_instance_${NUM} \
                } \
            }

            $NUM=0
            $INSTANCE

            $NUM=1
            $INSTANCE
            """#
        let one = ["{", "interface eth0.N", "use_vmac vrrpN.1", "virtual_router_id 1", "priority 130", "advert_int 1", "virtual_ipaddress", "{",
                   "10.0.N.254/24", "}", "track_script", "{", "offset_instance_N", "}", "}"]
        let expected = ["vrrp_instance VI_0"] + one.map { $0.replacingOccurrences(of: "N", with: "0") }
            + ["vrrp_instance VI_1"] + one.map { $0.replacingOccurrences(of: "N", with: "1") }
        #expect(joined(text, id: "high") == expected)
    }

    @Test func nestedMultiLineDefinitionsMakeTwoVirtualServersOfThreeRealServers() {
        let text = #"""
            $RS= \
            real_server 192.168.${VS_NUM}.${RS_NUM} 80 { \
                weight 1 \
                inhibit_on_failure \
                smtp_alert \
                MISC_CHECK { \
                    misc_path "${_PWD}/scripts/vs.sh RS_misc.${INST}.${VS_NUM}.${RS_NUM}.0 10.0.${VS_NUM}.4:80->192.168.${VS_NUM}.${RS_NUM}:80" \
                } \
                notify_up "${_PWD}/scripts/notify.sh RS_notify.${INST}.${VS_NUM}.${RS_NUM} UP 10.0.${VS_NUM}.4:80->192.168.${VS_NUM}.${RS_NUM}:80" \
            }

            $VS= \
            virtual_server 10.0.${VS_NUM}.4 80 { \
                quorum 2 \
                quorum_up "${_PWD}/scripts/notify.sh VS_notify.${INST} UP 10.0.${VS_NUM}.4:80" \
                $RS_NUM=1 \
                $RS \
                $RS_NUM=2 \
                $RS \
                $RS_NUM=3 \
                $RS \
            }

            $VS_NUM=0
            $ALPHA=alpha
            $VS

            $VS_NUM=1
            $ALPHA=
            $VS
            """#
        let loaded = KeepalivedConfiguration.load("/etc/keepalived/keepalived.conf",
                                                  fileSystem: InMemoryFileSystem(["/etc/keepalived/keepalived.conf": text]))
        let servers = loaded.configuration.virtualServers
        #expect(servers.map(\.address.description) == ["10.0.0.4 80", "10.0.1.4 80"])
        #expect(servers.map { $0.realServers.map(\.address.description) } == [
            ["192.168.0.1", "192.168.0.2", "192.168.0.3"], ["192.168.1.1", "192.168.1.2", "192.168.1.3"]])
        #expect(servers[1].realServers[2].checkers[0].miscPath?.argv == [
            "/etc/keepalived/scripts/vs.sh", "RS_misc.${INST}.1.3.0", "10.0.1.4:80->192.168.1.3:80"])
        #expect(servers[0].quorumUp?.argv.first == "/etc/keepalived/scripts/notify.sh")
    }

    @Test func sequenceBlocks() {
        #expect(joined("~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1") ==
            ["ip_address 10.0.0.1", "ip_address 10.0.1.1", "ip_address 10.0.2.1", "ip_address 10.0.3.1"])
        let v6 = ["ip_address fe80::20:90:1", "ip_address fe80::20:a0:1", "ip_address fe80::20:b0:1", "ip_address fe80::20:c0:1"]
        #expect(joined("~SEQx(SUBNET, 144, 16, 192) ip_address fe80::20:${SUBNET}:1") == v6)
        #expect(joined("~SEQx(SUBNET, 0x90, 0x10, 0xc0) ip_address fe80::20:${SUBNET}:1") == v6)
        let nested = joined("virtual_ipaddress {\n    ~SEQx(AD2, 0x90, 0x10, 0xc0) ~SEQx(AD1, 0x12, -1, 0x0c) fe81::10:${AD2}:${AD1}\n}")
        #expect(nested.count == 3 + 4 * 7)
        #expect(nested[2] == "fe81::10:90:12" && nested[3] == "fe81::10:90:11" && nested[29] == "fe81::10:c0:c")
    }

    @Test func threeNestedSequencesMake65024Instances() {
        let text = #"""
            $VI4= \
            track_file offset_instance_4.${IF}.${NUM}.${ID} { \
                file "${_PWD}/679/track_files/4.${IF}.${NUM}.${ID}" \
                weight -100 \
            } \
            vrrp_instance vrrp4.${IF}.${NUM}.${ID} { \
                interface bond${IF}.${NUM} \
                use_vmac vrrp4.${IF}.${NUM}.${ID} \
                virtual_router_id ${ID} \
                priority 130 \
                virtual_ipaddress { \
                    10.${IF}.${NUM}.${ID}/24 \
                } \
                track_file { \
                    offset_instance_4.${IF}.${NUM}.${ID} \
                } \
            }

            ~SEQ(IF,0,7) ~SEQ(NUM,0,31) ~SEQ(ID,1,254) $VI4
            """#
        let loaded = KeepalivedConfiguration.load("/etc/keepalived/keepalived.conf",
                                                  fileSystem: InMemoryFileSystem(["/etc/keepalived/keepalived.conf": text]))
        let instances = loaded.configuration.instances
        #expect(instances.count == 65024)
        #expect(instances.first?.name == "vrrp4.0.0.1" && instances.last?.name == "vrrp4.7.31.254")
        #expect(loaded.configuration.trackFiles.count == 65024)
    }

    @Test func listBlocks() {
        #expect(joined("~LST({IP, IP1}, {10,1},{20,4},{5,6},{12,8}) 192.168.${IP}.${IP1}") ==
            ["192.168.10.1", "192.168.20.4", "192.168.5.6", "192.168.12.8"])
        let nested = joined("~LST(IP, 1, 2, 3, 4) ~LST(IP1, 5,6,7) 192.169.${IP}.${IP1}")
        #expect(nested == [1, 2, 3, 4].flatMap { a in [5, 6, 7].map { "192.169.\(a).\($0)" } })
        let combined = joined("~LST({IP,   IP1},  {10,1},{20,4},{5,6},{12,8})  ~SEQ(IP2,168,2,172) 192.${IP2}.${IP}.${IP1}")
        #expect(combined == ["10.1", "20.4", "5.6", "12.8"].flatMap { p in [168, 170, 172].map { "192.\($0).\(p)" } })
    }
}
