"""The target-partitioned schedule: one sample of a recurrent network on P threads.

``Simulator(threads_per_sample=P, partition="targets")`` runs the first population (the
target of the input edge, the source and target of the network's sparse delayed
connections) split into P contiguous ranges of neurons, one per thread.  Each thread owns
its range's columns of the delay ring and its neurons' state; at each step it

1. pushes *every* spike of the previous step (all threads' lists, ascending) through the
   synapses whose targets lie in its range (per thread, per source row, per delay segment:
   its own sub-rows, :func:`split_rows`) into the ring slots of their arrival steps,
2. adds this step's input events through the input edge's synapses into its range of
   the current slot,
3. updates its neurons from that slot (the slot is the accumulator; cleared as read),
   and lists their spikes,

Each (step, range) is a job claimed by compare-and-swap: a thread runs its own range's job
first, then any other range's job of that step nobody has claimed yet, so a thread the
operating system has descheduled costs no more than one thread's work (the other runs its
range).  A step's jobs start once every range has done the previous step (atomic progress
counters: spin, then ``sched_yield``).  The first thread then runs the rest of the step
alone: the first population's spikes merged in neuron order into the spike ring and the
output, and every other population (readout, later layers) by the one-thread code
(:func:`eventsim.loop.pop_step`).  No location is written by two jobs of one step, so no
atomics are needed for the data, and every target receives its terms in the one-thread
order (emission step, then delay segment, then source in ascending order; input events in
their order): the results are bit-identical to one thread's
(``eventsim.loop.run_time_major``), with any P (P = 1 is the same kernel on one thread).

Eligible networks (:func:`plan`; anything else is refused with the reason): population 0
spiking (not current-based) without constant input, its input edge one sparse projection,
every delayed connection sparse from population 0 to itself (one bundle), no dense delayed
connection; event input (no analog drive); ``leak="repeat"``.  Population 0 is updated
by a full pass at every step, which the one-thread schedule's lazy steps match bit for bit
with ``leak="repeat"``.
"""
from __future__ import annotations

import threading
from collections import namedtuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .kernels import K_SPARSE, POP_SPIKING, collect_spikes, neuron_step, step_end
from .loop import (ZERO, _claim, _load_acquire, _relax, _store_release, begin, copy_spikes,
                   grow_output, new_shared, pop_step, sample_setup)

# alignment of the range bounds (neurons): 64 float32 = 4 cache lines, so two threads never
# write the same cache line of the ring, V, U or the flags
ALIGN = 64
# sync: entry 0 the abort flag, then one cache line each: the last step done and claimed
# of each range, the last step whose serial part is done (see run_jobs)
SYNC_STRIDE = 8
# pause-spins of a wait before each further check yields the core: a step takes ~10-20 us
# here, and a yield on a busy machine can cost a whole time slice (ms) before the thread
# runs again, while the other thread takes over its range (and its cache lines)
PART_SPINS = 5000
SYN_STRIDE = 8   # a thread's row of synaptic event counts is padded to whole cache lines

PartTables = namedtuple("PartTables", ["bounds", "bptr", "bidx", "bw", "sdel", "sstage",
                                       "iptr", "iidx", "iw", "g_in", "R", "by_spike", "flat",
                                       "boff", "rptr", "single", "itgt", "iwt", "ilen"])
PartTables.__doc__ = """Fixed tables of the partitioned schedule (built by :func:`plan`).

``bounds [P + 1]``: thread k owns neurons ``bounds[k] <= j < bounds[k + 1]`` of population
0.  Bundle: ``bptr [P, n*nseg + 1]`` thread k's synapses of source row i, segment m at
``bptr[k, i*nseg + m] : bptr[k, i*nseg + m + 1]`` of ``bidx`` (int32 targets) and ``bw``
(weights); ``sdel [nseg]`` the segments' delays (ascending), ``sstage [nseg]`` their stages
(event counts).  Input edge: ``iptr [P, n_in + 1]``, ``iidx``, ``iw`` the same for the input
rows, ``g_in`` its stage.  ``R``: ring slots (the longest delay).  ``by_spike``: every
segment has its own delay, so the pushes may run spike by spike (see :func:`push_range`).
``flat``: ``by_spike`` and every ring offset fits an int32, so a spike whose segments all
arrive within the run is pushed through its whole sub-row in one loop (:func:`_push_flat`),
with ``boff`` (int32, parallel to ``bidx``): each synapse's ring offset ``d*n + target``
(``d`` its delay, ``n`` the neurons of population 0); ``rptr [P, n_src + 1]`` (int32 when
the offsets fit) thread k's whole sub-row of source ``i`` at ``rptr[k, i]:rptr[k, i + 1]``
(``bptr[k, ::nseg]``: a smaller table to look up, 4 bytes per source).  ``single``: every
input row has at most one synapse in each range and no range is empty, so the input events
go through ``itgt``, ``iwt``, ``ilen [P, n_in]`` (int32, weights, int8): row i's synapse in
range k (target, weight, 1), or for an empty sub-row a neuron of the range (neuron
``lo_k + i mod size_k``: placeholders spread out, not one chain of additions to one
address), weight 0 and 0 (:func:`input_range`)."""

