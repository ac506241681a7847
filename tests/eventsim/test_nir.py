"""NIR export and import (``eventsim.nir``, docs/nir.md): conformance on real files written by
Norse, Rockpool and snnTorch, round trips of our trained models and of every node type, and
clear errors for bad files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

import eventsim
import eventsim.nir as enir
import training
from eventsim import cli
from snncore import modelfile as mf
from snncore.fileio import file_kind

DATA = Path(__file__).resolve().parents[1] / "data"
FIX = DATA / "nir"
DT = 1e-4      # the step of the NIR paper's LIF experiment (tests/data/nir/README.md)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _csv(tool: str) -> np.ndarray:
    a = np.loadtxt(FIX / f"lif_{tool}.csv", delimiter=",")
    if tool == "snntorch":            # snnTorch's membrane is in units of its threshold 2.5
        a[:, 1] *= 0.1 / 2.5
    return a


TOOLS = ("exact", "norse", "rockpool", "snntorch")


def _run(model, x, record=None):
    """Readout, spikes {layer: [T, B, n]} and recorded membranes of ``model`` on ``x``."""
    rec = eventsim.Simulator(model, record_membrane=record).run(x)
    T, B = x.shape[:2]
    spikes = {k: s.to_dense(T, B) for k, s in rec.spikes.items()}
    return rec.readout, spikes, {k: np.asarray(v) for k, v in rec.membrane.items()}


def _same_output(m1, m2, x):
    r1, s1, _ = _run(m1, x)
    r2, s2, _ = _run(m2, x)
    assert np.array_equal(r1, r2)
    assert s1.keys() == s2.keys()
    for k in s1:
        assert np.array_equal(s1[k], s2[k]), f"spikes of layer {k} differ"


def _write(graph, path) -> Path:
    nir.write(path, graph)
    return Path(path)


def _graph(nodes: dict, edges: list, metadata=None):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {}, type_check=False)


def _inp(*shape):
    return nir.Input(input_type={"input": np.array(shape)})


def _out(*shape):
    return nir.Output(output_type={"output": np.array(shape)})


def _lif(n, tau=1e-3, thr=1.0, leak=0.0, r=None, reset=None):
    meta = {} if reset is None else {"reset": reset}
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, 1.0 if r is None else r),
                   v_leak=np.full(n, leak), v_threshold=np.full(n, thr), v_reset=np.zeros(n),
                   metadata=meta)


def _chain(*named):
    """Input -> nodes in order -> Output; ``named``: (name, node) pairs."""
    names = ["input"] + [n for n, _ in named] + ["output"]
    return list(zip(names[:-1], names[1:]))


# ---------------------------------------------------------------------------------------
# conformance on the real files
# ---------------------------------------------------------------------------------------
def _spread_misses(model):
    """Steps where ``model``'s membrane after reset leaves the tools' spread (widened by
    1e-6), and whether its output spikes fall between the tools' earliest and latest."""
    refs = {t: _csv(t) for t in TOOLS}
    x = refs["exact"][:, :1].astype(np.float32)[:, None, :]
    for t in TOOLS:
        assert np.array_equal(refs[t][:, 0], x[:, 0, 0])
    _, spikes, mem = _run(model, x, record={1: "all"})
    u = mem[1][:, 0, 0].astype(np.float64)
    s = spikes[1][:, 0, 0]
    layer = model.layers[1]
    v = np.where(s > 0, u - layer.theta if layer.reset == "subtract" else layer.v_reset, u)
    traces = np.stack([refs[t][:, 1] for t in TOOLS])
    lo, hi = traces.min(0) - 1e-6, traces.max(0) + 1e-6
    outside = np.nonzero((v < lo) | (v > hi))[0]
    ours = np.nonzero(s)[0]
    theirs = np.array([np.nonzero(refs[t][:, 2])[0] for t in TOOLS])
    in_time = len(ours) == theirs.shape[1] and bool(
        np.all((theirs.min(0) <= ours) & (ours <= theirs.max(0))))
    return outside, in_time


@pytest.mark.parametrize("name", ["lif_norse", "lif_rockpool"])
def test_lif_file_lands_inside_the_spread_of_the_other_tools(name):
    """Import with the experiment's dt = 1e-4 s, drive with the CSV's input spikes, and compare
    with the four reference traces (exact solution, Norse, Rockpool, snnTorch).

    Tolerance: at every step our membrane after reset lies within [min, max] of the four
    tools' membranes widened by 1e-6 (the CSVs hold float32 values of size ~0.1, whose
    rounding is ~1e-8; the tools' own spread is up to 0.1 around the spike steps, where
    their discretisations and resets part), and each of our output spikes falls between the
    earliest and the latest step at which the tools fire that spike.  The norse file is read
    with forward Euler and reset to zero (Norse's), the rockpool file with exponential decay,
    unit gain and reset by subtraction (Rockpool's), both chosen by ``discretisation="auto"``.
    """
    outside, in_time = _spread_misses(enir.load(FIX / f"{name}.nir", dt=DT))
    assert outside.size == 0, f"membrane outside the spread at steps {outside[:10]}"
    assert in_time


