#!/usr/bin/env bash
# VRRP tracking and sync groups between two lvsd directors with a front and a back LAN (issue 7):
# a vrrp_sync_group moves its two instances together (the back link of the master fails: both
# its instances go to FAULT and the other director takes both VIPs; the link returns: both come
# back and preempt), and an ha_suspend virtual server is in the table only where its VIP's master
# is, and so is a virtual_routes entry; a vrrp_script with a negative weight lowers the master's priority below its
# peer's when it fails, and the peer preempts; a track_file with weight 0 faults the instance.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash
source Tests/Integration/vrrp.bash

vrrp_topology
# The back LAN: eth1 in each director.
new_ns back; back=back-$$
ip -n "$back" link add br1 type bridge; ip -n "$back" link set br1 up
i=0
for ns in "$d1" "$d2"; do
    ip link add "q$i" netns "$back" type veth peer name eth1 netns "$ns"
    ip -n "$back" link set "q$i" master br1; ip -n "$back" link set "q$i" up
    ip -n "$ns" link set eth1 up; ip -n "$ns" addr add "10.1.0.$((i + 1))/24" dev eth1
    i=$((i + 1))
done
lan_forwarding "$back" q
printf '#!/bin/sh\necho "$*" >>%s/notify.log\n' "$work" >"$work/notify.sh"; chmod 755 "$work/notify.sh"
printf '#!/bin/sh\n[ ! -e %s/fail-$1 ]\n' "$work" >"$work/check.sh"; chmod 755 "$work/check.sh"

conf() { # NAME PRIORITY
    cat <<CONF
vrrp_script chk {
    script "$work/check.sh $1"
    interval 1
    weight -60
    fall 1
    rise 1
}
track_file maint {
    file $work/maint-$1
    weight 0
}
vrrp_sync_group G {
    group {
        FRONT
        BACK
    }
    notify $work/notify.sh
}
vrrp_instance FRONT {
    interface eth0
    virtual_router_id 51
    priority $2
    advert_int 0.1
    version 3
    virtual_ipaddress {
        $VIP/24
    }
    virtual_routes {
        10.9.0.0/16 via 10.0.0.20
    }
    notify $work/notify.sh
}
vrrp_instance BACK {
    interface eth1
    virtual_router_id 52
    priority $2
    advert_int 0.1
    version 3
    virtual_ipaddress {
        10.1.0.100/24 dev eth1
    }
}
vrrp_instance SOLO {
    interface eth0
    virtual_router_id 53
    priority $2
    advert_int 0.1
    version 3
    track_script {
        chk
    }
    track_file {
        maint
    }
    virtual_ipaddress {
        10.0.0.200/24
    }
}
virtual_server $VIP 80 {
    ha_suspend
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.0.20 80 {
        weight 1
    }
}
CONF
}
conf d1 150 >"$work/d1.conf"
conf d2 100 >"$work/d2.conf"
start_director d1 "$d1" "$work/d1.conf"
start_director d2 "$d2" "$work/d2.conf"
st() { LVSD_SOCKET="$work/$1.sock" "$bin/lvsd" status | awk -v n="$2" '$1 == n && NF > 5 { print $5 }'; }
prio() { LVSD_SOCKET="$work/$1.sock" "$bin/lvsd" status | awk -v n="$2" '$1 == n && NF > 5 { print $6 }'; }
expect() { # NAME INSTANCE STATE [SECONDS]
    local end=$((SECONDS + ${4:-5}))
    while ((SECONDS < end)); do [[ $(st "$1" "$2") == "$3" ]] && return 0; sleep 0.05; done
    fail "$1's $2 is $(st "$1" "$2"), not $3"
}
for i in FRONT BACK SOLO; do expect d1 $i MASTER; expect d2 $i BACKUP; done
grep -q '^GROUP G MASTER 0$' "$work/notify.log" || fail "no group MASTER notify: $(cat "$work/notify.log")"
services() { LVSD_SOCKET="$work/$1.sock" "$bin/ipvsadm" -Ln | grep -c '^TCP' || true; }
[[ $(services d1) == 1 && $(services d2) == 0 ]] || fail "ha_suspend: d1 serves $(services d1), the backup d2 $(services d2)"
route() { ip -n "$1" route show 10.9.0.0/16 | grep -c 'via 10.0.0.20' || true; }
[[ $(route "$d1") == 1 && $(route "$d2") == 0 ]] || fail "virtual_routes: d1 has $(route "$d1"), the backup $(route "$d2")"
echo "start: d1 master of FRONT, BACK (sync group G) and SOLO; with ha_suspend only d1 has the virtual server, and the virtual route"

# The master's back link fails: G goes to FAULT on d1 as a whole, d2 takes both VIPs.
ip -n "$d1" link set eth1 down
expect d1 BACK FAULT; expect d1 FRONT FAULT
expect d2 FRONT MASTER; expect d2 BACK MASTER
[[ $(st d1 SOLO) == MASTER ]] || fail "SOLO (not in the group) moved"
has_vip "$d1" && fail "d1 kept the front VIP while its group is in FAULT"
wait_vip "$d2"
[[ $(get) == served ]] || fail "no answer through d2"
grep -q '^GROUP G FAULT 0$' "$work/notify.log" || fail "no group FAULT notify"
[[ $(services d1) == 0 && $(services d2) == 1 ]] || fail "ha_suspend after the failover: d1 $(services d1), d2 $(services d2)"
[[ $(route "$d1") == 0 && $(route "$d2") == 1 ]] || fail "virtual_routes after the failover: d1 $(route "$d1"), d2 $(route "$d2")"
ip -n "$d1" link set eth1 up
expect d1 FRONT MASTER 6; expect d1 BACK MASTER
expect d2 FRONT BACKUP; expect d2 BACK BACKUP
echo "sync group: d1's back link down put FRONT and BACK in FAULT together, d2 took both; back up, d1 preempted both"

# vrrp_script weight -60: d1's SOLO falls to 90, below d2's 100, and d2 preempts.
touch "$work/fail-d1"
for _ in $(seq 60); do [[ $(prio d1 SOLO) == 90 ]] && break; sleep 0.05; done
[[ $(prio d1 SOLO) == 90 ]] || fail "the failing script did not lower d1's SOLO to 90 (it is $(prio d1 SOLO))"
expect d2 SOLO MASTER; expect d1 SOLO BACKUP
grep -q 'Changing effective priority from 150 to 90' "$work/d1.err" || fail "no priority change logged"
rm -f "$work/fail-d1"
expect d1 SOLO MASTER 4; expect d2 SOLO BACKUP
echo "vrrp_script: failing, it took d1's SOLO from 150 to 90 and d2 preempted; succeeding again, d1 took it back"

# track_file weight 0: a non-zero number in the file is a fault.
echo 1 >"$work/maint-d1"
expect d1 SOLO FAULT 4; expect d2 SOLO MASTER
echo 0 >"$work/maint-d1"
expect d1 SOLO MASTER 5
echo "track_file: a non-zero value put d1's SOLO in FAULT, zero brought it back"
echo "PASS: vrrp-tracking"
