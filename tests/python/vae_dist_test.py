#!/usr/bin/env python3
"""The Python package (src/python/vae_dist) against the C++ programs: for every model variant of vd_runs.CASES a
few vae_dist training steps, then vae_dist.load(checkpoint).encode(x) against `vae_latent encode`'s /mu and
/logvar, and decode(mu) against `vae_latent decode`'s /mean, each to 1e-5 relative (max |a - b| / max |b|); the
moving average's and the raw weights each against vae_latent --weights; read_metrics against the CSV read with
the csv module; and checkpoints made wrong on purpose (an unknown layer kind, an extra, a missing and a reshaped
parameter, another model kind) against the errors that name them. Exits 77 (skipped, saying why) when torch, h5py
or numpy is missing (CI's reference phase installs them and fails on a skip).

Usage: vae_dist_test.py BUILD_DIR
"""
import csv
import math
import os
import shutil
import sys
import tempfile

try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:  # ctest reports the test as skipped
    print(f"skipped: {e.name} is not installed (bash launch/setup.sh --with-python)")
    sys.exit(77)

import vd_runs  # noqa: E402

import vae_dist  # noqa: E402

TOL = 1e-5
check = vd_runs.check


def read_images(data):
    with h5py.File(data, "r") as f:
        x = f["images"][...]
        labels = f["labels"][...] if "labels" in f else None
    return x, labels


def compare_case(build, tmp, case):
    ckpt, data, run_dir = vd_runs.train(build, tmp, case)
    x, labels = read_images(data)
    model = vae_dist.load(ckpt)
    lab = labels if model.spec.classes else None
    weights = ["auto", "raw", "ema"] if case == "ema" else ["auto"]
    for w in weights:
        m = model if w == "auto" else vae_dist.load(ckpt, weights=w)
        enc = vd_runs.latent_encode(build, ckpt, data, os.path.join(tmp, f"{case}_{w}_enc.h5"), w)
        dec = vd_runs.latent_decode(build, ckpt, enc, os.path.join(tmp, f"{case}_{w}_dec.h5"), w)
        with h5py.File(enc, "r") as f:
            want_mu, want_lv = f["mu"][...], f["logvar"][...]
        with h5py.File(dec, "r") as f:
            want_mean = f["mean"][...]
        with torch.no_grad():
            mu, lv = m.encode(x, lab)
            mean = m.decode(torch.from_numpy(want_mu), lab)
            recon = m(x, lab)
        n = x.shape[0]
        e_mu, e_lv = vd_runs.rel_err(mu.reshape(n, -1), want_mu), vd_runs.rel_err(lv.reshape(n, -1), want_lv)
        e_mean = vd_runs.rel_err(mean, want_mean)
        tag = f"{case} (weights {w}: {m.weights})"
        check(e_mu <= TOL and e_lv <= TOL, f"{tag}: encode = vae_latent encode: mu {e_mu:.2e}, logvar {e_lv:.2e}")
        check(tuple(mean.shape) == want_mean.shape and e_mean <= TOL,
              f"{tag}: decode(mu) = vae_latent decode: {tuple(mean.shape)} vs {want_mean.shape}, {e_mean:.2e}")
        check(vd_runs.rel_err(recon, want_mean) <= TOL, f"{tag}: forward(x) = decode(mu)")
    if case == "ema":
        raw, ema = vae_dist.load(ckpt, weights="raw"), vae_dist.load(ckpt, weights="ema")
        differ = any(not torch.equal(a, b) for a, b in zip(raw.state_dict().values(), ema.state_dict().values()))
        check(model.weights == "ema" and differ, "ema: auto takes the evaluated (ema) weights, and raw differs")
    if model.spec.standardize:
        with h5py.File(ckpt, "r") as f:
            mean_, std_ = f["standardize/mean"][...], f["standardize/std"][...]
        z = torch.zeros((2, model.spec.latent_dim))
        with torch.no_grad():
            model_units = model.decode_model_units(z, None).double().numpy().reshape(2, -1)
            got = model.decode(z).double().numpy().reshape(2, -1)
        check(np.allclose(got, model_units * std_ + mean_, rtol=1e-6, atol=0),
              f"{case}: decode maps the standardised mean back (x std + mean of /standardize)")
    with torch.no_grad():
        s = model.sample(3, generator=torch.Generator().manual_seed(0))
    check(tuple(s.shape) == (3,) + model.spec.data_shape and bool(torch.isfinite(s).all()),
          f"{case}: sample(3) has shape {tuple(s.shape)}")
    return ckpt, run_dir


