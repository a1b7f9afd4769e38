import Testing
@testable import KeepalivedConfig

/// Every keyword keepalived.conf(5) (2.2.7) documents is known in its block: none of them may come
/// out as "Unknown keyword". (Their values are checked by the other tests.)
@Suite struct KeywordCoverageTests {
    static let global = """
        tmp_config_directory config_save_dir process_names process_name vrrp_process_name checker_process_name bfd_process_name
        startup_script startup_script_timeout shutdown_script shutdown_script_timeout notification_email notification_email_from
        smtp_server smtp_helo_name smtp_connect_timeout smtp_alert smtp_alert_vrrp smtp_alert_checker checker_log_all_failures
        no_email_faults router_id vrrp_mcast_group4 vrrp_mcast_group6 default_interface lvs_sync_daemon lvs_timeouts lvs_flush
        lvs_flush_on_stop vrrp_garp_master_delay vrrp_garp_master_repeat vrrp_garp_lower_prio_delay vrrp_down_timer_adverts
        vrrp_garp_lower_prio_repeat vrrp_garp_master_refresh vrrp_garp_master_refresh_repeat vrrp_garp_interval vrrp_gna_interval
        vrrp_min_garp vrrp_garp_extra_if vrrp_lower_prio_no_advert vrrp_higher_prio_send_advert vrrp_version nftables
        nftables_priority nftables_counters nftables_ifindex nftables_ipvs nftables_ipvs_priority nftables_ipvs_start_fwmark
        vrrp_iptables vrrp_ipsets disable_local_igmp vrrp_check_unicast_src vrrp_skip_check_adv_addr vrrp_strict
        vrrp_notify_priority_changes max_auto_priority min_auto_priority_delay vrrp_priority checker_priority bfd_priority
        vrrp_no_swap checker_no_swap bfd_no_swap vrrp_cpu_affinity checker_cpu_affinity bfd_cpu_affinity vrrp_rt_priority
        checker_rt_priority bfd_rt_priority vrrp_rlimit_rttime checker_rlimit_rttime bfd_rlimit_rttime snmp_socket
        enable_snmp_vrrp enable_snmp_checker enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3 enable_traps enable_dbus
        dbus_service_name script_user enable_script_security notify_fifo notify_fifo_script vrrp_notify_fifo
        vrrp_notify_fifo_script lvs_notify_fifo lvs_notify_fifo_script fifo_write_vrrp_states_on_reload dynamic_interfaces
        vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
        vrrp_netlink_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs lvs_netlink_cmd_rcv_bufs_force lvs_netlink_monitor_rcv_bufs
        lvs_netlink_monitor_rcv_bufs_force process_monitor_rcv_bufs process_monitor_rcv_bufs_force vrrp_rx_bufs_policy
        vrrp_rx_bufs_multiplier rs_init_notifies no_checker_emails umask vrrp_startup_delay log_unknown_vrids vmac_prefix
        vmac_addr_prefix random_seed reload_check_config include_check reload_time_file reload_repeat reload_file data_use_instance
        """

    /// virtual_server, real_server and checker keywords: each must be known in one of those blocks.
    static let lvs = """
        lvs_sched flag-1 flag-2 flag-3 sh-port sh-fallback mh-port mh-fallback ops lvs_method persistence_engine
        persistence_timeout persistence_granularity protocol ha_suspend smtp_alert virtualhost snmp_name alpha omega quorum
        hysteresis quorum_up quorum_down ip_family sorry_server sorry_server_inhibit sorry_server_lvs_method connect_timeout retry
        delay_before_retry warmup delay_loop inhibit_on_failure real_server weight notify_up notify_down uthreshold lthreshold
        connect_ip connect_port bindto bind_if bind_port fwmark log_all_failures http_protocol fast_recovery url path digest
        status_code regex regex_no_match regex_options regex_stack regex_min_offset regex_max_offset HTTP_GET SSL_GET enable_sni
        TCP_CHECK SMTP_CHECK helo_name DNS_CHECK type name MISC_CHECK misc_path misc_timeout misc_dynamic user BFD_CHECK
        PING_CHECK UDP_CHECK payload require_reply min_reply_length max_reply_length FILE_CHECK track_file lb_algo lb_kind
        nb_get_retry
        """

