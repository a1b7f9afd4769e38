for s in lc wlc sed nq; do
  case $s in lc) v=110;; wlc) v=111;; sed) v=112;; nq) v=113;; esac
  echo "# scenario: $s 1:2:3, connections held open"
  A -A -t 10.0.1.$v:8080 -s $s
  A -a -t 10.0.1.$v:8080 -r 172.16.0.2:8080 -m -w 1
  A -a -t 10.0.1.$v:8080 -r 172.16.0.3:8080 -m -w 2
  A -a -t 10.0.1.$v:8080 -r 172.16.0.4:8080 -m -w 3
  for k in $(seq 12); do C hold 10.0.0.7 0 10.0.1.$v:8080; done
  for k in $(seq 4); do C close 10.0.0.8 0 10.0.1.$v:8080; done
  L 10.0.1.$v:8080
done
echo "# scenario: fo 1:5:5"
A -A -t 10.0.1.114:8080 -s fo
A -a -t 10.0.1.114:8080 -r 172.16.0.2:8080 -m -w 1
A -a -t 10.0.1.114:8080 -r 172.16.0.3:8080 -m -w 5
A -a -t 10.0.1.114:8080 -r 172.16.0.4:8080 -m -w 5
for k in $(seq 4); do C hold 10.0.0.9 0 10.0.1.114:8080; done
echo "# scenario: ovf 1:2:2, connections held open"
A -A -t 10.0.1.115:8080 -s ovf
A -a -t 10.0.1.115:8080 -r 172.16.0.2:8080 -m -w 1
A -a -t 10.0.1.115:8080 -r 172.16.0.3:8080 -m -w 2
A -a -t 10.0.1.115:8080 -r 172.16.0.4:8080 -m -w 2
for k in $(seq 8); do C hold 10.0.0.10 0 10.0.1.115:8080; done
L 10.0.1.115:8080
