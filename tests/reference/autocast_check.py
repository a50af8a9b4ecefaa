"""Tries PyTorch 1.13's CPU bf16 autocast on the block configs' models (shapes64_kl, signals_kl, volumes_kl):
a forward and backward of batch 4 in f32, then the same under torch.autocast("cpu", torch.bfloat16).
  /usr/bin/python3 tests/reference/autocast_check.py"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import config_vae  # noqa: E402

torch.set_num_threads(1)
CONFIGS = os.path.join(HERE, "..", "..", "configs")
for name, shape in (("shapes64_kl", (3, 64, 64)), ("signals_kl", (2, 256)), ("volumes_kl", (1, 16, 16, 16))):
    cfg = config_vae.read_config(os.path.join(CONFIGS, name + ".cfg"))
    m = config_vae.ConfigVAE(cfg, shape)
    x = torch.rand((4,) + shape)
    eps = torch.randn((4,) + m.latent)
    l32 = config_vae.loss_of(m, x, eps)
    l32.backward()
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            l = config_vae.loss_of(m, x, eps)
        l.backward()
        print(name, "f32 loss", float(l32), "bf16 autocast loss", float(l), "backward ok")
    except Exception as e:
        print(name, "f32 loss", float(l32), "bf16 autocast FAILS:", type(e).__name__, str(e).splitlines()[0][:160])
