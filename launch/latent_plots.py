#!/usr/bin/env python3
"""Charts of a trained VAE from the files the C++ side writes (matplotlib, scikit-learn).

  latent_plots.py scatter --latent enc.h5 --out F.png [--method raw|pca|tsne]
      the latent codes /mu of `vae_latent encode`, coloured by /labels: the raw 2-D latent,
      a PCA projection, or a t-SNE projection
  latent_plots.py curves --metrics runs/x/metrics.csv --out F.png
      training and test curves of loss, reconstruction and KL from vae_dist's metrics.csv
  latent_plots.py roc --scores S.h5 --out F.png [--only neg_elbo,kl]
      ROC curves of the anomaly scores of `vae_latent score` with known anomalies (its
      evaluated rows: D's rows not held out, and the rows of --anomalies), AUC in the legend

Image grids are drawn by vae_latent itself; this script draws only charts with axes.
Needs python3-matplotlib, python3-sklearn, python3-h5py, python3-numpy
(`sudo bash launch/setup.sh --with-charts`).
"""
import argparse
import csv
import importlib
import sys

SETUP = "sudo bash launch/setup.sh --with-charts"
# module -> the Debian package that provides it
PACKAGES = {"numpy": "python3-numpy", "h5py": "python3-h5py",
            "matplotlib": "python3-matplotlib", "sklearn": "python3-sklearn"}


def require(*modules):
    """Imports the modules, or exits (code 1) naming the Debian package and the setup command."""
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as e:
            sys.exit(f"error: latent_plots.py needs the Python module '{name}' (Debian package "
                     f"{PACKAGES[name]}), which is missing ({e}); install it with: {SETUP}")
    return loaded


def project(mu, method, seed=0):
    """[N, L] codes -> [N, 2] points: the codes themselves (raw, L = 2), PCA or t-SNE."""
    np, = require("numpy")
    mu = np.asarray(mu, dtype=np.float64)
    if method == "raw":
        if mu.shape[1] != 2:
            raise ValueError(f"--method raw needs a 2-D latent; these codes have "
                             f"{mu.shape[1]} dimensions: use --method pca or tsne")
        return mu
    if method == "pca":
        from sklearn.decomposition import PCA
        return PCA(n_components=2).fit_transform(mu)
    if method == "tsne":
        from sklearn.manifold import TSNE
        # PCA initialisation makes the layout deterministic for a seed and keeps global shape.
        return TSNE(n_components=2, init="pca", learning_rate="auto", perplexity=30,
                    random_state=seed).fit_transform(mu)
    raise ValueError(f"unknown method '{method}'; use raw, pca or tsne")


