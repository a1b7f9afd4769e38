# Shared by the integration scripts (sourced after they cd to the repository root; not a test
# itself: scripts/test runs *.sh only). A scratch directory, lvsd's control socket in it, the
# processes started, stopped by PID on exit, and `fail` that also shows the end of $work/err.
bin=$(swift build --show-bin-path)
work=$(mktemp -d)
export LVSD_SOCKET=$work/lvsd.sock
# lvsd without -f would read the host's /etc/keepalived/keepalived.conf: never in a test.
export LVSD_CONFIG=
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# `... | contains PATTERN`: grep that reads all its input. grep -q stops at the first match, and
# under pipefail the writer's SIGPIPE (ip, ss: they write line by line) then fails the pipeline.
contains() { grep "$@" >/dev/null; }
fail() { echo "FAIL: $*" >&2; [[ -f $work/err ]] && tail -25 "$work/err" >&2; exit 1; }

# server PORT NAME STATUS: an HTTP/1.0 server answering every request with its name (and STATUS).
server() {
    python3 - "$1" "$2" "$3" <<'PY' &
import socket, sys, threading
port, name, status = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(128)
def handle(c):
    try:
        c.settimeout(5); data = b""
        while b"\r\n\r\n" not in data and b"\n" not in data:
            chunk = c.recv(4096)
            if not chunk: break
            data += chunk
        body = (name + "\n").encode()
        c.sendall(b"HTTP/1.0 " + status.encode() + b" X\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    except OSError: pass
    finally: c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
PY
    pids+=($!)
    last=$!
}
wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
