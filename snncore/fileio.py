"""File helpers shared by every writer and reader (model files, recordings, checkpoints, data).

``with atomic_output(path) as tmp: write(tmp)`` writes to a new temporary file next to
``path`` (created like ``open`` would: mode 0666 minus the umask), then fsyncs it and
renames it over ``path``; if the body raises (or the process is interrupted), the temporary
file is removed and an existing ``path`` is left exactly as it was.

``check_output(path, kind, overwrite, inputs)`` is called by every writer first: no file of
another kind (``file_kind``) or input of the command is ever replaced, and a file of the
same kind only with ``overwrite``.  ``write_array``/``read_array`` store and check a SHA-256
digest per HDF5 dataset; ``string_attr`` keeps strings in checksummed object headers.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import Iterator

import numpy as np


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


# ---------------------------------------------------------------------------------------
# what an existing file is, and whether a writer may replace it
# ---------------------------------------------------------------------------------------
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FORMAT_KINDS = {"snn-model": "model", "snn-checkpoint": "checkpoint", "snn-recording": "recording",
                "snn-events": "events"}
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"%PDF-", b"%!PS", b"GIF8",
                     b"II*\x00", b"MM\x00*", b"RIFF")
_DESCRIPTIONS = {"model": "model file", "checkpoint": "checkpoint", "recording": "recording",
                 "events": "event file", "nir": "NIR graph",
                 "hdf5": "HDF5 file that is not a model, checkpoint or recording",
                 "image": "figure", "directory": "directory", "other": "file of another kind"}


def _hdf5_format(path: Path) -> str | None:
    """The root ``format`` attribute of an HDF5 file, or None when absent or unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("format")
    except Exception:  # noqa: BLE001 - a damaged or foreign HDF5 file has no usable format
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _is_nir(path: Path) -> bool:
    """An HDF5 file laid out as NIR writes it: a ``node`` group and a ``version`` dataset."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get("node"), h5py.Group) and isinstance(f.get("version"), h5py.Dataset)
    except Exception:  # noqa: BLE001 - a damaged file is not recognisably NIR
        return False


def _looks_like_image(head: bytes) -> bool:
    if head.startswith(_IMAGE_SIGNATURES):
        return True
    text = head.lstrip().lower()
    return text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)


def file_kind(path) -> str | None:
    """What is at ``path``: None (nothing), ``"empty"`` (a file of 0 bytes), ``"directory"``,
    ``"model"``, ``"checkpoint"``, ``"recording"``, ``"events"`` (by the root ``format``
    attribute of this project's HDF5 formats), ``"nir"`` (a NIR graph: ``node`` group and
    ``version`` dataset), ``"hdf5"`` (any other HDF5 file, or a damaged one),
    ``"image"`` (PNG, JPEG, PDF, PostScript, SVG, GIF, TIFF, WebP) or ``"other"``."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_dir():
        return "directory"
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head:
        return "empty"
    if head.startswith(HDF5_SIGNATURE) or HDF5_SIGNATURE in head:  # userblocks of 512 bytes
        kind = FORMAT_KINDS.get(_hdf5_format(path))
        return kind or ("nir" if _is_nir(path) else "hdf5")
    return "image" if _looks_like_image(head) else "other"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path, kind: str, overwrite: bool = False, inputs=()) -> Path:
    """Refuse to write a ``kind`` file ("model", "checkpoint", "recording" or "image") at
    ``path`` when that would destroy something; returns ``path`` as a Path.

    Raises FileExistsError (one line, naming the path) when ``path`` is one of ``inputs``
    (the files this command reads), when it holds anything of another kind (a model is
    never replaced by a recording, a checkpoint by a model, a data set by a figure, ...;
    ``overwrite`` does not change that), or when it holds a file of the same kind and
    ``overwrite`` is False.  Figures (``kind="image"``) replace existing figures without
    ``overwrite``: they are redrawn from their inputs at no cost.  Missing and empty files
    may always be written.
    """
    path = Path(path)
    what = _DESCRIPTIONS.get(kind, kind)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise FileExistsError(f"{path} is an input of this command; refusing to replace "
                                  f"it with a {what} (choose another path)")
    existing = file_kind(path)
    if existing in (None, "empty"):
        return path
    if existing != kind:
        article = "an" if _DESCRIPTIONS[existing][0] in "aeiouH" else "a"
        raise FileExistsError(f"{path} is {article} {_DESCRIPTIONS[existing]}; refusing to "
                              f"replace it with a {what} (choose another path)")
    if not overwrite and kind != "image":
        article = "an" if what[0] in "aeiou" else "a"
        raise FileExistsError(f"{path} already exists ({article} {what}); pass overwrite=True "
                              f"(--overwrite on the command line) to replace it")
    return path