PartState = namedtuple("PartState", ["ring", "V", "U", "flags", "spk_i", "spk_v", "spk_c",
                                     "syn", "sync", "jobs", "nflat"])
PartState.__doc__ = """Mutable arrays of a partitioned kernel call (population 0 of ``n``
neurons, P threads): ``ring [R*n]`` future input currents (slot ``s`` at ``s*n``), ``V``,
``U [n]`` membranes (U: before reset, for recorded neurons), ``flags [P, nf]`` spike flags
of each range, ``spk_i/spk_v [P, 2, nf]`` each thread's spikes of the last two steps
(parity t % 2; global neuron index, value), ``spk_c [P, 2*SYNC_STRIDE]`` their counts,
``jobs [P, SYN_STRIDE]``: range jobs run by each thread (column 0),
``syn [P, m']`` synaptic events per range and stage (m stages, rows padded to
whole cache lines), ``sync`` the progress
counters, ``nflat [P, n]``: spikes of each source neuron range k pushed whole by
:func:`_push_flat` (their synaptic events are counted at the end, :func:`flat_events`)."""


def default_bounds(n: int, P: int) -> np.ndarray:
    """``P + 1`` range bounds splitting ``n`` neurons evenly, inner bounds multiples of
    ``ALIGN`` (a range may be empty when ``n`` is small)."""
    b = [min(n, int(round(k * n / P / ALIGN)) * ALIGN) for k in range(P + 1)]
    b[0], b[-1] = 0, n
    return np.maximum.accumulate(np.asarray(b, dtype=np.int64))


def plan_problem(net, leak: str) -> str | None:
    """Why ``net`` (CompiledNetwork) cannot run partitioned by targets, or None."""
    pops, edges, bundles, stages = net.pops, net.edges, net.bundles, net.stages
    if leak != "repeat":
        return f"leak={leak!r} (the partitioned schedule steps every neuron exactly: 'repeat')"
    p0 = pops[0]
    if p0["kind"] != POP_SPIKING or p0["cuba"] != 0:
        return "population 0 is not a plain spiking (non current-based) population"
    n0, o0 = int(p0["n"]), int(p0["noff"])
    if np.any(net.const_all[o0:o0 + n0] != 0):
        return "population 0 has a constant input (bias or delayed-connection bias)"
    if len(edges) != len(pops):
        return "the network has dense delayed connections"
    e0 = edges[0]
    if e0["ns"] != 1 or stages[net.edge_stage[e0["soff"]]]["kind"] != K_SPARSE:
        return "the input edge is not one sparse projection"
    if len(bundles) != 1 or bundles[0]["src"] != 0 or bundles[0]["tgt"] != 0:
        return ("the delayed connections are not all sparse from population 0 to itself "
                f"({len(bundles)} bundle(s))")
    return None


def split_rows(ptr, idx, w, bounds):
    """CSR rows ``ptr [r + 1], idx, w`` split by target range: ``(ptr_k [P, r + 1],
    idx_k int32, w_k)``, thread k's entries of row ``i`` at ``ptr_k[k, i]:ptr_k[k, i + 1]``
    (offsets into the concatenated arrays), each row's entries in their original order."""
    P = len(bounds) - 1
    r = len(ptr) - 1
    row = np.repeat(np.arange(r, dtype=np.int64), np.diff(ptr))
    part = np.searchsorted(bounds, idx, side="right") - 1
    order = np.lexsort((np.arange(len(idx)), row, part))   # by thread, row, position
    out_ptr = np.zeros((P, r + 1), dtype=np.int64)
    base = 0
    for k in range(P):
        counts = np.bincount(row[part == k], minlength=r)
        out_ptr[k, 0] = base
        np.cumsum(counts, out=out_ptr[k, 1:])
        out_ptr[k, 1:] += base
        base = int(out_ptr[k, -1])
    return out_ptr, np.ascontiguousarray(idx[order], dtype=np.int32), np.ascontiguousarray(w[order])


