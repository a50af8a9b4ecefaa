#!/usr/bin/env python3
"""The disentanglement metrics in numpy and scikit-learn, written from the papers and from
disentanglement_lib's definitions (not from src/vae/disentanglement.cpp), checked against the C++
results on the same codes: the C++ test (vae_disentanglement_test, DisentanglementReference.*)
writes its inputs, its draws and its results to an HDF5 file; this script recomputes every score.

Tolerances: MIG exact up to summation order (1e-12); SAP's accuracies exact (both solve the same
strictly convex LinearSVC problem, sklearn's liblinear to tol 1e-10; the weights 1e-7); DCI's
lasso importances and scores 1e-8; the beta-VAE features 1e-12, its logistic regression
probabilities 1e-8 and weights 1e-7 (sklearn's newton-cg to tol 1e-10, multinomial and binary),
its accuracies exact; the FactorVAE votes and accuracies exact.

Usage: disentanglement_reference.py BUILD_DIR. Run with Debian's /usr/bin/python3. Exits 77
(skipped) when numpy, scipy, scikit-learn or h5py is missing, and 1 on any disagreement.
"""
import os
import subprocess
import sys
import tempfile
import warnings

try:
    import h5py
    import numpy as np
    import scipy.stats
    from sklearn.linear_model import Lasso, LogisticRegression
    from sklearn.metrics import mutual_info_score
    from sklearn.svm import LinearSVC
except ImportError as e:  # ctest reports the test as skipped
    print(f"skipped: {e.name} is not installed (bash launch/setup.sh --with-charts installs it)")
    sys.exit(77)


# ---- The metrics, codes [n, L] and factors [n, F] as rows -----------------------------------

