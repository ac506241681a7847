"""The event loop's data: record dtypes of the fixed tables, named groups of the mutable state.

``eventsim.network`` fills the tables once per model; ``eventsim.loop`` allocates the state
once per kernel call and unpacks each group into local variables where a kernel starts (a
field read inside a hot loop costs more than a local).  docs/event-loop.md explains how the
event loop uses them; the field lists below are the reference.

Fixed tables (NumPy structured arrays, one record per row; offsets index the flat arrays
``wf`` (float weights), ``wi`` (int64 structure), the accumulators and the neuron state):

``SPACE``  one flat accumulator of input currents (a population's, or an intermediate map)
    n       entries;  off: first entry in ``Accum.acc``
    bs      block size (C for channel-last maps, else 1);  boff: first block in ``mark/tlist``
    post    POST_NONE, or POST_SCALE: values are multiplied by ``scale`` when drained
    scale   the factor of a POST_SCALE space (average pooling: 1/(kh*kw)), model dtype
``STAGE``  one projection between two spaces
    kind    K_IDENTITY, K_DENSE, K_SPARSE, K_CONV, K_SUMPOOL, K_MAXPOOL or K_BUNDLED
    src, dst  source and destination space
    woff    weights in ``wf``;  poff, ioff: CSR indptr and indices in ``wi`` (sparse)
    Hi Wi Ci Ho Wo Co kh kw sh sw ph pw   window geometry (conv and pooling)
    moff    max pooling's last-emitted stamps in ``Scratch.mp_last``
    toff    the window tables (``network.window_tables``) in ``wi``
``EDGE``   a chain of stages from a source to a population; edge q < Q is the feed-forward
           edge into population q (edge 0 from the input), the rest are dense delayed
           connections
    src     source population (-1: the input);  tgt: target population
    delay   steps (0: feed-forward, same step);  soff, ns: its stages ``edge_stage[soff:soff+ns]``
``BUNDLE`` the sparse delayed connections between one source and one target, merged
    src, tgt  populations;  space: the target's space;  n_t: the target's neurons
    nseg    segments per source row (one per connection, delays ascending)
    ptr, idx, seg  row pointers, targets and (delay, stage) pairs in ``wi``;  w: weights in ``wf``
    R       ring slots (the longest delay);  roff, loff, rcoff: its ring in ``DelayRing``
``POP``    a population (spiking neurons or the readout)
    kind    POP_SPIKING or POP_READOUT;  space: its accumulator;  n: neurons
    noff    first neuron in the neuron state arrays
    reset   HARD_RESET or SUBTRACT_RESET;  ternary, has_vmin: 0 or 1
    pn      1: beta and theta differ between neurons (read ``Tables.nbeta/ntheta``; ``beta``
            and ``theta`` below are NaN), 0: one value per population
    ring, R, ringc  its spike ring (``SpikeRing``): R slots of n entries at ``ring``, counts
            at ``ringc``
    recoff, recn  its recorded neurons ``rec_idx[recoff:recoff+recn]`` (set by the Simulator)
    beta, theta, v_reset, v_min  neuron parameters in the model dtype (``Tables.nbeta/ntheta``
            hold beta and theta of every neuron, per-population values repeated)
    cuba    1: current-based neurons (model format 4: a synaptic current ``i = alpha i + I``
            charges the membrane; ``Neurons.I`` holds it, ``Tables.nalpha`` every neuron's
            alpha), updated at every step unless lazy (``Options.cuba``); 0: the plain
            canonical neuron
    alpha   the synaptic current decay (NaN when it differs between neurons; 0 if not cuba)
``SIZES``  one record: lengths of the state arrays and the tuning constants
    acc blocks neurons ring ringc mp scratch pbuf bring blist bringc  array lengths
    spikecap  initial spike output capacity limit;  window: layer-major window (values)
    full_div, full_div_cheap, full_div_cuba, ring_div  full-pass thresholds
            (``eventsim.network``; full_div_cuba: lazy current-based populations)
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

# stage kinds
K_IDENTITY, K_DENSE, K_SPARSE, K_CONV, K_SUMPOOL, K_MAXPOOL = 0, 1, 2, 3, 4, 5
K_BUNDLED = 6   # a sparse connection delivered through its bundle (the stage only counts)
HARD_RESET, SUBTRACT_RESET = 0, 1
POP_SPIKING, POP_READOUT = 0, 1
POST_NONE, POST_SCALE = 0, 1


def _ints(*names):
    return [(name, np.int64) for name in names]


STAGE_DTYPE = np.dtype(_ints("kind", "src", "dst", "woff", "poff", "ioff", "Hi", "Wi", "Ci", "Ho",
                             "Wo", "Co", "kh", "kw", "sh", "sw", "ph", "pw", "moff", "toff"),
                       align=True)
EDGE_DTYPE = np.dtype(_ints("src", "tgt", "delay", "soff", "ns"), align=True)
BUNDLE_DTYPE = np.dtype(_ints("src", "tgt", "space", "n_t", "nseg", "ptr", "idx", "w", "seg", "R",
                              "roff", "loff", "rcoff"), align=True)
SIZES_DTYPE = np.dtype(_ints("acc", "blocks", "neurons", "ring", "ringc", "mp", "scratch",
                             "spikecap", "pbuf", "full_div", "full_div_cheap", "bring", "blist",
                             "bringc", "ring_div", "window", "full_div_cuba"), align=True)


def space_dtype(dt) -> np.dtype:
    """Record of one space; ``scale`` in the model's float dtype ``dt``."""
    return np.dtype(_ints("n", "off", "bs", "boff", "post") + [("scale", dt)], align=True)


