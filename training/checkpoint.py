"""Training checkpoints as HDF5 files (h5py, no pickle), written atomically.

File layout (format ``"snn-checkpoint"``, version 2)::

    /                       attrs: format="snn-checkpoint", version=2, epoch, step,
                                   <field>_is_none for each optional field below
    /model_state/<name>     one dataset per array of Module.state_dict()
    /optimizer_state        Optimizer.state_dict(): arrays as datasets, scalars as attrs
    /schedule_state         Schedule.state_dict()                  (optional)
    /rng_state              rng_state(generator)                   (optional)
    /metrics/<name>         float64 [n] dataset per metric history (optional)
    /extra                  free-form nested dict                  (optional)

Every group is always present; an optional field saved as ``None`` is an empty group with
the root attribute ``<field>_is_none = True``.  Nested dicts are encoded generically:

* ``dict``            -> subgroup (insertion order kept),
* ``np.ndarray``      -> dataset (dtype and shape kept; 0-d arrays stay 0-d arrays),
* ``str``, ``bool``, ``int`` (int64 range), ``float`` and NumPy scalars -> attribute
  (read back as the Python type: ``str``, ``bool``, ``int``, ``float``),
* ``None``            -> an empty (null) attribute,
* ``list``/``tuple`` of numbers or of strings -> 1-D dataset marked as a list (read back
  as a ``list``).

Keys must be non-empty strings without ``/`` and not ``"."``.  Every dataset carries the
SHA-256 digest of its contents (attribute ``sha256``, checked on reading; version 2) and
non-empty arrays are chunked with a Fletcher-32 checksum; strings are fixed-length
attributes and the file uses the HDF5 1.10 format (checksummed object headers), so
corruption is reported, naming the damaged dataset, instead of read as wrong numbers.
Version 1 files (no digests) still load.  A reader checks the format name, the version
and every field, and raises :class:`CheckpointFormatError` naming the file and the first
field that is wrong.

``save_checkpoint`` writes to a temporary file in the target's directory, fsyncs it and
renames it over the target with ``os.replace``, so an interrupted or failing write leaves
any previous checkpoint untouched and no temporary file behind.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from snncore.fileio import (HDF5_LIBVER, atomic_output, check_output, read_array, string_attr,
                            write_array)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Checkpoint", "CheckpointFormatError",
           "save_checkpoint", "load_checkpoint", "check_architecture", "rng_state", "restore_rng"]

FORMAT_NAME = "snn-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)          # 1: no digests

_REQUIRED = ("model_state", "optimizer_state")
_OPTIONAL = ("schedule_state", "rng_state", "metrics", "extra")
_LIST_MARK = "python_list"          # attribute on datasets that encode lists
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
_LIBVER = HDF5_LIBVER               # object headers with checksums (HDF5 >= 1.10 readers)


class CheckpointFormatError(ValueError):
    """A checkpoint file is unreadable, damaged or malformed; the message names the file
    and the field."""


@dataclass
class Checkpoint:
    """Everything needed to resume a run, as returned by :func:`load_checkpoint`."""

    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any]
    schedule_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None
    epoch: int = 0
    step: int = 0
    metrics: dict[str, list[float]] | None = None
    extra: dict[str, Any] | None = field(default=None)


# ------------------------------------------------------------------------------------------
# random number generator state


def rng_state(generator: np.random.Generator) -> dict:
    """The state of ``generator`` as a dict the checkpoint can store.

    This is ``generator.bit_generator.state`` with every Python ``int`` replaced by its
    decimal string: PCG64's ``state`` and ``inc`` are 128-bit and do not fit an int64.
    Arrays (MT19937 key, Philox counter, ...) are kept as arrays.
    """
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"rng_state expects a numpy.random.Generator, "
                        f"got {type(generator).__name__}")

    def encode(value):
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        if isinstance(value, np.ndarray):
            return value.copy()
        return value

    return encode(generator.bit_generator.state)


def restore_rng(state: dict) -> np.random.Generator:
    """A new ``np.random.Generator`` in the state saved by :func:`rng_state`.

    Raises ValueError if the state names an unknown bit generator or does not fit it.
    """
    if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), str):
        raise ValueError(f"not an RNG state (no 'bit_generator' name): {state!r:.200}")
    name = state["bit_generator"]
    cls = getattr(np.random, name, None)
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise ValueError(f"RNG state: unknown bit generator {name!r}")

    def decode(value):
        if isinstance(value, dict):
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        return value

    bit_generator = cls()
    try:
        bit_generator.state = decode(state)
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"RNG state does not fit {name}: {err}") from err
    return np.random.Generator(bit_generator)


# ------------------------------------------------------------------------------------------
# writing


def _check_key(key, where: str) -> str:
    if not isinstance(key, str) or not key or "/" in key or key == ".":
        raise ValueError(f"{where}: key {key!r} is not allowed (keys must be non-empty "
                         "strings without '/', and not '.')")
    return key


def _write_dict(group: h5py.Group, data: dict, where: str) -> None:
    """Encode a nested dict into ``group`` (see the module docstring)."""
    if not isinstance(data, dict):
        raise TypeError(f"{where} must be a dict, got {type(data).__name__}")
    for key, value in data.items():
        path = f"{where}/{_check_key(key, where)}"
        if isinstance(value, dict):
            _write_dict(group.create_group(key, track_order=True), value, path)
        elif isinstance(value, np.ndarray):
            if value.dtype.kind not in "biufc":
                raise TypeError(f"{path}: arrays of dtype {value.dtype} cannot be stored")
            _create_array(group, key, value)
        elif value is None:
            group.attrs[key] = h5py.Empty("i1")
        elif isinstance(value, str):
            string_attr(group.attrs, key, value)
        elif isinstance(value, (bool, np.bool_, float, np.floating, np.integer)):
            group.attrs[key] = value
        elif isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise ValueError(f"{path}: integer {value} does not fit in int64 "
                                 "(store it as a string)")
            group.attrs[key] = np.int64(value)
        elif isinstance(value, (list, tuple)):
            _write_list(group, key, value, path)
        else:
            raise TypeError(f"{path}: values of type {type(value).__name__} cannot be "
                            "stored (use dicts, arrays, str, bool, int, float, None or "
                            "lists of numbers or strings)")


def _create_array(group: h5py.Group, key: str, value: np.ndarray) -> h5py.Dataset:
    """A dataset holding ``value`` with its SHA-256 digest (and, when non-empty, a
    Fletcher-32 checksum), so a corrupted file is detected on reading instead of
    returning wrong numbers."""
    return write_array(group, key, value)


def _write_list(group: h5py.Group, key: str, value, path: str) -> None:
    if all(isinstance(v, str) for v in value) and value:
        if any("\x00" in v for v in value):
            raise ValueError(f"{path}: strings with NUL characters cannot be stored")
        ds = write_array(group, key, np.array([v.encode("utf-8") for v in value]))
    elif all(isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating))
             for v in value):
        arr = np.asarray(value) if value else np.zeros(0, np.float64)
        if arr.ndim != 1 or arr.dtype.kind not in "biuf":
            raise TypeError(f"{path}: list of mixed or unsupported values cannot be stored")
        ds = write_array(group, key, arr)
    else:
        raise TypeError(f"{path}: only lists of numbers or of strings can be stored")
    ds.attrs[_LIST_MARK] = True


def _check_count(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _write_checkpoint(f: h5py.File, model_state, optimizer_state, schedule_state, rng_state,
                      epoch: int, step: int, metrics, extra) -> None:
    string_attr(f.attrs, "format", FORMAT_NAME)
    f.attrs["version"] = np.int64(FORMAT_VERSION)
    f.attrs["epoch"] = np.int64(epoch)
    f.attrs["step"] = np.int64(step)
    model = f.create_group("model_state", track_order=True)
    if not isinstance(model_state, dict):
        raise TypeError(f"model_state must be a dict, got {type(model_state).__name__}")
    for key, value in model_state.items():
        _check_key(key, "model_state")
        value = np.asarray(value)
        if value.dtype.kind not in "biufc":
            raise TypeError(f"model_state/{key}: dtype {value.dtype} cannot be stored")
        _create_array(model, key, value)
    _write_dict(f.create_group("optimizer_state", track_order=True), optimizer_state,
                "optimizer_state")
    for name, value in (("schedule_state", schedule_state), ("rng_state", rng_state),
                        ("metrics", metrics), ("extra", extra)):
        group = f.create_group(name, track_order=True)
        f.attrs[f"{name}_is_none"] = value is None
        if value is None:
            continue
        if name != "metrics":
            _write_dict(group, value, name)
            continue
        if not isinstance(value, dict):
            raise TypeError(f"metrics must be a dict, got {type(value).__name__}")
        for key, history in value.items():
            _check_key(key, "metrics")
            arr = np.asarray(history, dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError(f"metrics/{key}: expected a 1-D list of floats, "
                                 f"got shape {arr.shape}")
            _create_array(group, key, arr)


def save_checkpoint(path, *, model_state: dict[str, np.ndarray], optimizer_state: dict,
                    schedule_state: dict | None = None, rng_state: dict | None = None,
                    epoch: int, step: int, metrics: dict[str, list[float]] | None = None,
                    extra: dict | None = None, overwrite: bool = False) -> None:
    """Write a checkpoint to ``path`` atomically (see the module docstring for the layout).

    Args:
        path: target file; its directory must exist.
        model_state: ``Module.state_dict()``, flat ``{name: array}``.
        optimizer_state: ``Optimizer.state_dict()``.
        schedule_state: ``Schedule.state_dict()`` or None.
        rng_state: :func:`rng_state` of the training generator, or None.
        epoch, step: counters >= 0 (the epoch and optimiser step to resume *from*).
        metrics: histories ``{name: [float, ...]}`` or None.
        extra: any nested dict of the supported value types, or None.
        overwrite: replace an existing checkpoint at ``path`` (else FileExistsError);
            a file of another kind (model, recording, ...) is never replaced.

    The data go to a temporary file in the same directory, which is flushed, fsynced and
    then renamed over ``path`` with ``os.replace``; on any exception the temporary file is
    removed and an existing ``path`` is left untouched.
    """
    path = os.fspath(path)
    epoch = _check_count("epoch", epoch)
    step = _check_count("step", step)
    check_output(path, "checkpoint", overwrite)
    with atomic_output(path, make_parents=False) as tmp:
        with h5py.File(tmp, "w", track_order=True, libver=_LIBVER) as f:
            _write_checkpoint(f, model_state, optimizer_state, schedule_state, rng_state,
                              epoch, step, metrics, extra)


# ------------------------------------------------------------------------------------------
# reading


class _Reader:
    """Reads one file, turning any low-level failure into ValueError(file, field)."""

    def __init__(self, path: str):
        self.path = path
        self.version = FORMAT_VERSION   # set from the file once read

    def fail(self, where: str, problem: str, cause: BaseException | None = None):
        err = CheckpointFormatError(f"checkpoint {self.path}: field '{where}': {problem}")
        if cause is not None:
            raise err from cause
        raise err

    def attr(self, obj, name: str, where: str):
        try:
            if name not in obj.attrs:
                self.fail(where, "missing")
            return obj.attrs[name]
        except CheckpointFormatError:
            raise
        except Exception as err:  # noqa: BLE001 - h5py raises many types on corrupt files
            self.fail(where, f"unreadable ({type(err).__name__}: {err})", err)

    def scalar(self, value, where: str):
        if isinstance(value, h5py.Empty):
            return None
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as err:
                self.fail(where, f"not UTF-8 text ({err})", err)
        if isinstance(value, str):
            return value
        if isinstance(value, np.ndarray) or not isinstance(value, np.generic):
            self.fail(where, f"unexpected attribute value {value!r:.100}")
        if isinstance(value, np.bool_):
            return bool(value)
        return value.item()

    def integer(self, obj, name: str, where: str) -> int:
        value = self.attr(obj, name, where)
        if isinstance(value, np.bool_) or not isinstance(value, (np.integer, int)):
            self.fail(where, f"expected an integer, got {value!r:.100}")
        return int(value)

    def array(self, ds: h5py.Dataset, where: str):
        try:
            is_list = bool(ds.attrs.get(_LIST_MARK, False))
            string = h5py.check_string_dtype(ds.dtype) is not None
            kind = ds.dtype.kind
        except Exception as err:  # noqa: BLE001
            self.fail(where, f"unreadable ({type(err).__name__}: {err})", err)
        if not is_list and (string or kind not in "biufc"):
            self.fail(where, f"unsupported dataset dtype {ds.dtype}")
        value = read_array(ds, f"checkpoint {self.path}", CheckpointFormatError,
                           require_digest=self.version >= 2)
        if not is_list:
            return value                # a new array, read from the file
        if not string:
            return value.tolist()
        try:
            return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in value.tolist()]
        except UnicodeDecodeError as err:
            self.fail(where, f"not UTF-8 text ({err})", err)

    def children(self, group: h5py.Group, where: str):
        try:
            return [(k, group[k]) for k in group.keys()]
        except Exception as err:  # noqa: BLE001
            self.fail(where, f"unreadable ({type(err).__name__}: {err})", err)

    def tree(self, group: h5py.Group, where: str) -> dict:
        out: dict = {}
        for key, obj in self.children(group, where):
            path = f"{where}/{key}"
            if isinstance(obj, h5py.Group):
                out[key] = self.tree(obj, path)
            elif isinstance(obj, h5py.Dataset):
                out[key] = self.array(obj, path)
            else:
                self.fail(path, f"unexpected object {obj!r}")
        try:
            keys = list(group.attrs.keys())
        except Exception as err:  # noqa: BLE001
            self.fail(where, f"unreadable attributes ({type(err).__name__}: {err})", err)
        for key in keys:
            path = f"{where}/{key}"
            if key in out:
                self.fail(path, "stored both as an attribute and as a dataset or group")
            out[key] = self.scalar(self.attr(group, key, path), path)
        return out

    def group(self, f: h5py.File, name: str) -> h5py.Group:
        try:
            obj = f.get(name)
        except Exception as err:  # noqa: BLE001
            self.fail(name, f"unreadable ({type(err).__name__}: {err})", err)
        if obj is None:
            self.fail(name, "missing group")
        if not isinstance(obj, h5py.Group):
            self.fail(name, f"expected a group, found {type(obj).__name__}")
        return obj


def load_checkpoint(path) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointFormatError (a ValueError): the file is not a readable HDF5 file, has
            the wrong format name or version, a dataset is damaged (its digest or
            checksum does not match), or a field is missing or unreadable; the message
            names the file and the field.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    r = _Reader(path)
    try:
        f = h5py.File(path, "r")
    except Exception as err:  # noqa: BLE001 - OSError for corrupt / truncated files
        raise CheckpointFormatError(f"checkpoint {path}: not a readable HDF5 file "
                                    f"(corrupt or truncated?): {err}") from err
    with f:
        try:
            return _read_checkpoint(f, r)
        except CheckpointFormatError:
            raise
        except Exception as err:  # noqa: BLE001 - h5py raises many types on damaged files
            raise CheckpointFormatError(f"checkpoint {path}: corrupt or truncated "
                                        f"({type(err).__name__}: {err})") from err


def _read_checkpoint(f: h5py.File, r: _Reader) -> Checkpoint:
    """The checkpoint in the open file ``f``; ``r`` turns failures into named errors."""
    fmt = r.scalar(r.attr(f, "format", "format"), "format")
    if fmt != FORMAT_NAME:
        r.fail("format", f"is {fmt!r}, expected {FORMAT_NAME!r}")
    version = r.integer(f, "version", "version")
    if version not in READABLE_VERSIONS:
        r.fail("version", f"unsupported checkpoint version {version} (this reader "
                          f"supports versions {', '.join(map(str, READABLE_VERSIONS))})")
    r.version = version
    epoch = r.integer(f, "epoch", "epoch")
    step = r.integer(f, "step", "step")
    for name, value in (("epoch", epoch), ("step", step)):
        if value < 0:
            r.fail(name, f"negative value {value}")

    model_group = r.group(f, "model_state")
    model_state = {}
    for key, obj in r.children(model_group, "model_state"):
        if not isinstance(obj, h5py.Dataset) or obj.attrs.get(_LIST_MARK, False):
            r.fail(f"model_state/{key}", "expected an array dataset")
        model_state[key] = r.array(obj, f"model_state/{key}")
    optimizer_state = r.tree(r.group(f, "optimizer_state"), "optimizer_state")

    optional: dict[str, Any] = {}
    for name in _OPTIONAL:
        group = r.group(f, name)
        is_none = r.attr(f, f"{name}_is_none", f"{name}_is_none")
        if not isinstance(is_none, (np.bool_, bool)):
            r.fail(f"{name}_is_none", f"expected a bool, got {is_none!r:.100}")
        value = r.tree(group, name)
        if is_none:
            if value:
                r.fail(name, "marked None but not empty")
            optional[name] = None
        elif name == "metrics":
            metrics = {}
            for key, hist in value.items():
                if not (isinstance(hist, np.ndarray) and hist.ndim == 1
                        and hist.dtype.kind == "f"):
                    r.fail(f"metrics/{key}", "expected a 1-D float dataset")
                metrics[key] = hist.tolist()
            optional[name] = metrics
        else:
            optional[name] = value
    return Checkpoint(model_state=model_state, optimizer_state=optimizer_state,
                      epoch=epoch, step=step, **optional)


# ------------------------------------------------------------------------------------------
# matching a checkpoint to a network


def _shape_text(shape) -> str:
    return "absent" if shape is None else str(tuple(int(d) for d in shape))


def check_architecture(path, saved: dict, expected: dict) -> None:
    """Raise a one-line ValueError if ``saved`` (a checkpoint's ``model_state``) is not the
    state of a network shaped like ``expected`` (``net.state_dict()``).

    The message says the checkpoint belongs to a different network and summarises both:
    the first differing array (in the network's order, then the checkpoint's) with its shape
    on each side, and how many arrays and values each holds.  Nothing is loaded.
    """
    ours = {k: tuple(np.shape(v)) for k, v in expected.items()}
    theirs = {k: tuple(np.shape(v)) for k, v in saved.items()}
    if ours == theirs:
        return
    first = next((k for k in ours if theirs.get(k) != ours[k]), None)
    if first is None:
        first = next(k for k in theirs if k not in ours)

    def summary(shapes: dict) -> str:
        values = sum(int(np.prod(s)) for s in shapes.values())
        return f"{len(shapes)} arrays, {values} values"

    raise ValueError(
        f"checkpoint {path} belongs to a different network: first difference at {first!r}: "
        f"checkpoint {_shape_text(theirs.get(first))}, network {_shape_text(ours.get(first))} "
        f"(checkpoint: {summary(theirs)}; network: {summary(ours)}); build the network it was "
        "saved from, or pass another checkpoint path (or resume=False)")