def scatter(args):
    np, h5py, _, _ = require("numpy", "h5py", "matplotlib", "sklearn")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with h5py.File(args.latent, "r") as f:
        if "mu" not in f:
            sys.exit(f"error: {args.latent} has no /mu; write it with vae_latent encode")
        mu = f["mu"][...]
        labels = f["labels"][...] if "labels" in f else np.zeros(len(mu), dtype=int)
    if args.max_points and len(mu) > args.max_points:
        keep = np.random.default_rng(args.seed).choice(len(mu), args.max_points, replace=False)
        keep.sort()
        mu, labels = mu[keep], labels[keep]
    try:
        xy = project(mu, args.method, args.seed)
    except ValueError as e:
        sys.exit(f"error: {e}")
    names = args.class_names.split(",") if args.class_names else None
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=args.dpi)
    cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    for k in np.unique(labels):
        sel = labels == k
        name = names[k] if names and k < len(names) else str(k)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, alpha=0.6, color=cmap(int(k) % cmap.N),
                   label=name, rasterized=True)
    axis = {"raw": ("z1", "z2"), "pca": ("PC 1", "PC 2"), "tsne": ("t-SNE 1", "t-SNE 2")}
    ax.set_xlabel(axis[args.method][0])
    ax.set_ylabel(axis[args.method][1])
    ax.set_title(args.title or f"latent codes ({args.method}, {mu.shape[1]}-D, {len(mu)} points)")
    ax.legend(markerscale=4, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


def read_metrics(path):
    """Rows of metrics.csv as dicts of floats (old and new column sets alike)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out = {"split": row["split"]}
            for key in ("epoch", "step", "samples", "loss", "recon", "kl"):
                out[key] = float(row[key]) if row.get(key) not in (None, "", "nan") else None
            rows.append(out)
    return rows


def curves(args):
    require("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = read_metrics(args.metrics)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), dpi=args.dpi)
    for ax, key, title in zip(axes, ("loss", "recon", "kl"),
                              ("loss (-ELBO)", "reconstruction", "KL")):
        for split, style in (("train", "-"), ("test", "o-")):
            pts = [(r["samples"], r[key]) for r in rows if r["split"] == split and r[key] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, markersize=3, label=split)
        ax.set_title(title)
        ax.set_xlabel("training samples seen")
        ax.set_ylabel("nats per image")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


# The scores vae_latent score writes; PSNR and SSIM grow with the quality, so their negatives rank.
SCORES = ("neg_elbo", "recon", "kl", "iw_nll", "recon_nll_mu", "sq_error_mu", "psnr", "ssim")


def roc_curves(path, only=None):
    """{score: (fpr, tpr, auc)} over the evaluated rows of a vae_latent score file, by sklearn."""
    np, h5py = require("numpy", "h5py")
    from sklearn.metrics import roc_auc_score, roc_curve
    out = {}
    with h5py.File(path, "r") as f:
        if "anomalous" not in f:
            sys.exit(f"error: {path} has no /anomalous; run vae_latent score with --labels-normal "
                     "or --anomalies")
        keep = f["held_out"][...] == 0
        y = f["anomalous"][...][keep]
        if "anomalies" in f:
            y = np.concatenate([y, np.ones(f["anomalies/neg_elbo"].shape[0], dtype=y.dtype)])
        for name in SCORES:
            if name not in f or (only and name not in only):
                continue
            s = f[name][...][keep]
            if "anomalies" in f:
                s = np.concatenate([s, f["anomalies/" + name][...]])
            if name in ("psnr", "ssim"):
                s = -s
            fpr, tpr, _ = roc_curve(y, s)
            out[name] = (fpr, tpr, roc_auc_score(y, s))
    return out


def roc(args):
    require("matplotlib", "sklearn")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves_ = roc_curves(args.scores, args.only.split(",") if args.only else None)
    fig, ax = plt.subplots(figsize=(5.2, 4.8), dpi=args.dpi)
    for name, (fpr, tpr, auc) in sorted(curves_.items(), key=lambda kv: -kv[1][2]):
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="gray", label="chance")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(args.title or "anomaly scores: ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scatter", help="latent scatter coloured by class")
    s.add_argument("--latent", required=True, help="HDF5 file of vae_latent encode")
    s.add_argument("--out", required=True, help="PNG to write")
    s.add_argument("--method", choices=("raw", "pca", "tsne"), default="raw")
    s.add_argument("--max-points", type=int, default=5000, help="random subset (0 = all)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--class-names", default="", help="comma-separated names of classes 0..K-1")
    s.add_argument("--title", default="")
    s.add_argument("--dpi", type=int, default=80)
    s.set_defaults(run=scatter)
    c = sub.add_parser("curves", help="loss, reconstruction and KL curves of metrics.csv")
    c.add_argument("--metrics", required=True, help="metrics.csv of a vae_dist run")
    c.add_argument("--out", required=True, help="PNG to write")
    c.add_argument("--dpi", type=int, default=80)
    c.set_defaults(run=curves)
    r = sub.add_parser("roc", help="ROC curves of the anomaly scores of vae_latent score")
    r.add_argument("--scores", required=True, help="HDF5 file of vae_latent score")
    r.add_argument("--out", required=True, help="PNG to write")
    r.add_argument("--only", default="", help="comma-separated scores to draw (default: all)")
    r.add_argument("--title", default="")
    r.add_argument("--dpi", type=int, default=100)
    r.set_defaults(run=roc)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
