echo "# scenario: sh equal weights"
A -A -t 10.0.1.120:8080 -s sh
for i in 2 3 4; do A -a -t 10.0.1.120:8080 -r 172.16.0.$i:8080 -m -w 1; done
for i in $(seq 2 17); do C close 10.0.0.$i 0 10.0.1.120:8080; done
echo "# scenario: sh weights 4:3:2"
A -A -t 10.0.1.121:8080 -s sh
A -a -t 10.0.1.121:8080 -r 172.16.0.2:8080 -m -w 4
A -a -t 10.0.1.121:8080 -r 172.16.0.3:8080 -m -w 3
A -a -t 10.0.1.121:8080 -r 172.16.0.4:8080 -m -w 2
for i in $(seq 2 17); do C close 10.0.0.$i 0 10.0.1.121:8080; done
echo "# scenario: sh-port"
A -A -t 10.0.1.122:8080 -s sh -b sh-port
for i in 2 3 4; do A -a -t 10.0.1.122:8080 -r 172.16.0.$i:8080 -m -w 1; done
for p in $(seq 40001 40012); do C close 10.0.0.2 $p 10.0.1.122:8080; done
echo "# scenario: sh weight 0 without and with sh-fallback"
A -A -t 10.0.1.123:8080 -s sh
for i in 2 3 4; do A -a -t 10.0.1.123:8080 -r 172.16.0.$i:8080 -m -w 1; done
A -e -t 10.0.1.123:8080 -r 172.16.0.3:8080 -m -w 0
for i in $(seq 2 13); do C close 10.0.0.$i 0 10.0.1.123:8080; done
A -E -t 10.0.1.123:8080 -s sh -b sh-fallback
for i in $(seq 2 13); do C close 10.0.0.$i 0 10.0.1.123:8080; done
echo "# scenario: mh equal weights"
A -A -t 10.0.1.124:8080 -s mh
for i in 2 3 4; do A -a -t 10.0.1.124:8080 -r 172.16.0.$i:8080 -m -w 1; done
for i in $(seq 2 21); do C close 10.0.0.$i 0 10.0.1.124:8080; done
echo "# scenario: mh weights 4:2:1"
A -A -t 10.0.1.125:8080 -s mh
A -a -t 10.0.1.125:8080 -r 172.16.0.2:8080 -m -w 4
A -a -t 10.0.1.125:8080 -r 172.16.0.3:8080 -m -w 2
A -a -t 10.0.1.125:8080 -r 172.16.0.4:8080 -m -w 1
for i in $(seq 2 21); do C close 10.0.0.$i 0 10.0.1.125:8080; done
echo "# scenario: mh-port"
A -A -t 10.0.1.126:8080 -s mh -b mh-port
for i in 2 3 4; do A -a -t 10.0.1.126:8080 -r 172.16.0.$i:8080 -m -w 1; done
for p in $(seq 40001 40012); do C close 10.0.0.3 $p 10.0.1.126:8080; done
echo "# scenario: mh weight 0 without and with mh-fallback"
A -A -t 10.0.1.127:8080 -s mh
for i in 2 3 4; do A -a -t 10.0.1.127:8080 -r 172.16.0.$i:8080 -m -w 1; done
A -e -t 10.0.1.127:8080 -r 172.16.0.2:8080 -m -w 0
for i in $(seq 2 13); do C close 10.0.0.$i 0 10.0.1.127:8080; done
A -E -t 10.0.1.127:8080 -s mh -b mh-fallback
for i in $(seq 2 13); do C close 10.0.0.$i 0 10.0.1.127:8080; done
echo "# scenario: dh over eight VIPs"
for v in $(seq 100 107); do
  A -A -t 10.0.1.$v:9090 -s dh
  for i in 2 3 4; do A -a -t 10.0.1.$v:9090 -r 172.16.0.$i:8080 -m -w 1; done
done
for v in $(seq 100 107); do C close 10.0.0.2 0 10.0.1.$v:9090; done