def plan(net, leak: str, P: int, bounds=None) -> PartTables:
    """The PartTables of ``net`` (CompiledNetwork) on ``P`` threads (``bounds``: ``P + 1``
    ascending neuron bounds of population 0, default :func:`default_bounds`).  Raises
    ValueError naming what makes the network ineligible."""
    why = plan_problem(net, leak)
    if why is not None:
        raise ValueError(f"Simulator(partition='targets'): not possible here: {why}")
    n = int(net.pops[0]["n"])
    if bounds is None:
        bounds = default_bounds(n, P)
    bounds = np.asarray(bounds, dtype=np.int64)
    if len(bounds) != P + 1 or bounds[0] != 0 or bounds[-1] != n or np.any(np.diff(bounds) < 0):
        raise ValueError(f"partition bounds: expected {P + 1} ascending values from 0 to {n}, "
                         f"got {bounds.tolist()}")
    wi, wf = net.wi, net.wf
    wi32 = wi.view(np.int32)
    bun = net.bundles[0]
    nseg, n_src = int(bun["nseg"]), int(net.pops[bun["src"]]["n"])
    ptr = wi[bun["ptr"]:bun["ptr"] + n_src * nseg + 1]
    nsyn = int(ptr[-1])
    bidx = wi32[2 * bun["idx"]:2 * bun["idx"] + nsyn].astype(np.int64)
    bptr, bidx, bw = split_rows(ptr, bidx, wf[bun["w"]:bun["w"] + nsyn], bounds)
    seg = wi[bun["seg"]:bun["seg"] + 2 * nseg]
    g_in = int(net.edge_stage[net.edges[0]["soff"]])
    st = net.stages[g_in]
    n_in = int(net.spaces[st["src"]]["n"])
    iptr = wi[st["poff"]:st["poff"] + n_in + 1]
    nnz = int(iptr[-1])
    iidx = wi32[2 * st["ioff"]:2 * st["ioff"] + nnz].astype(np.int64)
    iptr, iidx, iw = split_rows(iptr, iidx, wf[st["woff"]:st["woff"] + nnz], bounds)
    sdel = np.ascontiguousarray(seg[0::2])
    R = int(bun["R"])
    by_spike = bool(np.all(np.diff(sdel) > 0))
    flat = by_spike and (R + 1) * n < 2 ** 31
    boff = ring_offsets(bptr, bidx, sdel, n) if flat else np.zeros(1, np.int32)
    rptr = np.ascontiguousarray(bptr[:, ::max(1, nseg)])
    if rptr[:, -1].max(initial=0) < 2 ** 31:
        rptr = rptr.astype(np.int32)
    single, itgt, iwt, ilen = single_input(iptr, iidx, iw, bounds)
    return PartTables(bounds, bptr, bidx, bw, sdel, np.ascontiguousarray(seg[1::2]), iptr,
                      iidx, iw, np.int64(g_in), np.int64(R), by_spike, flat, boff, rptr,
                      single, itgt, iwt, ilen)


def single_input(iptr, iidx, iw, bounds):
    """``(single, itgt, iwt, ilen)`` of :class:`PartTables` from the input edge's sub-rows
    ``iptr [P, n_in + 1], iidx, iw`` and the range ``bounds``; when not ``single``, empty
    placeholders."""
    lens = np.diff(iptr, axis=1)                              # [P, n_in]
    if lens.size == 0 or lens.max() > 1 or np.any(np.diff(bounds) <= 0):
        return False, np.zeros((1, 1), np.int32), np.zeros((1, 1), iw.dtype), np.zeros((1, 1), np.int8)
    has = lens == 1
    first = np.minimum(iptr[:, :-1], max(len(iidx) - 1, 0))
    n_in = lens.shape[1]
    spread = bounds[:-1, None] + np.arange(n_in)[None, :] % np.diff(bounds)[:, None]
    itgt = np.where(has, iidx[first] if len(iidx) else 0, spread).astype(np.int32)
    iwt = np.where(has, iw[first] if len(iw) else 0, 0).astype(iw.dtype)
    return True, itgt, iwt, has.astype(np.int8)


