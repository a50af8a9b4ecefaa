#!/usr/bin/env bash
# Multi-host benchmark on one machine: network-namespace hosts joined by TCP over veth
# (tests/support/netns_hosts.sh), vae_bench with the cost model (--project) on one node and on
# 2 hosts x 1, 2 hosts x 2 and 3 hosts x 1 ranks, ROUNDS times each, interleaved, medians.
# Run as root with nothing else running:  sudo bash launch/multi_host_bench.sh [ROUNDS] [mlp|conv]
# SETUPS="one_node_2 hosts_2x1" limits the layouts (2 x 2 and 3 x 1 oversubscribe a 2-core box).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
model=${2:-mlp}
hosts_sh=$root/tests/support/netns_hosts.sh
bench=$root/build/vae_bench
[[ -x $bench ]] || { echo "no $bench: run launch/setup.sh first" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces)" >&2; exit 2; }

id=mb$$
trap '"$hosts_sh" down "$id"' EXIT
"$hosts_sh" up "$id" 3

args=(--repeats 7 --peak-seconds 0.5 --project)
if [[ $model == conv ]]; then
  args=(--repeats 3 --steps 10 --peak-seconds 0.5 --project --encoder "conv 32 k4 s2 p1, relu, conv 64 k4 s2 p1, relu, fc 256, relu"
         --decoder "fc 256, relu, fc 3136, relu, reshape 64x7x7, convt 32 k4 s2 p1 op0, relu, convt 1 k4 s2 p1 op0")
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HWLOC_COMPONENTS=-gl OMP_NUM_THREADS=1
# Ranks across hosts: mpirun on host 1, the others reached through the namespace launcher,
# traffic on the hosts' own eth0 (TCP); ranks on one host use shared memory between them.
across() {
  "$hosts_sh" exec "$id-h1" mpirun --host "$1" --mca plm_rsh_agent "$hosts_sh rsh" \
    --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 --bind-to none --oversubscribe \
    -x OMP_NUM_THREADS -x HWLOC_COMPONENTS "$bench" "${args[@]}"
}
declare -A ips
setups=${SETUPS:-one_node_2 hosts_2x1 hosts_2x2 hosts_3x1}
for r in $(seq 1 "$rounds"); do
  for setup in $setups; do
    case $setup in
      one_node_2) out=$(mpirun -n 2 --bind-to core "$bench" "${args[@]}") ;;
      hosts_2x1) out=$(across "$id-h1:1,$id-h2:1") ;;
      hosts_2x2) out=$(across "$id-h1:2,$id-h2:2") ;;
      hosts_3x1) out=$(across "$id-h1:1,$id-h2:1,$id-h3:1") ;;
    esac
    echo "== round $r: $setup"
    echo "$out" | grep -E "^(step_ms|sync_share|link|projection|nodes|  *[0-9])"
    ips[$setup]+="$(echo "$out" | sed -n 's/.*images_per_s=\([0-9]*\).*/\1/p') "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "== medians over $rounds rounds (images/s)"
base=$(echo "${ips[one_node_2]:-}" | median)
for setup in $setups; do
  m=$(echo "${ips[$setup]}" | median)
  echo "$setup images_per_s=$m"
done
if [[ -n ${ips[one_node_2]:-} && -n ${ips[hosts_2x1]:-} ]]; then
  eff=$(awk -v a="$(echo "${ips[hosts_2x1]}" | median)" -v b="$base" 'BEGIN {printf "%.1f%%", 100*a/b}')
  echo "efficiency hosts_2x1 vs one_node_2: $eff"
fi
