#!/usr/bin/env bash
# genhash prints what Debian's genhash (keepalived 2.2.7) prints for the same pages of a local
# server: the digest, and the verbose dump (all but the response time). Also without the reference
# program, the digests are checked against python's hashlib.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash

# A server with fixed answers (no Date header), so that two runs are byte for byte the same.
python3 - <<'PY' &
import socket, threading
pages = {b"/": b"hello\n", b"/big": bytes(range(256)) * 40, b"/empty": b""}
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18580)); s.listen(16)
def handle(c):
    req = c.recv(65536).split(b" ")
    body = pages.get(req[1] if len(req) > 1 else b"/", b"not found\n")
    status = b"200 OK" if (len(req) > 1 and req[1] in pages) else b"404 Not Found"
    c.sendall(b"HTTP/1.0 " + status + b"\r\nServer: fixed\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
PY
pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/18580) 2>/dev/null && break; sleep 0.1; done

# The same pages over TLS (a self-signed certificate made here), for -S.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 -subj "/CN=localhost" >/dev/null 2>&1
python3 - "$work" <<'PY' &
import socket, ssl, sys, threading
pages = {b"/": b"hello\n", b"/big": bytes(range(256)) * 40}
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1] + "/cert.pem", sys.argv[1] + "/key.pem")
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18583)); s.listen(16)
def handle(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
        req = t.recv(65536).split(b" ")
        body = pages.get(req[1] if len(req) > 1 else b"/", b"not found\n")
        t.sendall(b"HTTP/1.0 200 OK\r\nServer: fixed\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        t.close()
    except Exception: c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
PY
pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/18583) 2>/dev/null && break; sleep 0.1; done

expect() { python3 -c "import hashlib,sys; print(hashlib.md5(sys.argv[1].encode('latin-1')).hexdigest())" "$1"; }
[[ $("$bin/genhash" -s 127.0.0.1 -p 18580 -u /) == "$(expect $'hello\n')" ]] || fail "digest of /"
[[ $("$bin/genhash" -s 127.0.0.1 -p 18581 -u /) == "Connection failed" ]] || fail "refused connection"
[[ $("$bin/genhash" -S -s 127.0.0.1 -p 18583 -u /) == "$(expect $'hello\n')" ]] || fail "digest of / over TLS"
if ! command -v genhash >/dev/null || [[ $(command -v genhash) == "$bin/genhash" ]]; then
    echo "genhash-agreement: ok (Debian's genhash not installed: compared with hashlib only)"
    exit 0
fi
for url in / /big /empty /missing; do
    [[ $("$bin/genhash" -s 127.0.0.1 -p 18580 -u "$url") == $(/usr/bin/genhash -s 127.0.0.1 -p 18580 -u "$url") ]] || fail "digest of $url"
    diff <("$bin/genhash" -s 127.0.0.1 -p 18580 -u "$url" -v | grep -v "^Global response time") \
         <(/usr/bin/genhash -s 127.0.0.1 -p 18580 -u "$url" -v | grep -v "^Global response time") >/dev/null || fail "verbose output of $url"
done
for url in / /big; do
    [[ $("$bin/genhash" -S -s 127.0.0.1 -p 18583 -u "$url") == $(/usr/bin/genhash -S -s 127.0.0.1 -p 18583 -u "$url") ]] || fail "TLS digest of $url"
done
echo "genhash-agreement: ok"