@pytest.mark.parametrize("name, how", [("lif_rockpool", "euler"), ("lif_rockpool", "exact"),
                                       ("lif_norse", "rockpool")])
def test_lif_file_read_with_another_convention_leaves_the_spread(name, how):
    """The check above can fail: another tool's discretisation puts spikes a step off."""
    outside, in_time = _spread_misses(enir.load(FIX / f"{name}.nir", dt=DT, discretisation=how))
    assert outside.size > 0 or not in_time


def test_identify_the_writers():
    assert enir.identify(FIX / "lif_norse.nir")["tool"] == "norse"
    rock = enir.identify(FIX / "lif_rockpool.nir")
    assert rock["tool"] == "rockpool" and rock["dt"] == pytest.approx(1e-4, rel=1e-6)
    snn = enir.identify(FIX / "braille_noDelay_noBias_subtract.nir")
    assert snn["tool"] == "snntorch" and snn["dt"] == pytest.approx(1e-4, rel=1e-9)
    assert snn["reset"] == "subtract"


def test_two_lif_neurons_fire_from_their_leak_potential():
    """v_leak = 1.2 above the threshold 1 makes the first neuron fire without input: with
    forward Euler (beta = 0.99, 0.012 per step) its period is the first n with
    1.2 (1 - 0.99^n) >= 1 (179 steps; the continuous period is 10 ms ln 6 = 179.2 steps)."""
    model = enir.load(FIX / "two_lif_neurons.nir", dt=DT, reset="zero")
    x = np.zeros((800, 1, 1), np.float32)
    _, spikes, _ = _run(model, x)
    t = np.nonzero(spikes[1][:, 0, 0])[0]
    n = int(np.ceil(np.log(1 - 1 / 1.2) / np.log(0.99)))
    assert n == 179
    assert list(np.diff(t)) == [n] * (len(t) - 1) and t[0] == n - 1
    assert abs(n - 0.01 * np.log(6) / DT) < 1
    assert spikes[3].sum() == 0          # the second neuron (threshold 20) stays silent


def _braille_reference(path, x):
    """snnTorch's RSynaptic/Synaptic on the file's weights, in NumPy: per step
    ``i = alpha i + W x (+ W_rec s_prev)``, ``u = beta v + i``, spike when ``u > threshold``,
    ``v = u - threshold s`` (reset by subtraction in the same step), float32."""
    g = nir.read(path)
    n = g.nodes

    def consts(node):
        f = lambda a: np.asarray(a, np.float32)  # noqa: E731
        return (f(1 - DT / node.tau_syn), f(1 - DT / node.tau_mem), f(node.v_threshold))
    W1, Wr, W2 = (np.asarray(n[k].weight, np.float32) for k in ("fc1", "lif1.w_rec", "fc2"))
    (a1, b1, t1), (a2, b2, t2) = consts(n["lif1.lif"]), consts(n["lif2"])
    B = x.shape[1]
    i1, v1, s1 = (np.zeros((B, 40), np.float32) for _ in range(3))
    i2, v2 = (np.zeros((B, 7), np.float32) for _ in range(2))
    o1, o2 = [], []
    for xt in x:
        i1 = a1 * i1 + (xt @ W1.T + s1 @ Wr.T)
        u1 = b1 * v1 + i1
        s1 = (u1 > t1).astype(np.float32)
        v1 = u1 - t1 * s1
        i2 = a2 * i2 + s1 @ W2.T
        u2 = b2 * v2 + i2
        s2 = (u2 > t2).astype(np.float32)
        v2 = u2 - t2 * s2
        o1.append(s1)
        o2.append(s2)
    return np.array(o1), np.array(o2)


