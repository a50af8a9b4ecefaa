#!/usr/bin/env bash
# Benchmark of a VAE training step: vae_bench on 1 and 2 ranks, in f32 and in bf16 (--precision
# bf16, on CPUs with AVX512_BF16), beside PyTorch 1.13 at its best on this machine (one process
# on 1 and on 2 threads, and DistributedDataParallel with gloo on 1 and 2 ranks), one thread per
# rank, and vae_dist's own training loop on the same model; rounds interleaved in one run so the
# shared machine's noise hits all alike; prints medians, ratios, shares of the core's physical
# FMA peak and a summary line to quote.
#   bash launch/bench.sh [ROUNDS] [mlp|conv]   (needs: bash launch/setup.sh --with-reference)
#   bash launch/bench.sh [ROUNDS] stream [BIG.h5]   (launch/bench_stream.sh)
# mlp: the 784-400-20 MLP VAE; conv: the Fashion-MNIST conv VAE of configs/fashion_conv.cfg, also
# with plain nchw activations to show what oneDNN's blocked layouts are worth; stream: training
# from data in memory against data streamed from the file.
# PyTorch's best: every combination of allocator (glibc, jemalloc, tcmalloc), flush-denormal
# (off = PyTorch's default, on) and, for conv, channels_last runs once first; the rounds then
# use the fastest, and the report lists them all.
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", 100 * a / b}'; }

# PyTorch configurations: allocator:flush_denormal:channels_last.
lib=/usr/lib/x86_64-linux-gnu
declare -A preload=([glibc]="" [jemalloc]=$lib/libjemalloc.so.2 [tcmalloc]=$lib/libtcmalloc_minimal.so.4)
for m in jemalloc tcmalloc; do
  [[ -e ${preload[$m]} ]] || { echo "bench: ${preload[$m]} missing; run: bash launch/setup.sh --with-reference" >&2; exit 1; }
done
torch_configs=()
for m in glibc jemalloc tcmalloc; do
  for f in off on; do
    if [[ $model == conv ]]; then torch_configs+=("$m:$f:0" "$m:$f:1"); else torch_configs+=("$m:$f:0"); fi
  done
done
# torch_run CONFIG SCRIPT ARGS...: one PyTorch benchmark under that configuration.
torch_run() {
  local m f c
  IFS=: read -r m f c <<<"$1"
  local script=$2
  shift 2
  local flags=(--flush-denormal "$f")
  ((c)) && flags+=(--channels-last)
  "${torch_env[@]}" ${preload[$m]:+LD_PRELOAD=${preload[$m]}} $py "tests/reference/$script" "${flags[@]}" "$@"
}
describe_config() {
  local m f c
  IFS=: read -r m f c <<<"$1"
  echo "malloc=$m flush_denormal=$f$([[ $model == conv ]] && echo " channels_last=$c")"
}

if [[ $model == mlp ]]; then
  ours=(--repeats 7 --steps 100)
  torch=(--model mlp --reps 3)
  sweep=(--model mlp --reps 1 --steps 600)
  # vae_dist's own loop on Fashion-MNIST: epochs 2 and 3 (the first builds the primitives).
  train=(--config configs/fashion_mlp.cfg --epochs 3)
  skip_epochs=1 skip_what=epoch
else
  ours=(--repeats 5 --steps 20 --encoder "$(cfg_value encoder)" --decoder "$(cfg_value decoder)")
  torch=(--model conv --warmup 5 --steps 20 --reps 3)
  sweep=(--model conv --warmup 5 --steps 20 --reps 1)
  train=(--config configs/fashion_conv.cfg --epochs 1 --max-steps 150 --log-every 25)
  skip_epochs=0 skip_what=line
fi
[[ -e data/fashion-mnist/train.h5 ]] || { echo "bench: data/fashion-mnist/train.h5 missing; run: bash launch/setup.sh" >&2; exit 1; }
train+=(--threads 1 --iw-samples 0 --test-data "" --checkpoint-every 0)
# train_rate [MPIRUN...]: median img/s of the progress lines, the first epoch or line skipped.
train_rate() {
  local dir
  dir=$(mktemp -d)
  # Under mpirun stdout is a pty, so progress lines end in carriage returns.
  "$@" build/vae_dist "${train[@]}" --out "$dir" 2>&1 | tr '\r' '\n' |
    awk -v skip="$skip_epochs" '/img\/s/ { split($2, e, "/"); if (e[1] > skip && ++n > (skip ? 0 : 1)) print $(NF - 3) }' |
    median
  rm -rf "$dir"
}

