"""Dense input arrays: spikes go in as events when that pays, whatever the model's encoding
(``Simulator(dense_input=...)``), and ``synaptic_events`` counts the input projections on
both paths the same way."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import eventsim
from eventsim import modelfile as mf
from eventsim.inputs import from_dense
from eventsim.simulator import EVENT_INPUT_MAX_DENSITY_DENSE, dense_input_as_events

DATA = Path(__file__).resolve().parent.parent / "data"


def _dyadic(rng, *shape, scale=8):
    """Weights k/16 with |k| <= scale: every sum of a few of them is exact in float32."""
    return (rng.integers(-scale, scale + 1, size=shape) / 16).astype(np.float32)


def _models():
    """Direct-encoded models whose input chains use every projection kind: Dense (after
    Flatten), Conv2d with padding (border fan-outs), Sparse, Conv2d then AvgPool2d (an
    intermediate space), AvgPool2d first."""
    rng = np.random.default_rng(5)
    lif = dict(beta=0.5, theta=0.5)
    mlp = mf.Model(input_shape=(2, 3, 3), T=6, layers=[
        mf.Flatten(), mf.Dense(_dyadic(rng, 12, 18), _dyadic(rng, 12)), mf.Spiking(**lif),
        mf.Dense(_dyadic(rng, 4, 12)), mf.Readout(beta=0.5)])
    conv = mf.Model(input_shape=(2, 5, 5), T=6, layers=[
        mf.Conv2d(_dyadic(rng, 3, 2, 3, 3), _dyadic(rng, 3), stride=(2, 2), padding=(1, 1)),
        mf.Spiking(**lif), mf.Flatten(), mf.Dense(_dyadic(rng, 4, 27)), mf.Readout()])
    mask = rng.random((10, 7)) < 0.4
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    sparse = mf.Model(input_shape=(7,), T=6, layers=[
        mf.Sparse(data=_dyadic(rng, int(mask.sum())), indices=np.nonzero(mask)[1].astype(np.int64),
                  indptr=indptr, shape=(10, 7), bias=None),
        mf.Spiking(**lif), mf.Dense(_dyadic(rng, 3, 10)), mf.Readout()])
    chain = mf.Model(input_shape=(1, 6, 6), T=6, layers=[
        mf.Conv2d(_dyadic(rng, 2, 1, 3, 3), None, stride=(1, 1), padding=(1, 1)),
        mf.AvgPool2d(kernel=(2, 2), stride=(2, 2)), mf.Spiking(**lif), mf.Flatten(),
        mf.Dense(_dyadic(rng, 3, 18)), mf.Readout()])
    pool = mf.Model(input_shape=(2, 4, 4), T=6, layers=[
        mf.AvgPool2d(kernel=(2, 2), stride=(2, 2)), mf.Spiking(beta=0.5, theta=0.25),
        mf.Flatten(), mf.Dense(_dyadic(rng, 3, 8)), mf.Readout()])
    maxpool = mf.Model(input_shape=(2, 4, 4), T=6, layers=[
        mf.MaxPool2d(kernel=(2, 2), stride=(2, 2)), mf.Flatten(), mf.Dense(_dyadic(rng, 5, 8)),
        mf.Spiking(**lif), mf.Dense(_dyadic(rng, 3, 5)), mf.Readout()])
    return {"mlp": mlp, "conv": conv, "sparse": sparse, "chain": chain, "pool": pool,
            "maxpool": maxpool}


MODELS = _models()


def _spikes_equal(a, b):
    assert sorted(a.spikes) == sorted(b.spikes)
    for layer, s in a.spikes.items():
        o = b.spikes[layer]
        for f in ("sample", "t", "neuron"):
            assert np.array_equal(getattr(s, f), getattr(o, f)), (layer, f)


def _binary(model, T, B, p, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((T, B) + tuple(model.input_shape)) < p).astype(np.float32)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("static", [False, True])
def test_both_paths_same_bits_and_counts(name, static):
    """Dyadic weights: events and current give the same readout, spikes and counts; the
    counts of the input projections are the event path's (static input: every step)."""
    model = MODELS[name]
    x = _binary(model, 6, 5, 0.3, seed=len(name))
    if static:
        x = np.broadcast_to(x[:1], x.shape)
    got = {mode: eventsim.Simulator(model, n_threads=1, dense_input=mode).run(x)
           for mode in ("events", "current", "auto")}
    ref = got["events"]
    assert ref.synaptic_events["layers[1]" if name == "mlp" else "layers[0]"] > 0
    if name == "maxpool":     # one event per emitting window, then the Dense behind it
        assert ref.synaptic_events["layers[0]"] < np.count_nonzero(x)
    for mode in ("current", "auto"):
        rec = got[mode]
        assert np.array_equal(rec.readout, ref.readout), mode
        _spikes_equal(rec, ref)
        assert rec.synaptic_events == ref.synaptic_events, mode


def test_static_input_counts_every_step():
    model = MODELS["conv"]
    x = _binary(model, 1, 3, 0.5, seed=1)
    one = eventsim.Simulator(model, n_threads=1, dense_input="current").run(x)
    four = eventsim.Simulator(model, n_threads=1, dense_input="current").run(
        np.broadcast_to(x, (4,) + x.shape[1:]))
    assert four.synaptic_events["layers[0]"] == 4 * one.synaptic_events["layers[0]"] > 0


