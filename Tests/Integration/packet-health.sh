#!/usr/bin/env bash
# Health checks driving the packet engine, in namespaces (seed 001's DR segment plus a sorry
# server): lvsd -f keepalived.conf --engine packet. A real server killed during steady traffic
# leaves the pool within delay_loop + retry x delay_before_retry + connect_timeout, after which no
# request fails; restarted, it rejoins. An HTTP_GET answered 503 takes its server out; with both
# down the sorry server serves alone (quorum lost), and it goes when a real server is back.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Tests/Integration/common.bash
source Tests/Integration/netns.bash

VIP=192.168.122.50
new_ns user; new_ns dr; new_ns rs1; new_ns rs2; new_ns sorry
user=user-$$ dr=dr-$$ rs1=rs1-$$ rs2=rs2-$$ sorry=sorry-$$
lan "$user" "$dr" "$rs1" "$rs2" "$sorry"
ip -n "$user" addr add 192.168.122.100/24 dev eth0
ip -n "$dr" addr add 192.168.122.30/24 dev eth0
ip -n "$dr" addr add $VIP/32 dev eth0 label eth0:1
n=10
for ns in "$rs1" "$rs2" "$sorry"; do
    addr=192.168.122.$n; [[ $ns == "$sorry" ]] && addr=192.168.122.40
    ip -n "$ns" addr add $addr/24 dev eth0
    ip netns exec "$ns" "$bin/lvsd" realserver start --vip $VIP >/dev/null
    n=$((n + 10))
done
lan_forwarding
http_server "$rs1" 0.0.0.0 80 "lvs01 host!"; rs1_pid=$http_pid
http_server "$rs2" 0.0.0.0 80 "lvs02 host!"; rs2_pid=$http_pid
http_server "$sorry" 0.0.0.0 80 "sorry"

cat >"$work/keepalived.conf" <<CONF
virtual_server $VIP 80 {
    delay_loop 0.5
    lb_algo rr
    lb_kind DR
    protocol TCP
    sorry_server 192.168.122.40 80
    real_server 192.168.122.10 80 {
        weight 1
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 0.5
            retry 1
            delay_before_retry 0.2
            warmup 0
        }
    }
    real_server 192.168.122.20 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 0.5
            retry 1
            delay_before_retry 0.2
            warmup 0
        }
    }
}
CONF
start_lvsd "$dr" --engine packet --interface eth0 -f "$work/keepalived.conf"
for _ in $(seq 100); do grep -q "configuration applied" "$work/err" && break; sleep 0.05; done
servers() { ipvsadm_in "$dr" -Ln -t $VIP:80 | awk '/->/ && $2 ~ /^[0-9]/ {print $2}' | sort | tr '\n' ' '; }
wait_for() { local deadline=$((SECONDS + $2)); while ((SECONDS < deadline)); do eval "$1" && return 0; sleep 0.1; done; return 1; }
wait_for '[[ $(servers) == "192.168.122.10:80 192.168.122.20:80 " ]]' 5 || fail "both real servers at start: $(servers)"
get() { for _ in $(seq "$1"); do ip netns exec "$user" curl -s --max-time 2 http://$VIP/ || echo ERR; done | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}'; }
[[ $(get 4) == "lvs01:2 lvs02:2 " ]] || fail "both serve at start: $(get 4)"

# Steady traffic while rs1 is killed: it must leave within 0.5 + 1 x 0.2 + 0.5 s (+ slack).
(while true; do ip netns exec "$user" curl -s --max-time 2 http://$VIP/ || echo ERR; sleep 0.05; done) >"$work/steady" 2>/dev/null &
steady=$!; pids+=($steady)
sleep 0.5
kill "$rs1_pid"; killed=$SECONDS
wait_for '[[ $(servers) == "192.168.122.20:80 " ]]' 5 || fail "rs1 did not leave: $(servers)"
echo "rs1 left the pool in under $((SECONDS - killed + 1)) s"
mark=$(wc -l <"$work/steady")
sleep 1.5
kill "$steady"; wait "$steady" 2>/dev/null || true
after=$(tail -n +$((mark + 1)) "$work/steady" | sort | uniq -c | tr -s ' ')
echo "$after" | contains -E "ERR|lvs01" && fail "after rs1 left, requests still failed or reached it: $after"
grep -q "Removing service \[192.168.122.10\]:tcp:80 from VS \[$VIP\]:tcp:80" "$work/err" || fail "no keepalived removal line"

# rs1 back, but its /health says 503: it stays out; then a healthy rs1 rejoins.
http_server "$rs1" 0.0.0.0 80 "lvs01 host!" 503; rs1_pid=$http_pid
sleep 1.5
[[ $(servers) == "192.168.122.20:80 " ]] || fail "an HTTP_GET answered 503 let rs1 in: $(servers)"
kill "$rs1_pid"; sleep 0.2
http_server "$rs1" 0.0.0.0 80 "lvs01 host!"; rs1_pid=$http_pid
wait_for '[[ $(servers) == "192.168.122.10:80 192.168.122.20:80 " ]]' 5 || fail "rs1 did not rejoin: $(servers)"
[[ $(get 4) == "lvs01:2 lvs02:2 " ]] || fail "both serve again: $(get 4)"

# Both down: the sorry server serves alone; rs2 back: it goes.
kill "$rs1_pid" "$rs2_pid"
wait_for '[[ $(servers) == "192.168.122.40:80 " ]]' 5 || fail "the sorry server did not take over: $(servers)"
[[ $(get 3) == "sorry:3 " ]] || fail "the sorry server answers: $(get 3)"
grep -q "Lost quorum" "$work/err" || fail "no quorum line"
http_server "$rs2" 0.0.0.0 80 "lvs02 host!"
wait_for '[[ $(servers) == "192.168.122.20:80 " ]]' 5 || fail "quorum not regained: $(servers)"
[[ $(get 2) == "lvs02:2 " ]] || fail "rs2 serves alone: $(get 2)"
echo "packet-health: ok"
