#!/usr/bin/env bash
# More of the packet engine in namespaces: IPv6 services (NAT and DR, a TCP transfer checked byte
# for byte), a UDP service through NAT (every answer comes back from the VIP), and hostile frames
# sent straight at the director (truncated, bad checksums and lengths, fragments, flag nonsense,
# ports without a service): lvsd keeps running, counts them, and still forwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash
command -v socat >/dev/null || fail "socat is needed (apt-get install socat)"
head -c 2000000 /dev/urandom >"$work/in"

# A routed topology: client (2001:db8:1::2, 10.1.0.2) -- director (::1 / .1 on both) -- real
# server (2001:db8:2::2, 10.2.0.2), the real server's default routes through the director.
topology() {
    new_ns c; new_ns d; new_ns r
    c=c-$$ d=d-$$ r=r-$$
    ip link add eth0 netns "$c" type veth peer name front netns "$d"
    ip link add back netns "$d" type veth peer name eth0 netns "$r"
    for n in "$c" "$r"; do ip -n "$n" link set eth0 up; done
    ip -n "$d" link set front up; ip -n "$d" link set back up
    ip -n "$c" addr add 10.1.0.2/24 dev eth0; ip -n "$c" addr add 2001:db8:1::2/64 dev eth0 nodad
    ip -n "$d" addr add 10.1.0.1/24 dev front; ip -n "$d" addr add 2001:db8:1::1/64 dev front nodad
    ip -n "$d" addr add 10.2.0.1/24 dev back; ip -n "$d" addr add 2001:db8:2::1/64 dev back nodad
    ip -n "$r" addr add 10.2.0.2/24 dev eth0; ip -n "$r" addr add 2001:db8:2::2/64 dev eth0 nodad
    ip -n "$c" route add default via 10.1.0.1; ip -n "$c" -6 route add default via 2001:db8:1::1
    ip -n "$r" route add default via 10.2.0.1; ip -n "$r" -6 route add default via 2001:db8:2::1
    ip netns exec "$d" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    start_lvsd "$d" --engine packet --interface front,back --http 127.0.0.1:18990
}
stop_all() {
    kill -TERM $lvsd_pid; wait $lvsd_pid || true
    for n in "${namespaces[@]}"; do ip netns del "$n"; done; namespaces=()
    rm -f "$work/lvsd.sock"
}
transfer6() { # VIP PORT RS-PORT
    rm -f "$work/got"
    ip netns exec "$r" timeout 10 socat -u TCP6-LISTEN:$3,reuseaddr OPEN:"$work/got",creat >/dev/null 2>&1 &
    local server=$!
    for _ in $(seq 50); do ip netns exec "$r" ss -ltn | contains ":$3 " && break; sleep 0.05; done
    ip netns exec "$c" timeout 10 socat -u OPEN:"$work/in" "TCP6:[$1]:$2" || { kill $server 2>/dev/null; return 1; }
    wait $server || true
    cmp -s "$work/in" "$work/got"
}

# IPv6 NAT, to another port.
topology
# A second lvsd on the same control socket refuses to start and leaves the first one's rules alone.
if ip netns exec "$d" env LVSD_SOCKET="$work/lvsd.sock" "$bin/lvsd" --engine packet --interface front,back 2>"$work/second"; then
    fail "a second lvsd started"
fi
grep -q "another lvsd is already running" "$work/second" || fail "second lvsd: $(cat "$work/second")"
ip netns exec "$d" nft list table netdev lvsd | contains "chain ingress0" || fail "the second lvsd touched the first one's rules"
ipvsadm_in "$d" -A -t "[2001:db8:100::1]:8080" -s rr
ipvsadm_in "$d" -a -t "[2001:db8:100::1]:8080" -r "[2001:db8:2::2]:9090" -m
ip netns exec "$c" ip -6 route add 2001:db8:100::1 via 2001:db8:1::1
transfer6 2001:db8:100::1 8080 9090 || fail "IPv6 NAT transfer"
ipvsadm_in "$d" -Ln --stats | contains "\[2001:db8:2::2\]:9090" || fail "IPv6 NAT listing"
echo "packet-more: IPv6 NAT ok"

# IPv6 DR: the VIP on the real server's lo; its replies route back through the director.
ipvsadm_in "$d" -C
ip -n "$r" addr add 2001:db8:100::2/128 dev lo
ipvsadm_in "$d" -A -t "[2001:db8:100::2]:8080" -s rr
ipvsadm_in "$d" -a -t "[2001:db8:100::2]:8080" -r "[2001:db8:2::2]:8080" -g
ip netns exec "$c" ip -6 route add 2001:db8:100::2 via 2001:db8:1::1
transfer6 2001:db8:100::2 8080 8080 || fail "IPv6 DR transfer"
echo "packet-more: IPv6 DR ok"

