"""Writes tests/reference/fixtures/conv_nd.h5: PyTorch 1.13's Conv1d, ConvTranspose1d, Conv3d, ConvTranspose3d
(and per-axis sizes, and 1-D and 3-D chains) for tests/nn/pytorch_conv_nd_test.cpp. Each case is a network in
vae_dist's layer syntax (conv, convt, relu only), its parameters under our names, an input x, an upstream gradient r,
and what PyTorch computes: y = net(x) and the gradients of sum(r * y) with respect to x and every parameter.
  /usr/bin/python3 tests/reference/conv_nd_pytorch.py [--out PATH]"""
import argparse
import os

import h5py
import numpy as np
import torch
from torch import nn

# (name, layers, one sample's shape C x L or C x D x H x W, batch)
CASES = [
    ("conv1d", "conv 8 k3 s2 p1", (4, 11), 2),
    ("conv1d_relu", "conv 16 k5 p2, relu", (3, 9), 3),
    ("convt1d", "convt 6 k4 s2 p1 op1", (5, 7), 2),
    ("conv3d", "conv 8 k3 s2 p1", (3, 5, 6, 7), 2),
    ("convt3d", "convt 4 k3 s2 p1 op1", (6, 3, 4, 3), 2),
    ("conv3d_per_axis", "conv 5 k3x1x2 s1x2x1 p1x0x1", (3, 4, 5, 6), 2),
    ("convt3d_per_axis", "convt 4 k2x3x3 s2x1x2 p0x1x1 op1x0x1", (3, 3, 4, 3), 2),
    ("conv2d_per_axis", "conv 6 k5x3 s2x1 p2x1", (3, 9, 8), 2),
    ("chain1d", "conv 16 k3 p1, relu, conv 32 k4 s2 p1, relu, convt 16 k4 s2 p1, relu, conv 4 k3 p1",
     (4, 16), 2),
    ("chain3d", "conv 16 k3 p1, relu, conv 16 k3 s2 p1, relu, convt 8 k4 s2 p1, relu, conv 2 k3 p1",
     (3, 6, 6, 6), 2),
]
PREFIX = "net"


def sizes(word, rank):
    """'3' -> (3, 3, 3) on 3-D data; '3x1x2' -> (3, 1, 2)."""
    v = tuple(int(p) for p in word.split("x"))
    return v * rank if len(v) == 1 else v


class Chain(nn.Module):
    """conv / convt / relu in the layer syntax, named as vae_dist's builder names them: <keyword><count>."""

    def __init__(self, text, in_shape):
        super().__init__()
        rank = len(in_shape) - 1
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[rank]
        convt = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[rank]
        self.steps = []
        counts = {}
        cin = in_shape[0]
        for item in text.split(","):
            words = item.split()
            if words[0] == "relu":
                self.steps.append(torch.relu)
                continue
            s = {"k": (1,) * rank, "s": (1,) * rank, "p": (0,) * rank, "op": (0,) * rank}
            for w in words[2:]:
                key = "op" if w.startswith("op") else w[0]
                s[key] = sizes(w[len(key):], rank)
            cout = int(words[1])
            if words[0] == "conv":
                m = conv(cin, cout, s["k"], s["s"], s["p"])
            else:
                m = convt(cin, cout, s["k"], s["s"], s["p"], output_padding=s["op"])
            counts[words[0]] = counts.get(words[0], 0) + 1
            name = f"{words[0]}{counts[words[0]]}"
            self.add_module(name, m)  # PyTorch's default init
            self.steps.append(m)
            cin = cout

    def forward(self, x):
        for f in self.steps:
            x = f(x)
        return x


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "fixtures", "conv_nd.h5"))
    args = ap.parse_args()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    with h5py.File(args.out, "w") as f:
        f.attrs["torch"] = str(torch.__version__)
        for name, layers, shape, batch in CASES:
            net = Chain(layers, shape)
            x = torch.from_numpy(rng.uniform(-1, 1, (batch,) + shape).astype(np.float32)).requires_grad_()
            y = net(x)
            r = torch.from_numpy(rng.uniform(-1, 1, tuple(y.shape)).astype(np.float32))
            (r * y).sum().backward()
            g = f.create_group(name)
            g.attrs["layers"] = layers
            g.attrs["shape"] = "x".join(str(v) for v in shape)  # as vd::parse_shape_text reads it
            g.attrs["batch"] = batch
            for key, t in (("x", x), ("r", r), ("y", y), ("diff_x", x.grad)):
                g[key] = t.detach().numpy()
            for path, p in net.named_parameters():
                g[f"params/{PREFIX}.{path}"] = p.detach().numpy()
                g[f"grads/{PREFIX}.{path}"] = p.grad.numpy()
            print(f"{name}: {layers} on {shape} -> {tuple(y.shape[1:])}, "
                  f"{sum(p.numel() for p in net.parameters())} parameters")


if __name__ == "__main__":
    main()
