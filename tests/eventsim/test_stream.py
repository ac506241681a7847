"""Simulator.stream: the batch-1 warm path gives Simulator.run's results bit for bit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import eventsim
from eventsim.inputs import EventBatch, from_dense
from eventsim.recording import Recording
from eventsim.simulator import warmup_models
from eventsim.stream import StreamRecording

DATA = Path(__file__).resolve().parent.parent / "data"


def _same(a: Recording, b: Recording):
    assert a.readout.dtype == b.readout.dtype
    assert np.array_equal(a.readout, b.readout)
    assert np.array_equal(a.predictions, b.predictions)
    assert a.predictions.dtype == b.predictions.dtype
    assert a.synaptic_events == b.synaptic_events
    assert sorted(a.spikes) == sorted(b.spikes)
    for layer, s in a.spikes.items():
        o = b.spikes[layer]
        for f in ("sample", "t", "neuron"):
            assert np.array_equal(getattr(s, f), getattr(o, f)), (layer, f)
        assert (s.value is None) == (o.value is None)
        if s.value is not None:
            assert np.array_equal(s.value, o.value)
        assert (s.n_neurons, s.T, s.batch_size, s.shape) == (o.n_neurons, o.T, o.batch_size, o.shape)
    assert sorted(a.membrane) == sorted(b.membrane)
    for layer in a.membrane:
        assert np.array_equal(a.membrane[layer], b.membrane[layer])
        assert np.array_equal(a.membrane_neurons[layer], b.membrane_neurons[layer])


def _samples(shape, T, n, p, seed):
    rng = np.random.default_rng(seed)
    return [(rng.random((T, 1) + tuple(shape)) < p).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("kind", [0, 1])
@pytest.mark.parametrize("schedule", ["auto", "time"])
def test_stream_equals_run_on_small_models(kind, schedule):
    model = warmup_models(np.float32)[kind]
    net = eventsim.load(model)
    if schedule == "auto" or len(model.connections) == 0:
        sim = eventsim.Simulator(net, n_threads=1, schedule=schedule,
                                 record_membrane={net.spiking_layers[0]: "all"})
    else:
        pytest.skip("delayed connections run step by step anyway")
    T = 6
    stream = sim.stream(T=T)
    for x in _samples(model.input_shape, T, 25, 0.3, seed=kind):
        ev = from_dense(x)
        ref = sim.run(ev)
        for got in (stream.run(ev), stream.run((ev.times, ev.indices)),
                    stream.run((ev.times.astype(np.int32), ev.indices, ev.values)),
                    stream.run((ev.times, ev.indices), check=False)):
            assert isinstance(got, StreamRecording)
            _same(ref, got)


@pytest.mark.parametrize("name", ["fmnist_mlp.h5", "fmnist_conv.h5"])
def test_stream_equals_run_on_trained_models(name):
    sim = eventsim.Simulator(DATA / name, n_threads=1)
    T = 8
    stream = sim.stream(T=T, check=False)
    shape = sim.network.input_shape
    for k, x in enumerate(_samples(shape, T, 12 if "conv" in name else 40, 0.05, seed=3)):
        ev = from_dense(x)
        _same(sim.run(ev), stream.run((ev.times, ev.indices)))


def test_dense_spikes_follow_runs_rule():
    """Binary dense input to a rate-coded model: events, as in run(); analog or direct:
    run()'s analog path."""
    mlp = warmup_models(np.float32)[0]
    rate = eventsim.modelfile.Model(input_shape=mlp.input_shape, layers=mlp.layers, T=mlp.T,
                                    connections=mlp.connections, encoding="rate")
    T = 5
    for model in (rate, mlp):
        sim = eventsim.Simulator(model, n_threads=1)
        stream = sim.stream(T=T)
        for x in _samples(model.input_shape, T, 10, 0.4, seed=7):
            _same(sim.run(x), stream.run(x))
            _same(sim.run(x), stream.run(x[:, 0]))            # [T, *input_shape]
            _same(sim.run(x.astype(bool)), stream.run(x.astype(bool)))
        analog = np.random.default_rng(0).random((T, 1) + model.input_shape).astype(np.float32)
        _same(sim.run(analog), stream.run(analog))


def test_results_are_not_aliased():
    sim = eventsim.Simulator(DATA / "fmnist_mlp.h5", n_threads=1,
                             record_membrane={1: np.arange(5)})
    stream = sim.stream(T=8)
    xs = _samples(sim.network.input_shape, 8, 2, 0.2, seed=1)
    a = stream.run(from_dense(xs[0]))
    keep = (a.readout.copy(), a.membrane[1].copy())
    b = stream.run(from_dense(xs[1]))
    assert not np.shares_memory(a.readout, b.readout)
    assert np.array_equal(a.readout, keep[0]) and np.array_equal(a.membrane[1], keep[1])
    assert not np.array_equal(a.readout, b.readout)
    both = Recording.concatenate([a, b])
    _same(both, Recording.concatenate([sim.run(from_dense(x)) for x in xs]))


def test_lazy_fields_can_be_replaced():
    sim = eventsim.Simulator(warmup_models(np.float32)[0], n_threads=1)
    rec = sim.stream(T=4).run((np.array([0, 1]), np.array([2, 3])))
    rec.spikes = {}
    rec.synaptic_events = {"total": 0}
    assert rec.spikes == {} and rec.synaptic_events == {"total": 0}


