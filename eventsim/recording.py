"""What a simulation run returns, and its HDF5 file.

Vocabulary of spike and state monitors (Brian2, NIR): spikes are ``(sample, t, neuron)``
event lists per layer; membrane traces ``[T, B, k]`` for k chosen neurons.

HDF5 layout (``format = "snn-recording"``, ``version = 1``)::

    /                      attrs: format, version, T, batch_size, n_outputs
    /readout               [T, B, n_out] float   per-step readout values r_t
    /predictions           [B] int64             argmax_c sum_t a_t r_t[c]
    /time_weights          [T] float             (only if the model has them)
    /spikes/<layer:04d>    attrs: layer, n_neurons, ternary
                           datasets sample, t, neuron (int32 [n]), value (int8 [n], ternary)
    /membrane/<layer:04d>  attrs: layer; datasets neurons (int64 [k]), values [T, B, k]
    /synaptic_events       attrs: one integer per projection ("layers[i]", "connections[k]")
                           and "total"

``Recording.save`` writes a temporary file in the target directory and renames it, so an
existing file is replaced only by a complete one; ``Recording.load`` checks every field and
names the first wrong one (no pickle anywhere).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snncore.fileio import atomic_output, open_hdf5

FORMAT_NAME = "snn-recording"
FORMAT_VERSION = 1


class RecordingFormatError(ValueError):
    """A recording file is malformed; the message names the field and value."""


@dataclass(frozen=True, eq=False)
class SpikeTrain:
    """Spikes of one layer: event ``k`` is neuron ``neuron[k]`` (canonical C-order index)
    of sample ``sample[k]`` firing at step ``t[k]`` (int32 arrays), sorted by (sample, t);
    within one step the neurons come in the simulator's update order (:meth:`sorted` also
    orders them).  ``value`` is +1/-1 (int8) for ternary layers, None for binary ones."""
    sample: np.ndarray
    t: np.ndarray
    neuron: np.ndarray
    value: np.ndarray | None
    n_neurons: int

    def __len__(self) -> int:
        return len(self.t)

    @property
    def ternary(self) -> bool:
        return self.value is not None

    def sorted(self) -> "SpikeTrain":
        """A copy sorted by (sample, t, neuron)."""
        order = np.lexsort((self.neuron, self.t, self.sample))
        return SpikeTrain(sample=self.sample[order], t=self.t[order], neuron=self.neuron[order],
                          value=None if self.value is None else self.value[order],
                          n_neurons=self.n_neurons)

    def to_dense(self, T: int, B: int, n: int | None = None) -> np.ndarray:
        """Dense spikes ``[T, B, n]`` int8 (values 0/1, or -1/0/1 for ternary layers)."""
        n = self.n_neurons if n is None else int(n)
        out = np.zeros((int(T), int(B), n), dtype=np.int8)
        if len(self.t):
            if self.t.max() >= T or self.sample.max() >= B or self.neuron.max() >= n:
                raise ValueError(f"SpikeTrain.to_dense: spikes outside [T={T}, B={B}, n={n}]")
        out[self.t, self.sample, self.neuron] = 1 if self.value is None else self.value
        return out


@dataclass(eq=False)
class Recording:
    """Result of :meth:`eventsim.Simulator.run`.

    readout: ``[T, B, n_out]`` per-step readout values ``r_t``.
    predictions: ``[B]`` ``argmax_c (1/T) sum_t a_t r_t[c]`` (a: time weights or ones).
    spikes: ``{layer index: SpikeTrain}`` for every spiking layer.
    membrane: ``{layer index: [T, B, k]}`` membrane before reset u_t of the recorded neurons
        ``membrane_neurons[layer]`` (canonical indices).
    synaptic_events: ``{"layers[i]" | "connections[k]": count, "total": count}`` delivered
        synaptic events (one per (event, target) addition).
    spike_counts: ``{layer index: number of spikes}``.
    """
    readout: np.ndarray
    predictions: np.ndarray
    spikes: dict
    membrane: dict = field(default_factory=dict)
    membrane_neurons: dict = field(default_factory=dict)
    synaptic_events: dict = field(default_factory=dict)
    time_weights: np.ndarray | None = None
    elapsed_s: float = 0.0

    @property
    def T(self) -> int:
        return int(self.readout.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.readout.shape[1])

    @property
    def spike_counts(self) -> dict:
        return {layer: len(s) for layer, s in self.spikes.items()}

    def __repr__(self) -> str:
        return (f"Recording(T={self.T}, B={self.batch_size}, spikes={self.spike_counts}, "
                f"synaptic_events={self.synaptic_events.get('total', 0)})")

    # -- HDF5 ------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the recording to ``path`` atomically (temporary file, then rename)."""
        import h5py

        path = Path(path)
        with atomic_output(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT_NAME
                f.attrs["version"] = FORMAT_VERSION
                f.attrs["T"] = self.T
                f.attrs["batch_size"] = self.batch_size
                f.attrs["n_outputs"] = int(self.readout.shape[2])
                f.create_dataset("readout", data=self.readout)
                f.create_dataset("predictions", data=np.asarray(self.predictions, dtype=np.int64))
                if self.time_weights is not None:
                    f.create_dataset("time_weights", data=self.time_weights)
                g = f.create_group("spikes")
                for layer, st in sorted(self.spikes.items()):
                    h = g.create_group(f"{int(layer):04d}")
                    h.attrs.update(layer=int(layer), n_neurons=int(st.n_neurons), ternary=st.ternary)
                    for name in ("sample", "t", "neuron"):
                        h.create_dataset(name, data=np.asarray(getattr(st, name), dtype=np.int32))
                    if st.value is not None:
                        h.create_dataset("value", data=np.asarray(st.value, dtype=np.int8))
                g = f.create_group("membrane")
                for layer, values in sorted(self.membrane.items()):
                    h = g.create_group(f"{int(layer):04d}")
                    h.attrs["layer"] = int(layer)
                    h.create_dataset("neurons", data=np.asarray(self.membrane_neurons[layer], dtype=np.int64))
                    h.create_dataset("values", data=values)
                g = f.create_group("synaptic_events")
                for key, value in self.synaptic_events.items():
                    g.attrs[str(key)] = int(value)
        return path

    @classmethod
    def load(cls, path) -> "Recording":
        """Read and validate a recording file; errors name the file and the wrong field."""
        path = Path(path)
        f = open_hdf5(path, "recording file", RecordingFormatError)
        w = str(path)
        try:
            with f:
                return _read(f, w)
        except (KeyError, OSError, TypeError) as e:
            raise RecordingFormatError(f"{w}: corrupt or truncated recording "
                                       f"({type(e).__name__}: {e})") from None


def _fail(where, msg):
    raise RecordingFormatError(f"{where}: {msg}")


def _attr(g, name, where):
    if name not in g.attrs:
        _fail(where, f"missing attribute {name!r}")
    v = g.attrs[name]
    return v.decode() if isinstance(v, bytes) else v


def _array(g, name, where, kind, ndim=None, shape=None):
    import h5py

    if name not in g or not isinstance(g[name], h5py.Dataset):
        _fail(where, f"missing dataset {name!r}")
    a = np.asarray(g[name][()])
    w = f"{where}/{name}"
    if a.dtype.kind not in kind:
        _fail(w, f"unexpected dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        _fail(w, f"expected {ndim} dimensions, got shape {a.shape}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        _fail(w, f"expected shape {tuple(shape)}, got {a.shape}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        _fail(w, "non-finite values")
    return a


def _in_range(a, hi, where):
    if len(a) and (a.min() < 0 or a.max() >= hi):
        bad = a[(a < 0) | (a >= hi)][0]
        _fail(where, f"value {bad} outside [0, {hi})")


def _read(f, w) -> Recording:
    fmt = _attr(f, "format", w)
    if fmt != FORMAT_NAME:
        _fail(w + ".format", f"expected {FORMAT_NAME!r}, got {fmt!r}")
    version = int(_attr(f, "version", w))
    if version != FORMAT_VERSION:
        _fail(w + ".version", f"unsupported version {version}; this reader knows {FORMAT_VERSION}")
    T, B, n_out = (int(_attr(f, k, w)) for k in ("T", "batch_size", "n_outputs"))
    if T < 1 or B < 0 or n_out < 1:
        _fail(w, f"bad sizes T={T}, batch_size={B}, n_outputs={n_out}")
    readout = _array(f, "readout", w, "f", shape=(T, B, n_out))
    predictions = _array(f, "predictions", w, "iu", shape=(B,)).astype(np.int64)
    _in_range(predictions, n_out, w + "/predictions")
    tw = _array(f, "time_weights", w, "f", shape=(T,)) if "time_weights" in f else None
    for group in ("spikes", "membrane", "synaptic_events"):
        if group not in f:
            _fail(w, f"missing group {group!r}")
    spikes = {}
    for key in f["spikes"]:
        g = f["spikes"][key]
        where = f"{w}/spikes/{key}"
        layer, n = int(_attr(g, "layer", where)), int(_attr(g, "n_neurons", where))
        ternary = bool(_attr(g, "ternary", where))
        cols = {name: _array(g, name, where, "iu", ndim=1) for name in ("sample", "t", "neuron")}
        m = len(cols["t"])
        for name, hi in (("sample", B), ("t", T), ("neuron", n)):
            if len(cols[name]) != m:
                _fail(f"{where}/{name}", f"length {len(cols[name])} != {m}")
            _in_range(cols[name], hi, f"{where}/{name}")
            cols[name] = cols[name].astype(np.int32)
        value = None
        if ternary:
            value = _array(g, "value", where, "i", shape=(m,)).astype(np.int8)
            if np.any((value != 1) & (value != -1)):
                _fail(where + "/value", "ternary spike values must be +1 or -1")
        spikes[layer] = SpikeTrain(sample=cols["sample"], t=cols["t"], neuron=cols["neuron"],
                                   value=value, n_neurons=n)
    membrane, neurons = {}, {}
    for key in f["membrane"]:
        g = f["membrane"][key]
        where = f"{w}/membrane/{key}"
        layer = int(_attr(g, "layer", where))
        idx = _array(g, "neurons", where, "iu", ndim=1).astype(np.int64)
        if layer in spikes:
            _in_range(idx, spikes[layer].n_neurons, where + "/neurons")
        membrane[layer] = _array(g, "values", where, "f", shape=(T, B, len(idx)))
        neurons[layer] = idx
    syn = {}
    for key, value in f["synaptic_events"].attrs.items():
        if not np.issubdtype(np.asarray(value).dtype, np.integer) or int(value) < 0:
            _fail(f"{w}/synaptic_events.{key}", f"expected a count, got {value!r}")
        syn[str(key)] = int(value)
    return Recording(readout=readout, predictions=predictions, spikes=spikes, membrane=membrane,
                     membrane_neurons=neurons, synaptic_events=syn, time_weights=tw)
