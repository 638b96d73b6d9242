# What a hostile container tries on the network (busybox sh, run inside it): an HTTP GET of every
# "HOST PORT" line of standard input (every target the tests set up is an HTTP server), all at once, three
# seconds each at most, printing what answered; then what it has to send packets with: interfaces, routes
# and whether IPv6 is off. With nc, written by hand: this busybox's wget (and nc -e) crash here. A target
# counts as reached only when it answered with an HTTP status line, so a broken tool can only say
# "closed"; the tests prove the tool works by what it does reach (the outside, or the host from a bridge).
while read -r host port; do
  [ -n "$host" ] || continue
  (
    answer=$(printf 'GET / HTTP/1.0\r\n\r\n' | timeout 3 nc -w 2 "$host" "$port" 2>/dev/null | head -n 1)
    if [ "${answer#HTTP/1.? 200}" != "$answer" ]; then
      echo "connect $host:$port open"
    else
      echo "connect $host:$port closed"
    fi
  ) &
done
wait
for dev in /sys/class/net/*; do echo "interface ${dev##*/}"; done
echo "routes $(ip route 2>/dev/null | wc -l)"
echo "ipv6_off $(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || echo absent)"
