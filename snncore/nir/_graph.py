"""Reading a NIR file into one flat graph, and guessing which tool wrote it.

:func:`read_graph` checks the file, refuses unknown node types by name and path before the
``nir`` package sees them, and wraps every failure of a damaged file in
:class:`NIRFormatError`.  :func:`flatten` inlines subgraphs (``NIRGraph`` nodes) so that a node
of subgraph ``rnn`` is named ``rnn.lif``; the subgraph's own Input and Output nodes disappear,
their edges joined through.  :func:`identify` reads the parameters and metadata for the
conventions of the writer (docs/nir.md, "Which tool wrote a file").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._params import NIRConversionError

#: node types this importer converts (``NIRGraph`` is inlined)
SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten",
             "Scale", "Threshold", "IF", "LIF", "CubaLIF", "LI", "CubaLI", "I", "Delay", "NIRGraph")
WRITER = "eventsim"


class NIRFormatError(ValueError):
    """A file is not a readable NIR graph (damaged, truncated, missing fields)."""


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.dtype.kind == "S" and v.ndim == 0:
        return v[()].decode("utf-8", "replace")
    return v


def _scan_types(path: Path) -> None:
    """Refuse a file without a ``node`` group or with a node type outside :data:`SUPPORTED`,
    naming the node's path in the graph (``rnn.lif``)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise NIRFormatError(f"{path}: not a readable HDF5 file ({' '.join(str(e).split())})") from None
    try:
        with f:
            if "node" not in f or not isinstance(f["node"], h5py.Group):
                raise NIRFormatError(f"{path}: no 'node' group: not a NIR file")

            def visit(g, where):
                if "type" not in g or not isinstance(g["type"], h5py.Dataset):
                    raise NIRFormatError(f"{path}: node {where or '<root>'} has no 'type'")
                kind = _decode(g["type"][()])
                if not isinstance(kind, str):
                    raise NIRFormatError(f"{path}: node {where or '<root>'}: 'type' is not a "
                                         f"string ({kind!r})")
                if kind not in SUPPORTED:
                    raise NIRConversionError(
                        f"{path}: node {where or '<root>'} has type {kind!r}, which this importer "
                        f"does not convert; supported: {', '.join(SUPPORTED)}")
                if kind == "NIRGraph":
                    if "nodes" not in g or not isinstance(g["nodes"], h5py.Group):
                        raise NIRFormatError(f"{path}: graph {where or '<root>'} has no 'nodes'")
                    for name, child in g["nodes"].items():
                        if not isinstance(child, h5py.Group):
                            raise NIRFormatError(f"{path}: node {name!r} is not a group")
                        visit(child, f"{where}.{name}" if where else name)
                elif not where:
                    raise NIRFormatError(f"{path}: the root node is a {kind}, not a NIRGraph")

            visit(f["node"], "")
    except (NIRFormatError, NIRConversionError):
        raise
    except Exception as e:  # noqa: BLE001 - h5py on damaged files raises many kinds
        raise NIRFormatError(f"{path}: corrupt or truncated NIR file "
                             f"({type(e).__name__}: {' '.join(str(e).split())})") from None


# Reads every group, dataset and attribute of the file named by argv[1] with h5py alone; exit
# status 0 when all could be read, 3 with a one-line reason when h5py raised.
_PROBE = """
import sys
import h5py
try:
    with h5py.File(sys.argv[1], "r") as f:
        seen = []
        def visit(name, obj):
            seen.append(name)
            dict(obj.attrs)
            if isinstance(obj, h5py.Dataset):
                obj[()]
        dict(f.attrs)
        f.visititems(visit)
except Exception as e:
    print(type(e).__name__ + ": " + " ".join(str(e).split())[:300])
    sys.exit(3)
"""


PROBE_SECONDS = 30.0   # time limit of the child's read, plus 10 s per 10 MB of file


def probe_in_child(path: Path, timeout: float | None = None) -> None:
    """Read the whole file once in a child interpreter, so that a damaged file on which the
    HDF5 library hangs or crashes (seen with corrupted variable-length strings of files
    written without checksums) costs a NIRFormatError instead of this interpreter.
    ``timeout``: seconds (default :data:`PROBE_SECONDS` plus 10 per 10 MB)."""
    import subprocess
    import sys

    if timeout is None:
        timeout = PROBE_SECONDS + 10.0 * path.stat().st_size / 10e6
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NIRFormatError(f"{path}: reading the file did not finish in {timeout:.0f} s (the "
                             "HDF5 library loops on some damaged files); not loaded") from None
    if done.returncode == 3:
        raise NIRFormatError(f"{path}: corrupt or truncated NIR file ({done.stdout.strip()})")
    if done.returncode != 0:
        raise NIRFormatError(f"{path}: the HDF5 library failed while reading this file (child "
                             f"process exit status {done.returncode}); damaged file, not loaded")


