"""The target-partitioned schedule (``Simulator(partition="targets")``,
``eventsim.partition``) gives the bits of the one-thread schedule.

Random recurrent networks with general float weights (sums round: any change in the order
in which a target's terms are added would show), sparse delayed connections with delays
1..D merged into one bundle, several samples, recorded membranes, both resets, one, two
and three threads, even and uneven neuron ranges (empty ones included).  A deliberately
broken split (a thread's range off by one) must fail the same comparison.
"""
from __future__ import annotations

import numpy as np
import pytest

import eventsim
from eventsim import partition as PT
from eventsim.inputs import from_dense
from eventsim.simulator import Simulator
from snncore import modelfile as mf
from tests.eventsim.test_pipelined import _sparse


def recurrent_model(rng, n, delays, T=40, reset="hard", n2=0):
    """Input -> LIF (n) [-> LIF (n2)] -> readout, one sparse recurrent connection per delay
    in ``delays`` on the first population."""
    n_in = 12
    layers = [_sparse(rng, n, n_in, 0.5, 0.7),
              mf.Spiking(beta=float(rng.uniform(0.8, 0.97)), theta=0.6, reset=reset)]
    conns = [mf.Connection(source=1, target=1, delay=int(d),
                           projection=_sparse(rng, n, n, min(1.0, 6.0 / n), 0.35))
             for d in delays]
    last = n
    if n2:
        layers += [_sparse(rng, n2, n, 0.3, 0.6), mf.Spiking(beta=0.9, theta=0.5)]
        last = n2
    layers += [mf.Dense(rng.standard_normal((3, last)).astype(np.float32)), mf.Readout(beta=0.9)]
    return mf.Model(input_shape=(n_in,), layers=layers, connections=conns, T=T, encoding="events")


def _input(rng, model, B, rate=0.2):
    x = (rng.random((model.T, B) + tuple(model.input_shape)) < rate).astype(np.float32)
    return from_dense(x)


def _same(a, b):
    np.testing.assert_array_equal(a.readout, b.readout)
    for layer in a.spikes:
        for name in ("sample", "t", "neuron", "value"):
            np.testing.assert_array_equal(getattr(a.spikes[layer], name),
                                          getattr(b.spikes[layer], name), err_msg=name)
    assert set(a.membrane) == set(b.membrane)
    for layer in a.membrane:
        np.testing.assert_array_equal(a.membrane[layer], b.membrane[layer])
    assert a.synaptic_events == b.synaptic_events


def _run(net, x, P, bounds=None, record=None):
    sim = Simulator(net, n_threads=1, threads_per_sample=P, partition="targets",
                    record_membrane=record)
    if bounds is not None:
        sim._part_tables = PT.plan(sim.network, "repeat", P, bounds)
    return sim.run(x)


