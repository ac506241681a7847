"""IDX reading/writing, dataset search order, downloads (no network), the real data and the subset."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from training import datasets
from training.config import default_dtype
from snncore.datasets import Dataset, read_idx, write_idx

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
HAVE_FULL = all((DEBIAN_FASHION / f).is_file() for s in datasets.SPLIT_FILES.values() for f in s)
needs_full = pytest.mark.skipif(not HAVE_FULL, reason="Debian dataset-fashion-mnist not installed")


# ---------------------------------------------------------------------------------------
# IDX format
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5)])
@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(shape) * 50).astype(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, a, compresslevel=9 if compress else None)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == shape
    np.testing.assert_array_equal(a, b)


def test_idx_bytes_match_the_format(tmp_path):
    """Hand-written bytes, so a symmetric writer/reader bug cannot pass the round trip."""
    write_idx(tmp_path / "u8", np.arange(6, dtype=np.uint8).reshape(2, 3), compresslevel=None)
    assert (tmp_path / "u8").read_bytes() == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])
    (tmp_path / "i4").write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xFF, 0xFF, 0xFF, 0xFE]))
    np.testing.assert_array_equal(read_idx(tmp_path / "i4"), np.array([258, -2], np.int32))


def test_write_idx_is_deterministic(tmp_path):
    a = np.arange(1000, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", a)
    write_idx(tmp_path / "b.gz", a)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert not list(tmp_path.glob("*.part"))


def _idx_bytes(a: np.ndarray, tmp_path: Path) -> bytes:
    write_idx(tmp_path / "_src", a, compresslevel=None)
    return (tmp_path / "_src").read_bytes()


@pytest.mark.parametrize("case, message", [
    ("bad_magic", "magic"),
    ("bad_type", "type code"),
    ("zero_dims", "0 dimensions"),
    ("short_header", "header"),
    ("truncated_payload", "truncated"),
    ("trailing_bytes", "trailing"),
    ("tiny", "too short"),
    ("truncated_gzip", "gzip"),
    ("corrupt_gzip", "gzip"),
])
def test_corrupt_idx_names_file_and_problem(tmp_path, case, message):
    good = _idx_bytes(np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28), tmp_path)
    gz = gzip.compress(good, mtime=0)
    data = {
        "bad_magic": b"\x01" + good[1:],
        "bad_type": good[:2] + b"\x07" + good[3:],
        "zero_dims": good[:3] + b"\x00",
        "short_header": good[:10],
        "truncated_payload": good[:-1],
        "trailing_bytes": good + b"\x00",
        "tiny": good[:3],
        "truncated_gzip": gz[: len(gz) // 2],
        "corrupt_gzip": gz[:-8] + bytes(b ^ 0xFF for b in gz[-8:]),   # wrong CRC and length
    }[case]
    path = tmp_path / f"broken-{case}-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzipped_image_file_through_loader(tmp_path):
    _write_split(tmp_path, "train", n=20, value=1)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw[:-100], mtime=0))       # valid gzip, short IDX payload
    with pytest.raises(ValueError, match="truncated") as info:
        datasets.load_fashion_mnist(tmp_path, "train", download=False)
    assert "train-images-idx3-ubyte.gz" in str(info.value)


# ---------------------------------------------------------------------------------------
# Dataset record
# ---------------------------------------------------------------------------------------
def _tiny_dataset(n=6):
    images = np.arange(n * 28 * 28, dtype=np.int64).reshape(n, 28, 28).astype(np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    return Dataset(images, np.arange(n, dtype=np.int64) % 3, ("a", "b", "c"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_images_shapes_and_values(dtype):
    ds = _tiny_dataset()
    x = ds.float_images(dtype)
    assert x.shape == (6, 1, 28, 28) and x.dtype == dtype and x.flags.c_contiguous
    assert x[0, 0, 0, 0] == 0 and x[0, 0, 0, 1] == 1
    np.testing.assert_array_equal(x[:, 0], ds.images.astype(dtype) / dtype(255))
    flat = ds.float_images(dtype, flatten=True)
    assert flat.shape == (6, 784)
    np.testing.assert_array_equal(flat, x.reshape(6, 784))


def test_float_images_default_dtype_follows_config():
    ds = _tiny_dataset()
    with default_dtype(np.float64):
        assert ds.float_images().dtype == np.float64
    with default_dtype(np.float32):
        assert ds.float_images(flatten=True).dtype == np.float32


def test_dataset_validates_and_subsets():
    ds = _tiny_dataset()
    assert len(ds) == 6 and ds.num_classes == 3
    sub = ds.subset(np.array([1, 4]))
    np.testing.assert_array_equal(sub.labels, [1, 1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.labels = ds.labels
    with pytest.raises(ValueError, match="uint8"):
        Dataset(ds.images.astype(np.float32), ds.labels)
    with pytest.raises(ValueError, match="int64"):
        Dataset(ds.images, ds.labels.astype(np.uint8))
    with pytest.raises(ValueError, match="labels"):
        Dataset(ds.images, ds.labels[:-1])
    with pytest.raises(ValueError, match="classes"):
        Dataset(ds.images, ds.labels + 5, ("a", "b", "c"))


# ---------------------------------------------------------------------------------------
# Search order and downloads (never touching the network)
# ---------------------------------------------------------------------------------------
def _write_split(directory: Path, split: str, n: int, value: int, gz: bool = True) -> None:
    images_name, labels_name = datasets.SPLIT_FILES[split]
    if not gz:
        images_name, labels_name = images_name[:-3], labels_name[:-3]
    level = 1 if gz else None
    write_idx(directory / images_name, np.full((n, 28, 28), value, np.uint8), compresslevel=level)
    write_idx(directory / labels_name, (np.arange(n) % 10).astype(np.uint8), compresslevel=level)


class _Downloads:
    """Stand-in for ``datasets._download``: records calls, fails like an offline machine."""

    def __init__(self):
        self.calls = []

    def __call__(self, url, dest, sha256, progress=True):
        self.calls.append((url, Path(dest), sha256))
        raise urllib.error.URLError("network disabled in tests")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env vars, repo/system data dirs in tmp, small split sizes, offline downloads."""
    for var in ("FASHION_MNIST_DIR", "MNIST_DIR", "SNN_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets, "REPO_DATA_DIR", tmp_path / "repo-data")
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", tmp_path / "system")
    small = {"train": 20, "test": 10}
    fashion = dataclasses.replace(datasets._FASHION_MNIST, n=small)
    mnist = dataclasses.replace(datasets._MNIST, n=small)
    monkeypatch.setattr(datasets, "_FASHION_MNIST", fashion)
    monkeypatch.setattr(datasets, "_MNIST", mnist)
    monkeypatch.setattr(datasets, "_SOURCES", {"fashion-mnist": fashion, "mnist": mnist})
    downloads = _Downloads()
    monkeypatch.setattr(datasets, "_download", downloads)
    return tmp_path, downloads


def _value(ds: Dataset) -> int:
    return int(ds.images[0, 0, 0])


def test_explicit_path_wins(isolated, monkeypatch):
    tmp, downloads = isolated
    for value, where in enumerate(["explicit", "env", "generic/fashion-mnist", "repo-data/fashion-mnist",
                                   "system/fashion-mnist"], start=1):
        _write_split(tmp / where, "train", 20, value)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp / "env"))
    monkeypatch.setenv("SNN_DATA_DIR", str(tmp / "generic"))
    ds = datasets.load_fashion_mnist(tmp / "explicit", "train")
    assert _value(ds) == 1 and ds.images.shape == (20, 28, 28) and ds.labels.dtype == np.int64
    assert ds.name == "fashion-mnist" and ds.split == "train" and ds.classes[0] == "T-shirt/top"
    assert downloads.calls == []


