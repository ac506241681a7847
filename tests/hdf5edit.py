"""Editing this project's HDF5 files in tests: ``edit(path, fn)`` applies ``fn(h5py.File)``
and then refreshes the SHA-256 digest of every dataset, so the reader sees a deliberately
edited (not a damaged) file and its field checks are what the test exercises."""
from __future__ import annotations

import h5py

from snncore import fileio


def restamp(f: h5py.File) -> None:
    """Store the current digest on every dataset of ``f`` (opened for writing)."""
    datasets = []
    f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
    for ds in datasets:
        fileio.string_attr(ds.attrs, fileio.DIGEST_ATTR, fileio.array_digest(ds[()]))


def edit(path, fn) -> None:
    with h5py.File(path, "r+") as f:
        fn(f)
        restamp(f)