def test_braille_recurrent_graph_runs_in_the_simulator():
    """snnTorch's recurrent CubaLIF graph (a cycle through ``lif1.w_rec``): the recurrent
    Linear becomes a delay-1 self-connection; dt comes from the parameters (r = tau/dt for
    dt = 1e-4 s: snnTorch's fixed export step, not the data's 5 ms bin), reset by
    subtraction; the simulator's spikes equal a NumPy reference of snnTorch's equations."""
    path = FIX / "braille_noDelay_noBias_subtract.nir"
    model = enir.load(path)
    assert model.metadata["nir_tool"] == "snntorch" and model.metadata["nir_dt"] == pytest.approx(DT)
    (c,) = model.connections
    assert c.source == c.target == 1 and c.delay == 1 and c.projection.weight.shape == (40, 40)
    assert model.layers[1].alpha == pytest.approx(0.75) and model.layers[1].reset == "subtract"
    rng = np.random.default_rng(0)
    x = (rng.random((80, 16, 12)) < 0.3).astype(np.float32)
    readout, spikes, _ = _run(model, x)
    ref1, ref2 = _braille_reference(path, x)
    assert ref1.sum() > 100 and ref2.sum() > 50          # the test sees real activity
    assert np.array_equal(spikes[1], ref1) and np.array_equal(spikes[3], ref2)
    assert np.array_equal(readout, ref2)                  # the Output takes the spikes
    net = training.from_nir(path)                         # and the dense engine agrees
    assert np.array_equal(net.forward(x), ref2)


def test_braille_read_with_the_data_bin_is_refused():
    with pytest.raises(enir.NIRConversionError, match=r"lif1.lif.*tau_mem: dt = 0.005 s is longer"):
        enir.load(FIX / "braille_noDelay_noBias_subtract.nir", dt=5e-3)


# ---------------------------------------------------------------------------------------
# our trained models: export, read back, identical simulator output
# ---------------------------------------------------------------------------------------
def _layers_equal(a: mf.Model, b: mf.Model):
    assert [l.kind for l in a.layers] == [l.kind for l in b.layers]
    for la, lb in zip(a.layers, b.layers):
        for f in ("weight", "bias", "data", "indices", "indptr", "time_weights", "beta", "theta",
                  "alpha", "v_reset", "v_min", "reset", "spikes", "stride", "padding", "kernel"):
            va, vb = getattr(la, f, None), getattr(lb, f, None)
            if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                assert va is not None and vb is not None, f
                assert np.asarray(va).dtype == np.asarray(vb).dtype or np.ndim(va) == 0, f
                assert np.array_equal(np.asarray(va, np.float32), np.asarray(vb, np.float32)), f
            elif isinstance(va, float) or isinstance(vb, float):
                assert np.float32(va) == np.float32(vb), f
            else:
                assert va == vb or tuple(va) == tuple(vb), f
    assert [(c.source, c.target, c.delay) for c in a.connections] == \
           [(c.source, c.target, c.delay) for c in b.connections]


@pytest.mark.parametrize("name", ["fmnist_mlp", "fmnist_conv", "fmnist_rlif", "fmnist_cuba"])
def test_trained_model_round_trip_is_identical(name, tmp_path):
    src = DATA / f"{name}.h5"
    model = mf.read_model(src)
    out = enir.export(src, tmp_path / "net.nir", dt=1e-3)
    assert file_kind(out) == "nir"
    back = enir.load(out)
    _layers_equal(model, back)
    assert back.T == model.T and back.encoding == model.encoding
    assert back.metadata["accuracy"] == model.metadata["accuracy"]
    rng = np.random.default_rng(1)
    x = rng.random((model.T, 8) + model.input_shape).astype(np.float32)
    if model.encoding == "rate":
        x = (x < 0.2).astype(np.float32)
    _same_output(model, back, x)
    g = nir.read(out)                       # what other tools see
    assert float(g.metadata["dt"]) == 1e-3 and g.metadata["discretisation"] == "euler"
    assert g.metadata["threshold_test"] == ">"


def test_exported_parameters_follow_the_documented_mapping(tmp_path):
    """beta 0.9, theta 1, dt 1 ms, Euler: tau = dt/(1-beta) = 10 ms, r = 1/(1-beta) = 10,
    v_threshold the float32 just below 1 (NIR's strict >)."""
    model = mf.Model(input_shape=(3,), T=2, layers=[
        mf.Dense(np.eye(3, dtype=np.float32)), mf.Spiking(beta=0.9, theta=1.0, reset="subtract"),
        mf.Dense(np.ones((2, 3), np.float32)), mf.Readout(beta=0.5)])
    g = enir.to_graph(model, dt=1e-3)
    lif = g.nodes["1_lif"]
    assert lif.tau == pytest.approx(np.full(3, 0.01)) and lif.r == pytest.approx(np.full(3, 10.0))
    assert np.all(lif.v_threshold == np.nextafter(np.float32(1), np.float32(0)))
    assert lif.metadata["reset"] == "subtract"
    li = g.nodes["3_li"]
    assert li.tau == pytest.approx(np.full(2, 2e-3)) and li.r == pytest.approx(np.full(2, 2.0))
    g2 = enir.to_graph(model, dt=1e-3, discretisation="exact")
    assert g2.nodes["1_lif"].tau == pytest.approx(np.full(3, -1e-3 / np.log(0.9)))


