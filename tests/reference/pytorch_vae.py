"""PyTorch reference VAEs and their trainer: the MLP VAE of PyTorch's examples/vae (written independently),
the conventional conv VAE (--model conv), and conditional versions of both (--conditional).
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


class GaussianVAE(nn.Module):
    """What both models share: x -> encode -> (mu, logvar) -> z = mu + exp(logvar/2) * eps -> decode."""

    def forward(self, x, generator=None, c=None):
        mu, logvar = self.encode(x, c)
        eps = torch.randn(mu.shape, dtype=mu.dtype, generator=generator)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z, c), mu, logvar


class VAE(GaussianVAE):
    """fc1 D->H ReLU, fc21/fc22 H->L (mu, logvar), fc3 L->H ReLU, fc4 H->D (logits).
    With classes=K > 0 (conditional VAE) the one-hot label c [N, K] is appended to the inputs of fc1 and fc3:
    fc1 takes [x, c] (D+K) and fc3 takes [z, c] (L+K). classes=0 is the plain MLP VAE, unchanged."""

    name = "mlp"

    def __init__(self, input_dim=784, hidden=400, latent=20, classes=0):
        super().__init__()
        self.classes = classes
        self.fc1 = nn.Linear(input_dim + classes, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent + classes, hidden)
        self.fc4 = nn.Linear(hidden, input_dim)

    def encode(self, x, c=None):
        if c is not None:
            x = torch.cat([x, c], 1)
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z, c=None):
        if c is not None:
            z = torch.cat([z, c], 1)
        return self.fc4(F.relu(self.fc3(z)))  # logits


    def sizes(self):
        return f"{self.fc4.out_features}-{self.fc1.out_features}-{self.fc21.out_features}"


class ConvVAE(GaussianVAE):
    """The conventional conv VAE for 1x28x28 images (input and logits [N, C, H, W], H and W multiples of 4):
    encoder conv1 C->32 k4 s2 p1, ReLU, conv2 32->64 k4 s2 p1, ReLU, flatten (C,H,W order: 64*H/4*W/4 = 3136),
    fc1 3136->256, ReLU, fc21/fc22 256->L (mu, logvar);
    decoder fc3 L->256, ReLU, fc4 256->3136, ReLU, reshape 64 x H/4 x W/4, deconv1 64->32 k4 s2 p1, ReLU,
    deconv2 32->C k4 s2 p1 (logits). PyTorch default inits.
    With classes=K > 0 the one-hot label c [N, K] is appended to the inputs of the first Linear layer of the
    encoder (fc1 takes [flattened conv features, c]) and of the decoder (fc3 takes [z, c])."""

    name = "conv"

    def __init__(self, image_shape=(1, 28, 28), hidden=256, latent=20, classes=0, channels=(32, 64)):
        super().__init__()
        ch, h, w = image_shape
        if h % 4 or w % 4:
            raise ValueError(f"conv VAE needs H and W divisible by 4, got {h}x{w}")
        c1, c2 = channels
        self.image_shape = tuple(image_shape)
        self.feat_shape = (c2, h // 4, w // 4)
        feat = c2 * (h // 4) * (w // 4)
        self.classes = classes
        self.conv1 = nn.Conv2d(ch, c1, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 4, stride=2, padding=1)
        self.fc1 = nn.Linear(feat + classes, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent + classes, hidden)
        self.fc4 = nn.Linear(hidden, feat)
        self.deconv1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(c1, ch, 4, stride=2, padding=1)

    def encode(self, x, c=None):
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        h = torch.flatten(h, 1)  # C,H,W order
        if c is not None:
            h = torch.cat([h, c], 1)
        h = F.relu(self.fc1(h))
        return self.fc21(h), self.fc22(h)

    def decode(self, z, c=None):
        if c is not None:
            z = torch.cat([z, c], 1)
        h = F.relu(self.fc4(F.relu(self.fc3(z))))
        h = h.view(h.shape[0], *self.feat_shape)
        return self.deconv2(F.relu(self.deconv1(h)))  # logits [N, C, H, W]


    def sizes(self):
        ch, h, w = self.image_shape
        return (f"{ch}x{h}x{w}-c{self.conv1.out_channels}-c{self.conv2.out_channels}-"
                f"{self.fc1.out_features}-{self.fc21.out_features}")


MODELS = ("mlp", "conv")
DEFAULT_HIDDEN = {"mlp": 400, "conv": 256}


def build_model(model, image_shape, hidden=None, latent=20, classes=0):
    """The reference model by name; image_shape = (C, H, W) of one image; hidden=None takes the model's default."""
    if hidden is None:
        hidden = DEFAULT_HIDDEN[model]
    if model == "mlp":
        return VAE(int(np.prod(image_shape)), hidden, latent, classes)
    if model == "conv":
        return ConvVAE(image_shape, hidden, latent, classes)
    raise ValueError(f"unknown model {model!r} (choose from {', '.join(MODELS)})")


def model_name(model):
    """mlp, conv, mlp-conditional or conv-conditional."""
    return model.name + ("-conditional" if model.classes else "")


