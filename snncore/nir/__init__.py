"""NIR (Neuromorphic Intermediate Representation) export and import (also reachable as
``eventsim.nir``; ``training.from_nir`` builds a trainable network from the same reader).

::

    eventsim.nir.export("model.h5", "net.nir", dt=1e-3)           # model file -> NIR graph
    model = eventsim.nir.load("net.nir", dt=1e-4, reset="auto")    # NIR graph -> Model
    rec = eventsim.Simulator(model).run(x)                         # x: [T, B, *input_shape]
    eventsim.nir.identify("net.nir")                               # which tool's conventions

NIR describes neurons in continuous time (``tau``, ``r``, ``v_leak``, ``v_threshold``,
``v_reset``, ``tau_syn``, ``w_in``, in seconds and volts); the model file runs discrete steps
(docs/methods.md section 2).  ``dt`` and a ``discretisation`` connect the two; docs/nir.md
gives every formula and how snnTorch, Norse, Rockpool, Sinabs, Spyx and Lava differ.
Files are read with the ``nir`` package (NumPy and h5py only) and written atomically; no
pickle is involved.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from snncore import modelfile as mf
from snncore.fileio import atomic_output, check_output

from ._build import Options, build
from ._export import to_graph
from ._graph import WRITER, NIRFormatError, flatten, identify as _identify, read_graph
from ._params import DISCRETISATIONS, NIRConversionError, check_discretisation, check_dt

__all__ = ["export", "load", "identify", "to_graph", "from_graph", "NIRFormatError",
           "NIRConversionError", "DISCRETISATIONS", "RESETS"]

#: values of ``load(reset=...)``: "zero" and "hard" both mean NIR's reset to ``v_reset``
RESETS = ("auto", "zero", "hard", "subtract")


def _as_model(model_or_path) -> mf.Model:
    if isinstance(model_or_path, mf.Model):
        mf.validate(model_or_path)
        return model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        return mf.read_model(model_or_path)
    raise TypeError(f"export: expected a Model or a model file path, got "
                    f"{type(model_or_path).__name__} (a training network: call "
                    "training.to_model(net, input_shape=..., T=...) first)")


def export(model_or_path, path, *, dt: float, discretisation: str = "euler",
           overwrite: bool = False) -> Path:
    """Write a model (a :class:`~snncore.modelfile.Model` or a model file path) as a NIR graph.

    Args:
        model_or_path: the model, or the path of its model file (.h5).
        path: the NIR file to write (conventionally ``.nir``).
        dt: the step length in seconds the exported time constants refer to.
        discretisation: "euler" (default: ``tau = dt / (1 - beta)``, as snnTorch, Norse,
            Spyx and Lava read it), "exact" (``tau = -dt / ln(beta)``) or "rockpool".  ``r``
            and ``w_in`` are chosen so the input gain per step is 1 either way.
        overwrite: replace an existing NIR file at ``path``.  Anything else there (a model
            file, a checkpoint, any other file, an input of this call) is never replaced.
    Returns:
        ``path`` as a Path.
    Raises:
        NIRConversionError naming the layer that NIR cannot express (max pooling, a synaptic
        decay of 1); ModelFormatError for an invalid model; FileExistsError.
    """
    import nir

    source = model_or_path if isinstance(model_or_path, (str, os.PathLike)) else None
    model = _as_model(model_or_path)
    graph = to_graph(model, dt=dt, discretisation=discretisation)
    path = check_output(path, "nir", overwrite, inputs=(source,))
    with atomic_output(path) as tmp:
        nir.write(tmp, graph)
    return path


def identify(path_or_graph, isolate: bool = True) -> dict:
    """Which tool's conventions a NIR file (or ``nir.NIRGraph``) seems to follow.

    Returns ``{"tool", "dt", "discretisation", "reset", "reason"}``: ``tool`` one of
    "eventsim", "snntorch", "spyx", "rockpool", "norse", "unknown"; ``dt`` in seconds when
    the parameters reveal it (else None); the discretisation and reset mode that tool uses;
    ``reason``, the evidence.  ``load(..., discretisation="auto", reset="auto")`` uses it.
    """
    graph = read_graph(path_or_graph, isolate) if isinstance(path_or_graph, (str, os.PathLike)) else path_or_graph
    return _identify(graph, flatten(graph)[0])


def _meta(graph) -> dict:
    return {k: (v.decode() if isinstance(v, bytes) else v)
            for k, v in (getattr(graph, "metadata", None) or {}).items()}


def _check_reset(reset: str) -> str:
    if reset not in RESETS:
        raise ValueError(f"reset: must be one of {list(RESETS)}, got {reset!r}")
    return "hard" if reset == "zero" else reset


def _needs_dt(nodes: dict) -> bool:
    """Whether any node has a time constant or a delay (IF, Threshold, I and the projections
    are read per step whatever dt is)."""
    return any(type(n).__name__ in ("LIF", "CubaLIF", "LI", "CubaLI", "Delay") for n in nodes.values())


def from_graph(graph, *, dt: float | None = None, reset: str = "auto",
               discretisation: str = "auto", T: int | None = None, dtype=np.float32,
               source: str = "<graph>") -> mf.Model:
    """The :class:`~snncore.modelfile.Model` of a ``nir.NIRGraph`` (see :func:`load`)."""
    reset = _check_reset(reset)
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: must be float32 or float64, got {dtype}")
    nodes, edges = flatten(graph)
    conv = _identify(graph, nodes)
    if dt is None:
        dt = conv["dt"] if _needs_dt(nodes) else 1.0
        if dt is None:
            raise ValueError(f"{source}: pass dt (seconds per step): the file does not reveal it "
                             f"(it looks written by {conv['tool']}: {conv['reason']})")
    dt = check_dt(dt)
    how = conv["discretisation"] if discretisation == "auto" else check_discretisation(discretisation)
    opt = Options(dt=dt, discretisation=how, reset=reset, convention_reset=conv["reset"],
                  dtype=dtype, source=source)
    in_shape, layers, conns, output_kind = build(nodes, edges, opt)
    meta = _meta(graph)
    ours = meta.get("writer") == WRITER
    if ours and "time_weights" in meta:
        tw = np.asarray(meta["time_weights"], dtype=dtype)
        layers[-1] = mf.Readout(beta=layers[-1].beta, time_weights=tw)
    steps = T if T is not None else (int(meta["T"]) if ours and "T" in meta else
                                    (len(layers[-1].time_weights) if layers[-1].time_weights is not None else 1))
    metadata = {k[6:]: v.item() if isinstance(v, np.generic) else v
                for k, v in meta.items() if ours and k.startswith("model.")}
    metadata.update(nir_source=str(source), nir_tool=conv["tool"], nir_dt=dt,
                    nir_discretisation=how, nir_reset=reset if reset != "auto" else f"auto ({conv['reset']})",
                    nir_threshold_test="v > v_threshold, read as u >= the next float up",
                    nir_output=output_kind)
    model = mf.Model(input_shape=in_shape, layers=layers, connections=conns, T=int(steps),
                     encoding=str(meta.get("encoding", "direct")) if ours else "direct",
                     metadata=metadata)
    mf.validate(model, where=str(source))
    return model


def load(path, *, dt: float | None = None, reset: str = "auto", discretisation: str = "auto",
         T: int | None = None, dtype=np.float32, isolate: bool = True) -> mf.Model:
    """Read a NIR file as a :class:`~snncore.modelfile.Model` that :class:`eventsim.Simulator`
    runs (and ``training.from_nir`` turns into a trainable network where the nodes allow).

    Args:
        path: the NIR file.
        dt: seconds per step.  None: the file's own (our exports record it; snnTorch's and
            Rockpool's parameters reveal theirs, see :func:`identify`); else required, unless
            no node has a time constant or a delay (IF, Threshold, I are read per step).
        reset: "auto" (default: the node's recorded mode, else the writer's convention, else
            NIR's reset to ``v_reset``), "zero"/"hard" (to ``v_reset``) or "subtract"
            (``v -= threshold``).
        discretisation: "auto" (the writer's: "euler" for snnTorch, Norse, Spyx, Lava and
            unknown writers, "rockpool" for Rockpool), "euler", "exact" or "rockpool".
        T: time steps stored in the model (default: the file's, else 1).
        dtype: float32 (default) or float64 for the model's arrays.
        isolate: first read the whole file in a child process (about 0.2 s), so that a
            damaged file on which the HDF5 library hangs or crashes raises NIRFormatError
            instead of stopping this interpreter; False for files you trust.
    Raises:
        FileNotFoundError; NIRFormatError (damaged, truncated, not NIR); NIRConversionError
        naming an unsupported node and its path in the graph (``lif1.lif``), a shape
        mismatch, or parameters without a discrete form; ValueError for bad arguments.
    """
    graph = read_graph(path, isolate=isolate)
    return from_graph(graph, dt=dt, reset=reset, discretisation=discretisation, T=T,
                      dtype=dtype, source=str(path))
