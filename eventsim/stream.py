"""The batch-1 warm path: one sample per call, with the fixed cost per call cut down.

``Simulator.run`` on one sample spends most of a small sample's time outside the kernel:
checking the EventBatch (``validate``: a dozen NumPy calls), building the kernel's argument
tuples and the power table, Numba's dispatch (it types every argument of the call, 30
arrays in nested tuples), and the Recording (spikes regrouped per layer, membrane copies,
event counts).  A :class:`Stream` does that work once::

    sim = eventsim.Simulator(model, n_threads=1)
    stream = sim.stream(T=32)                      # tables, options, kernel entry: once
    for times, indices in samples:
        rec = stream.run((times, indices))         # or an EventBatch of 1 sample, or dense
        rec.predictions[0], rec.readout            # computed at once
        rec.spikes                                 # regrouped on first access

Results are bit-identical to ``Simulator.run`` on the same sample (the same kernel on the same
arrays; ``tests/eventsim/test_stream.py``).  Every call returns new arrays (nothing of one
result is overwritten by the next call).

Input checks: ``check=True`` (default) checks the events as ``EventBatch.validate`` does
(one compiled pass) and raises the same errors.  ``check=False`` is for inputs the caller
vouches for (made by ``from_dense``, ``rate_code``, a sensor driver that guarantees them): only
the cheap guard runs (types, dtypes, shapes, lengths, the step count), not the per-event
range and order checks; an event outside ``[0, T)``, an address outside the input or times out
of order then gives undefined results (possibly a crash): the kernel indexes without bounds
checks.
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit

from . import kernels as K
from . import loop
from . import tables as TB
from .inputs import EventBatch
from .recording import Recording
from .simulator import dense_input_as_events

_I64 = np.dtype(np.int64)


@njit(cache=True)
def dense_spikes(flat):
    """Events of one sample's dense input ``flat [T, n]``: ``(code, t, i)`` in (t, i) order,
    code 0 when every entry is 0 or 1, 1 when some entry is another value (no events then).
    Both passes are branch-free (a mispredicted branch per spike would cost more)."""
    T, n = flat.shape
    cnt = 0
    ok = True
    for t in range(T):
        for j in range(n):
            v = flat[t, j]
            ok &= (v == 0) | (v == 1)
            cnt += v != 0
    if not ok:
        return 1, np.empty(0, np.int64), np.empty(0, np.int64)
    ts = np.empty(cnt + 1, np.int64)      # + 1: every entry is written, kept if non-zero
    js = np.empty(cnt + 1, np.int64)
    k = 0
    for t in range(T):
        for j in range(n):
            ts[k] = t
            js[k] = j
            k += flat[t, j] != 0
    return 0, ts[:cnt], js[:cnt]


class StreamRecording(Recording):
    """A :class:`~eventsim.recording.Recording` of one :meth:`Stream.run`: ``readout`` and
    ``predictions`` are computed at once; ``spikes``, ``membrane`` and ``synaptic_events``
    when first read (then kept).  Otherwise a Recording like any other (``save``,
    ``Recording.concatenate``)."""

    def __init__(self, stream, readout, predictions, raw, mem, elapsed):  # noqa: D107
        # no dataclass __init__: the lazy fields are properties below
        self.readout = readout
        self.predictions = predictions
        self.membrane_neurons = dict(stream.sim.membrane_neurons)
        self.time_weights = stream.sim.network.time_weights
        self.elapsed_s = elapsed
        self._stream, self._raw, self._mem = stream, raw, mem
        self._spikes = self._membrane = self._syn = None

    @property
    def spikes(self) -> dict:
        if self._spikes is None:
            self._spikes = self._stream._spikes(self._raw)
        return self._spikes

    @spikes.setter
    def spikes(self, value):
        self._spikes = value

    @property
    def membrane(self) -> dict:
        if self._membrane is None:
            self._membrane = {layer: np.ascontiguousarray(self._mem[:, :, c0:c1])
                              for layer, (c0, c1) in self._stream.sim._mem_cols.items()}
        return self._membrane

    @membrane.setter
    def membrane(self, value):
        self._membrane = value

    @property
    def synaptic_events(self) -> dict:
        if self._syn is None:
            from .simulator import event_counts
            self._syn = event_counts(self._stream.sim.network, self._raw[3])
        return self._syn

    @synaptic_events.setter
    def synaptic_events(self, value):
        self._syn = value


class Stream:
    """One sample per :meth:`run`, for a :class:`~eventsim.Simulator` (see the module
    docstring).  Made by :meth:`Simulator.stream`; the simulator's options (schedule,
    constant drive, leak, cuba, recorded membranes) apply.  Threads may share a Stream: it
    keeps no state between calls (the kernel allocates its own per call and releases the
    GIL; with ``profile=True`` the simulator's ``last_profile`` is the last call's).

    Args:
        sim: the Simulator.
        T: steps of every sample (default: the model's T).
        check: default of :meth:`run`'s ``check``.
    """

    def __init__(self, sim, T: int | None = None, check: bool = True):
        from .simulator import CONSTANT_DRIVE_MODES, CUBA_MODES, LEAK_MODES, _check_T
        net = sim.network
        self.sim = sim
        self.T = _check_T(net.model.T if T is None else T)
        if not isinstance(check, (bool, np.bool_)):
            raise ValueError(f"Simulator.stream: check must be True or False, got {check!r}")
        self.check = bool(check)
        tw = net.time_weights
        if tw is not None and len(tw) != self.T:
            raise ValueError(f"Simulator.stream: the model's time_weights have {len(tw)} steps, "
                             f"T={self.T}")
        T = self.T
        self._dt = net.dtype
        self._n_in = int(np.prod(net.input_shape))
        self._tables = TB.Tables(sim._pops, net.spaces, net.stages, net.edges, net.edge_stage,
                                 net.bundles, net.sizes, net.wf, net.wi, net.const_all,
                                 net.const_conn, net.nbeta, net.ntheta, net.power_table(T),
                                 sim._rec_idx, net.pop_perm[-1], net.nalpha)
        self._opts = TB.Options(CONSTANT_DRIVE_MODES[sim.constant_drive], LEAK_MODES[sim.leak],
                                K.SCHEDULE_LAYER if sim.schedule == "layer" else K.SCHEDULE_TIME,
                                sim.profile, CUBA_MODES[sim.cuba])
        layer_major = (self._opts.schedule == K.SCHEDULE_LAYER and net.bundles.shape[0] == 0
                       and net.edges.shape[0] == sim._pops.shape[0])
        self._driver = loop.run_layer_major if layer_major else loop.run_time_major
        self._entry = None                       # the compiled entry, found on the first call
        self._nodrive = np.zeros((1, 1, 1), dtype=self._dt)
        self._a = (tw if tw is not None else np.ones(T, dtype=self._dt)).reshape(1, T)
        self._T_scalar = self._dt.type(T)
        self._inv = None if sim._input_identity else net.input_inv
        self._rout = (T, 1, net.n_outputs)
        self._mshape = (T, 1, sim._n_rec)

    # -- inputs ----------------------------------------------------------------------------
    def _arrays(self, x):
        """``(times, indices, values or None)`` of one sample, with the cheap guard."""
        if isinstance(x, EventBatch):
            if x.batch_size != 1:
                raise ValueError(f"Stream.run: expected one sample, the EventBatch has "
                                 f"{x.batch_size}")
            if tuple(int(s) for s in x.input_shape) != self.sim.network.input_shape:
                raise ValueError(f"EventBatch.input_shape: {tuple(x.input_shape)} does not match "
                                 f"the model's input shape {self.sim.network.input_shape}")
            if int(x.T) != self.T:
                raise ValueError(f"Stream.run: the EventBatch has T={x.T}, the stream T={self.T}")
            return x.times, x.indices, x.values
        if isinstance(x, tuple):
            if len(x) not in (2, 3):
                raise ValueError(f"Stream.run: expected (times, indices) or (times, indices, "
                                 f"values), got a tuple of {len(x)}")
            return x[0], x[1], (x[2] if len(x) == 3 else None)
        raise TypeError(f"Stream.run: expected an EventBatch of one sample, a tuple (times, "
                        f"indices[, values]) or a dense array, got {type(x).__name__}")

    def _guard(self, times, indices, values):
        """Types, dtypes, shapes (clear errors); the arrays as the kernel takes them."""
        for name, a in (("times", times), ("indices", indices)):
            if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "iu":
                raise ValueError(f"Stream.run: {name} must be a 1-D integer array, got "
                                 f"{_describe(a)}")
        n = times.shape[0]
        if indices.shape[0] != n:
            raise ValueError(f"Stream.run: {n} times but {indices.shape[0]} indices")
        if values is None:
            values = np.ones(n, self._dt)
        else:
            if not isinstance(values, np.ndarray) or values.ndim != 1 or values.dtype.kind != "f":
                raise ValueError(f"Stream.run: values must be a 1-D float array, got "
                                 f"{_describe(values)}")
            if values.shape[0] != n:
                raise ValueError(f"Stream.run: {n} times but {values.shape[0]} values")
        return (times if times.dtype == _I64 and times.flags.c_contiguous
                else np.ascontiguousarray(times, dtype=_I64),
                indices if indices.dtype == _I64 and indices.flags.c_contiguous
                else np.ascontiguousarray(indices, dtype=_I64),
                values)

    def _checked(self, ev_t, ev_i, values):
        """The per-event contract (``EventBatch.validate``), the network's input rules and
        ``values`` in the network's dtype."""
        net = self.sim.network
        n = ev_t.shape[0]
        if n:
            v = values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)
            code, _ = K.check_events(ev_t, ev_i, v, np.array([0, n], np.int64), self.T,
                                     self._n_in)
            if code != K.EV_OK:       # the EventBatch's own message
                EventBatch(times=ev_t, indices=ev_i, values=values,
                           sample_ptr=np.array([0, n], np.int64), T=self.T,
                           input_shape=net.input_shape).validate()
            if net.input_event_problem:
                raise ValueError(f"input events cannot be simulated: {net.input_event_problem}")
        vals = np.ascontiguousarray(values, dtype=self._dt)
        if vals.dtype.itemsize < values.dtype.itemsize and not np.all(np.isfinite(vals)):
            raise ValueError(f"EventBatch.values: not representable as {net.dtype} (overflow)")
        if net.input_needs_binary and n and np.any(vals != 1):
            bad = vals[vals != 1][0]
            raise ValueError(f"EventBatch.values: value {bad}: the first projection is a max "
                             "pooling, which needs binary (value 1) input spikes")
        return vals

    def _dense(self, x, check):
        """A dense sample ``[T, 1, *input_shape]`` or ``[T, *input_shape]``: its events when
        ``Simulator.run`` would deliver it as events (``simulator.dense_input_as_events``),
        else None (an analog current)."""
        net = self.sim.network
        if x.dtype.kind not in "biuf":
            raise ValueError(f"input x: dtype {x.dtype} is not a real numeric type")
        shape = net.input_shape
        if x.shape == (self.T, 1) + shape:
            flat = x.reshape(self.T, self._n_in)
        elif x.shape == (self.T,) + shape:
            flat = x.reshape(self.T, self._n_in)
        else:
            raise ValueError(f"Stream.run: expected a dense sample of shape [T, 1, "
                             f"{', '.join(map(str, shape))}] or [T, {', '.join(map(str, shape))}]"
                             f" with T={self.T}, got {x.shape}")
        mode = self.sim.dense_input
        if mode == "current":
            return None
        if net.encoding == "direct" or mode == "events":
            if check and x.dtype.kind == "f" and not np.all(np.isfinite(flat)):
                return None               # Simulator.run raises the error
            static = self.T == 1 or bool(np.all(flat == flat[:1]))
            if not dense_input_as_events(net, flat, static, mode):
                return None
        if x.dtype.kind == "b":
            flat = flat.view(np.uint8)
        if check and x.dtype.kind == "f" and not np.all(np.isfinite(flat)):
            return None                   # Simulator.run raises the error
        code, ts, js = dense_spikes(np.ascontiguousarray(flat))
        if code:
            return None                   # not binary: an analog current
        return ts, js

    # -- run -------------------------------------------------------------------------------
    def run(self, x, check: bool | None = None) -> Recording:
        """Simulate one sample; returns a :class:`StreamRecording` (``B = 1``).

        ``x``: an :class:`~eventsim.inputs.EventBatch` of one sample (``T`` equal to the
        stream's), a tuple ``(times, indices)`` or ``(times, indices, values)`` of 1-D arrays
        (one sample's events, sorted by time; ``indices`` flat C-order addresses into the
        input shape; values default to 1), or a dense sample ``[T, 1, *input_shape]`` /
        ``[T, *input_shape]`` (events when ``Simulator.run`` would deliver it as events, see
        ``Simulator(dense_input=...)``; otherwise an analog current: ``Simulator.run`` runs
        it, without the warm path).
        ``check``: None (the stream's default), True (every event checked) or False (the
        caller vouches for the events; see the module docstring).
        """
        check = self.check if check is None else check
        if isinstance(x, np.ndarray):
            ev = self._dense(x, check)
            if ev is None:
                return self.sim.run(x if x.ndim == 2 + len(self.sim.network.input_shape)
                                    else x[:, None], T=self.T)
            ev_t, ev_i = ev
            if self.sim.network.input_event_problem and ev_t.shape[0]:
                raise ValueError("input events cannot be simulated: "
                                 f"{self.sim.network.input_event_problem}")
            vals = np.ones(ev_t.shape[0], self._dt)
        else:
            times, indices, values = self._arrays(x)
            ev_t, ev_i, values = self._guard(times, indices, values)
            if check:
                vals = self._checked(ev_t, ev_i, values)
            else:
                if self.sim.network.input_event_problem and ev_t.shape[0]:
                    raise ValueError("input events cannot be simulated: "
                                     f"{self.sim.network.input_event_problem}")
                vals = (values if values.dtype == self._dt and values.flags.c_contiguous
                        else np.ascontiguousarray(values, dtype=self._dt))
        if self._inv is not None:
            ev_i = self._inv[ev_i]
        return self._run_events(ev_t, ev_i, vals)

    def _run_events(self, ev_t, ev_i, vals):
        n = ev_t.shape[0]
        ptr = np.array([0, n], np.int64)
        inputs = TB.Inputs(ev_t, ev_i, vals, ptr, self._nodrive, K.DRIVE_NONE)
        readout = np.zeros(self._rout, dtype=self._dt)
        mem = np.zeros(self._mshape, dtype=self._dt)
        start = time.perf_counter()
        entry = self._entry
        if entry is not None:
            raw = entry(self._tables, inputs, self.T, np.int64(0), np.int64(1), self._opts,
                        readout, mem)
        else:
            raw = self._first_call(inputs, readout, mem)
        elapsed = time.perf_counter() - start
        if self.sim.profile:
            from .simulator import profile_rows
            self.sim.last_profile = profile_rows(raw[4], self.sim.network)
        # Simulator._recording's decode, for B = 1 (the same dot of the same arrays)
        decoded = (np.dot(self._a, readout.reshape(self.T, -1)).reshape(1, -1)
                   / self._T_scalar)
        predictions = decoded.argmax(axis=1).astype(np.int64)
        return StreamRecording(self, readout, predictions, raw, mem, elapsed)

    def _first_call(self, inputs, readout, mem):
        """Call through the dispatcher (compiling or loading the kernel), then keep the
        compiled entry of exactly these argument types: later calls skip Numba's typing of
        the 30 arrays (their types never change: the tables are fixed, the event arrays are
        always C-contiguous int64 / the network's dtype)."""
        args = (self._tables, inputs, self.T, np.int64(0), np.int64(1), self._opts, readout, mem)
        raw = self._driver(*args)
        try:
            sig = tuple(self._driver.typeof_pyval(a) for a in args)
            self._entry = self._driver.overloads[sig].entry_point
        except (KeyError, AttributeError):   # no such API in this Numba: keep dispatching
            self._entry = self._driver
        return raw

    def _spikes(self, raw) -> dict:
        """``Simulator._recording``'s spike trains of one sample."""
        from .simulator import spike_trains
        return spike_trains(self.sim.network, *raw[:3], self.T, 1,
                            self.sim.schedule == "layer")


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__
