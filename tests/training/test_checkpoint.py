"""HDF5 checkpoints: round trips, bit-identical resumption, atomic writes, corrupt files."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from snncore import fileio
from tests import hdf5edit

from training import checkpoint as ckpt_mod
from training.checkpoint import (Checkpoint, load_checkpoint, restore_rng, rng_state,
                                 save_checkpoint)
from training.module import Module, Parameter
from training.optim import SGD, Adam, AdamW, CosineSchedule, MultiStepSchedule


class TinyNet(Module):
    """Two parameters and a buffer, enough to exercise state dicts."""

    def __init__(self, rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        self.weight = Parameter(rng.standard_normal((4, 3)).astype(dtype))
        self.bias = Parameter(np.zeros(4, dtype), weight_decay=False)
        self.running_mean = np.zeros(4, dtype)
        self._buffers = ("running_mean",)


def full_fields():
    rng = np.random.default_rng(5)
    net = TinyNet(rng)
    opt = Adam(net, lr=0.01, weight_decay=0.01)
    for p in net.parameters():
        p.grad[...] = 1.0
    opt.step()
    schedule = MultiStepSchedule(opt, milestones=[3, 7], gamma=0.5)
    schedule.step()
    rng.random(3)
    return dict(
        model_state={**net.state_dict(), "extra.int": np.arange(5, dtype=np.int64),
                     "extra.bool": np.array([True, False]), "extra.scalar": np.array(2.5),
                     "extra.empty": np.zeros((0, 3), np.float32)},
        optimizer_state=opt.state_dict(),
        schedule_state=schedule.state_dict(),
        rng_state=rng_state(rng),
        epoch=3, step=120,
        metrics={"train_loss": [2.0, 1.5, 1.25], "val_acc": [], "lr": [0.1]},
        extra={"config": {"model": "tiny", "dropout": None, "sizes": [4, 3],
                          "names": ["a", "b"], "use_bn": True, "beta": 0.5,
                          "nested": {"depth": 2}},
               "seed": 5, "max_u64": np.uint64(2 ** 64 - 1), "git": "abc123"},
    ), rng


def assert_same(a, b, where="root"):
    """Deep equality; arrays must match in dtype, shape and bits."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, np.generic):
        assert a.item() == b and type(b) is type(a.item()), where
    else:
        assert a == b and type(a) is type(b), where


# ------------------------------------------------------------------------------------------
# round trips


def test_round_trip_all_fields(tmp_path):
    fields, rng = full_fields()
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, **fields)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, Checkpoint)
    for name, value in fields.items():
        assert_same(value, getattr(loaded, name), name)
    assert restore_rng(loaded.rng_state).random(10).tolist() == rng.random(10).tolist()
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == b"snn-checkpoint" and f.attrs["version"] == 2


def test_optional_fields_none(tmp_path):
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, model_state={}, optimizer_state={}, epoch=0, step=0)
    loaded = load_checkpoint(path)
    assert loaded == Checkpoint(model_state={}, optimizer_state={}, schedule_state=None,
                                rng_state=None, epoch=0, step=0, metrics=None, extra=None)
    save_checkpoint(path, model_state={}, optimizer_state={}, schedule_state={},
                    rng_state=None, metrics={}, extra={}, epoch=1, step=2, overwrite=True)
    loaded = load_checkpoint(str(path))
    assert (loaded.schedule_state, loaded.metrics, loaded.extra) == ({}, {}, {})


