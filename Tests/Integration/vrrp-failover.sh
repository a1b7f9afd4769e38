#!/usr/bin/env bash
# Two lvsd directors sharing a VIP by VRRP on one LAN, a client and a real server (issue 7): the
# master is elected by priority, answers through the VIP, and when it fails (its host crashes:
# process killed and link down; or it stops: priority 0) the backup owns the VIP within
# Master_Down_Interval (or Skew_Time) and answers. Measured for VRRPv2 advert_int 1 and VRRPv3
# advert_int 0.1. A master whose interface goes down is in FAULT and comes back; the higher
# priority director preempts when it returns; notify scripts that take seconds delay none of it.
# tshark decodes the adverts without a warning. VRRPv3 over IPv6 fails over with a neighbour
# advertisement that moves the client. use_vmac keeps the virtual router MAC on a macvlan.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash
source Tests/Integration/vrrp.bash

vrrp_topology
write_conf "$work/d1.conf" 150 2 1 secret
write_conf "$work/d2.conf" 100 2 1 secret
start_director d1 "$d1" "$work/d1.conf" --http 127.0.0.1:18991
start_director d2 "$d2" "$work/d2.conf" --http 127.0.0.1:18991
wait_state d1 MASTER 6
wait_state d2 BACKUP
wait_vip "$d1"
has_vip "$d2" && fail "both directors hold the VIP"
[[ $(get) == served ]] || fail "no answer through the VIP from the master"
status=$(LVSD_SOCKET="$work/d2.sock" "$bin/lvsd" status)
echo "$status" | contains -E '^VI_1 +eth0 +51 +v2 +BACKUP +100 +100 +10\.0\.0\.1 +1 ' || fail "lvsd status of the backup: $status"
LVSD_SOCKET="$work/d1.sock" "$bin/lvsd" status --json | python3 -c '
import json, sys
v = json.load(sys.stdin)["vrrp"][0]
assert v["state"] == "MASTER" and v["priority"] == 150 and v["statistics"]["advertisementsSent"] > 0, v' || fail "lvsd status --json"
# The same in /metrics, in keepalived-exporter's names.
vrrp_metric() { ip netns exec "$1" curl -sf -m 5 http://127.0.0.1:18991/metrics | awk -v m="$2{iname=\"VI_1\",intf=\"eth0\",vrid=\"51\"}" '$1 == m {print $2}'; }
[[ $(vrrp_metric "$d1" keepalived_vrrp_state) == 2 && $(vrrp_metric "$d2" keepalived_vrrp_state) == 1 ]] \
    || fail "keepalived_vrrp_state: d1 $(vrrp_metric "$d1" keepalived_vrrp_state), d2 $(vrrp_metric "$d2" keepalived_vrrp_state)"
[[ $(vrrp_metric "$d1" keepalived_vrrp_priority) == 150 && $(vrrp_metric "$d1" keepalived_advert_sent_total) -gt 0 \
   && $(vrrp_metric "$d2" keepalived_advert_rcvd_total) -gt 0 && $(vrrp_metric "$d1" keepalived_become_master_total) == 1 ]] \
    || fail "keepalived_* counters"
echo "elected: d1 MASTER (150), d2 BACKUP (100), the VIP answers; /metrics says so"

# A reload that changes the instance (an excluded address more) keeps d1 master: no priority 0,
# the VIP stays, d2 never moves, no notify runs again.
notifies=$(wc -l <"$work/notify.log")
sed -i 's/^    notify /    virtual_ipaddress_excluded {\n        10.0.0.101\/24\n    }\n    notify /' "$work/d1.conf"
LVSD_SOCKET="$work/d1.sock" "$bin/lvsd" reload >/dev/null || fail "reload refused"
for _ in $(seq 200); do ip -n "$d1" -o addr show dev eth0 | contains ' 10.0.0.101/24' && break; sleep 0.05; done
ip -n "$d1" -o addr show dev eth0 | contains ' 10.0.0.101/24' || fail "the reload did not add the excluded address"
sleep 1.5
[[ $(state_of d1) == MASTER && $(state_of d2) == BACKUP ]] || fail "the reload moved the roles: d1 $(state_of d1), d2 $(state_of d2)"
has_vip "$d1" || fail "the VIP left d1 during the reload"
LVSD_SOCKET="$work/d2.sock" "$bin/lvsd" status | contains -E '^VI_1 .* BACKUP .* 1 +[0-9]+ +0 +0$' || fail "d2 moved during d1's reload: $(LVSD_SOCKET="$work/d2.sock" "$bin/lvsd" status)"
[[ $(wc -l <"$work/notify.log") == "$notifies" ]] || fail "a reload ran notify scripts: $(tail -3 "$work/notify.log")"
echo "reload: d1 stayed master through it (no priority 0, the VIP kept), d2 stayed backup, no notify ran"

# tshark's VRRP dissector: our adverts are well formed (checksum good, no expert warnings).
command -v tshark >/dev/null || fail "tshark is needed (apt-get install tshark)"
fields=$(ip netns exec "$client" timeout 8 tshark -q -i eth0 -f 'ip proto 112' -c 3 -T fields -e ip.src -e ip.ttl -e vrrp.version \
         -e vrrp.prio -e vrrp.checksum.status -e vrrp.auth_string -e _ws.expert.severity 2>/dev/null || true)
echo "$fields" | awk -F'\t' 'NF { n++; if ($1 != "10.0.0.1" || $2 != 255 || $3 != 2 || $4 != 150 || $5 != 1 || $6 != "secret" || $7 != "") bad = 1 }
                              END { exit (n == 3 && !bad) ? 0 : 1 }' || fail "tshark on our v2 adverts: $fields"
echo "tshark: 3 adverts from lvsd decoded, checksums good, no warnings"

# A client request every 50 ms; the master's host crashes (process killed, link down).
stream() {
    ip netns exec "$client" python3 - "$VIP" "$1" >"$2" <<'PY' &
import socket, sys, time
vip, seconds = sys.argv[1], float(sys.argv[2])
end = time.time() + seconds
while time.time() < end:
    t = time.time()
    try:
        s = socket.create_connection((vip, 80), timeout=0.3); s.settimeout(0.3)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n"); ok = b"served" in s.recv(4096); s.close()
    except OSError:
        ok = False
    print("%.3f %s" % (t, "ok" if ok else "fail"), flush=True)
    time.sleep(max(0, 0.05 - (time.time() - t)))
PY
    stream_pid=$!; pids+=($stream_pid)
}
# outage LOG T0: seconds from T0 (epoch) to the first answered request after it.
outage() { awk -v t0="$2" '$1 >= t0 && $2 == "ok" { printf "%.2f", $1 - t0; found = 1; exit } END { if (!found) print "none" }' "$1"; }

stream 9 "$work/stream1"
sleep 1
t0=$(date +%s%N); t0s=$(date +%s.%N)
ip -n "$d1" link set eth0 down; kill -9 "$d1_pid"
ms=$(takeover_ms "$d2" "$t0")
wait "$d1_pid" 2>/dev/null || true
wait "$stream_pid" || true
[[ $ms != timeout ]] || fail "the backup never took the VIP over"
# Master_Down_Interval for priority 100: 3 x 1 s + 156/256 s = 3.61 s after the last advert,
# which came up to 1 s before the crash.
((ms >= 2500 && ms < 4800)) || fail "v2 takeover after ${ms} ms, expected 2610 to 3610"
seen=$(outage "$work/stream1" "$t0s")
[[ $seen != none ]] || fail "no request was answered after the failover"
[[ $(state_of d2) == MASTER ]] || fail "d2 is not master"
echo "v2 advert_int 1: the backup owned the VIP ${ms} ms after the master's crash; clients answered again after ${seen} s"

# The failed director comes back: it preempts (priority 150), d2 steps down.
revive "$d1"
rm -f "$work/d1.sock"
start_director d1 "$d1" "$work/d1.conf"
wait_state d1 MASTER 8
wait_state d2 BACKUP
for _ in $(seq 100); do has_vip "$d2" || break; sleep 0.05; done
has_vip "$d2" && fail "d2 kept the VIP after stepping down"
[[ $(get) == served ]] || fail "no answer after d1 preempted"
echo "d1 back: it preempted, d2 is backup again and gave the VIP up"

# A graceful stop: priority 0, the backup takes over after Skew_Time (0.61 s).
t0=$(date +%s%N)
kill -TERM "$d1_pid"
ms=$(takeover_ms "$d2" "$t0")
[[ $ms != timeout ]] && ((ms < 1500)) || fail "takeover after a priority-0 advert took ${ms} ms"
wait "$d1_pid" 2>/dev/null || true
has_vip "$d1" && fail "the stopped master kept the VIP"
grep -q '^INSTANCE VI_1 STOP 150$' "$work/notify.log" || fail "no STOP notify: $(cat "$work/notify.log")"
grep -q '^INSTANCE VI_1 MASTER 100$' "$work/notify.log" || fail "no MASTER notify for d2"
echo "v2 stop: the backup owned the VIP ${ms} ms after the master's priority-0 advert; notify saw STOP and MASTER"

# VRRPv3 with advert_int 0.1 (no authentication in v3).
kill -TERM "$d2_pid"; wait "$d2_pid" 2>/dev/null || true
rm -f "$work"/d?.sock
write_conf "$work/d1.conf" 150 3 0.1
write_conf "$work/d2.conf" 100 3 0.1
start_director d1 "$d1" "$work/d1.conf"
start_director d2 "$d2" "$work/d2.conf"
wait_state d1 MASTER 4
wait_state d2 BACKUP
wait_vip "$d1"
fields=$(ip netns exec "$client" timeout 8 tshark -q -i eth0 -f 'ip proto 112' -c 3 -T fields -e ip.src -e vrrp.version \
         -e vrrp.short_adver_int -e vrrp.checksum.status -e _ws.expert.severity 2>/dev/null || true)
echo "$fields" | awk -F'\t' 'NF { n++; if ($1 != "10.0.0.1" || $2 != 3 || $3 != 10 || $4 != 1 || $5 != "") bad = 1 } END { exit (n == 3 && !bad) ? 0 : 1 }' \
    || fail "tshark on our v3 adverts: $fields"
echo "tshark: v3 adverts (10 cs) decoded, checksums good, no warnings"
stream 4 "$work/stream2"
sleep 1
t0=$(date +%s%N); t0s=$(date +%s.%N)
ip -n "$d1" link set eth0 down; kill -9 "$d1_pid"
ms=$(takeover_ms "$d2" "$t0")
wait "$d1_pid" 2>/dev/null || true
wait "$stream_pid" || true
# 3 x 0.1 s + 156/256 x 0.1 s = 0.36 s.
[[ $ms != timeout ]] && ((ms < 1200)) || fail "v3 takeover after ${ms} ms, expected about 360"
seen=$(outage "$work/stream2" "$t0s")
[[ $seen != none ]] || fail "no request was answered after the v3 failover"
echo "v3 advert_int 0.1: the backup owned the VIP ${ms} ms after the master's crash; clients answered again after ${seen} s"

# The master's own interface fails: FAULT, the backup takes over; back up, it preempts again.
revive "$d1"
rm -f "$work/d1.sock"
start_director d1 "$d1" "$work/d1.conf"
wait_state d1 MASTER 4
wait_state d2 BACKUP
ip -n "$d1" link set eth0 down
wait_state d1 FAULT 3
wait_state d2 MASTER 3
has_vip "$d1" && fail "a director in FAULT kept the VIP"
ip -n "$d1" link set eth0 up
wait_state d1 MASTER 5
wait_state d2 BACKUP 3
[[ $(get) == served ]] || fail "no answer after the interface came back"
grep -q 'Entering FAULT STATE' "$work/d1.err" || fail "no FAULT in d1's log"
echo "interface down: d1 FAULT and d2 MASTER; interface up: d1 preempted back"

# VRRPv3 over IPv6: adverts from the link-local address to ff02::12, the VIP with nodad, and an
# unsolicited neighbour advertisement that moves the client's neighbour entry on failover.
kill -TERM "$d1_pid" "$d2_pid"; wait "$d1_pid" "$d2_pid" 2>/dev/null || true
rm -f "$work"/d?.sock
for ns in "$d1" "$d2" "$client"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.accept_dad=0; done
ip -n "$d1" addr add 2001:db8::1/64 dev eth0 nodad
ip -n "$d2" addr add 2001:db8::2/64 dev eth0 nodad
ip -n "$client" addr add 2001:db8::10/64 dev eth0 nodad
for p in 150 100; do
    printf 'vrrp_instance VI_6 {\n    interface eth0\n    virtual_router_id 52\n    priority %s\n    advert_int 0.2\n    virtual_ipaddress {\n        2001:db8::100/64\n    }\n}\n' "$p" >"$work/v6-$p.conf"
done
start_director d1 "$d1" "$work/v6-150.conf"
start_director d2 "$d2" "$work/v6-100.conf"
wait_state6() { local end=$((SECONDS + 6)); while ((SECONDS < end)); do
    [[ $(LVSD_SOCKET="$work/$1.sock" "$bin/lvsd" status | awk '$1 == "VI_6" && NF > 5 { print $5 }') == "$2" ]] && return 0; sleep 0.05; done
    fail "$1 is not $2 for VI_6"; }
wait_state6 d1 MASTER
wait_state6 d2 BACKUP
LVSD_SOCKET="$work/d2.sock" "$bin/lvsd" status | contains -E '^VI_6 +eth0 +52 +v3 +BACKUP +100 +100 +fe80::' || fail "the v6 backup does not know its link-local master"
mac_of() { ip -n "$1" link show eth0 | awk '/link\/ether/ { print $2 }'; }
ip netns exec "$client" python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.settimeout(1); s.connect_ex(("2001:db8::100", 9))'
ip -n "$client" -6 neigh show 2001:db8::100 | contains "lladdr $(mac_of "$d1")" || fail "the client does not reach the v6 VIP at d1"
ip -n "$d1" link set eth0 down; kill -9 "$d1_pid"; wait "$d1_pid" 2>/dev/null || true
wait_state6 d2 MASTER
for _ in $(seq 40); do ip -n "$client" -6 neigh show 2001:db8::100 | contains "lladdr $(mac_of "$d2")" && break; sleep 0.05; done
ip -n "$client" -6 neigh show 2001:db8::100 | contains "lladdr $(mac_of "$d2")" || fail "no unsolicited NA moved the client to d2: $(ip -n "$client" -6 neigh show)"
ip -n "$d2" -6 addr show dev eth0 | contains '2001:db8::100/64 scope global nodad' || fail "the v6 VIP is not on d2"
echo "v3 over IPv6: d2 took the VIP over and its neighbour advertisement moved the client"

# Unicast: the adverts go from unicast_src_ip to each unicast_peer, not to the group.
kill -TERM "$d2_pid"; wait "$d2_pid" 2>/dev/null || true
ip -n "$d1" link set eth0 up
rm -f "$work"/d?.sock
write_conf "$work/d1.conf" 150 2 1
write_conf "$work/d2.conf" 100 2 1
sed -i 's/^    interface eth0$/    interface eth0\n    unicast_src_ip 10.0.0.1\n    unicast_peer {\n        10.0.0.2\n    }/' "$work/d1.conf"
sed -i 's/^    interface eth0$/    interface eth0\n    unicast_src_ip 10.0.0.2\n    unicast_peer {\n        10.0.0.1\n    }/' "$work/d2.conf"
start_director d1 "$d1" "$work/d1.conf"
start_director d2 "$d2" "$work/d2.conf"
wait_state d1 MASTER 6
wait_state d2 BACKUP
capture "$client" "$work/cap-unicast" 1.2
kill "$capture_pid"; wait "$capture_pid" 2>/dev/null || true
grep -q '224.0.0.18' "$work/cap-unicast" && fail "unicast instances sent to the multicast group"
t0=$(date +%s%N)
kill -TERM "$d1_pid"
ms=$(takeover_ms "$d2" "$t0")
wait "$d1_pid" 2>/dev/null || true
[[ $ms != timeout ]] && ((ms < 1500)) || fail "unicast takeover after ${ms} ms"
echo "unicast: d1 master advertising to its peer only; stopped, d2 took over in ${ms} ms"
kill -TERM "$d2_pid"; wait "$d2_pid" 2>/dev/null || true

# use_vmac: the VIP on a macvlan with the virtual router MAC 00:00:5e:00:01:33 (VRID 51), which the
# client keeps across the failover; the macvlan goes when lvsd stops.
rm -f "$work"/d?.sock
write_conf "$work/d1.conf" 150 3 0.2
write_conf "$work/d2.conf" 100 3 0.2
sed -i 's/^    interface eth0$/    interface eth0\n    use_vmac/' "$work/d1.conf" "$work/d2.conf"
start_director d1 "$d1" "$work/d1.conf"
start_director d2 "$d2" "$work/d2.conf"
wait_state d1 MASTER 4
wait_state d2 BACKUP
ip -n "$d1" -o addr show dev vrrp.51 | contains " $VIP/24" || fail "the VIP is not on d1's vrrp.51"
ip -n "$d1" link show vrrp.51 | contains 'link/ether 00:00:5e:00:01:33' || fail "vrrp.51 lacks the virtual MAC"
ip -n "$client" neigh flush all
# The bridge learns where the virtual MAC is from the master's adverts (5 a second).
for _ in $(seq 30); do [[ $(get) == served ]] && break; sleep 0.1; done
[[ $(get) == served ]] || fail "no answer through the virtual MAC: $(ip -n "$client" neigh show; ip -n "$d1" -o addr show; ip netns exec "$d1" ss -ltn)"
ip -n "$client" neigh show $VIP | contains 'lladdr 00:00:5e:00:01:33' || fail "the client does not see the virtual MAC: $(ip -n "$client" neigh show)"
ip -n "$d1" link set eth0 down; kill -9 "$d1_pid"; wait "$d1_pid" 2>/dev/null || true
wait_state d2 MASTER 4
ip -n "$d2" -o addr show dev vrrp.51 | contains " $VIP/24" || fail "the VIP is not on d2's vrrp.51"
for _ in $(seq 20); do [[ $(get) == served ]] && break; sleep 0.1; done
[[ $(get) == served ]] || fail "no answer after the failover with use_vmac"
ip -n "$client" neigh show $VIP | contains 'lladdr 00:00:5e:00:01:33' || fail "the client's neighbour entry changed"
kill -TERM "$d2_pid"; wait "$d2_pid" 2>/dev/null || true
ip -n "$d2" link show vrrp.51 >/dev/null 2>&1 && fail "vrrp.51 was left behind"
echo "use_vmac: the VIP answered with 00:00:5e:00:01:33 before and after the failover; the macvlan is removed at stop"
echo "PASS: vrrp-failover"
