"""MNIST-family image datasets: the IDX file format, locating the files, and downloading them.

A :class:`Dataset` is a frozen record of ``images: uint8 [N, 28, 28]`` (pixel intensities
0..255, row-major, white-on-black) and ``labels: int64 [N]`` (class indices 0..9).
:meth:`Dataset.float_images` turns the pixels into the network input, ``x = pixel / 255`` in
``[0, 1]``, shaped ``[N, 1, 28, 28]`` (channel-first) or ``[N, 784]``; ``training.encoding``
then turns ``x`` into a time-major ``[T, N, ...]`` input.

Where the files are looked for
------------------------------
:func:`load_fashion_mnist` and :func:`load_mnist` need the two standard files of a split
(``train-images-idx3-ubyte.gz`` + ``train-labels-idx1-ubyte.gz`` or ``t10k-images-idx3-ubyte.gz``
+ ``t10k-labels-idx1-ubyte.gz``; the un-gzipped names are accepted as well).  They look in:

1. the ``path`` argument, if given -- and then *only* there (an explicit location is a
   requirement, not a hint; with ``download=True`` missing files are downloaded into it);
2. the directory named by ``$FASHION_MNIST_DIR`` / ``$MNIST_DIR``, then ``$SNN_DATA_DIR/<name>``;
3. the repository's ``data/<name>/`` (``<name>`` is ``fashion-mnist`` or ``mnist``);
4. ``/usr/share/datasets/<name>/`` (Debian/Ubuntu: ``apt-get install dataset-fashion-mnist``);
5. otherwise, with ``download=True``, the files are downloaded from the publisher into
   ``data/<name>/`` and checked against the SHA-256 digests below.

If all of that fails a :class:`FileNotFoundError` lists every place searched and how to get
the data.

Integrity
---------
Downloads are checked against the SHA-256 of the publishers' ``.gz`` files (Fashion-MNIST:
the files whose MD5s the Zalando README publishes; MNIST: the ossci-datasets mirror that
torchvision uses, byte-identical to the original LeCun files).  Files found locally are *not*
required to match those digests, because re-compressing changes the ``.gz`` bytes without
changing the data -- Debian's ``dataset-fashion-mnist`` for instance ships normalised gzip
headers (no file name, fixed mtime), so its ``.gz`` digests differ from the publisher's while
the decompressed IDX payloads are identical (:data:`FASHION_MNIST_PAYLOAD_SHA256`).  Every
file, wherever it comes from, is parsed strictly by :func:`read_idx` (magic number, element
type, dimensions, exact byte count) and the label/image counts and label range are checked.

No pickle is used anywhere: IDX is a plain binary format.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .fileio import atomic_output

from .dtypes import get_default_dtype

__all__ = [
    "Dataset",
    "read_idx",
    "parse_idx",
    "write_idx",
    "load_fashion_mnist",
    "load_mnist",
    "load_fashion_mnist_small",
    "download",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "FASHION_MNIST_PAYLOAD_SHA256",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: ``data/`` in the repository: downloads go to ``REPO_DATA_DIR/<name>``.
REPO_DATA_DIR = REPO_ROOT / "data"
#: Where Debian's ``dataset-*`` packages install (``/usr/share/datasets/<name>``).
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
#: The committed class-balanced Fashion-MNIST subset (see ``data/README.md``).
FASHION_MNIST_SMALL_DIR = REPO_DATA_DIR / "fashion-mnist-small"

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))

#: ``split -> (images file, labels file)``, the standard names of every MNIST-family dataset.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: SHA-256 of the *decompressed* official Fashion-MNIST IDX files (independent of gzip
#: settings; computed from Debian's ``dataset-fashion-mnist`` and matching the payload of the
#: publisher's archives).
FASHION_MNIST_PAYLOAD_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


@dataclass(frozen=True)
class _Source:
    """Where one dataset lives and what its official files are."""

    name: str                       # directory name: data/<name>, /usr/share/datasets/<name>
    title: str                      # for messages
    env_var: str                    # e.g. FASHION_MNIST_DIR
    base_url: str                   # download location; file names are appended
    gz_sha256: Mapping[str, str]    # SHA-256 of the publisher's .gz files
    n: Mapping[str, int]            # images per split
    classes: tuple
    debian_package: str | None = None


_FASHION_MNIST = _Source(
    name="fashion-mnist",
    title="Fashion-MNIST",
    env_var="FASHION_MNIST_DIR",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    gz_sha256={
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    n={"train": 60000, "test": 10000},
    classes=FASHION_MNIST_CLASSES,
    debian_package="dataset-fashion-mnist",
)

_MNIST = _Source(
    name="mnist",
    title="MNIST",
    env_var="MNIST_DIR",
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    gz_sha256={
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    n={"train": 60000, "test": 10000},
    classes=MNIST_CLASSES,
)

_SOURCES = {s.name: s for s in (_FASHION_MNIST, _MNIST)}


# ---------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """One split of an image-classification dataset.

    Attributes:
        images: ``uint8 [N, H, W]`` pixel intensities 0..255 (``H = W = 28`` for MNIST-family).
        labels: ``int64 [N]`` class indices in ``[0, len(classes))``.
        classes: class names, ``classes[k]`` names label ``k``.
        name: e.g. ``"fashion-mnist"``; ``split``: ``"train"`` or ``"test"``.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple = ()
    name: str = ""
    split: str = ""

    def __post_init__(self):
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"Dataset.images must be a uint8 [N, H, W] array, got "
                             f"{getattr(images, 'dtype', type(images).__name__)} "
                             f"{getattr(images, 'shape', '')}")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
            raise ValueError(f"Dataset.labels must be an int64 [N] array, got "
                             f"{getattr(labels, 'dtype', type(labels).__name__)} "
                             f"{getattr(labels, 'shape', '')}")
        if len(images) != len(labels):
            raise ValueError(f"Dataset has {len(images)} images but {len(labels)} labels")
        if len(labels) and labels.min() < 0:
            raise ValueError(f"Dataset.labels contains negative label {labels.min()}")
        if self.classes and len(labels) and labels.max() >= len(self.classes):
            raise ValueError(f"Dataset.labels contains label {labels.max()} but there are only "
                             f"{len(self.classes)} classes")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else int(self.labels.max()) + 1

    def float_images(self, dtype=None, flatten: bool = False) -> np.ndarray:
        """Pixels scaled to ``[0, 1]``: ``x = images / 255`` (correctly rounded, so 255 -> 1.0).

        Args:
            dtype: ``np.float32`` or ``np.float64``; default ``snncore.dtypes.get_default_dtype()`` (``training.set_default_dtype`` sets it).
            flatten: ``False`` -> ``[N, 1, H, W]`` (channel-first, as PyTorch);
                ``True`` -> ``[N, H*W]``.

        Returns:
            A new C-contiguous array of ``dtype``.
        """
        dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
        if dtype.kind != "f":
            raise ValueError(f"float_images needs a floating dtype, got {dtype.name}")
        x = self.images.astype(dtype) / dtype.type(255)
        n, h, w = self.images.shape
        return x.reshape(n, h * w) if flatten else x.reshape(n, 1, h, w)

    def subset(self, index) -> "Dataset":
        """The examples ``index`` selects (an int array or a boolean mask), as a new Dataset."""
        return Dataset(np.ascontiguousarray(self.images[index]), np.ascontiguousarray(self.labels[index]),
                       self.classes, self.name, self.split)