def test_conv_border_fanout_is_exact():
    """3x3 conv, stride 2, padding 1 on 5x5 (3 output channels, 3x3 outputs): output row o
    covers input rows 2o-1..2o+1, so rows 0, 2, 4 lie in one window and rows 1, 3 in two."""
    model = MODELS["conv"]
    for (c, r, q), windows in {(0, 0, 0): 1, (1, 2, 2): 1, (0, 1, 1): 4, (1, 3, 0): 2,
                               (0, 4, 3): 2}.items():
        x = np.zeros((1, 1) + model.input_shape, np.float32)
        x[0, 0, c, r, q] = 1
        for mode in ("events", "current"):
            sim = eventsim.Simulator(model, n_threads=1, dense_input=mode)
            assert sim.run(x).synaptic_events["layers[0]"] == 3 * windows, (c, r, q, mode)


def test_graded_values_as_events():
    """dense_input="events" delivers graded entries as events carrying their value."""
    model = MODELS["mlp"]
    rng = np.random.default_rng(2)
    x = (rng.integers(0, 3, size=(6, 4) + model.input_shape) / 4).astype(np.float32)
    ev = eventsim.Simulator(model, n_threads=1, dense_input="events").run(x)
    cur = eventsim.Simulator(model, n_threads=1, dense_input="current").run(x)
    auto = eventsim.Simulator(model, n_threads=1).run(x)
    assert np.array_equal(ev.readout, cur.readout) and np.array_equal(auto.readout, cur.readout)
    assert ev.synaptic_events == cur.synaptic_events == auto.synaptic_events
    assert cur.synaptic_events["layers[1]"] == np.count_nonzero(x) * 12


def test_auto_rule():
    net = eventsim.load(MODELS["mlp"])
    n = 6 * 2 * 18
    x = np.zeros((6, 2) + MODELS["mlp"].input_shape, np.float32)
    flat = x.reshape(-1)
    k = int(EVENT_INPUT_MAX_DENSITY_DENSE * n)
    flat[:k] = 1
    assert dense_input_as_events(net, x, False, "auto")
    flat[k] = 1                                     # one entry above the density limit
    assert not dense_input_as_events(net, x, False, "auto")
    assert dense_input_as_events(net, x, False, "events")
    assert not dense_input_as_events(net, x[:, :, :1] * 0 + x[:, :, :1], False, "current")
    sparse = x.copy()
    sparse[...] = 0
    sparse[0, 0, 0, 0, 0] = 1
    assert not dense_input_as_events(net, sparse, True, "auto")      # static: current once
    assert not dense_input_as_events(net, sparse * 0.5, False, "auto")  # graded: current
    assert dense_input_as_events(net, sparse.astype(bool), False, "auto")
    conv = eventsim.load(MODELS["conv"])            # not a Dense first: events at any density
    dense = np.ones((6, 1) + MODELS["conv"].input_shape, np.float32)
    dense[0] = 0
    assert dense_input_as_events(conv, dense, False, "auto")
    rate = eventsim.load(mf.Model(input_shape=(2, 3, 3), T=6, layers=MODELS["mlp"].layers,
                                  encoding="rate"))
    assert dense_input_as_events(rate, np.ones_like(x), True, "auto")   # spikes it expects
    counts = np.full(x.shape, 2, np.int16)                               # spike counts
    assert dense_input_as_events(rate, counts, False, "auto")
    assert not dense_input_as_events(rate, counts.astype(np.float32) / 4, False, "auto")


def test_stream_takes_the_same_path():
    """The batch-1 warm path runs sparse binary input to a direct model as events itself
    (not through Simulator.run) and gives run()'s result."""
    model = MODELS["conv"]
    sim = eventsim.Simulator(model, n_threads=1)
    stream = sim.stream(T=6)
    x = _binary(model, 6, 1, 0.05, seed=9)
    ref = sim.run(x)
    sim.run = None                                  # the stream must not fall back to run()
    got = stream.run(x)
    assert np.array_equal(got.readout, ref.readout)
    assert got.synaptic_events == ref.synaptic_events
    _spikes_equal(got, ref)
    forced = eventsim.Simulator(model, n_threads=1, dense_input="current")
    assert forced.stream(T=6).run(x).synaptic_events == ref.synaptic_events


def test_trained_float32_model_paths_agree_on_decisions():
    """Real float32 weights: the paths sum in different orders (BLAS vs event order), so
    readouts may differ in the last bit; decisions agree."""
    sim_e = eventsim.Simulator(DATA / "fmnist_mlp.h5", n_threads=1, dense_input="events")
    sim_c = eventsim.Simulator(DATA / "fmnist_mlp.h5", n_threads=1, dense_input="current")
    x = _binary(sim_e.network.model, 16, 50, 0.08, seed=4)
    a, b = sim_e.run(x), sim_c.run(x)
    assert np.allclose(a.readout, b.readout, rtol=1e-4, atol=1e-4)
    assert np.mean(a.predictions == b.predictions) >= 0.98
    assert a.synaptic_events["layers[0]"] == b.synaptic_events["layers[0]"] \
        == np.count_nonzero(x) * 800


def test_bad_mode():
    with pytest.raises(ValueError, match="Simulator.dense_input: must be one of"):
        eventsim.Simulator(MODELS["mlp"], dense_input="spikes")


def test_events_mode_respects_max_pool_rule():
    model = mf.Model(input_shape=(1, 4, 4), T=3, layers=[
        mf.MaxPool2d(kernel=(2, 2), stride=(2, 2)), mf.Flatten(), mf.Dense(np.ones((2, 4), np.float32)),
        mf.Spiking(beta=0.5, theta=0.5), mf.Dense(np.ones((2, 2), np.float32)), mf.Readout()])
    x = np.full((3, 1, 1, 4, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="max pooling"):
        eventsim.Simulator(model, n_threads=1, dense_input="events").run(x)
    eventsim.Simulator(model, n_threads=1).run(x)   # auto: graded input is a current
