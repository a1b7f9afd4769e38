#!/usr/bin/env bash
# Connection sync (issue 8): two lvsd directors with the packet engine in direct-routing mode,
# VRRP between them (v3, advert_int 0.1) and lvs_sync_daemon following the VRRP instance; two real
# servers with the VIP on lo. A client holds four long downloads through the VIP; the master
# crashes (link down, process killed) in the middle of them. With sync, the backup knows every
# connection and its real server, and every download completes with the right bytes. Without
# sync, the same crash stalls them: the backup has never seen those connections and drops their
# segments (so this test can fail). Also: `ipvsadm -L --daemon` on both directors, the backup's
# connection table before the crash, tshark decoding the sync messages.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash
source Tests/Integration/vrrp.bash

lan_hosts d1=10.0.0.1/24 d2=10.0.0.2/24 client=10.0.0.10/24 rs1=10.0.0.21/24 rs2=10.0.0.22/24

# The same 6 MB on both real servers, served by Python's threading HTTP server.
mkdir -p "$work/www"
head -c 6000000 /dev/urandom >"$work/www/big"
want=$(sha256sum <"$work/www/big" | cut -d' ' -f1)
for rs in "$rs1" "$rs2"; do
    ip netns exec "$rs" "$bin/lvsd" realserver start --vip "$VIP" >/dev/null
    ip netns exec "$rs" python3 -m http.server 80 --bind 0.0.0.0 --directory "$work/www" >/dev/null 2>&1 &
    pids+=($!)
done
for rs in "$rs1" "$rs2"; do
    for _ in $(seq 100); do ip netns exec "$rs" ss -ltn | contains ':80 ' && break; sleep 0.05; done
done

# sync_conf FILE PRIORITY [yes|no]
sync_conf() {
    {
        echo "global_defs {"
        echo "    vrrp_garp_master_delay 1"
        [[ ${3:-yes} == yes ]] && echo "    lvs_sync_daemon eth0 VI_1"
        echo "}"
        echo "vrrp_instance VI_1 {"
        echo "    state BACKUP"
        echo "    interface eth0"
        echo "    virtual_router_id 51"
        echo "    priority $2"
        echo "    version 3"
        echo "    advert_int 0.1"
        echo "    virtual_ipaddress {"
        echo "        $VIP/24"
        echo "    }"
        echo "}"
        echo "virtual_server $VIP 80 {"
        echo "    lb_algo rr"
        echo "    lb_kind DR"
        echo "    protocol TCP"
        echo "    real_server 10.0.0.21 80 {"
        echo "        weight 1"
        echo "    }"
        echo "    real_server 10.0.0.22 80 {"
        echo "        weight 1"
        echo "    }"
        echo "}"
    } >"$1"
}
director() { # NAME NS CONF
    ip netns exec "$2" env LVSD_SOCKET="$work/$1.sock" "$bin/lvsd" -f "$3" --engine packet --interface eth0 >>"$work/$1.out" 2>>"$work/$1.err" &
    local pid=$!; pids+=($pid); printf -v "${1}_pid" %s "$pid"
    for _ in $(seq 100); do [[ -S $work/$1.sock ]] && return 0; sleep 0.05; done
    fail "lvsd $1 did not start"
}
ipvsadm_on() { local name=$1; shift; LVSD_SOCKET="$work/$name.sock" "$bin/ipvsadm" "$@"; }

# downloads RUN: four slow downloads through the VIP (64 KB every 0.1 s: about 9 s each), in the
# background; one that receives nothing for 5 s gives up.
downloads() {
    dl_pids=()
    for i in 1 2 3 4; do
        ip netns exec "$client" python3 - "$VIP" "$work/$1.$i" <<'PY' 2>>"$work/client.err" &
import socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=5)
s.sendall(b"GET /big HTTP/1.0\r\nHost: vip\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
    time.sleep(0.1)
open(sys.argv[2], "wb").write(data.split(b"\r\n\r\n", 1)[1])
PY
        dl_pids+=($!); pids+=($!)
    done
}
# finished RUN: how many of the four downloads completed with the right bytes (in $completed).
finished() {
    completed=0
    local i
    for i in 1 2 3 4; do
        wait "${dl_pids[$((i - 1))]}" 2>/dev/null || true
        if [[ -f $work/$1.$i && $(sha256sum <"$work/$1.$i" | cut -d' ' -f1) == "$want" ]]; then completed=$((completed + 1)); fi
    done
}

