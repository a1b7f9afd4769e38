# ipvsadm 1.31's refusals: each command's stderr and exit status (busybox sh in ipvs-oracle).
ipvsadm -A -t 10.0.0.1:80 -s rr
ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m
try() { echo "=== ipvsadm $*"; ipvsadm "$@" 2>&1; echo "=== rc=$?"; }
try -A -t 1.2.3.4
try -A -t [2001:db8::1]
try -A -t 1.2.3.4:nosuchsvc
try -A -t 1.2.3.4:80 -s foo
try -A -t 1.2.3.4:80 -p 0
try -A -t 1.2.3.4:80 -o
try -A -f 0
try -A -6 -f 1
try -A -t 1.2.3.4:80 -b sh-port
try -A -t 1.2.3.4:80 -w 3
try -A
try -A -t 1.2.3.4:80 -A
try -A -t 1.2.3.4:80 extra
try -A -t 10.0.0.1:80
try -E -t 10.0.0.9:80
try -D -t 10.0.0.9:80
try -a -t 10.0.0.9:80 -r 10.0.0.2
try -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m
try -e -t 10.0.0.1:80 -r 10.0.0.3:80
try -d -t 10.0.0.1:80 -r 10.0.0.3:80
try -a -t 10.0.0.1:80 -r 10.0.0.5:80 -w -1
try -a -t 10.0.0.1:80 -r 10.0.0.5:80 -x 5 -y 6
try -a -t 10.0.0.1:80 -r 224.0.0.5:80
try -a -t 10.0.0.1:80 -r 10.0.0.5 -i --tun-type gue
try -L -c --timeout
try -L -t 10.0.0.9:80
try -Z -t 10.0.0.9:80
try --set 1 2
try --set -1 2 3
try -Q
try --bogus
try -A -t 1.2.3.4:80 --bogus
try -A -t
try -R -n
try --stop-daemon master
try --start-daemon master --mcast-interface nosuchif0
try -h
try -v
echo "-A -t 10.0.0.7:80 -s rr
# comment
-a -t 10.0.0.7:80 -r 10.0.0.8 -m
-A -t 10.0.0.7:80" > /tmp/r.txt
echo "=== ipvsadm -R < r.txt"; ipvsadm -R < /tmp/r.txt 2>&1; echo "=== rc=$?"
echo "ipvsadm -A -t 10.0.0.8:80
-A -t 10.0.0.8:80
-a -t 10.0.0.8:80 -r 10.0.0.9:80 -m -w 5" > /tmp/r2.txt
echo "=== ipvsadm -R < r2.txt"; ipvsadm -R < /tmp/r2.txt 2>&1; echo "=== rc=$?"
ipvsadm -Sn
