"""Float precision: ``dtype=np.float64`` simulation, the dense comparison's differences, and
compilation kept out of the timed figures.

With float weights the simulator and the dense engine sum a neuron's input in different
orders, so in float32 a membrane within round-off of the threshold can spike in one and not
in another (or not in the float64 value).  Float64 accumulation removes those flips: it
must then agree with the float64 dense engine and the float64 reference simulator.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import eventsim
from eventsim import cli
from eventsim import modelfile as mf
from eventsim.network import CompiledNetwork, cast_model
from tests.reference import naive_eventsim as naive

DATA = Path(__file__).resolve().parents[1] / "data"

# 1 - 2**-24 is the float32 just below 1; adding 2**-25 + 2**-30 gives a value below 1 that
# float32 rounds up to 1.0 (the nearer neighbour), float64 keeps exactly
W_BIG, W_SMALL = 1.0 - 2.0 ** -24, 2.0 ** -25 + 2.0 ** -30


def _threshold_model() -> mf.Model:
    """2 inputs -> 1 LIF (theta 1) -> 2 readouts; both inputs spiking at step 0 charge the
    neuron to 1 - 2**-25 + 2**-30 (float64), which float32 rounds to exactly 1.0."""
    w1 = np.array([[W_BIG, W_SMALL]], np.float32)
    w2 = np.array([[1.0], [-0.5]], np.float32)
    return mf.Model(input_shape=(2,), T=3, encoding="rate",
                    layers=[mf.Dense(w1), mf.Spiking(beta=0.5, theta=1.0), mf.Dense(w2),
                            mf.Readout()])


def _dense_engine(model: mf.Model, x: np.ndarray):
    """Spikes of the first spiking layer and the readout of ``training.export.to_network``."""
    from training.export import to_network
    from training.neurons import LIF

    h, first = x, None
    for layer in to_network(model).layers:
        h = layer.forward(h)
        if first is None and isinstance(layer, LIF):
            first = h.reshape(h.shape[0], h.shape[1], -1)
    return first, h


def test_float64_removes_a_float32_flip_at_threshold():
    model = _threshold_model()
    x = np.zeros((3, 1, 2), np.float32)
    x[0] = 1.0
    rec32 = eventsim.Simulator(model, record_membrane={1: "all"}).run(x)
    net64 = eventsim.load(model, dtype=np.float64)
    rec64 = eventsim.Simulator(net64, record_membrane={1: "all"}).run(x)
    # float32: the sum rounds to 1.0 and the neuron spikes; float64: it stays below
    assert rec32.membrane[1][0, 0, 0] == np.float32(1.0)
    assert rec32.spikes[1].to_dense(3, 1)[0, 0, 0] == 1
    assert rec64.membrane[1].dtype == np.float64 and rec64.readout.dtype == np.float64
    assert rec64.membrane[1][0, 0, 0] == W_BIG + W_SMALL < 1.0
    assert rec64.spikes[1].to_dense(3, 1).sum() == 0
    # float64 agrees with the float64 reference and the float64 dense engine, bit for bit
    m64 = cast_model(model, np.float64)
    spikes, membranes, readout = naive.simulate(m64, x, dtype=np.float64)
    np.testing.assert_array_equal(rec64.spikes[1].to_dense(3, 1), spikes[1])
    np.testing.assert_array_equal(rec64.membrane[1], membranes[1])
    np.testing.assert_array_equal(rec64.readout, readout)
    d_spikes, d_out = _dense_engine(m64, x.astype(np.float64))
    np.testing.assert_array_equal(rec64.spikes[1].to_dense(3, 1), d_spikes)
    np.testing.assert_array_equal(rec64.readout, d_out)


def test_dtype_option_casts_and_names_bad_values():
    model = _threshold_model()
    net = eventsim.load(model, dtype="float64")
    assert net.dtype == np.float64 and net.model.layers[0].weight.dtype == np.float64
    assert model.layers[0].weight.dtype == np.float32          # the caller's model untouched
    assert eventsim.load(net) is net and eventsim.load(net, dtype=np.float64) is net
    back = eventsim.load(net, dtype=np.float32)
    assert back.dtype == np.float32 and back.wf.dtype == np.float32
    assert CompiledNetwork(model).dtype == np.float32
    with pytest.raises(ValueError, match="eventsim.load: dtype: expected np.float32 or "
                                         "np.float64, got int32"):
        eventsim.load(model, dtype=np.int32)
    with pytest.raises(ValueError, match="CompiledNetwork.dtype"):
        CompiledNetwork(model, dtype=np.float16)


def test_trained_mlp_flip_disappears_in_float64():
    """The trained Fashion-MNIST MLP with rate-coded input (T=32, ``training.encoding.rate``
    seed 0): image 833 of the small test split (all 1000 encoded) charges hidden neuron 370 at step 10 to
    0.99999975 (float64), which the simulator's float32 sum rounds to 1.0, a spike.  In
    float64 the simulator, the dense engine and the reference agree."""
    path = DATA / "fmnist_mlp.h5"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from training import encoding
    from training.datasets import load_fashion_mnist_small

    model = eventsim.read_model(path)
    model.T, model.encoding = 32, "rate"
    images = load_fashion_mnist_small("test").float_images(flatten=True)
    x = encoding.rate(images, 32, np.random.default_rng(0), dtype=np.float32)[:, 833:834]
    m64 = cast_model(model, np.float64)
    ref_spikes, ref_mem, ref_out = naive.simulate(m64, x, dtype=np.float64)
    rec32 = eventsim.Simulator(model, n_threads=1).run(x)
    flips = np.argwhere(rec32.spikes[1].to_dense(32, 1) != ref_spikes[1])
    assert [10, 0, 370] in flips.tolist()                  # the float32 flip this test is about
    assert ref_mem[1][10, 0, 370] < 1.0 <= ref_mem[1][10, 0, 370] + 1e-6

    rec64 = eventsim.Simulator(eventsim.load(model, dtype=np.float64), n_threads=1).run(x)
    np.testing.assert_array_equal(rec64.spikes[1].to_dense(32, 1), ref_spikes[1])
    np.testing.assert_allclose(rec64.readout, ref_out, rtol=0, atol=1e-12)
    d_spikes, d_out = _dense_engine(m64, x.astype(np.float64))
    np.testing.assert_array_equal(rec64.spikes[1].to_dense(32, 1), d_spikes)
    np.testing.assert_allclose(rec64.readout, d_out, rtol=0, atol=1e-12)


# -- the command line ----------------------------------------------------------------------
def _mnist_threshold_model(tmp_path) -> str:
    """784 inputs; two central pixels wired as in :func:`_threshold_model` to a hidden
    neuron without memory (beta 0) that spikes in float32 (1.0), never in float64
    (1 - 2**-25 + 2**-30), whenever both pixels spike in a step; rate input."""
    w1 = np.zeros((2, 784), np.float32)
    w1[0, 406:408] = (W_BIG, W_SMALL)
    w1[1, 400:410] = 0.25
    w2 = np.array([[1.0, 0.5], [-0.5, 0.25]], np.float32)
    model = mf.Model(input_shape=(784,), T=4, encoding="rate",
                     layers=[mf.Dense(w1), mf.Spiking(beta=0.0, theta=1.0), mf.Dense(w2),
                             mf.Readout()], metadata={"dataset": "fashion-mnist-small"})
    return str(mf.write_model(model, tmp_path / "m.h5"))


def test_compare_dense_reports_readout_differences_and_flips(tmp_path, capsys):
    path = _mnist_threshold_model(tmp_path)
    for dtype in ("float32", "float64"):
        rc = cli.main(["simulate", path, "--limit", "20", "--batch-size", "8", "--compare-dense",
                       "--dtype", dtype, "--no-progress"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        d = json.loads(out)
        assert d["simulator"]["dtype"] == dtype
        assert d["flipped_spikes_per_layer"] == {"1": {"sim_only": 0, "dense_only": 0}}
        assert d["flipped_spike_examples"] == []
        assert d["readout_max_abs_diff"] == 0.0 and d["readout_entries_differing"] == 0
        assert d["readout_entries"] == 4 * 20 * 2
        assert d["compile_time_s"] >= 0.0
    # float32 vs float64: the spikes at 1.0 exist in float32 only (both engines agree)
    rc = cli.main(["simulate", path, "--limit", "20", "--no-progress"])
    s32 = json.loads(capsys.readouterr()[0])["spikes_per_layer"]["1"]
    rc = cli.main(["simulate", path, "--limit", "20", "--no-progress", "--dtype", "float64"])
    s64 = json.loads(capsys.readouterr()[0])["spikes_per_layer"]["1"]
    assert s32 > s64


def test_dense_diff_counts_flips_per_side():
    diff = cli._DenseDiff()
    T, B, n = 2, 3, 4
    key = lambda t, b, j: (t * B + b) * n + j
    sim = np.array(sorted([key(0, 0, 1), key(1, 2, 3), key(0, 1, 0)]))
    dense = np.array(sorted([key(0, 0, 1), key(1, 1, 2)]))
    diff.add_layer(1, sim, dense, T, B, n, start=10)
    diff.add_readout(np.zeros((T, B, 2), np.float32), np.full((T, B, 2), 0.25))
    r = diff.report()
    assert r["flipped_spikes_per_layer"] == {"1": {"sim_only": 2, "dense_only": 1}}
    assert r["spike_agreement"] == {"1": pytest.approx(1 - 3 / (T * B * n))}
    assert r["readout_max_abs_diff"] == 0.25 and r["readout_entries_differing"] == T * B * 2
    assert {"layer": 1, "sample": 11, "step": 1, "neuron": 2, "spiked_in": "dense"} \
        in r["flipped_spike_examples"]
    assert {"layer": 1, "sample": 12, "step": 1, "neuron": 3, "spiked_in": "sim"} \
        in r["flipped_spike_examples"]


def test_compilation_is_kept_out_of_the_timed_loop(tmp_path, capsys, monkeypatch):
    """A simulator whose first run is slow (as a first run compiling Numba kernels is):
    that time goes to compile_time_s, not to simulate_time_s / events_per_second."""
    Real = eventsim.Simulator

    class SlowFirst(Real):
        calls = 0

        def run(self, x, T=None):
            SlowFirst.calls += 1
            if SlowFirst.calls == 1:
                time.sleep(1.0)
            return super().run(x, T)

    monkeypatch.setattr(eventsim, "Simulator", SlowFirst)
    path = _mnist_threshold_model(tmp_path)
    rc = cli.main(["simulate", path, "--limit", "10", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    d = json.loads(out)
    assert d["compile_time_s"] >= 1.0 and d["simulate_time_s"] < 0.5


def test_warmup_command(capsys):
    rc = cli.main(["warmup", "--dtype", "float32"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    d = json.loads(out)
    assert d["compiled"] == ["float32"] and d["seconds"]["float32"] >= 0
    assert "numba_cache_dir" in d


def test_warmup_models_cover_every_layer_kind():
    from eventsim.simulator import warmup_models

    kinds = set()
    for m in warmup_models(np.float64):
        kinds |= {l.kind for l in m.layers} | {c.projection.kind for c in m.connections}
        assert eventsim.load(m).dtype == np.float64
        kinds |= {"connection"} if m.connections else set()
        kinds |= {"cuba"} if any(getattr(l, "alpha", None) is not None for l in m.layers) else set()
    assert kinds >= {"dense", "sparse", "conv2d", "avgpool2d", "maxpool2d", "flatten",
                     "spiking", "readout", "connection", "cuba"}
