#!/usr/bin/env bash
# The dashboard in a real browser (root: headless Chromium against lvsd in a namespace, through
# scripts/dashboard-screenshot): with every real server up, nothing on the page is red; after one
# is killed, its row is red in the screenshot and in the DOM, the event log shows the checker's
# transition, the VRRP instance shows as MASTER, and its hostile name is text, not markup.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
[[ $(id -u) == 0 ]] || { echo "SKIP: dashboard-browser needs root (a network namespace, VRRP)"; exit 0; }
command -v chromium >/dev/null || fail "chromium is not installed (scripts/test installs it as root)"

scripts/dashboard-screenshot "$work/shots" >"$work/out" 2>"$work/err" || fail "dashboard-screenshot: $(tail -5 "$work/err")"
before=$work/shots/before.html after=$work/shots/after.html

# The DOM: the killed server's row is down, the others up; before, all were up.
row() { grep -o "data-server=\"$2\" data-health=\"[a-z]*\"" "$1" | sed 's/.*data-health="//; s/"//'; }
[[ $(row "$before" 127.0.0.1:18582) == up ]] || fail "before: 127.0.0.1:18582 is not shown up"
[[ $(row "$after" 127.0.0.1:18582) == down ]] || fail "after: 127.0.0.1:18582 is not shown down"
[[ $(row "$after" 127.0.0.1:18581) == up && $(row "$after" 127.0.0.1:18583) == up ]] || fail "after: the live real servers are not shown up"
contains -F 'TCP connection to [127.0.0.1]:tcp:18582 failed.' "$after" || fail "the event log lacks the checker's transition"
contains -F 'Removing service [127.0.0.1]:tcp:18582 from VS [127.0.0.1]:tcp:18580' "$after" || fail "the event log lacks the removal"
contains -F '<span class="state MASTER">MASTER</span>' "$after" || fail "the VRRP instance is not shown as MASTER"
contains -F 'VI_&lt;img/src=x/onerror=alert(1)&gt;' "$after" || fail "the instance's name is not shown as text"
! contains '<img' "$after" || fail "the instance's name became markup"
echo "ok: DOM: 127.0.0.1:18582 down (was up), the event log has its transition, VRRP MASTER, names escaped"

# The pictures: the dashboard's red (#c62828 text and dot, #fdecec row) appears only after the kill.
python3 - "$work/shots/before.png" "$work/shots/after.png" <<'PY' || fail "the screenshots do not show the real server red"
import struct, sys, zlib
def pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    return [(r[i], r[i + 1], r[i + 2]) for r in rows for i in range(0, stride, bpp)]
def red(path):
    near = lambda p, q: all(abs(x - y) <= 12 for x, y in zip(p, q))
    px = pixels(path)
    return sum(near(p, (0xc6, 0x28, 0x28)) for p in px), sum(p == (0xfd, 0xec, 0xec) for p in px)
b, a = red(sys.argv[1]), red(sys.argv[2])
print(f"red pixels (text and dot, row): before {b}, after {a}")
assert b == (0, 0), "red before any real server failed"
assert a[0] > 200 and a[1] > 5000, "too little red after the kill"
PY
echo "ok: the screenshots: no red before, the killed real server's row red after"
echo "PASS: dashboard-browser"