# ---------------------------------------------------------------------------------------
# IDX format
# ---------------------------------------------------------------------------------------
# IDX (LeCun et al.): 2 zero bytes, one type byte, one byte ndim, ndim big-endian uint32
# dimensions, then the elements, big-endian, row-major.
_IDX_TYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped if the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:   # truncated stream, bad CRC/length, corrupt data
        raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from e


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX byte string; see :func:`read_idx`."""
    if len(data) < 4:
        raise ValueError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{name}: bad IDX magic number 0x{data[:4].hex()} "
                         f"(expected 0x0000 followed by type and ndim bytes)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{name}: unknown IDX element type code 0x{code:02x} "
                         f"(known: {', '.join(f'0x{c:02x}' for c in _IDX_TYPES)})")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, "
                         f"file has {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{name}: IDX data {what}: dimensions {dims} of {dtype.str[1:]} need "
                         f"{expected} bytes, got {len(data)}")
    arr = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))     # native byte order, writable copy


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a native-endian array.

    The IDX header is checked strictly: two zero bytes, a known element-type code
    (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
    ``0x0E`` float64), ``ndim >= 1`` and a byte count exactly equal to
    ``4 + 4*ndim + prod(dims) * itemsize``.  Compression is detected from the content (gzip
    magic bytes), not the file name.

    Returns:
        An array of shape ``dims`` (e.g. ``uint8 [60000, 28, 28]`` for an image file).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: corrupt or truncated file; the message names the file and the problem.
    """
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path, array: np.ndarray, compresslevel: int | None = 9) -> None:
    """Write ``array`` as an IDX file, gzip-compressed unless ``compresslevel`` is None.

    The gzip header carries no file name and mtime 0, so the same array always gives the same
    bytes (for a given zlib).  The file is written to a temporary file in the same directory
    and moved into place with ``os.replace``.
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype.name} "
                         f"(supported: uint8, int8, int16, int32, float32, float64)")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1..255 dimensions, got {array.ndim}")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(array, _IDX_TYPES[code]).tobytes()
    if compresslevel is not None:
        payload = gzip.compress(payload, compresslevel=compresslevel, mtime=0)
    _atomic_write(Path(path), [payload])


def _atomic_write(path: Path, chunks) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)


# ---------------------------------------------------------------------------------------
# Locating, downloading, loading
# ---------------------------------------------------------------------------------------
def _check_split(split: str) -> None:
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _find_file(directory: Path, gz_name: str) -> Path | None:
    """``directory/gz_name`` or its un-gzipped twin, whichever exists (gz preferred)."""
    for candidate in (directory / gz_name, directory / gz_name[: -len(".gz")]):
        if candidate.is_file():
            return candidate
    return None


def _split_paths(directory: Path, split: str) -> tuple[Path, Path] | None:
    found = [_find_file(directory, f) for f in SPLIT_FILES[split]]
    return None if None in found else (found[0], found[1])


def _candidates(src: _Source) -> list[tuple[str, Path | None]]:
    """Search locations 2-4 as ``(description, directory or None if unset)``."""
    env = os.environ.get(src.env_var)
    generic = os.environ.get("SNN_DATA_DIR")
    return [
        (f"${src.env_var}", Path(env).expanduser() if env else None),
        (f"$SNN_DATA_DIR/{src.name}", Path(generic).expanduser() / src.name if generic else None),
        ("repository data directory", REPO_DATA_DIR / src.name),
        (f"system datasets directory{f' (Debian package {src.debian_package})' if src.debian_package else ''}",
         SYSTEM_DATA_DIR / src.name),
    ]


def _download(url: str, dest: Path, sha256: str, progress: bool = True, timeout: float = 60.0) -> None:
    """Stream ``url`` into ``dest`` atomically, checking its SHA-256 before moving it into place.

    The bytes go to a temporary file next to ``dest`` (same file system), are hashed while
    they arrive, and replace ``dest`` with ``os.replace`` only if the digest matches; a
    partial or wrong download never appears under the final name.

    Raises:
        OSError (incl. ``urllib.error.URLError``): the download failed.
        ValueError: the SHA-256 does not match.
    """
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    with atomic_output(dest) as tmp:
        with open(tmp, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(1 << 16):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha256:
            raise ValueError(f"{url}: SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}; "
                             f"the download was discarded")


def download(name: str, directory=None, splits=("train", "test"), progress: bool = True) -> Path:
    """Download the official files of ``name`` (``"fashion-mnist"`` or ``"mnist"``).

    Files already present in ``directory`` (default ``data/<name>/`` in the repository) are
    kept; each missing one is fetched from the publisher with a progress bar, checked against
    its hard-coded SHA-256 and written atomically.

    Returns:
        The directory holding the files.
    """
    if name not in _SOURCES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(_SOURCES)}")
    src = _SOURCES[name]
    directory = Path(directory).expanduser() if directory is not None else REPO_DATA_DIR / src.name
    for split in splits:
        _check_split(split)
        for fname in SPLIT_FILES[split]:
            if _find_file(directory, fname) is None:
                _download(src.base_url + fname, directory / fname, src.gz_sha256[fname], progress)
    return directory


def _how_to_get(src: _Source) -> str:
    lines = [f"To get {src.title}:"]
    if src.debian_package:
        lines.append(f"  - apt-get install {src.debian_package}   (installs into {SYSTEM_DATA_DIR / src.name})")
    lines += [
        f"  - or put the four files ({', '.join(f for s in SPLIT_FILES.values() for f in s)}) in a "
        f"directory and set {src.env_var}=<directory> (or SNN_DATA_DIR=<parent of {src.name}/>)",
        f"  - or download them from {src.base_url} into {REPO_DATA_DIR / src.name} "
        f"(load with download=True does this)",
    ]
    return "\n".join(lines)


def _locate(src: _Source, split: str, path, download_: bool) -> tuple[Path, Path]:
    """The (images, labels) files of ``split``, following the module's search order."""
    _check_split(split)
    needed = " + ".join(SPLIT_FILES[split])
    if path is not None:
        directory = Path(path).expanduser()
        found = _split_paths(directory, split)
        if found is not None:
            return found
        searched = [f"  - path argument: {directory}"]
        download_dir = directory
    else:
        searched = []
        for description, directory in _candidates(src):
            if directory is None:
                searched.append(f"  - {description}: (not set)")
                continue
            found = _split_paths(directory, split)
            if found is not None:
                return found
            searched.append(f"  - {description}: {directory}")
        download_dir = REPO_DATA_DIR / src.name

    if download_:
        try:
            download(src.name, download_dir, splits=(split,))
        except (OSError, ValueError) as e:   # URLError, timeouts, read-only dir, bad digest
            searched.append(f"  - download from {src.base_url} into {download_dir}: failed ({e})")
            raise FileNotFoundError(_not_found(src, split, needed, searched)) from e
        found = _split_paths(download_dir, split)
        if found is not None:
            return found
        searched.append(f"  - download from {src.base_url} into {download_dir}: files still missing")
    else:
        searched.append(f"  - download: disabled (download=False)")
    raise FileNotFoundError(_not_found(src, split, needed, searched))


