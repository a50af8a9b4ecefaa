#!/usr/bin/env python3
"""vae_dist.export_onnx against torch and a real ONNX runtime: for models with every layer kind (GroupNorm,
attention, residual blocks, up-sampling, transposed and 1-D/3-D convolutions, a conditional label, standardised
data) trained a few steps by vae_dist, the encoder and the decoder are exported, checked with onnx.checker, run in
onnxruntime (npm's onnxruntime-node, tests/python/onnx, run by node) on a batch other than the traced one, and
their outputs compared with the torch module's to 1e-5 relative (max |a - b| / max |b|). Exits 77 (skipped,
saying why) without torch, h5py, numpy, onnx, node or the installed runtime; `bash launch/setup.sh --with-python`
installs them, and CI's reference phase fails on a skip.

Usage: vae_dist_onnx_test.py BUILD_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME = os.path.join(HERE, "onnx")
try:
    import h5py
    import numpy as np
    import onnx
    import torch
except ImportError as e:
    print(f"skipped: {e.name} is not installed (bash launch/setup.sh --with-python)")
    sys.exit(77)
if shutil.which("node") is None:
    print("skipped: node is not installed (bash launch/setup.sh --with-python)")
    sys.exit(77)
if not os.path.isdir(os.path.join(RUNTIME, "node_modules", "onnxruntime-node")):
    print(f"skipped: onnxruntime-node is not installed in {RUNTIME} (bash launch/setup.sh --with-python runs npm ci "
          "there)")
    sys.exit(77)

import vd_runs  # noqa: E402

import vae_dist  # noqa: E402

TOL = 1e-5
CASES = ("conv", "cconv", "kl", "signal", "volume", "gauss")
check = vd_runs.check


def run_ort(model_path, feeds, tmp):
    """Runs model_path in onnxruntime-node on feeds {name: numpy array}; returns {output: numpy array}."""
    manifest = []
    for name, a in feeds.items():
        f = os.path.join(tmp, name + ".in")
        a.tofile(f)
        manifest.append({"name": name, "type": "int64" if a.dtype == np.int64 else "float32",
                         "dims": list(a.shape), "file": f})
    mpath = os.path.join(tmp, "inputs.json")
    with open(mpath, "w") as f:
        json.dump(manifest, f)
    r = subprocess.run(["node", os.path.join(RUNTIME, "run_onnx.js"), model_path, mpath], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"onnxruntime failed on {model_path}:\n{r.stdout}")
    dims = json.loads(r.stdout.strip().splitlines()[-1])
    return {k: np.fromfile(os.path.join(tmp, k + ".bin"), np.float32).reshape(d) for k, d in dims.items()}


def main():
    build = sys.argv[1]
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, opset {vae_dist.ONNX_OPSET}")
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            ckpt, data, _ = vd_runs.train(build, tmp, case)
            model = vae_dist.load(ckpt)
            with h5py.File(data, "r") as f:
                x = f["images"][:5]
                labels = f["labels"][:5].astype(np.int64) if model.spec.classes else None
            xf = (x.astype(np.float32) / np.float32(255)) if x.dtype == np.uint8 else x.astype(np.float32)
            with torch.no_grad():
                mu, logvar = model.encode(x, labels)
                mean = model.decode(mu, labels)
            extra = {"labels": labels} if labels is not None else {}
            for part, feeds, want in (("encoder", {"x": xf, **extra}, {"mu": mu, "logvar": logvar}),
                                      ("decoder", {"z": mu.numpy(), **extra}, {"mean": mean})):
                path = vae_dist.export_onnx(model, os.path.join(tmp, f"{case}_{part}.onnx"), part=part, batch=2)
                try:
                    onnx.checker.check_model(onnx.load(path), full_check=True)
                    check(True, f"{case} {part}: onnx.checker accepts {os.path.basename(path)}")
                except onnx.checker.ValidationError as e:
                    check(False, f"{case} {part}: onnx.checker: {e}")
                got = run_ort(path, feeds, tmp)
                for k, w in want.items():
                    e = vd_runs.rel_err(got[k], w.numpy())
                    check(got[k].shape == tuple(w.shape) and e <= TOL,
                          f"{case} {part}: onnxruntime's {k} {got[k].shape} = torch's to {e:.2e}")
    vd_runs.finish()


if __name__ == "__main__":
    main()