def read_graph(path, isolate: bool = True):
    """The ``nir.NIRGraph`` stored at ``path`` (no type check: older files fail it; shapes are
    checked while converting).  ``isolate``: read the file in a child process first
    (:func:`probe_in_child`).  Raises FileNotFoundError, NIRFormatError, NIRConversionError."""
    import nir

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    if path.is_dir():
        raise NIRFormatError(f"{path} is a directory, not a NIR file")
    import h5py

    if not h5py.is_hdf5(path):       # reads the signature only
        raise NIRFormatError(f"{path}: not a readable HDF5 file (no HDF5 signature); NIR files are HDF5")
    if isolate:
        probe_in_child(path)
    _scan_types(path)
    try:
        graph = nir.read(path, type_check=False)
    except Exception as e:  # noqa: BLE001 - nir's reader asserts, indexes and casts freely
        raise NIRFormatError(f"{path}: malformed NIR file ({type(e).__name__}: "
                             f"{' '.join(str(e).split())[:300]})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise NIRFormatError(f"{path}: the root node is a {type(graph).__name__}, not a NIRGraph")
    return graph


# ---------------------------------------------------------------------------------------
# subgraphs
# ---------------------------------------------------------------------------------------
class _PassThrough:
    """An Input or Output node of a subgraph: removed once its edges are joined."""


def _endpoint(name: str, io: dict, side: int, where: str) -> str:
    """A subgraph named as an edge endpoint stands for its only Output (``side=1``: edge
    source) or Input (``side=0``: edge target)."""
    if name not in io:
        return name
    names = io[name][side]
    if len(names) != 1:
        what = "outputs" if side else "inputs"
        raise NIRConversionError(f"{where}: an edge names subgraph {name!r}, which has "
                                 f"{len(names)} {what} ({names}); name one of them")
    return names[0]


def _inline(graph, prefix: str, nodes: dict, edges: list, io: dict) -> None:
    import nir

    if not isinstance(graph.nodes, dict) or not isinstance(graph.edges, (list, tuple)):
        raise NIRFormatError(f"graph {prefix or '<root>'}: nodes/edges malformed")
    for name, node in graph.nodes.items():
        full = prefix + str(name)
        if full in nodes or full in io:
            raise NIRConversionError(f"two nodes are named {full!r} once subgraphs are inlined")
        if isinstance(node, nir.NIRGraph):
            _inline(node, full + ".", nodes, edges, io)
            inner = [k for k in nodes if k.startswith(full + ".") and k.count(".") == full.count(".") + 1]
            io[full] = ([k for k in inner if isinstance(graph.nodes[name].nodes.get(k[len(full) + 1:]), nir.Input)],
                        [k for k in inner if isinstance(graph.nodes[name].nodes.get(k[len(full) + 1:]), nir.Output)])
            for k in io[full][0] + io[full][1]:
                nodes[k] = _PassThrough()
        else:
            nodes[full] = node
    where = f"graph {prefix[:-1] or '<root>'}"
    for e in graph.edges:
        if len(e) != 2:
            raise NIRFormatError(f"{where}: malformed edge {e!r}")
        a = _endpoint(prefix + str(_decode(e[0])), io, 1, where)
        b = _endpoint(prefix + str(_decode(e[1])), io, 0, where)
        for end in (a, b):
            if end not in nodes:
                raise NIRFormatError(f"{where}: edge ({e[0]!r}, {e[1]!r}) names unknown node {end!r}")
        edges.append((a, b))


def flatten(graph) -> tuple[dict, list]:
    """``(nodes, edges)`` of ``graph`` with every subgraph inlined (names joined by dots)."""
    nodes: dict = {}
    edges: list = []
    _inline(graph, "", nodes, edges, {})
    for name in [k for k, v in nodes.items() if isinstance(v, _PassThrough)]:
        preds = [a for a, b in edges if b == name]
        succs = [b for a, b in edges if a == name]
        edges = [e for e in edges if name not in e] + [(a, b) for a in preds for b in succs]
        del nodes[name]
    return nodes, list(dict.fromkeys(edges))


# ---------------------------------------------------------------------------------------
# which tool wrote a file
# ---------------------------------------------------------------------------------------
def _neuron_nodes(nodes: dict) -> dict:
    import nir

    return {k: n for k, n in nodes.items() if isinstance(n, (nir.LIF, nir.CubaLIF, nir.LI, nir.CubaLI))}


def _common(values) -> float | None:
    """The one value shared (to 1e-6 relative) by all finite entries, or None."""
    v = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in values])
    v = v[np.isfinite(v)]
    if v.size == 0 or not np.allclose(v, v[0], rtol=1e-6, atol=0):
        return None
    return float(v[0])