    static let instance = """
        state interface vrf use_vmac use_vmac_addr vmac_xmit_base use_ipvlan native_ipv6 dont_track_primary track_interface
        track_script track_file track_process track_bfd mcast_src_ip unicast_src_ip mcast_dst_ip track_src_ip version
        check_unicast_src unicast_peer unicast_fault_no_peer unicast_ttl old_unicast_checksum garp_master_delay garp_master_repeat
        garp_lower_prio_delay garp_lower_prio_repeat garp_master_refresh garp_master_refresh_repeat garp_extra_if
        down_timer_adverts lower_prio_no_advert higher_prio_send_advert virtual_router_id priority advert_int authentication
        virtual_ipaddress virtual_ipaddress_excluded promote_secondaries virtual_routes virtual_rules accept no_accept nopreempt
        preempt preempt_delay skip_check_adv_addr strict_mode debug notify_master notify_backup notify_fault notify_stop notify
        notify_master_rx_lower_pri notify_priority_changes smtp_alert kernel_rx_buf_size linkbeat_use_polling
        """

    static let script = "script interval timeout weight rise fall user init_fail"
    static let syncGroup = """
        group track_interface track_script track_file track_process track_bfd notify_master notify_backup notify_fault notify_stop
        notify_deleted notify notify_priority_changes smtp_alert global_tracking sync_group_tracking_weight
        """
    static let trackFile = "file weight init_file"
    static let root = """
        global_defs linkbeat_use_polling net_namespace net_namespace_ipvs namespace_with_ipsets use_pid_dir instance child_wait_time
        SSL track_file vrrp_track_file track_group static_ipaddress static_routes static_rules vrrp_sync_group garp_group
        linkbeat_interfaces vrrp_instance vrrp_script vrrp_track_process interface_up_down_delays bfd_instance
        virtual_server_group virtual_server
        """

    func unknown(_ text: String) -> Set<String> {
        let loaded = KeepalivedConfiguration.load("/k", fileSystem: InMemoryFileSystem(["/k": text]))
        return Set(loaded.diagnostics.compactMap { d in
            d.message.hasPrefix("Unknown keyword '") ? String(d.message.dropFirst(17).dropLast()) : nil
        })
    }

    func keywords(_ list: String) -> [String] { list.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init) }

    @Test func globalDefinitions() {
        for k in keywords(KeywordCoverageTests.global) {
            #expect(!unknown("global_defs {\n\(k)\n}").contains(k), "global_defs \(k)")
        }
    }

    @Test func virtualAndRealServersAndCheckers() {
        let contexts = [
            ("virtual_server 10.0.0.1 80 {\n", "\n}"),
            ("virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n", "\n }\n}"),
        ] + ["TCP_CHECK", "HTTP_GET", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK", "UDP_CHECK", "FILE_CHECK", "BFD_CHECK"].map {
            ("virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n \($0) {\n", "\n }\n }\n}")
        } + [("virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n HTTP_GET {\n url {\n", "\n }\n }\n }\n}")]
        for k in keywords(KeywordCoverageTests.lvs) {
            #expect(contexts.contains { !unknown($0.0 + k + $0.1).contains(k) }, "LVS keyword \(k)")
        }
    }

    @Test func vrrpBlocks() {
        for k in keywords(KeywordCoverageTests.instance) {
            #expect(!unknown("vrrp_instance VI_1 {\n\(k)\n}").contains(k), "vrrp_instance \(k)")
        }
        for k in keywords(KeywordCoverageTests.script) {
            #expect(!unknown("vrrp_script s {\n\(k)\n}").contains(k), "vrrp_script \(k)")
        }
        for k in keywords(KeywordCoverageTests.syncGroup) {
            #expect(!unknown("vrrp_sync_group g {\n\(k)\n}").contains(k), "vrrp_sync_group \(k)")
        }
        for k in keywords(KeywordCoverageTests.trackFile) {
            #expect(!unknown("track_file t {\n\(k)\n}").contains(k), "track_file \(k)")
        }
    }

    @Test func topLevelBlocks() {
        for k in keywords(KeywordCoverageTests.root) {
            #expect(!unknown("\(k)\n").contains(k), "top level \(k)")
        }
    }
}
