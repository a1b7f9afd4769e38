#!/usr/bin/env bash
# The kernel's IPVS selftest (tools/testing/selftests/net/netfilter/ipvs.sh) with SwiftLVS's packet
# engine in place of kernel IPVS, driven by our ipvsadm with the selftest's commands: DR and NAT
# each carry a TCP transfer from the client to the real server through the VIP, checked byte for
# byte; the counters show which way the replies went.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash
command -v socat >/dev/null || fail "socat is needed (apt-get install socat)"

vip=207.175.44.110 port=8080
head -c 8000000 /dev/urandom >"$work/in"

# transfer: the client sends $work/in to VIP:8080, the real server keeps what arrives.
transfer() {
    rm -f "$work/got"
    ip netns exec "$ns2" timeout 10 socat -u -4 TCP-LISTEN:$port,reuseaddr OPEN:"$work/got",creat >/dev/null 2>&1 &
    local server=$!
    for _ in $(seq 50); do ip netns exec "$ns2" ss -ltn | contains ":$port " && break; sleep 0.05; done
    ip netns exec "$ns0" timeout 10 socat -u -4 OPEN:"$work/in" TCP:$vip:$port || { kill $server 2>/dev/null; return 1; }
    wait $server || true
    cmp -s "$work/in" "$work/got"
}

# finish MODE: stops lvsd, checks it took its nft table with it, removes the namespaces.
finish() {
    kill -TERM $lvsd_pid; wait $lvsd_pid || true; grep "packet engine stopped" "$work/err" | tail -1
    ip netns exec "$ns1" nft list table netdev lvsd >/dev/null 2>&1 && fail "$1: the interception table outlived lvsd"
    for n in "${namespaces[@]}"; do ip netns del "$n"; done; namespaces=()
    rm -f "$work/lvsd.sock"
    echo "packet-selftest: $1 ok"
}

dr() {
    selftest_topology
    ip -n "$ns0" route add $vip via 10.0.0.1 dev br0
    ip netns exec "$ns1" sysctl -qw net.ipv4.ip_forward=1
    start_lvsd "$ns1" --engine packet --interface veth10,veth12
    ipvsadm_in "$ns1" -A -t $vip:$port -s rr
    ipvsadm_in "$ns1" -a -t $vip:$port -r 172.16.0.2:$port
    ip -n "$ns1" addr add $vip/32 dev lo label lo:1
    ip netns exec "$ns2" sysctl -qw net.ipv4.conf.all.arp_ignore=1
    ip netns exec "$ns2" sysctl -qw net.ipv4.conf.all.arp_announce=2
    ip netns exec "$ns2" sysctl -qw net.ipv4.conf.all.rp_filter=0
    ip netns exec "$ns2" sysctl -qw net.ipv4.conf.veth21.rp_filter=0
    ip -n "$ns2" addr add $vip/32 dev lo label lo:1
    transfer || fail "DR: the bytes did not arrive intact"
    local stats; stats=$(ipvsadm_in "$ns1" -Ln --stats)
    echo "$stats" | awk '/172.16.0.2/ { if ($4 < 20 || $5 != 0) exit 1 }' || fail "DR: counters: $stats"
    finish DR
}

nat() {
    selftest_topology
    ip -n "$ns0" route add $vip via 10.0.0.1 dev br0
    ip netns exec "$ns1" sysctl -qw net.ipv4.ip_forward=1
    start_lvsd "$ns1" --engine packet --interface veth10,veth12
    ipvsadm_in "$ns1" -A -t $vip:$port -s rr
    ipvsadm_in "$ns1" -a -m -t $vip:$port -r 172.16.0.2:$port
    ip -n "$ns1" addr add $vip/32 dev lo label lo:1
    ip -n "$ns2" link del veth20
    ip -n "$ns2" route add default via 172.16.0.1 dev veth21
    transfer || fail "NAT: the bytes did not arrive intact"
    local stats; stats=$(ipvsadm_in "$ns1" -Ln --stats)
    echo "$stats" | awk '/172.16.0.2/ { if ($4 < 20 || $5 < 10) exit 1 }' || fail "NAT: counters: $stats"
    finish NAT
}

tun() {
    selftest_topology
    ip -n "$ns0" route add $vip via 10.0.0.1 dev br0
    ip netns exec "$ns1" sysctl -qw net.ipv4.ip_forward=0
    ip netns exec "$ns1" sysctl -qw net.ipv4.conf.all.send_redirects=0
    ip netns exec "$ns1" sysctl -qw net.ipv4.conf.default.send_redirects=0
    start_lvsd "$ns1" --engine packet --interface veth10,veth12
    ipvsadm_in "$ns1" -A -t $vip:$port -s rr
    ipvsadm_in "$ns1" -a -i -t $vip:$port -r 172.16.0.2:$port
    ip -n "$ns1" addr add $vip/32 dev lo label lo:1
    # This kernel has no ipip module: lvsd realserver takes the tunnel's packets off veth21 and
    # delivers what is inside (and puts the VIP on lo, arp_ignore/arp_announce, rp_filter off).
    ip netns exec "$ns2" "$bin/lvsd" realserver run --vip $vip --interface veth21 >"$work/realserver" 2>&1 &
    local rs=$!; pids+=($rs)
    for _ in $(seq 100); do grep -q delivering "$work/realserver" && break; sleep 0.05; done
    [[ $(ip netns exec "$ns2" sysctl -n net.ipv4.conf.all.arp_ignore) == 1 ]] || fail "TUN: arp_ignore not set"
    transfer || fail "TUN: the bytes did not arrive intact"
    local stats; stats=$(ipvsadm_in "$ns1" -Ln --stats)
    echo "$stats" | awk '/172.16.0.2/ { if ($4 < 20 || $5 != 0) exit 1 }' || fail "TUN: counters: $stats"
    kill -TERM $rs; wait $rs || true
    grep -q "tunnelled packets delivered" "$work/realserver" || fail "TUN: realserver did not stop cleanly: $(cat "$work/realserver")"
    ip -n "$ns2" addr show dev lo | contains $vip && fail "TUN: realserver stop left the VIP on lo"
    [[ $(ip netns exec "$ns2" sysctl -n net.ipv4.conf.all.arp_ignore) == 0 ]] || fail "TUN: arp_ignore not restored"
    finish TUN
}

dr
nat
tun
echo "packet-selftest: ok"
