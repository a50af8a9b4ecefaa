"""PyTorch's outputs and input gradients for the layer kinds silu, gelu, leakyrelu A, tanh,
sigmoid and up S on a fixed input with a fixed upstream gradient, written to an HDF5 file that
tests/nn/activation_test.cpp (PyTorchReference.*) compares vd::Eltwise and vd::Upsample against.

Run with Debian's /usr/bin/python3 (torch 1.13, h5py, numpy):  layers_pytorch.py OUT.h5
One group per layer, its config text in the attribute "layer"; in each, float32 data sets
x [N, C, H, W] (the input), g (the upstream gradient, dst's shape), y = layer(x) and
dx = the gradient of sum(g * y) with respect to x.
"""
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

# N, C, H, W: C = 20 is not a multiple of 16, so the C++ side also runs it in nChw16c with
# padding.
SHAPE = (2, 20, 3, 5)


def pattern(shape, mul, mod, shift, scale):
    """Fixed values without a random generator: ((i * mul) % mod - shift) / scale for the
    i-th element in row-major order (exactly representable in float32 for these sizes)."""
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return (((i * mul) % mod - shift) / scale).astype(np.float32).reshape(shape)


def layers():
    """Config text -> the PyTorch function it stands for."""
    return {
        "silu": torch.nn.SiLU(),
        "gelu": torch.nn.GELU(),  # the default: exact erf form
        "leakyrelu 0.2": torch.nn.LeakyReLU(0.2),
        "leakyrelu -0.5": torch.nn.LeakyReLU(-0.5),
        "tanh": torch.nn.Tanh(),
        "sigmoid": torch.nn.Sigmoid(),
        "up 2": lambda t: F.interpolate(t, scale_factor=2, mode="nearest"),
        "up 3": lambda t: F.interpolate(t, scale_factor=3, mode="nearest"),
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: layers_pytorch.py OUT.h5")
    # -6.0 .. 6.0 in steps of 0.1, zero included: both tails and the kink of leakyrelu.
    x_np = pattern(SHAPE, 37, 121, 60, 10.0)
    with h5py.File(sys.argv[1], "w") as f:
        for k, (text, fn) in enumerate(layers().items()):
            x = torch.from_numpy(x_np.copy()).requires_grad_(True)
            y = fn(x)
            g = torch.from_numpy(pattern(tuple(y.shape), 53, 97, 48, 24.0))
            (g * y).sum().backward()
            grp = f.create_group(f"layer{k}")
            grp.attrs["layer"] = text
            for name, t in (("x", x), ("g", g), ("y", y), ("dx", x.grad)):
                grp.create_dataset(name, data=t.detach().numpy().astype(np.float32))


if __name__ == "__main__":
    main()