def histogram_discretize(codes, bins=20):
    """disentanglement_lib's _histogram_discretize: np.histogram's edges, np.digitize."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        out[:, j] = np.digitize(codes[:, j], np.histogram(codes[:, j], bins)[1][:-1])
    return out


def mig(codes, factors, bins=20):
    """Chen et al. 2018, Eq. 6: the gap between the two largest I(z_j; v_k), over H(v_k)."""
    d = histogram_discretize(codes, bins)
    L, F = codes.shape[1], factors.shape[1]
    m = np.array([[mutual_info_score(factors[:, k], d[:, j]) for k in range(F)] for j in range(L)])
    h = np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(F)])
    s = np.sort(m, axis=0)[::-1]
    return np.mean((s[0] - s[1]) / h), m


def sap(codes, factors, test_codes, test_factors, C=0.01):
    """Kumar et al. 2018, Sec. 3, with discrete factors as disentanglement_lib: the accuracy of a
    linear SVM on one code dimension; the mean gap of the top two dimensions."""
    L, F = codes.shape[1], factors.shape[1]
    score = np.zeros((L, F))
    for j in range(L):
        for k in range(F):
            clf = svc(codes[:, j], factors[:, k], C)
            score[j, k] = np.mean(clf.predict(test_codes[:, j:j + 1]) == test_factors[:, k])
    s = np.sort(score, axis=0)
    return np.mean(s[-1] - s[-2]), score


def svc(x, y, C):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LinearSVC(C=C, class_weight="balanced", tol=1e-10, max_iter=10 ** 5).fit(x[:, None], y)


def dci(codes, factors, test_codes, test_factors, alpha=0.02):
    """Eastwood & Williams 2018 with their lasso regressor: R_jk = |w_jk| of a lasso of the
    standardised factor k on the standardised codes; D and C as 1 - entropies (disentanglement_lib's
    form, with its 1e-11), informativeness as the RMSE of the standardised factor."""
    mean, sd = codes.mean(axis=0), codes.std(axis=0)
    sd1 = np.where(sd > 0, sd, 1.0)
    X, Xt = (codes - mean) / sd1 * (sd > 0), (test_codes - mean) / sd1 * (sd > 0)
    L, F = codes.shape[1], factors.shape[1]
    R = np.zeros((L, F))
    err_train, err_test = [], []
    for k in range(F):
        ym, ys = factors[:, k].mean(), factors[:, k].std()
        y, yt = (factors[:, k] - ym) / ys, (test_factors[:, k] - ym) / ys
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Lasso(alpha=alpha, tol=1e-14, max_iter=10 ** 6).fit(X, y)
        R[:, k] = np.abs(model.coef_)
        err_train.append(np.sqrt(np.mean((y - model.predict(X)) ** 2)))
        err_test.append(np.sqrt(np.mean((yt - model.predict(Xt)) ** 2)))
    per_code = 1 - scipy.stats.entropy(R.T + 1e-11, base=F)
    per_factor = 1 - scipy.stats.entropy(R + 1e-11, base=L)
    W = R if R.sum() > 0 else np.ones_like(R)
    D = np.sum(per_code * W.sum(axis=1) / W.sum())
    Cm = np.sum(per_factor * W.sum(axis=0) / W.sum())
    return np.array([D, Cm, np.mean(err_train), np.mean(err_test)]), R


def beta_vae(codes, rows1, rows2, labels, n_train, C=1.0):
    """Higgins et al. 2017, Sec. 3: a linear classifier predicts the fixed factor from the mean
    absolute difference of the codes of pairs that share it. sklearn's LogisticRegression with
    its Newton solver: the default lbfgs minimises the same objective but stops once a step
    lowers it by less than 64 machine epsilons (relative), up to 1e-3 away in the weights."""
    feats = np.mean(np.abs(codes[rows1] - codes[rows2]), axis=1)
    model = LogisticRegression(C=C, solver="newton-cg", tol=1e-10, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(feats[:n_train], labels[:n_train])
    acc = [model.score(feats[:n_train], labels[:n_train]), model.score(feats[n_train:], labels[n_train:])]
    return feats, model, np.array(acc)


def factor_vae(codes, variance_rows, rows, labels, n_train, F, threshold=0.05):
    """Kim & Mnih 2018, Sec. 4: the argmin over dimensions of the batch variance divided by the
    global variance votes for the fixed factor; a majority vote classifies each dimension."""
    global_var = np.var(codes[variance_rows], axis=0, ddof=1)
    active = np.sqrt(global_var) >= threshold
    votes = np.zeros((2, F, codes.shape[1]), dtype=np.int64)
    for i in range(rows.shape[0]):
        local = np.var(codes[rows[i]], axis=0, ddof=1)
        dim = np.flatnonzero(active)[np.argmin(local[active] / global_var[active])]
        votes[0 if i < n_train else 1, labels[i], dim] += 1
    cls = np.argmax(votes[0], axis=0)
    acc = [np.sum(v[cls, np.arange(v.shape[1])]) / np.sum(v) for v in votes]
    return votes[0], np.array(acc + [active.sum()])


# ---- The comparison ---------------------------------------------------------------------------

failures = []


def check(name, got, want, tol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    diff = np.max(np.abs(got - want)) if got.size else 0.0
    ok = got.shape == want.shape and diff <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |C++ - reference| = {diff:.3g} (tolerance {tol:g})")
    if not ok:
        print("  C++:      ", got.ravel()[:12])
        print("  reference:", want.ravel()[:12])
        failures.append(name)


def main():
    build = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "case.h5")
        exe = os.path.join(build, "tests", "vae_disentanglement_test")
        r = subprocess.run([exe, "--gtest_filter=DisentanglementReference.*"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=300,
                           env=dict(os.environ, VD_DISENTANGLEMENT_REFERENCE=path))
        if not os.path.exists(path):
            print(r.stdout)
            print(f"{exe} did not write the case")
            return 1
        if r.returncode != 0:  # its own checks failed; compare anyway, and fail
            print(r.stdout)
            failures.append("the C++ test's own checks")
        with h5py.File(path, "r") as f:
            c = {k: f[k][...] for k in f.keys()}

    tr, trf, te, tef = c["train_codes"], c["train_factors"], c["test_codes"], c["test_factors"]
    score, m = mig(tr, trf)
    check("MIG mutual information [L, F]", c["mig_mi"], m, 1e-12)
    check("MIG", c["mig"], [score], 1e-12)

    score, acc = sap(tr, trf, te, tef)
    check("SAP accuracies [L, F]", c["sap_score"], acc, 0.0)
    check("SAP", c["sap"], [score], 0.0)
    model = svc(tr[:, 0], trf[:, 1], 0.01)
    check("LinearSVC weights (code 0, factor 1)", c["svc_w"], model.coef_.ravel(), 1e-7)
    check("LinearSVC intercepts (code 0, factor 1)", c["svc_b"], model.intercept_, 1e-7)

    scores, R = dci(tr, trf, te, tef)
    check("DCI importance [L, F]", c["dci_importance"], R, 1e-8)
    check("DCI disentanglement, completeness, train and test RMSE", c["dci"], scores, 1e-8)

    codes, factors = c["data_codes"], c["data_factors"]
    r1, r2, labels = c["beta_rows1"], c["beta_rows2"], c["beta_labels"]
    same = np.all(factors[r1, labels[:, None]] == factors[r2, labels[:, None]])
    print(f"{'ok  ' if same else 'FAIL'} beta-VAE pairs share their fixed factor")
    if not same:
        failures.append("beta-VAE draws")
    feats, model, acc = beta_vae(codes, r1, r2, labels, 1000)
    check("beta-VAE features", c["beta_features"], feats, 1e-12)
    check("beta-VAE eval probabilities", c["beta_eval_proba"], model.predict_proba(feats[1000:]), 1e-8)
    W, b = model.coef_, model.intercept_ - model.intercept_.mean()
    check("beta-VAE weights", c["beta_W"], W, 1e-7)
    check("beta-VAE intercepts (centred)", c["beta_b"], b, 1e-7)
    check("beta-VAE train and eval accuracy", c["beta_accuracy"], acc, 0.0)
    binary = labels[:1000] < 2
    model2 = LogisticRegression(solver="newton-cg", tol=1e-10, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model2.fit(feats[:1000][binary], labels[:1000][binary])
    check("binary logistic regression weights", c["binary_w"], model2.coef_.ravel(), 1e-7)
    check("binary logistic regression intercept", c["binary_b"], model2.intercept_, 1e-7)
    default = LogisticRegression().fit(feats[:1000], labels[:1000])  # disentanglement_lib's call
    print("     sklearn's default lbfgs: eval probabilities within "
          f"{np.max(np.abs(default.predict_proba(feats[1000:]) - c['beta_eval_proba'])):.2g}, eval accuracy "
          f"{default.score(feats[1000:], labels[1000:])} (C++ {c['beta_accuracy'][1]})")

    rows, flabels = c["factor_rows"], c["factor_labels"]
    same = np.all(factors[rows, flabels[:, None]] == factors[rows[:, :1], flabels[:, None]])
    print(f"{'ok  ' if same else 'FAIL'} FactorVAE batches share their fixed factor")
    if not same:
        failures.append("FactorVAE draws")
    votes, acc = factor_vae(codes, c["factor_variance_rows"], rows, flabels, 1000, factors.shape[1])
    check("FactorVAE train votes [F, L]", c["factor_train_votes"], votes, 0.0)
    check("FactorVAE train and eval accuracy, active dims", c["factor_accuracy"], acc, 0.0)

    if failures:
        print(f"{len(failures)} disagreement(s): {', '.join(failures)}")
        return 1
    print("all metrics agree with the numpy/scikit-learn reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
