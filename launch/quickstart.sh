#!/usr/bin/env bash
# Quickstart: set everything up, then train the Fashion-MNIST MLP VAE (configs/fashion_mlp.cfg)
# into runs/fashion_mlp/ (metrics.csv, samples_epochNNN.png, recon_epochNNN.png).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash launch/setup.sh
exec build/vae_dist --config configs/fashion_mlp.cfg "$@"
