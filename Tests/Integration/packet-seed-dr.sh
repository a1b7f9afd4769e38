#!/usr/bin/env bash
# Seed 001's LVS-DR experiment with the packet engine: one segment (192.168.122.0/24), the
# director at .30 with the VIP .50 on eth0, real servers .10 and .20 with the VIP on lo (set up by
# lvsd realserver, as the seed's realserver script does), a client at .100. curl from the client
# alternates "lvs01 host!" / "lvs02 host!"; ipvsadm -Ln has the seed's table shape; the replies do
# not pass through the director (its OutPkts stay 0 and a capture on its interface sees none).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash
command -v tcpdump >/dev/null || fail "tcpdump is needed (apt-get install tcpdump)"

VIP=192.168.122.50
new_ns user; new_ns dr; new_ns rs1; new_ns rs2
user=user-$$ dr=dr-$$ rs1=rs1-$$ rs2=rs2-$$
lan "$user" "$dr" "$rs1" "$rs2"
ip -n "$user" addr add 192.168.122.100/24 dev eth0
ip -n "$dr" addr add 192.168.122.30/24 dev eth0
ip -n "$rs1" addr add 192.168.122.10/24 dev eth0
ip -n "$rs2" addr add 192.168.122.20/24 dev eth0
lan_forwarding

# The real servers: the seed's realserver script, then a web server answering with its name.
for n in 1 2; do
    ns=rs$n-$$
    ip netns exec "$ns" "$bin/lvsd" realserver start --vip $VIP >/dev/null || fail "realserver start on rs$n"
    http_server "$ns" 0.0.0.0 80 "lvs0$n host!"
done
[[ $(ip netns exec "$rs1" sysctl -n net.ipv4.conf.lo.arp_ignore) == 1 ]] || fail "arp_ignore not set on lo"
ip -n "$rs1" addr show dev lo | contains "$VIP/32" || fail "the VIP is not on rs1's lo"

# The director: the seed's DirectorServer script (VIP on eth0:1, ipvsadm -C/-A/-a -g) with lvsd.
ip -n "$dr" addr add $VIP/32 broadcast $VIP dev eth0 label eth0:1
start_lvsd "$dr" --engine packet --interface eth0
ipvsadm_in "$dr" -C
ipvsadm_in "$dr" -A -t $VIP:80 -s rr
ipvsadm_in "$dr" -a -t $VIP:80 -r 192.168.122.10:80 -g
ipvsadm_in "$dr" -a -t $VIP:80 -r 192.168.122.20:80 -g

ip netns exec "$dr" tcpdump -i eth0 -n -w "$work/dr.pcap" "tcp and src host $VIP" >/dev/null 2>&1 &
capture=$!; pids+=($capture)
sleep 0.5
answers=()
for _ in 1 2 3 4; do
    answers+=("$(ip netns exec "$user" curl -s --max-time 5 http://$VIP/)") || true
done
# rr alternates (the kernel's rr starts from the real server added last, as LVSCore's does).
case "${answers[*]}" in
    "lvs01 host! lvs02 host! lvs01 host! lvs02 host!" | "lvs02 host! lvs01 host! lvs02 host! lvs01 host!") ;;
    *) fail "curl answers: ${answers[*]}" ;;
esac
printf '%s\n' "${answers[@]}"
sleep 0.5
kill -INT $capture; wait $capture 2>/dev/null || true
replies=$(tcpdump -n -r "$work/dr.pcap" 2>/dev/null | wc -l)
[[ $replies == 0 ]] || fail "$replies reply packets reached the director"

listing=$(ipvsadm_in "$dr" -Ln)
shape=$(echo "$listing" | sed -E 's/ +/ /g; s/ $//')
expected_shape="IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
 -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP 192.168.122.50:80 rr
 -> 192.168.122.10:80 Route 1 0 2
 -> 192.168.122.20:80 Route 1 0 2"
[[ $shape == "$expected_shape" ]] || fail "ipvsadm -Ln:
$listing"
stats=$(ipvsadm_in "$dr" -Ln --stats)
echo "$stats" | awk '/->/ && $2 ~ /^192/ { if ($4 == 0 || $5 != 0) bad = 1 } END { exit bad }' || fail "counters: $stats"
echo "$listing"

# A client port back while its last connection is still in the table (FIN_WAIT, where a DR
# connection ends): IPVS sends the new SYN to that connection's real server (conn_reuse_mode 1),
# and the in-kernel path does too, reopening the closed flow in place. Three connections from one
# port, then lvsd's own count of what the kernel scheduled and reopened. (The client reads to the
# real server's FIN before it closes, so that its own end of the port is free at once.)
from_port() {
    ip netns exec "$user" python3 - "$VIP" 41000 <<'PY'
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.settimeout(5)
s.bind(("", int(sys.argv[2]))); s.connect((sys.argv[1], 80)); s.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = b""
while chunk := s.recv(4096): data += chunk
s.close(); print(data.split(b"\r\n\r\n", 1)[-1].decode().strip())
PY
}
reuse=()
for _ in 1 2 3; do
    reuse+=("$(from_port 2>&1)") || true
    sleep 0.2
done
[[ -n ${reuse[0]} && ${reuse[0]} == "${reuse[1]}" && ${reuse[1]} == "${reuse[2]}" ]] || fail "one client port, three connections: ${reuse[*]}"
entries=$(ipvsadm_in "$dr" -Lnc | grep -c ":41000 ")
[[ $entries == 1 ]] || fail "client port 41000 has $entries connection entries: $(ipvsadm_in "$dr" -Lnc)"
kill -TERM "$lvsd_pid"; wait "$lvsd_pid" 2>/dev/null || true
stopped=$(grep "packet engine stopped" "$work/err" || true)
[[ $stopped =~ syns\ scheduled\ in\ kernel=([0-9]+) ]] && scheduled=${BASH_REMATCH[1]} && ((scheduled >= 5)) ||
    fail "SYNs scheduled in the kernel: $stopped"
[[ $stopped =~ syns\ reopening\ a\ closed\ flow\ in\ kernel=([0-9]+) ]] && reopened=${BASH_REMATCH[1]} && ((reopened >= 2)) ||
    fail "SYNs reopened in the kernel: $stopped"
echo "one client port three times: ${reuse[0]}; SYNs scheduled in the kernel $scheduled, reopened there $reopened"
for n in 1 2; do ip netns exec rs$n-$$ "$bin/lvsd" realserver stop --vip $VIP >/dev/null; done
ip -n "$rs1" addr show dev lo | contains "$VIP" && fail "realserver stop left the VIP"
echo "packet-seed-dr: ok"
