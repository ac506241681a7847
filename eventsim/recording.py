"""What a simulation run returns, and its HDF5 file.

Vocabulary of spike and state monitors (Brian2, NIR): spikes are ``(sample, t, neuron)``
event lists per layer; membrane traces ``[T, B, k]`` for k chosen neurons.

HDF5 layout (``format = "snn-recording"``, ``version = 2``)::

    /                      attrs: format, version, T, batch_size, n_outputs
    /readout               [T, B, n_out] float   per-step readout values r_t
    /predictions           [B] int64             argmax_c sum_t a_t r_t[c]
    /time_weights          [T] float             (only if the model has them)
    /spikes/<layer:04d>    attrs: layer, n_neurons, ternary, shape (int64 [d], optional:
                           the layer's feature shape, e.g. [C, H, W]; absent in older files)
                           datasets sample, t, neuron (int32 [n]), value (int8 [n], ternary)
    /membrane/<layer:04d>  attrs: layer; datasets neurons (int64 [k]), values [T, B, k]
    /synaptic_events       attrs: one integer per projection ("layers[i]", "connections[k]")
                           and "total"

Every dataset carries the attribute ``sha256`` (digest of its contents, checked on
loading; version 1 files have none), strings are fixed-length and the file uses the HDF5
1.10 layout (checksummed headers), so damage raises RecordingFormatError naming the file
and dataset.  ``Recording.save`` refuses to replace a file of another kind, and an existing
recording unless ``overwrite=True``; it writes a temporary file in the target directory and
renames it, so an existing file is replaced only by a complete one; ``Recording.load`` checks every field and
names the first wrong one (no pickle anywhere).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snncore.fileio import (HDF5_LIBVER, atomic_output, check_output, open_hdf5, read_array,
                             string_attr, write_array)

FORMAT_NAME = "snn-recording"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no digests, earliest HDF5 layout


class RecordingFormatError(ValueError):
    """A recording file is malformed; the message names the field and value."""


@dataclass(frozen=True, eq=False)
class SpikeTrain:
    """Spikes of one layer: event ``k`` is neuron ``neuron[k]`` (canonical C-order index)
    of sample ``sample[k]`` firing at step ``t[k]`` (int32 arrays), sorted by (sample, t);
    within one step the neurons come in the simulator's update order (:meth:`sorted` also
    orders them).  ``value`` is +1/-1 (int8) for ternary layers, None for binary ones.

    ``n_neurons`` is the layer size; ``T`` (steps), ``batch_size`` (samples) and ``shape``
    (the layer's feature shape, ``prod(shape) == n_neurons``) are the extent of the run the
    train came from, so :meth:`to_dense` needs no arguments.  The simulator and
    :meth:`Recording.load` fill them in; None means unknown (a train built by hand, or
    ``shape`` in a recording file written before it was stored).
    """
    sample: np.ndarray
    t: np.ndarray
    neuron: np.ndarray
    value: np.ndarray | None
    n_neurons: int
    T: int | None = None
    batch_size: int | None = None
    shape: tuple | None = None

    def __post_init__(self):
        if self.shape is not None:
            shape = tuple(int(s) for s in self.shape)
            if int(np.prod(shape)) != int(self.n_neurons):
                raise ValueError(f"SpikeTrain.shape: {shape} holds {int(np.prod(shape))} neurons, "
                                 f"n_neurons is {self.n_neurons}")
            object.__setattr__(self, "shape", shape)

    def __len__(self) -> int:
        return len(self.t)

    @property
    def ternary(self) -> bool:
        return self.value is not None

    def sorted(self) -> "SpikeTrain":
        """A copy sorted by (sample, t, neuron)."""
        order = np.lexsort((self.neuron, self.t, self.sample))
        return dataclasses.replace(self, sample=self.sample[order], t=self.t[order],
                                   neuron=self.neuron[order],
                                   value=None if self.value is None else self.value[order])

    def to_dense(self, T: int | None = None, B: int | None = None,
                 n: int | None = None) -> np.ndarray:
        """Dense spikes ``[T, B, n]`` int8 (values 0/1, or -1/0/1 for ternary layers).

        ``T``, ``B`` (samples) and ``n`` (neurons) default to the train's own ``T``,
        ``batch_size`` and ``n_neurons``; given explicitly they must agree with the values
        the train knows (and be given when it does not know them).
        """
        T = self._extent("T", T, self.T)
        B = self._extent("B", B, self.batch_size, allow_zero=True)
        n = self._extent("n", n, self.n_neurons)
        out = np.zeros((T, B, n), dtype=np.int8)
        if len(self.t):
            if self.t.max() >= T or self.sample.max() >= B or self.neuron.max() >= n:
                raise ValueError(f"SpikeTrain.to_dense: spikes outside [T={T}, B={B}, n={n}]")
        out[self.t, self.sample, self.neuron] = 1 if self.value is None else self.value
        return out

    @staticmethod
    def _extent(name: str, given, known, allow_zero: bool = False) -> int:
        """``given`` checked against ``known`` (the train's own value, or None)."""
        if given is None:
            if known is None:
                raise ValueError(f"SpikeTrain.to_dense: {name} is not stored in this train; "
                                 f"pass {name}=...")
            return int(known)
        lo = 0 if allow_zero else 1
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or given < lo:
            raise ValueError(f"SpikeTrain.to_dense: {name} must be an integer >= {lo}, "
                             f"got {given!r}")
        if known is not None and int(given) != int(known):
            raise ValueError(f"SpikeTrain.to_dense: {name}={given} but the train has "
                             f"{name}={known}")
        return int(given)


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

    @classmethod
    def concatenate(cls, recordings) -> "Recording":
        """One Recording of several batches' recordings of the same model, in order.

        Sample ``b`` of the k-th recording becomes sample ``b + B_0 + ... + B_{k-1}``:
        readouts ``[T, B_k, n_out]`` and membranes ``[T, B_k, m]`` are joined along the batch
        axis, predictions and spike trains (sample ids offset) appended, synaptic-event counts
        and ``elapsed_s`` summed.  Raises ValueError naming the first field that differs
        between the recordings (T, outputs, spiking layers, recorded neurons, time weights).
        """
        recs = list(recordings)
        if not recs:
            raise ValueError("Recording.concatenate: no recordings given")
        if any(not isinstance(r, Recording) for r in recs):
            bad = next(type(r).__name__ for r in recs if not isinstance(r, Recording))
            raise TypeError(f"Recording.concatenate: expected Recordings, got a {bad}")
        first = recs[0]
        for k, r in enumerate(recs[1:], 1):
            _check_compatible(first, r, k)
        offsets = np.cumsum([0] + [r.batch_size for r in recs])
        spikes = {layer: _join_trains([r.spikes[layer] for r in recs], offsets)
                  for layer in first.spikes}
        membrane = {layer: np.concatenate([r.membrane[layer] for r in recs], axis=1)
                    for layer in first.membrane}
        syn: dict = {}
        for r in recs:
            for key, count in r.synaptic_events.items():
                syn[key] = syn.get(key, 0) + int(count)
        return cls(readout=np.concatenate([r.readout for r in recs], axis=1),
                   predictions=np.concatenate([np.asarray(r.predictions) for r in recs]),
                   spikes=spikes, membrane=membrane,
                   membrane_neurons={k: np.array(v, copy=True) for k, v in first.membrane_neurons.items()},
                   synaptic_events=syn, time_weights=first.time_weights,
                   elapsed_s=float(sum(r.elapsed_s for r in recs)))

    # -- HDF5 ------------------------------------------------------------------------------
    def save(self, path, overwrite: bool = False) -> Path:
        """Write the recording to ``path`` atomically (temporary file, then rename).

        An existing recording at ``path`` is replaced only when ``overwrite`` is True;
        anything else there (a model, a checkpoint, any other file) is never replaced
        (FileExistsError, see ``snncore.fileio.check_output``).
        """
        import h5py

        path = check_output(path, "recording", overwrite)
        with atomic_output(path) as tmp:
            with h5py.File(tmp, "w", libver=HDF5_LIBVER) as f:
                string_attr(f.attrs, "format", FORMAT_NAME)
                f.attrs["version"] = FORMAT_VERSION
                f.attrs["T"] = self.T
                f.attrs["batch_size"] = self.batch_size
                f.attrs["n_outputs"] = int(self.readout.shape[2])
                write_array(f, "readout", self.readout)
                write_array(f, "predictions", np.asarray(self.predictions, dtype=np.int64))
                if self.time_weights is not None:
                    write_array(f, "time_weights", self.time_weights)
                g = f.create_group("spikes")
                for layer, st in sorted(self.spikes.items()):
                    h = g.create_group(f"{int(layer):04d}")
                    h.attrs.update(layer=int(layer), n_neurons=int(st.n_neurons), ternary=st.ternary)
                    if st.shape is not None:
                        h.attrs["shape"] = np.asarray(st.shape, dtype=np.int64)
                    for name in ("sample", "t", "neuron"):
                        write_array(h, name, np.asarray(getattr(st, name), dtype=np.int32))
                    if st.value is not None:
                        write_array(h, "value", np.asarray(st.value, dtype=np.int8))
                g = f.create_group("membrane")
                for layer, values in sorted(self.membrane.items()):
                    h = g.create_group(f"{int(layer):04d}")
                    h.attrs["layer"] = int(layer)
                    write_array(h, "neurons", np.asarray(self.membrane_neurons[layer], dtype=np.int64))
                    write_array(h, "values", values)
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
        except RecordingFormatError:
            raise
        except (KeyError, OSError, TypeError, ValueError, RuntimeError) as e:  # h5py, damaged file
            raise RecordingFormatError(f"{w}: corrupt or truncated recording "
                                       f"({type(e).__name__}: {' '.join(str(e).split())})") from None


def _check_compatible(a: Recording, b: Recording, k: int) -> None:
    """Raise ValueError naming the first field in which recording ``k`` differs from the first."""
    def fail(field, x, y):
        raise ValueError(f"Recording.concatenate: recording {k} has {field} {y}, the first has {x}")

    if a.T != b.T:
        fail("T", a.T, b.T)
    if a.readout.shape[2] != b.readout.shape[2]:
        fail("n_outputs", a.readout.shape[2], b.readout.shape[2])
    if set(a.spikes) != set(b.spikes):
        fail("spiking layers", sorted(a.spikes), sorted(b.spikes))
    for layer, s in a.spikes.items():
        t = b.spikes[layer]
        if (s.n_neurons, s.ternary) != (t.n_neurons, t.ternary):
            fail(f"spikes[{layer}] (n_neurons, ternary)", (s.n_neurons, s.ternary),
                 (t.n_neurons, t.ternary))
    if set(a.membrane) != set(b.membrane):
        fail("membrane layers", sorted(a.membrane), sorted(b.membrane))
    for layer in a.membrane:
        x, y = (np.asarray(r.membrane_neurons[layer]) for r in (a, b))
        if not np.array_equal(x, y):
            fail(f"membrane_neurons[{layer}]", x.tolist(), y.tolist())
    ta, tb = a.time_weights, b.time_weights
    if (ta is None) != (tb is None) or (ta is not None and not np.array_equal(ta, tb)):
        fail("time_weights", ta, tb)


def _join_trains(trains: list, offsets: np.ndarray) -> SpikeTrain:
    """The spike trains of consecutive batches as one; sample ids offset by ``offsets[k]``."""
    sample = np.concatenate([np.asarray(s.sample, dtype=np.int64) + int(o)
                             for s, o in zip(trains, offsets)])
    if len(sample) and sample.max() > np.iinfo(np.int32).max:
        raise ValueError(f"Recording.concatenate: {int(offsets[-1])} samples overflow int32 sample ids")
    cat = lambda name: np.concatenate([np.asarray(getattr(s, name)) for s in trains])
    return SpikeTrain(sample=sample.astype(np.int32), t=cat("t").astype(np.int32),
                      neuron=cat("neuron").astype(np.int32),
                      value=None if trains[0].value is None else cat("value").astype(np.int8),
                      n_neurons=trains[0].n_neurons)


def _fail(where, msg):
    raise RecordingFormatError(f"{where}: {msg}")


def _attr(g, name, where):
    if name not in g.attrs:
        _fail(where, f"missing attribute {name!r}")
    v = g.attrs[name]
    return v.decode() if isinstance(v, bytes) else v


def _array(g, name, where, source, kind, ndim=None, shape=None):
    """Dataset ``name`` of group ``g`` checked against its digest, dtype kind, rank and
    shape; ``source = (file, version)`` being read (version >= 2 files carry digests)."""
    import h5py

    if name not in g or not isinstance(g[name], h5py.Dataset):
        _fail(where, f"missing dataset {name!r}")
    a = read_array(g[name], source[0], RecordingFormatError, require_digest=source[1] >= 2)
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


def _layer_shape(g, n: int, where: str):
    """The optional ``shape`` attribute of a spikes group (None in older files), checked."""
    if "shape" not in g.attrs:
        return None
    shape = np.asarray(g.attrs["shape"])
    if shape.ndim != 1 or shape.dtype.kind not in "iu" or len(shape) == 0 or shape.min() < 1:
        _fail(where + ".shape", f"expected positive integer sizes, got {shape.tolist()!r}")
    if int(np.prod(shape)) != n:
        _fail(where + ".shape", f"{tuple(shape.tolist())} holds {int(np.prod(shape))} neurons, "
              f"n_neurons is {n}")
    return tuple(int(s) for s in shape)


def _read(f, w) -> Recording:
    fmt = _attr(f, "format", w)
    if fmt != FORMAT_NAME:
        _fail(w + ".format", f"expected {FORMAT_NAME!r}, got {fmt!r}")
    version = int(_attr(f, "version", w))
    if version not in READABLE_VERSIONS:
        _fail(w + ".version", f"unsupported version {version}; this reader knows "
              f"{', '.join(map(str, READABLE_VERSIONS))}")
    src = (w, version)
    T, B, n_out = (int(_attr(f, k, w)) for k in ("T", "batch_size", "n_outputs"))
    if T < 1 or B < 0 or n_out < 1:
        _fail(w, f"bad sizes T={T}, batch_size={B}, n_outputs={n_out}")
    readout = _array(f, "readout", w, src, "f", shape=(T, B, n_out))
    predictions = _array(f, "predictions", w, src, "iu", shape=(B,)).astype(np.int64)
    _in_range(predictions, n_out, w + "/predictions")
    tw = _array(f, "time_weights", w, src, "f", shape=(T,)) if "time_weights" in f else None
    for group in ("spikes", "membrane", "synaptic_events"):
        if group not in f:
            _fail(w, f"missing group {group!r}")
    spikes = {}
    for key in f["spikes"]:
        g = f["spikes"][key]
        where = f"{w}/spikes/{key}"
        layer, n = int(_attr(g, "layer", where)), int(_attr(g, "n_neurons", where))
        ternary = bool(_attr(g, "ternary", where))
        cols = {name: _array(g, name, where, src, "iu", ndim=1) for name in ("sample", "t", "neuron")}
        m = len(cols["t"])
        for name, hi in (("sample", B), ("t", T), ("neuron", n)):
            if len(cols[name]) != m:
                _fail(f"{where}/{name}", f"length {len(cols[name])} != {m}")
            _in_range(cols[name], hi, f"{where}/{name}")
            cols[name] = cols[name].astype(np.int32)
        value = None
        if ternary:
            value = _array(g, "value", where, src, "i", shape=(m,)).astype(np.int8)
            if np.any((value != 1) & (value != -1)):
                _fail(where + "/value", "ternary spike values must be +1 or -1")
        spikes[layer] = SpikeTrain(sample=cols["sample"], t=cols["t"], neuron=cols["neuron"],
                                   value=value, n_neurons=n, T=T, batch_size=B,
                                   shape=_layer_shape(g, n, where))
    membrane, neurons = {}, {}
    for key in f["membrane"]:
        g = f["membrane"][key]
        where = f"{w}/membrane/{key}"
        layer = int(_attr(g, "layer", where))
        idx = _array(g, "neurons", where, src, "iu", ndim=1).astype(np.int64)
        if layer in spikes:
            _in_range(idx, spikes[layer].n_neurons, where + "/neurons")
        membrane[layer] = _array(g, "values", where, src, "f", shape=(T, B, len(idx)))
        neurons[layer] = idx
    syn = {}
    for key, value in f["synaptic_events"].attrs.items():
        if not np.issubdtype(np.asarray(value).dtype, np.integer) or int(value) < 0:
            _fail(f"{w}/synaptic_events.{key}", f"expected a count, got {value!r}")
        syn[str(key)] = int(value)
    return Recording(readout=readout, predictions=predictions, spikes=spikes, membrane=membrane,
                     membrane_neurons=neurons, synaptic_events=syn, time_weights=tw)
