"""What a checked recipe builds: the data, the network, the optimiser and schedule.

``build_network`` makes the preset (or the layer list) from the ``[model]`` and
``[neuron]`` tables, initialised from ``train.seed``; ``load_data`` returns the training and
test samples shaped for it, with the encoder ``fit`` takes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import layers as L
from ..conv import Conv2d
from ..dropout import Dropout
from ..feedback import FeedbackConv, FeedbackMLP
from ..klif import KLIF
from ..neurons import LIF
from ..norm import BatchNorm1d, BatchNorm2d
from ..pooling import AvgPool2d, MaxPool2d
from ..recurrent import CubaLIF, RecurrentLIF
from ..ws import Scale, WSConv2d, WSLinear
from .checks import ONLINE
from .schema import RecipeError


@dataclass
class Data:
    """Samples ready for ``fit``.

    train, test: ``(x [N, *sample_shape], labels [N] int64)``; x float in [0, 1] for images,
    event counts ``[N, T, P, H, W]`` for event data.  input_shape: one sample as the network
    and the exported model see it.  encoder: "direct", "rate" or ``f(x, T, rng)``.
    encoding: the exported model's encoding ("direct", "rate" or "events").
    """
    train: tuple
    test: tuple
    input_shape: tuple
    n_classes: int
    encoder: object
    encoding: str
    info: dict


def _flat_input(r) -> bool:
    """Does the network take flat samples ``[B, features]``?"""
    if r.model.preset in ("conv", "feedback_conv"):
        return False
    if r.model.preset == "layers":
        first = r.model.layers[0].split()[0]
        return first in ("linear", "wslinear", "neuron", "dropout", "scale", "batchnorm")
    return True


def _images(r, split: str):
    from snncore import datasets as ds

    d = r.data
    if d.dataset == "fashion-mnist-small":
        return ds.load_fashion_mnist_small(split)
    if d.dir is not None and not Path(d.dir).expanduser().is_dir():
        raise RecipeError(f"data.dir: {d.dir} is not a directory")
    load = ds.load_fashion_mnist if d.dataset == "fashion-mnist" else ds.load_mnist
    try:
        return load(path=d.dir, split=split, download=d.download)
    except FileNotFoundError as e:
        lines = str(e).splitlines()
        head = lines[0].removesuffix(" Searched, in order:")
        searched = [l.strip(" -") for l in lines[1:] if l.startswith("  - ") and ":" in l
                    and not l.strip(" -").startswith(("or ", "download:"))]
        where = f"data.dir = {d.dir}" if d.dir else f"data.dataset = {d.dataset!r}"
        raise RecipeError(f"{where}: {head} Searched: {'; '.join(searched[:4])}. Set data.dir "
                          "(or the environment variable), or data.download = true") from None


def _rows(x, T, rng):
    """Row encoder: images ``[B, H, W]`` -> ``[H, B, W]`` (step t carries row t)."""
    return np.ascontiguousarray(np.transpose(x, (1, 0, 2)))


def _time_major(flat: bool) -> Callable:
    """Encoder of stored event frames ``[B, T, ...]`` -> ``[T, B, ...]`` (flattened)."""
    def enc(x, T, rng):
        y = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        return y.reshape(y.shape[:2] + (-1,)) if flat else y
    return enc


def load_data(r, dtype) -> Data:
    """The recipe's training and test data (RecipeError naming the key of a missing file)."""
    d, flat = r.data, _flat_input(r)
    if d.dataset == "events":
        from .events import read_frames

        xtr, ytr, dt = read_frames(d.train_events, r.train.T, d.dt_us, d.train_limit,
                                   "data.train_events", dtype)
        xte, yte, _ = read_frames(d.test_events, r.train.T, dt, d.test_limit,
                                  "data.test_events", dtype)
        if xtr.shape[2:] != xte.shape[2:]:
            raise RecipeError(f"data.test_events: sensor {xte.shape[2:]} differs from the "
                              f"training file's {xtr.shape[2:]} (P, H, W)")
        shape = xtr.shape[2:]
        n_classes = int(max(ytr.max(), yte.max())) + 1
        return Data((xtr, ytr), (xte, yte), (int(np.prod(shape)),) if flat else shape,
                    n_classes, _time_major(flat), "events",
                    {"dt_us": dt, "sensor_pHW": list(shape)})
    train, test = _images(r, "train"), _images(r, "test")

    def prepare(ds, limit):
        x = ds.float_images(dtype=dtype, flatten=flat and d.encoding != "rows")
        if d.encoding == "rows":
            x = x.reshape(len(x), x.shape[-2], x.shape[-1])
        n = len(x) if limit is None else min(limit, len(x))
        return x[:n], ds.labels[:n].astype(np.int64)

    xtr, ytr = prepare(train, d.train_limit)
    xte, yte = prepare(test, d.test_limit)
    shape = (xtr.shape[-1],) if d.encoding == "rows" else xtr.shape[1:]
    encoder = _rows if d.encoding == "rows" else d.encoding
    return Data((xtr, ytr), (xte, yte), tuple(int(s) for s in shape), len(train.classes),
                encoder, "direct" if d.encoding == "rows" else d.encoding,
                {"classes": list(train.classes)})