# ---------------------------------------------------------------------------------------
# round trip of every node type
# ---------------------------------------------------------------------------------------
def _conv_graph(pool: str):
    rng = np.random.default_rng(2)
    w = rng.normal(0, 0.6, (3, 2, 3, 3))
    poolnode = (nir.SumPool2d if pool == "sum" else nir.AvgPool2d)(
        kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    nodes = {"input": _inp(2, 6, 6),
             "conv": nir.Conv2d(input_shape=np.array([6, 6]), weight=w, stride=1, padding=1,
                                dilation=1, groups=1, bias=np.array([0.1, 0.0, -0.1])),
             "lif": _lif((3, 6, 6), tau=2e-3, thr=0.5),
             "pool": poolnode,
             "flat": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0),
             "fc": nir.Affine(weight=rng.normal(0, 0.5, (4, 27)), bias=np.zeros(4)),
             "if": nir.IF(r=np.full(4, 0.8), v_threshold=np.full(4, 0.7), v_reset=np.zeros(4)),
             "fc2": nir.Linear(weight=rng.normal(0, 1, (3, 4))),
             "output": _out(3)}
    return _graph(nodes, _chain(*[(k, v) for k, v in nodes.items() if k not in ("input", "output")]))


def _graphs() -> dict:
    """One small graph per node type (the type in the key is in the graph)."""
    rng = np.random.default_rng(3)
    W = lambda o, i: rng.normal(0.3, 0.6, (o, i))  # noqa: E731
    g = {}
    g["Affine+LIF+Linear"] = _graph(
        {"input": _inp(4), "fc": nir.Affine(weight=W(5, 4), bias=np.full(5, 0.05)),
         "lif": _lif(5, tau=3e-3, thr=0.6, leak=0.2), "ro": nir.Linear(weight=W(2, 5)), "output": _out(2)},
        [("input", "fc"), ("fc", "lif"), ("lif", "ro"), ("ro", "output")])
    g["Conv2d+AvgPool2d+Flatten+IF"] = _conv_graph("avg")
    g["SumPool2d"] = _conv_graph("sum")
    g["Scale+Threshold"] = _graph(
        {"input": _inp(4), "fc": nir.Linear(weight=W(3, 4)), "sc": nir.Scale(scale=np.array([1.0, 2.0, 0.5])),
         "th": nir.Threshold(threshold=np.full(3, 0.4)), "ro": nir.Linear(weight=W(2, 3)), "output": _out(2)},
        [("input", "fc"), ("fc", "sc"), ("sc", "th"), ("th", "ro"), ("ro", "output")])
    cuba = nir.CubaLIF(tau_syn=np.full(5, 2e-4), tau_mem=np.full(5, 4e-4), r=np.full(5, 2.0),
                       v_leak=np.zeros(5), v_threshold=np.linspace(0.5, 1.0, 5), v_reset=np.zeros(5),
                       w_in=np.full(5, 1.5))
    g["CubaLIF+LI"] = _graph(
        {"input": _inp(4), "fc": nir.Linear(weight=W(5, 4)), "lif": cuba, "ro": nir.Linear(weight=W(3, 5)),
         "li": nir.LI(tau=np.full(3, 5e-4), r=np.full(3, 1.0), v_leak=np.zeros(3)), "output": _out(3)},
        [("input", "fc"), ("fc", "lif"), ("lif", "ro"), ("ro", "li"), ("li", "output")])
    g["CubaLI (no current decay)+I"] = _graph(
        {"input": _inp(4), "fc": nir.Linear(weight=W(5, 4)), "lif": _lif(5, thr=0.5),
         "ro": nir.Linear(weight=W(3, 5)),
         "li": nir.CubaLI(tau_syn=np.full(3, DT), tau_mem=np.full(3, 4e-3), r=np.ones(3),
                          v_leak=np.zeros(3), w_in=np.ones(3)), "output": _out(3)},
        [("input", "fc"), ("fc", "lif"), ("lif", "ro"), ("ro", "li"), ("li", "output")])
    g["I"] = _graph({"input": _inp(4), "fc": nir.Linear(weight=W(3, 4)), "i": nir.I(r=np.full(3, 0.5)),
                     "output": _out(3)}, [("input", "fc"), ("fc", "i"), ("i", "output")])
    sub = _graph({"input": _inp(5), "lif": _lif(5, thr=0.5, reset="subtract"),
                  "w_rec": nir.Linear(weight=-0.3 * np.ones((5, 5))), "output": _out(5)},
                 [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    g["NIRGraph (recurrent subgraph)"] = _graph(
        {"input": _inp(4), "fc": nir.Linear(weight=W(5, 4)), "rnn": sub, "ro": nir.Linear(weight=W(2, 5)),
         "output": _out(2)},
        [("input", "fc"), ("fc", "rnn"), ("rnn", "ro"), ("ro", "output")])
    g["Delay (feedback, 3 steps)"] = _graph(
        {"input": _inp(4), "fc": nir.Linear(weight=W(5, 4)), "l1": _lif(5, thr=0.5), "fc2": nir.Linear(weight=W(3, 5)),
         "l2": _lif(3, thr=0.5), "back": nir.Affine(weight=W(5, 3), bias=np.full(5, -0.1)),
         "d": nir.Delay(delay=np.full(3, 3e-4)), "ro": nir.Linear(weight=W(2, 3)), "output": _out(2)},
        [("input", "fc"), ("fc", "l1"), ("l1", "fc2"), ("fc2", "l2"), ("l2", "d"), ("d", "back"),
         ("back", "l1"), ("l2", "ro"), ("ro", "output")])
    return g


@pytest.mark.parametrize("key", list(_graphs()))
def test_node_type_round_trip(key, tmp_path):
    """NIR graph -> model -> NIR -> model: the two models compute the same, bit for bit."""
    path = _write(_graphs()[key], tmp_path / "in.nir")
    first = enir.load(path, dt=DT)
    out = enir.export(first, tmp_path / "out.nir", dt=DT)
    second = enir.load(out)
    _layers_equal(first, second)
    rng = np.random.default_rng(4)
    x = (rng.random((30, 6) + first.input_shape) < 0.4).astype(np.float32)
    _same_output(first, second, x)
    r, spikes, _ = _run(first, x)
    assert np.any(r != 0)
    assert all(s.any() for s in spikes.values()), "a population never fires: the test sees nothing"


def test_sum_pool_is_the_average_pool_times_the_window(tmp_path):
    s = enir.load(_write(_conv_graph("sum"), tmp_path / "s.nir"), dt=DT)
    a = enir.load(_write(_conv_graph("avg"), tmp_path / "a.nir"), dt=DT)
    assert [l.kind for l in s.layers] == [l.kind for l in a.layers]
    assert s.layers[2].kind == "avgpool2d" and s.layers[4].kind == "dense"
    np.testing.assert_allclose(s.layers[4].weight, 4 * a.layers[4].weight, rtol=1e-6)


def test_scale_and_gains_fold_into_the_weights(tmp_path):
    """LIF input gain r dt/tau (Euler) and the leak current (1 - beta) v_leak land in the
    Affine before it; a Scale multiplies the rows of the Linear before it."""
    m = enir.load(_write(_graphs()["Affine+LIF+Linear"], tmp_path / "a.nir"), dt=DT)
    g = nir.read(tmp_path / "a.nir")
    np.testing.assert_allclose(m.layers[0].weight, g.nodes["fc"].weight * (DT / 3e-3), rtol=1e-6)
    np.testing.assert_allclose(m.layers[0].bias, 0.05 * DT / 3e-3 + (DT / 3e-3) * 0.2, rtol=1e-6)
    assert m.layers[1].beta == pytest.approx(1 - DT / 3e-3)
    m = enir.load(_write(_graphs()["Scale+Threshold"], tmp_path / "s.nir"), dt=DT)
    g = nir.read(tmp_path / "s.nir")
    np.testing.assert_allclose(m.layers[0].weight, g.nodes["fc"].weight * np.array([[1.0], [2.0], [0.5]]), rtol=1e-6)
    assert m.layers[1].beta == 0 and m.layers[1].theta == np.nextafter(np.float32(0.4), np.float32(1))


@pytest.mark.parametrize("how", ["euler", "exact", "rockpool"])
def test_model_features_round_trip(how, tmp_path):
    """Per-neuron parameters, subtract reset, v_min, ternary spikes, sparse projections, a
    leaky readout with time weights and a forward connection delayed 2 steps come back as
    they were (the features NIR cannot state travel in node metadata)."""
    rng = np.random.default_rng(5)
    W = lambda o, i: (rng.integers(-40, 60, (o, i)) / 64).astype(np.float32)  # noqa: E731
    dense = W(6, 4)
    dense[dense < 0.3] = 0
    rows, cols = np.nonzero(dense)
    sparse = mf.Sparse(data=dense[rows, cols], indices=cols.astype(np.int64),
                       indptr=np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=6))]).astype(np.int64),
                       shape=(6, 4), bias=np.full(6, 0.125, np.float32))
    model = mf.Model(input_shape=(4,), T=5, encoding="rate", metadata={"dataset": "toy", "seed": 3}, layers=[
        sparse, mf.Spiking(beta=np.linspace(0.2, 1.0, 6).astype(np.float32), theta=np.linspace(0.5, 1, 6).astype(np.float32),
                           reset="subtract", v_min=-1.0),
        mf.Dense(W(5, 6)), mf.Spiking(beta=0.75, theta=0.5, spikes="ternary", reset="hard", v_reset=0.25),
        mf.Dense(W(3, 5)), mf.Spiking(beta=0.5, theta=0.75, alpha=np.full(3, 0.25, np.float32)),
        mf.Dense(W(2, 3), bias=np.ones(2, np.float32)),
        mf.Readout(beta=0.5, time_weights=np.linspace(0, 1, 5).astype(np.float32))],
        connections=[mf.Connection(source=1, target=3, projection=mf.Dense(W(5, 6)), delay=2),
                     mf.Connection(source=3, target=3, projection=mf.Dense(W(5, 5)), delay=1)])
    with pytest.warns(UserWarning, match="v_min or ternary"):
        out = enir.export(model, tmp_path / "m.nir", dt=1e-3, discretisation=how)
    back = enir.load(out)
    assert back.metadata["nir_discretisation"] == how
    _layers_equal(model, back)
    assert back.layers[0].kind == "sparse" and back.metadata["dataset"] == "toy"
    x = (rng.random((5, 16, 4)) < 0.5).astype(np.float32)
    _same_output(model, back, x)
    g = nir.read(out)
    assert {type(n).__name__ for n in g.nodes.values()} == {
        "Input", "Affine", "Linear", "LIF", "CubaLIF", "LI", "Delay", "Output"}
    assert isinstance(g.nodes["1_lif"], nir.LIF) and np.isinf(g.nodes["1_lif"].tau[-1])


