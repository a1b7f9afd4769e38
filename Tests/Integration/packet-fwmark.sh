#!/usr/bin/env bash
# fwmark services with the packet engine (root, network namespaces): the LVS-DR segment of seed
# 001, and on the director the operator's own mangle rule marks the VIP's ports 80 and 443 with 1
# (as `iptables -t mangle -A PREROUTING -d VIP -p tcp -m multiport --dports 80,443 -j MARK
# --set-mark 1` does); `ipvsadm -A -f 1 -s rr -p` balances both ports as one service, persistence
# keeps a client on one real server across them, a 4 MB upload through the director arrives whole,
# ipvsadm -Ln shows the FWM service with its counters, and unmarked traffic to other ports is not
# taken. The engine's rules (netdev and inet tables) are removed when it stops.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash

VIP=192.168.122.50
lan_hosts user=192.168.122.100/24 dr=192.168.122.30/24 rs1=192.168.122.10/24 rs2=192.168.122.20/24
for n in 1 2; do
    ns=rs$n-$$
    ip netns exec "$ns" "$bin/lvsd" realserver start --vip $VIP >/dev/null || fail "realserver start on rs$n"
    http_server "$ns" 0.0.0.0 80 "rs$n port 80"
    http_server "$ns" 0.0.0.0 443 "rs$n port 443"
    # The upload's sink: what arrives on port 9000, hashed.
    ip netns exec "$ns" timeout 60 socat -u TCP4-LISTEN:9000,reuseaddr,fork SYSTEM:"sha256sum >>$work/upload.rs$n" >/dev/null 2>&1 &
    pids+=($!)
done

ip -n "$dr" addr add $VIP/32 dev eth0
# The operator's marking, in its own table (priority mangle, before lvsd's chain).
ip netns exec "$dr" nft -f - <<NFT
table ip operator {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        ip daddr $VIP tcp dport { 80, 443, 9000 } meta mark set 1
    }
}
NFT
start_lvsd "$dr" --engine packet --interface eth0
ipvsadm_in "$dr" -A -f 1 -s rr -p 60
ipvsadm_in "$dr" -a -f 1 -r 192.168.122.10 -g
ipvsadm_in "$dr" -a -f 1 -r 192.168.122.20 -g
for _ in $(seq 50); do ip netns exec "$dr" nft list table inet lvsd 2>/dev/null | contains "log group" && break; sleep 0.05; done
ip netns exec "$dr" nft list table inet lvsd | contains "meta mark @marks .* log group" || fail "no fwmark rule: $(ip netns exec "$dr" nft list ruleset)"

# Both ports from one client go to one real server (persistence across the fwmark service).
a80=$(ip netns exec "$user" curl -s --max-time 5 http://$VIP/) || true
a443=$(ip netns exec "$user" curl -s --max-time 5 http://$VIP:443/) || true
[[ $a80 == rs?" port 80" && $a443 == rs?" port 443" ]] || fail "answers through the fwmark service: '$a80' '$a443'"
[[ ${a80:0:3} == "${a443:0:3}" ]] || fail "persistence did not keep the client on one real server: '$a80' '$a443'"
echo "fwmark: port 80 and port 443 answered by ${a80:0:3}, as persistence wants"
listing=$(ipvsadm_in "$dr" -Ln)
echo "$listing" | contains -E '^FWM  1 rr persistent 60$' || fail "listing: $listing"
echo "$listing" | contains -E -- '-> 192\.168\.122\.(10|20):0 +Route +1 ' || fail "real servers: $listing"

# A 4 MB upload through the director (super-packets and offloaded checksums on the way in).
head -c 4194304 /dev/urandom >"$work/blob"
want=$(sha256sum <"$work/blob")
ip netns exec "$user" timeout 30 socat -u "OPEN:$work/blob" TCP4:$VIP:9000 || fail "upload through the fwmark service"
got=""
for _ in $(seq 100); do got=$(cat "$work"/upload.rs? 2>/dev/null || true); [[ -n $got ]] && break; sleep 0.1; done
[[ $got == "$want" ]] || fail "the upload arrived as '$got', not '$want'"
echo "fwmark: a 4 MB upload arrived whole ($(echo "$want" | cut -c1-16)...)"

# Unmarked traffic is the kernel's: the director's own sshd-like port answers for itself.
ip netns exec "$dr" timeout 10 socat TCP4-LISTEN:2222,reuseaddr SYSTEM:'echo director' >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do ip netns exec "$dr" ss -ltn | contains ":2222 " && break; sleep 0.05; done
[[ $(ip netns exec "$user" timeout 5 socat -T 2 - TCP4:$VIP:2222 </dev/null || true) == director ]] || fail "unmarked traffic was taken"

stats=$(ipvsadm_in "$dr" -Ln --stats)
echo "$stats" | contains -E '^FWM  1 +[0-9]+ +[1-9][0-9]* +0 ' || fail "stats: $stats"
echo "$stats"
kill -TERM $lvsd_pid
for _ in $(seq 50); do kill -0 $lvsd_pid 2>/dev/null || break; sleep 0.1; done
kill -0 $lvsd_pid 2>/dev/null && { kill -KILL $lvsd_pid; fail "lvsd did not stop within 5 s of SIGTERM"; }
wait $lvsd_pid || true
line=$(grep "packet engine stopped" "$work/err" | tail -1)
echo "$line"
echo "$line" | contains -E ' forwarded=[1-9]' || fail "nothing forwarded: $line"
echo "$line" | contains "malformed" && fail "marked packets counted malformed: $line"
ip netns exec "$dr" nft list tables | contains "lvsd" && fail "the engine's tables are still there: $(ip netns exec "$dr" nft list tables)"
echo "PASS: packet-fwmark"