def ring_offsets(bptr, bidx, sdel, n: int) -> np.ndarray:
    """Each bundle synapse's ring offset ``d*n + target`` (int32, parallel to ``bidx``):
    ``bptr [P, n_src*nseg + 1]`` the sub-row pointers, ``sdel [nseg]`` the segments'
    delays, ``n`` the ring's slot length (neurons of population 0)."""
    P, nseg = bptr.shape[0], len(sdel)
    off = np.zeros(len(bidx), np.int64)
    for k in range(P):
        lens = np.diff(bptr[k])                        # [n_src * nseg], segment-minor
        d = np.tile(sdel, len(lens) // max(nseg, 1))
        off[bptr[k, 0]:bptr[k, -1]] = np.repeat(d, lens) * n
    return np.ascontiguousarray(off + bidx, dtype=np.int32)


def flat_events(pt: PartTables, ps: PartState, syn: np.ndarray) -> None:
    """Add the synaptic events of the spikes pushed whole (``ps.nflat``) to ``syn``
    (``[n_stages]`` int64, per stage): each such spike of source ``i`` delivered every
    synapse of its range-k sub-row, segment m's to stage ``sstage[m]``."""
    nseg = len(pt.sdel)
    for k in range(pt.bptr.shape[0]):
        lens = np.diff(pt.bptr[k]).reshape(-1, nseg)     # [n_src, nseg]
        per_seg = ps.nflat[k, :lens.shape[0]] @ lens
        np.add.at(syn, pt.sstage, per_seg)


def zeros_aligned(shape, dtype) -> np.ndarray:
    """``np.zeros(shape, dtype)`` starting at a multiple of 64 bytes (a cache line): with
    rows of whole cache lines, no line holds entries of two threads."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + 64, np.uint8)
    skip = (-raw.ctypes.data) % 64
    return raw[skip:skip + nbytes].view(dtype).reshape(shape)


def new_part_state(pt: PartTables, n: int, n_stages: int, dtype) -> PartState:
    """Zeroed PartState for population 0 of ``n`` neurons (``n_stages`` stages); every
    per-thread row starts on its own cache line."""
    P = len(pt.bounds) - 1
    nf = max(64, (int(np.max(np.diff(pt.bounds))) + 63) // 64 * 64)
    ns = (n_stages + SYN_STRIDE - 1) // SYN_STRIDE * SYN_STRIDE
    n_src = (pt.bptr.shape[1] - 1) // max(1, len(pt.sdel))
    z = zeros_aligned
    return PartState(z(int(pt.R) * n, dtype), z(n, dtype), z(n, dtype), z((P, nf), np.int8),
                     z((P, 2, nf), np.int64), z((P, 2, nf), dtype), z((P, 2 * SYNC_STRIDE), np.int64),
                     z((P, ns), np.int64), z(SYNC_STRIDE * (2 * P + 2), np.int64),
                     z((P, SYN_STRIDE), np.int64), z((P, (n_src + 7) // 8 * 8), np.int64))


@intrinsic
def _prefetch(typingctx, arr, pos):
    """Hint the CPU to fetch the cache line of ``arr[pos]`` (``pos`` uint64; no effect on
    the results: ``llvm.prefetch``, read, into every cache level)."""
    sig = types.void(arr, types.uint64)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        i32, p8 = ir.IntType(32), ir.IntType(8).as_pointer()
        ptr = builder.bitcast(ptr, p8)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [p8, i32, i32, i32]),
            "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, inline="always")
def _prefetch_row(boff, bw, p0, p1):
    """Prefetch entries ``p0:p1`` (uint64) of ``boff`` and ``bw``, one hint per 64 bytes."""
    step = np.uint64(64 // bw.itemsize)
    step_o = np.uint64(16)
    for p in range(p0, p1, step_o):
        _prefetch(boff, p)
    for p in range(p0, p1, step):
        _prefetch(bw, p)


# ---------------------------------------------------------------------------------------
# one thread's part of a step
# ---------------------------------------------------------------------------------------
@njit(cache=True, no_cpython_wrapper=True)
def push_range(k, t, T, pt, ps):
    """Thread ``k``: the spikes of step ``t - 1`` (every range's list) through its sub-rows
    of every segment arriving before ``T``, into the ring (``pt``: PartTables, ``ps``:
    PartState).  Segment by segment, then spike by spike in ascending neuron order (the
    one-thread order); when every segment has its own delay (``pt.by_spike``) a slot
    receives one segment's terms per step, so spike by spike, then segment by segment
    gives each slot the same order, reading each spike's row once, front to back."""
    nseg = pt.sdel.shape[0]
    m_end = 0
    while m_end < nseg and t - 1 + pt.sdel[m_end] < T:
        m_end += 1
    if m_end == 0:
        return
    if pt.flat and m_end == nseg:
        _push_flat(k, t, pt, ps)
    elif pt.by_spike:
        _push_by_spike(k, t, m_end, pt, ps)
    else:
        _push_by_segment(k, t, m_end, pt, ps)


@njit(cache=True, inline="always")
def _push_by_segment(k, t, m_end, pt, ps):
    """:func:`push_range`, segments ``0 <= m < m_end``, segment by segment."""
    P = pt.bounds.shape[0] - 1
    par = (t - 1) & 1
    R, n = pt.R, ps.V.shape[0]
    nseg = pt.sdel.shape[0]
    ring, bidx, bw = ps.ring, pt.bidx, pt.bw
    bp = pt.bptr[k]
    tm = (t - 1) % R
    for m in range(m_end):
        slot = tm + pt.sdel[m]
        if slot >= R:
            slot -= R
        base = np.uint64(slot * n)
        cnt = 0
        for kk in range(P):
            si, sv = ps.spk_i[kk, par], ps.spk_v[kk, par]
            for e in range(ps.spk_c[kk, 2 * par]):
                v = sv[e]
                rp = np.uint64(si[e] * nseg + m)
                p0 = bp[rp]
                p1 = bp[rp + np.uint64(1)]
                for p in range(np.uint64(p0), np.uint64(p1)):
                    ring[base + np.uint64(bidx[p])] += v * bw[p]
                cnt += p1 - p0
        ps.syn[k, pt.sstage[m]] += cnt


@njit(cache=True, inline="always")
def _push_flat(k, t, pt, ps):
    """:func:`push_range` when every segment arrives within the run and ``pt.flat``: each
    spike's whole sub-row in one loop (the same terms in the same order as
    :func:`_push_by_spike`), the ring position of a synapse ``(t - 1) % R * n + boff[p]``
    less ``R*n`` past the ring's end; the events are counted per spike (``ps.nflat``)."""
    P = pt.bounds.shape[0] - 1
    par = (t - 1) & 1
    n = ps.V.shape[0]
    ring, boff, bw, bp, nfl = ps.ring, pt.boff, pt.bw, pt.rptr[k], ps.nflat[k]
    rn = np.uint64(pt.R * n)
    tb = np.uint64(((t - 1) % pt.R) * n)
    for kk in range(P):
        si, sv = ps.spk_i[kk, par], ps.spk_v[kk, par]
        ne = ps.spk_c[kk, 2 * par]
        for e in range(ne):
            v = sv[e]
            i = np.uint64(si[e])
            p0 = np.uint64(bp[i])
            p1 = np.uint64(bp[i + np.uint64(1)])
            if e + 1 < ne:   # the next spike's sub-row, fetched while this one is added
                i2 = np.uint64(si[e + 1])
                _prefetch_row(boff, bw, np.uint64(bp[i2]), np.uint64(bp[i2 + np.uint64(1)]))
            for p in range(p0, p1):
                a = tb + np.uint64(boff[p])
                if a >= rn:
                    a -= rn
                ring[a] += v * bw[p]
            nfl[i] += 1


@njit(cache=True, inline="always")
def _push_by_spike(k, t, m_end, pt, ps):
    """:func:`push_range`, segments ``0 <= m < m_end``, spike by spike (distinct delays)."""
    P = pt.bounds.shape[0] - 1
    par = (t - 1) & 1
    R, n = pt.R, ps.V.shape[0]
    nseg = pt.sdel.shape[0]
    ring, bidx, bw, sdel, sstage = ps.ring, pt.bidx, pt.bw, pt.sdel, pt.sstage
    bp, syn = pt.bptr[k], ps.syn[k]
    tm = (t - 1) % R
    for kk in range(P):
        si, sv = ps.spk_i[kk, par], ps.spk_v[kk, par]
        for e in range(ps.spk_c[kk, 2 * par]):
            v = sv[e]
            rp = np.uint64(si[e] * nseg)
            p0 = bp[rp]
            for m in range(np.uint64(m_end)):
                p1 = bp[rp + m + np.uint64(1)]
                slot = tm + sdel[m]
                if slot >= R:
                    slot -= R
                base = np.uint64(slot * n)
                for p in range(np.uint64(p0), np.uint64(p1)):
                    ring[base + np.uint64(bidx[p])] += v * bw[p]
                syn[sstage[m]] += p1 - p0
                p0 = p1


@njit(cache=True, no_cpython_wrapper=True)
def input_range(k, t, pt, ps, ev_i, ev_v, k0, k1):
    """Thread ``k``: input events ``(ev_i, ev_v)[k0:k1]`` of step ``t`` through its sub-rows
    of the input edge into the ring slot of step ``t``.  With ``pt.single`` without a branch
    per event: an event whose sub-row is empty adds ``v * 0`` to a neuron of the range,
    which leaves its sum's bits as they are (a sum of terms started at +0.0 is never -0.0,
    and ``x + 0.0 == x`` for every other ``x``)."""
    n = ps.V.shape[0]
    base = np.uint64((t % pt.R) * n)
    ring, ip, iidx, iw = ps.ring, pt.iptr[k], pt.iidx, pt.iw
    cnt = 0
    if pt.single:
        tg, wt, ln = pt.itgt[k], pt.iwt[k], pt.ilen[k]
        for e in range(k0, k1):
            i = np.uint64(ev_i[e])
            ring[base + np.uint64(tg[i])] += ev_v[e] * wt[i]
            cnt += ln[i]
        ps.syn[k, pt.g_in] += cnt
        return
    for e in range(k0, k1):
        i = np.uint64(ev_i[e])
        v = ev_v[e]
        p0 = ip[i]
        p1 = ip[i + np.uint64(1)]
        for p in range(np.uint64(p0), np.uint64(p1)):
            ring[base + np.uint64(iidx[p])] += v * iw[p]
        cnt += p1 - p0
    ps.syn[k, pt.g_in] += cnt


@njit(cache=True, no_cpython_wrapper=True)
def update_range(k, t, tab, pt, ps):
    """Thread ``k``: every neuron of its range updated from the ring slot of step ``t``
    (the slot cleared as read; the one-thread full pass's operations), its spikes listed
    (parity ``t % 2``, ascending global index); returns their count."""
    pop = tab.pops[0]
    lo, hi = pt.bounds[k], pt.bounds[k + 1]
    n = ps.V.shape[0]
    base = np.uint64((t % pt.R) * n)
    ring, V, U, fl = ps.ring, ps.V, ps.U, ps.flags[k]
    theta, reset, v_reset, v_min = pop.theta, pop.reset, pop.v_reset, pop.v_min
    has_vmin, tern, keep_u = pop.has_vmin != 0, pop.ternary != 0, pop.recn > 0
    ulo = np.uint64(lo)
    if pop.pn == 0:
        beta = pop.beta
        for i in range(np.uint64(hi - lo)):
            j = ulo + i
            u, f, vn = neuron_step(V[j], ring[base + j], beta, theta, reset, v_reset, has_vmin,
                                   v_min, tern)
            ring[base + j] = 0
            if keep_u:
                U[j] = u
            V[j] = vn
            fl[i] = f
    else:
        nb, nt, no = tab.nbeta, tab.ntheta, np.uint64(pop.noff)
        for i in range(np.uint64(hi - lo)):
            j = ulo + i
            u, f, vn = neuron_step(V[j], ring[base + j], nb[no + j], nt[no + j], reset, v_reset,
                                   has_vmin, v_min, tern)
            ring[base + j] = 0
            if keep_u:
                U[j] = u
            V[j] = vn
            fl[i] = f
    par = t & 1
    si = ps.spk_i[k, par]
    c = collect_spikes(fl, hi - lo, si, ps.spk_v[k, par], ZERO)
    for e in range(c):
        si[e] += lo
    ps.spk_c[k, 2 * par] = c
    return c


@njit(cache=True, inline="always")
def record_range(k, t, b, tab, pt, ps, mem_out):
    """Thread ``k``: ``u`` of population 0's recorded neurons in its range into
    ``mem_out[t, b, :]``."""
    pop = tab.pops[0]
    lo, hi = pt.bounds[k], pt.bounds[k + 1]
    for r in range(pop.recoff, pop.recoff + pop.recn):
        j = tab.rec_idx[r]
        if lo <= j < hi:
            mem_out[t, b, r] = ps.U[j]


@njit(cache=True, inline="always")
def range_step(k, tb, T, tab, pt, ps, inp, kk, mem_out):
    """Thread ``k``'s part of step ``t`` of sample ``b`` (``tb = (t, b)``; ``kk = (k0, k1)``:
    the step's input events): push, input, update, record."""
    t, b = tb
    if t == 0:   # a new sample: this range's neurons at rest
        for j in range(pt.bounds[k], pt.bounds[k + 1]):
            ps.V[j] = 0
            ps.U[j] = 0
    else:
        push_range(k, t, T, pt, ps)
    if kk[1] > kk[0]:
        input_range(k, t, pt, ps, inp.ev_i, inp.ev_v, kk[0], kk[1])
    update_range(k, t, tab, pt, ps)
    if tab.pops[0].recn > 0:
        record_range(k, t, b, tab, pt, ps, mem_out)


@njit(cache=True, inline="always")
def _done_pos(k):
    """``sync`` entry of range ``k``'s last step done."""
    return np.int64(SYNC_STRIDE * (1 + k))


@njit(cache=True, inline="always")
def _claim_pos(P, k):
    """``sync`` entry of range ``k``'s last step claimed (``P`` ranges)."""
    return np.int64(SYNC_STRIDE * (1 + P + k))


@njit(cache=True, inline="always")
def _serial_pos(P):
    """``sync`` entry of the last step whose serial part (thread 0) is done."""
    return np.int64(SYNC_STRIDE * (1 + 2 * P))


@njit(cache=True, no_cpython_wrapper=True)
def wait_steps(sync, P, g, serial):
    """Wait until every range has done step ``g`` and the serial part has done step
    ``serial`` (spin, then yield the core at each check).  Returns False if a stop was
    requested (``sync[0]``)."""
    spins = 0
    for k in range(P + 1):
        pos, need = (_done_pos(k), g) if k < P else (_serial_pos(P), serial)
        while _load_acquire(sync, pos) < need:
            if _load_acquire(sync, ZERO) != 0:
                return False
            spins += 1
            _relax(spins > PART_SPINS)
    return True


@njit(cache=True, no_cpython_wrapper=True)
def run_jobs(k, g, tb, T, tab, pt, ps, inp, kk, mem_out):
    """Thread ``k``'s share of step ``g`` (``tb = (t, b)``; ``kk``: its input events): once
    every range has done step ``g - 1`` and the serial part step ``g - 2`` (whose spike
    lists step ``g`` overwrites), claim and run the range jobs of step ``g`` (its own range
    first, then any other nobody has claimed yet: a descheduled thread's range is run by
    the other).  Returns False if stopped."""
    P = pt.bounds.shape[0] - 1
    if not wait_steps(ps.sync, P, g - 1, g - 2):
        return False
    for j in range(P):
        r = (k + j) % P
        if _claim(ps.sync, _claim_pos(P, r), g - 1):
            range_step(r, tb, T, tab, pt, ps, inp, kk, mem_out)
            _store_release(ps.sync, _done_pos(r), g)
            ps.jobs[k, 0] += 1
    return True


# ---------------------------------------------------------------------------------------
# drivers
# ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def part_helper(k, tab, pt, ps, inp, T, b0, b1, mem_out):
    """Thread ``k >= 1`` of a partitioned kernel call: :func:`run_jobs` at every step of
    samples ``b0 <= b < b1``.  Returns False if stopped."""
    for b in range(b0, b1):
        k0, pend = inp.ev_ptr[b], inp.ev_ptr[b + 1]
        for t in range(T):
            k1 = step_end(inp.ev_t, k0, pend, t)
            if not run_jobs(k, (b - b0) * T + t + 1, (t, b), T, tab, pt, ps, inp, (k0, k1),
                            mem_out):
                return False
            k0 = k1
    return True


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def part_steps(bt, t, tab, pt, ps, inp, S, opts, out, ocnt, kr):
    """Thread 0: steps ``t, t + 1, ...`` of sample ``b`` (``bt = (b, b0, T)``; ``kr =
    (k0, room)``: input events from ``k0``, room needed per step) while ``out`` has room:
    :func:`run_jobs`, the wait for every range, then population 0's spikes merged
    (ascending) into the spike ring and the output, and every other population by
    :func:`eventsim.loop.pop_step`.  Returns ``(t, ocnt, k0)`` where it stopped (``t = -1``:
    stopped by a failed thread)."""
    b, b0, T = bt
    k0, room = kr
    P = pt.bounds.shape[0] - 1
    pend, cap = inp.ev_ptr[b + 1], out.neuron.shape[0]
    pop = tab.pops[0]
    ring_idx, ring_val, ringc = S.ring
    counts, o_neuron, o_value = out.counts, out.neuron, out.value
    while t < T and ocnt + room <= cap:
        g = (b - b0) * T + t + 1
        k1 = step_end(inp.ev_t, k0, pend, t)
        if not run_jobs(ZERO, g, (t, b), T, tab, pt, ps, inp, (k0, k1), out.mem):
            return -1, ocnt, k0
        if not wait_steps(ps.sync, P, g, g - 1):
            return -1, ocnt, k0
        par = t & 1
        rb = pop.ring + (t % pop.R) * pop.n
        c = 0
        for kk in range(P):
            for e in range(ps.spk_c[kk, 2 * par]):
                ring_idx[rb + c] = ps.spk_i[kk, par, e]
                ring_val[rb + c] = ps.spk_v[kk, par, e]
                c += 1
        _store_release(ps.sync, _serial_pos(P), g)   # step g's spike lists read
        ringc[pop.ringc + t % pop.R] = c
        if c > 0:
            counts[b - b0, t, 0] = c
            copy_spikes(o_neuron, o_value, ocnt, ring_idx, ring_val, rb, c)
            ocnt += c
        stamp = (b - b0) * T + t + 1
        for q in range(1, tab.pops.shape[0]):
            ocnt, _ = pop_step(q, (t, b, b - b0), T, tab, inp, S, opts, out, ocnt,
                               (k0, k1, stamp, 0))
        k0 = k1
        t += 1
    return t, ocnt, k0


@njit(cache=True, nogil=True)
def part_main(tab, pt, ps, inp, T, b0, b1, opts, readout_out, mem_out):
    """Thread 0 of a partitioned kernel call (arguments and result as
    ``eventsim.loop.run_batch``'s, plus ``pt``: PartTables, ``ps``: PartState); the
    synaptic event counts returned are thread 0's serial part's (add ``ps.syn``).  The
    first element of the result is False if a helper thread stopped it."""
    S, out = begin(tab, T, b0, b1, opts, readout_out, mem_out, ZERO, new_shared(tab, ZERO))
    room = ZERO
    for q in range(tab.pops.shape[0]):
        if tab.pops[q].kind == POP_SPIKING:
            room += tab.pops[q].n
    ocnt = ZERO
    ok = True
    for b in range(b0, b1):
        sample_setup(b, b0, T, opts, tab, inp, S)
        t, k0 = ZERO, inp.ev_ptr[b]
        while ok and t < T:
            if ocnt + room > out.neuron.shape[0]:
                out = grow_output(out, ocnt, room)
            t, ocnt, k0 = part_steps((b, b0, T), t, tab, pt, ps, inp, S, opts, out, ocnt,
                                     (k0, room))
            ok = t >= 0
    return (ok, out.counts, out.neuron[:ocnt].copy(), out.value[:ocnt].copy(), S.scr.syn,
            S.scr.prof)


def run_partitioned(tab, inp, T, b0, b1, opts, readout_out, mem_out, pt: PartTables):
    """Samples ``b0 <= b < b1`` on ``P = len(pt.bounds) - 1`` threads (this one and P - 1
    helpers, all releasing the GIL); arguments and result as ``eventsim.loop.run_batch``'s.
    If a thread fails the others are stopped and the error raised."""
    P = len(pt.bounds) - 1
    n = int(tab.pops[0]["n"])
    ps = new_part_state(pt, n, tab.stages.shape[0], tab.const_all.dtype)
    failure = []

    def helper(k):
        try:
            part_helper(np.int64(k), tab, pt, ps, inp, T, b0, b1, mem_out)
        except BaseException as e:   # noqa: BLE001 (re-raised by this thread)
            failure.append(e)
            ps.sync[0] = 1

    threads = [threading.Thread(target=helper, args=(k,), name=f"eventsim-part-{k}", daemon=True)
               for k in range(1, P)]
    for th in threads:
        th.start()
    try:
        res = part_main(tab, pt, ps, inp, T, np.int64(b0), np.int64(b1), opts, readout_out,
                        mem_out)
    finally:
        ps.sync[0] = 1
        for th in threads:
            th.join()
    if failure:
        raise failure[0]
    ok, counts, neuron, value, syn, prof = res
    if not ok:
        raise RuntimeError("partitioned schedule: a helper thread stopped")
    syn = syn + ps.syn.sum(axis=0)[:len(syn)]
    flat_events(pt, ps, syn)
    return counts, neuron, value, syn, prof