@pytest.mark.parametrize("present, expected", [
    (["env", "generic", "repo", "system"], 1),
    (["generic", "repo", "system"], 2),
    (["repo", "system"], 3),
    (["system"], 4),
])
def test_search_order(isolated, monkeypatch, present, expected):
    tmp, downloads = isolated
    dirs = {"env": tmp / "env", "generic": tmp / "generic" / "fashion-mnist",
            "repo": tmp / "repo-data" / "fashion-mnist", "system": tmp / "system" / "fashion-mnist"}
    for value, key in enumerate(dirs, start=1):
        if key in present:
            _write_split(dirs[key], "test", 10, value)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp / "env"))
    monkeypatch.setenv("SNN_DATA_DIR", str(tmp / "generic"))
    assert _value(datasets.load_fashion_mnist(split="test")) == expected
    assert downloads.calls == []


def test_mnist_uses_its_own_env_var_and_dirs(isolated, monkeypatch):
    tmp, _ = isolated
    _write_split(tmp / "system" / "fashion-mnist", "train", 20, 9)
    _write_split(tmp / "system" / "mnist", "train", 20, 5)
    _write_split(tmp / "m", "train", 20, 6)
    assert _value(datasets.load_mnist(split="train")) == 5
    monkeypatch.setenv("MNIST_DIR", str(tmp / "m"))
    ds = datasets.load_mnist(split="train")
    assert _value(ds) == 6 and ds.classes == tuple("0123456789")


