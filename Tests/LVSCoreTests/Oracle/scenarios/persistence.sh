echo "# scenario: persistent rr"
A -A -t 10.0.1.128:8080 -s rr -p 60
for i in 2 3 4; do A -a -t 10.0.1.128:8080 -r 172.16.0.$i:8080 -m -w 1; done
for k in $(seq 4); do C close 10.0.0.2 0 10.0.1.128:8080; done
for k in $(seq 4); do C close 10.0.0.3 0 10.0.1.128:8080; done
for k in $(seq 2); do C close 10.0.0.4 0 10.0.1.128:8080; done
ip netns exec d ipvsadm -Ln --persistent-conn -t 10.0.1.128:8080 | sed 's/^/list: /'
echo "# scenario: persistent with a /24 netmask"
A -A -t 10.0.1.129:8080 -s rr -p 60 -M 255.255.255.0
for i in 2 3 4; do A -a -t 10.0.1.129:8080 -r 172.16.0.$i:8080 -m -w 1; done
for i in 2 3 4 5 6 7; do C close 10.0.0.$i 0 10.0.1.129:8080; done
echo "# scenario: lblc"
A -A -t 10.0.1.130:8080 -s lblc
for i in 2 3 4; do A -a -t 10.0.1.130:8080 -r 172.16.0.$i:8080 -m -w 1; done
for k in $(seq 6); do C hold 10.0.0.11 0 10.0.1.130:8080; done
L 10.0.1.130:8080
echo "# scenario: lblcr"
A -A -t 10.0.1.131:8080 -s lblcr
for i in 2 3 4; do A -a -t 10.0.1.131:8080 -r 172.16.0.$i:8080 -m -w 1; done
for k in $(seq 6); do C hold 10.0.0.12 0 10.0.1.131:8080; done
L 10.0.1.131:8080
echo "# templates and connections as the kernel lists them"
ip netns exec d ipvsadm -Lnc | grep -E "10.0.1.12[89]" | sed 's/^/conns: /' | sort
echo "# timeouts"
ip netns exec d ipvsadm -L --timeout | sed 's/^/out: /'
ip netns exec d ipvsadm --set 100 20 50
ip netns exec d ipvsadm -L --timeout | sed 's/^/out: /'
ip netns exec d ipvsadm -A -t 10.9.9.9:80 -p
ip netns exec d ipvsadm -S -n | grep 10.9.9.9 | sed 's/^/out: /'
