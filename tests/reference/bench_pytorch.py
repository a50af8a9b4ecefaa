"""Single-process PyTorch training-step throughput for the reference VAE (forward, loss, backward, Adam step).
Data are held in memory as pre-built batches, so data loading is outside the timed region."""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from pytorch_vae import INV255, VAE, blas_library, make_optimizer, train_step


def make_batches(nbatches, batch_size, dim, seed, data=None):
    """Pre-built float32 batches: random uint8 pixels (or the first images of an HDF5 file) times float32(1/255)."""
    n = nbatches * batch_size
    if data:
        import h5py
        with h5py.File(data, "r") as f:
            u8 = f["images"][:n].reshape(-1, dim)
        reps = -(-n // u8.shape[0])
        u8 = np.concatenate([u8] * reps)[:n]
    else:
        u8 = np.random.default_rng(seed).integers(0, 256, size=(n, dim), dtype=np.uint8)
    x = torch.from_numpy(u8.astype(np.float32) * INV255)
    return [x[i * batch_size:(i + 1) * batch_size].contiguous() for i in range(nbatches)]


def add_common_args(p):
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--input-dim", type=int, default=784)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=30, help="untimed steps before the first repetition")
    p.add_argument("--steps", type=int, default=200, help="timed steps per repetition")
    p.add_argument("--reps", type=int, default=5, help="repetitions; the median is reported")
    p.add_argument("--nbatches", type=int, default=16, help="distinct in-memory batches cycled through")
    p.add_argument("--data", default=None, help="optional HDF5 file to take images from (default: synthetic)")
    p.add_argument("--seed", type=int, default=1)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    add_common_args(p)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    batches = make_batches(a.nbatches, a.batch_size, a.input_dim, a.seed, a.data)
    model = VAE(a.input_dim, a.hidden, a.latent_dim)
    opt = make_optimizer(model, a.lr)

    k = 0
    for _ in range(a.warmup):
        train_step(model, opt, batches[k % a.nbatches])
        k += 1
    rep_ips, rep_ms = [], []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            train_step(model, opt, batches[k % a.nbatches])
            k += 1
        dt = time.perf_counter() - t0
        rep_ips.append(a.steps * a.batch_size / dt)
        rep_ms.append(dt / a.steps * 1e3)
    print(f"bench_pytorch: torch {torch.__version__} threads={torch.get_num_threads()} batch={a.batch_size} "
          f"model={a.input_dim}-{a.hidden}-{a.latent_dim} warmup={a.warmup} steps={a.steps} reps={a.reps} "
          f"data={'synthetic' if not a.data else a.data} blas={blas_library()} "
              f"loadavg_1min_end={os.getloadavg()[0]:.2f}")
    print("reps images_per_s: " + " ".join(f"{v:.1f}" for v in rep_ips))
    print(f"ms_per_step_median={statistics.median(rep_ms):.4f} ms_per_step_min={min(rep_ms):.4f}")
    print(f"images_per_s={statistics.median(rep_ips):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
