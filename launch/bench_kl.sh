#!/usr/bin/env bash
# Benchmark of an AutoencoderKL-class config (default configs/shapes64_kl.cfg; also
# configs/signals_kl.cfg, configs/volumes_kl.cfg): vae_bench in f32 and bf16 on 1 and 2 ranks
# (one thread each, bound to cores) beside PyTorch 1.13 on the same model
# (tests/reference/config_vae.py: one process on glibc's malloc, its default, and on tcmalloc
# with and without channels_last, and DDP on 2 ranks on tcmalloc; denormals flushed, as
# vae_dist runs; the fastest one-process row is the baseline), the config's batch per rank and its data's shape, ROUNDS rounds interleaved so the
# shared machine's noise hits all alike (medians); for shapes64_kl, then the cost of the same
# family at 32, 64 and 128 px (one round). Prints images/s, GFLOP/s, the share of the step
# outside convolutions and fc layers, peak RSS, ratios.
#   bash launch/bench_kl.sh [ROUNDS] [CONFIG]   (needs: bash launch/setup.sh --with-reference and
#   the config's data; ~15 min at 3)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
py=/usr/bin/python3
openblas=/usr/lib/x86_64-linux-gnu/openblas-openmp
[[ -d $openblas ]] || { echo "bench_kl: $openblas missing; run: bash launch/setup.sh --with-reference" >&2; exit 1; }
# PyTorch at its best here: OpenBLAS (Debian's torch calls the system BLAS, netlib's by default;
# the attention's projections are BLAS calls), without the OPENBLAS_* overrides of older builds,
# one OpenMP thread per process as set_num_threads(1) asks.
torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH=$openblas OMP_NUM_THREADS=1)
# tcmalloc keeps the pages of the tensors freed every step (launch/bench.sh tries each allocator).
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[[ -e $tcmalloc ]] || { echo "bench_kl: $tcmalloc missing; run: bash launch/setup.sh --with-reference" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1
rounds=${1:-3}
cfg=${2:-configs/shapes64_kl.cfg}
enc=$(sed -n 's/^encoder *= *//p' "$cfg")
dec=$(sed -n 's/^decoder *= *//p' "$cfg")
batch=$(sed -n 's/^batch-size *= *//p' "$cfg")
latent=$(sed -n 's/^latent-shape *= *//p' "$cfg")
data=$(sed -n 's/^data *= *//p' "$cfg")
[[ -f $data ]] || { echo "bench_kl: $data missing; make it as $cfg's comment says" >&2; exit 1; }
# One sample's shape, e.g. 3x64x64 or 2x256.
shape=$($py -c "import h5py, sys; print('x'.join(map(str, h5py.File(sys.argv[1])['images'].shape[1:])))" "$data")
name=$(basename "$cfg" .cfg)
field() { sed -n "s/.*\\b$1=\\([0-9.,]*\\).*/\\1/p" | head -1; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# images/s from vae_bench's step time (its images_per_s is rounded to an integer).
ips_of() { awk -v r="$1" -v b="$batch" '{ if (match($0, /step_ms=[0-9.]+/)) { printf "%.2f", 1000 * b * r / substr($0, RSTART + 8, RLENGTH - 8); exit } }'; }
bf16=0
build/vae_bench --precision bf16 --steps 1 --repeats 1 --peak-seconds 0.01 >/dev/null 2>&1 && bf16=1

# The data and latent shapes at SIZE px (shapes64_kl's family), or the config's own (SIZE 0).
shapes_at() { if (($1 == 0)); then echo "$shape $latent"; else echo "3x$1x$1 4x$(($1 / 8))x$(($1 / 8))"; fi; }
ours() {  # ours RANKS PRECISION SIZE -> the vae_bench output
  local ranks=$1 precision=$2 s l
  read -r s l <<<"$(shapes_at "$3")"
  local args=(--shape "$s" --latent-shape "$l" --encoder "$enc" --decoder "$dec"
              --batch-size "$batch" --steps 3 --repeats 3 --peak-seconds 0.2 --threads 1 --precision "$precision")
  if ((ranks == 1)); then
    build/vae_bench "${args[@]}"
  else
    mpirun -np "$ranks" --bind-to core -x OMP_NUM_THREADS=1 build/vae_bench "${args[@]}"
  fi
}
torch() {  # torch glibc|tcmalloc SIZE [config_vae.py bench options...]
  local s l pre=()
  [[ $1 == tcmalloc ]] && pre=(LD_PRELOAD=$tcmalloc)
  read -r s l <<<"$(shapes_at "$2")"
  shift 2
  "${torch_env[@]}" "${pre[@]}" $py tests/reference/config_vae.py bench --config "$cfg" --shape "$s" \
    --latent-shape "$l" --batch-size "$batch" --threads 1 --steps 3 --repeats 3 --warmup 2 "$@"
}
row() { printf '| %-52s | %8s | %8s | %6s | %9s |\n' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo "bench_kl: $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores, $rounds round(s)"
declare -A ips gf share rss runs
for ((round = 1; round <= rounds; round++)); do
  for ranks in 1 2; do
    for p in f32 bf16; do
      [[ $p == bf16 && $bf16 == 0 ]] && continue
      echo "bench_kl: round $round: vae_bench $ranks rank(s) $p" >&2
      out=$(ours $ranks $p 0)
      runs[ips$ranks$p]+=" $(ips_of $ranks <<<"$out")"
      runs[gf$ranks$p]+=" $(field gflops <<<"$out")"
      runs[share$ranks$p]+=" $(sed -n 's/.*share_outside_conv_and_fc=\([0-9.]*\)%.*/\1/p' <<<"$out")"
      rss[$ranks$p]=$(field peak_rss_mb_per_rank <<<"$out")
    done
  done
  echo "bench_kl: round $round: PyTorch" >&2
  runs[tg]+=" $(torch glibc 0 | field images_per_s)"
  runs[t1]+=" $(torch tcmalloc 0 | field images_per_s)"
  # torch's channels_last formats are for images and volumes only.
  [[ $shape == *x*x* ]] && runs[tcl]+=" $(torch tcmalloc 0 --channels-last | field images_per_s)"
  runs[t2]+=" $(torch tcmalloc 0 --ranks 2 | field images_per_s)"
done
for k in "${!runs[@]}"; do runs[$k]=$(median <<<"${runs[$k]}"); done
for ranks in 1 2; do
  for p in f32 bf16; do
    ips[$ranks$p]=${runs[ips$ranks$p]:-}
    gf[$ranks$p]=${runs[gf$ranks$p]:-}
    share[$ranks$p]=${runs[share$ranks$p]:-}
  done
done
tg=${runs[tg]} t1=${runs[t1]} tcl=${runs[tcl]:-} t2=${runs[t2]}
best=$(printf '%s\n%s\n%s\n' "$tg" "$t1" "$tcl" | grep . | sort -g | tail -1)
echo
echo "$name (samples $shape, latent $latent), batch $batch per rank, 1 thread per rank, medians of $rounds:"
row "run" "images/s" "GFLOP/s" "outside conv" "vs PyTorch"
row "---" "---" "---" "---" "---"
row "PyTorch 1.13, one process, glibc malloc" "$tg" "" "" ""
row "PyTorch 1.13, one process, tcmalloc" "$t1" "" "" ""
[[ -n $tcl ]] && row "PyTorch 1.13, one process, tcmalloc, channels_last" "$tcl" "" "" ""
for p in f32 bf16; do
  [[ -n ${ips[1$p]:-} ]] && row "vae_dist 1 rank $p" "${ips[1$p]}" "${gf[1$p]}" "${share[1$p]}%" "$(ratio "${ips[1$p]}" "$best")"
done
row "PyTorch 1.13 DDP (gloo), 2 ranks, tcmalloc" "$t2" "" "" ""
for p in f32 bf16; do
  [[ -n ${ips[2$p]:-} ]] && row "vae_dist 2 ranks $p" "${ips[2$p]}" "${gf[2$p]}" "${share[2$p]}%" "$(ratio "${ips[2$p]}" "$t2")"
done
echo "peak RSS per rank (MB): 1 rank f32 ${rss[1f32]}, bf16 ${rss[1bf16]:-n/a}; 2 ranks f32 ${rss[2f32]}, bf16 ${rss[2bf16]:-n/a}"
[[ $name == shapes64_kl ]] || exit 0
echo
echo "The same family at other sizes (latent 4 x size/8 x size/8), 1 rank, 1 thread, PyTorch on tcmalloc:"
printf '| %4s | %9s | %9s | %9s | %9s | %9s | %9s |\n' px "torch i/s" "f32 i/s" "f32 GF/s" "f32 ratio" "bf16 i/s" "bf16 ratio"
printf '| %4s | %9s | %9s | %9s | %9s | %9s | %9s |\n' --- --- --- --- --- --- ---
for size in 32 64 128; do
  echo "bench_kl: size $size" >&2
  if ((size == 64)); then
    t=$t1 f=${ips[1f32]} g=${gf[1f32]} b=${ips[1bf16]:-}
  else
    t=$(torch tcmalloc $size | field images_per_s)
    out=$(ours 1 f32 $size)
    f=$(ips_of 1 <<<"$out") g=$(field gflops <<<"$out")
    b=""
    ((bf16)) && b=$(ours 1 bf16 $size | ips_of 1)
  fi
  printf '| %4s | %9s | %9s | %9s | %9s | %9s | %9s |\n' "$size" "$t" "$f" "$g" "$(ratio "$f" "$t")" \
    "${b:-n/a}" "$([[ -n $b ]] && ratio "$b" "$t" || echo n/a)"
done