def pop_dtype(dt) -> np.dtype:
    """Record of one population; neuron parameters in the model's float dtype ``dt``."""
    return np.dtype(_ints("kind", "space", "n", "noff", "reset", "ternary", "has_vmin", "pn",
                          "ring", "R", "ringc", "recoff", "recn", "cuba")
                    + [("beta", dt), ("theta", dt), ("v_reset", dt), ("v_min", dt),
                       ("alpha", dt)], align=True)


# ---------------------------------------------------------------------------------------
# named groups of arrays (NamedTuples: Numba passes them as plain values)
# ---------------------------------------------------------------------------------------
Tables = namedtuple("Tables", ["pops", "spaces", "stages", "edges", "edge_stage", "bundles",
                               "sizes", "wf", "wi", "const_all", "const_conn", "nbeta", "ntheta",
                               "powtab", "rec_idx", "readout_perm", "nalpha"])
Tables.__doc__ = """The fixed inputs of a kernel call: the record tables above, ``edge_stage``
(stage ids of the edges), ``wf``/``wi`` (weights, int structure), ``const_all`` [N] (every
neuron's constant input: biases), ``const_conn`` [N] (its part from delayed connections,
kept when a drive replaces the first population's constant input), ``nbeta`` and ``ntheta``
[N] (every neuron's beta and theta, internal order), ``powtab [Q, T+1]`` (``beta**k``; not
used for populations with per-neuron beta), ``rec_idx`` (recorded neurons, population-local
internal indices), ``readout_perm`` (readout internal -> output index) and ``nalpha [N]``
(every neuron's synaptic current decay, internal order; 0 outside current-based
populations)."""

Inputs = namedtuple("Inputs", ["ev_t", "ev_i", "ev_v", "ev_ptr", "drive", "drive_mode"])
Inputs.__doc__ = """Input events ``(ev_t, ev_i (internal index), ev_v)`` of sample b at
``ev_ptr[b]:ev_ptr[b+1]``, sorted by step, delivered through edge 0; or (``drive_mode``
DRIVE_STATIC / DRIVE_STEPS) the first population's input current ``drive[t or 0, b - b0, :]``."""

Options = namedtuple("Options", ["mode", "leak", "schedule", "profile", "cuba"])
Options.__doc__ = """``mode`` MODE_STEP / MODE_PREDICT (constant drive), ``leak`` LEAK_REPEAT /
LEAK_POWER, ``schedule`` SCHEDULE_TIME / SCHEDULE_LAYER, ``profile`` (bool: count cycles,
events and neuron updates per phase), ``cuba`` CUBA_LAZY / CUBA_STEP (current-based
populations without constant input: lazy, or every neuron at every step)."""

Accum = namedtuple("Accum", ["acc", "mark", "tlist", "tcount", "allt"])
Accum.__doc__ = """Input currents of every space with their touched blocks: ``acc`` (space s
at ``off``), ``mark`` (uint8 per block, at ``boff``), ``tlist`` (touched blocks of s at
``boff``, ``tcount[s]`` of them), ``allt[s]`` (s wholly touched: read all of it)."""

Neurons = namedtuple("Neurons", ["V", "U", "L", "cst", "lfull", "I"])
Neurons.__doc__ = """Per neuron (population q's at ``noff``): ``V`` membrane after reset, ``U``
before reset (read for recorded neurons), ``L`` last step updated (lazy neurons), ``cst``
constant input; per population: ``lfull`` last step of a full pass; per neuron again: ``I``
synaptic current ``i_{t-1}`` (current-based populations only; zero elsewhere)."""

