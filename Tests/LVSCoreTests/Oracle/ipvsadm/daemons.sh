# The sync daemons through ipvsadm on the real kernel: start, list, refusals, stop.
ip link add d0 type dummy
ip link set d0 mtu 9000 up
ip link set lo up
r() { echo "=== ipvsadm $*"; ipvsadm "$@" 2>&1; echo "=== rc=$?"; }
r -L --daemon
r --start-daemon master --mcast-interface lo
r --start-daemon master --mcast-interface d0
r --start-daemon backup --mcast-interface d0 --syncid 9
r -L --daemon
r --stop-daemon backup
r --start-daemon backup --mcast-interface d0 --sync-maxlen 100 --mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 3
r -L --daemon
r --stop-daemon master
r --stop-daemon master
r --stop-daemon backup
r --start-daemon master --mcast-interface d0 --sync-maxlen 65000 --mcast-group ff02::81
r -L --daemon
r --stop-daemon master
r -L --daemon
