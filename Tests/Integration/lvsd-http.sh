#!/usr/bin/env bash
# lvsd --http on loopback with the proxy engine (no privileges): /metrics moves with the traffic
# exactly as `ipvsadm -Ln --stats --exact` says and passes promtool; the API's services are what
# `ipvsadm -Ln --json` prints and its connection pages add up to `ipvsadm -Lnc`; a real server
# killed shows in lvs_checker_up, /api/v1/checkers and the event log; reloads are counted; bad
# requests get 404/400/405; clients that stall hold up neither scrapes nor traffic. Bounded waits;
# only the processes started here are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash

http=127.0.0.1:18490
vip=127.0.0.1:18480
server 18481 rs1 200; rs1=$last
server 18482 rs2 200
server 18483 rs3 200
for p in 18481 18482 18483; do wait_port $p || fail "real server $p did not start"; done

config() {  # config WEIGHT: three real servers with TCP checks
    cat >"$work/keepalived.conf" <<CONF
virtual_server 127.0.0.1 18480 {
    delay_loop 0.5
    lb_algo rr
    lb_kind NAT
    protocol TCP
$(for p in 18481 18482 18483; do cat <<RS
    real_server 127.0.0.1 $p {
        weight $1
        TCP_CHECK {
            connect_timeout 0.5
            retry 1
            delay_before_retry 0.2
            warmup 0
        }
    }
RS
done)
}
CONF
}
config 1
"$bin/lvsd" -f "$work/keepalived.conf" --http $http >"$work/out" 2>"$work/err" &
pids+=($!); lvsd=$!
up=0
for _ in $(seq 100); do curl -sf -m 2 "http://$http/api/v1/status" >/dev/null && { up=1; break; }; sleep 0.1; done
[[ $up == 1 ]] || fail "the HTTP endpoint did not answer"
get() { curl -sf -m 5 "http://$http$1"; }
code() { curl -s -m 5 -o /dev/null -w '%{http_code}' "$@"; }

# During traffic the counters move, and never back.
(for _ in $(seq 200); do curl -s -m 2 -o /dev/null "http://$vip/"; done) &
pids+=($!); traffic=$!
seen=()
for _ in $(seq 6); do
    seen+=("$(get /metrics | awk -F' ' '/^lvs_service_connections_total\{/ {print $2}')")
    sleep 0.2
