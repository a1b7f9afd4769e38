#!/usr/bin/env bash
# Installing and running lvsd as a service (no privileges: into a staging directory): `make
# install-files` puts the programs, the unit and its options file in place; the unit passes
# systemd-analyze verify; lvsd run as the unit runs it tells systemd READY=1 once its
# configuration (found through LVSD_CONFIG, as without -f) is applied, RELOADING=1 and READY=1
# around SIGHUP, STOPPING=1 on SIGTERM, and logs for the journal (<N> priorities, keepalived's
# words). Only the processes started here are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash

root=$work/root
make -s install-files BIN="$bin" DESTDIR="$root" >"$work/make" 2>&1 || fail "make install-files: $(cat "$work/make")"
for f in usr/local/sbin/lvsd usr/local/sbin/ipvsadm usr/local/sbin/genhash etc/systemd/system/lvsd.service etc/default/lvsd; do
    [[ -f $root/$f ]] || fail "not installed: /$f"
done
[[ $(stat -c %a "$root/usr/local/sbin/lvsd") == 755 && $(stat -c %a "$root/etc/systemd/system/lvsd.service") == 644 ]] || fail "modes"
unit=$root/etc/systemd/system/lvsd.service
contains -Fx 'ExecStart=/usr/local/sbin/lvsd --dont-fork --log-console $LVSD_OPTIONS' "$unit" || fail "ExecStart: $(grep ExecStart "$unit")"
contains -Fx 'Type=notify' "$unit" || fail "Type=notify"
if command -v systemd-analyze >/dev/null; then
    # The same unit with ExecStart pointing at the staged binary (verify checks it exists).
    sed "s|/usr/local/sbin/lvsd|$root/usr/local/sbin/lvsd|" "$unit" >"$work/lvsd.service"
    systemd-analyze verify --man=no "$work/lvsd.service" >"$work/verify" 2>&1 || fail "systemd-analyze verify: $(cat "$work/verify")"
    echo "ok: installed; the unit passes systemd-analyze verify"
else
    echo "ok: installed (systemd-analyze is not here: the unit was not verified)"
fi

# systemd's side of sd_notify: a datagram socket that writes down what it receives.
python3 - "$work/notify.sock" "$work/notified" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True: out.write(s.recv(4096).decode().replace("\n", " ") + "\n")
PY
pids+=($!)
for _ in $(seq 50); do [[ -S $work/notify.sock ]] && break; sleep 0.1; done
server 18781 rs1 200
wait_port 18781 || fail "real server"
cat >"$work/keepalived.conf" <<'CONF'
virtual_server 127.0.0.1 18780 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 127.0.0.1 18781 {
        weight 1
    }
}
CONF
# stderr is the journal when JOURNAL_STREAM names its device and inode (systemd sets both).
: >"$work/err"
NOTIFY_SOCKET=$work/notify.sock JOURNAL_STREAM=$(stat -c '%d:%i' "$work/err") LVSD_CONFIG=$work/keepalived.conf \
    "$root/usr/local/sbin/lvsd" --dont-fork --log-console >"$work/out" 2>>"$work/err" &
pids+=($!); lvsd=$!
notified() { for _ in $(seq 100); do contains -Fx "$1" "$work/notified" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
notified "READY=1 STATUS=serving" || fail "no READY=1: $(cat "$work/notified" 2>/dev/null)"
"$bin/ipvsadm" -Ln | contains -F "TCP  127.0.0.1:18780 rr" || fail "the configuration from LVSD_CONFIG was not applied before READY=1"
curl -sf -m 5 http://127.0.0.1:18780/ | contains rs1 || fail "no traffic"
head -1 "$work/err" | contains -E '^<6>' || fail "journal lines: $(head -3 "$work/err")"
contains -E '^<[0-9]>[0-9]{4}-' "$work/err" && fail "a timestamp in journal lines"
# An inherited JOURNAL_STREAM with stderr elsewhere: the usual timestamped lines.
JOURNAL_STREAM=1:1 LVSD_SOCKET=$work/other.sock LVSD_CONFIG= "$root/usr/local/sbin/lvsd" 2>"$work/other" &
other=$!; pids+=($other)
for _ in $(seq 50); do [[ -s $work/other ]] && break; sleep 0.1; done
kill -TERM "$other"; wait "$other" || true
head -1 "$work/other" | contains -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' || fail "with stderr not the journal: $(head -1 "$work/other")"
echo "ok: READY=1 after the configuration from LVSD_CONFIG was applied; journal-style log lines"

kill -HUP "$lvsd"
notified "RELOADING=1" || fail "no RELOADING=1"
for _ in $(seq 50); do [[ $(grep -c '^READY=1' "$work/notified") -ge 2 ]] && break; sleep 0.1; done
[[ $(grep -c '^READY=1' "$work/notified") -ge 2 ]] || fail "no READY=1 after the reload: $(cat "$work/notified")"
contains -F '<6>Reloading configuration' "$work/err" || fail "reload log line: $(tail -3 "$work/err")"
kill -TERM "$lvsd"
notified "STOPPING=1" || fail "no STOPPING=1"
for _ in $(seq 50); do kill -0 "$lvsd" 2>/dev/null || break; sleep 0.1; done
kill -0 "$lvsd" 2>/dev/null && { kill -KILL "$lvsd"; fail "lvsd did not stop within 5 s of SIGTERM"; }
set +e; wait "$lvsd"; rc=$?; set -e
[[ $rc == 0 ]] || fail "lvsd exit after SIGTERM: $rc"
echo "ok: RELOADING=1 / READY=1 around SIGHUP, STOPPING=1 on SIGTERM, exit 0"
echo "PASS: lvsd-service"
