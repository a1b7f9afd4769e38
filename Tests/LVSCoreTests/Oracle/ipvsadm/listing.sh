# ipvsadm 1.31 listings of one table in every format (busybox sh in ipvs-oracle).
ip link add dummy0 type dummy 2>/dev/null; ip link set dummy0 up; ip addr add 192.168.0.1/16 dev dummy0
ip -6 addr add 2001:db8::fe/32 dev dummy0
I=ipvsadm
$I -A -t 10.0.0.1:80 -s wlc
$I -a -t 10.0.0.1:80 -r 127.0.0.1:80 -g -w 1
$I -a -t 10.0.0.1:80 -r 192.168.1.10:80 -i -w 0
$I -a -t 10.0.0.1:80 -r 192.168.1.11:80 -g -w 1 -x 100 -y 50
$I -a -t 10.0.0.1:80 -r 192.168.1.12:8080 -m -w 3 -x 1000 -y 500
$I -A -t 10.0.0.1:0 -s lc -p 3600 -M 255.255.0.0
$I -a -t 10.0.0.1:0 -r 192.168.1.13 -g
$I -A -t 10.0.0.3:443 -s wrr -p 300
$I -a -t 10.0.0.3:443 -r 192.168.2.1 -i -w 5 --tun-type gre --tun-csum
$I -a -t 10.0.0.3:443 -r 192.168.2.2 -i -w 5 --tun-type gue --tun-port 6081 --tun-nocsum
$I -a -t 10.0.0.3:443 -r 192.168.2.3 -i -w 5 --tun-type gue --tun-port 6082 --tun-remcsum
$I -a -t 10.0.0.3:443 -r [2001:db8::99]:443 -i -w 5
$I -A -u 10.0.0.1:53 -s rr -p -M 255.255.255.0 -o
$I -a -u 10.0.0.1:53 -r 192.168.1.10:53 -m -w 1
$I -a -u 10.0.0.1:53 -r 192.168.1.11:53 -m -w 2
$I -A --sctp-service 10.0.0.2:5000 -s sed
$I -A -t [2001:db8::1]:443 -s wrr
$I -a -t [2001:db8::1]:443 -r [2001:db8:1::1]:443 -g -w 2
$I -a -t [2001:db8::1]:443 -r [2001:db8:1::2]:8443 -m -w 1
$I -a -t [2001:db8::1]:443 -r [2001:db8:1:ffff:ffff:ffff:ffff:fffe]:8443 -m -w 1
$I -A -f 5 -s sh -b sh-fallback,sh-port
$I -a -f 5 -r 192.168.3.1 -g
$I -a -f 5 -r 192.168.3.2 -m
$I -A -f 6 -6 -s mh -p 600 -M 64 -b mh-fallback
$I -a -f 6 -6 -r [2001:db8:1::10]:0 -g
$I -A -f 3000000000 -s rr -b flag-1,flag-3
$I -A -t 192.168.0.1:80 -s rr
$I -A -t 100.0.0.1:80 -s rr
$I -A -t [ff00::1]:80 -s rr
$I -A -u 10.0.0.9:6000 -s none
show() { echo "=== ipvsadm $*"; $I "$@"; echo "=== rc=$?"; }
show -Ln
show -L -n --nosort
show -Ln --stats
show -Ln --stats --exact
show -Ln --rate
show -Ln --thresholds
show -Ln --persistent-conn
show -Ln --tun-info
show -Ln -t 10.0.0.1:80
show -Ln -u 10.0.0.1:53 --stats
show -Ln -f 6 -6
show -Ln -f 5
show -Ln -t 10.9.9.9:80
show -L --timeout
show -L --daemon
show -Sn
show -S
show -L
show -Lnc
show -Z
show -Ln -t 10.0.0.1:80 --rate