# ---------------------------------------------------------------------------------------
# arrays with a digest, strings in checksummed headers
# ---------------------------------------------------------------------------------------
DIGEST_ATTR = "sha256"
HDF5_LIBVER = ("v110", "v110")  # object headers (attributes, links) carry checksums


def array_digest(a: np.ndarray) -> str:
    """SHA-256 (hex) of the bytes of ``a`` in C order, in its dtype (byte order included)."""
    flat = np.ascontiguousarray(a).reshape(-1)
    return hashlib.sha256(flat.view(np.uint8)).hexdigest()


def string_attr(attrs, name: str, value: str) -> None:
    """Store ``value`` as a fixed-length UTF-8 attribute: it then lives in the object
    header, which the HDF5 1.10 format checksums (variable-length strings live in the
    global heap, which has no checksum)."""
    import h5py

    if "\x00" in value:  # fixed-length strings end at the first NUL: it would not read back
        raise ValueError(f"attribute {name!r}: strings with NUL characters cannot be stored")
    data = value.encode("utf-8")
    attrs.create(name, data=np.bytes_(data), dtype=h5py.string_dtype("utf-8", max(len(data), 1)))


def write_array(group, name: str, value: np.ndarray):
    """Create dataset ``name`` holding ``value`` (contiguous layout) with the SHA-256
    digest of its contents as the fixed-length string attribute ``sha256``.

    The digest, rather than HDF5's Fletcher-32 filter, guards the data: it catches what
    the filter catches, needs no chunking, and costs less (SHA-256 of an 800x784 float32
    array: ~4 ms; the filter with its chunk copy: ~8 ms, on reading and on writing).
    """
    import h5py

    value = np.asarray(value)
    if value.dtype.kind in "SU":
        data = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in value.reshape(-1)]
        if any(b"\x00" in s for s in data):
            raise ValueError(f"dataset {name!r}: strings with NUL characters cannot be stored")
        dt = h5py.string_dtype("utf-8", max([len(s) for s in data] + [1]))
        value = np.array(data, dtype=dt).reshape(value.shape)
    ds = group.create_dataset(name, data=value)
    string_attr(ds.attrs, DIGEST_ATTR, array_digest(value))
    return ds


def read_array(ds, path, error: type[Exception], require_digest: bool) -> np.ndarray:
    """The contents of dataset ``ds`` of file ``path``, checked against its stored digest.

    A read failure (e.g. a failed HDF5 filter checksum in files of other writers) or a
    digest mismatch raises ``error`` naming the file and the dataset; so does a missing digest when ``require_digest`` (files of the
    format versions that always store one).
    """
    where = f"{path}: dataset {ds.name}"
    try:
        value = np.asarray(ds[()])
        stored = ds.attrs.get(DIGEST_ATTR)
    except Exception as e:  # noqa: BLE001 - h5py raises OSError (filters) and others
        raise error(f"{where} is damaged ({type(e).__name__}: {' '.join(str(e).split())})") from None
    if stored is None:
        if require_digest:
            raise error(f"{where} has no {DIGEST_ATTR} digest (damaged, or edited "
                        "without updating it)")
        return value
    if isinstance(stored, bytes):
        stored = stored.decode("ascii", "replace")
    if not isinstance(stored, str) or value.dtype.kind == "O" or stored != array_digest(value):
        raise error(f"{where} is damaged: its contents do not match the stored "
                    f"{DIGEST_ATTR} digest")
    return value
