"""Writes tests/reference/fixtures/blocks.h5: for each case (blocks, chains, and convolutions of 1-D, 2-D and
3-D data), a network in vae_dist's layer syntax built in plain
PyTorch 1.13 (vd_torch.py), its parameters (drawn here, GroupNorm's too), an input x, an upstream gradient r,
and what PyTorch computes: y = net(x) and the gradients of sum(r * y) with respect to x and every parameter.
tests/nn/pytorch_blocks_test.cpp loads the parameters by name into the C++ network and compares.
  /usr/bin/python3 tests/reference/blocks_pytorch.py [--out PATH]"""
import argparse
import os

import h5py
import numpy as np
import torch

import vd_torch

# (name, layers, one sample's shape C x H x W, C x L or C x D x H x W, batch)
CASES = [
    ("resnet_block", "res 32 g8", (16, 8, 8), 2),
    ("resnet_block_same_channels", "res 16 g4", (16, 5, 7), 2),
    ("own_res_body", "res(gn 4, silu, conv 16 k3 p1, gn 4, gelu, conv 16 k3 p1)", (16, 6, 6), 2),
    ("attention", "attn g8", (32, 5, 6), 2),
    ("encoder_chain", "conv 16 k3 p1, res 16 g4, conv 16 k3 s2 p1, res 32 g8, attn g8, res 32 g8, "
                      "gn 8, silu, conv 8 k3 p1", (3, 12, 12), 2),
    ("decoder_chain", "conv 32 k3 p1, res 32 g8, attn g8, up 2, conv 16 k3 p1, res 16 g4, leakyrelu 0.2, "
                      "gn 4, tanh, convt 8 k4 s2 p1, sigmoid, conv 3 k3 p1", (4, 5, 5), 2),
    ("resnet_block_1d", "res 32 g8", (16, 12), 2),
    ("attention_1d", "attn g8", (32, 10), 2),
    ("encoder_chain_1d", "conv 16 k3 p1, res 16 g4, conv 16 k3 s2 p1, res 32 g8, attn g8, gn 8, silu, conv 8 k3 p1",
     (2, 24), 2),
    ("decoder_chain_1d", "conv 32 k3 p1, res 32 g8, attn g8, up 2, conv 16 k3 p1, res(gn 4, silu, conv 16 k5 p2), "
                         "convt 8 k4 s2 p1, conv 2 k3 p1", (4, 6), 2),
    ("resnet_block_3d", "res 32 g8", (16, 3, 4, 5), 2),
    ("attention_3d", "attn g8", (32, 2, 3, 4), 2),
    ("encoder_chain_3d", "conv 16 k3 p1, res 16 g4, conv 16 k3 s2 p1, res 32 g8, attn g8, gn 8, silu, conv 8 k3 p1",
     (1, 6, 6, 6), 2),
    ("decoder_chain_3d", "conv 32 k3 p1, res 32 g8, attn g8, up 2, conv 16 k3 p1, res 16 g4, "
                         "convt 8 k4x2x2 s2x1x1 p1x0x0, conv 2 k3 p1", (4, 2, 3, 3), 2),
    # Conv1d/Conv3d, their transposes and per-axis sizes (k3x1x2 is one size per axis)
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


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "fixtures", "blocks.h5"))
    args = ap.parse_args()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    with h5py.File(args.out, "w") as f:
        f.attrs["torch"] = str(torch.__version__)
        for name, layers, shape, batch in CASES:
            net = vd_torch.Chain(layers, shape)
            with torch.no_grad():  # GroupNorm's affine parameters away from (1, 0)
                for path, p in net.named_parameters():
                    if "norm" in path or path.startswith("gn"):
                        p.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
            x = torch.from_numpy(rng.uniform(-1, 1, (batch,) + shape).astype(np.float32)).requires_grad_()
            y = net(x)
            r = torch.from_numpy(rng.uniform(-1, 1, tuple(y.shape)).astype(np.float32))
            (r * y).sum().backward()
            g = f.create_group(name)
            g.attrs["layers"] = layers
            g.attrs["shape"] = "x".join(str(v) for v in shape)
            g.attrs["batch"] = batch
            for key, t in (("x", x), ("r", r), ("y", y), ("diff_x", x.grad)):
                g[key] = t.detach().numpy()
            for path, p in net.named_parameters():
                full = f"{PREFIX}.{path.replace('body.', '')}"
                g[f"params/{full}"] = p.detach().numpy()
                g[f"grads/{full}"] = p.grad.numpy()
            print(f"{name}: {layers} on {shape} -> {tuple(y.shape[1:])}, "
                  f"{sum(p.numel() for p in net.parameters())} parameters")


if __name__ == "__main__":
    main()