WakeQueue = namedtuple("WakeQueue", ["head", "wnext", "wprev", "wake_t", "period"])
WakeQueue.__doc__ = """Neurons due to cross threshold without input, in buckets per
(population, step): ``head[q*T + t]`` first neuron (population-local), doubly linked through
``wnext/wprev``; ``wake_t`` its step (-1: not queued); ``period`` predicted steps from
reset to crossing of a hard-reset neuron (0: not known yet)."""

SpikeRing = namedtuple("SpikeRing", ["idx", "val", "cnt"])
SpikeRing.__doc__ = """Each population's spike lists of its last R steps: step t's are
``idx/val[ring + (t % R) * n:]``, ``cnt[ringc + t % R]`` entries (time-major schedule)."""

DelayRing = namedtuple("DelayRing", ["val", "lst", "cnt"])
DelayRing.__doc__ = """Future input currents of every bundle, one slot per arrival step modulo
R: slot k's values ``val[roff + k*n_t:][:n_t]``, its targets ``lst[loff + k*(n_t+1):]``
(``cnt[rcoff + k]`` of them; n_t or more: dense).  See :func:`eventsim.kernels.delay_push`
and :func:`eventsim.kernels.delay_advance`."""

Scratch = namedtuple("Scratch", ["idx", "val", "flags", "pbuf", "mp_last", "win", "syn", "prof"])
Scratch.__doc__ = """Work arrays: an event list ``idx/val`` (intermediate stages), spike
``flags`` (int8, length a multiple of 8), ``pbuf`` (one conv event's row offsets),
``mp_last`` (max pooling stamps), ``win`` (layer-major: one dense edge's input currents
over a window of steps, ``[steps, n_target]``), and the counters: ``syn`` synaptic events per stage,
``prof [Q + 1, N_PHASES, 3]`` (see ``eventsim.loop``)."""

Modes = namedtuple("Modes", ["lazy", "driven", "full_div", "vmin_hi", "ring_div", "whole_ok",
                             "unpredicted"])
Modes.__doc__ = """How each population is updated in the current sample: ``lazy`` (only
touched or due neurons), ``driven`` (has constant input), ``full_div`` (a full pass when
1/full_div of it is touched), ``vmin_hi`` (v_min >= theta: may fire without input),
``ring_div`` (a bundle slot listing n/ring_div targets is added whole); per space:
``whole_ok`` (a large delivery may mark it wholly touched); per population again:
``unpredicted`` (> 0: a lazy current-based population whose last full passes queued no
crossing predictions, updated by full passes until one does: the count of passes left,
``loop.CUBA_PATIENCE`` after large input, the last one predicting)."""

Shared = namedtuple("Shared", ["ring", "dring", "ring_div", "sync"])
Shared.__doc__ = """What the two threads of a pipelined kernel call share (``eventsim.loop``,
"Pipelined schedule"): the SpikeRing and the DelayRing, ``ring_div`` (the Modes field, per
population) and ``sync`` (int64 [32]: ``sync[SYNC_MODE]`` 1 when pipelined, the steps
done by the main thread at ``SYNC_MAIN`` and by the helper at ``SYNC_HELPER``, a stop
request at ``SYNC_ABORT``; one cache line each).  A one-thread call allocates its own."""

State = namedtuple("State", ["acc", "nrn", "wake", "ring", "dring", "scr", "modes"])
State.__doc__ = """All mutable state of a kernel call: Accum, Neurons, WakeQueue, SpikeRing,
DelayRing, Scratch, Modes."""

SpikeList = namedtuple("SpikeList", ["t", "i", "v", "start"])
SpikeList.__doc__ = """One sample's spikes (step, internal neuron, value) population after
population, in the layer-major schedule: population q's spikes of step t start at
``start[q, t]`` (``counts[b - b0, t, q]`` of them).  Grown by doubling."""

Output = namedtuple("Output", ["counts", "neuron", "value", "readout", "mem"])
Output.__doc__ = """What a kernel call writes: ``counts [b1 - b0, T, Q]`` spikes per (sample,
step, population), the spike list ``neuron`` (int32, internal index) and ``value`` (int8)
(grown by doubling), ``readout [T, B, n_out]`` and ``mem [T, B, n_rec]`` (u before reset of
the recorded neurons)."""

Delivery = namedtuple("Delivery", ["stages", "spaces", "edges", "edge_stage", "wf", "wi", "acc",
                                   "mark", "tlist", "tcount", "allt", "whole_ok", "scr_idx",
                                   "scr_val", "pbuf", "mp_last", "syn"])
Delivery.__doc__ = """What delivering events through an edge's stages reads and writes, flat
(one level: a field read costs one reference count): the STAGE, SPACE and EDGE tables,
``edge_stage``, ``wf``, ``wi``; the Accum arrays; ``whole_ok``; the scratch event list
``scr_idx/scr_val``; ``pbuf``; ``mp_last``; ``syn``.  Built once per driver call."""
