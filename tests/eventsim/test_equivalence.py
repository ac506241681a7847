"""The simulator equals the time-stepped references exactly.

Random models with dyadic weights (multiples of 2**-8, few bits) make every sum exact in any
order, so spikes, membranes and readouts must be *identical* to the dense references for
every layer and step.  They cover every projection kind (dense, sparse, conv with stride and
padding, average and max pooling, flatten, identity chains), both resets, ``v_reset != 0``,
binary and ternary spikes, ``v_min``, biases (also in the middle of a chain), leaky
readouts, direct analog input (static and time-varying), spike and analog events, and
recurrent/feedback connections with delays 1..3.

References: :func:`tests.reference.naive_eventsim.simulate` (everything), itself checked
against the dense training engine (``training.export.to_network``) on the binary
feed-forward models, against which the simulator is also compared directly.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import eventsim
from snncore import modelfile as mf
from eventsim.inputs import EventBatch, from_dense
from eventsim.network import (FULL_PASS_DIV, FULL_PASS_DIV_CHEAP, LAYER_WINDOW,
                              RING_DENSE_DIV)
from tests.reference import naive_eventsim as naive

BETAS = (1.0, 0.5, 0.25, 0.75)
N_MODELS = 36


# ---------------------------------------------------------------------------------------
# random dyadic models
# ---------------------------------------------------------------------------------------
def _w(rng, shape, fan_in, shift=0.15):
    a = max(2, int(round(256 * 1.8 / np.sqrt(fan_in))))
    return ((rng.integers(-a, a + 1, size=shape) + int(a * shift)) / 256).astype(np.float32)


def _bias(rng, n, p=0.6):
    return (rng.integers(-24, 40, size=n) / 256).astype(np.float32) if rng.random() < p else None


def _spiking(rng, allow_ternary=True, plain=False):
    if plain:  # what the dense engine supports
        return mf.Spiking(beta=float(rng.choice(BETAS)), theta=float(rng.choice([0.5, 0.75, 1.0])),
                          reset=str(rng.choice(["hard", "subtract"])),
                          v_reset=float(rng.choice([0.0, -0.25, 0.125])))
    return mf.Spiking(beta=float(rng.choice(BETAS)), theta=float(rng.choice([0.5, 0.75, 1.0])),
                      reset=str(rng.choice(["hard", "subtract"])),
                      v_reset=float(rng.choice([0.0, -0.25, 0.125])),
                      v_min=[None, 0.0, -0.5][rng.integers(3)],
                      spikes="ternary" if allow_ternary and rng.random() < 0.4 else "binary")


def _sparse(rng, n_out, n_in, density=0.4):
    mask = rng.random((n_out, n_in)) < density
    W = _w(rng, (n_out, n_in), max(1, int(n_in * density))) * mask
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(mask)[1].astype(np.int64)
    return mf.Sparse(data=W[mask].astype(np.float32), indices=indices, indptr=indptr,
                     shape=(n_out, n_in), bias=_bias(rng, n_out))


def mlp_model(rng, plain=False):
    n0, n1, n2, n3 = (int(v) for v in rng.integers(6, 20, size=4))
    layers = [mf.Dense(_w(rng, (n1, n0), n0), _bias(rng, n1)), _spiking(rng, plain=plain),
              (mf.Dense(_w(rng, (n2, n1), n1), _bias(rng, n2)) if plain or rng.random() < 0.5
               else _sparse(rng, n2, n1)),
              _spiking(rng, plain=plain), mf.Dense(_w(rng, (n3, n2), n2), _bias(rng, n3)),
              _spiking(rng, plain=plain), mf.Dense(_w(rng, (5, n3), n3), _bias(rng, 5)),
              mf.Readout(beta=0.0 if plain else float(rng.choice([0.0, 0.5, 1.0])))]
    conns = []
    if not plain:
        sizes = {1: n1, 3: n2, 5: n3}
        for _ in range(rng.integers(1, 4)):
            src, tgt = (int(v) for v in rng.choice([1, 3, 5], size=2))
            proj = (mf.Dense(_w(rng, (sizes[tgt], sizes[src]), sizes[src], shift=0.0), _bias(rng, sizes[tgt], 0.3))
                    if rng.random() < 0.5 else _sparse(rng, sizes[tgt], sizes[src]))
            conns.append(mf.Connection(source=src, target=tgt, projection=proj,
                                       delay=int(rng.integers(1, 4))))
    return mf.Model(input_shape=(n0,), layers=layers, connections=conns)


def conv_model(rng, plain=False):
    C, H, W = int(rng.integers(1, 3)), int(rng.integers(7, 11)), int(rng.integers(7, 11))
    c1, c2 = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    s1, p1 = int(rng.integers(1, 3)), int(rng.integers(0, 2))
    conv1 = mf.Conv2d(_w(rng, (c1, C, 3, 3), C * 9), _bias(rng, c1), stride=(s1, s1), padding=(p1, p1))
    sp1 = _spiking(rng, allow_ternary=False, plain=plain)
    h1, w1 = (H + 2 * p1 - 3) // s1 + 1, (W + 2 * p1 - 3) // s1 + 1
    if rng.random() < 0.5:
        pool = mf.MaxPool2d(kernel=(2, 2), stride=(int(rng.integers(1, 3)),) * 2)
    else:
        pool = mf.AvgPool2d(kernel=(2, 2), stride=(int(rng.integers(1, 3)),) * 2)
    h2, w2 = (h1 - 2) // pool.stride[0] + 1, (w1 - 2) // pool.stride[1] + 1
    k2 = 3 if min(h2, w2) >= 2 else 1
    conv2 = mf.Conv2d(_w(rng, (c2, c1, k2, k2), c1 * k2 * k2), _bias(rng, c2), stride=(2, 2), padding=(1, 1))
    h3, w3 = (h2 + 2 - k2) // 2 + 1, (w2 + 2 - k2) // 2 + 1
    sp2 = _spiking(rng, plain=plain)
    layers = [conv1, sp1, pool, conv2, sp2]
    n2 = c2 * h3 * w3
    if min(h3, w3) >= 2 and rng.random() < 0.6:
        layers.append(mf.AvgPool2d(kernel=(1, 2), stride=(1, 1)))
        w3 -= 1
    n3 = c2 * h3 * w3
    n4 = int(rng.integers(6, 16))
    layers += [mf.Flatten(), mf.Dense(_w(rng, (n4, n3), n3), _bias(rng, n4)), _spiking(rng, plain=plain),
               mf.Dense(_w(rng, (4, n4), n4), _bias(rng, 4)), mf.Readout()]
    conns = []
    if not plain:
        i3 = len(layers) - 3  # the last spiking layer (n4 neurons)
        n1 = c1 * h1 * w1
        if rng.random() < 0.7:  # feedback into the first (channel-last) conv population
            conns.append(mf.Connection(source=i3, target=1, delay=int(rng.integers(1, 4)),
                                       projection=mf.Dense(_w(rng, (n1, n4), n4, 0.0))))
        if rng.random() < 0.5:  # recurrent, sparse, within the second conv population
            conns.append(mf.Connection(source=4, target=4, delay=int(rng.integers(1, 4)),
                                       projection=_sparse(rng, n2, n2, 0.2)))
    return mf.Model(input_shape=(C, H, W), layers=layers, connections=conns)


def chain_model(rng):
    """Unusual chains: spiking on the input, pooling + conv without neurons in between,
    identity edges, max pooling after an identity edge, mid-chain biases (Dense -> Dense),
    a readout straight after Flatten of a pooled map, feedback into a conv layer."""
    C, H, W = 2, int(rng.integers(6, 9)), int(rng.integers(6, 9))
    c1 = int(rng.integers(2, 4))
    sp0 = _spiking(rng)
    h1, w1 = (H - 2) // 2 + 1, (W - 2) // 2 + 1
    conv = mf.Conv2d(_w(rng, (c1, C, 3, 3), C * 9), _bias(rng, c1), stride=(1, 1), padding=(1, 1))
    sp1 = _spiking(rng, allow_ternary=False)
    sp2 = _spiking(rng, allow_ternary=False)
    h2, w2 = h1 - 1, w1 - 1
    n2 = c1 * h2 * w2
    nd = int(rng.integers(5, 12))
    layers = [sp0, mf.AvgPool2d(kernel=(2, 2), stride=(2, 2)), conv, sp1, sp2,
              mf.MaxPool2d(kernel=(2, 2), stride=(1, 1)), mf.Flatten(),
              mf.Dense(_w(rng, (nd, n2), n2), _bias(rng, nd, 1.0)),
              mf.Dense(_w(rng, (nd, nd), nd), _bias(rng, nd, 1.0)),
              _spiking(rng), mf.Dense(_w(rng, (3, nd), nd), None), mf.Readout(beta=0.5)]
    if rng.random() < 0.5:  # readout on a pooled map of the last conv population instead
        # (a 1x3 window: x * float32(1/3) rounds exactly as the dense engine's mean)
        layers = layers[:5] + [mf.AvgPool2d(kernel=(1, 3), stride=(1, 1)), mf.Flatten(), mf.Readout()]
        conns = []
    else:
        conns = [mf.Connection(source=9, target=3, delay=int(rng.integers(1, 4)),
                               projection=mf.Dense(_w(rng, (c1 * h1 * w1, nd), nd, 0.0)))]
    return mf.Model(input_shape=(C, H, W), layers=layers, connections=conns)


def make_model(seed: int, plain: bool = False):
    rng = np.random.default_rng(seed)
    kind = seed % 3 if not plain else seed % 2
    model = [mlp_model, conv_model, chain_model][kind](rng, plain) if kind < 2 else chain_model(rng)
    model.T = int(rng.integers(5, 12))
    return model, rng


def make_input(model, rng, how):
    """``how``: spikes | ternary-events | analog-events | direct | direct-steps."""
    T, B = model.T, int(rng.integers(1, 4))
    shape = (T, B) + tuple(model.input_shape)
    if how == "spikes":
        model.encoding = "rate"
        return (rng.random(shape) < 0.35).astype(np.float32)
    if how == "ternary-events":
        model.encoding = "events"
        x = (rng.random(shape) < 0.2).astype(np.float32) - (rng.random(shape) < 0.15)
        return from_dense(x.astype(np.float32))
    if how == "analog-events":
        model.encoding = "events"
        x = (rng.integers(-8, 17, size=shape) / 16).astype(np.float32) * (rng.random(shape) < 0.5)
        return from_dense(x)
    model.encoding = "direct"
    if how == "direct":
        x0 = (rng.integers(0, 17, size=(1, B) + tuple(model.input_shape)) / 16).astype(np.float32)
        return np.broadcast_to(x0, shape)
    return (rng.integers(0, 17, size=shape) / 16).astype(np.float32)


def _dense_values(x, model):
    return naive.events_to_dense(x) if isinstance(x, EventBatch) else np.asarray(x)


INPUTS = ("spikes", "ternary-events", "analog-events", "direct", "direct-steps")


def _check_equal(model, x, rec, what=""):
    spikes, membranes, readout = naive.simulate(model, _dense_values(x, model))
    T, B = readout.shape[:2]
    total = 0
    for layer in model.spiking_layers:
        got = rec.spikes[layer].to_dense(T, B)
        np.testing.assert_array_equal(got, spikes[layer], err_msg=f"{what} spikes of layer {layer}")
        if layer in rec.membrane:
            idx = rec.membrane_neurons[layer]
            np.testing.assert_array_equal(rec.membrane[layer], membranes[layer][:, :, idx],
                                          err_msg=f"{what} membrane of layer {layer}")
        total += int(np.abs(got).sum())
    np.testing.assert_array_equal(rec.readout, readout, err_msg=f"{what} readout")
    return total


# ---------------------------------------------------------------------------------------
# simulator == naive reference (everything)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(N_MODELS))
def test_simulator_equals_reference(seed):
    model, rng = make_model(seed)
    x = make_input(model, rng, INPUTS[seed % len(INPUTS)])
    mf.validate(model)
    net = eventsim.load(model)
    # lazy neurons everywhere (no recording), both constant-drive modes
    rec = eventsim.Simulator(net).run(x)
    total = _check_equal(model, x, rec, "step")
    rec2 = eventsim.Simulator(net, constant_drive="predict").run(x)
    _check_equal(model, x, rec2, "predict")
    # recorded neurons (every third, so the others stay lazy) are reconstructed exactly
    record = {l: np.arange(0, net.layer_size(l), 3) for l in model.spiking_layers}
    rec3 = eventsim.Simulator(net, record_membrane=record, constant_drive=("step", "predict")[seed % 2]).run(x)
    _check_equal(model, x, rec3, "recorded")
    if all(model.layers[l].beta != 0.75 for l in model.spiking_layers):
        # powers of two (and 1) multiply exactly: the power table is exact too
        _check_equal(model, x, eventsim.Simulator(net, leak="power").run(x), "power")
    # lazy populations updated neuron by neuron (full passes only when every neuron is
    # touched, bundles' ring slots added entry by entry), and with full passes from half of
    # the neurons touched (ring slots added as a whole, making the target wholly touched)
    for div, ring_div in ((0, 0), (2, 1 << 40)):
        net.sizes["full_div"] = net.sizes["full_div_cheap"] = div
        net.sizes["ring_div"] = ring_div
        sim = eventsim.Simulator(net, constant_drive=("step", "predict")[seed % 2])
        _check_equal(model, x, sim.run(x), f"full_div={div}")
        if all(model.layers[l].beta != 0.75 for l in model.spiking_layers):
            _check_equal(model, x, eventsim.Simulator(net, leak="power").run(x), f"power, full_div={div}")
    net.sizes["full_div"], net.sizes["full_div_cheap"] = FULL_PASS_DIV, FULL_PASS_DIV_CHEAP
    net.sizes["ring_div"] = RING_DENSE_DIV
    if not model.connections:
        # both schedules; layer-major with windows of a few steps as well as whole samples
        assert eventsim.Simulator(net).schedule == "layer"
        _check_equal(model, x, eventsim.Simulator(net, schedule="time").run(x), "time-major")
        net.sizes["window"] = 2 * max(net.pop_size)
        _check_equal(model, x, eventsim.Simulator(net, schedule="layer").run(x), "layer, window 2")
        net.sizes["window"] = LAYER_WINDOW
    else:
        assert eventsim.Simulator(net).schedule == "time"
    assert rec.synaptic_events["total"] > 0 or total == 0
    assert sum(rec.spike_counts.values()) == total


def per_neuron_variant(model, rng):
    """``model`` with per-neuron beta and theta (format 3) in most spiking layers: dyadic
    values drawn per neuron (beta from BETAS, 0 included; theta from 1/4 .. 5/4)."""
    import dataclasses
    shapes = mf.validate(model)
    layers = list(model.layers)
    for i in model.spiking_layers:
        if rng.random() < 0.8 or i == model.spiking_layers[0]:
            n = int(np.prod(shapes[i]))
            layers[i] = dataclasses.replace(
                layers[i], beta=rng.choice(BETAS + (0.0,), n).astype(np.float32),
                theta=(rng.integers(2, 11, n) / 8).astype(np.float32))
    return dataclasses.replace(model, layers=layers)


@pytest.mark.parametrize("seed", range(18))
def test_per_neuron_parameters_equal_reference(seed):
    """Per-neuron beta and theta: every update path (lazy, full passes, recorded, both
    constant-drive modes, both schedules) gives the reference's bits; ``leak="power"`` has
    no power table for them and steps the leak (exact too)."""
    model, rng = make_model(seed)
    model = per_neuron_variant(model, rng)
    x = make_input(model, rng, INPUTS[seed % len(INPUTS)])
    net = eventsim.load(model)
    assert net.pops["pn"][:-1].any()
    _check_equal(model, x, eventsim.Simulator(net).run(x), "step")
    _check_equal(model, x, eventsim.Simulator(net, constant_drive="predict").run(x), "predict")
    record = {l: np.arange(0, net.layer_size(l), 3) for l in model.spiking_layers}
    _check_equal(model, x, eventsim.Simulator(net, record_membrane=record, leak="power").run(x),
                 "recorded, power")
    for div in (0, 2):
        net.sizes["full_div"] = net.sizes["full_div_cheap"] = div
        _check_equal(model, x, eventsim.Simulator(net, constant_drive="predict").run(x),
                     f"full_div={div}")
    net.sizes["full_div"], net.sizes["full_div_cheap"] = FULL_PASS_DIV, FULL_PASS_DIV_CHEAP
    if not model.connections:
        _check_equal(model, x, eventsim.Simulator(net, schedule="time").run(x), "time-major")


@pytest.mark.parametrize("proj", ["dense", "sparse"])
@pytest.mark.parametrize("neuron", [
    dict(reset="subtract", beta=1.0), dict(reset="subtract", beta=0.75, spikes="ternary"),
    dict(reset="hard", v_reset=0.75, beta=1.0), dict(reset="hard", v_reset=-0.75, beta=1.0,
                                                     spikes="ternary"),
    dict(reset="subtract", beta=0.5, v_min=0.0)])
def test_neurons_fire_again_without_input(proj, neuron):
    """Strong, rare input: after a subtract reset (or a reset to v_reset beyond threshold) a
    neuron keeps firing on steps where nothing touches it; the event loop must wake it."""
    rng = np.random.default_rng(7)
    W = (rng.integers(-200, 1000, size=(12, 6)) / 256).astype(np.float32)
    if proj == "sparse":
        W[rng.random(W.shape) < 0.5] = 0
        mask = W != 0
        first = mf.Sparse(data=W[mask], indices=np.nonzero(mask)[1], indptr=np.concatenate(
            [[0], np.cumsum(mask.sum(axis=1))]), shape=W.shape)
    else:
        first = mf.Dense(W)
    model = mf.Model(input_shape=(6,), T=14, encoding="rate", layers=[
        first, mf.Spiking(theta=0.5, **neuron),
        mf.Dense((rng.integers(-64, 64, size=(3, 12)) / 256).astype(np.float32)), mf.Readout()])
    x = np.zeros((14, 2, 6), np.float32)
    x[0, 0, :3] = 1
    x[6, 0, 2:] = 1
    x[3, 1, 4] = -1 if neuron.get("spikes") == "ternary" else 1
    rec = eventsim.Simulator(model).run(from_dense(x))
    spikes, _, readout = naive.simulate(model, x)
    np.testing.assert_array_equal(rec.spikes[1].to_dense(14, 2), spikes[1])
    np.testing.assert_array_equal(rec.readout, readout)
    quiet = [t for t in range(14) if not x[t].any()]
    assert np.abs(spikes[1][quiet]).sum() > 0   # spikes on steps without any input


@pytest.mark.parametrize("seed", range(4))
def test_full_passes_change_no_bit(seed):
    """General float32 weights and beta (sums round): lazy neuron-by-neuron updates, full
    passes whenever anything is touched, and the switching in between give identical
    spikes, membranes and readouts (``leak="repeat"``)."""
    rng = np.random.default_rng(500 + seed)
    n_in, n = 40, int(rng.integers(150, 400))   # lazy steps with few and > 64 spikes
    W_in = (rng.random((n, n_in)) < 0.1) * rng.standard_normal((n, n_in)).astype(np.float32) * 0.6
    W_rec = (rng.random((n, n)) < 0.05) * rng.standard_normal((n, n)).astype(np.float32) * 0.4
    sp = lambda W: mf.Sparse(data=W[W != 0].astype(np.float32), indices=np.nonzero(W)[1],
                             indptr=np.concatenate([[0], np.cumsum((W != 0).sum(1))]), shape=W.shape)
    model = mf.Model(input_shape=(n_in,), T=60, encoding="rate", layers=[
        sp(W_in), mf.Spiking(beta=float(rng.uniform(0.8, 0.99)), theta=0.5,
                             reset=("hard", "subtract")[seed % 2], v_min=(None, -0.3)[seed // 2 % 2]),
        mf.Dense(rng.standard_normal((3, n)).astype(np.float32)), mf.Readout(beta=0.9)],
        connections=[mf.Connection(source=1, target=1, delay=d, projection=sp(W_rec * (rng.random(W_rec.shape) < 0.5)))
                     for d in (1, 3)])
    # bursts of input: some steps touch most neurons, others few
    x = (rng.random((60, 2, n_in)) < rng.choice([0.01, 0.05, 0.5], size=(60, 1, 1))).astype(np.float32)
    net = eventsim.load(model)
    recs = []
    for div, ring_div in ((0, 0), (1 << 40, 0), (4, 0), (16, 1 << 40), (0, 8)):
        net.sizes["full_div"] = net.sizes["full_div_cheap"] = div
        net.sizes["ring_div"] = ring_div
        recs.append(eventsim.Simulator(net, record_membrane={1: np.arange(0, n, 7)}).run(x))
    for r in recs[1:]:
        np.testing.assert_array_equal(r.readout, recs[0].readout)
        np.testing.assert_array_equal(r.membrane[1], recs[0].membrane[1])
        np.testing.assert_array_equal(r.spikes[1].to_dense(60, 2), recs[0].spikes[1].to_dense(60, 2))
    assert 0 < recs[0].spikes[1].to_dense(60, 2).mean() < 0.5


@pytest.mark.parametrize("seed", range(6))
def test_merged_connections(seed):
    """Several sparse connections between the same populations (equal and different
    delays, recurrent and feed-back, with a dense one alongside) are merged into bundles:
    spikes, membranes and readouts equal the reference, and every connection counts the
    events it delivered before T."""
    rng = np.random.default_rng(700 + seed)
    n0, n1, n2 = (int(v) for v in rng.integers(8, 20, size=3))
    layers = [mf.Dense(_w(rng, (n1, n0), n0)), _spiking(rng),
              _sparse(rng, n2, n1), _spiking(rng),
              mf.Dense(_w(rng, (3, n2), n2)), mf.Readout(beta=0.5)]
    sizes = {1: n1, 3: n2}
    conns = []
    for src, tgt, d in [(1, 1, 2), (1, 1, 1), (3, 1, 3), (1, 1, 2), (3, 3, 4), (1, 1, 5), (3, 1, 1)]:
        conns.append(mf.Connection(source=src, target=tgt, delay=d,
                                   projection=_sparse(rng, sizes[tgt], sizes[src], 0.3)))
    conns.append(mf.Connection(source=1, target=1, delay=2,
                               projection=mf.Dense(_w(rng, (n1, n1), n1, 0.0))))
    model = mf.Model(input_shape=(n0,), T=int(rng.integers(8, 16)), layers=layers,
                     connections=conns)
    x = make_input(model, rng, ("spikes", "ternary-events", "direct-steps")[seed % 3])
    net = eventsim.load(model)
    assert len(net.bundles) == 3 and len(net.edges) == len(net.pops) + 1
    for ring_div in (None, 0, 1 << 40):   # default, entry by entry, always as a whole
        if ring_div is not None:
            net.sizes["ring_div"] = ring_div
        for leak in ("repeat", "power") if all(l.beta != 0.75 for l in layers[1:4:2]) else ("repeat",):
            rec = eventsim.Simulator(net, leak=leak, record_membrane={1: "all", 3: "all"}).run(x)
            _check_equal(model, x, rec, f"{leak}, ring_div={ring_div}")
    T, B = model.T, rec.readout.shape[1]
    for k, c in enumerate(conns):
        src = rec.spikes[c.source].to_dense(T, B)
        pr = c.projection
        fan = (np.bincount(pr.indices, minlength=sizes[c.source]) if isinstance(pr, mf.Sparse)
               else np.full(sizes[c.source], pr.weight.shape[0]))
        want = sum(int(np.abs(src[t]).sum(axis=0) @ fan) for t in range(T - c.delay))
        assert rec.synaptic_events[f"connections[{k}]"] == want, k


def test_models_are_not_silent():
    """The random models exercise the dynamics: most of them spike in every layer."""
    active = 0
    for seed in range(N_MODELS):
        model, rng = make_model(seed)
        x = make_input(model, rng, INPUTS[seed % len(INPUTS)])
        spikes, _, _ = naive.simulate(model, _dense_values(x, model))
        active += all(np.abs(s).sum() > 0 for s in spikes.values())
    assert active >= 0.7 * N_MODELS


def test_multiple_threads_and_chunks_give_the_same_result():
    model, rng = make_model(1)
    x = make_input(model, rng, "spikes")
    x = np.concatenate([x] * 5, axis=1)
    one = eventsim.Simulator(model, n_threads=1).run(x)
    many = eventsim.Simulator(model, n_threads=3, chunk_size=2).run(x)
    np.testing.assert_array_equal(one.readout, many.readout)
    for layer in model.spiking_layers:
        for name in ("sample", "t", "neuron"):
            np.testing.assert_array_equal(getattr(one.spikes[layer], name),
                                          getattr(many.spikes[layer], name))
    assert one.synaptic_events == many.synaptic_events


def test_spike_buffer_growth():
    """A tiny initial spike buffer grows by doubling inside the kernel (a recurrent model,
    run step by step, and a feed-forward one, run both ways)."""
    ff = next(s for s in range(N_MODELS) if not make_model(s)[0].connections)
    for seed, schedules in ((3, ("time",)), (ff, ("time", "layer"))):
        model, rng = make_model(seed)
        x = make_input(model, rng, "spikes")
        net = eventsim.load(model)
        want = eventsim.Simulator(net).run(x)
        net.sizes["spikecap"] = 16
        for schedule in schedules:
            got = eventsim.Simulator(net, schedule=schedule).run(x)
            assert sum(got.spike_counts.values()) > 100, (seed, schedule)
            for layer in model.spiking_layers:
                np.testing.assert_array_equal(got.spikes[layer].neuron, want.spikes[layer].neuron)
            np.testing.assert_array_equal(got.readout, want.readout)


def test_float64_model():
    model, rng = make_model(0)
    x = make_input(model, rng, "spikes")
    cast = lambda a: None if a is None else (a.astype(np.float64) if a.dtype.kind == "f" else a)
    import dataclasses
    def conv(rec):
        kw = {f.name: cast(getattr(rec, f.name)) for f in dataclasses.fields(rec)
              if isinstance(getattr(rec, f.name), np.ndarray)}
        return dataclasses.replace(rec, **kw) if kw else rec
    m64 = mf.Model(input_shape=model.input_shape, layers=[conv(l) for l in model.layers],
                   connections=[dataclasses.replace(c, projection=conv(c.projection)) for c in model.connections],
                   T=model.T, encoding=model.encoding)
    rec = eventsim.Simulator(m64, record_membrane={1: "all"}).run(x)
    assert rec.readout.dtype == np.float64
    spikes, membranes, readout = naive.simulate(m64, x, dtype=np.float64)
    np.testing.assert_array_equal(rec.readout, readout)
    np.testing.assert_array_equal(rec.membrane[1], membranes[1])


# ---------------------------------------------------------------------------------------
# the dense training engine (binary feed-forward models)
# ---------------------------------------------------------------------------------------
def _dense_engine(model):
    try:
        from training.export import to_network
        from training.neurons import LIF
        net = to_network(model)
    except (ImportError, ModuleNotFoundError) as e:  # conv/pooling layers not written yet
        pytest.skip(f"dense engine incomplete: {e}")
    return net, LIF


def run_dense_engine(model, x):
    """Spikes per spiking layer, membranes and the output of ``to_network(model)``."""
    net, LIF = _dense_engine(model)
    spikes, membranes = {}, {}
    h = np.asarray(x)
    layer_ids = iter(model.spiking_layers)
    for layer in net.layers:
        if isinstance(layer, LIF):
            layer.record = True
        h = layer.forward(h)
        if isinstance(layer, LIF):
            i = next(layer_ids)
            spikes[i] = h.reshape(h.shape[0], h.shape[1], -1).astype(np.int8)
            membranes[i] = layer.membrane.reshape(h.shape[0], h.shape[1], -1)
            layer.record = False
    return spikes, membranes, h


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("how", ["spikes", "direct"])
def test_simulator_and_reference_equal_dense_engine(seed, how):
    model, rng = make_model(seed, plain=True)
    x = make_input(model, rng, how)
    d_spikes, d_mem, d_out = run_dense_engine(model, x)
    n_spikes, n_mem, n_out = naive.simulate(model, x)
    rec = eventsim.Simulator(model, record_membrane={l: "all" for l in model.spiking_layers}).run(x)
    T, B = d_out.shape[:2]
    for layer in model.spiking_layers:
        np.testing.assert_array_equal(n_spikes[layer], d_spikes[layer])
        np.testing.assert_array_equal(n_mem[layer], d_mem[layer])
        np.testing.assert_array_equal(rec.spikes[layer].to_dense(T, B), d_spikes[layer])
        np.testing.assert_array_equal(rec.membrane[layer], d_mem[layer])
    np.testing.assert_array_equal(n_out, d_out)
    np.testing.assert_array_equal(rec.readout, d_out)
    from training.losses import decode
    np.testing.assert_array_equal(rec.predictions, decode(d_out).argmax(axis=1))


# ---------------------------------------------------------------------------------------
# a real trained float32 model (slow; needs tests/data/fmnist_mlp.h5)
# ---------------------------------------------------------------------------------------
DATA = Path(__file__).resolve().parents[1] / "data"
TRAINED_MODELS = [Path(os.environ["EVENTSIM_FMNIST_MLP"])] if "EVENTSIM_FMNIST_MLP" in os.environ \
    else [DATA / "fmnist_mlp.h5", DATA / "fmnist_conv.h5"]


@pytest.mark.slow
@pytest.mark.parametrize("MODEL_FILE", TRAINED_MODELS, ids=lambda p: p.stem)
def test_trained_fashion_mnist_model_agrees_with_dense_engine(MODEL_FILE):
    """>= 99.5 % same predictions and >= 99.9 % same neuron-step spikes on the 10k test
    images, for real float32 models trained on Fashion-MNIST by ``benchmarks/train_fmnist.py``
    (``tests/data/README.md``; ``EVENTSIM_FMNIST_MLP`` overrides the model path,
    ``EVENTSIM_AGREEMENT_LIMIT`` the number of images)."""
    if not MODEL_FILE.exists():
        pytest.skip(f"{MODEL_FILE} not present (train and export a Fashion-MNIST MLP first)")
    try:
        from training import encoding
        from snncore.datasets import load_fashion_mnist
        from training.losses import decode
        data = load_fashion_mnist(split="test", download=False)
    except Exception as e:  # dataset or module missing
        pytest.skip(f"Fashion-MNIST test split unavailable: {e}")
    net = eventsim.load(MODEL_FILE)
    model = net.model
    limit = int(os.environ.get("EVENTSIM_AGREEMENT_LIMIT", "10000"))
    images = data.float_images(flatten=len(model.input_shape) == 1)[:limit]
    images = images.reshape((-1,) + model.input_shape).astype(net.dtype)
    sim = eventsim.Simulator(net)
    rng = np.random.default_rng(0)
    same_pred = spike_same = spike_total = n = 0
    for b0 in range(0, len(images), 500):
        xb = images[b0:b0 + 500]
        if model.encoding == "direct":
            x = encoding.direct(xb, model.T, dtype=net.dtype)
        else:
            x = encoding.rate(xb, model.T, rng, dtype=net.dtype)
        d_spikes, _, d_out = run_dense_engine(model, x)
        rec = sim.run(x)
        same_pred += int(np.sum(rec.predictions == decode(d_out, net.time_weights).argmax(axis=1)))
        for layer in model.spiking_layers:
            got = rec.spikes[layer].to_dense(model.T, len(xb))
            spike_same += int(np.sum(got == d_spikes[layer]))
            spike_total += got.size
        n += len(xb)
    pred_agree, spike_agree = same_pred / n, spike_same / spike_total
    print(f"\n{MODEL_FILE.name}, {n} images: prediction agreement {pred_agree:.5f}, "
          f"neuron-step spike agreement {spike_agree:.6f}")
    assert pred_agree >= 0.995
    assert spike_agree >= 0.999


def _float_mlp(rng, sizes=(200, 300, 300, 10), T=50):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(mf.Dense(rng.normal(0, 1.5 / np.sqrt(a), (b, a)).astype(np.float32)))
        layers.append(mf.Spiking(beta=0.9, theta=1.0))
    layers[-1] = mf.Readout()
    return mf.Model(input_shape=(sizes[0],), layers=layers, T=T, encoding="rate")


def _same_recordings(a, b, layers):
    np.testing.assert_array_equal(a.readout, b.readout)
    for layer in layers:
        for name in ("sample", "t", "neuron"):
            np.testing.assert_array_equal(getattr(a.spikes[layer], name), getattr(b.spikes[layer], name))
        if layer in a.membrane:
            np.testing.assert_array_equal(a.membrane[layer], b.membrane[layer])
    assert a.synaptic_events == b.synaptic_events


def test_layer_and_time_schedules_give_the_same_bits_with_float_weights():
    """Float (not dyadic) weights, so any change in the order of a sum shows; thousands of
    spikes per sample (the layer-major spike buffer grows); membranes recorded."""
    rng = np.random.default_rng(7)
    model = _float_mlp(rng)
    x = (rng.random((model.T, 3, 200)) < 0.3).astype(np.float32)
    record = {1: np.arange(0, 300, 5), 3: "all"}
    time_rec = eventsim.Simulator(model, schedule="time", record_membrane=record).run(x)
    layer_rec = eventsim.Simulator(model, schedule="layer", record_membrane=record).run(x)
    assert min(np.bincount(time_rec.spikes[1].sample)) > 1024
    _same_recordings(time_rec, layer_rec, (1, 3))


def test_layer_schedule_keeps_the_order_of_unsorted_input_events():
    """Input events listed in descending address order within a step are summed in that
    order by both schedules (the layer-major schedule then delivers them step by step)."""
    rng = np.random.default_rng(8)
    model = _float_mlp(rng)
    x = (rng.random((model.T, 2, 200)) < 0.3).astype(np.float32)
    ev = from_dense(x)
    key = ev.sample_ptr.searchsorted(np.arange(len(ev.times)), side="right")
    order = np.lexsort((-ev.indices, ev.times, key))    # sample, step, address descending
    rev = EventBatch(times=ev.times[order], indices=ev.indices[order], values=ev.values[order],
                     sample_ptr=ev.sample_ptr, T=ev.T, input_shape=ev.input_shape)
    record = {1: "all"}
    sorted_rec = eventsim.Simulator(model, schedule="time", record_membrane=record).run(ev)
    time_rec = eventsim.Simulator(model, schedule="time", record_membrane=record).run(rev)
    layer_rec = eventsim.Simulator(model, schedule="layer", record_membrane=record).run(rev)
    # the order matters for these weights (the first layer's sums round differently), so
    # the comparison below can fail
    assert not np.array_equal(sorted_rec.membrane[1], time_rec.membrane[1])
    _same_recordings(time_rec, layer_rec, (1, 3))


def test_layer_schedule_needs_a_feed_forward_network():
    model = next(m for m, _ in (make_model(s) for s in range(N_MODELS)) if m.connections)
    with pytest.raises(ValueError, match="feed-forward"):
        eventsim.Simulator(model, schedule="layer")
    with pytest.raises(ValueError, match="schedule"):
        eventsim.Simulator(model, schedule="fast")
