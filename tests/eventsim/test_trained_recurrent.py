"""The simulator against the dense engine on trained float32 models with feedback and
recurrence: the F-MLP (IF, LIF) and F-conv of IDE, a RecurrentLIF MLP and a CubaLIF MLP
(feed-forward and recurrent CubaLIF layers), trained briefly on the committed Fashion-MNIST
subset by ``tests/data/make_trained_models.py`` (``tests/data/README.md``).

On float32 weights the two engines sum a neuron's input in different orders (the simulator
row by row over the sources that spiked, in ascending order; the dense engine by BLAS or
einsum), so a membrane within round-off of the threshold can spike in one and not the other;
``test_equivalence.py`` shows the bits agree whenever the sums are exact.  Here, as for the
feed-forward models there: >= 99.5 % of the decisions on the 1000 test images of the subset
the same, and almost every neuron-step spike.

Measured when the files were made (OpenBLAS, one thread): 100 % of decisions and spikes agree
on all five.  The F-MLP membranes are even bit-identical (the analog input current is one
dense product in both engines, and the feedback sums at most 128 spike-weighted rows, which
BLAS adds in ascending order too); the RecurrentLIF model's (rate-coded 784 inputs) differ in
86 % of the neuron-steps by up to 4.6e-5, the recurrent CubaLIF layer's in 64 % by up to
1.1e-5, and the F-conv's readout by up to 6.7e-6, yet no membrane crossed the threshold in
one engine only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import eventsim
import training
from snncore import modelfile as mf
from training import encoding
from training.datasets import load_fashion_mnist_small
from training.losses import decode

DATA = Path(__file__).resolve().parents[1] / "data"
SPIKE_AGREEMENT = 0.999          # neuron-step spikes, as for fmnist_mlp.h5 / fmnist_conv.h5


def _images(model: mf.Model) -> np.ndarray:
    """The 1000 test images shaped as ``model`` takes them (2x2-average-pooled to 14x14 for
    a (1, 14, 14) input, as the generator's ``pool2``)."""
    test = load_fashion_mnist_small("test")
    if model.input_shape == (784,):
        return test.float_images(np.float32, flatten=True)
    assert model.input_shape == (1, 14, 14)
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_trained_models",
                                                  DATA / "make_trained_models.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen.pool2(test.float_images(np.float32))


def _inputs(model: mf.Model) -> np.ndarray:
    images = _images(model)
    if model.encoding == "direct":
        return encoding.direct(images, model.T, dtype=np.float32)
    return encoding.rate(images, model.T, np.random.default_rng(0), dtype=np.float32)


def _load(name: str) -> mf.Model:
    path = DATA / f"{name}.h5"
    if not path.exists():
        pytest.skip(f"{path} not present (run tests/data/make_trained_models.py)")
    return eventsim.read_model(path)


def _to_network_run(model: mf.Model, x: np.ndarray):
    """``training.to_network(model)`` on ``x``: ``({spiking layer: spikes [T, B, n]},
    readout [T, B, n_out])`` (one network layer per model layer but the readout)."""
    net = training.to_network(model)
    assert len(net.layers) == len(model.layers) - 1
    h, spikes = x, {}
    for i, layer in enumerate(net.layers):
        h = layer.forward(h)
        if i in model.spiking_layers:
            spikes[i] = h.reshape(h.shape[0], h.shape[1], -1)
    return spikes, h


def _compare(name: str, model: mf.Model, x: np.ndarray, d_spikes: dict, d_out: np.ndarray,
             labels: np.ndarray):
    """Prediction and neuron-step spike agreement of the simulator with the dense results;
    prints both and the accuracies, returns ``(prediction agreement, spike agreement,
    first differing spike or None)``."""
    rec = eventsim.Simulator(model, n_threads=1).run(x)
    T, B = x.shape[:2]
    tw = model.layers[-1].time_weights
    d_pred = decode(np.asarray(d_out, dtype=np.float64), tw).argmax(axis=1)
    pred_agree = float(np.mean(rec.predictions == d_pred))
    same = total = 0
    first = None
    for layer in model.spiking_layers:
        got = rec.spikes[layer].to_dense(T, B).reshape(T, B, -1)
        want = np.asarray(d_spikes[layer]).reshape(T, B, -1)
        diff = np.argwhere(got != want)
        if len(diff) and (first is None or diff[0][0] < first[1]):
            t, b, n = diff[0]
            first = (layer, int(t), int(b), int(n))
        same += int(np.sum(got == want))
        total += got.size
    spike_agree = same / total
    print(f"\n{name}: {B} images, prediction agreement {pred_agree:.4f}, neuron-step spike "
          f"agreement {spike_agree:.6f}, accuracy simulator "
          f"{np.mean(rec.predictions == labels):.4f} / dense {np.mean(d_pred == labels):.4f}, "
          f"readout max |diff| {np.max(np.abs(rec.readout - d_out)):.2e}, "
          f"first differing spike (layer, t, sample, neuron) {first}")
    return pred_agree, spike_agree, first


def _labels():
    return load_fashion_mnist_small("test").labels


@pytest.mark.parametrize("name", ["fmnist_fmlp_if", "fmnist_fmlp_lif", "fmnist_rlif",
                                  "fmnist_cuba"])
def test_trained_model_agrees_with_to_network(name):
    """The simulator against ``training.to_network(model)`` (a RecurrentLIF for the F-MLP's
    feedback layer and the RecurrentLIF model, CubaLIF layers for the CubaLIF model)."""
    model = _load(name)
    assert model.connections, "a model with feedback or recurrence"
    x = _inputs(model)
    d_spikes, d_out = _to_network_run(model, x)
    pred_agree, spike_agree, _ = _compare(name, model, x, d_spikes, d_out, _labels())
    assert pred_agree >= 0.995
    assert spike_agree >= SPIKE_AGREEMENT


@pytest.mark.parametrize("name", ["fmnist_fmlp_if", "fmnist_fmlp_lif"])
def test_trained_feedback_mlp_agrees_with_the_network_itself(name):
    """The simulator against ``FeedbackMLP.simulate`` / ``forward`` (the network IDE
    trains, which adds the feedback product to the input current: ``(F x + b) + W s``)."""
    model = _load(name)
    x = _inputs(model)
    net = training.feedback_from_model(model)
    assert isinstance(net, training.FeedbackMLP) and net.feedback.sigma() == 0.0
    d_out = net.forward(x)
    pred_agree, spike_agree, _ = _compare(name, model, x, {1: net.simulate(x)}, d_out,
                                          _labels())
    assert pred_agree >= 0.995
    assert spike_agree >= SPIKE_AGREEMENT


def test_trained_feedback_conv_agrees_with_the_network_itself():
    """FeedbackConv (``to_network`` does not rebuild its sparse feedback between layers;
    ``training.feedback_from_model`` does): the simulator against ``FeedbackConv.simulate`` /
    ``forward`` (einsum convolutions)."""
    model = _load("fmnist_fconv")
    x = _inputs(model)
    net = training.feedback_from_model(model)
    assert isinstance(net, training.FeedbackConv)
    p = model.connections[0].projection
    data, indices, indptr = net.feedback.csr(np.float32)        # the same connection back
    np.testing.assert_array_equal(data, p.data)
    np.testing.assert_array_equal(indices, p.indices)
    np.testing.assert_array_equal(indptr, p.indptr)
    layers = net.simulate(x, all_layers=True)
    d_out = net.forward(x)
    d_spikes = dict(zip(model.spiking_layers, layers))
    pred_agree, spike_agree, _ = _compare("fmnist_fconv", model, x, d_spikes, d_out, _labels())
    assert pred_agree >= 0.995
    assert spike_agree >= SPIKE_AGREEMENT


def test_files_are_small_and_record_their_accuracy():
    """Each file well under 1 MB, with the generator's metadata (dataset, seed, accuracy
    well above chance)."""
    for name in ("fmnist_fmlp_if", "fmnist_fmlp_lif", "fmnist_fconv", "fmnist_rlif",
                 "fmnist_cuba"):
        path = DATA / f"{name}.h5"
        if not path.exists():
            pytest.skip(f"{path} not present")
        assert path.stat().st_size < 700_000, name
        meta = eventsim.read_model(path).metadata
        assert meta["dataset"] == "fashion-mnist-small" and meta["seed"] == 0, name
        assert meta["accuracy"] > 0.7, name
