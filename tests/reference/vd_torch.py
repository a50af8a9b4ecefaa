"""vae_dist's layer syntax ("conv 32 k3 p1, res 64, attn, up 2, ...") as plain PyTorch 1.13 modules, for the block
tests and the training and speed comparisons: the package's builder (src/python/vae_dist/layers.py, written from
PyTorch's and diffusers' definitions, independently of the C++ side), re-exported under the names these scripts
use. Parameter names follow the C++ builder's, so a vae_dist checkpoint (or a test's HDF5 file) loads by name."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "python"))

import torch  # noqa: E402

from vae_dist.layers import (ACTIVATIONS, CONV, CONVT, PARAM_KINDS, Attention, Chain, Residual,  # noqa: E402,F401
                             ResnetBlock, conv_out, conv_settings, parse_item, split_layers)


__all__ = ["ACTIVATIONS", "CONV", "CONVT", "PARAM_KINDS", "Attention", "Chain", "Residual", "ResnetBlock", "conv_out",
           "conv_settings", "parse_item", "split_layers", "load_named", "grads_named"]


def load_named(module, prefix, get):
    """Copies every parameter `<prefix>.<path>` from get(name) (a numpy array) into module."""
    with torch.no_grad():
        for path, p in module.named_parameters():
            p.copy_(torch.from_numpy(get(f"{prefix}.{path}")).reshape(p.shape))


def grads_named(module, prefix):
    return {f"{prefix}.{path}": p.grad for path, p in module.named_parameters()}