# UDP NAT: an echo server; every answer must come from the VIP.
ipvsadm_in "$d" -C
ipvsadm_in "$d" -A -u 10.9.9.9:5353 -s rr
ipvsadm_in "$d" -a -u 10.9.9.9:5353 -r 10.2.0.2:5300 -m
ip netns exec "$c" ip route add 10.9.9.9 via 10.1.0.1
ip netns exec "$r" timeout 10 socat UDP4-RECVFROM:5300,fork EXEC:cat >/dev/null 2>&1 &
pids+=($!)
sleep 0.3
got=$(ip netns exec "$c" python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
ok = 0
for i in range(20):
    s.sendto(b"ping %d" % i, ("10.9.9.9", 5353))
    try:
        data, peer = s.recvfrom(100)
        if data == b"ping %d" % i and peer == ("10.9.9.9", 5353): ok += 1
    except socket.timeout:
        pass
print(ok)
PY
)
[[ $got -ge 18 ]] || fail "UDP NAT: $got of 20 answers came back from the VIP"
echo "packet-more: UDP NAT ok ($got/20)"
# Datagrams larger than the MTU: fragments both ways, reassembled by the engine (as the kernel
# reassembles before IPVS) and fragmented again on the way out.
big=$(ip netns exec "$c" python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
ok = 0
for i in range(10):
    payload = bytes([i]) * 4000
    s.sendto(payload, ("10.9.9.9", 5353))
    try:
        data, peer = s.recvfrom(8000)
        if data == payload and peer == ("10.9.9.9", 5353): ok += 1
    except socket.timeout:
        pass
print(ok)
PY
)
[[ $big -ge 9 ]] || fail "UDP NAT with fragments: $big of 10 answers"
echo "packet-more: UDP NAT with fragments ok ($big/10)"

# Hostile frames at the director's front interface, then a service must still work.
ipvsadm_in "$d" -A -t 10.9.9.9:80 -s rr
ipvsadm_in "$d" -a -t 10.9.9.9:80 -r 10.2.0.2:80 -m
mac=$(ip netns exec "$d" cat /sys/class/net/front/address)
ip netns exec "$c" python3 - "$mac" <<'PY'
import socket, struct, random, sys
dst = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("eth0", 0))
src = open("/sys/class/net/eth0/address").read().strip()
src = bytes.fromhex(src.replace(":", ""))
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
def ip(proto, payload, frag=0x4000, ihl=5, total=None, good=True, ttl=64):
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total or 20 + len(payload), 1, frag, ttl, proto, 0,
                    socket.inet_aton("10.1.0.2"), socket.inet_aton("10.9.9.9"))
    c = csum(h) if good else 0x1234
    return h[:10] + struct.pack("!H", c) + h[12:] + payload
def tcp(flags, dport=80):
    return struct.pack("!HHIIBBHHH", 4000, dport, 1, 0, 0x50, flags, 1000, 0, 0)
random.seed(7)
frames = [
    ip(6, tcp(0x02))[:30],                     # truncated
    ip(6, tcp(0x02), good=False),              # bad header checksum
    ip(6, tcp(0x02), ihl=4),                   # bad header length
    ip(6, tcp(0x02), total=400),               # total length past the frame
    ip(6, tcp(0x02), frag=0x2000),             # first fragment
    ip(6, b"x" * 16, frag=0x0010),             # later fragment
    ip(6, tcp(0x07)),                          # SYN+FIN+RST
    ip(6, tcp(0x10)),                          # ACK without a connection
    ip(6, tcp(0x02, dport=81)),                # a port with no service
    ip(6, tcp(0x02), ttl=1),                   # hop limit runs out
    ip(17, b"\x00\x01\x00\x02\x00\x03"),       # UDP header cut short
    ip(6, bytes([0, 1, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x30, 2]) + b"\0" * 6),  # TCP data offset 3
]
for _ in range(300):
    frames.append(bytes(random.randrange(256) for _ in range(random.randrange(1, 120))))
for f in frames:
    s.send(dst + src + b"\x08\x00" + f)
print(len(frames), "hostile frames sent")
PY
kill -0 $lvsd_pid || fail "lvsd died on hostile frames"
ip netns exec "$r" timeout 10 socat TCP4-LISTEN:80,reuseaddr,fork SYSTEM:'echo still-here' >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do ip netns exec "$r" ss -ltn | contains ":80 " && break; sleep 0.05; done
answer=$(ip netns exec "$c" timeout 5 socat -T 2 - TCP4:10.9.9.9:80 </dev/null || true)
[[ $answer == still-here ]] || fail "after hostile frames the service answers '$answer'"
# The same counts, live, in /metrics (the engine publishes its counters every 200 ms; the page
# passes promtool).
for _ in $(seq 30); do
    ip netns exec "$d" curl -sf -m 5 http://127.0.0.1:18990/metrics >"$work/metrics" || fail "/metrics"
    contains -Fx 'lvs_engine_dropped_total{reason="hop_limit"} 1' "$work/metrics" && break
    sleep 0.1
done
contains -Fx 'lvs_engine_dropped_total{reason="hop_limit"} 1' "$work/metrics" || fail "hop limit drop not in /metrics: $(grep dropped "$work/metrics")"
awk '/^lvs_engine_dropped_total\{reason="not_scheduled"\}/ {exit !($2 > 0)}' "$work/metrics" || fail "not-scheduled drops not in /metrics"
awk '/^lvs_engine_packets_total\{result="forwarded"\}/ {exit !($2 > 0)}' "$work/metrics" || fail "forwarded frames not in /metrics"
if command -v promtool >/dev/null; then promtool check metrics <"$work/metrics" || fail "promtool check metrics"; fi
contains -F 'lvs_build_info{version="0.1",engine="packet"} 1' "$work/metrics" || fail "engine label"
echo "packet-more: the drops by reason are in /metrics"
stop_all
line=$(grep "packet engine stopped" "$work/err" | tail -1)
echo "$line"
echo "$line" | contains "dropped: hop limit=1" || fail "the hop-limit frame is not counted: $line"
echo "$line" | contains "dropped: not scheduled=" || fail "the ACK without a connection is not counted: $line"
echo "$line" | contains "fragments=" || fail "the fragments are not counted: $line"
echo "packet-more: hostile frames ok"
echo "packet-more: ok"
