# Network namespaces for the packet-engine tests (sourced after common.bash). Topologies:
#  selftest_topology: the kernel's IPVS selftest (tools/testing/selftests/net/netfilter/ipvs.sh):
#    ns0 client 10.0.0.2 on br0 (veth01, veth02 bridged); ns1 director 10.0.0.1 on veth10 and
#    172.16.0.1 on veth12; ns2 real server 172.16.0.2 on veth21 and 10.0.0.3 on veth20 (bridged
#    into the client's segment, the direct path for DR replies).
# Every namespace created is recorded and deleted on exit; names carry this shell's PID, so runs
# never collide and nothing else is touched.
[[ $(id -u) == 0 ]] || { echo "SKIP: network namespaces need root"; exit 0; }
command -v nft >/dev/null || { echo "FAIL: nft is needed (apt-get install nftables)"; exit 1; }
namespaces=()
netns_cleanup() {
    for n in "${namespaces[@]:-}"; do [[ -n $n ]] && ip netns del "$n" 2>/dev/null || true; done
    cleanup
}
trap netns_cleanup EXIT
new_ns() { # NAME: creates the namespace $NAME-$$ with lo up, prints its name
    local n="$1-$$"
    ip netns add "$n"
    ip -n "$n" link set lo up
    namespaces+=("$n")
}
selftest_topology() {
    new_ns lvs0; new_ns lvs1; new_ns lvs2
    ns0=lvs0-$$; ns1=lvs1-$$; ns2=lvs2-$$
    ip link add veth01 netns "$ns0" type veth peer name veth10 netns "$ns1"
    ip link add veth02 netns "$ns0" type veth peer name veth20 netns "$ns2"
    ip link add veth12 netns "$ns1" type veth peer name veth21 netns "$ns2"
    ip -n "$ns0" link add br0 type bridge
    ip -n "$ns0" link set veth01 master br0
    ip -n "$ns0" link set veth02 master br0
    for l in veth01 veth02 br0; do ip -n "$ns0" link set "$l" up; done
    ip -n "$ns0" addr add 10.0.0.2/24 dev br0
    ip -n "$ns1" link set veth10 up; ip -n "$ns1" addr add 10.0.0.1/24 dev veth10
    ip -n "$ns1" link set veth12 up; ip -n "$ns1" addr add 172.16.0.1/24 dev veth12
    ip -n "$ns2" link set veth21 up; ip -n "$ns2" addr add 172.16.0.2/24 dev veth21
    ip -n "$ns2" link set veth20 up; ip -n "$ns2" addr add 10.0.0.3/24 dev veth20
    # The bridge forwards once its ports leave the listening state.
    ip netns exec "$ns0" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null || true
    for _ in $(seq 50); do
        ip netns exec "$ns0" bash -c '[[ $(cat /sys/class/net/veth01/brport/state) == 3 && $(cat /sys/class/net/veth02/brport/state) == 3 ]]' && break
        sleep 0.1
    done
}
# start_lvsd NS ARGS...: lvsd in NS with its control socket in $work; waits for it.
start_lvsd() {
    local ns=$1; shift
    ip netns exec "$ns" env LVSD_SOCKET="$work/lvsd.sock" "$bin/lvsd" "$@" >>"$work/out" 2>>"$work/err" &
    lvsd_pid=$!; pids+=($lvsd_pid)
    for _ in $(seq 100); do [[ -S $work/lvsd.sock ]] && return 0; sleep 0.05; done
    fail "lvsd did not start"
}
ipvsadm_in() { local ns=$1; shift; ip netns exec "$ns" env LVSD_SOCKET="$work/lvsd.sock" "$bin/ipvsadm" "$@"; }
# http_server NS ADDRESS PORT BODY [STATUS]: a small HTTP/1.0 server answering every request with
# BODY (and STATUS, 200 by default); its PID is in $http_pid.
http_server() {
    ip netns exec "$1" python3 - "$2" "$3" "$4" "${5:-200}" <<'PY' &
import socket, sys, threading
host, port, body, status = sys.argv[1], int(sys.argv[2]), (sys.argv[3] + "\n").encode(), sys.argv[4].encode()
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(128)
def handle(c):
    try:
        c.settimeout(5); data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk: break
            data += chunk
        c.sendall(b"HTTP/1.0 " + status + b" X\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    except OSError: pass
    finally: c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
PY
    http_pid=$!; pids+=($http_pid)
    for _ in $(seq 100); do ip netns exec "$1" ss -ltn | contains ":$3 " && return 0; sleep 0.05; done
    fail "the HTTP server in $1 did not start"
}
# lan NS... : a bridge in its own namespace with one veth port per NS (eth0 inside each).
lan() {
    new_ns lan; lan_ns=lan-$$
    ip -n "$lan_ns" link add br0 type bridge
    ip -n "$lan_ns" link set br0 up
    local i=0
    for n in "$@"; do
        ip link add "p$i" netns "$lan_ns" type veth peer name eth0 netns "$n"
        ip -n "$lan_ns" link set "p$i" master br0
        ip -n "$lan_ns" link set "p$i" up
        ip -n "$n" link set eth0 up
        i=$((i + 1))
    done
}
# lan_forwarding [NS [PREFIX]]: waits until every bridge port PREFIX* in NS (the LAN's, p*) forwards.
lan_forwarding() {
    local ns=${1:-$lan_ns} prefix=${2:-p}
    for _ in $(seq 50); do
        ip netns exec "$ns" bash -c "for p in /sys/class/net/$prefix*/brport/state; do [[ \$(cat \$p) == 3 ]] || exit 1; done" && return 0
        sleep 0.1
    done
}
# lan_hosts NAME=ADDRESS/PREFIX...: a namespace per NAME ($NAME holds its name) on one LAN, each
# with its address on eth0; returns when the bridge forwards.
lan_hosts() {
    local h names=()
    for h in "$@"; do
        new_ns "${h%%=*}"
        printf -v "${h%%=*}" %s "${h%%=*}-$$"
        names+=("${h%%=*}-$$")
    done
    lan "${names[@]}"
    for h in "$@"; do ip -n "${h%%=*}-$$" addr add "${h#*=}" dev eth0; done
    lan_forwarding
}

