#!/usr/bin/env bash
# Benchmark of a VAE training step: vae_bench on 1 and 2 ranks, in f32 and in bf16 (--precision
# bf16, on CPUs with AVX512_BF16), beside PyTorch (one process, and DistributedDataParallel with
# gloo on 1 and 2 ranks), one thread per rank, rounds interleaved in one run so the shared
# machine's noise hits all alike; prints medians and ratios.
#   bash launch/bench.sh [ROUNDS] [mlp|conv]   (needs: bash launch/setup.sh --with-reference)
#   bash launch/bench.sh [ROUNDS] stream [BIG.h5]   (launch/bench_stream.sh)
# mlp: the 784-400-20 MLP VAE; conv: the Fashion-MNIST conv VAE of configs/fashion_conv.cfg, also
# with plain nchw activations to show what oneDNN's blocked layouts are worth; stream: training
# from data in memory against data streamed from the file.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
rounds=${1:-3}
model=${2:-mlp}
[[ $model == stream ]] && exec bash "$root/launch/bench_stream.sh" "$rounds" "${@:3}"
[[ $model == mlp || $model == conv ]] || { echo "bench: model must be mlp, conv or stream, got '$model'" >&2; exit 2; }
py=/usr/bin/python3
# Debian's torch calls the system BLAS, netlib's reference one by default (~40x slower than
# OpenBLAS on these GEMMs); compare against PyTorch on OpenBLAS, not against that.
openblas=/usr/lib/x86_64-linux-gnu/openblas-openmp
# Some machines set OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for older OpenBLAS builds; they slow
# 0.3.21 down, so PyTorch runs without them.
torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH=$openblas)
[[ -d $openblas ]] || { echo "bench: $openblas missing; run: bash launch/setup.sh --with-reference" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1

# bf16 rows where oneDNN runs bf16 natively (vae_bench refuses it elsewhere).
bf16=0
build/vae_bench --precision bf16 --steps 1 --repeats 1 --peak-seconds 0.01 >/dev/null 2>&1 && bf16=1

field() { sed -n "s/.*\\b$1=\\([0-9.,]*\\).*/\\1/p" | head -1; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
cfg_value() { sed -n "s/^$1 *= *//p" configs/fashion_conv.cfg; }

if [[ $model == mlp ]]; then
  ours=(--repeats 7 --steps 100)
  torch=(--model mlp --reps 3)
else
  ours=(--repeats 5 --steps 20 --encoder "$(cfg_value encoder)" --decoder "$(cfg_value decoder)")
  torch=(--model conv --warmup 5 --steps 20 --reps 3)
fi

declare -A runs
for ((r = 1; r <= rounds; r++)); do
  echo "bench: round $r/$rounds" >&2
  out=$(build/vae_bench --threads 1 "${ours[@]}")
  runs[ours1]+=" $(field images_per_s <<<"$out")"
  runs[gflops]+=" $(field gflops <<<"$out")"
  runs[rss1]+=" $(field peak_rss_mb_per_rank <<<"$out")"
  if [[ $model == mlp ]]; then
    runs[share]+=" $(field share_of_fwd_peak <<<"$out")"
    runs[peak]+=" $(field peak_inner_product_fwd_gflops <<<"$out")"
  else
    runs[share]+=" $(field share_of_conv_peak <<<"$out")"
    runs[peak]+=" $(field peak_conv_train_gflops <<<"$out")"
    runs[prims]+=" $(field share_of_primitives <<<"$out")"
    out=$(build/vae_bench --threads 1 "${ours[@]}" --plain-activations --peak-seconds 0.1)
    runs[plain]+=" $(field images_per_s <<<"$out")"
  fi
  if ((bf16)); then
    out=$(build/vae_bench --threads 1 "${ours[@]}" --precision bf16)
    runs[bf1]+=" $(field images_per_s <<<"$out")"
    runs[bfgflops]+=" $(field gflops <<<"$out")"
    out=$(mpirun -n 2 --bind-to core -x OMP_NUM_THREADS build/vae_bench --threads 1 "${ours[@]}" --peak-seconds 0.1 --precision bf16)
    runs[bf2]+=" $(field images_per_s <<<"$out")"
    runs[bfcomm]+=" $(field sync_share <<<"$out")"
  fi
  out=$(mpirun -n 2 --bind-to core -x OMP_NUM_THREADS build/vae_bench --threads 1 "${ours[@]}" --peak-seconds 0.1)
  runs[ours2]+=" $(field images_per_s <<<"$out")"
  runs[comm]+=" $(field sync_share <<<"$out")"
  runs[rss2]+=" $(field peak_rss_mb_per_rank <<<"$out" | tr ',' ' ' | awk '{print ($1 > $2 ? $1 : $2)}')"
  out=$("${torch_env[@]}" $py tests/reference/bench_pytorch.py --threads 1 "${torch[@]}")
  runs[torch1]+=" $(field images_per_s <<<"$out")"
  for p in 1 2; do
    out=$("${torch_env[@]}" $py tests/reference/ddp_pytorch.py --world-size $p --threads-per-rank 1 "${torch[@]}")
    runs[ddp$p]+=" $(field images_per_s <<<"$out")"
    runs[ddprss$p]+=" $(grep -o 'peak_rss_mb=[0-9.]*' <<<"$out" | cut -d= -f2 | sort -g | tail -1)"
  done
done

# lscpu (util-linux) where it exists, else the kernel's own line: never an empty model.
cpu_model() {
  local cpu=""
  command -v lscpu >/dev/null && cpu=$(LC_ALL=C lscpu | sed -n 's/^Model name: *//p' | head -1)
  [[ -n $cpu ]] || cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -1)
  echo "${cpu:-unknown CPU}"
}

m() { median <<<"${runs[$1]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
o1=$(m ours1) o2=$(m ours2) t1=$(m torch1) d1=$(m ddp1) d2=$(m ddp2)
if [[ $model == mlp ]]; then
  title="MLP VAE 784-400-20"
  one="$(m gflops) GFLOP/s = $(m share)% of the oneDNN inner-product peak ($(m peak) GFLOP/s)"
else
  title="conv VAE (configs/fashion_conv.cfg)"
  one="$(m gflops) GFLOP/s = $(m share)% of the oneDNN convolution peak ($(m peak) GFLOP/s, conv layers alone); its primitives alone take $(m prims)% of the step"
fi
cat <<REPORT
$title, batch 128 per rank, 1 thread per rank; medians of $rounds rounds
($(cpu_model), $(getconf _NPROCESSORS_ONLN) cores)
vae_dist  1 rank : $o1 images/s, $one, peak RSS $(m rss1) MB
vae_dist  2 ranks: $o2 images/s, scaling efficiency $(awk -v a="$o2" -v b="$o1" 'BEGIN {printf "%.1f", 100 * a / (2 * b)}')%, gradient sum + Adam $(m comm)% of the step, peak RSS $(m rss2) MB per rank
PyTorch   1 proc : $t1 images/s   -> vae_dist is $(ratio "$o1" "$t1")x
DDP gloo  1 rank : $d1 images/s   -> vae_dist is $(ratio "$o1" "$d1")x, peak RSS $(m ddprss1) MB
DDP gloo  2 ranks: $d2 images/s   -> vae_dist is $(ratio "$o2" "$d2")x, peak RSS $(m ddprss2) MB per rank
REPORT
if ((bf16)); then
  b1=$(m bf1) b2=$(m bf2)
  echo "vae_dist  1 rank  bf16: $b1 images/s = $(ratio "$b1" "$o1")x f32, $(m bfgflops) GFLOP/s"
  echo "vae_dist  2 ranks bf16: $b2 images/s = $(ratio "$b2" "$o2")x f32, gradient sum + Adam $(m bfcomm)% of the step"
fi
if [[ $model == conv ]]; then
  echo "vae_dist  1 rank, plain nchw activations: $(m plain) images/s -> blocked layouts give $(ratio "$o1" "$(m plain)")x"
fi
