#!/usr/bin/env bash
# Health checks from keepalived.conf on loopback with the proxy engine (no privileges): a real
# server killed during steady traffic leaves the pool within delay_loop + retry x delay_before_retry
# (+ timeout) and no new connection goes to it; restarted, it rejoins. An HTTP_GET check takes out
# a server answering 503; with every real server down, the sorry server takes over (quorum lost).
# Bounded waits; only the processes started here are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash


server 18381 rs1 200; rs1=$last
server 18382 rs2 200; rs2=$last
server 18389 sorry 200; sorry=$last
for p in 18381 18382 18389; do wait_port $p || fail "real server $p did not start"; done

cat >"$work/keepalived.conf" <<'CONF'
virtual_server 127.0.0.1 18380 {
    delay_loop 0.5
    lb_algo rr
    lb_kind NAT
    protocol TCP
    sorry_server 127.0.0.1 18389
    real_server 127.0.0.1 18381 {
        weight 1
        TCP_CHECK {
            connect_timeout 0.5
            retry 1
            delay_before_retry 0.2
            warmup 0
        }
    }
    real_server 127.0.0.1 18382 {
        weight 1
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 0.5
            retry 1
            delay_before_retry 0.2
            warmup 0
        }
    }
}
CONF
# A second service whose real server is judged by a MISC_CHECK script, with notify scripts; with
# omega, its notify_down and quorum_down also run when lvsd stops. As root, notify_up runs as the
# user given after it (nobody), in a directory nobody may write to.
touch "$work/rs3-healthy"
as_nobody=""
if [[ $(id -u) == 0 ]]; then
    chmod 755 "$work"; mkdir -m 1777 "$work/drop"; as_nobody=nobody
else
    mkdir "$work/drop"
fi
cat >>"$work/keepalived.conf" <<CONF
virtual_server 127.0.0.1 18390 {
    delay_loop 0.3
    lb_algo rr
    lb_kind NAT
    protocol TCP
    omega
    quorum_down "/usr/bin/touch $work/rs3-quorum-down"
    real_server 127.0.0.1 18381 {
        notify_down "/usr/bin/touch $work/rs3-notified-down"
        notify_up "/usr/bin/touch $work/drop/rs3-notified-up" $as_nobody
        MISC_CHECK {
            misc_path "/usr/bin/test -e $work/rs3-healthy"
            misc_timeout 2
            warmup 0
        }
    }
}
CONF
"$bin/lvsd" -t -f "$work/keepalived.conf" || fail "lvsd -t"
"$bin/lvsd" -f "$work/keepalived.conf" >"$work/out" 2>"$work/err" &
pids+=($!); lvsd_pid=$!
for _ in $(seq 100); do grep -q "configuration applied" "$work/err" 2>/dev/null && break; sleep 0.1; done

# get N: N requests through the VIP, each on a new connection; prints the sorted names (or ERR).
get() {
    python3 - "$1" <<'PY'
import socket, sys
names = []
for _ in range(int(sys.argv[1])):
    try:
        s = socket.create_connection(("127.0.0.1", 18380), timeout=3)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n"); data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk: break
            data += chunk
        names.append(data.split(b"\r\n\r\n", 1)[1].decode().strip() if b"\r\n\r\n" in data else "ERR")
        s.close()
    except OSError:
        names.append("ERR")
print(" ".join(sorted(names)))
PY
}
servers() { "$bin/ipvsadm" -Ln -t 127.0.0.1:18380 | awk '/->/ && $2 ~ /^[0-9]/ {print $2}' | sort | tr '\n' ' '; }
wait_for() { # condition-command, seconds
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do eval "$1" && return 0; sleep 0.1; done
    return 1
}
[[ $(get 4) == "rs1 rs1 rs2 rs2" ]] || fail "both real servers serve at start"