def test_reset_option_overrides_the_file(tmp_path):
    path = _write(_graphs()["Affine+LIF+Linear"], tmp_path / "a.nir")
    assert enir.load(path, dt=DT).layers[1].reset == "hard"          # NIR: reset to v_reset
    assert enir.load(path, dt=DT, reset="subtract").layers[1].reset == "subtract"
    assert enir.load(path, dt=DT, reset="zero").layers[1].reset == "hard"
    with pytest.raises(ValueError, match="reset: must be one of"):
        enir.load(path, dt=DT, reset="soft")


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------
def _retype(path, node: str, new: bytes):
    with h5py.File(path, "r+") as f:
        del f[f"node/nodes/{node}/type"]
        f[f"node/nodes/{node}/type"] = new


def test_unknown_node_is_named_with_its_path(tmp_path):
    path = _write(_graphs()["NIRGraph (recurrent subgraph)"], tmp_path / "g.nir")
    _retype(path, "rnn/nodes/lif", b"Izhikevich")
    with pytest.raises(enir.NIRConversionError, match=r"node rnn\.lif has type 'Izhikevich'"):
        enir.load(path, dt=DT)


def test_known_but_unsupported_node_is_named(tmp_path):
    g = _graph({"input": _inp(2, 8), "c": nir.Conv1d(input_shape=8, weight=np.ones((1, 2, 3)), stride=1,
                                                     padding=0, dilation=1, groups=1, bias=np.zeros(1)),
                "output": _out(1, 6)}, [("input", "c"), ("c", "output")])
    with pytest.raises(enir.NIRConversionError, match="node c has type 'Conv1d'"):
        enir.load(_write(g, tmp_path / "c.nir"), dt=DT)


