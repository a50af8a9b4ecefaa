#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan into build-fuzz and runs
# each for SECONDS (default 30) from its seed corpus; fails on any finding.
#   bash launch/fuzz.sh [SECONDS] [--ci]
# --ci (what CI runs) makes the run reproducible: libFuzzer's seed 1, a fresh scratch corpus, and
# a fixed number of inputs per target (the table below), with SECONDS as a cap. The same inputs
# are then tried on every machine (a slower one, cut by the cap, tries a prefix of them), so CI
# cannot fail by luck on damaged input that a library chokes on, and a finding reproduces.
# Without --ci every run tries new inputs for SECONDS.
# Needs clang, libclang-rt-14-dev and libomp-14-dev (bash launch/setup.sh --with-fuzz). Crash
# inputs are kept in build-fuzz/findings/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=30 ci=0
while (($#)); do
  case $1 in
    --ci) ci=1; shift ;;
    [0-9]*) seconds=$1; shift ;;
    *) echo "fuzz: unknown argument '$1' (usage: bash launch/fuzz.sh [SECONDS] [--ci])" >&2; exit 2 ;;
  esac
done
# Inputs per target under --ci: 30 to 45 s each on a busy 2-core EPYC (HDF5 targets write and
# open a file per input, so they run far fewer per second).
declare -A ci_runs=([idx]=600 [npy]=3000 [image]=50000 [h5_dataset]=3000 [checkpoint]=4000 [options]=15000)
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVD_FUZZ=ON -DVD_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j2 --target fuzz_idx fuzz_npy fuzz_image fuzz_h5_dataset fuzz_checkpoint fuzz_options
status=0
for t in idx npy image h5_dataset checkpoint options; do
  work="build-fuzz/corpus/$t" findings="build-fuzz/findings/$t"
  # Under --ci each run starts from the seeds alone, so the sequence is the same every time.
  limits=(-max_total_time="$seconds")
  ((ci == 0)) || { rm -rf "$work" "$findings"; limits+=(-seed=1 -runs="${ci_runs[$t]}"); }
  mkdir -p "$work" "$findings"
  log="build-fuzz/fuzz_$t.log"
  # New inputs go to the scratch corpus; the seeds in tests/ are read only.
  # A corrupt size field makes HDF5 ask malloc for gigabytes or terabytes (an object header of
  # 20 GB, found by fuzz_h5_dataset): ASan would abort or touch its shadow memory, where the
  # real malloc fails or only reserves address space. So allocations above 1 GB fail (NULL),
  # and HDF5 reports an error, as on a machine without overcommit.
  asan=detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=1024
  local_start=$EPOCHREALTIME
  if ASAN_OPTIONS=$asan build-fuzz/tests/fuzz/fuzz_"$t" "${limits[@]}" \
      -max_len=65536 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$findings/" \
      -print_final_stats=1 "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    result=ok
  else
    result=FINDING status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(awk -v a="$local_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  echo "fuzz_$t: ${execs:-?} executions in $took s$( ((ci)) && echo " (--ci: ${ci_runs[$t]} inputs, seed 1)"): $result"
  if [[ $result != ok ]]; then
    grep -m1 -E "ERROR: |runtime error|deadly signal" "$log" || true
    ls "$findings"
  fi
done
exit "$status"
