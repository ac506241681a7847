"""Damaged files: every model, checkpoint and recording either loads exactly what was written
or raises the format's own error naming the file (and the damaged dataset when it is data)."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from snncore import fileio
from snncore import modelfile as mf
from eventsim.recording import Recording, RecordingFormatError, SpikeTrain
from training.checkpoint import CheckpointFormatError, load_checkpoint, save_checkpoint

TRIALS, FLIPS = 30, 20


# ------------------------------------------------------------------------------------------
# one small file of each format, with every kind of field


def _model() -> mf.Model:
    rng = np.random.default_rng(1)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    return mf.Model(
        input_shape=(1, 6, 6), T=5, encoding="rate",
        layers=[mf.Conv2d(f32(2, 1, 3, 3), f32(2), stride=(1, 1), padding=(1, 1)),
                mf.Spiking(beta=0.75, theta=1.0, reset="subtract", v_min=-2.0),
                mf.AvgPool2d(kernel=(2, 2), stride=(2, 2)), mf.Flatten(),
                mf.Sparse(data=f32(6), indices=np.array([0, 3, 17, 1, 5, 9], np.int64),
                          indptr=np.array([0, 2, 2, 4, 6], np.int64), shape=(4, 18)),
                mf.Spiking(beta=0.5, theta=0.5),
                mf.Dense(f32(3, 4), f32(3)),
                mf.Readout(time_weights=np.linspace(0.5, 1.5, 5).astype(np.float32))],
        connections=[mf.Connection(5, 5, mf.Dense(f32(4, 4)), delay=2)],
        metadata={"dataset": "fashion-mnist", "method": "bptt", "accuracy": 0.875, "seed": 3,
                  **{f"note{i}": f"value {i}" for i in range(8)}})  # > 8: dense attribute storage


def _model_content(m: mf.Model):
    def record(r):
        out = {"kind": getattr(r, "kind", "connection")}
        for name, value in vars(r).items():
            if isinstance(value, (mf.Dense, mf.Sparse)):
                value = record(value)
            out[name] = (value.dtype.str, value.shape, value.tobytes()) \
                if isinstance(value, np.ndarray) else value
        return out

    return (m.input_shape, m.T, m.encoding, dict(m.metadata), [record(l) for l in m.layers],
            [record(c) for c in m.connections])


def _checkpoint_fields() -> dict:
    rng = np.random.default_rng(2)
    return dict(
        model_state={"0.weight": rng.standard_normal((8, 6)).astype(np.float32),
                     "0.bias": np.zeros(8, np.float32), "2.count": np.array(7, np.int64)},
        optimizer_state={"lr": 0.001, "step": 12, "name": "adamw",
                         "state": {f"{i}.weight": {"m": rng.standard_normal((3, 2)), "t": i}
                                   for i in range(10)}},  # > 8 links: dense link storage
        schedule_state={"milestones": [3, 7], "names": ["a", "bc"]},
        rng_state={"bit_generator": "PCG64", "state": {"state": "1234567890123456789",
                                                        "inc": "987654321987654321"}},
        epoch=3, step=120, metrics={"train_loss": [2.0, 1.5, 1.25]},
        extra={"T": 8, "note": "seed five", "none": None})


def _checkpoint_content(ck):
    def canon(v):
        if isinstance(v, dict):
            return {k: canon(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return (v.dtype.str, v.shape, v.tobytes())
        return (type(v).__name__, v)

    return canon(vars(ck))


def _recording() -> Recording:
    rng = np.random.default_rng(3)
    T, B = 6, 3
    spikes = {}
    for layer, n, ternary in ((1, 12, True), (3, 5, False)):
        m = 20
        order = np.lexsort((rng.integers(0, T, m), rng.integers(0, B, m)))
        spikes[layer] = SpikeTrain(
            sample=np.sort(rng.integers(0, B, m)).astype(np.int32),
            t=rng.integers(0, T, m).astype(np.int32)[order], neuron=rng.integers(0, n, m).astype(np.int32),
            value=rng.choice(np.array([-1, 1], np.int8), m) if ternary else None, n_neurons=n)
    return Recording(readout=rng.standard_normal((T, B, 4)).astype(np.float32),
                     predictions=rng.integers(0, 4, B), spikes=spikes,
                     membrane={3: rng.standard_normal((T, B, 2)).astype(np.float32)},
                     membrane_neurons={3: np.array([0, 4])},
                     synaptic_events={"layers[0]": 100, "layers[2]": 40, "total": 140},
                     time_weights=np.linspace(1, 2, T).astype(np.float32))


def _recording_content(r: Recording):
    arr = lambda a: None if a is None else (a.dtype.str, a.shape, a.tobytes())
    return (arr(r.readout), arr(r.predictions), arr(r.time_weights), dict(r.synaptic_events),
            {k: (s.n_neurons, arr(s.sample), arr(s.t), arr(s.neuron), arr(s.value))
             for k, s in r.spikes.items()},
            {k: arr(v) for k, v in r.membrane.items()},
            {k: arr(v) for k, v in r.membrane_neurons.items()})


FORMATS = {
    "model": (lambda p: mf.write_model(_model(), p), lambda p: _model_content(mf.read_model(p)),
              mf.ModelFormatError),
    "checkpoint": (lambda p: save_checkpoint(p, **_checkpoint_fields()),
                   lambda p: _checkpoint_content(load_checkpoint(p)), CheckpointFormatError),
    "recording": (lambda p: _recording().save(p), lambda p: _recording_content(Recording.load(p)),
                  RecordingFormatError),
}


# ------------------------------------------------------------------------------------------
# random byte flips


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_random_byte_flips_are_caught_or_harmless(kind, tmp_path):
    write, read, error = FORMATS[kind]
    original = tmp_path / "original.h5"
    write(original)
    expected = read(original)
    data = original.read_bytes()
    rng = np.random.default_rng(14)
    silent = []
    for trial in range(TRIALS):
        damaged = bytearray(data)
        for pos in rng.choice(len(data), FLIPS, replace=False):
            damaged[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"damaged{trial:02d}.h5"
        path.write_bytes(bytes(damaged))
        try:
            content = read(path)
        except error as e:
            assert str(path) in str(e), f"trial {trial}: the message does not name the file: {e}"
            continue
        if content != expected:
            silent.append(trial)
    assert not silent, f"{kind}: trials {silent} loaded changed content without an error"


def _data_offset(path, name) -> int:
    with h5py.File(path, "r") as f:
        ds = f[name]
        if ds.chunks is None:
            return ds.id.get_offset()
        return ds.id.get_chunk_info(0).byte_offset


@pytest.mark.parametrize("kind, dataset", [
    ("model", "layers/0004/indices"), ("model", "connections/0000/projection/weight"),
    ("checkpoint", "model_state/0.weight"), ("checkpoint", "optimizer_state/state/0.weight/m"),
    ("recording", "spikes/0001/neuron"), ("recording", "membrane/0003/values"),
])
def test_damaged_array_is_named(kind, dataset, tmp_path):
    write, read, error = FORMATS[kind]
    path = tmp_path / "flip.h5"
    write(path)
    offset = _data_offset(path, dataset)
    with open(path, "r+b") as fh:
        fh.seek(offset + 1)
        byte = fh.read(1)
        fh.seek(offset + 1)
        fh.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(error) as info:
        read(path)
    assert str(path) in str(info.value) and dataset in str(info.value)


def test_every_array_carries_a_digest(tmp_path):
    for kind, (write, _, _) in FORMATS.items():
        path = tmp_path / f"{kind}.h5"
        write(path)
        with h5py.File(path, "r") as f:
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            assert names
            for n in names:
                assert fileio.DIGEST_ATTR in f[n].attrs, f"{kind}: {n} has no digest"


@pytest.mark.parametrize("name", ["fmnist_mlp.h5", "fmnist_conv.h5"])
def test_files_without_digests_still_load(name, tmp_path):
    """Model files of version 1 (no digests, the earliest HDF5 layout) keep loading."""
    from pathlib import Path

    src = Path(__file__).parent.parent / "data" / name
    with h5py.File(src, "r") as f:
        assert f.attrs["version"] == 1
    shutil.copy(src, tmp_path / name)
    assert mf.read_model(tmp_path / name).layers


def _strip_digests(f, version):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in names:
        del f[n].attrs[fileio.DIGEST_ATTR]
    f.attrs["version"] = version


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_version_1_loads_without_digests_version_2_requires_them(kind, tmp_path):
    write, read, error = FORMATS[kind]
    path = tmp_path / "f.h5"
    write(path)
    expected = read(path)
    with h5py.File(path, "r+") as f:
        _strip_digests(f, 2)
    with pytest.raises(error, match=rf"f\.h5: dataset /\S+ has no sha256 digest"):
        read(path)
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = 1
    assert read(path) == expected
