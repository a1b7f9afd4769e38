#!/usr/bin/env bash
# Seed 004's VS/NAT example with the packet engine: VIP 202.103.106.5:80 over 172.16.0.2:80
# (weight 1) and 172.16.0.3:8000 (weight 2) with wlc, the real servers' default route through
# the director (172.16.0.1), a client at 202.100.1.2. Every answer comes back from the VIP (the
# client could not talk to it otherwise), 30 requests split 10/20 by weight, and the table's
# counters show both directions (OutPkts non-zero: NAT replies pass through the director).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash

VIP=202.103.106.5
new_ns client; new_ns lb; new_ns rsa; new_ns rsb
client=client-$$ lb=lb-$$ rsa=rsa-$$ rsb=rsb-$$
ip link add eth0 netns "$client" type veth peer name ext0 netns "$lb"
ip -n "$client" link set eth0 up; ip -n "$client" addr add 202.100.1.2/24 dev eth0
ip -n "$client" route add default via 202.100.1.1
ip -n "$lb" link set ext0 up; ip -n "$lb" addr add 202.100.1.1/24 dev ext0
ip -n "$lb" addr add $VIP/32 dev lo
lan "$lb" "$rsa" "$rsb"
ip -n "$lb" addr add 172.16.0.1/24 dev eth0
ip -n "$rsa" addr add 172.16.0.2/24 dev eth0; ip -n "$rsa" route add default via 172.16.0.1
ip -n "$rsb" addr add 172.16.0.3/24 dev eth0; ip -n "$rsb" route add default via 172.16.0.1
lan_forwarding
ip netns exec "$lb" sysctl -qw net.ipv4.ip_forward=1
http_server "$rsa" 0.0.0.0 80 "172.16.0.2:80"
http_server "$rsb" 0.0.0.0 8000 "172.16.0.3:8000"

start_lvsd "$lb" --engine packet --interface ext0,eth0
ipvsadm_in "$lb" -A -t $VIP:80 -s wlc
ipvsadm_in "$lb" -a -t $VIP:80 -r 172.16.0.2:80 -m
ipvsadm_in "$lb" -a -t $VIP:80 -r 172.16.0.3:8000 -m -w 2

answers=$(for _ in $(seq 30); do ip netns exec "$client" curl -s --max-time 5 http://$VIP/ || echo ERR; done | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
[[ $answers == "172.16.0.2:80=10 172.16.0.3:8000=20 " ]] || fail "answers by real server: $answers"
echo "answers by real server: $answers"
stats=$(ipvsadm_in "$lb" -Ln --stats)
echo "$stats" | awk '/->/ && $2 ~ /^172/ { if ($4 == 0 || $5 == 0) bad = 1 } END { exit bad }' || fail "counters: $stats"
ipvsadm_in "$lb" -Ln

# The director's own connections to a real server (a health check's) are its own, not replies
# to translate: they must reach it.
[[ $(ip netns exec "$lb" curl -s --max-time 5 http://172.16.0.2:80/) == "172.16.0.2:80" ]] || fail "the director cannot reach its real server itself"
echo "the director reaches 172.16.0.2:80 itself (a checker would)"

# A fwmark service through NAT: the operator marks the VIP's port 8080 with 2; one real server
# with its own port, one without (it answers on 8080, the port the client asked for).
http_server "$rsa" 0.0.0.0 8080 "172.16.0.2:8080"
ip netns exec "$lb" nft -f - <<NFT
table ip operator {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        ip daddr $VIP tcp dport 8080 meta mark set 2
    }
}
NFT
ipvsadm_in "$lb" -A -f 2 -s rr
ipvsadm_in "$lb" -a -f 2 -r 172.16.0.2 -m
ipvsadm_in "$lb" -a -f 2 -r 172.16.0.3:8000 -m
answers=$(for _ in $(seq 6); do ip netns exec "$client" curl -s --max-time 5 http://$VIP:8080/ || echo ERR; done | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
[[ $answers == "172.16.0.2:8080=3 172.16.0.3:8000=3 " ]] || fail "fwmark answers by real server: $answers"
echo "fwmark NAT: $answers"
ipvsadm_in "$lb" -Ln --stats | awk '/^FWM/ { found = 1; if ($5 == 0) bad = 1 } END { exit !(found && !bad) }' || fail "fwmark counters: $(ipvsadm_in "$lb" -Ln --stats)"
[[ $(ip netns exec "$lb" curl -s --max-time 5 http://172.16.0.2:8080/) == "172.16.0.2:8080" ]] || fail "the director cannot reach its portless NAT real server itself"
echo "packet-seed-nat: ok"