def rewrite_config(path, old, new):
    with h5py.File(path, "r+") as f:
        text = f["config"][0].decode()
        assert old in text, (old, text)
        text = text.replace(old, new)
        del f["config"]
        f["config"] = np.array([text.encode()])


def expect_error(path, words, what, **kw):
    try:
        vae_dist.load(path, **kw)
    except vae_dist.VaeDistError as e:
        msg = str(e)
        check(all(w in msg for w in words), f"{what}: {msg}")
        return
    check(False, f"{what}: no error")


def bad_checkpoints(tmp, ckpt):
    def copy(name):
        p = os.path.join(tmp, name + ".h5")
        shutil.copy(ckpt, p)
        return p

    p = copy("unknown_kind")
    rewrite_config(p, "encoder = ", "encoder = swish, ")
    expect_error(p, ["swish", "not one this package builds"], "an unknown layer kind")
    p = copy("unknown_setting")
    rewrite_config(p, "conv 4 k3 s2 p1", "conv 4 k3 s2 p1 d2")
    expect_error(p, ["d2"], "an unknown conv setting")
    p = copy("extra")
    with h5py.File(p, "r+") as f:
        f["params/encoder.fc9.weight"] = np.zeros((2, 2), np.float32)
    expect_error(p, ["encoder.fc9.weight", "is not one of the model"], "an extra parameter")
    p = copy("missing")
    with h5py.File(p, "r+") as f:
        del f["params/decoder.out.bias"]
    expect_error(p, ["decoder.out.bias", "has no parameter"], "a missing parameter")
    p = copy("reshaped")
    with h5py.File(p, "r+") as f:
        w = f["params/encoder.mu.weight"][...]
        del f["params/encoder.mu.weight"]
        f["params/encoder.mu.weight"] = w.T.copy()
    expect_error(p, ["encoder.mu.weight", "in the checkpoint but"], "a parameter of another shape")
    p = copy("model_kind")
    with h5py.File(p, "r+") as f:
        f.attrs["model"] = "flow"
    expect_error(p, ["'flow'", "builds vae, iwae, btcvae"], "another model kind (attribute model)")
    p = copy("model_option")
    rewrite_config(p, "\nmodel = vae", "\nmodel = flow")
    expect_error(p, ["'flow' (--model)", "builds vae, iwae, btcvae"], "another model family (model = flow)")
    expect_error(ckpt, ["no moving average"], "weights='ema' without --ema-decay", weights="ema")
    m = vae_dist.load(ckpt)
    try:
        m.encode(np.zeros((2, 1, 4, 16), np.uint8))
        check(False, "an input of another shape: no error")
    except vae_dist.VaeDistError as e:
        check("(1, 4, 16)" in str(e) and "(1, 8, 8)" in str(e), f"an input of another shape: {e}")


def check_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        want = list(csv.DictReader(f))
    for source, pandas in ((run_dir, True), (os.path.join(run_dir, "metrics.csv"), True), (run_dir, False)):
        saved = sys.modules.get("pandas")
        if not pandas:
            sys.modules["pandas"] = None  # `import pandas` raises ImportError, as where it is not installed
        try:
            got = vae_dist.read_metrics(source)
        finally:
            if not pandas:
                del sys.modules["pandas"]
                if saved is not None:
                    sys.modules["pandas"] = saved
        if not pandas:
            check(isinstance(got, list), f"read_metrics without pandas gives a {type(got).__name__}")
        rows = got.to_dict("records") if hasattr(got, "to_dict") else got
        ok = len(rows) == len(want) and all(
            r["split"] == w["split"] and r["step"] == int(w["step"]) and math.isclose(r["loss"], float(w["loss"]),
                                                                                       rel_tol=1e-9)
            for r, w in zip(rows, want))
        check(ok, f"read_metrics('{os.path.basename(source)}'): {len(rows)} rows ({type(got).__name__}) equal "
                  f"metrics.csv's {len(want)}")


def main():
    build = sys.argv[1]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for case in vd_runs.CASES:
            runs[case] = compare_case(build, tmp, case)
        bad_checkpoints(tmp, runs["conv"][0])
        m = vae_dist.load(runs["cmlp"][0])
        try:
            m.encode(np.zeros((2, 1, 8, 8), np.uint8))
            check(False, "a conditional model without labels: no error")
        except vae_dist.VaeDistError as e:
            check("conditional" in str(e), f"a conditional model without labels: {e}")
        check_metrics(runs["mlp"][1])
    vd_runs.finish()


if __name__ == "__main__":
    main()