def test_uncompressed_files_are_found(isolated):
    tmp, _ = isolated
    _write_split(tmp / "raw", "test", 10, 7, gz=False)
    assert _value(datasets.load_fashion_mnist(tmp / "raw", "test")) == 7


def test_split_only_needs_its_own_files(isolated):
    tmp, _ = isolated
    _write_split(tmp / "d", "test", 10, 3)
    assert len(datasets.load_fashion_mnist(tmp / "d", "test", download=False)) == 10
    with pytest.raises(FileNotFoundError):
        datasets.load_fashion_mnist(tmp / "d", "train", download=False)


def test_explicit_path_is_not_a_hint(isolated, monkeypatch):
    tmp, downloads = isolated
    _write_split(tmp / "system" / "fashion-mnist", "train", 20, 4)
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_fashion_mnist(tmp / "nowhere", "train")
    assert str(tmp / "nowhere") in str(info.value)
    assert [(u.rsplit("/", 1)[1], d.parent) for u, d, _ in downloads.calls] == \
        [("train-images-idx3-ubyte.gz", tmp / "nowhere")]


def test_nothing_found_lists_every_place(isolated, monkeypatch):
    tmp, downloads = isolated
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp / "env"))
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_fashion_mnist(split="train")
    msg = str(info.value)
    for expected in [str(tmp / "env"), "$SNN_DATA_DIR/fashion-mnist: (not set)",
                     str(tmp / "repo-data" / "fashion-mnist"), str(tmp / "system" / "fashion-mnist"),
                     "apt-get install dataset-fashion-mnist", "FASHION_MNIST_DIR",
                     "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                     "network disabled in tests", "train-images-idx3-ubyte.gz"]:
        assert expected in msg, expected
    url, dest, sha = downloads.calls[0]
    assert url == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"
    assert dest == tmp / "repo-data" / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    assert sha == "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"


def test_download_false_never_downloads(isolated):
    tmp, downloads = isolated
    with pytest.raises(FileNotFoundError, match="download=False"):
        datasets.load_mnist(split="test", download=False)
    assert downloads.calls == []


def test_successful_download_is_loaded(isolated, monkeypatch):
    tmp, _ = isolated
    source = tmp / "publisher"
    _write_split(source, "test", 10, 8)
    calls = []

    def fake_download(url, dest, sha256, progress=True):
        calls.append(url)
        assert url.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(datasets, "_download", fake_download)
    assert _value(datasets.load_mnist(split="test")) == 8
    assert len(calls) == 2 and (tmp / "repo-data" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
    assert _value(datasets.load_mnist(split="test")) == 8 and len(calls) == 2   # now found locally


def test_real_download_function_checks_sha256_and_writes_atomically(tmp_path):
    """``_download`` itself, over a file:// URL (no network)."""
    payload = bytes(range(256)) * 1000
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    dest = tmp_path / "out" / "file.gz"
    good = hashlib.sha256(payload).hexdigest()
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        datasets._download(src.as_uri(), dest, "0" * 64, progress=False)
    assert not dest.exists() and not list(dest.parent.glob("*"))
    datasets._download(src.as_uri(), dest, good, progress=False)
    assert dest.read_bytes() == payload and not list(dest.parent.glob("*.part"))
    with pytest.raises(OSError):
        datasets._download((tmp_path / "missing").as_uri(), tmp_path / "out" / "x", good, progress=False)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.gz"]


def test_wrong_image_count_is_rejected(isolated):
    tmp, _ = isolated
    _write_split(tmp / "d", "train", 19, 1)
    with pytest.raises(ValueError, match="expected 20 images"):
        datasets.load_fashion_mnist(tmp / "d", "train")


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        datasets.load_fashion_mnist(split="validation")
    with pytest.raises(ValueError, match="split"):
        datasets.load_fashion_mnist_small("val")


def test_no_pickle_in_module():
    source = Path(datasets.__file__).read_text()
    assert "pickle" not in source.replace("No pickle", "") and "allow_pickle" not in source


# ---------------------------------------------------------------------------------------
# The real data
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full():
    if not HAVE_FULL:
        pytest.skip("Debian dataset-fashion-mnist not installed")
    return {s: datasets.load_fashion_mnist(DEBIAN_FASHION, s, download=False) for s in ("train", "test")}


@needs_full
def test_full_fashion_mnist(full):
    for split, n in (("train", 60000), ("test", 10000)):
        ds = full[split]
        assert ds.images.shape == (n, 28, 28) and ds.images.dtype == np.uint8
        assert ds.labels.shape == (n,) and ds.labels.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [n // 10] * 10)
        assert ds.images.max() == 255 and ds.images.min() == 0


@needs_full
def test_debian_files_are_the_official_payloads():
    for fname, digest in datasets.FASHION_MNIST_PAYLOAD_SHA256.items():
        assert hashlib.sha256(gzip.decompress((DEBIAN_FASHION / fname).read_bytes())).hexdigest() == digest


@pytest.mark.parametrize("split, n", [("train", 5000), ("test", 1000)])
def test_small_subset_is_balanced(split, n):
    ds = datasets.load_fashion_mnist_small(split)
    assert ds.images.shape == (n, 28, 28) and ds.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [n // 10] * 10)
    assert ds.name == "fashion-mnist-small" and ds.split == split


def _load_script():
    path = datasets.REPO_ROOT / "scripts" / "make_data_subset.py"
    spec = importlib.util.spec_from_file_location("make_data_subset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_full
@pytest.mark.parametrize("split, per_class", [("train", 500), ("test", 100)])
def test_small_subset_is_exactly_official_images(full, split, per_class):
    small = datasets.load_fashion_mnist_small(split)
    index_file = datasets.FASHION_MNIST_SMALL_DIR / _load_script().INDEX_FILES[split]
    idx = read_idx(index_file)
    assert idx.dtype == np.int32 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(small.images, full[split].images[idx])
    np.testing.assert_array_equal(small.labels, full[split].labels[idx])
    # and the committed indices are what the script's documented seed produces
    script = _load_script()
    again = script.select_balanced(full[split].labels, per_class, script.split_rng(20170825, split))
    np.testing.assert_array_equal(again, idx)
