#!/usr/bin/env bash
# One-command setup on Debian bookworm: installs the Debian packages vae_dist needs, builds it
# into build/, and converts Fashion-MNIST (package dataset-fashion-mnist) into data/*.h5.
# Idempotent: a second run installs nothing, rebuilds only what changed, keeps the data.
#   bash launch/setup.sh [--with-reference] [--with-charts] [--with-python] [--with-cluster] [--with-fuzz]
#   (flags combine, in any order)
#     --with-reference  also PyTorch, OpenBLAS, jemalloc and tcmalloc for tests/reference and launch/bench.sh
#     --with-charts     also matplotlib, scikit-learn, scikit-image, h5py, numpy and PIL for
#                       launch/latent_plots.py and the Python references (tests/reference,
#                       tests/data/image_import_pil_test.py)
#     --with-python     also PyTorch, h5py, numpy and onnx for src/python/vae_dist, and Node.js with npm's
#                       onnxruntime-node (npm ci in tests/python/onnx) for its ONNX test
#     --with-cluster    also Slurm, munge and iproute2 for the cluster tests (ctest -L 'slurm|multi_host')
#     --with-fuzz       also clang, its sanitizer/libFuzzer runtime and OpenMP for launch/fuzz.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Debian's oneDNN is built with the OpenCL GPU runtime: its CMake config calls find_package(OpenCL),
# so the build needs ocl-icd-opencl-dev, which libdnnl-dev only recommends. procps: the tests use
# pgrep. launch/bare_root_check.sh proves this list on a bare bookworm.
packages=(g++ cmake make pkg-config openmpi-bin libopenmpi-dev libdnnl-dev ocl-icd-opencl-dev
          libhdf5-dev libboost-program-options-dev libgtest-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev libdeflate-dev
          dataset-fashion-mnist procps)
with_onnxruntime=0
for flag in "$@"; do
  case "$flag" in
    # jemalloc and tcmalloc: launch/bench.sh tries PyTorch on each allocator.
    --with-reference) packages+=(python3 python3-torch python3-h5py python3-numpy libopenblas0-openmp
                                 libjemalloc2 libtcmalloc-minimal4) ;;
    --with-charts) packages+=(python3 python3-matplotlib python3-sklearn python3-skimage python3-h5py
                              python3-numpy python3-pil) ;;
    # Node.js from Debian unless a node with npm is already there (e.g. NodeSource's, which
    # Debian's npm package would conflict with).
    --with-python) packages+=(python3 python3-torch python3-h5py python3-numpy python3-onnx)
                   with_onnxruntime=1
                   command -v npm >/dev/null || packages+=(nodejs npm) ;;
    # tests/slurm starts a single-node Slurm (slurmctld, slurmd, munged); the multi-host tests
    # make network-namespace hosts with ip.
    --with-cluster) packages+=(slurm-wlm munge iproute2) ;;
    --with-fuzz) packages+=(clang libclang-rt-14-dev libomp-14-dev) ;;
    *) echo "setup: unknown option '$flag' (use --with-reference, --with-charts, --with-python, --with-cluster, --with-fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# onnxruntime-node at the version tests/python/onnx/package-lock.json pins (its Linux x64 library
# ships inside the npm package); again only when the lock file changed.
ort=tests/python/onnx
if ((with_onnxruntime)); then
  if [[ ! -f $ort/node_modules/.package-lock.json || $ort/package-lock.json -nt $ort/node_modules/.package-lock.json ]]; then
    echo "setup: npm ci in $ort (onnxruntime-node)"
    (cd "$ort" && npm ci --no-audit --no-fund)
  else
    echo "setup: $ort/node_modules is up to date"
  fi
fi

echo "setup: building (Release) in build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

echo "setup: converting Fashion-MNIST into data/fashion-mnist/"
src=/usr/share/datasets/fashion-mnist
mkdir -p data/fashion-mnist
for split in train test; do
  idx=$split
  [[ $split == test ]] && idx=t10k
  out=data/fashion-mnist/$split.h5
  if [[ ! -f $out || $src/$idx-images-idx3-ubyte.gz -nt $out ]]; then
    build/vae_data import-idx --images "$src/$idx-images-idx3-ubyte.gz" \
      --labels "$src/$idx-labels-idx1-ubyte.gz" --out "$out"
  else
    echo "setup: $out is up to date"
  fi
done
echo "setup: done. Train with: build/vae_dist --config configs/fashion_mlp.cfg"
