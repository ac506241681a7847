"""Loading and compiling models, and rejecting bad models and bad inputs with clear errors.

Nothing reaches Numba unchecked: every error here is raised by ``eventsim.load`` or by the
Simulator's input checks, naming the field and the offending value.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

import eventsim
from eventsim import tables as TB
from snncore import modelfile as mf
from eventsim.inputs import EventBatch
from eventsim.network import CompiledNetwork, UnsupportedModelError, dense_apply
from tests import hdf5edit
from tests.reference import naive_eventsim as naive


def _dy(rng, shape, scale=64):
    return (rng.integers(-scale, scale, size=shape) / 256).astype(np.float32)


def small_mlp(rng=None, T=6):
    rng = rng or np.random.default_rng(0)
    return mf.Model(input_shape=(8,), T=T, encoding="rate",
                    layers=[mf.Dense(_dy(rng, (6, 8)), _dy(rng, 6)), mf.Spiking(beta=0.5, theta=0.5),
                            mf.Dense(_dy(rng, (3, 6))), mf.Readout()])


def small_conv(rng=None):
    rng = rng or np.random.default_rng(0)
    return mf.Model(input_shape=(2, 6, 5), T=4, encoding="rate",
                    layers=[mf.Conv2d(_dy(rng, (3, 2, 3, 3)), _dy(rng, 3), stride=(2, 1), padding=(1, 0)),
                            mf.Spiking(beta=1.0, theta=0.5), mf.MaxPool2d((2, 2), (1, 1)),
                            mf.Flatten(), mf.Dense(_dy(rng, (4, 3 * 2 * 2))), mf.Readout()])


# ---------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------
def test_load_path_model_and_compiled(tmp_path):
    model = small_mlp()
    path = mf.write_model(model, tmp_path / "m.h5")
    for source in (path, str(path), model):
        net = eventsim.load(source)
        assert isinstance(net, CompiledNetwork)
        assert net.dtype == np.float32 and net.spiking_layers == [1] and net.n_outputs == 3
    assert eventsim.load(net) is net
    x = (np.random.default_rng(1).random((6, 2, 8)) < 0.5).astype(np.float32)
    a = eventsim.Simulator(path).run(x)
    b = eventsim.Simulator(model).run(x)
    np.testing.assert_array_equal(a.readout, b.readout)


def test_load_takes_a_record_from_training_not_a_network():
    import training
    from training.layers import Linear, Sequential
    from training.neurons import LIF
    net = Sequential(Linear(8, 5, rng=0), LIF(beta=0.5, threshold=0.5), Linear(5, 3, rng=1))
    compiled = eventsim.load(training.to_model(net, input_shape=(8,), T=4))
    assert compiled.spiking_layers == [1] and compiled.T == 4
    with pytest.raises(TypeError, match=r"training\.to_model"):
        eventsim.load(net)


def test_load_rejects_other_objects():
    with pytest.raises(TypeError, match="expected a model file path"):
        eventsim.load(42)
    with pytest.raises(FileNotFoundError):
        eventsim.load("/nonexistent/model.h5")


def test_compiled_tables_are_consistent():
    net = eventsim.load(small_conv())
    # population 0 (conv output (3, 3, 3)) is stored channel-last
    perm = net.pop_perm[0]
    C, H, W = net.shapes[1]
    assert sorted(perm) == list(range(C * H * W))
    assert perm[1] == H * W  # internal index 1 = channel 1 at (0, 0)
    assert net.stages.shape == (net.n_stages,) and net.stages.dtype == TB.STAGE_DTYPE
    assert net.wf.dtype == np.float32 and net.wf.flags.c_contiguous
    assert net.edges[0]["src"] == -1 and net.edges[-1]["tgt"] == len(net.pop_layers) - 1
    assert net.stage_labels[:2] == ["layers[0]", "layers[2]"]


@pytest.mark.parametrize("seed", range(6))
def test_dense_apply_matches_reference(seed):
    """The dense forms used for analog input currents equal the plain loops."""
    rng = np.random.default_rng(seed)
    x = (rng.integers(-4, 5, size=(3, 2, 7, 6)) / 4).astype(np.float32)
    recs = [mf.Conv2d(_dy(rng, (3, 2, 3, 2)), _dy(rng, 3), stride=(2, 1), padding=(1, 1)),
            mf.AvgPool2d((2, 2), (1, 2)), mf.MaxPool2d((3, 2), (2, 1)), mf.Flatten()]
    for rec in recs:
        np.testing.assert_array_equal(dense_apply(rec, x), naive.apply_projection(rec, x))
    dense = mf.Dense(_dy(rng, (4, 84)), _dy(rng, 4))
    sparse = mf.Sparse(data=_dy(rng, 5), indices=np.array([0, 3, 3, 80, 2]),
                       indptr=np.array([0, 2, 2, 4, 5]), shape=(4, 84), bias=None)
    for rec in (dense, sparse):
        np.testing.assert_array_equal(dense_apply(rec, x.reshape(3, -1)),
                                      naive.apply_projection(rec, x.reshape(3, -1)))


# ---------------------------------------------------------------------------------------
# bad model files surface through eventsim.load with the field named
# ---------------------------------------------------------------------------------------
def _edit(path, fn):
    hdf5edit.edit(path, fn)  # refreshes the digests: an edited file, not a damaged one
    return path


def test_corrupt_and_truncated_files(tmp_path):
    bad = tmp_path / "garbage.h5"
    bad.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(mf.ModelFormatError, match="not a readable HDF5 file"):
        eventsim.load(bad)
    good = mf.write_model(small_mlp(), tmp_path / "good.h5")
    data = good.read_bytes()
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(mf.ModelFormatError, match="trunc.h5"):
        eventsim.load(trunc)


def test_unknown_version_and_format(tmp_path):
    p = mf.write_model(small_mlp(), tmp_path / "v.h5")
    _edit(p, lambda f: f.attrs.__setitem__("version", 99))
    with pytest.raises(mf.ModelFormatError, match=r"version.*99"):
        eventsim.load(p)
    p = mf.write_model(small_mlp(), tmp_path / "f.h5")
    _edit(p, lambda f: f.attrs.__setitem__("format", "something-else"))
    with pytest.raises(mf.ModelFormatError, match="format.*something-else"):
        eventsim.load(p)
    p = mf.write_model(small_mlp(), tmp_path / "s.h5")
    _edit(p, lambda f: f.attrs.__setitem__("version", "one"))
    with pytest.raises(mf.ModelFormatError, match=r"version: expected an integer, got 'one'"):
        eventsim.load(p)


def test_bool_connection_index_is_rejected():
    m = small_mlp()
    spiking = m.spiking_layers[0]
    n = int(np.prod(m.shapes[spiking]))
    m.connections = [mf.Connection(source=True, target=spiking,
                                   projection=mf.Dense(np.zeros((n, n), np.float32)))]
    with pytest.raises(mf.ModelFormatError, match=r"connections\[0\]\.source"):
        mf.validate(m)


def test_nan_weight_in_file_names_the_field(tmp_path):
    p = mf.write_model(small_mlp(), tmp_path / "nan.h5")

    def poison(f):
        w = f["layers/0000/weight"][()]
        w[2, 3] = np.nan
        f["layers/0000/weight"][...] = w
    _edit(p, poison)
    with pytest.raises(mf.ModelFormatError, match=r"layers\[0\]\(dense\)\.weight.*nan.*\(2, 3\)"):
        eventsim.load(p)


def test_shape_mismatch_in_file_names_the_layer(tmp_path):
    p = mf.write_model(small_mlp(), tmp_path / "shape.h5")

    def reshape(f):
        del f["layers/0002/weight"]
        f["layers/0002"].create_dataset("weight", data=np.zeros((3, 7), np.float32))
    _edit(p, reshape)
    with pytest.raises(mf.ModelFormatError, match=r"layers\[2\]\(dense\).*\(7,\)"):
        eventsim.load(p)


def test_missing_attribute_and_unknown_kind(tmp_path):
    p = mf.write_model(small_mlp(), tmp_path / "attr.h5")
    _edit(p, lambda f: f["layers/0001"].attrs.__delitem__("theta"))
    with pytest.raises(mf.ModelFormatError, match="theta"):
        eventsim.load(p)
    p = mf.write_model(small_mlp(), tmp_path / "kind.h5")
    _edit(p, lambda f: f["layers/0001"].attrs.__setitem__("kind", "lstm"))
    with pytest.raises(mf.ModelFormatError, match="lstm"):
        eventsim.load(p)


def test_invalid_in_memory_models():
    m = small_mlp()
    m.layers[1] = mf.Spiking(beta=1.5, theta=0.5)
    with pytest.raises(mf.ModelFormatError, match=r"layers\[1\]\(spiking\)\.beta.*1\.5"):
        eventsim.load(m)
    m = small_mlp()
    m.layers[0] = mf.Dense(m.layers[0].weight.astype(np.float64), m.layers[0].bias)
    with pytest.raises(mf.ModelFormatError, match=r"layers\[0\]\(dense\)\.bias: dtype float32 differs"):
        eventsim.load(m)
    m = small_mlp()
    m.connections = [mf.Connection(source=1, target=1, delay=0, projection=mf.Dense(np.zeros((6, 6), np.float32)))]
    with pytest.raises(mf.ModelFormatError, match=r"connections\[0\]\.delay"):
        eventsim.load(m)


def test_unsupported_max_pooling():
    rng = np.random.default_rng(0)
    base = dict(input_shape=(1, 6, 6), T=3, encoding="rate")
    after_conv = mf.Model(layers=[mf.Spiking(beta=1.0, theta=0.5), mf.Conv2d(_dy(rng, (2, 1, 3, 3))),
                                  mf.MaxPool2d((2, 2), (2, 2)), mf.Spiking(beta=1.0, theta=0.5),
                                  mf.Flatten(), mf.Dense(_dy(rng, (2, 8))), mf.Readout()], **base)
    with pytest.raises(UnsupportedModelError, match=r"layers\[2\]\(maxpool2d\)"):
        eventsim.load(after_conv)
    ternary = mf.Model(layers=[mf.Spiking(beta=1.0, theta=0.5, spikes="ternary"),
                               mf.MaxPool2d((2, 2), (2, 2)), mf.Flatten(),
                               mf.Dense(_dy(rng, (2, 9))), mf.Readout()], **base)
    with pytest.raises(UnsupportedModelError, match="ternary"):
        eventsim.load(ternary)


def test_max_pooling_of_the_input():
    """Input -> MaxPool needs binary input events; analog input is pooled densely."""
    rng = np.random.default_rng(0)
    m = mf.Model(input_shape=(1, 4, 4), T=3, encoding="rate",
                 layers=[mf.MaxPool2d((2, 2), (2, 2)), mf.Spiking(beta=1.0, theta=0.5), mf.Flatten(),
                         mf.Dense(_dy(rng, (2, 4))), mf.Readout()])
    sim = eventsim.Simulator(m)
    x = (rng.random((3, 2, 1, 4, 4)) < 0.5).astype(np.float32)
    rec = sim.run(x)
    spikes, _, readout = naive.simulate(m, x)
    np.testing.assert_array_equal(rec.readout, readout)
    from eventsim.inputs import from_dense
    with pytest.raises(ValueError, match=r"EventBatch\.values: value 2\.0.*max"):
        sim.run(from_dense(2 * x))
    np.testing.assert_array_equal(sim.run(2.5 * x).readout, naive.simulate(m, 2.5 * x)[2])
    # max pooling after a conv of the input: analog input works, events are refused
    m2 = mf.Model(input_shape=(1, 6, 6), T=3, encoding="rate",
                  layers=[mf.Conv2d(_dy(rng, (2, 1, 3, 3))), mf.MaxPool2d((2, 2), (2, 2)),
                          mf.Spiking(beta=1.0, theta=0.25), mf.Flatten(), mf.Dense(_dy(rng, (2, 8))),
                          mf.Readout()])
    xa = (rng.integers(0, 9, size=(3, 2, 1, 6, 6)) / 8).astype(np.float32)
    np.testing.assert_array_equal(eventsim.Simulator(m2).run(xa).readout, naive.simulate(m2, xa)[2])
    with pytest.raises(ValueError, match=r"input events.*layers\[1\]\(maxpool2d\)"):
        eventsim.Simulator(m2).run((xa > 0.5).astype(np.float32))


# ---------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------
def _batch(**kw):
    base = dict(times=np.array([0, 1, 2]), indices=np.array([0, 5, 7]),
                values=np.ones(3, np.float32), sample_ptr=np.array([0, 3]), T=6, input_shape=(8,))
    base.update(kw)
    return EventBatch(**base)


def test_event_batch_errors_name_field_and_value():
    sim = eventsim.Simulator(small_mlp())
    assert sim.run(_batch()).readout.shape == (6, 1, 3)
    with pytest.raises(ValueError, match=r"EventBatch\.times: value -1"):
        sim.run(_batch(times=np.array([-1, 1, 2])))
    with pytest.raises(ValueError, match=r"EventBatch\.times: sample 0 is not sorted"):
        sim.run(_batch(times=np.array([2, 1, 3])))
    with pytest.raises(ValueError, match=r"EventBatch\.indices: address 8 outside \[0, 8\)"):
        sim.run(_batch(indices=np.array([0, 8, 1])))
    with pytest.raises(ValueError, match=r"EventBatch\.input_shape.*\(2, 4\)"):
        sim.run(_batch(input_shape=(2, 4)))
    with pytest.raises(ValueError, match=r"EventBatch\.times: value 5 outside \[0, 4\)"):
        sim.run(_batch(times=np.array([0, 1, 5])), T=4)
    with pytest.raises(ValueError, match=r"EventBatch\.values"):
        sim.run(_batch(values=np.array([1, np.nan, 1], np.float32)))
    with pytest.raises(ValueError, match=r"EventBatch\.sample_ptr"):
        sim.run(_batch(sample_ptr=np.array([0, 2])))


def test_dense_input_errors():
    sim = eventsim.Simulator(small_mlp())
    with pytest.raises(ValueError, match=r"input x: expected shape \[T, B, 8\], got \(6, 2, 7\)"):
        sim.run(np.zeros((6, 2, 7), np.float32))
    with pytest.raises(ValueError, match=r"input x: expected shape"):
        sim.run(np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match=r"input x: dtype complex"):
        sim.run(np.zeros((6, 2, 8), np.complex64))
    with pytest.raises(ValueError, match=r"input x: dtype <U1"):
        sim.run(np.full((6, 2, 8), "a"))
    x = np.zeros((6, 2, 8), np.float32)
    x[3, 1, 4] = np.inf
    with pytest.raises(ValueError, match=r"non-finite value inf at index \(3, 1, 4\)"):
        sim.run(x)
    with pytest.raises(ValueError, match=r"5 steps given, T=6"):
        sim.run(np.zeros((5, 2, 8), np.float32), T=6)
    with pytest.raises(ValueError, match=r"at least one step and one sample"):
        sim.run(np.zeros((6, 0, 8), np.float32))
    with pytest.raises(ValueError, match=r"T: must be a positive int"):
        sim.run(np.zeros((1, 2, 8), np.float32), T=0)
    # one step broadcast to T, ints and bools are spikes
    assert sim.run(np.ones((1, 2, 8), np.float32), T=6).readout.shape == (6, 2, 3)
    a = sim.run(np.ones((6, 2, 8), bool)).readout
    np.testing.assert_array_equal(a, sim.run(np.ones((6, 2, 8), np.int32)).readout)


def test_time_weights_length_must_match_T():
    m = small_mlp(T=6)
    m.layers[-1] = mf.Readout(time_weights=np.linspace(0.5, 1.5, 6).astype(np.float32))
    sim = eventsim.Simulator(m)
    assert sim.run(np.zeros((6, 1, 8), np.float32)).predictions.shape == (1,)
    with pytest.raises(ValueError, match="time_weights have 6 steps.*T=4"):
        sim.run(np.zeros((4, 1, 8), np.float32))


def test_simulator_option_errors():
    m = small_mlp()
    with pytest.raises(ValueError, match="constant_drive.*'often'"):
        eventsim.Simulator(m, constant_drive="often")
    with pytest.raises(ValueError, match="leak.*'exp'"):
        eventsim.Simulator(m, leak="exp")
    with pytest.raises(ValueError, match=r"record_membrane: key 2 is not a spiking layer"):
        eventsim.Simulator(m, record_membrane={2: "all"})
    with pytest.raises(ValueError, match=r"record_membrane\[1\]: neuron 6 outside \[0, 6\)"):
        eventsim.Simulator(m, record_membrane={1: [0, 6]})
    with pytest.raises(ValueError, match=r"record_membrane\[1\]: expected indices or 'all'"):
        eventsim.Simulator(m, record_membrane={1: "some"})
    with pytest.raises(ValueError, match="n_threads"):
        eventsim.Simulator(m, n_threads=0)


def test_predictions_use_time_weights():
    m = small_mlp(T=6)
    tw = np.array([0, 0, 0, 0, 0, 1], np.float32)
    m.layers[-1] = mf.Readout(time_weights=tw)
    x = (np.random.default_rng(3).random((6, 20, 8)) < 0.5).astype(np.float32)
    rec = eventsim.Simulator(m).run(x)
    np.testing.assert_array_equal(rec.predictions, rec.readout[-1].argmax(axis=1))
