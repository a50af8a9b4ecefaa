"""A vae_dist config's model (its encoder, decoder and latent-shape, e.g. configs/shapes64_kl.cfg) in plain
PyTorch 1.13 through vd_torch.py: the same layers, names and loss as the C++ trainer, for the training match
and the speed baseline.
  train: N steps on the config's HDF5 data (batch, lr, seed from the command line), printing the mean
         training loss of every window of --window steps:  FINAL mean_loss_last_window=<v>.  With --same-start
         it trains on the batches and noise of a one-rank vae_dist run of the same seed, and --init-weights F
         writes its initial parameters for vae_dist --init-weights F: both frameworks then start alike.
  bench: median images/s of the training step (forward, loss, backward, Adam) on data held in memory, one
         process or --ranks P under DistributedDataParallel (gloo on 127.0.0.1), with --threads per process
         and --channels-last if asked.
Run with Debian's /usr/bin/python3."""
import argparse
import configparser
import math
import os
import statistics
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import vd_rng
import vd_torch

INV255 = np.float32(1.0 / 255.0)


def read_config(path):
    text = "[vae]\n" + open(path).read()
    cp = configparser.ConfigParser(inline_comment_prefixes=None, interpolation=None)
    cp.read_string(text)
    return dict(cp["vae"])


class ConfigVAE(nn.Module):
    """encoder chain -> mu/logvar heads (3x3 convs, or 3 / 3x3x3 in 1-D / 3-D, for a spatial latent, fc for a flat one) -> z -> decoder."""

    def __init__(self, cfg, data_shape):
        super().__init__()
        self.encoder = vd_torch.Chain(cfg["encoder"], data_shape)
        h = self.encoder.out_shape
        if cfg.get("latent-shape"):
            self.latent = tuple(int(v) for v in cfg["latent-shape"].split("x"))
            conv = vd_torch.CONV[len(h) - 1]  # Conv1d, Conv2d or Conv3d, as the data
            self.mu = conv(h[0], self.latent[0], 3, padding=1)
            self.logvar = conv(h[0], self.latent[0], 3, padding=1)
        else:
            self.latent = (int(cfg.get("latent-dim", 20)),)
            self.mu = nn.Linear(math.prod(h), self.latent[0])
            self.logvar = nn.Linear(math.prod(h), self.latent[0])
        self.decoder = vd_torch.Chain(cfg["decoder"], self.latent, last_is_out=True)

    def forward(self, x, eps):
        h = self.encoder(x)
        if len(self.latent) == 1:
            h = torch.flatten(h, 1)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decoder(z), mu, logvar


def loss_of(model, x, eps):
    logits, mu, logvar = model(x, eps)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp())
    return (recon + kl) / x.shape[0]


def load_images(path, limit=None):
    with h5py.File(path, "r") as f:
        u8 = f["images"][:limit] if limit else f["images"][...]
    return torch.from_numpy(u8.astype(np.float32) * INV255)


def write_weights(model, path):
    """The parameters as /params/<name> float32 in PyTorch's layout, which vae_dist --init-weights reads; vae_dist
    names the heads encoder.mu and encoder.logvar."""
    with h5py.File(path, "w") as f:
        for name, p in model.state_dict().items():
            if name.startswith(("mu.", "logvar.")):
                name = "encoder." + name
            f["params/" + name] = p.detach().numpy().astype(np.float32)


