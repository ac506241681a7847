"""The event-driven simulator: validates inputs, runs the Numba event loop, builds a Recording.

``Simulator(model).run(x)`` with ``x`` either

- an :class:`~eventsim.inputs.EventBatch` (events delivered through the first projections),
- a dense array ``[T, B, *input_shape]``, delivered as events or as an analog current by
  ``dense_input`` (below).

Options:

``dense_input``  how a dense input array goes in: ``"events"`` (every non-zero entry an
    input event carrying its value, delivered through the first projections),
    ``"current"`` (the first projections applied as dense products, once if ``x`` is the
    same at every step, and the result drives the first population every step), or
    ``"auto"`` (default; :func:`dense_input_as_events`): binary input (every entry 0 or 1)
    goes in as events to a model that expects spikes (encoding not ``"direct"``), and to a
    ``"direct"`` model when that is faster: the input changes over time, and its first
    projection is not a Dense or at most 1/5 of the entries are 1 (measured crossover for a
    784-800 Dense: ~20 % at batch 64, 30-40 % at batch 1; conv first layers were faster as
    events at every density up to 50 %).  Graded (non-binary) input is a current.  With real float weights the two paths
    may differ in the last bit of a membrane (the dense product and the event order add the
    same terms in different orders), and so, rarely, in a spike; with dyadic weights they
    are bit-identical.  ``Recording.synaptic_events`` is the same on both paths: the input
    projections count one event per (non-zero input entry, synapse) per step
    (``eventsim.synops``).
``constant_drive``  how populations with a constant input (biases, static analog input) are
    run: ``"step"`` updates every neuron of such a population at every step (a tight,
    vectorised loop); ``"predict"`` leaves its neurons lazy and queues each neuron's next
    threshold crossing, found by stepping that neuron's own recurrence with the same float
    operations (after a hard reset the trajectory repeats, so the period is computed once per
    neuron).  Both give identical results.  ``"step"`` is the default: measured single-thread
    kernel time per Fashion-MNIST test image (trained models, direct input, all layers with
    biases from folded BatchNorm):

    ============================================  ==========  ==========
    model                                         step        predict
    ============================================  ==========  ==========
    MLP 784-800-10, T=4 (12k events/image)        26 us       161 us
    MLP 784-400-400-10, T=8 (586k events/image)   106 us      295 us
    CSNN conv32-pool-conv64-pool-fc, T=4 (1.9M)   884 us      2894 us
    ============================================  ==========  ==========

    With biases every neuron of those layers is driven at every step, so prediction only
    adds work (a prediction after every event-driven update); it pays off for populations
    whose only input is constant and whose crossings are rare compared with T.
``leak``  how a lazy neuron catches up on ``k`` steps without input: ``"repeat"`` multiplies
    ``k`` times by ``beta`` (the dense engine's operations: exact, the default); ``"power"``
    multiplies once by ``beta**k`` rounded from float64 (can differ in the last bit).  On the
    models above both take the same time (every population is updated every step); on a
    lazy network (500 LIF, sparse input, T=300, 2 % firing) "power" was 16 % faster with the
    same spikes.  Recorded neurons are always stepped exactly, and so are the neurons of
    layers with per-neuron beta (model format 3; there is no per-layer power table for them).

Lazy populations without constant input switch, step by step, to one vectorised pass over
all their neurons when enough of them are touched (``eventsim.network.FULL_PASS_DIV``: from
1/64 of the neurons with ``leak="repeat"`` and 0 < beta < 1, from 1/20 otherwise); the
neurons behind first catch up as above, and the pass steps the others exactly as the
dense engine does.  With ``"repeat"`` this changes no bit; with ``"power"`` neurons covered
by full passes follow the exact recurrence.  A population's spikes of one step are always
listed (and added up by later projections) in ascending neuron order.

``cuba``  how current-based populations (model format 4, ``alpha``) without constant input
    are updated: ``"step"`` (default) updates every neuron at every step (one vectorised
    loop, about 1 ns a neuron); ``"lazy"`` updates only touched neurons and those due to
    cross threshold: a neuron catches up on the steps it missed by repeating its own
    recurrence (``i = alpha i + 0``, ``u = beta v + i``: the dense engine's operations), and
    after each update steps that recurrence ahead to its next crossing without input, which
    is queued, unless a bound (rounding included) proves that none can come.  Same bits
    either way.  Populations with constant input (biases, analog drive), ternary spikes or
    ``v_min >= theta`` always use "step".  Lazy pays off only for input sparse in time and
    in neurons: ``benchmarks/bench_cuba_lazy.py`` (4000 CUBA neurons behind a 0.5 % sparse
    projection, T = 100) measured 0.29x the every-step time at 0.01 % input firing, 0.71x
    at 0.05 %, 1.5x at 0.2 % and 1.05x at 2 %; on a dense 784-1000-1000 MLP 1.0x to 1.8x
    (every input event touches a whole layer, and the predictions cost more than the
    steps they save).
``schedule``  the order in which a sample's (population, step) updates are run:
    ``"time"`` steps the whole network one step at a time (the event loop every network
    needs: delayed and recurrent connections deliver into later steps); ``"layer"`` runs one
    population over all T steps, then the next, which a feed-forward network allows (each
    population's input at step t is its source's spikes of step t).  Layer by layer, an edge
    that is one dense projection is delivered source-major (``kernels.dense_window``): a
    source row is read once and added to every step its neuron spiked at, instead of being
    fetched again at each of those steps.  Every (step, target) still sums its terms in the
    same order, so both schedules give the same bits.  ``"auto"`` (default) is ``"layer"``
    for feed-forward networks, else ``"time"``.

Samples are independent: batches are split into chunks that run on ``n_threads`` threads
(the kernel releases the GIL); nothing is reordered within a sample.

What "the same results as the dense engine" means
-------------------------------------------------
Both engines do the same float operations per neuron (``u = beta * v + I``, the threshold
test ``u >= theta``, the reset) in the network's dtype; they differ only in the order in
which a neuron's input current is summed: the simulator adds the rows of the neurons that
spiked, in ascending source order, where the dense engine's matrix products (BLAS) use
their own blocked order.  Hence:

- **Bit-exact** (identical spikes, membranes, readouts and predictions) when every sum is
  exact in the dtype, whatever its order: the tests prove it on random networks whose
  weights, biases and input values are dyadic rationals with few bits (multiples of 2**-8
  and 1/16), decays beta in {1, 0.5, 0.25, 0.75}, thresholds and reset values in
  {0.5, 0.75, 1} and {0, -0.25, 0.125}, average pools of 1/4 (and 1/3 windows), with every
  layer kind, both resets, v_min, ternary spikes, spike, analog and event input, delayed
  connections, under both ``constant_drive`` modes, threads and chunks.  The two schedules
  give the same bits as each other on float weights too (tested), and every kernel equals
  its plain NumPy twin bit for bit on general float32/float64 values.
- **Otherwise** (float weights, e.g. trained models) an input current can differ from the
  dense engine's in its last bits, and a readout by float round-off: on the trained
  Fashion-MNIST models of ``tests/data`` (1000 test images, direct input) up to 4.3e-6 in
  86 % of the readout entries (MLP) and 1.2e-5 in 90 % (conv), with no flipped spike.  A
  membrane within that round-off of the threshold can spike in one engine and not in the
  other; the flipped spike changes the neuron's later steps (its reset) and every later
  layer: the MLP with rate-coded input and T = 32 flipped 0 to 6 of 9.8M hidden spikes per
  1000 images (by encoder seed), which changed readouts by up to 0.25.  Neither float32
  result is "right" then: the float64 value is the reference.
- ``eventsim.load(model, dtype=np.float64)`` runs the simulation in float64 (weights cast
  exactly); on those cases it agrees with the float64 dense engine and the float64 reference.
  ``eventsim simulate --compare-dense`` reports the largest readout difference and the
  flipped spikes per layer.

The first run of a dtype compiles the Numba kernels (tens of seconds; cached on disk
afterwards, ``cache=True``); :func:`warmup` compiles every variant ahead, and
``Recording.elapsed_s`` of a first run includes that compilation.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from snncore import modelfile as mf
from snncore.threads import get_num_threads

from . import kernels as K
from . import loop
from . import tables as TB
from .inputs import EventBatch, from_dense
from .network import CompiledNetwork, dense_chain, load
from .partition import plan, plan_problem, run_partitioned
from .recording import Recording, SpikeTrain
from .synops import input_chain_counts

CONSTANT_DRIVE_MODES = {"step": K.MODE_STEP, "predict": K.MODE_PREDICT}
LEAK_MODES = {"repeat": K.LEAK_REPEAT, "power": K.LEAK_POWER}
SCHEDULES = ("auto", "time", "layer")
PARTITIONS = ("auto", "pipeline", "targets")
CUBA_MODES = {"lazy": K.CUBA_LAZY, "step": K.CUBA_STEP}
DENSE_INPUT_MODES = ("auto", "events", "current")
# "auto", a model whose first projection is a Dense: spikes go in as events when at most this
# fraction of the input's entries is non-zero (benchmarks/bench_dense_input.py, FC 784-800-10
# at T = 32: events faster than the current below ~20 % at batch 64 and ~30-40 % at batch 1;
# conv first projections: events were faster at every density measured, up to 50 %)
EVENT_INPUT_MAX_DENSITY_DENSE = 0.2


def dense_input_as_events(net, arr: np.ndarray, static: bool, mode: str) -> bool:
    """Whether a dense input ``arr [T, B, *input_shape]`` goes in as events (True) or as an
    analog current (False), for ``Simulator(dense_input=mode)`` (see the module docstring).

    ``"events"``: always (every non-zero entry an event carrying its value).
    ``"current"``: never.  ``"auto"``: binary input (every entry 0 or 1), and any integer
    array (spike counts), as events when the model's encoding is not ``"direct"`` (spikes are
    what it expects); for a ``"direct"``
    model when that is faster: the input changes over time (``static`` False: a static
    input's current is computed once), input events are possible (no max pooling of
    non-binary input), and either the first projection is not a Dense or at most
    ``EVENT_INPUT_MAX_DENSITY_DENSE`` of the entries are non-zero.  Anything else (graded
    values) is an analog current."""
    if mode == "current":
        return False
    if mode == "events":
        return True
    direct = net.encoding == "direct"
    if direct and (static or net.input_event_problem):
        return False                      # (decided before the pass over the entries)
    if not direct and arr.dtype.kind in "biu":
        return True                       # spikes or spike counts, as the model expects
    if not (arr.dtype.kind == "b" or bool(np.all((arr == 0) | (arr == 1)))):
        return False
    if not direct:
        return True
    first = next((r for r in net.input_chain if not isinstance(r, mf.Flatten)), None)
    if not isinstance(first, mf.Dense):
        return True
    return np.count_nonzero(arr) <= EVENT_INPUT_MAX_DENSITY_DENSE * arr.size


class Simulator:
    """Run a compiled network event by event.

    Args:
        model: anything :func:`eventsim.load` accepts (path, Model, CompiledNetwork); the
            simulation computes in the compiled network's dtype (float64 accumulation:
            ``Simulator(eventsim.load(path, dtype=np.float64))``).
        record_membrane: ``{layer index: neuron indices (canonical, C-order) or "all"}`` of
            spiking layers whose membrane before reset ``u_t`` is recorded at every step.
        record_membrane_keys: what the keys of ``record_membrane`` count: ``"model"``
            (default) model-file layer indices, as ``eventsim info`` lists them;
            ``"sequential"`` positions in the training ``Sequential`` the model was exported
            from (``net.layers[i]``; BatchNorm and Dropout have no model layer, so the two
            differ), read from the model file's layer origins.  Either way the Recording is
            keyed by model layer index; ``Simulator.membrane_layers`` maps each given key to
            it.
        constant_drive: "step" (default) or "predict" (see the module docstring).
        leak: "repeat" (default, exact) or "power".
        n_threads: threads across samples (default: ``eventsim.get_num_threads()``, Numba's
            thread count: ``NUMBA_NUM_THREADS``, all cores unless set, or ``set_num_threads``).
        chunk_size: samples per kernel call (bounds the memory of analog input currents).
        schedule: "auto" (default), "time" or "layer" (see the module docstring).
        cuba: "step" (default) or "lazy": how current-based populations without constant
            input are updated (see the module docstring).
        profile: count CPU cycles, events and neuron updates per phase of the event loop in
            every run (no cost when False); :attr:`last_profile` then holds the last run's
            counters (:func:`profile_rows`).
        threads_per_sample: 1 (default) or 2 (or more with ``partition="targets"``): with 2, each sample of a network with sparse
            delayed connections of delay >= 2 runs on two threads (the pipelined schedule,
            ``eventsim.loop.run_pipelined``: a helper thread delivers those connections' long
            delays one step behind the main thread), bit-identical to one thread; other
            networks run on one.  Times ``n_threads`` threads in all; not with ``profile``.
        partition: ``"auto"`` (default), ``"pipeline"`` or ``"targets"``: how
            ``threads_per_sample`` threads share a sample.  ``"auto"``: with one thread per
            sample, ``"targets"`` on the networks it takes (its one-range kernel: the same
            bits, faster) and the default loop elsewhere or for analog input; with two,
            ``"pipeline"``.  ``"targets"`` (``eventsim.partition``) splits the
            first population into contiguous neuron ranges, one per thread, each thread
            delivering every spike to its own targets and updating its own neurons, a
            barrier per step; bit-identical to one thread, also with
            ``threads_per_sample=1`` (a leaner kernel for the same networks).  Only for
            networks whose first population has no constant input, whose input edge is one
            sparse projection and whose delayed connections are all sparse from that
            population to itself, with event input and ``leak="repeat"``; anything else is
            refused with the reason.
    """

    def __init__(self, model, record_membrane=None, constant_drive: str = "step",
                 leak: str = "repeat", n_threads: int | None = None, chunk_size: int = 256,
                 schedule: str = "auto", record_membrane_keys: str = "model",
                 profile: bool = False, cuba: str = "step", dense_input: str = "auto",
                 threads_per_sample: int = 1, partition: str = "auto"):
        self.network: CompiledNetwork = load(model)
        if dense_input not in DENSE_INPUT_MODES:
            raise ValueError(f"Simulator.dense_input: must be one of {list(DENSE_INPUT_MODES)}, "
                             f"got {dense_input!r}")
        self.dense_input = dense_input
        if partition not in PARTITIONS:
            raise ValueError(f"Simulator.partition: must be one of {list(PARTITIONS)}, got "
                             f"{partition!r}")
        if (not isinstance(threads_per_sample, (int, np.integer))
                or isinstance(threads_per_sample, bool) or threads_per_sample < 1
                or (threads_per_sample > 2 and partition != "targets")):
            raise ValueError(f"Simulator.threads_per_sample: must be 1 or 2 (any positive int "
                             f"with partition='targets'), got {threads_per_sample!r}")
        if threads_per_sample == 2 and profile:
            raise ValueError("Simulator.threads_per_sample: 2 cannot be combined with "
                             "profile=True (the profile counts one thread)")
        self.threads_per_sample = int(threads_per_sample)
        self.partition = partition
        self._part_tables = None
        if not isinstance(profile, (bool, np.bool_)):
            raise ValueError(f"Simulator.profile: must be True or False, got {profile!r}")
        self.profile = bool(profile)
        self.last_profile = None
        if constant_drive not in CONSTANT_DRIVE_MODES:
            raise ValueError(f"Simulator.constant_drive: must be one of "
                             f"{sorted(CONSTANT_DRIVE_MODES)}, got {constant_drive!r}")
        if leak not in LEAK_MODES:
            raise ValueError(f"Simulator.leak: must be one of {sorted(LEAK_MODES)}, got {leak!r}")
        if cuba not in CUBA_MODES:
            raise ValueError(f"Simulator.cuba: must be one of {sorted(CUBA_MODES)}, got {cuba!r}")
        self.cuba = cuba
        if schedule not in SCHEDULES:
            raise ValueError(f"Simulator.schedule: must be one of {list(SCHEDULES)}, got "
                             f"{schedule!r}")
        feed_forward = (len(self.network.edges) == len(self.network.pops)
                        and len(self.network.bundles) == 0)
        if schedule == "layer" and not feed_forward:
            raise ValueError("Simulator.schedule: 'layer' needs a feed-forward network; this model "
                             f"has {len(self.network.model.connections)} delayed connection(s) "
                             "(use 'time' or 'auto')")
        self.schedule = "layer" if schedule == "auto" and feed_forward else (
            "time" if schedule == "auto" else schedule)
        if n_threads is None:
            n_threads = get_num_threads()      # the package-wide policy (snncore.threads)
        if not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
            raise ValueError(f"Simulator.n_threads: must be a positive int, got {n_threads!r}")
        if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"Simulator.chunk_size: must be a positive int, got {chunk_size!r}")
        self.constant_drive, self.leak = constant_drive, leak
        if partition == "targets":
            if profile:
                raise ValueError("Simulator.partition: 'targets' cannot be combined with "
                                 "profile=True")
            self._part_tables = plan(self.network, leak, self.threads_per_sample)
        elif partition == "auto":
            # one thread per sample on an eligible network: the partitioned kernel with one
            # range (the same bits as the default loop, about twice as fast on the random
            # recurrent benchmark); analog input then falls back to the default loop
            if (self.threads_per_sample == 1 and not self.profile
                    and plan_problem(self.network, leak) is None):
                self._part_tables = plan(self.network, leak, 1)
            self.partition = "targets" if self._part_tables is not None else "pipeline"
        self._part_fallback = partition == "auto"
        inv = self.network.input_inv
        self._input_identity = bool(np.array_equal(inv, np.arange(len(inv))))
        self.n_threads, self.chunk_size = int(n_threads), int(chunk_size)
        layers = self._membrane_layers(record_membrane or {}, record_membrane_keys)
        self._setup_recording({layers[k]: which for k, which in (record_membrane or {}).items()},
                              {v: k for k, v in layers.items()})
        #: ``{key given in record_membrane: model layer index}`` (the Recording's keys)
        self.membrane_layers = {k: int(v) for k, v in layers.items()}

    def _membrane_layers(self, spec, keys: str) -> dict:
        """``{key of record_membrane: model layer index}`` (checked by _setup_recording)."""
        if not isinstance(spec, dict):
            raise ValueError(f"record_membrane: expected a dict {{layer: indices or 'all'}}, got "
                             f"{type(spec).__name__}")
        if keys not in ("model", "sequential"):
            raise ValueError(f"Simulator.record_membrane_keys: must be 'model' or 'sequential', "
                             f"got {keys!r}")
        model = self.network.model
        layers = {}
        for key in spec:
            if keys == "model":
                layers[key] = key
                continue
            if not isinstance(key, (int, np.integer)) or isinstance(key, (bool, np.bool_)):
                raise ValueError(f"record_membrane: key {key!r} is not a Sequential position (int)")
            try:
                layer = model.layer_at_position(int(key))
            except ValueError as e:
                raise ValueError(f"record_membrane (record_membrane_keys='sequential'): {e}") from None
            if layer not in self.network.spiking_layers:
                spiking = {o.position: i for i, o in enumerate(model.origins)
                           if o is not None and i in self.network.spiking_layers}
                raise ValueError(f"record_membrane: Sequential position {key} "
                                 f"({model.origins[layer].cls}) is model layer {layer}, not a "
                                 f"spiking layer; spiking layers by position: {spiking}")
            layers[key] = layer
        return layers

    def _setup_recording(self, spec, given_keys):
        """``spec``: ``{model layer: indices or "all"}``; errors name ``given_keys[layer]``."""
        net = self.network
        pops = net.pops.copy()
        rec_idx, self.membrane_neurons, self._mem_cols = [], {}, {}
        col = 0
        for layer in sorted(spec):
            which, key = spec[layer], given_keys[layer]
            if not isinstance(layer, (int, np.integer)) or int(layer) not in net.spiking_layers:
                raise ValueError(f"record_membrane: key {layer!r} is not a spiking layer index; "
                                 f"spiking layers are {net.spiking_layers}")
            q = net.layer_pop[int(layer)]
            n = net.pop_size[q]
            if isinstance(which, str):
                if which != "all":
                    raise ValueError(f"record_membrane[{key}]: expected indices or 'all', got {which!r}")
                idx = np.arange(n, dtype=np.int64)
            else:
                idx = np.asarray(which)
                if idx.ndim != 1 or idx.dtype.kind not in "iu":
                    raise ValueError(f"record_membrane[{key}]: expected a 1-D integer array of "
                                     f"neuron indices, got {idx.dtype} shape {idx.shape}")
                idx = idx.astype(np.int64)
                if len(idx) and (idx.min() < 0 or idx.max() >= n):
                    bad = idx[(idx < 0) | (idx >= n)][0]
                    raise ValueError(f"record_membrane[{key}]: neuron {bad} outside [0, {n})")
            self.membrane_neurons[int(layer)] = idx
            inv = np.empty(n, dtype=np.int64)
            inv[net.pop_perm[q]] = np.arange(n)
            pops["recoff"][q] = col
            pops["recn"][q] = len(idx)
            rec_idx.append(inv[idx])
            self._mem_cols[int(layer)] = (col, col + len(idx))
            col += len(idx)
        self._pops = pops
        self._rec_idx = np.concatenate(rec_idx) if rec_idx else np.zeros(1, np.int64)
        self._n_rec = col

    # -- inputs ----------------------------------------------------------------------------
    def _events(self, batch: EventBatch, T):
        net = self.network
        if not isinstance(batch, EventBatch):
            raise TypeError("expected an EventBatch")
        batch.validate()
        if tuple(int(s) for s in batch.input_shape) != net.input_shape:
            raise ValueError(f"EventBatch.input_shape: {tuple(batch.input_shape)} does not match the "
                             f"model's input shape {net.input_shape}")
        T = int(batch.T) if T is None else _check_T(T)
        # validate() checked times < batch.T and finite values; no copies where the arrays
        # already have the kernel's types (the kernel only reads them)
        if T < int(batch.T) and len(batch.times) and batch.times.max() >= T:
            raise ValueError(f"EventBatch.times: value {batch.times.max()} outside [0, {T}) (T={T})")
        if net.input_event_problem and len(batch.times):
            raise ValueError(f"input events cannot be simulated: {net.input_event_problem}")
        values = np.ascontiguousarray(batch.values, dtype=net.dtype)
        if values.dtype.itemsize < batch.values.dtype.itemsize and not np.all(np.isfinite(values)):
            raise ValueError(f"EventBatch.values: not representable as {net.dtype} (overflow)")
        if net.input_needs_binary and np.any(values != 1):
            bad = values[values != 1][0]
            raise ValueError(f"EventBatch.values: value {bad}: the first projection is a max "
                             "pooling, which needs binary (value 1) input spikes")
        idx = batch.indices if self._input_identity else net.input_inv[batch.indices]
        return T, dict(ev_t=np.ascontiguousarray(batch.times, dtype=np.int64),
                       ev_i=np.ascontiguousarray(idx, dtype=np.int64),
                       ev_v=values,
                       ev_ptr=np.ascontiguousarray(batch.sample_ptr, dtype=np.int64),
                       analog=None, B=batch.batch_size)

    def _dense(self, x, T):
        net = self.network
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"input x: dtype {arr.dtype} is not a real numeric type")
        want = 2 + len(net.input_shape)
        if arr.ndim != want or tuple(arr.shape[2:]) != net.input_shape:
            raise ValueError(f"input x: expected shape [T, B, {', '.join(map(str, net.input_shape))}], "
                             f"got {arr.shape}")
        if T is not None:
            T = _check_T(T)
            if arr.shape[0] != T:
                if arr.shape[0] != 1:
                    raise ValueError(f"input x: {arr.shape[0]} steps given, T={T} requested")
                arr = np.broadcast_to(arr, (T,) + arr.shape[1:])
        T = int(arr.shape[0])
        if T < 1 or arr.shape[1] < 1:
            raise ValueError(f"input x: needs at least one step and one sample, got shape {arr.shape}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            raise ValueError(f"input x: non-finite value {arr[bad]} at index {bad}")
        static = T == 1 or arr.strides[0] == 0 or bool(np.all(arr == arr[:1]))
        B = int(arr.shape[1])
        if dense_input_as_events(net, arr, static, self.dense_input):
            return self._events(from_dense(arr), T)
        empty = np.zeros(0, np.int64)
        return T, dict(ev_t=empty, ev_i=empty, ev_v=np.zeros(0, net.dtype),
                       ev_ptr=np.zeros(B + 1, np.int64), analog=(arr, static), B=B)

    def _drive(self, arr, static, b0, b1):
        """First population's input current ``[T or 1, b1 - b0, n0]`` (internal order)."""
        net = self.network
        q0 = net.edges[0]["tgt"]
        x = arr[:1, b0:b1] if static else arr[:, b0:b1]
        Td, Bc = x.shape[:2]
        x = np.ascontiguousarray(x, dtype=net.dtype).reshape((Td * Bc,) + net.input_shape)
        y = dense_chain(net.input_chain, x).reshape(Td, Bc, -1)
        return np.ascontiguousarray(y[:, :, net.pop_perm[q0]], dtype=net.dtype)

    def _input_counts(self, x, T, static) -> np.ndarray:
        """Per-stage synaptic events ``[n_stages]`` (int64) of analog input ``x`` (see
        ``eventsim.synops``)."""
        labels = self.network.stage_labels
        counts = np.zeros(len(labels), np.int64)
        for label, n in input_chain_counts(self.network, x, T, static).items():
            counts[labels.index(label)] += n
        return counts

    # -- run -------------------------------------------------------------------------------
    def stream(self, T: int | None = None, check: bool = True):
        """A :class:`~eventsim.stream.Stream`: the warm path for one sample per call
        (``stream.run(x)``), with the tables, options and kernel entry set up once; results
        bit-identical to :meth:`run`'s.  ``T``: steps of every sample (default: the model's);
        ``check``: False skips the per-event checks for inputs the caller vouches for (see
        ``eventsim.stream``)."""
        from .stream import Stream
        return Stream(self, T=T, check=check)

    def run(self, x, T: int | None = None) -> Recording:
        """Simulate ``x`` (EventBatch or dense ``[T, B, *input_shape]``) for T steps."""
        net = self.network
        if isinstance(x, EventBatch):
            T, inp = self._events(x, T)
        else:
            T, inp = self._dense(x, T)
        tw = net.time_weights
        if tw is not None and len(tw) != T:
            raise ValueError(f"run: the model's time_weights have {len(tw)} steps, the input has "
                             f"T={T}")
        B = inp["B"]
        dt = net.dtype
        readout = np.zeros((T, B, net.n_outputs), dtype=dt)
        mem = np.zeros((T, B, self._n_rec), dtype=dt)
        powtab = net.power_table(T)
        mode = CONSTANT_DRIVE_MODES[self.constant_drive]
        leak = LEAK_MODES[self.leak]
        per = max(1, min(self.chunk_size, math.ceil(B / self.n_threads))) if B else 1
        chunks = [(b0, min(B, b0 + per)) for b0 in range(0, B, per)]

        def work(chunk):
            b0, b1 = chunk
            if inp["analog"] is not None:
                arr, static = inp["analog"]
                drive = self._drive(arr, static, b0, b1)
                dmode = K.DRIVE_STATIC if static else K.DRIVE_STEPS
            else:
                drive, dmode = np.zeros((1, 1, 1), dtype=dt), K.DRIVE_NONE
            inputs = TB.Inputs(inp["ev_t"], inp["ev_i"], inp["ev_v"], inp["ev_ptr"], drive, dmode)
            if self._part_tables is not None and (dmode == K.DRIVE_NONE
                                                  or not self._part_fallback):
                if dmode != K.DRIVE_NONE:
                    raise ValueError("Simulator(partition='targets'): the input is an analog "
                                     "current here; this schedule takes events only "
                                     "(dense_input='events')")
                out = run_partitioned(tables, inputs, T, b0, b1, opts, readout, mem,
                                      self._part_tables)
            else:
                out = loop.run_batch(tables, inputs, T, b0, b1, opts, readout, mem,
                                     pipeline=self.threads_per_sample == 2)
            if inp["analog"] is not None:
                x = arr[:1, b0:b1] if static else arr[:, b0:b1]
                out[3][:] += self._input_counts(x, T, static)
            return out

        tables = TB.Tables(self._pops, net.spaces, net.stages, net.edges, net.edge_stage,
                           net.bundles, net.sizes, net.wf, net.wi, net.const_all, net.const_conn,
                           net.nbeta, net.ntheta, powtab, self._rec_idx, net.pop_perm[-1],
                           net.nalpha)
        opts = TB.Options(mode, leak, K.SCHEDULE_LAYER if self.schedule == "layer" else
                          K.SCHEDULE_TIME, self.profile, CUBA_MODES[self.cuba])
        start = time.perf_counter()
        if len(chunks) <= 1 or self.n_threads == 1:
            results = [work(c) for c in chunks]
        else:
            with ThreadPoolExecutor(max_workers=min(self.n_threads, len(chunks))) as ex:
                results = list(ex.map(work, chunks))
        elapsed = time.perf_counter() - start
        if self.profile:
            prof = sum(r[4] for r in results) if results else None
            self.last_profile = None if prof is None else profile_rows(prof, self.network)
        return self._recording(results, readout, mem, T, B, elapsed)

    def _recording(self, results, readout, mem, T, B, elapsed) -> Recording:
        net = self.network
        dt = net.dtype
        Q = len(net.pop_size)
        if len(results) == 1:
            counts, neuron, value, syn = results[0][:4]
        elif results:
            counts = np.concatenate([r[0] for r in results], axis=0)        # [B, T, Q]
            neuron = np.concatenate([r[1] for r in results])
            value = np.concatenate([r[2] for r in results])
            syn = np.sum([r[3] for r in results], axis=0)
        else:
            counts = np.zeros((0, T, Q), np.int32)
            neuron, value = np.zeros(0, np.int32), np.zeros(0, np.int8)
            syn = np.zeros(net.n_stages, np.int64)
        spikes = spike_trains(net, counts, neuron, value, T, B, self.schedule == "layer")
        membrane = {layer: np.ascontiguousarray(mem[:, :, c0:c1])
                    for layer, (c0, c1) in self._mem_cols.items()}
        counts = event_counts(net, syn)
        a = net.time_weights if net.time_weights is not None else np.ones(T, dtype=dt)
        # training.losses.decode's tensordot, written out (the same dot of the same arrays)
        decoded = (np.dot(a.reshape(1, T), readout.reshape(T, B * net.n_outputs))
                   .reshape(B, net.n_outputs) / dt.type(T))
        predictions = decoded.argmax(axis=1) if B else np.zeros(0, np.int64)
        return Recording(readout=readout, predictions=predictions.astype(np.int64), spikes=spikes,
                         membrane=membrane, membrane_neurons=dict(self.membrane_neurons),
                         synaptic_events=counts, time_weights=net.time_weights, elapsed_s=elapsed)


