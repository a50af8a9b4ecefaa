"""Single-process PyTorch training-step throughput for the reference VAE (forward, loss, backward, Adam step);
--model mlp|conv and --conditional select the model as in pytorch_vae.py.
Data are held in memory as pre-built batches, so data loading is outside the timed region."""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from pytorch_vae import DEFAULT_HIDDEN, INV255, MODELS, blas_library, build_model, make_optimizer, model_header, \
    one_hot, train_step


def make_batches(nbatches, batch_size, dim, seed, data=None, shape=None):
    """Pre-built float32 batches: random uint8 pixels (or the first images of an HDF5 file) times float32(1/255).
    Each batch is [batch_size, dim], or [batch_size, *shape] when shape (C, H, W) is given (conv model)."""
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
    if shape is not None:
        x = x.reshape(n, *shape)
    return [x[i * batch_size:(i + 1) * batch_size].contiguous() for i in range(nbatches)]


def make_label_batches(nbatches, batch_size, classes, seed, data=None):
    """Pre-built one-hot float32 label batches [batch_size, classes] for a conditional model: the labels of the
    same images make_batches takes from the HDF5 file, or uniform random labels (own generator) for synthetic data."""
    n = nbatches * batch_size
    if data:
        import h5py
        with h5py.File(data, "r") as f:
            lab = f["labels"][:n]
        reps = -(-n // lab.shape[0])
        lab = np.concatenate([lab] * reps)[:n]
    else:
        lab = np.random.default_rng([seed, 1]).integers(0, classes, size=n)
    c = one_hot(torch.from_numpy(lab.astype(np.int64)), classes)
    return [c[i * batch_size:(i + 1) * batch_size].contiguous() for i in range(nbatches)]


def image_shape(a):
    """(C, H, W) of one image for the conv model: the HDF5 file's, or 1 x s x s with s*s = --input-dim."""
    if a.data:
        import h5py
        with h5py.File(a.data, "r") as f:
            shape = tuple(int(v) for v in f["images"].shape[1:])
        if len(shape) != 3:
            raise ValueError(f"{a.data}: /images must be [N, C, H, W] for the conv model, got {shape}")
        if int(np.prod(shape)) != a.input_dim:
            raise ValueError(f"{a.data}: images are {shape}, not --input-dim {a.input_dim}")
        return shape
    s = int(round(a.input_dim ** 0.5))
    if s * s != a.input_dim:
        raise ValueError(f"--model conv on synthetic data needs a square --input-dim, got {a.input_dim}")
    return (1, s, s)


def num_classes(a):
    """K of the conditional model: --classes, else the largest label of --data + 1, else 10 (0 = unconditional)."""
    if not a.conditional:
        return 0
    if a.classes:
        return a.classes
    if a.data:
        import h5py
        with h5py.File(a.data, "r") as f:
            return int(f["labels"][...].max()) + 1
    return 10


def setup(a, seed):
    """Model (built after torch.manual_seed(a.seed)), image batches and one-hot label batches (None if unconditional),
    in the memory format and floating-point mode the arguments ask for."""
    # Denormals cost ~100 cycles an operation; training on these data drives Adam's second moments there.
    # vae_dist flushes them, and so does PyTorch at its best (this thread: one intra-op thread per rank).
    torch.set_flush_denormal(a.flush_denormal == "on")
    shape = image_shape(a) if a.model == "conv" else None
    classes = num_classes(a)
    batches = make_batches(a.nbatches, a.batch_size, a.input_dim, seed, a.data, shape)
    cbatches = make_label_batches(a.nbatches, a.batch_size, classes, seed, a.data) if classes else None
    model = build_model(a.model, shape or (a.input_dim,), a.hidden, a.latent_dim, classes)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    return model, batches, cbatches


def allocator():
    """The malloc this process runs on: jemalloc or tcmalloc when LD_PRELOAD put one in, else glibc."""
    try:
        with open("/proc/self/maps") as f:
            names = {l.split()[-1].rsplit("/", 1)[-1] for l in f if "/" in l}
    except OSError:
        return "unknown"
    for lib in ("jemalloc", "tcmalloc"):
        if any(n.startswith("lib" + lib) for n in names):
            return lib
    return "glibc"


def describe(model, a):
    """Header fields shared by bench_pytorch.py and ddp_pytorch.py."""
    return (f"{model_header(model)} warmup={a.warmup} steps={a.steps} reps={a.reps} "
            f"data={'synthetic' if not a.data else a.data} blas={blas_library()} malloc={allocator()} "
            f"flush_denormal={a.flush_denormal} channels_last={int(a.channels_last)}")


def add_common_args(p):
    p.add_argument("--model", choices=MODELS, default="mlp", help="mlp (784-400-20) or conv (the conv VAE)")
    p.add_argument("--conditional", action="store_true",
                   help="conditional VAE: one-hot labels appended to the first Linear layer of encoder and decoder")
    p.add_argument("--classes", type=int, default=0,
                   help="classes K of --conditional (0 = largest /labels value of --data + 1, or 10 on synthetic data)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=None,
                   help="hidden fc width (default: %s)" % ", ".join(f"{v} {k}" for k, v in DEFAULT_HIDDEN.items()))
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--input-dim", type=int, default=784)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=30, help="untimed steps before the first repetition")
    p.add_argument("--steps", type=int, default=200, help="timed steps per repetition")
    p.add_argument("--reps", type=int, default=5, help="repetitions; the median is reported")
    p.add_argument("--nbatches", type=int, default=16, help="distinct in-memory batches cycled through")
    p.add_argument("--data", default=None, help="optional HDF5 file to take images from (default: synthetic)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--flush-denormal", choices=("on", "off"), default="on",
                   help="torch.set_flush_denormal (default on, as vae_dist)")
    p.add_argument("--channels-last", action="store_true",
                   help="conv model: parameters and batches in torch.channels_last (NHWC)")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    add_common_args(p)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model, batches, cbatches = setup(a, a.seed)
    opt = make_optimizer(model, a.lr)

    def labels(k):
        return None if cbatches is None else cbatches[k % a.nbatches]

    k = 0
    for _ in range(a.warmup):
        train_step(model, opt, batches[k % a.nbatches], cb=labels(k))
        k += 1
    rep_ips, rep_ms = [], []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            train_step(model, opt, batches[k % a.nbatches], cb=labels(k))
            k += 1
        dt = time.perf_counter() - t0
        rep_ips.append(a.steps * a.batch_size / dt)
        rep_ms.append(dt / a.steps * 1e3)
    print(f"bench_pytorch: torch {torch.__version__} threads={torch.get_num_threads()} batch={a.batch_size} "
          f"{describe(model, a)} loadavg_1min_end={os.getloadavg()[0]:.2f}")
    print("reps images_per_s: " + " ".join(f"{v:.1f}" for v in rep_ips))
    print(f"ms_per_step_median={statistics.median(rep_ms):.4f} ms_per_step_min={min(rep_ms):.4f}")
    print(f"images_per_s={statistics.median(rep_ips):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
