"""Tiny vae_dist runs for the Python package's tests: the data (vae_data synth), a few training steps of every
model variant the package builds, and vae_latent's encode and decode of the same data, which the tests compare
with vae_dist.load's. Shared by vae_dist_test.py and vae_dist_onnx_test.py."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src", "python"))

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
           HWLOC_COMPONENTS="-gl")

# Data sets: vae_data synth arguments.
DATA = {
    "img8": ["--n", "96", "--channels", "1", "--height", "8", "--width", "8", "--classes", "4"],
    "rgb16": ["--n", "64", "--channels", "3", "--height", "16", "--width", "16"],
    "sig32": ["--n", "64", "--channels", "2", "--length", "32", "--dtype", "float32"],
    "vol4": ["--n", "64", "--channels", "1", "--depth", "4", "--height", "4", "--width", "4"],
    "feat12": ["--n", "96", "--features", "12", "--dtype", "float32"],
}

# name -> (data, vae_dist options): every layer kind, flat and spatial latents, 1-D/2-D/3-D data, conditional,
# Bernoulli and Gaussian (fixed, learned, learned per output), standardised data, a moving average.
CASES = {
    "mlp": ("img8", ["--hidden", "16", "--latent-dim", "3"]),
    "conv": ("img8", ["--encoder", "conv 4 k3 s2 p1, relu, conv 6 k3x1 p1x0, leakyrelu 0.2, flatten, fc 16, tanh",
                      "--decoder", "fc 16, gelu, fc 64, sigmoid, reshape 4x4x4, convt 3 k4 s2 p1, silu, "
                      "convt 1 k3x1 p1x0 op0", "--latent-dim", "4"]),
    "cmlp": ("img8", ["--hidden", "16,8", "--latent-dim", "2", "--conditional"]),
    "cconv": ("img8", ["--encoder", "conv 4 k4 s2 p1, relu, fc 12, relu", "--decoder",
                       "fc 64, relu, reshape 4x4x4, convt 1 k4 s2 p1", "--latent-dim", "3", "--conditional"]),
    "kl": ("rgb16", ["--encoder", "conv 8 k3 p1, res 8 g4, conv 8 k3 s2 p1, res 16 g4, attn g4, res 16 g4, gn 4, "
                     "silu", "--latent-shape", "2x8x8", "--decoder",
                     "conv 16 k3 p1, res 16 g4, attn g4, up 2, res(gn 4, silu, conv 8 k3 p1), gn 4 1e-5, silu, "
                     "conv 3 k3 p1"]),
    "signal": ("sig32", ["--encoder", "conv 8 k3 s2 p1, res 8 g4, attn g4, gn 4, silu", "--latent-shape", "2x16",
                         "--decoder", "conv 8 k3 p1, res 8 g4, up 2, conv 2 k3 p1", "--likelihood", "gaussian",
                         "--gaussian-sigma", "0.5"]),
    "volume": ("vol4", ["--encoder", "conv 4 k3 p1, gn 2, silu, conv 4 k3 s2 p1, res 4 g2",
                        "--latent-shape", "2x2x2x2", "--decoder", "convt 4 k4 s2 p1, silu, attn g2, conv 1 k3 p1"]),
    "gauss": ("feat12", ["--encoder", "fc 16, silu, res(fc 8, gelu), tanh", "--decoder", "fc 8, relu, fc 12",
                         "--latent-dim", "3", "--likelihood", "gaussian", "--gaussian-sigma", "learned-per-output",
                         "--standardize", "--logvar-clamp", "-4,3"]),
    "gauss1": ("feat12", ["--hidden", "10", "--latent-dim", "2", "--likelihood", "gaussian", "--gaussian-sigma",
                          "learned", "--standardize"]),
    "ema": ("img8", ["--hidden", "16", "--latent-dim", "3", "--ema-decay", "0.5", "--eval-weights", "ema"]),
    "iwae": ("img8", ["--model", "iwae", "--train-iw-samples", "3", "--hidden", "12", "--latent-dim", "2"]),
}


def run(cmd):
    r = subprocess.run(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}")
    return r.stdout


def make_data(build, tmp, name):
    path = os.path.join(tmp, name + ".h5")
    if not os.path.exists(path):
        run([f"{build}/vae_data", "synth", "--out", path, "--seed", "3"] + DATA[name])
    return path


def train(build, tmp, case, steps=4):
    """Trains CASES[case] for a few steps; returns (checkpoint, data, run directory)."""
    data_name, options = CASES[case]
    data = make_data(build, tmp, data_name)
    out = os.path.join(tmp, "run_" + case)
    run([f"{build}/vae_dist", "--data", data, "--test-data", "", "--out", out, "--batch-size", "16", "--epochs",
         "1", "--max-steps", str(steps), "--threads", "1", "--progress", "false", "--grid-size", "2",
         "--log-every", "1", "--lr", "0.01"] + options)
    return os.path.join(out, f"checkpoint_step{steps:09d}.h5"), data, out


def latent_encode(build, ckpt, data, out, weights="auto"):
    run([f"{build}/vae_latent", "encode", "--checkpoint", ckpt, "--data", data, "--out", out, "--threads", "1",
         "--weights", weights])
    return out


def latent_decode(build, ckpt, codes, out, weights="auto"):
    run([f"{build}/vae_latent", "decode", "--checkpoint", ckpt, "--latent", codes, "--out", out, "--threads", "1",
         "--weights", weights])
    return out


def rel_err(a, b):
    """max |a - b| over max |b|: the error relative to the array's scale."""
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


FAILURES = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILURES.append(what)


def finish():
    """Exits 1 after any failed check, else prints passed."""
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("passed")