def spike_trains(net, counts, neuron, value, T: int, B: int, layer_major: bool) -> dict:
    """``{spiking layer: SpikeTrain}`` from the kernel's spike lists of a run of ``B``
    samples, which come in (sample, t, population) groups, or (sample, population, t) when it
    ran layer by layer (``layer_major``)."""
    s_b, s_t, s_n, s_v, ptr = K.split_spikes(counts, neuron, value, net.perm_cat,
                                              net.perm_off, layer_major)
    spikes = {}
    for q, layer in enumerate(net.pop_layers[:-1]):
        sl = slice(ptr[q], ptr[q + 1])
        ternary = net.model.layers[layer].spikes == "ternary"
        spikes[layer] = SpikeTrain(sample=s_b[sl], t=s_t[sl], neuron=s_n[sl],
                                   value=s_v[sl] if ternary else None,
                                   n_neurons=net.pop_size[q], T=T, batch_size=B,
                                   shape=net.shapes[layer])
    return spikes


def event_counts(net, syn) -> dict:
    """``Recording.synaptic_events``: the kernel's per-stage counts ``syn`` summed by stage
    label, plus ``"total"``."""
    counts: dict = {}
    for label, n in zip(net.stage_labels, syn):
        if label is not None:
            counts[label] = counts.get(label, 0) + int(n)
    counts["total"] = int(sum(counts.values()))
    return counts