# ---------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------
def _surrogate(n):
    return n.surrogate if n.surrogate_alpha is None else (n.surrogate, n.surrogate_alpha)


def make_neuron(r, features: int | None = None, recurrent: bool = False, rng=None):
    """One spiking layer of ``[neuron]``; ``features``/``recurrent``/``rng`` for the
    recurrent preset (and CubaLIF, which needs its size when recurrent)."""
    n = r.neuron
    tau = math.inf if n.kind == "if" else n.tau
    common = dict(threshold=n.threshold, surrogate=_surrogate(n), detach_reset=n.detach_reset)
    if n.kind == "klif":
        return KLIF(tau=n.tau, k=1.0, learn_k=n.learn_k, msg_p=n.msg_p, **common)
    if n.kind == "cuba":
        beta = 1.0 - 1.0 / n.tau
        return CubaLIF(alpha=n.alpha, beta=beta, reset=n.reset, recurrent=recurrent,
                       features=features, learn_alpha=n.learn_decay, learn_beta=n.learn_decay,
                       rng=rng, **common)
    if recurrent:
        return RecurrentLIF(features, tau=tau, reset=n.reset, learn_beta=n.learn_decay,
                            rng=rng, **common)
    return LIF(tau=tau, reset=n.reset, spikes=n.spikes, learn_amplitude=n.learn_amplitude,
               learn_beta=n.learn_decay, msg_p=n.msg_p, **common)


def _norm(r) -> str:
    """The resolved ``model.norm``."""
    if r.model.norm != "auto":
        return r.model.norm
    if r.method.name in ONLINE:
        return "ws"
    return "batchnorm" if r.model.preset == "conv" else "none"