def test_bad_input_gives_clear_errors():
    model = warmup_models(np.float32)[0]
    sim = eventsim.Simulator(model, n_threads=1)
    st = sim.stream(T=4)
    t, i = np.array([0, 1, 2]), np.array([0, 1, 5])
    with pytest.raises(ValueError, match="times must be a 1-D integer array"):
        st.run((t.astype(float), i))
    with pytest.raises(ValueError, match="indices must be a 1-D integer array"):
        st.run((t, i[None]), check=False)
    with pytest.raises(ValueError, match="3 times but 2 indices"):
        st.run((t, i[:2]), check=False)
    with pytest.raises(ValueError, match="values must be a 1-D float array"):
        st.run((t, i, np.ones(3, np.int64)), check=False)
    with pytest.raises(ValueError, match="3 times but 2 values"):
        st.run((t, i, np.ones(2)), check=False)
    with pytest.raises(ValueError, match=r"expected \(times, indices\)"):
        st.run((t,))
    with pytest.raises(TypeError, match="expected an EventBatch of one sample"):
        st.run([t, i])
    # per-event checks (check=True): EventBatch.validate's messages
    with pytest.raises(ValueError, match=r"EventBatch.indices: address 6 outside \[0, 6\)"):
        st.run((t, np.array([0, 1, 6])))
    with pytest.raises(ValueError, match=r"EventBatch.times: value 4 outside \[0, 4\)"):
        st.run((np.array([0, 1, 4]), i))
    with pytest.raises(ValueError, match="not sorted by time"):
        st.run((np.array([0, 2, 1]), i))
    with pytest.raises(ValueError, match="must be finite"):
        st.run((t, i, np.array([1.0, np.nan, 1.0])))
    # EventBatch: one sample, the stream's T and the model's input shape
    two = from_dense((np.random.default_rng(0).random((4, 2, 6)) < 0.5).astype(np.float32))
    with pytest.raises(ValueError, match="one sample, the EventBatch has 2"):
        st.run(two)
    one = from_dense(np.ones((5, 1, 6), np.float32))
    with pytest.raises(ValueError, match="T=5, the stream T=4"):
        st.run(one)
    with pytest.raises(ValueError, match="input_shape"):
        st.run(EventBatch(times=t, indices=i, values=np.ones(3), sample_ptr=np.array([0, 3]),
                          T=4, input_shape=(7,)))
    with pytest.raises(ValueError, match="expected a dense sample of shape"):
        st.run(np.zeros((3, 1, 6), np.float32))
    with pytest.raises(ValueError, match="not a real numeric type"):
        st.run(np.zeros((4, 1, 6), complex))
    with pytest.raises(ValueError, match="non-finite"):
        st.run(np.full((4, 1, 6), np.nan, np.float32))
    with pytest.raises(ValueError, match="check must be True or False"):
        sim.stream(check="yes")
    with pytest.raises(ValueError, match="T: must be a positive int"):
        sim.stream(T=0)


def test_max_pool_input_needs_binary_values():
    from snncore import modelfile as mf
    w = np.full((3, 4), 0.5, np.float32)
    model = mf.Model(input_shape=(1, 4, 4), T=4, encoding="rate", layers=[
        mf.MaxPool2d(kernel=(2, 2), stride=(2, 2)), mf.Flatten(), mf.Dense(w),
        mf.Spiking(beta=0.5, theta=0.5), mf.Dense(w[:2, :3]), mf.Readout()])
    sim = eventsim.Simulator(model, n_threads=1)
    st = sim.stream(T=4)
    with pytest.raises(ValueError, match="max pooling"):
        st.run((np.array([0]), np.array([3]), np.array([0.5])))
    x = _samples((1, 4, 4), 4, 1, 0.5, seed=0)[0]
    _same(sim.run(x), st.run(x))
    _same(sim.run(x), st.run(from_dense(x), check=False))


def test_input_addresses_permuted_like_run():
    """A multi-channel input map is stored channel-last inside: the stream maps addresses
    as run() does."""
    from snncore import modelfile as mf
    rng = np.random.default_rng(2)
    model = mf.Model(input_shape=(2, 4, 4), T=5, encoding="rate", layers=[
        mf.Conv2d((rng.standard_normal((3, 2, 3, 3)) * 0.6).astype(np.float32), None,
                  stride=(1, 1), padding=(1, 1)),
        mf.Spiking(beta=0.5, theta=0.5), mf.Flatten(),
        mf.Dense((rng.standard_normal((4, 48)) * 0.3).astype(np.float32)), mf.Readout()])
    sim = eventsim.Simulator(model, n_threads=1, record_membrane={1: "all"})
    assert not sim._input_identity
    st = sim.stream()
    for x in _samples((2, 4, 4), 5, 10, 0.3, seed=4):
        ev = from_dense(x)
        _same(sim.run(ev), st.run((ev.times, ev.indices), check=False))
        _same(sim.run(x), st.run(x))


def test_one_stream_shared_by_threads():
    """A Stream keeps no state between calls (the kernel allocates its own, per call, and
    releases the GIL): threads may share one."""
    from concurrent.futures import ThreadPoolExecutor
    sim = eventsim.Simulator(DATA / "fmnist_mlp.h5", n_threads=1)
    st = sim.stream(T=8)
    evs = [from_dense(x) for x in _samples(sim.network.input_shape, 8, 24, 0.1, seed=5)]
    with ThreadPoolExecutor(max_workers=3) as ex:
        got = list(ex.map(lambda e: st.run((e.times, e.indices)), evs))
    for e, g in zip(evs, got):
        _same(sim.run(e), g)


def test_stream_recording_saves_like_a_recording(tmp_path):
    sim = eventsim.Simulator(warmup_models(np.float32)[0], n_threads=1,
                             record_membrane={1: "all"})
    x = _samples((6,), 4, 1, 0.5, seed=9)[0]
    rec = sim.stream(T=4).run(from_dense(x))
    back = Recording.load(rec.save(tmp_path / "rec.h5"))
    ref = sim.run(from_dense(x))
    _same(back, Recording.load(ref.save(tmp_path / "ref.h5")))
