"""Two threads on one sample (``Simulator(threads_per_sample=2)``, the pipelined schedule of
``eventsim.loop.run_pipelined``) give the bits of one thread.

Random recurrent networks with general float weights (sums round, so any change in the order
in which a target's inputs are added would show), sparse delayed connections with delays
1..15 merged into bundles (and a dense delayed connection alongside), several samples,
recorded membranes, a growing spike buffer, tiny networks, and delay sets that leave either
thread without bundle work.
"""
from __future__ import annotations

import numpy as np
import pytest

import eventsim
from eventsim import loop
from eventsim.inputs import from_dense
from eventsim.simulator import Simulator
from snncore import modelfile as mf


def _sparse(rng, n_out, n_in, density, scale):
    """A random Sparse projection with float weights (not dyadic)."""
    W = (rng.random((n_out, n_in)) < density) * rng.standard_normal((n_out, n_in)) * scale
    nz = W != 0
    return mf.Sparse(data=W[nz].astype(np.float32), indices=np.nonzero(nz)[1].astype(np.int64),
                     indptr=np.concatenate([[0], np.cumsum(nz.sum(1))]).astype(np.int64),
                     shape=W.shape)


def recurrent_model(rng, n, delays, n2=0, dense_delay=0, T=40):
    """Input -> LIF (n) [-> LIF (n2)] -> readout, with one sparse recurrent connection per
    delay in ``delays`` on the first population (and feedback 2 -> 1 with delays 1 and 3 when
    ``n2``), plus a dense recurrent connection of ``dense_delay`` steps (0: none)."""
    n_in = 12
    layers = [_sparse(rng, n, n_in, 0.5, 0.7),
              mf.Spiking(beta=float(rng.uniform(0.8, 0.97)), theta=0.6,
                         reset=("hard", "subtract")[int(rng.integers(2))])]
    conns = [mf.Connection(source=1, target=1, delay=int(d),
                           projection=_sparse(rng, n, n, min(1.0, 4.0 / n), 0.35))
             for d in delays]
    last = n
    if n2:
        layers += [_sparse(rng, n2, n, 0.3, 0.6), mf.Spiking(beta=0.9, theta=0.5)]
        conns += [mf.Connection(source=3, target=1, delay=d,
                                projection=_sparse(rng, n, n2, 0.2, 0.4)) for d in (1, 3)]
        last = n2
    if dense_delay:
        W = (rng.standard_normal((n, n)) * 0.1).astype(np.float32)
        conns.append(mf.Connection(source=1, target=1, delay=dense_delay,
                                   projection=mf.Dense(W)))
    layers += [mf.Dense(rng.standard_normal((3, last)).astype(np.float32)), mf.Readout(beta=0.9)]
    return mf.Model(input_shape=(n_in,), layers=layers, connections=conns, T=T, encoding="events")


def _input(rng, model, B, rate=0.2):
    x = (rng.random((model.T, B) + tuple(model.input_shape)) < rate).astype(np.float32)
    return from_dense(x)


def _same(a, b, layers):
    np.testing.assert_array_equal(a.readout, b.readout)
    for layer in layers:
        for name in ("sample", "t", "neuron", "value"):
            np.testing.assert_array_equal(getattr(a.spikes[layer], name),
                                          getattr(b.spikes[layer], name), err_msg=name)
    for layer in a.membrane:
        np.testing.assert_array_equal(a.membrane[layer], b.membrane[layer])
    assert a.synaptic_events == b.synaptic_events
    assert a.spike_counts == b.spike_counts


