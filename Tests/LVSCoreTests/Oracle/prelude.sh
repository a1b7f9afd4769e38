# Shared set-up for the scheduler scenarios (busybox sh inside the ipvs-oracle VM).
# Client netns c (10.0.0.2-10.0.0.41), director d (VIPs 10.0.1.100-10.0.1.131 on lo, NAT to
# 172.16.0.0/24), real servers in netns r at 172.16.0.2-.5, each answering "rsN" on port 8080 and
# keeping the connection open until the client closes its side.
ip netns add c; ip netns add d; ip netns add r
ip link add c0 netns c type veth peer name d0 netns d
ip link add d1 netns d type veth peer name r1 netns r
for n in c d r; do ip -n $n link set lo up; done
ip -n c link set c0 up
for i in $(seq 2 41); do ip -n c addr add 10.0.0.$i/24 dev c0; done
ip -n c route add default via 10.0.0.1
ip -n d link set d0 up; ip -n d addr add 10.0.0.1/24 dev d0
ip -n d link set d1 up; ip -n d addr add 172.16.0.1/24 dev d1
ip netns exec d sysctl -qw net.ipv4.ip_forward=1
for v in $(seq 100 131); do ip -n d addr add 10.0.1.$v/32 dev lo; done
ip -n r link set r1 up
for i in 2 3 4 5; do ip -n r addr add 172.16.0.$i/24 dev r1; done
ip -n r route add default via 172.16.0.1
for i in 2 3 4 5; do
  ip netns exec r socat TCP-LISTEN:8080,bind=172.16.0.$i,fork,reuseaddr SYSTEM:"echo rs$i; cat >/dev/null" &
done
sleep 1
# A: an ipvsadm command on the director, echoed for the replay.
A() { echo "cmd: $*"; ip netns exec d ipvsadm "$@" || echo "cmd-failed: $?"; }
# C MODE SRC SPORT VIP:PORT: one connection; MODE close (request and close at once) or hold (stay
# established for the rest of the scenario). SPORT 0 lets the client pick its port.
C() {
  if [ "$3" = 0 ]; then b="bind=$2"; else b="bind=$2:$3"; fi
  if [ "$1" = close ]; then
    r=$(ip netns exec c socat -T3 - TCP:$4,$b </dev/null 2>/dev/null)
  else
    f=/tmp/held.$$.$RANDOM
    (sleep 20 | ip netns exec c socat -T30 - TCP:$4,$b >$f 2>/dev/null &)
    sleep 0.3; r=$(cat $f)
  fi
  echo "conn: $1 $2 $3 $4 ${r:--}"
}
# L VIP:PORT: the service's table as the kernel lists it.
L() { ip netns exec d ipvsadm -Ln -t $1 | sed 's/^/list: /'; }
