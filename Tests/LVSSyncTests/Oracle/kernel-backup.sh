#!/bin/sh
# Real-kernel IPVS sync BACKUP fed with sync messages produced by SwiftLVS's encoder/master.
# Run: ../shared/tools/ipvs-oracle/run Tests/LVSSyncTests/Oracle/kernel-backup.sh  (busybox sh, inside the VM)
# Payloads: same hex as messages.hex (v1 = lvsd master datagram from /tmp/sync-sample-keep.pcap, v0 = unit-tested encoder output).
V1=00330104070100000006002400000083000180800050005000000000000003840a00000a0a0000640a0000160006002400000083000180800050005000000000000003840a00000a0a0000640a0000160006002400000183000480800050005000000000000000780a00000a0a0000640a00001600060024000000830001808a0050005000000000000003840a00000a0a0000640a00001500060024000000830001808c0050005000000000000003840a00000a0a0000640a0000160006002400000083000180960050005000000000000003840a00000a0a0000640a0000150006002400000083000180a40050005000000000000003840a00000a0a0000640a000016
V0=0104001c0006040100501f900a000001c0a80064ac10000200810005

# hex string -> binary file (printf with octal escapes: portable busybox sh)
unhex() { h=$1; out=$2; : > "$out"
  while [ -n "$h" ]; do b=${h%"${h#??}"}; h=${h#??}; printf "\\$(printf %o 0x$b)" >> "$out"; done; }

# namespace m (the "master" side) joined to the root namespace (the backup) by a veth pair
ip netns add m
ip link add vb type veth peer name vm netns m
ip link set lo up; ip -n m link set lo up
ip addr add 10.0.0.2/24 dev vb; ip link set vb up
ip -n m addr add 10.0.0.1/24 dev vm; ip -n m link set vm up
ip -n m route add 224.0.0.0/4 dev vm
ip route add 224.0.0.0/4 dev vb

ipvsadm -A -t 10.0.0.100:80 -s rr
ipvsadm -a -t 10.0.0.100:80 -r 10.0.0.21:80 -g
ipvsadm -a -t 10.0.0.100:80 -r 10.0.0.22:80 -g
ipvsadm -A -t 192.168.0.100:80 -s rr
ipvsadm -a -t 192.168.0.100:80 -r 172.16.0.2:8080 -m
ipvsadm --start-daemon backup --mcast-interface vb
sleep 1
echo "== ipvsadm -L --daemon"; ipvsadm -L --daemon

send() { # $1 label, $2 hex
  unhex "$2" /tmp/$1.bin
  echo "== send $1 ($(wc -c < /tmp/$1.bin) bytes, md5 $(md5sum < /tmp/$1.bin | cut -c1-8))"
  ip netns exec m socat -u OPEN:/tmp/$1.bin UDP4-DATAGRAM:224.0.0.81:8848,ip-multicast-if=10.0.0.1,ip-multicast-ttl=1
  sleep 1
  echo "== ipvsadm -Lnc after $1"; ipvsadm -Lnc
}
send v1 "$V1"
send v0 "$V0"

echo "== ipvsadm -Ln"; ipvsadm -Ln
echo "== ipvsadm -Ln --stats"; ipvsadm -Ln --stats
if [ -r /proc/net/ip_vs_conn_sync ]; then echo "== /proc/net/ip_vs_conn_sync"; cat /proc/net/ip_vs_conn_sync; fi
echo "== vb rx counters"; ip -s link show vb | sed -n '3,4p'
