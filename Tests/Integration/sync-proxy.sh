#!/usr/bin/env bash
# Connection sync driven by ipvsadm, with the proxy engine (issue 8): two lvsd directors, each
# with the VIP on lo and the same persistent service; `ipvsadm --start-daemon master` on one and
# `--start-daemon backup` on the other. Requests through the master make persistence templates
# that reach the backup (`ipvsadm -Lnc` there), so after a take-over the clients keep their real
# server; a backup with another sync id takes nothing and counts what it refused.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash

lan_hosts d1=10.0.0.1/24 d2=10.0.0.2/24 d3=10.0.0.3/24 client=10.0.0.10/24 rs=10.0.0.20/24
ip -n "$client" route add 10.0.0.100/32 via 10.0.0.1
http_server "$rs" 10.0.0.20 80 "served"

start() { # NAME NS
    ip -n "$2" addr add 10.0.0.100/32 dev lo
    ip netns exec "$2" env LVSD_SOCKET="$work/$1.sock" "$bin/lvsd" --http 127.0.0.1:18992 >>"$work/$1.out" 2>>"$work/$1.err" &
    pids+=($!)
    for _ in $(seq 100); do [[ -S $work/$1.sock ]] && break; sleep 0.05; done
    [[ -S $work/$1.sock ]] || fail "lvsd $1 did not start"
    on "$1" -A -t 10.0.0.100:80 -s rr -p 300
    on "$1" -a -t 10.0.0.100:80 -r 10.0.0.20:80 -m
}
on() { local name=$1; shift; LVSD_SOCKET="$work/$name.sock" "$bin/ipvsadm" "$@"; }
start d1 "$d1"
start d2 "$d2"
start d3 "$d3"
on d1 --start-daemon master --mcast-interface eth0 --syncid 5
on d2 --start-daemon backup --mcast-interface eth0 --syncid 5
on d3 --start-daemon backup --mcast-interface eth0 --syncid 6
[[ $(on d1 -L --daemon) == "master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" ]] \
    || fail "d1: $(on d1 -L --daemon)"
[[ $(on d2 -L --daemon) == "backup sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" ]] \
    || fail "d2: $(on d2 -L --daemon)"
out=$(on d1 --start-daemon master --mcast-interface eth0 2>&1) && fail "a second master daemon started"
[[ $out == "Daemon has already run" ]] || fail "second master: $out"
out=$(on d1 --start-daemon backup --mcast-interface nosuch0 2>&1) && fail "a daemon on a missing interface started"
[[ $out == "No such device" ]] || fail "missing interface: $out"

for _ in 1 2 3; do
    [[ $(ip netns exec "$client" curl -s -m 2 http://10.0.0.100/) == served ]] || fail "no answer through the master"
done
# A partly filled message leaves within 2 s.
template=""
for _ in $(seq 40); do
    template=$(on d2 -Lnc | grep -E '^TCP .* (NONE|ASSURED) +10\.0\.0\.10:0 +10\.0\.0\.100:80 +10\.0\.0\.20:80' || true)
    [[ -n $template ]] && break
    sleep 0.1
done
[[ -n $template ]] || fail "the backup has no template: $(on d2 -Lnc)"
echo "backup: the client's persistence template arrived ($template)"
on d2 -Ln --persistent-conn | contains -E '10\.0\.0\.20:80 +1 +1 ' || fail "the backup's real server does not count the template: $(on d2 -Ln --persistent-conn)"
status=$(LVSD_SOCKET="$work/d3.sock" "$bin/lvsd" status)
echo "$status" | contains -E 'message other sync id [1-9]' || fail "d3 did not count the other sync id: $status"
[[ -z $(on d3 -Lnc | tail -n +3) ]] || fail "d3 took entries of another sync id: $(on d3 -Lnc)"
# The same in /metrics: what the master sent, the backup received and created, d3 refused.
metric() { ip netns exec "$1" curl -sf -m 5 http://127.0.0.1:18992/metrics | awk -v n="$2" 'index($1, n) == 1 {print $2; exit}'; }
[[ $(metric "$d1" 'lvs_sync_messages_sent_total{state="master",interface="eth0",syncid="5"}') -gt 0 ]] || fail "d1: lvs_sync_messages_sent_total"
[[ $(metric "$d2" 'lvs_sync_messages_received_total{state="backup",interface="eth0",syncid="5"}') -gt 0 ]] || fail "d2: lvs_sync_messages_received_total"
[[ $(metric "$d2" 'lvs_sync_applied_total{result="created"}') -gt 0 ]] || fail "d2: lvs_sync_applied_total created"
[[ $(metric "$d3" 'lvs_sync_messages_refused_total{state="backup",interface="eth0",syncid="6",reason="other_sync_id"}') -gt 0 ]] \
    || fail "d3: lvs_sync_messages_refused_total: $(ip netns exec "$d3" curl -s http://127.0.0.1:18992/metrics | grep refused)"
echo "a backup with sync id 6 took nothing and counted the refusals; /metrics has the sync counters of all three"
on d1 --stop-daemon master
[[ -z $(on d1 -L --daemon) ]] || fail "the master daemon is still listed"
out=$(on d1 --stop-daemon master 2>&1) && fail "stopping a stopped daemon succeeded"
[[ $out == "No daemon is running" ]] || fail "stop twice: $out"
echo "PASS: sync-proxy"