CASES = [  # (n, delays, n2, dense delay)
    (60, range(1, 16), 0, 0),     # the benchmark's delay set
    (200, (1, 2, 2, 7), 40, 2),   # two populations, equal delays, a dense delayed edge
    (1, (1, 2, 3), 0, 0),         # one neuron
    (2, (2, 5), 0, 1),            # no delay-1 segment: the main thread pushes nothing
    (30, (15,), 5, 0),            # one long delay
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_threads_give_the_bits_of_one(case, dtype):
    n, delays, n2, dense = CASES[case]
    rng = np.random.default_rng(40 + case)
    model = recurrent_model(rng, n, delays, n2, dense)
    net = eventsim.load(model, dtype=dtype)
    tables_ok = loop.pipelines(_tables(net))
    assert tables_ok, "the helper thread would have nothing to do"
    x = _input(rng, model, B=3)
    layers = model.spiking_layers
    record = {layers[0]: np.arange(0, n, 3)}
    one = Simulator(net, n_threads=1, record_membrane=record).run(x)
    two = Simulator(net, n_threads=1, threads_per_sample=2, record_membrane=record).run(x)
    _same(one, two, layers)
    # samples spread over two kernel calls, each on two threads (four threads in all)
    four = Simulator(net, n_threads=2, chunk_size=2, threads_per_sample=2).run(x)
    _same(Simulator(net, n_threads=1).run(x), four, layers)
    assert sum(one.spike_counts.values()) > 0


def _tables(net):
    """The Tables of ``net`` as a Simulator passes them (only what ``pipelines`` reads)."""
    class T:
        bundles, wi = net.bundles, net.wi
    return T


def test_lazy_and_dense_ring_modes_and_buffer_growth():
    """Ring slots added entry by entry or always whole, neuron-by-neuron lazy updates, and
    a spike buffer that grows many times (the main thread returns to Python-free growth
    between spans of steps while the helper waits): still the bits of one thread."""
    rng = np.random.default_rng(7)
    model = recurrent_model(rng, 150, (1, 3, 4, 9), T=60)
    x = _input(rng, model, B=2, rate=0.3)
    for full_div, ring_div, spikecap in ((0, 0, 16), (1 << 40, 1 << 40, 1 << 26), (4, 8, 64)):
        net = eventsim.load(model)
        net.sizes["full_div"] = net.sizes["full_div_cheap"] = full_div
        net.sizes["ring_div"] = ring_div
        net.sizes["spikecap"] = spikecap
        one = Simulator(net, n_threads=1).run(x)
        two = Simulator(net, n_threads=1, threads_per_sample=2).run(x)
        _same(one, two, model.spiking_layers)
        assert sum(one.spike_counts.values()) > 50


def test_only_delay_one_runs_on_one_thread():
    """Bundles with delay 1 only leave the helper nothing: one thread runs, same bits."""
    rng = np.random.default_rng(3)
    model = recurrent_model(rng, 50, (1, 1))
    net = eventsim.load(model)
    assert not loop.pipelines(_tables(net))
    x = _input(rng, model, B=2)
    _same(Simulator(net, n_threads=1).run(x),
          Simulator(net, n_threads=1, threads_per_sample=2).run(x), model.spiking_layers)


def test_helper_stops_on_request():
    """A helper whose main thread never comes (stop requested) returns False at once
    instead of waiting forever."""
    rng = np.random.default_rng(5)
    model = recurrent_model(rng, 20, (1, 4))
    sim = Simulator(model, n_threads=1, threads_per_sample=2)
    net = sim.network
    tab = eventsim.tables.Tables(sim._pops, net.spaces, net.stages, net.edges, net.edge_stage,
                                 net.bundles, net.sizes, net.wf, net.wi, net.const_all,
                                 net.const_conn, net.nbeta, net.ntheta, net.power_table(5),
                                 sim._rec_idx, net.pop_perm[-1], net.nalpha)
    shared = loop.shared_arrays(tab, True)
    shared.sync[loop.SYNC_ABORT] = 1
    syn = np.zeros(len(net.stages), np.int64)
    assert loop.delay_helper(tab, shared, syn, 5, np.int64(0), np.int64(1)) is False
    assert not syn.any()


@pytest.mark.parametrize("bad", [0, 3, 1.5, True, "2"])
def test_threads_per_sample_errors(bad):
    model = recurrent_model(np.random.default_rng(0), 10, (1, 2))
    with pytest.raises(ValueError, match="threads_per_sample"):
        Simulator(model, threads_per_sample=bad)


def test_threads_per_sample_and_profile_exclude_each_other():
    model = recurrent_model(np.random.default_rng(0), 10, (1, 2))
    with pytest.raises(ValueError, match="threads_per_sample.*profile"):
        Simulator(model, threads_per_sample=2, profile=True)


def test_main_thread_runs_the_jobs_of_an_absent_helper(monkeypatch):
    """A helper that never runs (as if descheduled for the whole run on a busy machine):
    the main thread claims and runs every delivery job itself; same bits, no hang."""
    rng = np.random.default_rng(11)
    model = recurrent_model(rng, 80, (1, 2, 5, 9), n2=10, T=50)
    x = _input(rng, model, B=2)
    net = eventsim.load(model)
    want = Simulator(net, n_threads=1).run(x)
    monkeypatch.setattr(loop, "delay_helper", lambda *args: True)
    _same(want, Simulator(net, n_threads=1, threads_per_sample=2).run(x), model.spiking_layers)