def profile_rows(prof, net) -> list[dict]:
    """The kernel's profile counters ``[Q + 1, N_PHASES, 3]`` as rows ``{"where", "phase",
    "cycles", "events", "neuron_updates"}`` (``where``: ``"layers[i]"`` of a population, or
    ``"network"`` for the set-up and the delayed connections), rows with no count left out.
    Cycles are CPU time-stamp-counter ticks (0 where the CPU has no such counter); events:
    synaptic events delivered (delivery) or spikes emitted (emission); neuron updates: the
    neurons whose state the update phase computed (every neuron of a full pass, of a
    population updated every step and of the readout; the touched, due and recorded
    neurons of a lazy pass)."""
    where = [f"layers[{layer}]" for layer in net.pop_layers] + ["network"]
    rows = []
    for r, name in enumerate(where):
        for ph, phase in enumerate(loop.PHASE_NAMES):
            c = [int(x) for x in prof[r, ph]]
            if any(c):
                rows.append(dict(where=name, phase=phase, cycles=c[loop.C_CYCLES],
                                 events=c[loop.C_EVENTS], neuron_updates=c[loop.C_NEURONS]))
    return rows


def format_profile(rows) -> str:
    """:func:`profile_rows` as a text table: cycles (and share), events, neuron updates, and
    cycles per event or per neuron update."""
    total = sum(r["cycles"] for r in rows) or 1
    lines = [f"{'where':<14} {'phase':<10} {'cycles':>14} {'share':>6} {'events':>12} "
             f"{'neuron upd.':>12} {'cyc/event':>9} {'cyc/upd.':>9}"]
    for r in rows:
        per_ev = f"{r['cycles'] / r['events']:.1f}" if r["events"] else ""
        per_nu = f"{r['cycles'] / r['neuron_updates']:.1f}" if r["neuron_updates"] else ""
        lines.append(f"{r['where']:<14} {r['phase']:<10} {r['cycles']:>14} "
                     f"{r['cycles'] / total:>6.1%} {r['events']:>12} {r['neuron_updates']:>12} "
                     f"{per_ev:>9} {per_nu:>9}")
    return "\n".join(lines)