# Kill rs1: it must leave within delay_loop 0.5 + retry 1 x 0.2 + timeout 0.5 (+ slack).
kill "$rs1"; start=$SECONDS
wait_for '[[ $(servers) == "127.0.0.1:18382 " ]]' 5 || fail "rs1 still in the pool: $(servers)"
grep -q "TCP connection to \[127.0.0.1\]:tcp:18381 failed." "$work/err" || fail "no keepalived-style log line for the failure"
grep -q "Removing service \[127.0.0.1\]:tcp:18381 from VS \[127.0.0.1\]:tcp:18380" "$work/err" || fail "no removal log line"
[[ $(get 4) == "rs2 rs2 rs2 rs2" ]] || fail "new connections after rs1 left"

# Restart rs1: it rejoins.
server 18381 rs1 200; rs1=$last
wait_for '[[ $(servers) == "127.0.0.1:18381 127.0.0.1:18382 " ]]' 5 || fail "rs1 did not rejoin: $(servers)"
[[ $(get 4) == "rs1 rs1 rs2 rs2" ]] || fail "rs1 serves again"

# rs2 answers 503: the HTTP_GET check takes it out.
kill "$rs2"; sleep 0.2
server 18382 rs2 503; rs2=$last
wait_for '[[ $(servers) == "127.0.0.1:18381 " ]]' 5 || fail "503 server still in the pool: $(servers)"

# Both down: quorum is lost and the sorry server serves alone.
kill "$rs1"
wait_for '[[ $(servers) == "127.0.0.1:18389 " ]]' 5 || fail "sorry server did not take over: $(servers)"
[[ $(get 2) == "sorry sorry" ]] || fail "sorry server answers"
grep -q "Lost quorum" "$work/err" || fail "no quorum log line"

# rs1 back: quorum regained, the sorry server goes.
server 18381 rs1 200; rs1=$last
wait_for '[[ $(servers) == "127.0.0.1:18381 " ]]' 5 || fail "quorum not regained: $(servers)"
# The MISC_CHECK service: the script fails, the server leaves and notify_down runs; it passes again,
# the server rejoins and notify_up runs.
misc_servers() { "$bin/ipvsadm" -Ln -t 127.0.0.1:18390 | awk '/->/ && $2 ~ /^[0-9]/ {print $2}' | tr '\n' ' '; }
[[ $(misc_servers) == "127.0.0.1:18381 " ]] || fail "MISC_CHECK server at start: $(misc_servers)"
rm "$work/rs3-healthy"
wait_for '[[ -z $(misc_servers) ]]' 5 || fail "MISC_CHECK failure did not take the server out: $(misc_servers)"
wait_for '[[ -e $work/rs3-notified-down ]]' 5 || fail "notify_down did not run"
touch "$work/rs3-healthy"
wait_for '[[ $(misc_servers) == "127.0.0.1:18381 " ]]' 5 || fail "MISC_CHECK server did not rejoin"
wait_for '[[ -e $work/drop/rs3-notified-up ]]' 5 || fail "notify_up did not run"
if [[ -n $as_nobody ]]; then
    [[ $(stat -c %U "$work/drop/rs3-notified-up") == nobody ]] || fail "notify_up did not run as nobody"
fi
grep -q "SECURITY VIOLATION - check scripts are being executed but script_security not enabled." "$work/err" \
    || fail "no warning about scripts run without enable_script_security"
# Stopping: the live real server is announced as shutting down; omega runs notify_down and quorum_down.
rm -f "$work/rs3-notified-down" "$work/rs3-quorum-down"
kill -TERM "$lvsd_pid"
for _ in $(seq 50); do kill -0 "$lvsd_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$lvsd_pid" 2>/dev/null && fail "lvsd did not stop"
grep -q "Shutting down service \[127.0.0.1\]:tcp:18381 from VS \[127.0.0.1\]:tcp:18390" "$work/err" || fail "no shutting-down line"
[[ -e $work/rs3-notified-down ]] || fail "omega: notify_down did not run at stop"
[[ -e $work/rs3-quorum-down ]] || fail "omega: quorum_down did not run at stop"
echo "lvsd-health: ok"
