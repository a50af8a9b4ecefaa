#!/usr/bin/env bash
# Benchmark of streamed training data (bench.sh stream): the Fashion-MNIST MLP VAE trained from
# data in memory and streamed from the file (--stream never / always, windows of 8 MB so every
# epoch reads several), on 1 rank and on 2, from the deflate-compressed file setup.sh imports
# and from an uncompressed copy; rounds interleaved in one run, medians and ratios. With a big
# file (e.g. 20 GB from `vae_data synth`), also one epoch of it on 2 ranks with its peak RSS.
#   bash launch/bench.sh [ROUNDS] stream [BIG.h5]   (needs: bash launch/setup.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
rounds=${1:-3}
big=${2:-}
[[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1
packed=data/fashion-mnist/train.h5
[[ -f $packed ]] || { echo "bench: $packed missing; run: bash launch/setup.sh" >&2; exit 1; }
[[ -z $big || -f $big ]] || { echo "bench: big data file '$big' does not exist" >&2; exit 1; }

work=$(mktemp -d /tmp/vd_bench_stream.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The same images stored uncompressed: streaming then costs no inflate per epoch.
src=/usr/share/datasets/fashion-mnist
build/vae_data import-idx --images $src/train-images-idx3-ubyte.gz \
  --labels $src/train-labels-idx1-ubyte.gz --out "$work/raw.h5" --deflate 0 >/dev/null

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
train() {  # ranks data mode -> "images/s rss"
  local ranks=$1 data=$2 mode=$3 launch=()
  ((ranks > 1)) && launch=(mpirun -n "$ranks" --bind-to core -x OMP_NUM_THREADS)
  local out
  out=$("${launch[@]}" build/vae_dist --config configs/fashion_mlp.cfg --data "$data" --test-data "" \
    --epochs 3 --out "$work/run" --stream "$mode" --stream-window-mb 8 --threads 1 \
    --progress false --checkpoint-every 0 --iw-samples 0 2>&1) || { echo "$out" >&2; exit 1; }
  rm -rf "$work/run"
  echo "$(sed -n 's|.* \([0-9.]*\) training images/s.*|\1|p' <<<"$out") $(sed -n 's/.*peak RSS \([0-9]*\) MB.*/\1/p' <<<"$out")"
}

declare -A runs
for ((r = 1; r <= rounds; r++)); do
  echo "bench: round $r/$rounds" >&2
  for data in packed raw; do
    file=$packed
    [[ $data == raw ]] && file=$work/raw.h5
    for ranks in 1 2; do
      # Alternate which goes first, so a drift in the machine's speed hits both alike.
      modes=(never always)
      ((r % 2 == 0)) && modes=(always never)
      for mode in "${modes[@]}"; do
        read -r ips rss < <(train "$ranks" "$file" "$mode")
        runs[$data.$ranks.$mode]+=" $ips"
        runs[$data.$ranks.$mode.rss]+=" $rss"
      done
    done
  done
done

m() { median <<<"${runs[$1]}"; }
echo "Fashion-MNIST MLP VAE 784-400-20, batch 128 per rank, 1 thread per rank, 3 epochs; streamed"
echo "with --stream always --stream-window-mb 8; medians of $rounds rounds ($(getconf _NPROCESSORS_ONLN) cores)"
for data in packed raw; do
  what="deflate-compressed file"
  [[ $data == raw ]] && what="uncompressed file    "
  for ranks in 1 2; do
    mem=$(m $data.$ranks.never) str=$(m $data.$ranks.always)
    printf '%s, %d rank(s): in memory %6.0f images/s (peak RSS %s MB), streamed %6.0f images/s (peak RSS %s MB) = %.1f%%\n' \
      "$what" "$ranks" "$mem" "$(m $data.$ranks.never.rss)" "$str" "$(m $data.$ranks.always.rss)" \
      "$(awk -v a="$str" -v b="$mem" 'BEGIN {print 100 * a / b}')"
  done
done

if [[ -n $big ]]; then
  echo "bench: one epoch of $big on 2 ranks" >&2
  out=$(mpirun -n 2 --bind-to core -x OMP_NUM_THREADS build/vae_dist --config configs/fashion_mlp.cfg \
    --data "$big" --test-data "" --epochs 1 --out "$work/big" --threads 1 --progress false \
    --checkpoint-every 0 --iw-samples 0 2>&1) || { echo "$out" >&2; exit 1; }
  echo "big file: $big, $(awk -v b="$(stat -c %s "$big")" 'BEGIN {printf "%.1f", b / 1e9}') GB; 2 ranks, --stream auto:"
  grep -E '^(data:|done:)' <<<"$out"
fi
