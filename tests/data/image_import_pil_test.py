#!/usr/bin/env python3
"""vae_data import-images against PIL: a folder of random images that PIL writes (RGB, L,
palette and RGBA PNGs, RGB and L JPEGs; larger and smaller than the target, wide and tall) is
imported at 24x24 and 20x32, gray and RGB; every pixel is compared with PIL's
Image.open(p).convert(mode).resize(size, Image.BILINEAR).crop(box), the size and box as
torchvision's Resize(24) + CenterCrop(24) compute them (for 20x32, the smallest size that
covers the target). The labels must be the sorted class folders. Prints the agreement; fails
when a pixel differs by more than 1 grey level or fewer than 99.9% are equal (measured: all
are equal, JPEGs included, as both decode with Debian's libjpeg-turbo).

Usage: image_import_pil_test.py BUILD_DIR. Run with Debian's /usr/bin/python3. Exits 77
(skipped) when PIL, numpy or h5py is missing; CI's Python phase installs them and fails on a skip.
"""
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
    from PIL import Image
except ImportError as e:  # ctest reports the test as skipped
    print(f"skipped: {e.name} is not installed (bash launch/setup.sh --with-charts installs it)")
    sys.exit(77)


def covering_size(w, h, th, tw):
    """torchvision's Resize(int): the short side to the target, the long one int(t * long / short);
    with a non-square target, the side whose ratio is larger goes to its target."""
    if th * w >= tw * h:
        return int(th * w / h), th
    return tw, int(tw * h / w)


def center_crop_box(w, h, th, tw):
    """torchvision's CenterCrop: int(round((size - target) / 2.0)), Python's round."""
    top = int(round((h - th) / 2.0))
    left = int(round((w - tw) / 2.0))
    return left, top, left + tw, top + th


def pil_reference(path, mode, th, tw):
    im = Image.open(path).convert(mode)
    w, h = covering_size(im.width, im.height, th, tw)
    im = im.resize((w, h), Image.BILINEAR)
    im = im.crop(center_crop_box(w, h, th, tw))
    a = np.asarray(im, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def make_folder(root, rng):
    """Three classes of images of every kind; returns the paths in torchvision's order."""
    paths, labels = [], []
    kinds = ["rgb.png", "l.png", "p.png", "rgba.png", "rgb.jpg", "l.jpg"]
    for k, cls in enumerate(["apple", "banana", "cherry"]):
        os.makedirs(os.path.join(root, cls))
        names = []
        for i in range(14):
            kind = kinds[i % len(kinds)]
            h, w = int(rng.integers(9, 90)), int(rng.integers(9, 90))
            # Smooth images (as photographs are) plus noise, so JPEG and the filter both matter.
            yy, xx = np.mgrid[0:h, 0:w]
            base = 128 + 100 * np.sin(xx / (3 + i) + k) * np.cos(yy / (4 + i))
            rgb = np.stack([base, base[::-1], 255 - base], -1) + rng.normal(0, 12, (h, w, 3))
            rgb = np.clip(rgb, 0, 255).astype(np.uint8)
            im = Image.fromarray(rgb)
            if kind.startswith("l."):
                im = im.convert("L")
            elif kind == "p.png":
                im = im.quantize(colors=64)
            elif kind == "rgba.png":
                im = im.convert("RGBA")
                im.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)))
            name = f"{i:02d}_{kind}"
            im.save(os.path.join(root, cls, name), quality=90) if kind.endswith(".jpg") else \
                im.save(os.path.join(root, cls, name))
            names.append(name)
        for name in sorted(names):
            paths.append(os.path.join(root, cls, name))
            labels.append(k)
    return paths, labels


def main():
    build = sys.argv[1]
    rng = np.random.default_rng(25)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "fruit")
        paths, labels = make_folder(root, rng)
        for th, tw in [(24, 24), (20, 32)]:
            for channels, mode in [(3, "RGB"), (1, "L")]:
                out = os.path.join(tmp, f"f{th}x{tw}_{channels}.h5")
                cmd = [f"{build}/vae_data", "import-images", root, "--out", out,
                       "--size", f"{th}x{tw}", "--channels", str(channels), "--threads", "2"]
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, timeout=300)
                if r.returncode != 0:
                    print(" ".join(cmd), "\n", r.stdout)
                    return 1
                with h5py.File(out, "r") as f:
                    got = f["images"][...]
                    got_labels = f["labels"][...]
                    names = [str(n) for n in f["labels"].attrs["class_names"]]
                ref = np.stack([pil_reference(p, mode, th, tw) for p in paths])
                if got.shape != ref.shape:
                    print(f"shape {got.shape}, PIL {ref.shape}")
                    return 1
                if list(got_labels) != labels or names != ["apple", "banana", "cherry"]:
                    print(f"labels {list(got_labels)} / {names}, expected {labels}")
                    failures += 1
                d = np.abs(got.astype(int) - ref.astype(int))
                exact, within1 = np.mean(d == 0), np.mean(d <= 1)
                print(f"{th}x{tw} {mode}: {d.size} pixels of {len(paths)} images: "
                      f"{100 * exact:.3f}% equal to PIL, {100 * within1:.3f}% within 1, "
                      f"max difference {d.max()}")
                if within1 < 1 or exact < 0.999:
                    failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
