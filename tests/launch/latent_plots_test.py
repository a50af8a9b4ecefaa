#!/usr/bin/env python3
"""Tests of launch/latent_plots.py: the PCA projection against an SVD computed here with
numpy, the raw 2-D latent, t-SNE on separated clusters, the charts written from files shaped
like vae_latent's and vae_dist's (old and new metrics.csv columns), the ROC-AUC of a scores
file's evaluated rows against a hand count, and the message naming the
missing package. Exits 77 (ctest: skipped) when the chart packages are not installed."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "launch", "latent_plots.py")
sys.path.insert(0, os.path.dirname(SCRIPT))

try:
    import h5py
    import matplotlib  # noqa: F401
    import numpy as np
    import sklearn  # noqa: F401
except ImportError as e:
    print(f"SKIP: the chart packages are not installed ({e}); "
          "run: sudo bash launch/setup.sh --with-charts")
    sys.exit(77)

import latent_plots  # noqa: E402


class Projection(unittest.TestCase):
    def test_pca_matches_an_independent_svd(self):
        rng = np.random.default_rng(1)
        mu = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
        got = latent_plots.project(mu, "pca")
        centred = mu - mu.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        want = u[:, :2] * s[:2]
        for j in range(2):  # a component's sign is arbitrary
            sign = np.sign(got[:, j] @ want[:, j])
            np.testing.assert_allclose(sign * got[:, j], want[:, j], atol=1e-8)

    def test_raw_is_the_codes_and_needs_two_dimensions(self):
        mu = np.arange(10.0).reshape(5, 2)
        np.testing.assert_array_equal(latent_plots.project(mu, "raw"), mu)
        with self.assertRaises(ValueError):
            latent_plots.project(np.zeros((5, 3)), "raw")

    def test_tsne_keeps_separated_clusters_apart(self):
        rng = np.random.default_rng(2)
        labels = np.repeat(np.arange(3), 40)
        mu = rng.normal(size=(120, 10)) * 0.3 + 8.0 * np.eye(10)[labels]
        xy = latent_plots.project(mu, "tsne", seed=0)
        self.assertEqual(xy.shape, (120, 2))
        # Every point's nearest neighbour in the plane is of its own cluster.
        d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        self.assertTrue((labels[d.argmin(axis=1)] == labels).all())


class Charts(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def run_script(self, *args, env=None):
        return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                              env=env)

    def test_scatter_of_an_encodings_file(self):
        with h5py.File(self.path("enc.h5"), "w") as f:
            f["mu"] = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
            f["logvar"] = np.zeros((200, 3), np.float32)
            f["labels"] = np.arange(200, dtype=np.int32) % 4
        for method in ("pca",):  # t-SNE is tested above; a second run costs seconds
            r = self.run_script("scatter", "--latent", self.path("enc.h5"), "--method", method,
                                "--out", self.path(method + ".png"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.getsize(self.path(method + ".png")) > 1000)
        r = self.run_script("scatter", "--latent", self.path("enc.h5"), "--method", "raw",
                            "--out", self.path("raw.png"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("needs a 2-D latent", r.stderr)

    def test_curves_from_old_and_new_metrics_columns(self):
        old = ("split,epoch,step,samples,loss,recon,kl,lr,images_per_s\n"
               "train,1,10,1280,300,290,10,0.001,5000\n"
               "test,1,10,1280,290,281,9,0.001,0\n"
               "test_iw,1,10,1280,288,nan,nan,0.001,0\n")
        new = ("split,epoch,step,samples,loss,recon,kl,lr,images_per_s,active_units,kl_per_dim\n"
               "train,1,10,1280,300,290,10,0.001,5000,,\n"
               "test,1,10,1280,290,281,9,0.001,0,2,4.5 4.5\n")
        for name, text in (("old.csv", old), ("new.csv", new)):
            with open(self.path(name), "w") as f:
                f.write(text)
            rows = latent_plots.read_metrics(self.path(name))
            self.assertEqual([r["split"] for r in rows][:2], ["train", "test"])
            self.assertEqual(rows[1]["kl"], 9.0)
            r = self.run_script("curves", "--metrics", self.path(name), "--out",
                                self.path(name + ".png"))
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_roc_of_a_scores_file_uses_the_evaluated_rows(self):
        # D: 6 rows, row 1 held out; anomalies: 2 rows. Evaluated: rows 0, 2..5 of D, then both.
        with h5py.File(self.path("s.h5"), "w") as f:
            f["neg_elbo"] = np.array([1.0, 9.0, 2.0, 5.0, 3.0, 4.0])
            f["psnr"] = -np.array([1.0, 9.0, 2.0, 5.0, 3.0, 4.0])
            f["anomalous"] = np.array([0, 0, 0, 1, 0, 0], np.uint8)
            f["held_out"] = np.array([0, 1, 0, 0, 0, 0], np.uint8)
            f["anomalies/neg_elbo"] = np.array([4.0, 0.5])
            f["anomalies/psnr"] = -np.array([4.0, 0.5])
        got = latent_plots.roc_curves(self.path("s.h5"))
        # Anomalies 5, 4, 0.5 against normal 1, 2, 3, 4: pairs won 4 + (3 + 1/2) + 0 of 12.
        self.assertAlmostEqual(got["neg_elbo"][2], 7.5 / 12, places=12)
        self.assertAlmostEqual(got["psnr"][2], 7.5 / 12, places=12)  # ranked by its negative
        r = self.run_script("roc", "--scores", self.path("s.h5"), "--out", self.path("roc.png"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.getsize(self.path("roc.png")) > 1000)

    def test_a_missing_package_is_named_with_the_setup_command(self):
        # A sklearn that fails to import stands in for the missing package.
        fake = self.path("fake")
        os.makedirs(os.path.join(fake, "sklearn"))
        with open(os.path.join(fake, "sklearn", "__init__.py"), "w") as f:
            f.write("raise ImportError('No module named sklearn')\n")
        env = dict(os.environ, PYTHONPATH=fake)
        r = self.run_script("scatter", "--latent", "x.h5", "--out", "x.png", env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("python3-sklearn", r.stderr)
        self.assertIn("launch/setup.sh --with-charts", r.stderr)


if __name__ == "__main__":
    unittest.main()
