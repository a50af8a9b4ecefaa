#!/usr/bin/python3
# The figure of docs/model.md's "VAE and PCA": the spectrum of the data beside the linear VAE's
# learned variance, and the course of its training, from the JSON tests/vae/pca_test.cpp writes.
#   VD_PCA_TRACE=/tmp/pca.json build/tests/vae_pca_test
#   /usr/bin/python3 launch/pca_figure.py /tmp/pca.json docs/images/linear_vae_pca.png
# Needs Debian's python3-matplotlib (bash launch/setup.sh --with-charts).
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, out):
    with open(src) as f:
        r = json.load(f)
    eig, kept = r["eigenvalues"], r["kept"]
    steps = [t[0] for t in r["trace"]]
    angle = [t[1] for t in r["trace"]]
    sigma2 = [t[2] for t in r["trace"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))

    a.bar(range(1, len(eig) + 1), eig,
          color=["tab:blue" if i < kept else "tab:gray" for i in range(len(eig))])
    a.axhline(r["discarded_mean"], color="black", linestyle="--", linewidth=1,
              label="mean of the discarded eigenvalues %.4f" % r["discarded_mean"])
    a.axhline(r["sigma2"], color="tab:red", linewidth=1,
              label="learned $\\sigma^2$ %.4f" % r["sigma2"])
    a.set_yscale("log")
    a.set_xlabel("eigenvalue of the sample covariance (blue: the %d kept)" % kept)
    a.set_ylabel("variance")
    a.legend(fontsize=8)
    a.set_title("spectrum and the decoder's noise")

    b.plot(steps, angle, color="tab:blue")
    b.set_yscale("log")
    b.set_xlabel("Adam step (full batch)")
    b.set_ylabel("largest principal angle (degrees)", color="tab:blue")
    c = b.twinx()
    c.plot(steps, [s / r["discarded_mean"] for s in sigma2], color="tab:red")
    c.axhline(1.0, color="black", linestyle="--", linewidth=1)
    c.set_ylabel("$\\sigma^2$ / mean discarded eigenvalue", color="tab:red")
    b.set_title("decoder subspace vs top-%d PCA: %.3f degrees at the end" % (kept, r["angle_degrees"]))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote %s" % out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: pca_figure.py TRACE.json OUT.png")
    main(sys.argv[1], sys.argv[2])
