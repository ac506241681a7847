"""Atomic file output shared by every writer (model files, recordings, checkpoints, data).

``with atomic_output(path) as tmp: write(tmp)`` writes to a new temporary file next to
``path`` (created like ``open`` would: mode 0666 minus the umask), then fsyncs it and
renames it over ``path``; if the body raises (or the process is interrupted), the temporary
file is removed and an existing ``path`` is left exactly as it was.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator


def _temporary_file(target: Path) -> Path:
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {target}")


def _fsync(path: Path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return  # platforms where directories cannot be opened
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically."""
    target = Path(path).absolute()
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_file(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(target.parent, directory=True)


def open_hdf5(path, what: str, error: type[Exception]):
    """Open ``path`` for reading as HDF5 (``h5py.File``); a missing file raises
    FileNotFoundError naming ``what`` ("model file", ...), an unreadable one ``error``."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise error(f"{path}: not a readable HDF5 file ({e})") from None
