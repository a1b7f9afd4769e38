#!/usr/bin/env bash
# lvsd and ipvsadm as programs, on loopback (no privileges needed): the demo balances 3:2:1,
# ipvsadm lists it, a second lvsd refuses the socket, SIGTERM stops cleanly, and ipvsadm without a
# daemon says so. Bounded waits; only the processes started here are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash

"$bin/lvsd" demo >"$work/out" 2>"$work/err" &
pids+=($!); lvsd=$!
for _ in $(seq 100); do [[ -S $LVSD_SOCKET ]] && grep -q "curl http://127.0.0.1:8080/" "$work/out" && break; sleep 0.1; done
grep -q "curl http://127.0.0.1:8080/" "$work/out" || fail "demo did not start: $(cat "$work/err")"

got=$(python3 - <<'PY'
import urllib.request
print(" ".join(urllib.request.urlopen("http://127.0.0.1:8080/", timeout=5).read().decode().split()[0] for _ in range(12)))
PY
)
[[ $got == "rs3 rs2 rs1 rs1 rs2 rs1 rs3 rs2 rs1 rs1 rs2 rs1" ]] || fail "wrr 3:2:1 sequence: $got"

listing=$("$bin/ipvsadm" -Ln)
echo "$listing" | contains "^TCP  127.0.0.1:8080 wrr$" || fail "listing: $listing"
[[ $(echo "$listing" | grep -c "Masq") == 3 ]] || fail "listing: $listing"
conns=$("$bin/ipvsadm" -Ln --stats --exact -t 127.0.0.1:8080 | awk 'NR==3 {print $3}')
[[ $conns == 12 ]] || fail "12 connections expected in --stats, saw $conns"

set +e
"$bin/ipvsadm" -A -t 127.0.0.1:8080 2>/dev/null; rc=$?
[[ $rc == 255 ]] || fail "duplicate service: exit $rc"
"$bin/lvsd" 2>"$work/second"; rc=$?
[[ $rc == 1 ]] && grep -q "another lvsd is already running" "$work/second" || fail "second lvsd: exit $rc $(cat "$work/second")"
set -e

kill -TERM "$lvsd"
for _ in $(seq 50); do kill -0 "$lvsd" 2>/dev/null || break; sleep 0.1; done
set +e; wait "$lvsd"; rc=$?; set -e
[[ $rc == 0 ]] || fail "lvsd exit after SIGTERM: $rc"
[[ ! -e $LVSD_SOCKET ]] || fail "control socket left behind"

set +e
"$bin/ipvsadm" -Ln 2>"$work/nodaemon"; rc=$?
set -e
[[ $rc == 2 ]] && grep -q "Can't initialize ipvs" "$work/nodaemon" || fail "ipvsadm without lvsd: exit $rc"
echo "lvsd-demo: ok"
