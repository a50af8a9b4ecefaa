"""Test fixture only: convert the Fashion-MNIST IDX files into the vae_dist HDF5 layout.
The real converter is the C++ tool vae_data; this exists so the reference scripts can be run standalone."""
import argparse
import gzip
import os

import h5py
import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: expected unsigned-byte IDX, magic {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size mismatch")
    return data.reshape(dims)


def convert(images_gz, labels_gz, out):
    images = read_idx(images_gz)
    labels = read_idx(labels_gz)
    assert images.shape[0] == labels.shape[0]
    images = images.reshape(images.shape[0], 1, images.shape[1], images.shape[2])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with h5py.File(out, "w") as f:
        f.create_dataset("images", data=images, dtype=np.uint8)
        f.create_dataset("labels", data=labels, dtype=np.uint8)
    print(f"wrote {out}: images {images.shape} labels {labels.shape}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--src", default="/usr/share/datasets/fashion-mnist",
                   help="directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz")
    p.add_argument("--out-dir", default="/tmp/fm", help="writes train.h5 and test.h5 here")
    a = p.parse_args()
    for prefix, name in (("train", "train.h5"), ("t10k", "test.h5")):
        convert(os.path.join(a.src, f"{prefix}-images-idx3-ubyte.gz"),
                os.path.join(a.src, f"{prefix}-labels-idx1-ubyte.gz"),
                os.path.join(a.out_dir, name))


if __name__ == "__main__":
    main()
