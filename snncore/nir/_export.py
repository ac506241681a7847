"""A model file record -> a NIR graph (docs/nir.md, "From the model file to NIR").

Node names are ``<layer index>_<kind>`` (``1_lif``) and ``c<k>_<kind>`` for the nodes of
connection ``k``.  Our ``u >= theta`` is written as NIR's ``v > v_threshold`` with
``v_threshold`` the float just below ``theta``; the reset mode, ``v_min`` and ternary spikes
(which NIR cannot state) go in each neuron node's metadata, and the step, discretisation and
threshold rule in the graph's metadata.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from snncore import modelfile as mf

from . import _params as P
from ._graph import WRITER
from ._params import NIRConversionError


def _per_neuron(v, shape) -> np.ndarray:
    """A layer's float or flat per-neuron array as float64 of the feature ``shape``."""
    return np.broadcast_to(np.asarray(v, dtype=np.float64).reshape(-1) if np.ndim(v) else
                           np.float64(v), (int(np.prod(shape)),)).reshape(shape).copy()


def _theta(v, shape, dtype) -> np.ndarray:
    """NIR's ``v_threshold`` for our ``theta`` (the float just below it, in the model dtype)."""
    t = np.broadcast_to(np.asarray(v, dtype=dtype).reshape(-1) if np.ndim(v) else dtype.type(v),
                        (int(np.prod(shape)),)).reshape(shape)
    return P.lower_threshold(t).astype(np.float64)


def _neuron_meta(layer: mf.Spiking) -> dict:
    meta = {"reset": "subtract" if layer.reset == "subtract" else "zero"}
    if layer.v_min is not None:
        meta["v_min"] = float(layer.v_min)
    if layer.spikes != "binary":
        meta["spikes"] = layer.spikes
    arrays = [n for n in ("alpha", "beta", "theta") if isinstance(getattr(layer, n), np.ndarray)]
    if arrays:
        meta["per_neuron"] = ",".join(arrays)
    return meta


def _spiking_node(layer: mf.Spiking, shape, dt, how, dtype, where):
    import nir

    beta = _per_neuron(layer.beta, shape)
    theta = _theta(layer.theta, shape, dtype)
    v_reset = np.full(shape, float(layer.v_reset))
    meta = _neuron_meta(layer)
    if layer.alpha is not None:
        alpha = _per_neuron(layer.alpha, shape)
        if np.any(alpha >= 1):
            raise NIRConversionError(f"{where}.alpha: a synaptic decay of 1 (a current that never "
                                     "decays) has no NIR time constant")
        return nir.CubaLIF(tau_syn=P.time_constant(alpha, dt, how, where + ".alpha"),
                           tau_mem=P.time_constant(beta, dt, how, where + ".beta"),
                           r=P.unit_gain_r(beta, dt, how), v_leak=np.zeros(shape),
                           v_threshold=theta, v_reset=v_reset,
                           w_in=P.unit_gain_r(alpha, dt, how), metadata=meta)
    if np.all(beta == 1):
        return nir.IF(r=np.ones(shape), v_threshold=theta, v_reset=v_reset, metadata=meta)
    return nir.LIF(tau=P.time_constant(beta, dt, how, where + ".beta"),
                   r=P.unit_gain_r(beta, dt, how), v_leak=np.zeros(shape), v_threshold=theta,
                   v_reset=v_reset, metadata=meta)


def _linear_node(p, where):
    import nir

    meta = {}
    if isinstance(p, mf.Sparse):
        w = np.zeros(p.shape, dtype=p.data.dtype)
        rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))
        np.add.at(w, (rows, p.indices), p.data)
        meta["sparse"] = 1
    else:
        w = p.weight
    if p.bias is None:
        return nir.Linear(weight=np.array(w), metadata=meta)
    return nir.Affine(weight=np.array(w), bias=np.array(p.bias), metadata=meta)


def _node(layer, shape_in, shape_out, dt, how, dtype, where):
    import nir

    if isinstance(layer, (mf.Dense, mf.Sparse)):
        return _linear_node(layer, where)
    if isinstance(layer, mf.Conv2d):
        bias = layer.bias if layer.bias is not None else np.zeros(layer.weight.shape[0], layer.weight.dtype)
        return nir.Conv2d(input_shape=np.array(shape_in[1:]), weight=np.array(layer.weight),
                          stride=np.array(layer.stride), padding=np.array(layer.padding),
                          dilation=np.array([1, 1]), groups=1, bias=np.array(bias))
    if isinstance(layer, mf.AvgPool2d):
        return nir.AvgPool2d(kernel_size=np.array(layer.kernel), stride=np.array(layer.stride),
                             padding=np.array([0, 0]))
    if isinstance(layer, mf.MaxPool2d):
        raise NIRConversionError(f"{where}: NIR has no max pooling node; this model cannot be "
                                 "exported (train it with average pooling)")
    if isinstance(layer, mf.Flatten):
        return nir.Flatten(input_type={"input": np.array(shape_in)}, start_dim=0, end_dim=-1)
    if isinstance(layer, mf.Spiking):
        return _spiking_node(layer, shape_out, dt, how, dtype, where)
    raise NIRConversionError(f"{where}: layer {type(layer).__name__} has no NIR node")


