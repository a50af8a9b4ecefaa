#!/usr/bin/env bash
# Regenerates the latent-space figures of docs/latent.md in launch/figures/: trains an MLP VAE with a
# 2-D latent (5 epochs) and the 20-D model of configs/fashion_mlp.cfg (10 epochs) on
# Fashion-MNIST, then draws them with build/vae_latent (image grids) and launch/latent_plots.py
# (charts). Needs a build, the data and the chart packages: bash launch/setup.sh --with-charts.
#   bash launch/figures/make_figures.sh      (about 2 minutes on 2 cores; runs in runs/figures)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
runs=runs/figures
fig=launch/figures
# Debian's python3, where setup installs the chart packages, unless PYTHON says otherwise.
py=${PYTHON:-$([[ -x /usr/bin/python3 ]] && echo /usr/bin/python3 || echo python3)}
names="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
latest() { ls "$1"/checkpoint_step*.h5 | tail -n 1; }

build/vae_dist --config configs/fashion_mlp.cfg --latent-dim 2 --epochs 5 --out $runs/mlp2 \
  --progress false --iw-samples 0 --checkpoint-every 0 | grep -E "test loss|^done"
build/vae_dist --config configs/fashion_mlp.cfg --out $runs/mlp20 \
  --progress false --iw-samples 0 --checkpoint-every 0 | grep -E "test loss|^done"
c2=$(latest $runs/mlp2)
c20=$(latest $runs/mlp20)

# The 2-D model: its manifold and its latent codes as they are.
build/vae_latent manifold --checkpoint "$c2" --out $fig/manifold_2d.png --size 20
build/vae_latent encode --checkpoint "$c2" --out $runs/mlp2/test_latent.h5
"$py" launch/latent_plots.py scatter --latent $runs/mlp2/test_latent.h5 --method raw \
  --class-names "$names" --title "2-D latent, test set (mu)" --out $fig/scatter_2d.png

# The 20-D model: t-SNE and PCA of its codes, and the pictures.
build/vae_latent encode --checkpoint "$c20" --out $runs/mlp20/test_latent.h5
"$py" launch/latent_plots.py scatter --latent $runs/mlp20/test_latent.h5 --method tsne \
  --max-points 3000 --class-names "$names" --title "20-D latent, t-SNE (3000 test images)" \
  --out $fig/tsne_20d.png
"$py" launch/latent_plots.py scatter --latent $runs/mlp20/test_latent.h5 --method pca \
  --max-points 3000 --class-names "$names" --title "20-D latent, PCA (3000 test images)" \
  --out $fig/pca_20d.png
"$py" launch/latent_plots.py curves --metrics $runs/mlp20/metrics.csv --out $fig/curves.png
build/vae_latent interpolate --checkpoint "$c20" --out $fig/interpolate.png --pairs 6 --steps 10
build/vae_latent arithmetic --checkpoint "$c20" --out $runs/mlp20/arithmetic --from 7 --to 9 \
  --count 8 --steps 8
cp $runs/mlp20/arithmetic/class_samples.png $fig/class_samples.png
cp $runs/mlp20/arithmetic/transfer.png $fig/transfer.png
build/vae_latent similar --checkpoint "$c20" --out $fig/similar.png --index 0,1,2,3 --count 8
build/vae_latent sample --checkpoint "$c20" --out $fig/sample_t07.png --temperature 0.7
du -ch $fig/*.png | tail -n 1
