"""Lazy current-based (CUBA) populations (issue 18): a population without constant input is
updated only where touched or due, each neuron catching up on the steps it missed by
repeating its recurrence, and queued for its next crossing without input.  The spikes,
recorded membranes and readout must be the dense engine's bits (dyadic networks) and the
every-step path's bits (any float network), and the lazy path must do less work on sparse
input."""
import numpy as np
import pytest

import eventsim
import training
from eventsim import modelfile as mf
from eventsim.inputs import from_dense
from training import CubaLIF

from .test_cuba import cuba_net, dense_run, dyadic, inputs

RESETS = ("subtract", "hard")


def unbiased(net):
    """The network with every bias before a CubaLIF zeroed (a bias is a constant input: that
    population would be updated at every step); the readout keeps its own."""
    for layer in net.layers[:-1]:
        if getattr(layer, "bias", None) is not None:
            layer.bias.data[...] = 0
    return net


def sparse_spikes(rng, dtype, T, B, n, p):
    """0/1 spikes ``[T, B, n]``, each with probability p, and no event at all in most
    steps when p is small."""
    return (rng.random((T, B, n)) < p).astype(dtype)


# full passes of a lazy CUBA population: only when wholly touched (0), whenever any neuron
# is touched (a large divisor), or the default threshold
DIVS = (0, 1 << 20, None)


def compiled(model, div):
    """``eventsim.load(model)`` with its CUBA full-pass divisor set to ``div`` (None: the
    default)."""
    net = eventsim.load(model)
    if div is not None:
        net.sizes["full_div_cuba"] = div
    return net


def counts(sim, layer):
    """Neuron updates of the population of model layer ``layer`` in the last run."""
    return sum(r["neuron_updates"] for r in sim.last_profile
               if r["where"] == f"layers[{layer}]" and r["phase"] == "update")


