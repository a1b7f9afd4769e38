#!/usr/bin/env bash
# lvsd and Debian's keepalived 2.2.7 as VRRP peers on one LAN (issue 7), for VRRPv2 with PASS and
# with IPsec AH authentication, and VRRPv3 with advert_int 0.1: lvsd master + keepalived backup, then keepalived
# master + lvsd backup. Each side takes the other's adverts as valid (keepalived logs no complaint,
# lvsd drops none), the higher priority is master, the backup takes over when the master's host
# fails, and the higher priority preempts when it returns. The failover time of each backup (from
# the old master's last advert to the new master's first, on the wire) is printed side by side.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash
source Tests/Integration/vrrp.bash
command -v keepalived >/dev/null || fail "Debian's keepalived is needed (apt-get install keepalived)"
command -v tcpdump >/dev/null || fail "tcpdump is needed"

vrrp_topology
ka_state() { grep -Eo '\(VI_1\) Entering [A-Z]+ STATE' "$work/$1.log" | tail -1 | awk '{ print $3 }'; }
wait_ka() {
    local end=$((SECONDS + ${3:-8}))
    while ((SECONDS < end)); do [[ $(ka_state "$1") == "$2" ]] && return 0; sleep 0.05; done
    fail "keepalived $1 is $(ka_state "$1"), not $2"
}
dropped() { LVSD_SOCKET="$work/$1.sock" "$bin/lvsd" status --json | python3 -c 'import json,sys; v=json.load(sys.stdin)["vrrp"][0]; print(v["dropped"], v["statistics"]["advertisementsReceived"])'; }

round() { # VERSION ADVERT [PASSWORD [PASS|AH]]
    local version=$1 advert=$2 auth=${3:-} authtype=${4:-PASS} label="v$1 advert_int $2${3:+ ${4:-PASS}}"
    rm -f "$work"/*.sock "$work"/ka*.log
    write_conf "$work/hi.conf" 150 "$version" "$advert" "$auth" "$authtype"
    write_conf "$work/lo.conf" 100 "$version" "$advert" "$auth" "$authtype"

    # lvsd master (d1, 150), keepalived backup (d2, 100).
    start_director lv "$d1" "$work/hi.conf"
    wait_state lv MASTER 6
    start_keepalived ka1 "$d2" "$work/lo.conf"
    wait_ka ka1 BACKUP
    sleep 2
    [[ $(ka_state ka1) == BACKUP ]] || fail "keepalived did not stay backup to lvsd's higher priority"
    keepalived_clean "$work/ka1.log"
    has_vip "$d2" && fail "the keepalived backup holds the VIP"
    [[ $(get) == served ]] || fail "no answer through lvsd"
    capture "$client" "$work/cap1" 1.5
    crash "$d1" "$lv_pid"
    wait_ka ka1 MASTER 6
    wait_vip "$d2"
    sleep 0.3; kill "$capture_pid"; wait "$capture_pid" 2>/dev/null || true
    ka_ms=$(silence_ms "$work/cap1" 10.0.0.1 10.0.0.2)
    revive "$d1"
    rm -f "$work/lv.sock"
    start_director lv "$d1" "$work/hi.conf"
    wait_state lv MASTER 8
    wait_ka ka1 BACKUP 4
    grep -q "(VI_1) Master received advert from 10.0.0.1 with higher priority 150, ours 100" "$work/ka1.log" \
        || fail "keepalived did not yield to lvsd's returning master"
    keepalived_clean "$work/ka1.log"
    [[ $(get) == served ]] || fail "no answer after lvsd preempted keepalived"
    kill -TERM "$ka1_pid" "$lv_pid"; wait "$ka1_pid" "$lv_pid" 2>/dev/null || true
    echo "$label: lvsd master + keepalived backup: elected, failed over, preempted back; keepalived saw no bad advert"

    # keepalived master (d1, 150), lvsd backup (d2, 100).
    rm -f "$work"/*.sock
    start_keepalived ka2 "$d1" "$work/hi.conf"
    wait_ka ka2 MASTER 6
    start_director lv "$d2" "$work/lo.conf"
    wait_state lv BACKUP
    sleep 2
    [[ $(state_of lv) == BACKUP ]] || fail "lvsd did not stay backup to keepalived's higher priority"
    read -r drops received < <(dropped lv)
    ((drops == 0 && received > 0)) || fail "lvsd dropped $drops of keepalived's adverts (received $received)"
    capture "$client" "$work/cap2" 1.5
    crash "$d1" "$ka2_pid"
    wait_state lv MASTER 6
    wait_vip "$d2"
    sleep 0.3; kill "$capture_pid"; wait "$capture_pid" 2>/dev/null || true
    lv_ms=$(silence_ms "$work/cap2" 10.0.0.1 10.0.0.2)
    [[ $(get) == served ]] || fail "no answer through lvsd after it took over from keepalived"
    revive "$d1"
    start_keepalived ka3 "$d1" "$work/hi.conf"
    wait_state lv BACKUP 8
    wait_ka ka3 MASTER 4
    grep -q "(VI_1) received lower priority (100) advert from 10.0.0.2 - discarding" "$work/ka3.log" \
        || fail "keepalived did not hear lvsd's adverts as valid lower-priority ones"
    keepalived_clean "$work/ka3.log"
    kill -TERM "$ka3_pid" "$lv_pid"; wait "$ka3_pid" "$lv_pid" 2>/dev/null || true
    echo "$label: keepalived master + lvsd backup: elected, failed over, preempted back; lvsd dropped none of keepalived's adverts"
    echo "$label: failover (old master's last advert to the new master's first): lvsd backup ${lv_ms} ms, keepalived backup ${ka_ms} ms"
    [[ $lv_ms != none && $ka_ms != none ]] || fail "a failover was not seen on the wire"
}

round 2 1 secret
round 2 1 secret AH
round 3 0.1
echo "PASS: vrrp-keepalived"