def test_mismatched_shapes_are_named(tmp_path):
    g = _graph({"input": _inp(4), "fc": nir.Linear(weight=np.ones((3, 5))), "lif": _lif(3), "output": _out(3)},
               [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    with pytest.raises(enir.NIRConversionError, match=r"node 'fc': weight \(3, 5\) expects input \(5,\).* gives \(4,\)"):
        enir.load(_write(g, tmp_path / "a.nir"), dt=DT)
    g = _graph({"input": _inp(4), "fc": nir.Linear(weight=np.ones((3, 4))), "lif": _lif(5), "output": _out(5)},
               [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    with pytest.raises(enir.NIRConversionError, match=r"node 'lif'.tau: shape \(5,\) does not match .* \(3,\)"):
        enir.load(_write(g, tmp_path / "b.nir"), dt=DT)


@pytest.mark.parametrize("case, message", [
    ("delay", "Delay.* feed-forward path"),
    ("branch", "feeds .* only neuron nodes may feed several"),
    ("cuba_leak", "v_leak: a current-based neuron with a leak"),
    ("two_inputs", "exactly one Input"),
    ("dangling", r"node\(s\) \['extra'\] are neither"),
])
def test_unsupported_structures_are_refused(case, message, tmp_path):
    lin = lambda: nir.Linear(weight=np.ones((3, 3)))  # noqa: E731
    if case == "delay":
        g = _graph({"input": _inp(3), "d": nir.Delay(delay=np.full(3, 1e-4)), "fc": lin(), "output": _out(3)},
                   [("input", "d"), ("d", "fc"), ("fc", "output")])
    elif case == "branch":
        g = _graph({"input": _inp(3), "fc": lin(), "a": _lif(3), "b": _lif(3), "output": _out(3)},
                   [("input", "fc"), ("fc", "a"), ("fc", "b"), ("a", "output")])
    elif case == "cuba_leak":
        g = _graph({"input": _inp(3), "fc": lin(), "c": nir.CubaLIF(
            tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.full(3, 0.5),
            v_threshold=np.ones(3)), "output": _out(3)}, [("input", "fc"), ("fc", "c"), ("c", "output")])
    elif case == "two_inputs":
        g = _graph({"input": _inp(3), "in2": _inp(3), "fc": lin(), "output": _out(3)},
                   [("input", "fc"), ("in2", "fc"), ("fc", "output")])
    else:
        g = _graph({"input": _inp(3), "fc": lin(), "extra": lin(), "output": _out(3)},
                   [("input", "fc"), ("fc", "output")])
    with pytest.raises(enir.NIRConversionError, match=message):
        enir.load(_write(g, tmp_path / "g.nir"), dt=DT)


def test_output_shape_and_dt_rules(tmp_path):
    lin = nir.Linear(weight=np.ones((3, 4)))
    g = _graph({"input": _inp(4), "fc": lin, "output": _out(5)}, [("input", "fc"), ("fc", "output")])
    with pytest.raises(enir.NIRConversionError, match=r"Output node declares shape \(5,\), the network gives 3"):
        enir.load(_write(g, tmp_path / "a.nir"), dt=DT)
    g = _graph({"input": _inp(4), "fc": nir.Linear(weight=np.ones((3, 4))),
                "if": nir.IF(r=np.ones(3), v_threshold=np.ones(3)), "output": _out(3)},
               [("input", "fc"), ("fc", "if"), ("if", "output")])
    m = enir.load(_write(g, tmp_path / "b.nir"))          # IF only: no dt needed
    assert m.layers[1].beta == 1.0 and m.layers[1].theta == np.nextafter(np.float32(1), np.float32(2))


def test_odd_metadata_keys_are_skipped_on_export(tmp_path):
    model = mf.read_model(DATA / "fmnist_rlif.h5")
    model.metadata = dict(model.metadata, **{"a/b": 1, "fine_key": "x"})
    back = enir.load(enir.export(model, tmp_path / "m.nir", dt=1e-3))
    assert back.metadata["fine_key"] == "x" and "a/b" not in back.metadata


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="NIR file .* does not exist"):
        enir.load(tmp_path / "missing.nir", dt=DT)
    (tmp_path / "text.nir").write_text("not hdf5")
    with pytest.raises(enir.NIRFormatError, match="not a readable HDF5 file"):
        enir.load(tmp_path / "text.nir", dt=DT)
    data = (FIX / "lif_norse.nir").read_bytes()
    (tmp_path / "cut.nir").write_bytes(data[: len(data) // 2])
    with pytest.raises(enir.NIRFormatError, match="cut.nir"):
        enir.load(tmp_path / "cut.nir", dt=DT)
    with h5py.File(tmp_path / "empty.nir", "w") as f:
        f["x"] = 1
    with pytest.raises(enir.NIRFormatError, match="no 'node' group"):
        enir.load(tmp_path / "empty.nir", dt=DT)
    shutil.copy(FIX / "lif_norse.nir", tmp_path / "w.nir")
    with h5py.File(tmp_path / "w.nir", "r+") as f:
        del f["node/nodes/0/weight"]
    with pytest.raises(enir.NIRFormatError, match="malformed NIR file"):
        enir.load(tmp_path / "w.nir", dt=DT)
    with pytest.raises(ValueError, match="pass dt"):
        enir.load(FIX / "lif_norse.nir")
    with pytest.raises(ValueError, match="dt: must be a finite number"):
        enir.load(FIX / "lif_norse.nir", dt=-1.0)


def test_a_file_that_hangs_the_hdf5_library_is_refused(monkeypatch):
    """Reading the damaged file in this process never returns (HDF5 loops on a corrupted
    string); load reads it in a child process first and reports it instead."""
    from snncore.nir import _graph
    monkeypatch.setattr(_graph, "PROBE_SECONDS", 2.0)
    with pytest.raises(enir.NIRFormatError, match="damaged_lif_norse.nir: .*not loaded"):
        enir.load(FIX / "damaged_lif_norse.nir", dt=DT)


def test_corrupted_files_never_crash(tmp_path):
    """Random byte damage anywhere in real NIR files: load either returns a model or raises
    a ValueError subclass naming the file (NIRFormatError, NIRConversionError,
    ModelFormatError); the interpreter survives every case."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    sources = [(FIX / n).read_bytes() for n in ("lif_norse.nir", "braille_noDelay_noBias_subtract.nir")]
    target = tmp_path / "fuzz.nir"
    from snncore.nir import _graph
    _graph.PROBE_SECONDS, saved = 5.0, _graph.PROBE_SECONDS

    @hypothesis.settings(max_examples=40, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(which=st.integers(0, 1), edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=20),
        cut=st.one_of(st.none(), st.floats(0, 1)))
    def check(which, edits, cut):
        data = bytearray(sources[which])
        for where, value in edits:
            data[int(where * len(data))] = value
        if cut is not None:
            data = data[: int(cut * len(data))]
        target.write_bytes(bytes(data))
        try:
            enir.load(target, dt=DT)
        except ValueError as e:
            assert str(e)
    try:
        check()
    finally:
        _graph.PROBE_SECONDS = saved


def test_export_refuses_what_nir_cannot_say_and_never_overwrites(tmp_path):
    model = mf.Model(input_shape=(1, 4, 4), T=1, layers=[
        mf.Conv2d(np.ones((1, 1, 1, 1), np.float32)), mf.Spiking(beta=0.5, theta=1.0),
        mf.MaxPool2d(kernel=(2, 2), stride=(2, 2)), mf.Flatten(), mf.Dense(np.ones((2, 4), np.float32)),
        mf.Readout()])
    with pytest.raises(enir.NIRConversionError, match=r"layers\[2\]\(maxpool2d\): NIR has no max pooling"):
        enir.export(model, tmp_path / "x.nir", dt=1e-3)
    assert not (tmp_path / "x.nir").exists()
    src = DATA / "fmnist_rlif.h5"
    out = enir.export(src, tmp_path / "r.nir", dt=1e-3)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        enir.export(src, out, dt=2e-3)
    assert out.read_bytes() == before
    enir.export(src, out, dt=2e-3, overwrite=True)
    assert float(nir.read(out).metadata["dt"]) == 2e-3
    victim = tmp_path / "model.h5"
    shutil.copy(src, victim)
    with pytest.raises(FileExistsError, match="is a model file; refusing"):
        enir.export(src, victim, dt=1e-3, overwrite=True)
    with pytest.raises(FileExistsError, match="is a NIR graph; refusing"):
        mf.write_model(mf.read_model(src), out, overwrite=True)
    assert victim.read_bytes() == src.read_bytes()
    with pytest.raises(ValueError, match="discretisation"):
        enir.export(src, tmp_path / "y.nir", dt=1e-3, discretisation="rk4")


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def test_cli_convert_both_ways(tmp_path, capsys):
    src = DATA / "fmnist_cuba.h5"
    assert cli.main(["convert", str(src), str(tmp_path / "c.nir"), "--dt", "0.001"]) == 0
    assert json.loads(capsys.readouterr().out)["to"] == "nir"
    assert cli.main(["convert", str(tmp_path / "c.nir"), str(tmp_path / "c.h5")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tool"] == "eventsim" and info["connections"] == 1
    _layers_equal(mf.read_model(src), mf.read_model(tmp_path / "c.h5"))
    assert cli.main(["convert", str(tmp_path / "c.nir"), str(tmp_path / "c.h5")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["convert", str(src), str(tmp_path / "d.nir")]) == 2
    assert "needs --dt" in capsys.readouterr().err
    assert cli.main(["convert", str(FIX / "lif_norse.nir"), str(tmp_path / "n.h5"), "--dt", "1e-4",
                     "--reset", "subtract", "--discretisation", "exact"]) == 0
    m = mf.read_model(tmp_path / "n.h5")
    assert m.layers[1].reset == "subtract" and m.layers[1].beta == pytest.approx(np.exp(-0.04))