@pytest.mark.parametrize("density", ["sparse", "dense"])
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lazy_gives_dense_bits(dtype, reset, recurrent, density):
    """Linear -> CubaLIF -> Linear -> CubaLIF (per-neuron alpha 0 .. 1, beta 1) -> Linear
    without biases, dyadic: both schedules, lazy and every step, give the dense engine's
    spikes, recorded membranes and readout."""
    rng = np.random.default_rng(41)
    net = unbiased(cuba_net(rng, dtype, reset, recurrent))
    T, B = 40, 24
    if density == "sparse":   # few events, onto strong positive weights
        x = sparse_spikes(rng, dtype, T, B, 12, 0.01)
        net.layers[0].weight.data[...] = np.abs(net.layers[0].weight.data) * 4
    else:
        x = inputs(rng, "rate", dtype, T, B)
    spikes, mem, y = dense_run(net, x)
    model = training.to_model(net, input_shape=(12,), T=T, encoding="rate", dtype=dtype)
    for pos in (1, 3):
        assert spikes[pos].any() and spikes[pos].mean() < 0.9
    schedules = ("time",) if recurrent else ("time", "layer")
    for schedule in schedules:
        for cuba in ("lazy", "step"):
            sim = eventsim.Simulator(model, n_threads=1, schedule=schedule, cuba=cuba,
                                     record_membrane={1: [2, 7], 3: [0, 3, 9]})
            rec = sim.run(x)
            for pos in (1, 3):
                np.testing.assert_array_equal(rec.spikes[pos].to_dense(T, B), spikes[pos])
            np.testing.assert_array_equal(rec.membrane[1], mem[1][:, :, [2, 7]])
            np.testing.assert_array_equal(rec.membrane[3], mem[3][:, :, [0, 3, 9]])
            np.testing.assert_array_equal(rec.readout, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_lazy_neuron_by_neuron(dtype):
    """A CubaLIF on a conv feature map (per-neuron alpha and beta), no biases, sparse input:
    a conv delivery of few events touches few neurons, so the population is updated neuron
    by neuron (not by full passes); the dense engine's bits, and far fewer updates than
    neurons x steps."""
    rng = np.random.default_rng(43)
    F = 3 * 4 * 4
    alpha = rng.choice([0.0, 0.25, 0.5, 1.0], F)
    beta = rng.choice([0.25, 0.5, 1.0], F)
    with training.default_dtype(dtype):
        net = training.Sequential(
            training.Conv2d(1, 3, 3, padding=1, rng=rng), training.AvgPool2d(2),
            CubaLIF(alpha, beta, threshold=0.5, features=F), training.Flatten(),
            training.Linear(F, 5, rng=rng)).eval()
    for layer in (net.layers[0], net.layers[4]):
        layer.weight.data[...] = dyadic(rng, layer.weight.data.shape, -6, 17, 8)
        layer.bias.data[...] = 0
    T, B = 60, 16
    x = sparse_spikes(rng, dtype, T, B, 64, 0.004).reshape(T, B, 1, 8, 8)
    spikes, mem, y = dense_run(net, x)
    assert spikes[2].any()
    model = training.to_model(net, input_shape=(1, 8, 8), T=T, encoding="rate", dtype=dtype)
    updates = {}
    for schedule, cuba, div in [(s, "step", None) for s in ("time", "layer")] + [
            (s, "lazy", d) for s in ("time", "layer") for d in DIVS]:
        sim = eventsim.Simulator(compiled(model, div), n_threads=1, schedule=schedule,
                                 cuba=cuba, profile=True, record_membrane={2: [0, 17]})
        rec = sim.run(x)
        np.testing.assert_array_equal(rec.spikes[2].to_dense(T, B),
                                      spikes[2].reshape(T, B, F))
        np.testing.assert_array_equal(rec.membrane[2], mem[2].reshape(T, B, F)[:, :, [0, 17]])
        np.testing.assert_array_equal(rec.readout, y)
        updates[schedule, cuba, div] = counts(sim, 2)
    for schedule in ("time", "layer"):
        assert updates[schedule, "step", None] == F * T * B
        # the blocks of the two recorded neurons (3 channels each) are updated at every
        # step, the rest only when touched or due
        assert updates[schedule, "lazy", 0] < F * T * B // 2


def float_model(dtype, alpha, beta, reset, v_min, recurrent, rng):
    """A model with float (not dyadic) weights: dense -> CUBA -> sparse -> CUBA (per-neuron
    alpha and beta) -> dense -> readout, no biases before the readout, optionally a delayed
    sparse connection back to the first CUBA population."""
    dt = np.dtype(dtype)

    def w(*shape, scale=0.6):
        return (rng.standard_normal(shape) * scale).astype(dt)

    mask = rng.random((25, 30)) < 0.15
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    sparse = mf.Sparse(data=np.abs(w(int(mask.sum()), scale=1.0)),
                       indices=np.nonzero(mask)[1].astype(np.int64), indptr=indptr,
                       shape=(25, 30))
    a2 = rng.choice([0.0, 0.5, 0.9, 0.999, 1.0], 25).astype(dt)
    b2 = rng.choice([0.5, 0.95, 1.0], 25).astype(dt)
    v_reset = 0.25 if reset == "hard" else 0.0
    layers = [mf.Dense(np.abs(w(30, 20))),
              mf.Spiking(beta=beta, theta=1.0, reset=reset, v_reset=v_reset, v_min=v_min,
                         alpha=alpha),
              sparse,
              mf.Spiking(beta=b2, theta=0.75, reset=reset, v_reset=-v_reset, v_min=v_min,
                         alpha=a2),
              mf.Dense(w(4, 25), w(4)), mf.Readout(beta=0.5)]
    connections = []
    if recurrent:
        m = rng.random((30, 25)) < 0.1
        ip = np.concatenate([[0], np.cumsum(m.sum(axis=1))]).astype(np.int64)
        connections.append(mf.Connection(source=3, target=1, delay=2, projection=mf.Sparse(
            data=w(int(m.sum())), indices=np.nonzero(m)[1].astype(np.int64), indptr=ip,
            shape=(30, 25))))
    return mf.Model(input_shape=(20,), T=50, layers=layers, connections=connections)


@pytest.mark.parametrize("alpha, beta", [(0.9, 0.95), (1.0, 1.0), (0.999, 1.0), (1.0, 0.75),
                                         (0.0, 0.5), (0.5, 0.0)])
@pytest.mark.parametrize("reset, v_min", [("subtract", None), ("hard", None),
                                          ("subtract", -0.5), ("hard", 0.125)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lazy_equals_every_step_on_float_weights(dtype, reset, v_min, alpha, beta):
    """Lazy and every-step updates add the same currents in the same order: the same bits
    on any weights, here float ones with alpha and beta near and at 1 (slow decay: long
    catch-ups and crossings far ahead), v_min, hard reset to a non-zero value, a delayed
    sparse recurrent connection, sparse and dense spike input."""
    rng = np.random.default_rng(44)
    for recurrent in (False, True):
        model = float_model(dtype, alpha, beta, reset, v_min, recurrent, rng)
        T, B = model.T, 8
        for p in (0.01, 0.3):
            x = from_dense(sparse_spikes(rng, dtype, T, B, 20, p))
            recs, ups = {}, {}
            for cuba, div in [("step", None)] + [("lazy", d) for d in DIVS]:
                sim = eventsim.Simulator(compiled(model, div), n_threads=1, cuba=cuba,
                                         schedule="time", profile=True,
                                         record_membrane={1: [0, 29], 3: [1]})
                recs[cuba, div] = sim.run(x)
                ups[cuba, div] = counts(sim, 1) + counts(sim, 3)
            b = recs["step", None]
            for div in DIVS:
                a = recs["lazy", div]
                for pos in (1, 3):
                    np.testing.assert_array_equal(a.spikes[pos].to_dense(T, B),
                                                  b.spikes[pos].to_dense(T, B))
                np.testing.assert_array_equal(a.membrane[1], b.membrane[1])
                np.testing.assert_array_equal(a.membrane[3], b.membrane[3])
                np.testing.assert_array_equal(a.readout, b.readout)
            assert b.spikes[1].to_dense(T, B).any() and b.spikes[3].to_dense(T, B).any()
            assert ups["step", None] == (30 + 25) * T * B
            assert ups["lazy", 0] <= ups["step", None]


def test_lazy_path_taken_on_sparse_input():
    """Sparse input into a 1000-neuron CUBA layer: far fewer neuron updates than neurons x
    steps (idle steps cost nothing), the same spikes as every step."""
    rng = np.random.default_rng(45)
    dt = np.float32
    mask = rng.random((1000, 100)) < 0.01
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    model = mf.Model(input_shape=(100,), T=200, layers=[
        mf.Sparse(data=(rng.random(int(mask.sum())) * 1.5).astype(dt),
                  indices=np.nonzero(mask)[1].astype(np.int64), indptr=indptr,
                  shape=(1000, 100)),
        mf.Spiking(beta=0.9, theta=1.0, alpha=0.8),
        mf.Dense(rng.standard_normal((3, 1000)).astype(dt)), mf.Readout()])
    T, B = 200, 4
    x = from_dense(sparse_spikes(rng, dt, T, B, 100, 0.002))
    out = {}
    for cuba in ("lazy", "step"):
        for schedule in ("time", "layer"):
            sim = eventsim.Simulator(model, n_threads=1, cuba=cuba, schedule=schedule,
                                     profile=True)
            out[cuba, schedule] = sim.run(x), counts(sim, 1)
    ref = out["step", "time"][0].spikes[1].to_dense(T, B)
    assert ref.any()
    for key, (rec, nu) in out.items():
        np.testing.assert_array_equal(rec.spikes[1].to_dense(T, B), ref)
        if key[0] == "step":
            assert nu == 1000 * T * B
        else:
            assert nu < 1000 * T * B // 20


def test_cuba_option_checked():
    with pytest.raises(ValueError, match=r"Simulator\.cuba: must be one of \['lazy', 'step'\]"):
        eventsim.Simulator(training.to_model(unbiased(cuba_net(np.random.default_rng(1),
                                                                np.float32, "hard", False)),
                                             input_shape=(12,), T=4), cuba="sometimes")


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_drive_zero_at_step_0(alpha):
    """A time-varying analog input that is zero at step 0 still drives the first population
    at the later steps (it used to leave a plain LIF population lazy, missing the drive, and
    would have left a CUBA population lazy too): the dense engine's spikes."""
    dt = np.float32
    model = mf.Model(input_shape=(4,), T=6, encoding="direct", layers=[
        mf.Dense(np.eye(4, dtype=dt)), mf.Spiking(beta=0.5, theta=1.0, alpha=alpha),
        mf.Dense(np.ones((2, 4), dt)), mf.Readout()])
    x = np.zeros((6, 3, 4), dt)
    x[2:] = 0.75
    want = training.to_network(model).forward(x)
    assert want.any()
    for kw in ({"cuba": "lazy"}, {"cuba": "step"}, {"constant_drive": "predict"}):
        for schedule in ("time", "layer"):
            rec = eventsim.Simulator(model, n_threads=1, schedule=schedule, **kw).run(x)
            np.testing.assert_array_equal(rec.readout, want)