def _tau(n):
    return n.tau_mem if hasattr(n, "tau_mem") else n.tau


def identify(graph, nodes: dict | None = None) -> dict:
    """Guess the conventions of the tool that wrote ``graph``.

    Returns ``{"tool", "dt", "discretisation", "reset", "reason"}``; ``dt`` is None when the
    file does not reveal it.  Rules (docs/nir.md): our own metadata; snnTorch/Spyx
    (``r = tau/dt`` and ``w_in = tau_syn/dt`` for one dt, no leak potential); Rockpool
    (``r = exp(-dt/tau) tau/dt`` for one dt); Norse (``r = 1``); otherwise NIR's definition.
    """
    meta = dict(getattr(graph, "metadata", None) or {})
    if _decode(meta.get("writer")) == WRITER:
        return {"tool": WRITER, "dt": float(meta["dt"]) if "dt" in meta else None,
                "discretisation": _decode(meta.get("discretisation", "euler")),
                "reset": "per-node", "reason": "metadata writer='eventsim'"}
    if nodes is None:
        nodes = flatten(graph)[0]
    neurons = _neuron_nodes(nodes)
    if not neurons:
        return {"tool": "unknown", "dt": None, "discretisation": "euler", "reset": "zero",
                "reason": "no LIF/CubaLIF/LI/CubaLI node to read conventions from"}
    taus = [np.asarray(_tau(n), dtype=np.float64) for n in neurons.values()]
    rs = [np.asarray(n.r, dtype=np.float64) for n in neurons.values()]
    leak = any(np.any(np.asarray(n.v_leak) != 0) for n in neurons.values())
    if all(np.allclose(r, 1.0) for r in rs):
        return {"tool": "norse", "dt": None, "discretisation": "euler", "reset": "zero",
                "reason": "r = 1 everywhere (Norse writes r = 1 and integrates with forward Euler)"}
    if any("Torch" in k for k in neurons):
        dt = _rockpool_dt(taus, rs)
        return {"tool": "rockpool", "dt": dt, "discretisation": "rockpool", "reset": "subtract",
                "reason": "node names end in 'Torch' (Rockpool's module names)"
                          + (f"; r = exp(-dt/tau) tau/dt for dt = {dt:g} s" if dt else "")}
    dt = _common([t / r for t, r in zip(taus, rs)])
    syn = [np.asarray(n.tau_syn, dtype=np.float64) / np.asarray(n.w_in, dtype=np.float64)
           for n in neurons.values() if hasattr(n, "tau_syn")]
    if dt is not None and not leak and (not syn or _common(syn + [np.array([dt])]) is not None):
        tool = "snntorch" if np.isclose(dt, 1e-4, rtol=1e-6, atol=0) else "spyx"
        return {"tool": tool, "dt": dt, "discretisation": "euler", "reset": "subtract",
                "reason": f"r = tau/dt and w_in = tau_syn/dt for dt = {dt:g} s, no v_leak "
                          + ("(snnTorch writes its parameters for dt = 1e-4 s)" if tool == "snntorch"
                             else "(snnTorch's convention with another dt, as Spyx writes it)")}
    return {"tool": "unknown", "dt": None, "discretisation": "euler", "reset": "zero",
            "reason": "no known writer's fingerprint; NIR's own definition (reset to v_reset)"}


def _rockpool_dt(taus, rs) -> float | None:
    """The one dt (seconds) solving ``r dt/tau = exp(-dt/tau)`` for every neuron, or None."""
    found = []
    for tau, r in zip(taus, rs):
        t, rr = tau.reshape(-1), r.reshape(-1)
        if not np.all(np.isfinite(t) & (t > 0) & (rr > 0) & np.isfinite(rr)):
            return None
        lo, hi = np.zeros_like(t), 1.0 / rr       # r x - exp(-x) rises from -1 through 0
        for _ in range(80):
            mid = (lo + hi) / 2
            below = rr * mid < np.exp(-mid)
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        found.append((lo + hi) / 2 * t)
    return _common(found)
