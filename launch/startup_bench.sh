#!/usr/bin/env bash
# Start-up benchmark (a figure, not a test): wall time of `vae_dist --help` and `--version`, and of
# a one-step Fashion-MNIST run on 1 rank and on 2 ranks (launch/vae_mpirun), with the time to the
# first training step taken as the moment that step's progress line appears. Also the 1-rank run
# with the two start-up settings vae_dist makes undone, which is the start as it was before.
# Prints medians of N runs (default 5).
#   bash launch/startup_bench.sh [N]          (needs: bash launch/setup.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
runs=${1:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "startup_bench: N must be an integer >= 1" >&2; exit 2; }
bin=build/vae_dist
[[ -x $bin && -f data/fashion-mnist/train.h5 ]] || {
  echo "startup_bench: needs $bin and data/fashion-mnist/train.h5; run: bash launch/setup.sh" >&2
  exit 1
}
[[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

# Runs "$@" once; prints "<seconds to the first step line> <seconds to exit>" ("-" if no step).
time_run() {
  local t0 first="-" line
  t0=$EPOCHREALTIME
  while IFS= read -r line; do
    line=${line##*$'\r'}  # under mpirun the ranks see a terminal and redraw with \r
    if [[ $first == "-" && $line =~ ^epoch\ [0-9]+/[0-9]+\ +step\ 1/ ]]; then
      first=$(elapsed "$EPOCHREALTIME" "$t0")
    fi
  done < <("$@" 2>&1)
  wait $! || { echo "startup_bench: failed: $*" >&2; exit 1; }
  echo "$first $(elapsed "$EPOCHREALTIME" "$t0")"
}

declare -A first total
measure() {
  local key=$1 i r
  shift
  for ((i = 1; i <= runs; i++)); do
    r=$(time_run "$@") || exit 1
    first[$key]+=" ${r% *}"
    total[$key]+=" ${r#* }"
  done
}

one_step=(--config configs/fashion_mlp.cfg --max-steps 1 --test-data '' --out)
measure help "$bin" --help
measure version "$bin" --version
measure rank1 "$bin" "${one_step[@]}" "$tmp/r1"
measure rank2 bash launch/vae_mpirun -n 2 -- "${one_step[@]}" "$tmp/r2"
# The start before: hwloc's gl probe on (an empty HWLOC_COMPONENTS), Open MPI's singleton
# daemon started, its default transport selection (an empty OMPI_MCA_pml).
measure before env HWLOC_COMPONENTS= OMPI_MCA_ess_singleton_isolated=0 OMPI_MCA_pml= \
  "$bin" "${one_step[@]}" "$tmp/r0"

m() { median <<<"$1"; }
model=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -1)
cat <<REPORT
vae_dist start-up, medians of $runs runs (${model:-unknown CPU}, $(getconf _NPROCESSORS_ONLN) cores, load average $(cut -d' ' -f1 /proc/loadavg) at the end)
vae_dist --help                   : $(m "${total[help]}") s
vae_dist --version                : $(m "${total[version]}") s
1 rank, Fashion-MNIST, 1 step     : first step after $(m "${first[rank1]}") s, exit after $(m "${total[rank1]}") s
2 ranks (launch/vae_mpirun -n 2)  : first step after $(m "${first[rank2]}") s, exit after $(m "${total[rank2]}") s
1 rank, start as before (gl probe, daemon, all PMLs): first step after $(m "${first[before]}") s, exit after $(m "${total[before]}") s
REPORT