def _weight(r, kind: str, n_in: int, n_out: int, rng, k: int = 0) -> list:
    """A weight layer with the resolved normalisation: ``[layer, (BatchNorm | Scale)]``."""
    norm = _norm(r)
    if kind == "linear":
        if norm == "ws":
            return [WSLinear(n_in, n_out, rng=rng), Scale(r.model.ws_scale)]
        return [L.Linear(n_in, n_out, rng=rng)] + ([BatchNorm1d(n_out)] if norm == "batchnorm"
                                                   else [])
    if norm == "ws":
        return [WSConv2d(n_in, n_out, k, padding=k // 2, rng=rng), Scale(r.model.ws_scale)]
    return [Conv2d(n_in, n_out, k, padding=k // 2, rng=rng)] + (
        [BatchNorm2d(n_out)] if norm == "batchnorm" else [])


def build_network(r, input_shape: tuple, n_classes: int):
    """The network of ``r`` for samples of ``input_shape``, initialised from ``train.seed``."""
    m, seed = r.model, r.train.seed
    rng = np.random.default_rng(seed)
    if m.preset == "feedback_mlp":
        return FeedbackMLP(input_shape[0], m.hidden[0], n_classes, **_feedback_neuron(r),
                           rng=seed, batch_norm=_norm(r) == "batchnorm", dropout=m.dropout)
    if m.preset == "feedback_conv":
        return FeedbackConv(input_shape[0], m.channels, input_shape[1:], n_classes,
                            kernel_size=m.kernel_size, **_feedback_neuron(r), rng=seed,
                            batch_norm=_norm(r) == "batchnorm")
    layers, shape = [], tuple(input_shape)
    if m.preset in ("mlp", "recurrent"):
        for h in m.hidden:
            if m.preset == "mlp":
                layers += _weight(r, "linear", shape[0], h, rng) + [make_neuron(r)]
            else:
                layers += [L.Linear(shape[0], h, rng=rng),
                           make_neuron(r, h, recurrent=True, rng=rng)]
            shape = (h,)
        if m.dropout:
            layers.append(Dropout(m.dropout))
    elif m.preset == "conv":
        for c in m.channels:
            layers += _weight(r, "conv", shape[0], c, rng, m.kernel_size) + [make_neuron(r)]
            shape = (c,) + shape[1:]
            if m.pool != "none":
                layers.append((AvgPool2d if m.pool == "avg" else MaxPool2d)(2))
                shape = (c, shape[1] // 2, shape[2] // 2)
        layers.append(L.Flatten())
        shape = (int(np.prod(shape)),)
        if m.dropout:
            layers.append(Dropout(m.dropout))
    else:
        layers, shape = _layer_list(r, shape, rng)
    if len(shape) != 1:
        layers.append(L.Flatten())
        shape = (int(np.prod(shape)),)
    layers.append(L.Linear(shape[0], n_classes, rng=rng))
    return L.Sequential(*layers)


def _feedback_neuron(r) -> dict:
    n = r.neuron
    return dict(neuron="IF" if n.kind == "if" else "LIF", theta=n.threshold,
                lam=1.0 if n.kind == "if" else 1.0 - 1.0 / n.tau)


def _layer_list(r, shape: tuple, rng):
    """``(layers, output shape)`` of ``model.layers`` (checked entries) on ``shape``."""
    out = []
    for i, entry in enumerate(r.model.layers):
        word, *nums = entry.split()
        where = f"model.layers[{i}] = {entry!r}"
        flat = len(shape) == 1
        if word in ("linear", "wslinear", "conv", "wsconv") and (word.endswith("linear") != flat):
            raise RecipeError(f"{where}: gets samples of shape {shape}; "
                              + ("add 'flatten' before it" if word.endswith("linear")
                                 else "a conv layer needs [C, H, W] samples"))
        if word in ("avgpool", "maxpool") and flat:
            raise RecipeError(f"{where}: pooling needs [C, H, W] samples, gets {shape}")
        if word == "linear":
            out.append(L.Linear(shape[0], int(nums[0]), rng=rng))
            shape = (int(nums[0]),)
        elif word == "wslinear":
            out.append(WSLinear(shape[0], int(nums[0]), rng=rng))
            shape = (int(nums[0]),)
        elif word in ("conv", "wsconv"):
            c, k = int(nums[0]), int(float(nums[1]))
            if k % 2 == 0:
                raise RecipeError(f"{where}: the kernel must be odd ('same' padding)")
            cls = Conv2d if word == "conv" else WSConv2d
            out.append(cls(shape[0], c, k, padding=k // 2, rng=rng))
            shape = (c,) + shape[1:]
        elif word == "batchnorm":
            out.append(BatchNorm1d(shape[0]) if flat else BatchNorm2d(shape[0]))
        elif word == "scale":
            out.append(Scale(float(nums[0])))
        elif word == "neuron":
            out.append(make_neuron(r, shape[0] if flat else None))
        elif word in ("avgpool", "maxpool"):
            k = int(float(nums[0]))
            if k > min(shape[1:]):
                raise RecipeError(f"{where}: a {k}x{k} window does not fit {shape}")
            out.append((AvgPool2d if word == "avgpool" else MaxPool2d)(k))
            shape = (shape[0], shape[1] // k, shape[2] // k)
        elif word == "dropout":
            out.append(Dropout(float(nums[0])))
        elif word == "flatten":
            out.append(L.Flatten())
            shape = (int(np.prod(shape)),)
    return out, shape


# ---------------------------------------------------------------------------------------
# optimisation
# ---------------------------------------------------------------------------------------
def make_optimizer(r, net, n_train: int):
    """``(optimizer, schedule or None)`` of ``[train]`` for ``n_train`` training samples."""
    from .. import optim

    t = r.train
    params = list(net.named_parameters())
    if t.optimizer == "sgd":
        opt = optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    else:
        cls = optim.Adam if t.optimizer == "adam" else optim.AdamW
        opt = cls(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.schedule == "constant":
        return opt, None
    return opt, optim.CosineSchedule(opt, total_steps=t.epochs * math.ceil(n_train / t.batch_size))
