#!/usr/bin/env python3
"""The anomaly-detection metrics and image-quality scores of `vae_latent score` against
scikit-learn and scikit-image, on the same numbers:

1. ROC-AUC and average precision (sklearn.metrics.roc_auc_score, average_precision_score) and the
   threshold at a 5% false-positive rate, on the cases vae_detection_metrics_test writes
   (continuous scores, heavy ties, a rare positive class); tolerance 1e-12.
2. PSNR and SSIM (skimage.metrics.peak_signal_noise_ratio, structural_similarity with its
   defaults: 7x7 uniform window, K1 0.01, K2 0.03, sample covariance; data_range given;
   channel_axis=0 for RGB) on the image pairs vae_image_quality_test writes; tolerance 1e-9.
3. End to end: vae_data synth, vae_dist (30 steps), vae_latent score --labels-normal on 2 ranks;
   every score's ROC-AUC, average precision, threshold and TPR in the JSON against sklearn and
   numpy on the scores of the HDF5 file, and the JSON's means against numpy's.

Usage: anomaly_reference.py BUILD_DIR. Run with Debian's /usr/bin/python3. Exits 77 (skipped)
when numpy, h5py, scikit-learn or scikit-image is missing, and 1 on any disagreement.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from sklearn.metrics import average_precision_score, roc_auc_score
except ImportError as e:  # ctest reports the test as skipped
    print(f"skipped: {e.name} is not installed (bash launch/setup.sh --with-charts installs it)")
    sys.exit(77)

failures = []


def check(name, got, want, tol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    diff = np.max(np.abs(got - want)) if got.size else 0.0
    ok = got.shape == want.shape and diff <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |C++ - reference| = {diff:.3g} (tolerance {tol:g})")
    if not ok:
        print("  C++:      ", got.ravel()[:8])
        print("  reference:", want.ravel()[:8])
        failures.append(name)


def threshold_at_fpr(normal, fpr):
    """The smallest held-out normal score with at most fpr of them above it (written from the
    definition, not from the C++ index formula)."""
    normal = np.asarray(normal)
    for v in np.sort(normal):
        if np.mean(normal > v) <= fpr:
            return v
    raise AssertionError("unreachable")


def run(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600, env=env)
    if r.returncode != 0:
        print(" ".join(cmd))
        print(r.stdout)
        failures.append(os.path.basename(cmd[0]) + " failed")
    return r


def main():
    build = sys.argv[1]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1", HWLOC_COMPONENTS="-gl")
    with tempfile.TemporaryDirectory() as tmp:
        # 1. ROC-AUC, AP and the threshold.
        cases = os.path.join(tmp, "cases.h5")
        run([os.path.join(build, "tests", "vae_detection_metrics_test"),
             "--gtest_filter=DetectionMetricsReference.*"], dict(env, VD_SCORE_REFERENCE=cases))
        with h5py.File(cases, "r") as f:
            for c in range(3):
                s, y = f[f"case{c}_scores"][...], f[f"case{c}_labels"][...]
                auc_ap = f[f"case{c}_auc_ap"][...]
                check(f"case {c} ({len(np.unique(s))} distinct scores): ROC-AUC", auc_ap[0],
                      roc_auc_score(y, s), 1e-12)
                check(f"case {c}: average precision", auc_ap[1], average_precision_score(y, s), 1e-12)
                check(f"case {c}: threshold at FPR 0.05", f[f"case{c}_threshold_at_0.05"][...],
                      [threshold_at_fpr(s[y == 0], 0.05)], 0.0)

        # 2. PSNR and SSIM.
        pairs = os.path.join(tmp, "pairs.h5")
        run([os.path.join(build, "tests", "vae_image_quality_test"),
             "--gtest_filter=ImageQualityReference.*"], dict(env, VD_SCORE_REFERENCE_IMAGES=pairs))
        with h5py.File(pairs, "r") as f:
            for i in range(6):
                x = f[f"pair{i}_x"][...].astype(np.float64)
                y = f[f"pair{i}_y"][...].astype(np.float64)
                r = float(f[f"pair{i}_data_range"][0])
                got = f[f"pair{i}_psnr_ssim"][...]
                if x.shape[0] == 1:
                    want_ssim = structural_similarity(x[0], y[0], data_range=r)
                else:
                    want_ssim = structural_similarity(x, y, data_range=r, channel_axis=0)
                shape = "x".join(map(str, x.shape))
                check(f"PSNR {shape} range {r:g}", got[0], peak_signal_noise_ratio(x, y, data_range=r), 1e-9)
                check(f"SSIM {shape} range {r:g}", got[1], want_ssim, 1e-9)

        # 3. vae_latent score's own numbers.
        exe = lambda name: os.path.join(build, name)
        for split, n, seed in (("train", 192, 2), ("test", 300, 3)):
            run([exe("vae_data"), "synth", "--out", os.path.join(tmp, split + ".h5"), "--n", str(n),
                 "--channels", "1", "--height", "8", "--width", "8", "--classes", "4", "--seed", str(seed)])
        run([exe("vae_dist"), "--data", os.path.join(tmp, "train.h5"), "--test-data",
             os.path.join(tmp, "test.h5"), "--out", os.path.join(tmp, "run"), "--hidden", "32",
             "--latent-dim", "2", "--epochs", "5", "--batch-size", "32", "--iw-samples", "0",
             "--progress", "false", "--threads", "1", "--grid-size", "2"], env)
        out = os.path.join(tmp, "scores.h5")
        run(["mpiexec", "-n", "2", "--oversubscribe", exe("vae_latent"), "score", "--checkpoint",
             os.path.join(tmp, "run", "checkpoint_step000000030.h5"), "--data",
             os.path.join(tmp, "test.h5"), "--labels-normal", "0,1,2", "--iw-samples", "3",
             "--batch-size", "64", "--threads", "1", "--out", out], env)
        if failures:
            return report()
        report_json = json.load(open(os.path.join(tmp, "scores.json")))
        with h5py.File(out, "r") as f:
            cols = {k: f[k][...] for k in ("neg_elbo", "recon", "kl", "iw_nll", "recon_nll_mu",
                                            "sq_error_mu", "psnr", "ssim")}
            labels, held, anomalous = f["labels"][...], f["held_out"][...], f["anomalous"][...]
        ok = np.array_equal(anomalous, ~np.isin(labels, [0, 1, 2]))
        print(f"{'ok  ' if ok else 'FAIL'} /anomalous is the rows of label 3")
        if not ok:
            failures.append("anomalous rows")
        normal = anomalous == 0
        ok = held.sum() == round(0.2 * normal.sum()) and not np.any(held & anomalous)
        print(f"{'ok  ' if ok else 'FAIL'} /held_out is {held.sum()} normal rows (0.2 of {normal.sum()})")
        if not ok:
            failures.append("held-out rows")
        det = report_json["detection"]["scores"]
        for name, v in cols.items():
            check(f"mean of {name}", report_json["means"][name], np.mean(v), 1e-12 * max(1, abs(np.mean(v))))
            sign = -1.0 if name in ("psnr", "ssim") else 1.0
            s, y = sign * v[held == 0], anomalous[held == 0]
            t = threshold_at_fpr(sign * v[held == 1], 0.05)
            d = det[name]
            check(f"{name}: ROC-AUC", d["roc_auc"], roc_auc_score(y, s), 1e-12)
            check(f"{name}: average precision", d["average_precision"], average_precision_score(y, s), 1e-12)
            check(f"{name}: threshold and TPR, FPR", [sign * d["threshold"], d["tpr"], d["fpr"]],
                  [t, np.mean(s[y == 1] > t), np.mean(s[y == 0] > t)], 1e-12 * max(1, abs(t)))
    return report()


def report():
    if failures:
        print(f"{len(failures)} disagreement(s): {', '.join(failures)}")
        return 1
    print("all scores agree with scikit-learn and scikit-image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
