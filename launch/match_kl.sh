#!/usr/bin/env bash
# Training match of configs/shapes64_kl.cfg: vae_dist and the same model in PyTorch 1.13
# (tests/reference/config_vae.py train), both from PyTorch's initial parameters (vae_dist
# --init-weights) and on the same batches and noise (vae_dist's, drawn in numpy by
# tests/reference/vd_rng.py), batch 16, Adam lr 5e-4, STEPS steps, for seeds 1..SEEDS. Prints
# each seed's first-step losses and the mean loss of every WINDOW steps in both frameworks, the
# means over the seeds and their difference. Two runs at a time, one thread each.
#   bash launch/match_kl.sh [STEPS] [SEEDS] [WINDOW]   (needs the shapes data, see docs/layers.md)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
steps=${1:-600}
seeds=${2:-3}
window=${3:-100}
out=${MATCH_OUT:-/tmp/vae_dist_match_kl}
rm -rf "$out"
mkdir -p "$out"
torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
           LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_NUM_THREADS=1)
export OMP_NUM_THREADS=1
jobs=()
for ((s = 1; s <= seeds; s++)); do
  # PyTorch's initial draw for this seed, which both runs start from.
  "${torch_env[@]}" /usr/bin/python3 tests/reference/config_vae.py train --seed "$s" --steps 0 \
    --init-weights "$out/init$s.h5" >/dev/null
  jobs+=("build/vae_dist --config configs/shapes64_kl.cfg --threads 1 --seed $s --max-steps $steps \
--init-weights $out/init$s.h5 --log-every 1 --test-data '' --iw-samples 0 --checkpoint-every 0 \
--progress false --out $out/ours$s > $out/ours$s.log 2>&1")
  jobs+=("${torch_env[*]} /usr/bin/python3 tests/reference/config_vae.py train --seed $s --steps $steps \
--window $window --threads 1 --same-start --losses $out/torch$s.txt > $out/torch$s.log 2>&1")
done
printf '%s\n' "${jobs[@]}" | xargs -d '\n' -P 2 -I{} bash -c '{}'
for ((s = 1; s <= seeds; s++)); do
  awk -F, '$1 == "train" { print $3, $5 }' "$out/ours$s/metrics.csv" >"$out/ours$s.txt"
  # One line per step: seed, step, vae_dist's loss, PyTorch's loss.
  awk -v s="$s" 'NR == FNR { ours[$1] = $2; next } { print s, $2, ours[$2], $4 }' \
    "$out/ours$s.txt" "$out/torch$s.txt" >>"$out/steps"
done
awk -v w="$window" -v steps="$steps" '
  { k = int(($2 - 1) / w); a[$1, k] += $3; b[$1, k] += $4; n[$1, k]++; if ($1 > ns) ns = $1
    if ($2 == 1) printf "seed %d, step 1: vae_dist %.4f, PyTorch %.4f (%+.2e relative)\n", $1, $3, $4, ($3 - $4) / $4 }
  END {
    nw = int((steps + w - 1) / w)
    printf "\n| seed | framework |"; for (k = 0; k < nw; ++k) printf " %d-%d |", k * w + 1, (k + 1) * w; printf "\n|---|---|"
    for (k = 0; k < nw; ++k) printf "---|"; printf "\n"
    for (s = 1; s <= ns; ++s) for (f = 0; f < 2; ++f) {
      printf "| %d | %s |", s, f ? "PyTorch" : "vae_dist"
      for (k = 0; k < nw; ++k) printf " %.2f |", (f ? b[s, k] : a[s, k]) / n[s, k]; printf "\n"
    }
    printf "\nmeans over the seeds, and vae_dist against PyTorch:\n"
    for (k = 0; k < nw; ++k) { ma = mb = 0; m = 0
      for (s = 1; s <= ns; ++s) { ma += a[s, k] / n[s, k]; mb += b[s, k] / n[s, k]; m++ }
      printf "steps %d-%d: %.3f against %.3f (%+.3f%%)\n", k * w + 1, (k + 1) * w, ma / m, mb / m, 100 * (ma - mb) / mb }
  }' "$out/steps"
