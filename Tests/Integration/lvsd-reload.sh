#!/usr/bin/env bash
# lvsd -f with a keepalived.conf, on loopback (no privileges): traffic through the proxy engine,
# then the file changes (a weight, a real server added, one removed) and SIGHUP: a connection held
# open across the reload keeps working, new connections follow the new table, ipvsadm shows it.
# A broken file on reload changes nothing; `lvsd reload` does the same over the control socket.
# Bounded waits; only the processes started here are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash

# Three real servers: each answers every line it reads with its name (so one connection can be
# used for many requests).
python3 - "$work" <<'PY' &
import socket, sys, threading, os
def serve(port, name):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(64)
    def handle(c):
        f = c.makefile("rb")
        for line in f:
            c.sendall(name.encode() + b"\n")
        c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
for port, name in ((18281, "rs1"), (18282, "rs2"), (18283, "rs3")):
    threading.Thread(target=serve, args=(port, name), daemon=True).start()
open(os.path.join(sys.argv[1], "ready"), "w").close()
threading.Event().wait(300)
PY
pids+=($!)
for _ in $(seq 50); do [[ -e $work/ready ]] && break; sleep 0.1; done

cat >"$work/keepalived.conf" <<'CONF'
global_defs {
    router_id SWIFTLVS_TEST
}
$VIP=127.0.0.1
virtual_server $VIP 18280 {
    delay_loop 6
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 18281 {
        weight 1
    }
    real_server 127.0.0.1 18282 {
        weight 1
    }
}
CONF
"$bin/lvsd" -t -f "$work/keepalived.conf" || fail "lvsd -t on a valid file"
"$bin/lvsd" -f "$work/keepalived.conf" >"$work/out" 2>"$work/err" &
pids+=($!); lvsd=$!
for _ in $(seq 100); do grep -q "configuration applied" "$work/err" 2>/dev/null && break; sleep 0.1; done
grep -q "configuration applied" "$work/err" || fail "lvsd -f did not apply the file"

# request N: N lines on one new connection each; prints the names answered.
requests() {
    python3 - "$1" <<'PY'
import socket, sys
names = []
for _ in range(int(sys.argv[1])):
    s = socket.create_connection(("127.0.0.1", 18280), timeout=5)
    s.sendall(b"hello\n"); names.append(s.makefile().readline().strip()); s.close()
print(" ".join(sorted(names)))
PY
}
[[ $(requests 4) == "rs1 rs1 rs2 rs2" ]] || fail "wrr 1:1 before reload"

# A connection held open across the reload (to whichever server it landed on).
python3 - "$work" <<'PY' &
import socket, sys, time, os
s = socket.create_connection(("127.0.0.1", 18280), timeout=5)
f = s.makefile()
s.sendall(b"first\n"); first = f.readline().strip()
open(os.path.join(sys.argv[1], "held"), "w").write(first)
while not os.path.exists(os.path.join(sys.argv[1], "reloaded")): time.sleep(0.05)
s.sendall(b"again\n"); again = f.readline().strip()
open(os.path.join(sys.argv[1], "held-result"), "w").write(first + " " + again)
PY
holder=$!
pids+=($holder)
for _ in $(seq 50); do [[ -s $work/held ]] && break; sleep 0.1; done
[[ -s $work/held ]] || fail "held connection did not start"

# New file: rs1 weight 3, rs2 removed, rs3 added.
cat >"$work/keepalived.conf" <<'CONF'
global_defs {
    router_id SWIFTLVS_TEST
}
virtual_server 127.0.0.1 18280 {
    delay_loop 6
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 18281 {
        weight 3
    }
    real_server 127.0.0.1 18283 {
        weight 1
    }
}
CONF
"$bin/lvsd" -t -f "$work/keepalived.conf" || fail "lvsd -t on the changed file"
kill -HUP "$lvsd"
for _ in $(seq 100); do grep -q "configuration reloaded" "$work/err" && break; sleep 0.1; done
grep -q "configuration reloaded" "$work/err" || fail "SIGHUP did not reload"
touch "$work/reloaded"
for _ in $(seq 50); do [[ -s $work/held-result ]] && break; sleep 0.1; done
held=$(cat "$work/held-result" 2>/dev/null || true)
read -r first again <<<"$held"
[[ -n $first && $first == "${again:-}" ]] || fail "the connection held across the reload: '$held'"
# (when it was on rs2, that is a removed real server draining: its connection goes on)

listing=$("$bin/ipvsadm" -Ln)
echo "$listing" | contains "127.0.0.1:18281 *Masq *3" || fail "rs1 weight 3 after reload: $listing"
echo "$listing" | contains "127.0.0.1:18283 *Masq *1" || fail "rs3 added: $listing"
! echo "$listing" | contains "18282" || fail "rs2 removed: $listing"
[[ $(requests 8) == "rs1 rs1 rs1 rs1 rs1 rs1 rs3 rs3" ]] || fail "wrr 3:1 after reload"

# A broken file: reload refused, the table stays.
table() { "$bin/ipvsadm" -Ln | awk '{print $1, $2, $3, $4}'; }
before=$(table)
echo "virtual_server 127.0.0.1 18290 { lb_algo nosuch" >>"$work/keepalived.conf"
set +e
"$bin/lvsd" reload >"$work/reload-out" 2>"$work/reload-err"; rc=$?
set -e
[[ $rc == 1 ]] || fail "lvsd reload of a broken file: exit $rc"
grep -q "Invalid lvs_scheduler 'nosuch'" "$work/reload-err" || fail "reload error: $(cat "$work/reload-err")"
grep -q "running one is kept" "$work/reload-err" || fail "reload error: $(cat "$work/reload-err")"
[[ $(table) == "$before" ]] || fail "table changed by a refused reload: $(table)"
# A file that is not there: lvsd says so and does not start (nor keep the socket).
set +e
LVSD_SOCKET=$work/other.sock "$bin/lvsd" -f "$work/missing.conf" 2>"$work/missing-err"; rc=$?
set -e
[[ $rc == 1 ]] && grep -q "Unable to find configuration file" "$work/missing-err" || fail "missing file: exit $rc $(cat "$work/missing-err")"
[[ ! -e $work/other.sock ]] || fail "control socket left behind by a failed start"
echo "lvsd-reload: ok"