def train(a, cfg):
    """--same-start (vae_dist's batches and noise; --init-weights writes the initial parameters for it) or the
    framework's own draws (torch's init, randperm order and randn noise)."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with h5py.File(cfg["data"], "r") as f:
        shape = f["images"].shape
    n, b = shape[0], a.batch_size
    model = ConfigVAE(cfg, tuple(shape[1:]))
    if a.init_weights:
        write_weights(model, a.init_weights)
    if a.steps == 0:  # only the initial parameters were asked for
        return
    x = load_images(cfg["data"])
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = (n + b - 1) // b

    def batches():  # (rows, eps) of each step
        if a.same_start:
            for epoch in range(1, a.steps // steps_per_epoch + 2):
                order = vd_rng.epoch_order(a.seed, epoch, n)
                noise = vd_rng.epoch_noise(a.seed, epoch)
                for st in range(steps_per_epoch):
                    rows = order[st * b:(st + 1) * b]
                    eps = noise.fill_normal(len(rows) * math.prod(model.latent))
                    yield torch.from_numpy(rows), torch.from_numpy(eps).reshape((len(rows),) + model.latent)
        else:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(a.seed))
            for step in range(a.steps):
                i = (step * b) % (n - b + 1)
                yield perm[i:i + b], torch.randn((b,) + model.latent)

    print(f"config_vae train: torch {torch.__version__} threads={torch.get_num_threads()} seed={a.seed} "
          f"params={sum(p.numel() for p in model.parameters())} steps={a.steps} batch={b} "
          f"start={'vae_dist batches and noise' if a.same_start else 'own draws'}", flush=True)
    losses = []
    t0 = time.perf_counter()
    for step, (rows, eps) in zip(range(a.steps), batches()):
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model, x[rows], eps)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if a.losses:
            print(f"step {step + 1} loss {losses[-1]:.6f}", file=a.losses)
        if (step + 1) % a.window == 0:
            w = losses[-a.window:]
            print(f"step {step + 1} mean_loss {sum(w) / len(w):.4f} ({(step + 1) * b / (time.perf_counter() - t0):.1f} img/s)",
                  flush=True)
    w = losses[-a.window:]
    print(f"FINAL mean_loss_last_window={sum(w) / len(w):.4f}")


def bench_worker(rank, a, cfg, shape, queue):
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(a.flush_denormal == "on")  # as vae_dist runs
    torch.manual_seed(1)
    model = ConfigVAE(cfg, shape)
    if a.ranks > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(a.port))
        torch.distributed.init_process_group("gloo", rank=rank, world_size=a.ranks)
        model = nn.parallel.DistributedDataParallel(model)
    # channels_last is torch's NHWC (4-D tensors), channels_last_3d its NDHWC; 1-D data has none.
    fmt = {3: torch.channels_last, 4: torch.channels_last_3d}[len(shape)] if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    inner = model.module if a.ranks > 1 else model
    x = torch.rand((a.batch_size,) + shape).contiguous(memory_format=fmt)
    eps = torch.randn((a.batch_size,) + inner.latent)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model, x, eps)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.repeats):
        if a.ranks > 1:
            torch.distributed.barrier()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        times.append((time.perf_counter() - t0) / a.steps)
    if queue is not None:
        queue.put((rank, times))
    return times


def bench(a, cfg):
    if a.shape:
        shape = tuple(int(v) for v in a.shape.split("x"))
        cfg = dict(cfg, **({"latent-shape": a.latent_shape} if a.latent_shape else {}))
    else:
        with h5py.File(cfg["data"], "r") as f:
            shape = tuple(f["images"].shape[1:])
    if a.ranks == 1:
        times = bench_worker(0, a, cfg, shape, None)
    else:
        ctx = torch.multiprocessing.get_context("spawn")
        q = ctx.Queue()
        procs = [ctx.Process(target=bench_worker, args=(r, a, cfg, shape, q)) for r in range(a.ranks)]
        for p in procs:
            p.start()
        results = dict(q.get() for _ in procs)
        for p in procs:
            p.join()
        times = [max(results[r][i] for r in results) for i in range(a.repeats)]  # the slowest rank
    step = statistics.median(times)
    print(f"config_vae bench: torch {torch.__version__} ranks={a.ranks} threads={a.threads} "
          f"channels_last={a.channels_last} batch={a.batch_size} per rank "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')} mkldnn={torch.backends.mkldnn.is_available()}")
    print(f"step_ms={1e3 * step:.2f} images_per_s={a.ranks * a.batch_size / step:.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=("train", "bench"))
    p.add_argument("--config", default="configs/shapes64_kl.cfg")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=200, help="train: steps; bench: timed steps per repetition")
    p.add_argument("--window", type=int, default=50, help="train: steps per reported mean")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ranks", type=int, default=1, help="bench: DDP processes")
    p.add_argument("--port", type=int, default=29533)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--flush-denormal", choices=("on", "off"), default="on",
                   help="bench: torch.set_flush_denormal (default on, as vae_dist)")
    p.add_argument("--shape", default="", help="bench: image shape CxHxW instead of the config's data")
    p.add_argument("--latent-shape", default="", help="bench: with --shape, the latent CxHxW")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--init-weights", default="", help="train: write the initial parameters to this HDF5 file")
    p.add_argument("--same-start", action="store_true",
                   help="train: the batches and noise of a one-rank vae_dist run of --seed (tests/reference/vd_rng.py)")
    p.add_argument("--losses", type=argparse.FileType("w"), help="train: write every step's loss to this file")
    a = p.parse_args()
    if a.channels_last and a.mode == "bench" and a.shape and len(a.shape.split("x")) == 2:
        p.error("--channels-last: 1-D data [N, C, L] has no channels-last memory format in torch")
    cfg = read_config(a.config)
    (train if a.mode == "train" else bench)(a, cfg)


if __name__ == "__main__":
    main()
