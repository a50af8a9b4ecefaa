#!/usr/bin/env bash
# Network-namespace "hosts" on one machine, for tests and benchmarks that must cross a real TCP
# network: each host is a network namespace with its own hostname (a UTS namespace per process
# started in it), one veth link to a bridge in a switch namespace, and /etc/hosts naming all hosts.
#
#   netns_hosts.sh up ID N        make hosts ID-h1 .. ID-hN (10.X.Y.1 .. N, X.Y derived from ID)
#   netns_hosts.sh exec HOST CMD  run CMD on HOST (hostname HOST; its network only)
#   netns_hosts.sh rsh HOST CMD   the same, CMD as one shell string: Open MPI's plm_rsh_agent
#   netns_hosts.sh down ID        stop what runs on ID's hosts (by pid) and remove them
#   netns_hosts.sh hosts ID       print the host names, one per line
# Needs root and iproute2. Nothing is added to the caller's own network namespace: the bridge
# lives in the namespace ID-sw, so the test's traffic never leaves the hosts it made.
set -euo pipefail

die() {
  echo "netns_hosts: $*" >&2
  exit 2
}
# The subnet 10.X.Y.0/24 of an ID, so runs with different IDs do not share addresses.
subnet() {
  local h
  h=$(printf '%s' "$1" | cksum | cut -d' ' -f1)
  echo "10.$((100 + h % 100)).$(((h / 100) % 250)).0"
}

cmd=${1:-}
case $cmd in
  up)
    (($# == 3)) || die "usage: up ID N"
    id=$2 n=$3
    [[ $id =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "ID must be 1-8 lower-case letters or digits"
    [[ $n =~ ^[1-9][0-9]?$ ]] || die "N must be 1..99"
    [[ $(id -u) -eq 0 ]] || die "needs root (ip netns)"
    command -v ip >/dev/null || die "needs iproute2 (apt-get install iproute2)"
    net=$(subnet "$id")
    base=${net%.0}
    sw=$id-sw
    ip netns add "$sw"
    ip -n "$sw" link set lo up
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    mkdir -p "/etc/netns"
    hosts_file=$(mktemp)
    printf '127.0.0.1 localhost\n' >"$hosts_file"
    for i in $(seq 1 "$n"); do printf '%s.%d %s-h%d\n' "$base" "$i" "$id" "$i" >>"$hosts_file"; done
    for i in $(seq 1 "$n"); do
      h=$id-h$i
      ip netns add "$h"
      ip -n "$h" link set lo up
      # veth names are per namespace, so every host's end is eth0.
      ip link add "vd${id}s$i" netns "$sw" type veth peer name eth0 netns "$h"
      ip -n "$sw" link set "vd${id}s$i" master br0 up
      ip -n "$h" addr add "$base.$i/24" dev eth0
      ip -n "$h" link set eth0 up
      # ip netns exec bind-mounts /etc/netns/<ns>/* over /etc/*: name resolution per host.
      mkdir -p "/etc/netns/$h"
      cp "$hosts_file" "/etc/netns/$h/hosts"
      printf '%s\n' "$h" >"/etc/netns/$h/hostname"
    done
    rm -f "$hosts_file"
    ;;
  exec | rsh)
    (($# >= 3)) || die "usage: $cmd HOST CMD..."
    h=$2
    shift 2
    [[ -d /etc/netns/$h ]] || die "no host '$h' (netns_hosts.sh up first)"
    # Open MPI's rsh launcher passes flags meant for ssh before the host; none apply here.
    if [[ $cmd == exec ]]; then
      exec ip netns exec "$h" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$h" "$@"
    fi
    exec ip netns exec "$h" unshare --uts -- sh -c 'hostname "$0" && eval "$1"' "$h" "$*"
    ;;
  down)
    (($# == 2)) || die "usage: down ID"
    id=$2
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$id-(h[0-9]+|sw)$" || true); do
      # Only processes inside this test's own namespaces: the ones it started there.
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [[ -n $pids ]] && kill -TERM $pids 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && break
        sleep 0.2
      done
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [[ -n $pids ]] && kill -KILL $pids 2>/dev/null || true
      ip netns delete "$ns" || true
      [[ $ns == "$id-sw" ]] || rm -rf "/etc/netns/$ns"
    done
    ;;
  hosts)
    (($# == 2)) || die "usage: hosts ID"
    ip netns list | awk '{print $1}' | grep -E "^$2-h[0-9]+$" | sort -V
    ;;
  *)
    sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    [[ $cmd == -h || $cmd == --help ]] || exit 2
    ;;
esac