def model_header(model):
    """Header fields naming the model: model=<name> classes=<K> sizes=<...> params=<count> mkldnn=<bool>."""
    nparams = sum(p.numel() for p in model.parameters())
    return (f"model={model_name(model)} classes={model.classes} sizes={model.sizes()} params={nparams} "
            f"mkldnn={torch.backends.mkldnn.is_available()}")


def one_hot(labels, classes):
    """float32 one-hot [N, classes] of integer labels (any integer dtype)."""
    return F.one_hot(labels.long(), classes).to(torch.float32)


def vae_terms(logits, x, mu, logvar):
    """Batch sums (nats) of the reconstruction term and of the KL term."""
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp())
    return recon, kl


def vae_loss(logits, x, mu, logvar, beta=1.0):
    """Mean over the batch of per-sample (recon + beta*KL); also returns the batch sums."""
    recon, kl = vae_terms(logits, x, mu, logvar)
    return (recon + beta * kl) / x.shape[0], recon, kl


def load_h5(path, flat=True):
    """Images as float32 = uint8 * float32(1/255) (same operation as the C++ side), labels uint8.
    flat=True gives [N, 784]; flat=False keeps the file's [N, C, H, W] (the conv model's input)."""
    with h5py.File(path, "r") as f:
        u8 = f["images"][...]
        labels = f["labels"][...]
    if u8.dtype != np.uint8:
        raise ValueError(f"{path}: /images must be uint8, got {u8.dtype}")
    if not flat and u8.ndim != 4:
        raise ValueError(f"{path}: /images must be [N, C, H, W] for an image model, got shape {u8.shape}")
    x = u8.reshape(u8.shape[0], -1).astype(np.float32) * INV255
    if not flat:
        x = x.reshape(u8.shape)
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


def train_step(model, opt, xb, beta=1.0, cb=None):
    """One full training step as in a training loop: forward, loss, backward, Adam step.
    cb: the batch's one-hot labels [N, K] for a conditional model, None otherwise."""
    opt.zero_grad(set_to_none=True)
    logits, mu, logvar = model(xb) if cb is None else model(xb, c=cb)
    loss, recon, kl = vae_loss(logits, xb, mu, logvar, beta)
    loss.backward()
    opt.step()
    return loss, recon, kl


@torch.no_grad()
def evaluate(model, x, batch_size, beta, generator, c=None):
    model.eval()
    tot = rec = kls = 0.0
    t0 = time.perf_counter()
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        logits, mu, logvar = model(xb, generator, None if c is None else c[i:i + batch_size])
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
    p.add_argument("--model", choices=MODELS, default="mlp", help="mlp (784-400-20) or conv (the conv VAE)")
    p.add_argument("--conditional", action="store_true",
                   help="conditional VAE: one-hot /labels (K = largest training label + 1) appended to the input "
                        "of the first Linear layer of the encoder and of the decoder")
    p.add_argument("--train", default="data/fashion-mnist/train.h5", help="training HDF5 (/images uint8 [N,1,28,28])")
    p.add_argument("--test", default="data/fashion-mnist/test.h5", help="test HDF5")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden", type=int, default=None, help="hidden fc width (default: 400 mlp, 256 conv)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--out", default=None, help="CSV output path (columns: %s)" % ",".join(CSV_COLUMNS))
    p.add_argument("--max-steps", type=int, default=0, help="stop training after this many steps (0 = no limit)")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    flat = a.model == "mlp"
    xtr, ytr = load_h5(a.train, flat)
    xte, yte = load_h5(a.test, flat)
    n = xtr.shape[0]
    classes = 0
    ctr = cte = None
    if a.conditional:
        classes = int(ytr.max()) + 1
        if int(yte.max()) >= classes:
            raise ValueError(f"{a.test}: label {int(yte.max())} is outside 0..{classes - 1} of the training labels")
        ctr, cte = one_hot(ytr, classes), one_hot(yte, classes)

    model = build_model(a.model, tuple(xtr.shape[1:]) if not flat else (xtr.shape[1],), a.hidden, a.latent_dim,
                        classes)
    hidden = model.fc1.out_features
    opt = make_optimizer(model, a.lr)
    shuffle_gen = torch.Generator().manual_seed(a.seed)          # epoch permutations
    eval_gen = torch.Generator().manual_seed(a.seed + 1_000_003)  # eval eps, independent of training stream
    print(f"pytorch_vae: torch {torch.__version__} threads={torch.get_num_threads()} seed={a.seed} "
          f"train={n} test={xte.shape[0]} batch={a.batch_size} lr={a.lr} beta={a.beta} "
          f"hidden={hidden} latent={a.latent_dim} blas={blas_library()} {model_header(model)}", flush=True)

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
            idx = perm[i:i + a.batch_size]
            xb = xtr[idx]
            _, recon, kl = train_step(model, opt, xb, a.beta, None if ctr is None else ctr[idx])
            s_rec += recon.item()
            s_kl += kl.item()
            seen += xb.shape[0]
            step += 1
            if a.max_steps and step >= a.max_steps:
                break
        dt = time.perf_counter() - t0
        emit(["train", epoch, step, seen, (s_rec + a.beta * s_kl) / seen, s_rec / seen, s_kl / seen, a.lr, seen / dt])
        tl, tr, tk, ips = evaluate(model, xte, a.eval_batch_size, a.beta, eval_gen, cte)
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
