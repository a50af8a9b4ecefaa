"""PyTorch reference of vd::Attention (nn/attention.hpp) for tests/nn/attention_test.cpp
(Attention.MatchesPyTorchForwardAndBackward): diffusers' Attention of AutoencoderKL's mid-block
with AttnProcessor, one head of C channels, group_norm, residual_connection=True,
rescale_output_factor 1, written out in plain torch after diffusers' definitions.

Usage: /usr/bin/python3 attention_pytorch.py IN.h5 OUT.h5   (Debian's python3: torch 1.13, h5py)
IN.h5 (written by the C++ test): /x [N, C, H, W], /grad_y [N, C, H, W] (the upstream gradient
dL/dy), /params/<name> for group_norm.weight, group_norm.bias, to_q.weight, to_q.bias, to_k.*,
to_v.*, to_out.* (weights [C, C] in nn.Linear's [out, in] layout); attributes groups and eps.
OUT.h5: /y, /grad_x and /grad/<name> for every parameter, all float32, from
y.backward(grad_y).
"""
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

PARAMS = ["group_norm.weight", "group_norm.bias", "to_q.weight", "to_q.bias", "to_k.weight",
          "to_k.bias", "to_v.weight", "to_v.bias", "to_out.weight", "to_out.bias"]


def attention(x, p, groups, eps):
    """diffusers' AttnProcessor.__call__ for a 4-D input, heads = 1, no mask, no cross input."""
    residual = x
    n, c, h, w = x.shape
    hidden = x.view(n, c, h * w).transpose(1, 2)                      # [N, S, C] tokens
    # attn.group_norm runs on [N, C, S]: the tokens transposed back and forth.
    hidden = F.group_norm(hidden.transpose(1, 2), groups, p["group_norm.weight"],
                          p["group_norm.bias"], eps).transpose(1, 2)
    q = F.linear(hidden, p["to_q.weight"], p["to_q.bias"])            # [N, S, C]
    k = F.linear(hidden, p["to_k.weight"], p["to_k.bias"])
    v = F.linear(hidden, p["to_v.weight"], p["to_v.bias"])
    # get_attention_scores: baddbmm(beta=0, alpha=scale) with scale = dim_head ** -0.5, dim_head
    # = C; upcast_softmax: the softmax in float32 (the inputs are float32 already).
    scale = c ** -0.5
    scores = torch.baddbmm(torch.empty(n, h * w, h * w, dtype=q.dtype), q, k.transpose(-1, -2),
                           beta=0, alpha=scale)                        # [N, S, S]
    probs = scores.float().softmax(dim=-1).to(q.dtype)
    hidden = torch.bmm(probs, v)                                       # [N, S, C]
    hidden = F.linear(hidden, p["to_out.weight"], p["to_out.bias"])   # to_out[0]; to_out[1] is
    hidden = hidden.transpose(-1, -2).reshape(n, c, h, w)              # dropout (p = 0)
    return (hidden + residual) / 1.0                                   # rescale_output_factor


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with h5py.File(src, "r") as f:
        x = torch.tensor(np.asarray(f["x"], dtype=np.float32), requires_grad=True)
        grad_y = torch.tensor(np.asarray(f["grad_y"], dtype=np.float32))
        p = {k: torch.tensor(np.asarray(f["params"][k], dtype=np.float32), requires_grad=True)
             for k in PARAMS}
        groups = int(f.attrs["groups"])
        eps = float(f.attrs["eps"])
    y = attention(x, p, groups, eps)
    y.backward(grad_y)
    with h5py.File(dst, "w") as f:
        f["y"] = y.detach().numpy()
        f["grad_x"] = x.grad.numpy()
        for k in PARAMS:
            f["grad/" + k] = p[k].grad.numpy()


if __name__ == "__main__":
    main()