echo "bench: PyTorch configurations (${#torch_configs[@]}), one run each" >&2
declare -A tried
best="" best_ips=0
for c in "${torch_configs[@]}"; do
  tried[$c]=$(torch_run "$c" bench_pytorch.py --threads 1 "${sweep[@]}" | field images_per_s)
  if awk -v a="${tried[$c]}" -v b="$best_ips" 'BEGIN {exit !(a > b)}'; then best=$c best_ips=${tried[$c]}; fi
done
default=glibc:off:0

declare -A runs
for ((r = 1; r <= rounds; r++)); do
  echo "bench: round $r/$rounds" >&2
  out=$(build/vae_bench --threads 1 "${ours[@]}")
  runs[ours1]+=" $(field images_per_s <<<"$out")"
  runs[gflops]+=" $(field gflops <<<"$out")"
  runs[rss1]+=" $(field peak_rss_mb_per_rank <<<"$out")"
  runs[fma]+=" $(field physical_peak_f32_gflops <<<"$out")"
  runs[fmabf]+=" $(field physical_peak_bf16_gflops <<<"$out")"
  runs[phys]+=" $(field share_of_physical_peak <<<"$out")"
  fma_name=$(sed -n 's/^physical_peak_f32_gflops=[0-9.]* (\([^,]*\),.*/\1/p' <<<"$out")
  fmabf_name=$(sed -n 's/^physical_peak_bf16_gflops=[0-9.]* (\([^,]*\),.*/\1/p' <<<"$out")
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
    runs[bfphys]+=" $(field share_of_physical_peak <<<"$out")"
    if [[ $model == mlp ]]; then runs[bfshare]+=" $(field share_of_train_peak <<<"$out")"; runs[bfpeak]+=" $(field peak_inner_product_train_gflops <<<"$out")"; fi
    out=$(mpirun -n 2 --bind-to core -x OMP_NUM_THREADS build/vae_bench --threads 1 "${ours[@]}" --peak-seconds 0.1 --precision bf16)
    runs[bf2]+=" $(field images_per_s <<<"$out")"
    runs[bfcomm]+=" $(field sync_share <<<"$out")"
  fi
  out=$(mpirun -n 2 --bind-to core -x OMP_NUM_THREADS build/vae_bench --threads 1 "${ours[@]}" --peak-seconds 0.1)
  runs[ours2]+=" $(field images_per_s <<<"$out")"
  runs[comm]+=" $(field sync_share <<<"$out")"
  runs[rss2]+=" $(field peak_rss_mb_per_rank <<<"$out" | tr ',' ' ' | awk '{print ($1 > $2 ? $1 : $2)}')"
  runs[train1]+=" $(train_rate)"
  runs[train2]+=" $(train_rate mpirun -n 2 --bind-to core -x OMP_NUM_THREADS)"
  out=$(torch_run "$best" bench_pytorch.py --threads 1 "${torch[@]}")
  runs[torch1]+=" $(field images_per_s <<<"$out")"
  out=$(torch_run "$default" bench_pytorch.py --threads 1 "${torch[@]}")
  runs[torchdef]+=" $(field images_per_s <<<"$out")"
  # Both cores in one process: the other way PyTorch can use the 2 ranks' cores.
  out=$(OMP_NUM_THREADS=2 torch_run "$best" bench_pytorch.py --threads 2 "${torch[@]}")
  runs[torch2t]+=" $(field images_per_s <<<"$out")"
  for p in 1 2; do
    out=$(torch_run "$best" ddp_pytorch.py --world-size $p --threads-per-rank 1 "${torch[@]}")
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
o1=$(m ours1) o2=$(m ours2) t1=$(m torch1) td=$(m torchdef) d1=$(m ddp1) d2=$(m ddp2) e1=$(m train1) e2=$(m train2)
t2t=$(m torch2t)
# PyTorch's best on two cores: DDP on 2 ranks, or one process on 2 threads.
p2=$(printf '%s\n%s\n' "$d2" "$t2t" | sort -g | tail -1)
if [[ $model == mlp ]]; then
  title="MLP VAE 784-400-20"
  one="$(m gflops) GFLOP/s = $(m phys)% of the physical peak ($(m fma) GFLOP/s, $fma_name) = $(m share)% of the oneDNN inner-product peak ($(m peak) GFLOP/s)"
