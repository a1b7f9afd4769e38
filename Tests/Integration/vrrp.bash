# VRRP test helpers (sourced after common.bash and netns.bash): one LAN with two directors
# (10.0.0.1, 10.0.0.2), a client (10.0.0.10) and a real server (10.0.0.20); keepalived.conf
# writers; directors (lvsd or Debian's keepalived) started and stopped by PID; the time a backup
# takes to own the VIP.
VIP=10.0.0.100
vrrp_topology() {
    new_ns d1; new_ns d2; new_ns client; new_ns rs
    d1=d1-$$ d2=d2-$$ client=client-$$ rs=rs-$$
    lan "$d1" "$d2" "$client" "$rs"
    ip -n "$d1" addr add 10.0.0.1/24 dev eth0
    ip -n "$d2" addr add 10.0.0.2/24 dev eth0
    ip -n "$client" addr add 10.0.0.10/24 dev eth0
    ip -n "$rs" addr add 10.0.0.20/24 dev eth0
    lan_forwarding
    http_server "$rs" 10.0.0.20 80 "served"
}
# write_conf FILE PRIORITY VERSION ADVERT_INT [PASSWORD [PASS|AH]]: one instance VI_1 (VRID 51) owning the VIP, a
# virtual server on it to the real server, and a slow notify script logging its arguments.
write_conf() {
    local file=$1 prio=$2 version=$3 advert=$4 auth=${5:-} authtype=${6:-PASS}
    {
        echo "global_defs {"
        echo "    vrrp_garp_master_delay 1"
        echo "}"
        echo "vrrp_instance VI_1 {"
        echo "    state BACKUP"
        echo "    interface eth0"
        echo "    virtual_router_id 51"
        echo "    priority $prio"
        echo "    version $version"
        echo "    advert_int $advert"
        [[ -n $auth ]] && printf '    authentication {\n        auth_type %s\n        auth_pass %s\n    }\n' "$authtype" "$auth"
        echo "    virtual_ipaddress {"
        echo "        $VIP/24"
        echo "    }"
        echo "    notify $work/notify.sh"
        echo "}"
        echo "virtual_server $VIP 80 {"
        echo "    lb_algo rr"
        echo "    lb_kind NAT"
        echo "    protocol TCP"
        echo "    real_server 10.0.0.20 80 {"
        echo "        weight 1"
        echo "    }"
        echo "}"
    } >"$file"
    # It takes its time, as notify scripts do: no transition waits for it.
    printf '#!/bin/sh\necho "$*" >>%s/notify.log\nsleep 2\n' "$work" >"$work/notify.sh"
    chmod 755 "$work/notify.sh"
}
# start_director NAME NS CONF [LVSD OPTIONS...]: lvsd in NS, control socket $work/NAME.sock; PID in ${NAME}_pid.
start_director() {
    local name=$1 ns=$2 conf=$3
    ip netns exec "$ns" env LVSD_SOCKET="$work/$name.sock" "$bin/lvsd" -f "$conf" "${@:4}" >>"$work/$name.out" 2>>"$work/$name.err" &
    local pid=$!; pids+=($pid); printf -v "${name}_pid" %s "$pid"
    for _ in $(seq 100); do [[ -S $work/$name.sock ]] && return 0; sleep 0.05; done
    fail "lvsd $name did not start"
}
# start_keepalived NAME NS CONF: Debian's keepalived (VRRP only), logging to $work/NAME.log.
start_keepalived() {
    local name=$1 ns=$2 conf=$3
    mkdir -p "$work/$name.run"
    ip netns exec "$ns" keepalived -n -l -D -P -f "$conf" -p "$work/$name.run/k.pid" -r "$work/$name.run/v.pid" >>"$work/$name.log" 2>&1 &
    local pid=$!; pids+=($pid); printf -v "${name}_pid" %s "$pid"
}
# state_of NAME: the VRRP state `lvsd status` reports for VI_1.
state_of() { LVSD_SOCKET="$work/$1.sock" "$bin/lvsd" status | awk '$1 == "VI_1" && NF > 5 { print $5 }'; }
# wait_state NAME STATE [SECONDS]
wait_state() {
    local end=$((SECONDS + ${3:-8}))
    while ((SECONDS < end)); do [[ $(state_of "$1") == "$2" ]] && return 0; sleep 0.05; done
    fail "$1 is $(state_of "$1"), not $2"
}
# has_vip NS: whether the VIP is on NS's eth0.
has_vip() { ip -n "$1" -o addr show dev eth0 | contains " $VIP/"; }
wait_vip() {
    local end=$((SECONDS + ${2:-8}))
    while ((SECONDS < end)); do has_vip "$1" && return 0; sleep 0.02; done
    fail "the VIP is not on $1"
}
# takeover_ms NS START_NS: milliseconds from START_NS (date +%s%N) until NS owns the VIP (10 s at most).
takeover_ms() {
    local ns=$1 start=$2
    for _ in $(seq 2000); do
        if has_vip "$ns"; then echo $(( ($(date +%s%N) - start) / 1000000 )); return 0; fi
        sleep 0.005
    done
    echo timeout
}
# get: one request to the VIP from the client; prints the body.
get() { ip netns exec "$client" curl -s -m 1 "http://$VIP/"; }
# capture NS FILE SECONDS: VRRP packets seen in NS, with epoch timestamps, for SECONDS before
# returning (long enough to see the master's adverts); PID in $capture_pid.
capture() {
    ip netns exec "$1" tcpdump -i eth0 -nn -tt -l 'ip proto 112 or ip proto 51' >"$2" 2>/dev/null &
    capture_pid=$!; pids+=($capture_pid)
    sleep "$3"
}
# silence_ms FILE OLD NEW: from the old master's last advert to the new master's first after it.
silence_ms() {
    awk -v old="$2" -v new="$3" '$3 == old { last = $1 } $3 == new && last && $1 > last { printf "%d", ($1 - last) * 1000; found = 1; exit }
                                 END { if (!found) print "none" }' "$1"
}
# crash NS PID: the director's host fails: its link goes down (nothing it sends on the way out
# reaches anyone) and the process is killed.
crash() { ip -n "$1" link set eth0 down; kill -9 "$2" 2>/dev/null || true; wait "$2" 2>/dev/null || true; }
# revive NS: its link back, with its address.
revive() { ip -n "$1" link set eth0 up; ip -n "$1" addr flush dev eth0; ip -n "$1" addr add "10.0.0.${1:1:1}/24" dev eth0; }
# keepalived_clean LOG: keepalived found nothing wrong with what it received.
keepalived_clean() {
    if grep -Ei 'invalid|mismatch|wrong|error|bad |not present|unexpected|already processed|discarding .*icast' "$1"; then fail "keepalived complained (above)"; fi
}