def _not_found(src: _Source, split: str, needed: str, searched: list[str]) -> str:
    return (f"{src.title} {split} split not found: no directory holds {needed} "
            f"(or the un-gzipped files). Searched, in order:\n" + "\n".join(searched)
            + "\n" + _how_to_get(src))


def _load_split(images_path: Path, labels_path: Path, src_name: str, classes: tuple, split: str,
                expected_n: int | None) -> Dataset:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{images_path}: expected uint8 images [N, H, W], got "
                         f"{images.dtype.name} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected uint8 labels [N], got {labels.dtype.name} {labels.shape}")
    if expected_n is not None and len(images) != expected_n:
        raise ValueError(f"{images_path}: expected {expected_n} images for the {split} split, got {len(images)}")
    if len(labels) != len(images):
        raise ValueError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    if len(labels) and labels.max() >= len(classes):
        raise ValueError(f"{labels_path}: label {labels.max()} out of range for {len(classes)} classes")
    return Dataset(images, labels.astype(np.int64), classes, src_name, split)


def _load(src: _Source, path, split: str, download_: bool) -> Dataset:
    images_path, labels_path = _locate(src, split, path, download_)
    return _load_split(images_path, labels_path, src.name, src.classes, split, src.n[split])


def load_fashion_mnist(path=None, split: str = "train", download: bool = True) -> Dataset:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60000 train / 10000 test images, 10 classes.

    Args:
        path: directory holding the standard files; if given, only it is searched.
        split: ``"train"`` or ``"test"``.
        download: fetch missing files from the publisher (SHA-256 checked) if no search
            location has them.

    Returns:
        ``Dataset`` with ``images: uint8 [N, 28, 28]``, ``labels: int64 [N]``.

    Raises:
        FileNotFoundError: the files are nowhere; the message lists every place searched.
        ValueError: a file is corrupt, truncated or has the wrong shape/count.
    """
    return _load(_FASHION_MNIST, path, split, download)


def load_mnist(path=None, split: str = "train", download: bool = True) -> Dataset:
    """MNIST handwritten digits (LeCun et al. 1998): 60000 train / 10000 test images.

    Same search order, arguments and errors as :func:`load_fashion_mnist`, with
    ``$MNIST_DIR``, ``$SNN_DATA_DIR/mnist``, ``data/mnist`` and ``/usr/share/datasets/mnist``.
    """
    return _load(_MNIST, path, split, download)


def load_fashion_mnist_small(split: str = "train") -> Dataset:
    """The committed class-balanced Fashion-MNIST subset in ``data/fashion-mnist-small/``.

    5000 training images (500 per class) and 1000 test images (100 per class), drawn from the
    official splits by ``scripts/make_data_subset.py``; see ``data/README.md``.  Needs no
    download, so tests and examples can always use it.

    Returns:
        ``Dataset`` with ``images: uint8 [N, 28, 28]``, ``labels: int64 [N]``.
    """
    _check_split(split)
    found = _split_paths(FASHION_MNIST_SMALL_DIR, split)
    if found is None:
        raise FileNotFoundError(f"the Fashion-MNIST subset is missing from {FASHION_MNIST_SMALL_DIR}; "
                                f"regenerate it with scripts/make_data_subset.py (see data/README.md)")
    expected = {"train": 5000, "test": 1000}[split]
    return _load_split(*found, "fashion-mnist-small", FASHION_MNIST_CLASSES, split, expected)