done
wait "$traffic" || true
for i in $(seq 1 $((${#seen[@]} - 1))); do
    ((seen[i] >= seen[i - 1])) || fail "lvs_service_connections_total went back: ${seen[*]}"
done
((seen[${#seen[@]} - 1] > seen[0])) || fail "lvs_service_connections_total did not move during traffic: ${seen[*]}"
echo "ok: during traffic lvs_service_connections_total went ${seen[*]}"
before=$(get /metrics | awk '/^lvs_service_connections_total\{/ {print $2}')

# More traffic, then the metrics against ipvsadm's exact listing (taken back to back once the counters
# stand still: the last FINs are counted a moment after curl returns).
for _ in $(seq 30); do curl -sf -m 5 "http://$vip/" >/dev/null || fail "request through the VIP"; done
compare() {
    "$bin/ipvsadm" -Ln --stats --exact >"$work/stats"
    get /metrics >"$work/metrics"
    python3 - "$work/stats" "$work/metrics" "$before" <<'PY'
import re, sys
stats, metrics = open(sys.argv[1]).read(), open(sys.argv[2]).read()
values = {}
for line in metrics.splitlines():
    if line.startswith("#"): continue
    name, value = line.rsplit(" ", 1)
    values[name] = value
def metric(name, **labels):
    for key, value in values.items():
        n, _, rest = key.partition("{")
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if n == name and all(got.get(k) == v for k, v in labels.items()): return int(float(value))
    sys.exit(f"no {name} {labels}")
families = ["connections_total", "incoming_packets_total", "outgoing_packets_total", "incoming_bytes_total", "outgoing_bytes_total"]
service = None
checked = 0
for line in stats.splitlines():
    m = re.match(r"TCP\s+(\S+):(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
    if m:
        service = dict(local_address=m[1], local_port=m[2])
        for f, v in zip(families, m.groups()[2:]):
            got = metric("lvs_service_" + f, **service)
            if got != int(v): sys.exit(f"service {f}: metrics {got}, ipvsadm {v}")
        checked += 1
    m = re.match(r"\s+->\s+(\S+):(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
    if m:
        for f, v in zip(families, m.groups()[2:]):
            got = metric("lvs_backend_" + f, remote_address=m[1], remote_port=m[2], **service)
            if got != int(v): sys.exit(f"{m[1]}:{m[2]} {f}: metrics {got}, ipvsadm {v}")
        checked += 1
if checked != 4: sys.exit(f"compared {checked} rows of ipvsadm --stats, not 4")
before = int(sys.argv[3])
if metric("lvs_service_connections_total", local_port="18480") != before + 30: sys.exit("30 more connections expected")
counts = [metric("lvs_backend_connections_total", remote_port=p) for p in ("18481", "18482", "18483")]
if max(counts) - min(counts) > 1: sys.exit(f"rr: {counts}")
PY
}
same=0
for _ in $(seq 20); do sleep 0.3; compare 2>"$work/why" && { same=1; break; }; done
[[ $same == 1 ]] || fail "metrics do not match ipvsadm --stats: $(cat "$work/why")"
echo "ok: /metrics counters match ipvsadm -Ln --stats --exact ($before + 30 connections, round robin)"

if command -v promtool >/dev/null; then
    promtool check metrics <"$work/metrics" || fail "promtool check metrics"
    echo "ok: promtool check metrics"
else
    echo "note: promtool (Debian's prometheus package) is not installed; its check was not run"
fi

# The API is ipvsadm's JSON model; connection pages add up to the -Lnc listing.
python3 - "$(get /api/v1/services)" "$("$bin/ipvsadm" -Ln --json)" <<'PY' || fail "/api/v1/services differs from ipvsadm -Ln --json"
import json, sys
api, cli = json.loads(sys.argv[1]), json.loads(sys.argv[2])
strip = lambda t: [{k: v for k, v in s.items() if k not in ("stats", "servers")} | {"servers": [{k: v for k, v in r.items() if k != "stats"} for r in s["servers"]]} for s in t["services"]]
assert strip(api) == strip(cli), (strip(api), strip(cli))
assert api["services"][0]["stats"]["connections"] == cli["services"][0]["stats"]["connections"] >= 230
PY
entries=$("$bin/ipvsadm" -Lnc | tail -n +3 | wc -l)
total=$(get "/api/v1/connections?limit=7" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["connections"]) == min(7, d["total"]); print(d["total"])')
paged=0
for offset in $(seq 0 7 $((total + 6))); do
    n=$(get "/api/v1/connections?offset=$offset&limit=7" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["connections"]))')
    paged=$((paged + n))
done
[[ $total == "$entries" && $paged == "$total" ]] || fail "connections: API total $total, pages $paged, ipvsadm -Lnc $entries"
echo "ok: /api/v1/services is ipvsadm -Ln --json; $total connections in pages of 7, as ipvsadm -Lnc lists"

# Bad requests.
[[ $(code "http://$http/nowhere") == 404 ]] || fail "unknown path"
[[ $(code "http://$http/api/v1/connections?limit=abc") == 400 ]] || fail "bad limit"
get_400=$(curl -s -m 5 "http://$http/api/v1/connections?limit=abc")
[[ $get_400 == *"must be a whole number"* ]] || fail "400 without its reason: $get_400"
[[ $(code -X POST "http://$http/metrics") == 405 ]] || fail "POST"
echo "ok: 404, 400 with its reason, 405"

# Clients that stall: one sends half a request and waits, one asks for /metrics again and again
# and never reads. Traffic and scrapes go on.
exec 7<>"/dev/tcp/127.0.0.1/18490"; printf 'GET /metr' >&7
python3 - <<'PY' &
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", 18490))
for _ in range(200): s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(20)
PY
pids+=($!); stalled=$!
sleep 0.5
for _ in $(seq 20); do curl -sf -m 3 "http://$vip/" >/dev/null || fail "traffic while a client stalls"; done
for _ in $(seq 5); do get /metrics >/dev/null || fail "scrape while a client stalls"; done
kill "$stalled" 2>/dev/null || true; exec 7>&-
echo "ok: a stalled and a non-reading client hold up neither traffic nor scrapes"

# A real server killed: its checker goes down, the metrics, the API and the event log say so.
kill "$rs1"
down=0
for _ in $(seq 60); do
    get /metrics | contains -F 'lvs_checker_up{proto="TCP",local_address="127.0.0.1",local_port="18480",local_mark="",remote_address="127.0.0.1",remote_port="18481",checker="TCP",index="0",target="127.0.0.1:18481"} 0' && { down=1; break; }
    sleep 0.2
done
[[ $down == 1 ]] || fail "lvs_checker_up did not go to 0 for the killed real server"
get /api/v1/checkers | python3 -c '
import json, sys
c = {x["server"]["port"]: x for x in json.load(sys.stdin)}
assert not c[18481]["up"] and c[18481]["lastFailure"] and c[18481]["transitions"] == 1, c[18481]
assert c[18482]["up"] and c[18483]["up"] and c[18482]["probes"] > 0' || fail "/api/v1/checkers"
events=$(get /api/v1/events)
[[ $events == *"TCP connection to [127.0.0.1]:tcp:18481 failed."* && $events == *"Removing service [127.0.0.1]:tcp:18481 from VS [127.0.0.1]:tcp:18480"* ]] \
    || fail "event log: $events"
get /metrics | contains -F 'lvs_service_real_servers{proto="TCP",local_address="127.0.0.1",local_port="18480",local_mark=""} 2' || fail "the real server was not withdrawn"
echo "ok: the killed real server is down in lvs_checker_up, /api/v1/checkers and the event log, and withdrawn"

# Reloads: a good one and a refused one are counted.
config 2
kill -HUP "$lvsd"
ok=0
for _ in $(seq 50); do get /metrics | contains -F 'lvs_config_loads_total{result="success"} 2' && { ok=1; break; }; sleep 0.1; done
[[ $ok == 1 ]] || fail "reload not counted"
echo 'virtual_server 127.0.0.1 18480 { lb_algo nosuch' >"$work/keepalived.conf"
kill -HUP "$lvsd"
ok=0
for _ in $(seq 50); do get /metrics | contains -Fx 'lvs_config_last_load_successful 0' && { ok=1; break; }; sleep 0.1; done
[[ $ok == 1 ]] || fail "refused reload not shown"
get /metrics | contains -F 'lvs_config_loads_total{result="failure"} 1' || fail "refused reload not counted"
get /api/v1/events | contains "refused, the running one is kept" || fail "refused reload not in the event log"
curl -sf -m 5 "http://$vip/" >/dev/null || fail "the running configuration was not kept"
echo "ok: reloads counted (2 applied, 1 refused) and in the event log"

kill -TERM "$lvsd"
for _ in $(seq 50); do kill -0 "$lvsd" 2>/dev/null || break; sleep 0.1; done
kill -0 "$lvsd" 2>/dev/null && { kill -KILL "$lvsd"; fail "lvsd did not stop within 5 s of SIGTERM"; }
set +e; wait "$lvsd"; rc=$?; set -e
[[ $rc == 0 ]] || fail "lvsd exit after SIGTERM: $rc"
[[ $(code "http://$http/metrics") == 000 ]] || fail "the HTTP endpoint outlived lvsd"
echo "PASS: lvsd-http"