else
  title="conv VAE (configs/fashion_conv.cfg)"
  one="$(m gflops) GFLOP/s = $(m phys)% of the physical peak ($(m fma) GFLOP/s, $fma_name) = $(m share)% of the oneDNN convolution peak ($(m peak) GFLOP/s, conv layers alone); its primitives alone take $(m prims)% of the step"
fi
cat <<REPORT
$title, batch 128 per rank, 1 thread per rank; medians of $rounds rounds; $(date -u +%Y-%m-%d)
($(cpu_model), $(getconf _NPROCESSORS_ONLN) cores)
PyTorch configurations tried (one run each, images/s; the rounds use the fastest):
$(for c in "${torch_configs[@]}"; do printf '  %-52s %10s%s\n' "$(describe_config "$c")" "${tried[$c]}" "$([[ $c == "$best" ]] && echo "  <- best")$([[ $c == "$default" ]] && echo "  (PyTorch's defaults)")"; done)
vae_dist  1 rank : $o1 images/s, $one, peak RSS $(m rss1) MB
vae_dist  2 ranks: $o2 images/s, scaling efficiency $(awk -v a="$o2" -v b="$o1" 'BEGIN {printf "%.1f", 100 * a / (2 * b)}')%, gradient sum + Adam $(m comm)% of the step, peak RSS $(m rss2) MB per rank
training  1 rank : $e1 images/s = $(pct "$e1" "$o1")% of vae_bench's step rate (vae_dist ${train[*]:0:2}, progress lines after the first $skip_what)
training  2 ranks: $e2 images/s = $(pct "$e2" "$o2")% of vae_bench's step rate
PyTorch   1 proc : $t1 images/s   -> vae_dist is $(ratio "$o1" "$t1")x   (PyTorch's best: $(describe_config "$best"))
PyTorch   1 proc, its defaults: $td images/s   -> vae_dist is $(ratio "$o1" "$td")x
DDP gloo  1 rank : $d1 images/s   -> vae_dist is $(ratio "$o1" "$d1")x, peak RSS $(m ddprss1) MB
DDP gloo  2 ranks: $d2 images/s   -> vae_dist is $(ratio "$o2" "$d2")x, peak RSS $(m ddprss2) MB per rank
PyTorch   1 proc, 2 threads: $t2t images/s   -> vae_dist on 2 ranks is $(ratio "$o2" "$t2t")x
REPORT
quote="$(date -u +%Y-%m-%d), $(cpu_model): f32 $(ratio "$o1" "$t1")x PyTorch's best in one process, $(ratio "$o2" "$p2")x PyTorch's best on 2 cores, $(m phys)% of the f32 physical peak; training at $(pct "$e1" "$o1")% / $(pct "$e2" "$o2")% of the benchmark's step rate on 1 / 2 ranks"
if ((bf16)); then
  b1=$(m bf1) b2=$(m bf2)
  bfline="$(m bfgflops) GFLOP/s = $(m bfphys)% of the bf16 physical peak ($(m fmabf) GFLOP/s, $fmabf_name)"
  [[ $model == mlp ]] && bfline+=" = $(m bfshare)% of the oneDNN bf16 inner-product train peak ($(m bfpeak) GFLOP/s)"
  echo "vae_dist  1 rank  bf16: $b1 images/s = $(ratio "$b1" "$o1")x f32 = $(ratio "$b1" "$t1")x PyTorch's best f32, $bfline"
  echo "vae_dist  2 ranks bf16: $b2 images/s = $(ratio "$b2" "$o2")x f32, gradient sum + Adam $(m bfcomm)% of the step"
  quote+="; bf16 $(ratio "$b1" "$o1")x f32 ($(ratio "$b1" "$t1")x PyTorch's best f32)"
fi
if [[ $model == conv ]]; then
  echo "vae_dist  1 rank, plain nchw activations: $(m plain) images/s -> blocked layouts give $(ratio "$o1" "$(m plain)")x"
fi
echo "quote: $quote"