CASES = [  # (seed, n, delays, reset, n2, threads, bounds)
    (0, 150, range(1, 16), "hard", 0, 2, None),           # the benchmark's delay set
    (1, 150, range(1, 16), "subtract", 0, 2, [0, 7, 150]),  # uneven, unaligned ranges
    (2, 130, (1, 2, 2, 7), "hard", 20, 3, None),         # equal delays, a second layer
    (3, 90, (3, 9), "hard", 0, 2, [0, 0, 90]),           # thread 0 owns nothing
    (4, 90, (1,), "subtract", 0, 2, [0, 90, 90]),        # thread 1 owns nothing
    (5, 1, (1, 2, 3), "hard", 0, 1, None),               # one neuron, one thread
    (6, 200, range(1, 6), "hard", 0, 3, [0, 64, 65, 200]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}" for c in CASES])
def test_partitioned_gives_the_bits_of_one_thread(case, dtype):
    seed, n, delays, reset, n2, P, bounds = case
    rng = np.random.default_rng(seed)
    model = recurrent_model(rng, n, delays, T=50, reset=reset, n2=n2)
    net = eventsim.load(model, dtype=dtype)
    x = _input(rng, model, B=3)
    record = {1: "all"}
    ref = Simulator(net, n_threads=1, record_membrane=record, partition="pipeline").run(x)
    assert n < 10 or len(ref.spikes[1].t) > 50   # the recurrent network is active
    _same(ref, _run(net, x, P, bounds, record))
    _same(ref, _run(net, x, 1, None, record))   # the one-thread kernel too


def test_a_broken_partition_is_caught():
    """Thread 1's range ending one neuron early (an off-by-one bound) changes the result:
    the comparison above can fail."""
    rng = np.random.default_rng(0)
    model = recurrent_model(rng, 150, range(1, 16), T=50)
    net = eventsim.load(model)
    x = _input(rng, model, B=2)
    ref = Simulator(net, n_threads=1, partition="pipeline").run(x)
    assert np.any(ref.spikes[1].neuron == 149)
    sim = Simulator(net, n_threads=1, threads_per_sample=2, partition="targets")
    good = sim._part_tables
    _same(ref, sim.run(x))
    sim._part_tables = good._replace(bounds=good.bounds - np.array([0, 0, 1]))
    with pytest.raises(AssertionError):
        _same(ref, sim.run(x))


def test_default_bounds():
    assert PT.default_bounds(10000, 2).tolist() == [0, 4992, 10000]
    assert PT.default_bounds(10, 2).tolist() == [0, 0, 10]
    assert PT.default_bounds(1000, 3).tolist() == [0, 320, 640, 1000]


def test_split_rows_keeps_row_order():
    ptr = np.array([0, 3, 5])
    idx = np.array([5, 1, 7, 0, 6])
    w = np.arange(5.0)
    p, i, ww = PT.split_rows(ptr, idx, w, np.array([0, 4, 8]))
    assert p.tolist() == [[0, 1, 2], [2, 4, 5]]
    assert i.tolist() == [1, 0, 5, 7, 6]
    assert ww.tolist() == [1.0, 3.0, 0.0, 2.0, 4.0]


def test_refused_networks_name_the_reason():
    rng = np.random.default_rng(0)
    model = recurrent_model(rng, 20, (1, 2))
    with pytest.raises(ValueError, match="leak='power'"):
        Simulator(model, partition="targets", leak="power")
    with pytest.raises(ValueError, match="profile"):
        Simulator(model, partition="targets", profile=True)
    with pytest.raises(ValueError, match=r"one of \['auto', 'pipeline', 'targets'\]"):
        Simulator(model, partition="neurons")
    ff = mf.Model(input_shape=(4,), layers=[_sparse(rng, 5, 4, 0.5, 1.0),
                                           mf.Spiking(beta=0.9, theta=1.0),
                                           mf.Dense(np.ones((2, 5), np.float32)),
                                           mf.Readout(beta=0.9)], T=5, encoding="events")
    with pytest.raises(ValueError, match="bundle"):
        Simulator(ff, partition="targets")
    biased = recurrent_model(rng, 20, (1, 2))
    biased.layers[0] = mf.Dense(np.ones((20, 12), np.float32), bias=np.ones(20, np.float32))
    with pytest.raises(ValueError, match="input edge|constant input"):
        Simulator(biased, partition="targets")
    sim = Simulator(model, partition="targets")
    with pytest.raises(ValueError, match="analog"):
        sim.run(np.full((model.T, 1, 12), 0.3, np.float32))
    with pytest.raises(ValueError, match="bounds"):
        PT.plan(sim.network, "repeat", 2, [0, 30, 20])


def test_main_thread_runs_every_range_without_a_helper(monkeypatch):
    """Helper threads that never start: thread 0 claims and runs every range's job itself,
    with the same bits."""
    rng = np.random.default_rng(7)
    model = recurrent_model(rng, 150, range(1, 8), T=40)
    net = eventsim.load(model)
    x = _input(rng, model, B=2)
    ref = Simulator(net, n_threads=1, record_membrane={1: "all"}).run(x)

    class Idle:
        def __init__(self, *a, **k):
            pass

        def start(self):
            pass

        def join(self):
            pass

    monkeypatch.setattr(PT.threading, "Thread", Idle)
    _same(ref, _run(net, x, 3, None, {1: "all"}))


def test_whole_row_push_is_used_and_checked():
    """Distinct delays whose ring offsets fit an int32: ``plan`` marks the bundle ``flat``
    (a spike's whole sub-row pushed in one loop, ring offset ``d*n + target`` per synapse)
    and gives the bits of the segment-by-segment push; the offsets moved to the
    previous delay's slot change the result (the comparison sees the whole-row path)."""
    rng = np.random.default_rng(11)
    model = recurrent_model(rng, 150, range(1, 16), T=60)
    net = eventsim.load(model)
    x = _input(rng, model, B=2)
    for P in (1, 2):
        sim = Simulator(net, n_threads=1, threads_per_sample=P, partition="targets")
        flat = sim._part_tables
        assert flat.flat and flat.boff.dtype == np.int32 and flat.rptr.dtype == np.int32
        np.testing.assert_array_equal(flat.rptr, flat.bptr[:, ::len(flat.sdel)])
        n = int(sim.network.pops[0]["n"])
        d = np.repeat(np.tile(flat.sdel, n), np.diff(flat.bptr[0]))
        np.testing.assert_array_equal(flat.boff[:len(d)], d * n + flat.bidx[:len(d)])
        got = sim.run(x)
        sim._part_tables = flat._replace(flat=False)
        _same(sim.run(x), got)
        broken = flat.boff.copy()
        broken[broken >= 2 * n] -= n   # delays d >= 2 -> d - 1
        sim._part_tables = flat._replace(boff=broken)
        with pytest.raises(AssertionError):
            _same(sim.run(x), got)
    equal = recurrent_model(rng, 40, (2, 2, 5))
    assert not PT.plan(Simulator(equal).network, "repeat", 1).flat


def _few_per_range(rng, perm, n_in, second):
    """Input edge ``[n, n_in]`` (``n = len(perm)``): input i reaches neuron ``perm[i]``
    (inputs past ``n``: nothing), and inputs listed in ``second`` also neuron
    ``n - 1 - perm[i]``; float weights (signed, not dyadic)."""
    n = len(perm)
    W = np.zeros((n, n_in))
    for i in range(min(n, n_in)):
        W[perm[i], i] = rng.standard_normal() * 0.9
    for i in second:
        W[n - 1 - perm[i], i] = rng.standard_normal() * 0.9
    nz = W != 0
    return mf.Sparse(data=W[nz].astype(np.float32), indices=np.nonzero(nz)[1].astype(np.int64),
                     indptr=np.concatenate([[0], np.cumsum(nz.sum(1))]).astype(np.int64),
                     shape=W.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_synapse_input_rows(dtype):
    """Input edges with at most one synapse per input row in each range (one-to-one with
    inputs that reach nothing; for two threads also inputs reaching both ranges) and input
    values of both signs: ``plan`` marks them ``single`` (a branch-free input loop whose
    empty sub-rows add ``v * 0`` to a neuron of the range) and the bits are the
    one-thread schedule's; a non-zero placeholder weight changes them."""
    rng = np.random.default_rng(21)
    n, n_in = 150, 180
    perm = rng.permutation(n)
    both = [i for i in range(n) if perm[i] < 64][:30]      # bounds [0, 64, 150]
    for second, threads in (([], (1, 2)), (both, (2,))):
        model = recurrent_model(rng, n, range(1, 16), T=60)
        model.layers[0] = _few_per_range(rng, perm, n_in, second)
        model.input_shape = (n_in,)
        net = eventsim.load(model, dtype=dtype)
        x = (rng.random((model.T, 2, n_in)) < 0.3) * rng.choice([-1.5, 1.0, 0.5],
                                                                (model.T, 2, n_in))
        x = from_dense(x.astype(dtype))
        ref = Simulator(net, n_threads=1).run(x)
        assert len(ref.spikes[1].t) > 100
        if second:
            assert not PT.plan(Simulator(net).network, "repeat", 1).single
        for P in threads:
            sim = Simulator(net, n_threads=1, threads_per_sample=P, partition="targets")
            pt = sim._part_tables
            assert pt.single and pt.ilen.sum() == n + len(second)
            _same(ref, sim.run(x))
            bad = pt.iwt.copy()
            bad[pt.ilen == 0] = 0.25
            sim._part_tables = pt._replace(iwt=bad)
            with pytest.raises(AssertionError):
                _same(ref, sim.run(x))


def test_part_state_rows_start_on_cache_lines():
    """Every per-thread row of the PartState starts on a 64-byte boundary (no cache line
    written by two threads), and the arrays are zeroed."""
    rng = np.random.default_rng(2)
    sim = Simulator(recurrent_model(rng, 150, range(1, 16)), threads_per_sample=3,
                    partition="targets")
    pt = sim._part_tables
    ps = PT.new_part_state(pt, 150, len(sim.network.stages), np.float32)
    for name, a in ps._asdict().items():
        assert a.ctypes.data % 64 == 0, name
        assert not np.any(a), name
        if a.ndim >= 2:
            assert a[0].nbytes % 64 == 0, name


def test_auto_takes_the_one_range_kernel_where_it_can():
    """``partition="auto"`` (the default) runs eligible networks on the partitioned kernel
    with one range, bit for bit the default loop's result; analog input, ``profile``,
    ``leak="power"``, two threads per sample and ineligible networks keep the default loop."""
    rng = np.random.default_rng(7)
    model = recurrent_model(rng, 150, range(1, 16), T=50)
    net = eventsim.load(model)
    x = _input(rng, model, B=3)
    auto = Simulator(net, n_threads=2, record_membrane={1: "all"})
    assert auto.partition == "targets" and len(auto._part_tables.bounds) == 2
    loop = Simulator(net, n_threads=2, record_membrane={1: "all"}, partition="pipeline")
    assert loop._part_tables is None
    _same(loop.run(x), auto.run(x))
    for kw in (dict(profile=True), dict(leak="power"), dict(threads_per_sample=2)):
        assert Simulator(net, **kw)._part_tables is None, kw
    ff = mf.Model(input_shape=(4,), layers=[_sparse(rng, 5, 4, 0.5, 1.0),
                                           mf.Spiking(beta=0.9, theta=1.0),
                                           mf.Dense(np.ones((2, 5), np.float32)),
                                           mf.Readout(beta=0.9)], T=5, encoding="events")
    assert Simulator(ff).partition == "pipeline"
    analog = np.full((model.T, 2, 12), 0.3, np.float32)         # a current: the default loop
    _same(Simulator(net, partition="pipeline").run(analog), Simulator(net).run(analog))
