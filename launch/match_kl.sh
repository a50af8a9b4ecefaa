#!/usr/bin/env bash
# Training match of configs/shapes64_kl.cfg: vae_dist and the same model in PyTorch 1.13
# (tests/reference/config_vae.py train), the same data, batch 16, Adam lr 5e-4, STEPS steps,
# for seeds 1..SEEDS; prints the mean training loss of the last 50 steps of each run, the means
# over the seeds and their difference. Two runs at a time, one thread each.
#   bash launch/match_kl.sh [STEPS] [SEEDS]   (needs the shapes data, see docs/layers.md)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
steps=${1:-300}
seeds=${2:-3}
out=${MATCH_OUT:-/tmp/vae_dist_match_kl}
rm -rf "$out"
mkdir -p "$out"
torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
           LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_NUM_THREADS=1)
export OMP_NUM_THREADS=1
jobs=()
for ((s = 1; s <= seeds; s++)); do
  jobs+=("build/vae_dist --config configs/shapes64_kl.cfg --threads 1 --seed $s --max-steps $steps \
--log-every 50 --test-data '' --iw-samples 0 --checkpoint-every 0 --progress false --out $out/ours$s > $out/ours$s.log 2>&1")
  jobs+=("${torch_env[*]} /usr/bin/python3 tests/reference/config_vae.py train --seed $s --steps $steps \
--window 50 --threads 1 > $out/torch$s.log 2>&1")
done
printf '%s\n' "${jobs[@]}" | xargs -d '\n' -P 2 -I{} bash -c '{}'
printf '| seed | vae_dist | PyTorch |\n| --- | --- | --- |\n'
for ((s = 1; s <= seeds; s++)); do
  ours=$(awk -F, '$1 == "train" { v = $5 } END { printf "%.3f", v }' "$out/ours$s/metrics.csv")
  torch=$(sed -n 's/^FINAL mean_loss_last_window=//p' "$out/torch$s.log")
  printf '| %d | %s | %s |\n' "$s" "$ours" "$torch"
  echo "$ours $torch" >>"$out/pairs"
done
awk '{ a += $1; b += $2; n++ } END { printf "| mean | %.3f | %.3f |\ndifference: %+.2f%% of PyTorch'"'"'s\n", a / n, b / n, 100 * (a - b) / b }' "$out/pairs"