def _readout_node(layer: mf.Readout, n, dt, how, where):
    import nir

    if layer.beta == 0:
        return None
    if layer.beta >= 1:
        return nir.I(r=np.ones(n))
    beta = np.full(n, float(layer.beta))
    return nir.LI(tau=P.time_constant(beta, dt, how, where + ".beta"),
                  r=P.unit_gain_r(beta, dt, how), v_leak=np.zeros(n))


def _spike_output(model: mf.Model) -> bool:
    """The model ends in an identity projection of a spiking layer's spikes read per step
    (what :func:`eventsim.nir.load` builds for a graph whose Output takes spikes)."""
    if len(model.layers) < 3 or str(model.metadata.get("nir_output", "")) != "spikes":
        return False
    proj, spk = model.layers[-2], model.layers[-3]
    if isinstance(spk, mf.Flatten) and len(model.layers) >= 4:
        spk = model.layers[-4]
    if not isinstance(spk, mf.Spiking) or model.layers[-1].beta != 0 or model.layers[-1].time_weights is not None:
        return False
    if isinstance(proj, mf.Dense):
        return proj.bias is None and np.array_equal(proj.weight, np.eye(proj.weight.shape[0]))
    if isinstance(proj, mf.Sparse):
        n = proj.shape[0]
        return (proj.bias is None and proj.shape == (n, n) and np.array_equal(proj.indptr, np.arange(n + 1))
                and np.array_equal(proj.indices, np.arange(n)) and np.all(proj.data == 1))
    return False


def _metadata(model: mf.Model, dt: float, how: str) -> dict:
    meta = {"writer": WRITER, "dt": float(dt), "discretisation": how,
            "threshold_test": ">",
            "threshold_note": "v_threshold is the largest float below the model's theta: "
                              "v > v_threshold here is u >= theta in the model file",
            "reset_modes": ",".join(sorted({l.reset for l in model.layers if isinstance(l, mf.Spiking)})),
            "T": int(model.T), "encoding": model.encoding,
            "input_shape": np.asarray(model.input_shape, dtype=np.int64)}
    if model.layers[-1].time_weights is not None:
        meta["time_weights"] = np.asarray(model.layers[-1].time_weights)
    for k, v in model.metadata.items():   # scalars under HDF5-safe names
        if (isinstance(v, (str, int, float, np.integer, np.floating, bool, np.bool_))
                and k != "nir_output" and re.fullmatch(r"[\w.\-]+", str(k))):
            meta["model." + str(k)] = v.item() if isinstance(v, np.generic) else v
    return meta


def to_graph(model: mf.Model, dt: float, discretisation: str = "euler"):
    """The ``nir.NIRGraph`` of ``model`` for a step of ``dt`` seconds."""
    import nir

    how = P.check_discretisation(discretisation)
    dt = P.check_dt(dt)
    shapes = mf.validate(model)
    dtype = mf.model_dtype(model)
    layers = list(model.layers)
    keep = len(layers) - 1
    if _spike_output(model):
        keep = len(layers) - 2
        if isinstance(layers[keep - 1], mf.Flatten):
            keep -= 1
    nodes = {"input": nir.Input(input_type={"input": np.array(model.input_shape)})}
    edges, prev, names = [], "input", {}
    for i in range(keep):
        where = f"model.layers[{i}]({layers[i].kind})"
        shape_in = tuple(model.input_shape) if i == 0 else shapes[i - 1]
        node = _node(layers[i], shape_in, shapes[i], dt, how, dtype, where)
        name = f"{i}_{type(node).__name__.lower()}"
        nodes[name] = node
        edges.append((prev, name))
        prev, names[i] = name, name
    if keep == len(layers) - 1:
        n_out = shapes[-1][0]
        ro = _readout_node(layers[-1], n_out, dt, how, f"model.layers[{keep}](readout)")
        if ro is not None:
            name = f"{keep}_{type(ro).__name__.lower()}"
            nodes[name] = ro
            edges.append((prev, name))
            prev = name
        out_shape = (n_out,)
    else:
        out_shape = shapes[keep - 1]
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    edges.append((prev, "output"))
    for k, c in enumerate(model.connections):
        _add_connection(nodes, edges, names, k, c, dt, model, shapes)
    _warn_extensions(model)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_metadata(model, dt, how), type_check=False)


def _add_connection(nodes, edges, names, k, c: mf.Connection, dt, model, shapes) -> None:
    import nir

    lin = f"c{k}_{'affine' if c.projection.bias is not None else 'linear'}"
    nodes[lin] = _linear_node(c.projection, f"model.connections[{k}]")
    src, tgt = names[c.source], names[c.target]
    if c.delay > 1 or c.target > c.source:      # a cycle takes one step by itself
        dname = f"c{k}_delay"
        n_src = int(np.prod(shapes[c.source]))
        nodes[dname] = nir.Delay(delay=np.full(n_src, c.delay * dt))
        edges += [(src, dname), (dname, lin), (lin, tgt)]
    else:
        edges += [(src, lin), (lin, tgt)]


def _warn_extensions(model: mf.Model) -> None:
    odd = [i for i, l in enumerate(model.layers) if isinstance(l, mf.Spiking)
           and (l.v_min is not None or l.spikes != "binary")]
    if odd:
        warnings.warn(f"layers {odd} use v_min or ternary spikes, which NIR cannot state; they are "
                      "recorded in the nodes' metadata, which other tools ignore", stacklevel=3)