# run SYNC: both directors up, d1 master; the downloads start; d1 crashes; $completed says how
# many finished.
run() {
    rm -f "$work"/d?.sock
    sync_conf "$work/d1.conf" 150 "$1"
    sync_conf "$work/d2.conf" 100 "$1"
    director d1 "$d1" "$work/d1.conf"
    director d2 "$d2" "$work/d2.conf"
    wait_state d1 MASTER 6
    wait_state d2 BACKUP
    if [[ $1 == yes ]]; then
        [[ $(ipvsadm_on d1 -L --daemon) == "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" ]] \
            || fail "d1's daemon: $(ipvsadm_on d1 -L --daemon)"
        [[ $(ipvsadm_on d2 -L --daemon) == "backup sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" ]] \
            || fail "d2's daemon: $(ipvsadm_on d2 -L --daemon)"
        ip netns exec "$lan_ns" tcpdump -i br0 -nn -w "$work/sync.pcap" udp port 8848 2>/dev/null &
        tcpdump_pid=$!; pids+=($tcpdump_pid)
    fi
    for _ in $(seq 100); do ip netns exec "$client" curl -s -m 1 -o /dev/null "http://$VIP/big" -r 0-9 && break; sleep 0.1; done
    downloads "$1"
    # Long enough for the first sync messages (a partly filled message waits up to 2 s).
    sleep 4
    if [[ $1 == yes ]]; then
        local synced=0
        for _ in $(seq 30); do
            synced=$(ipvsadm_on d2 -Lnc | grep -Ec 'ESTABLISHED +10\.0\.0\.10:' || true)
            ((synced >= 4)) && break
            sleep 0.1
        done
        ((synced >= 4)) || fail "the backup knows $synced of the 4 connections: $(ipvsadm_on d2 -Lnc) d1: $(ipvsadm_on d1 -Lnc) $(LVSD_SOCKET=$work/d1.sock $bin/lvsd status) $(LVSD_SOCKET=$work/d2.sock $bin/lvsd status)"
        echo "before the crash: the backup holds all 4 connections, ESTABLISHED, as the master does"
        LVSD_SOCKET="$work/d2.sock" "$bin/lvsd" status | grep -E '^    (received|dropped)' | sed 's/^ */  d2 (backup): /' || true
    fi
    crash "$d1" "$d1_pid"
    wait_state d2 MASTER 4
    finished "$1"
}

run yes
n=$completed
status=$(LVSD_SOCKET="$work/d2.sock" "$bin/lvsd" status)
[[ $n == 4 ]] || fail "with sync, $n of 4 downloads completed after the failover; d2: $status"
echo "with sync: the master crashed in the middle of 4 downloads; d2 took over and all 4 completed with the right bytes"

kill "$tcpdump_pid" 2>/dev/null || true
wait "$tcpdump_pid" 2>/dev/null || true
[[ -n ${SYNC_PCAP:-} ]] && cp "$work/sync.pcap" "$SYNC_PCAP"
if command -v tshark >/dev/null; then
    decoded=$(tshark -r "$work/sync.pcap" -d udp.port==8848,ipvs -T fields -e ipvs.syncid -e ipvs.conncount 2>/dev/null | sort -u | head -5)
    warnings=$(tshark -r "$work/sync.pcap" -d udp.port==8848,ipvs -q -z expert,warn 2>&1 | grep -Ei 'malformed|warn' | grep -v '^=\|Warns (0)' || true)
    [[ -n $decoded ]] || fail "tshark decoded no sync message"
    echo "tshark: sync messages decoded (syncid, entries): $(echo "$decoded" | tr '\n' ' ')"
    [[ -z $warnings ]] || echo "tshark notes: $warnings"
fi

# Both directors again, without sync: the same crash breaks the downloads.
kill "$d2_pid" 2>/dev/null || true
wait "$d2_pid" 2>/dev/null || true
revive "$d1"
run no
n=$completed
((n < 4)) || fail "without sync, all 4 downloads survived the failover: this test cannot tell sync from no sync"
echo "without sync: the same crash left $n of 4 downloads complete (the backup dropped the others' segments)"
echo "PASS: sync-failover"
