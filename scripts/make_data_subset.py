#!/usr/bin/env python3
"""Make the committed class-balanced Fashion-MNIST subset in ``data/fashion-mnist-small/``.

From the official splits it draws, without replacement, ``--train-per-class`` training images
and ``--test-per-class`` test images of every class, with ``np.random.default_rng([seed, 0])``
for the training split and ``np.random.default_rng([seed, 1])`` for the test split (class by
class, 0..9, then the chosen indices are sorted so the subset keeps the original order).  It
writes, gzip level 9 with a name-less, mtime-0 gzip header (reproducible bytes):

- ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` (the standard names), and
- ``train-indices-idx1-int.gz``, ``t10k-indices-idx1-int.gz``: int32 ``[N]``, the index of
  each subset image in the official split (provenance; the tests check it).

Before subsetting it checks that the decompressed source files have the SHA-256 digests of
the official Fashion-MNIST payloads, and afterwards it prints the SHA-256 of every file written.

Usage (the command that made the committed files):

    python scripts/make_data_subset.py --source /usr/share/datasets/fashion-mnist \\
        --out data/fashion-mnist-small --seed 20170825
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snncore.datasets import (  # noqa: E402
    FASHION_MNIST_PAYLOAD_SHA256,
    SPLIT_FILES,
    load_fashion_mnist,
    write_idx,
)

INDEX_FILES = {"train": "train-indices-idx1-int.gz", "test": "t10k-indices-idx1-int.gz"}
_STREAM = {"train": 0, "test": 1}


def select_balanced(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` examples of every class ``0..labels.max()``, drawn without
    replacement with ``rng`` (class by class in increasing label order)."""
    chosen = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has only {len(members)} examples, {per_class} requested")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The generator used for ``split``: ``default_rng([seed, 0])`` train, ``[seed, 1]`` test."""
    return np.random.default_rng([seed, _STREAM[split]])


def _sha256(path: Path, decompress: bool = False) -> str:
    data = path.read_bytes()
    return hashlib.sha256(gzip.decompress(data) if decompress and data[:2] == b"\x1f\x8b" else data).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=None,
                    help="directory with the official Fashion-MNIST files (default: the loader's search order)")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--seed", type=int, required=True, help="random seed (the committed subset used 20170825)")
    ap.add_argument("--train-per-class", type=int, default=500)
    ap.add_argument("--test-per-class", type=int, default=100)
    args = ap.parse_args(argv)

    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        full = load_fashion_mnist(args.source, split=split, download=False)
        if args.source is not None:
            for fname in SPLIT_FILES[split]:
                src = args.source / fname
                if src.is_file() and _sha256(src, decompress=True) != FASHION_MNIST_PAYLOAD_SHA256[fname]:
                    raise SystemExit(f"{src}: decompressed content is not the official Fashion-MNIST file")
        idx = select_balanced(full.labels, per_class, split_rng(args.seed, split))
        images_name, labels_name = SPLIT_FILES[split]
        write_idx(args.out / images_name, full.images[idx])
        write_idx(args.out / labels_name, full.labels[idx].astype(np.uint8))
        write_idx(args.out / INDEX_FILES[split], idx.astype(np.int32))
        print(f"{split}: {len(idx)} images, {per_class} per class, from {len(full)}")

    print("\nSHA-256 (file as stored / decompressed IDX payload), size in bytes:")
    for path in sorted(args.out.glob("*.gz")):
        print(f"{path.name:30s} {_sha256(path)}  {_sha256(path, decompress=True)}  {path.stat().st_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