@pytest.mark.parametrize("name", ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"])
def test_rng_state_round_trip(tmp_path, name):
    gen = np.random.Generator(getattr(np.random, name)(1234))
    gen.standard_normal(7)
    gen.integers(0, 10, size=3, dtype=np.uint32)     # leaves a buffered uint32 (has_uint32)
    path = tmp_path / "rng.h5"
    save_checkpoint(path, model_state={}, optimizer_state={}, rng_state=rng_state(gen),
                    epoch=0, step=0)
    restored = restore_rng(load_checkpoint(path).rng_state)
    assert type(restored.bit_generator).__name__ == name
    assert restored.integers(0, 2 ** 32, size=5, dtype=np.uint32).tolist() == \
        gen.integers(0, 2 ** 32, size=5, dtype=np.uint32).tolist()
    np.testing.assert_array_equal(restored.standard_normal(20), gen.standard_normal(20))


def test_restore_rng_rejects_bad_state():
    with pytest.raises(ValueError, match="bit generator"):
        restore_rng({"bit_generator": "NoSuchGenerator", "state": {}})
    with pytest.raises(ValueError, match="bit_generator"):
        restore_rng({"state": {}})


# ------------------------------------------------------------------------------------------
# resuming from a checkpoint is bit-identical to an uninterrupted run


OPTIMIZERS = {
    "sgd-nesterov": lambda net: SGD(net, lr=0.05, momentum=0.9, nesterov=True,
                                    weight_decay=1e-3),
    "adam": lambda net: Adam(net, lr=0.01, weight_decay=1e-3),
    "adamw": lambda net: AdamW(net, lr=0.01, weight_decay=0.05),
}


def train(net, opt, schedule, rng, steps):
    """Gradients depend on the parameters and on fresh noise from ``rng``."""
    for _ in range(steps):
        for p in net.parameters():
            noise = rng.standard_normal(p.data.shape).astype(p.data.dtype)
            p.grad[...] = 0.5 * p.data + noise
        opt.step()
        schedule.step()
        net.running_mean += 0.1 * net.weight.data.mean(axis=1)


@pytest.mark.parametrize("which", sorted(OPTIMIZERS))
def test_resume_is_bit_identical(tmp_path, which):
    make_opt = OPTIMIZERS[which]

    def setup(seed):
        rng = np.random.default_rng(seed)
        net = TinyNet(rng)
        opt = make_opt(net)
        return net, opt, CosineSchedule(opt, total_steps=12, warmup_steps=2, min_lr=1e-4), rng

    net, opt, schedule, rng = setup(0)
    train(net, opt, schedule, rng, 12)

    net1, opt1, schedule1, rng1 = setup(0)
    train(net1, opt1, schedule1, rng1, 5)
    path = tmp_path / "resume.h5"
    save_checkpoint(path, model_state=net1.state_dict(), optimizer_state=opt1.state_dict(),
                    schedule_state=schedule1.state_dict(), rng_state=rng_state(rng1),
                    epoch=0, step=5)
    del net1, opt1, schedule1, rng1

    net2, opt2, schedule2, _ = setup(42)                  # fresh objects, other init
    loaded = load_checkpoint(path)
    net2.load_state_dict(loaded.model_state)
    opt2.load_state_dict(loaded.optimizer_state)
    schedule2.load_state_dict(loaded.schedule_state)
    rng2 = restore_rng(loaded.rng_state)
    train(net2, opt2, schedule2, rng2, 12 - loaded.step)

    assert opt2.lr == opt.lr
    for (name, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    assert_same(opt.state_dict(), opt2.state_dict())


# ------------------------------------------------------------------------------------------
# atomic writes


def _listing(directory):
    return sorted(os.listdir(directory))


def test_failed_write_keeps_previous_file_and_removes_temp(tmp_path, monkeypatch):
    fields, _ = full_fields()
    path = tmp_path / "ckpt.h5"
    save_checkpoint(path, **fields)
    before_bytes = path.read_bytes()
    before_listing = _listing(tmp_path)

    original = ckpt_mod._write_dict
    original_temp = fileio._temporary_file
    temps = []

    def recording_temporary_file(target):
        tmp = original_temp(target)
        temps.append(str(tmp))
        return tmp

    def failing_write_dict(group, data, where):
        original(group, data, where)                # some data really reach the temp file
        if where == "optimizer_state":
            assert os.path.dirname(temps[-1]) == str(tmp_path) and os.path.exists(temps[-1])
            raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(fileio, "_temporary_file", recording_temporary_file)

    monkeypatch.setattr(ckpt_mod, "_write_dict", failing_write_dict)
    fields["epoch"] = 4
    with pytest.raises(RuntimeError, match="simulated"):
        save_checkpoint(path, **fields, overwrite=True)
    assert len(temps) == 1 and not os.path.exists(temps[0])
    assert path.read_bytes() == before_bytes
    assert _listing(tmp_path) == before_listing
    assert load_checkpoint(path).epoch == 3


def test_failed_replace_leaves_nothing_behind(tmp_path, monkeypatch):
    fields, _ = full_fields()
    path = tmp_path / "ckpt.h5"

    def failing_replace(src, dst):
        raise OSError("rename failed (simulated)")

    monkeypatch.setattr(ckpt_mod.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, **fields)
    assert _listing(tmp_path) == []                 # no checkpoint, no temp file


def test_unsupported_values_fail_cleanly(tmp_path):
    path = tmp_path / "ckpt.h5"
    with pytest.raises(TypeError, match="extra/obj"):
        save_checkpoint(path, model_state={}, optimizer_state={}, extra={"obj": object()},
                        epoch=0, step=0)
    with pytest.raises(ValueError, match="int64"):
        save_checkpoint(path, model_state={}, optimizer_state={"big": 2 ** 70},
                        epoch=0, step=0)
    with pytest.raises(ValueError, match="key"):
        save_checkpoint(path, model_state={"a/b": np.zeros(1)}, optimizer_state={},
                        epoch=0, step=0)
    with pytest.raises(ValueError, match="epoch"):
        save_checkpoint(path, model_state={}, optimizer_state={}, epoch=-1, step=0)
    assert _listing(tmp_path) == []


# ------------------------------------------------------------------------------------------
# reading bad files


def test_missing_file(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        load_checkpoint(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="garbage.h5"):
        load_checkpoint(path)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, fraction):
    fields, _ = full_fields()
    path = tmp_path / "trunc.h5"
    save_checkpoint(path, **fields)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ValueError, match="trunc.h5"):
        load_checkpoint(path)


def test_corrupted_array_names_file_and_field(tmp_path):
    path = tmp_path / "flip.h5"
    save_checkpoint(path, model_state={"layer.weight": np.arange(64, dtype=np.float32)},
                    optimizer_state={}, epoch=0, step=0)
    with h5py.File(path, "r") as f:
        offset = f["model_state/layer.weight"].id.get_offset()
    with open(path, "r+b") as fh:
        fh.seek(offset + 10)
        fh.write(b"\xff\xff")
    with pytest.raises(ValueError, match=r"flip\.h5.*model_state/layer\.weight"):
        load_checkpoint(path)


def _rewrite(path, edit):
    hdf5edit.edit(path, edit)  # refreshes the digests: an edited file, not a damaged one


@pytest.mark.parametrize("edit, field", [
    (lambda f: f.attrs.__setitem__("version", 9), "version"),
    (lambda f: f.attrs.__setitem__("format", "something-else"), "format"),
    (lambda f: f.attrs.__delitem__("format"), "format"),
    (lambda f: f.attrs.__delitem__("epoch"), "epoch"),
    (lambda f: f.__delitem__("rng_state"), "rng_state"),
    (lambda f: f.__delitem__("model_state"), "model_state"),
    (lambda f: f.attrs.__delitem__("metrics_is_none"), "metrics_is_none"),
    (lambda f: f["metrics"].create_dataset("bad", data=np.zeros((2, 2))), "metrics/bad"),
])
def test_invalid_structure_names_file_and_field(tmp_path, edit, field):
    fields, _ = full_fields()
    path = tmp_path / "edited.h5"
    save_checkpoint(path, **fields)
    _rewrite(path, edit)
    with pytest.raises(ValueError, match=rf"edited\.h5.*'{field}'"):
        load_checkpoint(path)


def test_wrong_version_message(tmp_path):
    path = tmp_path / "v.h5"
    save_checkpoint(path, model_state={}, optimizer_state={}, epoch=0, step=0)
    _rewrite(path, lambda f: f.attrs.__setitem__("version", 7))
    with pytest.raises(ValueError, match="unsupported checkpoint version 7"):
        load_checkpoint(path)
