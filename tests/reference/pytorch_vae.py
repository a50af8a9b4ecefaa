"""PyTorch reference VAE (the model of PyTorch's examples/vae, written independently) and its trainer.
Produces the per-epoch train/test loss CSV that the C++ vae_dist trainer is compared against."""
import argparse
import csv
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

INV255 = np.float32(1.0 / 255.0)
CSV_COLUMNS = ["split", "epoch", "step", "samples", "loss", "recon", "kl", "lr", "images_per_s"]


class VAE(nn.Module):
    """fc1 D->H ReLU, fc21/fc22 H->L (mu, logvar), fc3 L->H ReLU, fc4 H->D (logits)."""

    def __init__(self, input_dim=784, hidden=400, latent=20):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, input_dim)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))  # logits

    def forward(self, x, generator=None):
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, dtype=mu.dtype, generator=generator)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar


def vae_terms(logits, x, mu, logvar):
    """Batch sums (nats) of the reconstruction term and of the KL term."""
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp())
    return recon, kl


def vae_loss(logits, x, mu, logvar, beta=1.0):
    """Mean over the batch of per-sample (recon + beta*KL); also returns the batch sums."""
    recon, kl = vae_terms(logits, x, mu, logvar)
    return (recon + beta * kl) / x.shape[0], recon, kl


def load_h5(path):
    """Images as float32 [N, 784] = uint8 * float32(1/255) (same operation as the C++ side), labels uint8."""
    with h5py.File(path, "r") as f:
        u8 = f["images"][...]
        labels = f["labels"][...]
    if u8.dtype != np.uint8:
        raise ValueError(f"{path}: /images must be uint8, got {u8.dtype}")
    x = u8.reshape(u8.shape[0], -1).astype(np.float32) * INV255
    return torch.from_numpy(x), torch.from_numpy(labels)


def blas_library():
    """Path of the BLAS shared object this process has loaded (torch on Debian uses the system libblas.so.3)."""
    torch.ones(8, 8) @ torch.ones(8, 8)
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({l.split()[-1] for l in f if "blas" in l.split()[-1].rsplit("/", 1)[-1]})
    except OSError:
        return "unknown"
    return ",".join(libs) if libs else "none"


def make_optimizer(model, lr):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)


def train_step(model, opt, xb, beta=1.0):
    """One full training step as in a training loop: forward, loss, backward, Adam step."""
    opt.zero_grad(set_to_none=True)
    logits, mu, logvar = model(xb)
    loss, recon, kl = vae_loss(logits, xb, mu, logvar, beta)
    loss.backward()
    opt.step()
    return loss, recon, kl


@torch.no_grad()
def evaluate(model, x, batch_size, beta, generator):
    model.eval()
    tot = rec = kls = 0.0
    t0 = time.perf_counter()
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        logits, mu, logvar = model(xb, generator)
        r, k = vae_terms(logits, xb, mu, logvar)
        rec += r.item()
        kls += k.item()
    dt = time.perf_counter() - t0
    model.train()
    n = x.shape[0]
    tot = rec + beta * kls
    return tot / n, rec / n, kls / n, n / dt


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--train", default="data/fashion-mnist/train.h5", help="training HDF5 (/images uint8 [N,1,28,28])")
    p.add_argument("--test", default="data/fashion-mnist/test.h5", help="test HDF5")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--out", default=None, help="CSV output path (columns: %s)" % ",".join(CSV_COLUMNS))
    p.add_argument("--max-steps", type=int, default=0, help="stop training after this many steps (0 = no limit)")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, _ = load_h5(a.train)
    xte, _ = load_h5(a.test)
    n = xtr.shape[0]

    model = VAE(xtr.shape[1], a.hidden, a.latent_dim)
    opt = make_optimizer(model, a.lr)
    shuffle_gen = torch.Generator().manual_seed(a.seed)          # epoch permutations
    eval_gen = torch.Generator().manual_seed(a.seed + 1_000_003)  # eval eps, independent of training stream
    print(f"pytorch_vae: torch {torch.__version__} threads={torch.get_num_threads()} seed={a.seed} "
          f"train={n} test={xte.shape[0]} batch={a.batch_size} lr={a.lr} beta={a.beta} "
          f"hidden={a.hidden} latent={a.latent_dim} blas={blas_library()}", flush=True)

    rows = []
    fcsv = open(a.out, "w", newline="") if a.out else None
    writer = csv.writer(fcsv) if fcsv else None
    if writer:
        writer.writerow(CSV_COLUMNS)

    def emit(row):
        rows.append(row)
        print("  ".join(f"{k}={v:.6f}" if isinstance(v, float) else f"{k}={v}" for k, v in zip(CSV_COLUMNS, row)),
              flush=True)
        if writer:
            writer.writerow([f"{v:.9g}" if isinstance(v, float) else v for v in row])
            fcsv.flush()

    step = 0
    test_loss = float("nan")
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(n, generator=shuffle_gen)
        seen = 0
        s_rec = s_kl = 0.0
        t0 = time.perf_counter()
        for i in range(0, n, a.batch_size):  # last partial batch kept
            xb = xtr[perm[i:i + a.batch_size]]
            _, recon, kl = train_step(model, opt, xb, a.beta)
            s_rec += recon.item()
            s_kl += kl.item()
            seen += xb.shape[0]
            step += 1
            if a.max_steps and step >= a.max_steps:
                break
        dt = time.perf_counter() - t0
        emit(["train", epoch, step, seen, (s_rec + a.beta * s_kl) / seen, s_rec / seen, s_kl / seen, a.lr, seen / dt])
        tl, tr, tk, ips = evaluate(model, xte, a.eval_batch_size, a.beta, eval_gen)
        test_loss = tl
        emit(["test", epoch, step, xte.shape[0], tl, tr, tk, a.lr, ips])
        print(f"epoch {epoch} train_time_s={dt:.3f}", flush=True)
        if a.max_steps and step >= a.max_steps:
            break
    if fcsv:
        fcsv.close()
    print(f"FINAL test_loss={test_loss:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