def _check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T: must be a positive int, got {T!r}")
    return int(T)


# ---------------------------------------------------------------------------------------
# ahead-of-time compilation
# ---------------------------------------------------------------------------------------
WARMUP_DTYPES = (np.float32, np.float64)


def warmup_models(dtype) -> list:
    """Two tiny models (``eventsim.modelfile.Model``, float arrays of ``dtype``) that use
    every projection and neuron kind: an MLP (dense, sparse, ternary spikes, v_min, a delayed
    recurrent connection, leaky readout) and a feed-forward conv net (conv with padding,
    max and average pooling, flatten, subtract reset, a current-based population)."""
    from . import modelfile as mf

    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.6).astype(dt)

    mask = rng.random((8, 8)) < 0.5
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    sparse = mf.Sparse(data=w(int(mask.sum())), indices=np.nonzero(mask)[1].astype(np.int64),
                       indptr=indptr, shape=(8, 8), bias=w(8))
    mlp = mf.Model(input_shape=(6,), T=4, layers=[
        mf.Dense(w(8, 6), w(8)), mf.Spiking(beta=0.5, theta=0.5),
        sparse, mf.Spiking(beta=0.75, theta=0.5, reset="subtract", v_min=-1.0, spikes="ternary"),
        mf.Dense(w(3, 8)), mf.Readout(beta=0.5)],
        connections=[mf.Connection(source=3, target=1, delay=1, projection=mf.Dense(w(8, 8)))])
    conv = mf.Model(input_shape=(1, 6, 6), T=4, layers=[
        mf.Conv2d(w(2, 1, 3, 3), w(2), stride=(1, 1), padding=(1, 1)),
        mf.Spiking(beta=0.5, theta=0.5),
        mf.MaxPool2d(kernel=(2, 2), stride=(2, 2)),
        mf.Conv2d(w(3, 2, 2, 2), None, stride=(1, 1), padding=(0, 0)),
        mf.Spiking(beta=0.9, theta=0.5, reset="subtract", alpha=0.5),
        mf.AvgPool2d(kernel=(2, 2), stride=(2, 2)), mf.Flatten(),
        mf.Dense(w(3, 3), w(3)), mf.Readout()])
    return [mlp, conv]


def _warm_event_checks() -> None:
    """``EventBatch.validate``'s kernel for int32/int64 times and indices, float32/float64
    values (any event batch meets one of these, whatever the network's dtype)."""
    for it in (np.int32, np.int64):
        for ii in (np.int32, np.int64):
            for fv in (np.float32, np.float64):
                EventBatch(times=np.array([0, 1], it), indices=np.array([0, 1], ii),
                           values=np.ones(2, fv), sample_ptr=np.array([0, 2], np.int64),
                           T=2, input_shape=(2,)).validate()


def warmup(dtypes=WARMUP_DTYPES) -> dict:
    """Compile (or load from Numba's on-disk cache) every kernel a simulation can need, for
    each float dtype in ``dtypes``: tiny models of every layer kind run with event, static
    analog and time-varying analog input, under every schedule, ``constant_drive`` and
    ``leak`` option, with membranes recorded.  The kernels use ``cache=True``, so later
    processes load them instead of compiling.

    Returns:
        ``{dtype name: seconds}`` spent per dtype.
    """
    seconds = {}
    for dtype in dtypes:
        dt = np.dtype(dtype)
        t0 = time.perf_counter()
        _warm_event_checks()
        for model in warmup_models(dt):
            net = load(model)
            rng = np.random.default_rng(1)
            shape = (model.T, 2) + tuple(model.input_shape)
            spikes = from_dense((rng.random(shape) < 0.5).astype(dt))
            static = np.broadcast_to(rng.random((1,) + shape[1:]).astype(dt), shape)
            steps = rng.random(shape).astype(dt)
            schedules = ("time", "layer") if len(model.connections) == 0 else ("time",)
            for schedule in schedules:
                for drive in CONSTANT_DRIVE_MODES:
                    for leak in LEAK_MODES:
                        sim = Simulator(net, record_membrane={net.spiking_layers[0]: "all"},
                                        constant_drive=drive, leak=leak, n_threads=1,
                                        schedule=schedule,
                                        cuba="lazy" if leak == "repeat" else "step")
                        for x in (spikes, static, steps):
                            sim.run(x)
        seconds[dt.name] = time.perf_counter() - t0
    return seconds
