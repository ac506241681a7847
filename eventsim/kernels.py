"""Numba kernels of the event-driven simulator (only ``@njit`` functions over arrays).

``eventsim.network`` validates a model and compiles it into the flat integer/float tables
documented below; ``eventsim.simulator`` validates the input and calls
:func:`eventsim.loop.run_batch`, whose phases call these kernels.
Nothing here checks its arguments.  ``tests/eventsim/test_kernels.py`` checks every kernel
against a reference written from what it computes (dense matrices, convolutions, pooling,
the canonical neuron update of ``snncore.neuron``), not from its loops.

Vocabulary
----------
space       a flat accumulator of input currents (a population's, or an intermediate result
            such as a pooled map).  Feature maps ``(C, H, W)`` are stored channel-last
            (``(y*W + x)*C + c``) so that a convolution streams contiguous ``C_out`` rows; a
            space is split into *blocks* of ``bs`` entries (``bs = C`` channel-last, else 1)
            and keeps a list of touched blocks, so only touched entries are read and cleared.
stage       one projection from a source space to a destination space (dense rows, CSR rows,
            a convolution kernel scattered around the event, a pooling window, identity).
edge        a chain of stages from a source (the input or a population) to a population;
            feed-forward edges deliver in the same step, dense connections ``delay`` steps
            later (from the source's ring of recent spike lists).
bundle      the sparse connections between one source and one target population, merged:
            one source-major row per neuron split into segments (one per connection,
            sorted by delay; ``ptr[i * nseg + m]`` starts segment ``m`` of row ``i``).  A
            spike is delivered once, into a ring of future input currents indexed by
            arrival step (``R`` slots of ``n_target`` values, each with the list of its
            synapses' targets); at each step the slot due is added to the target's
            accumulator (through the list, or all of it when it is dense).
population  spiking neurons (docs/methods.md section 2) or the readout integrator.

Float arithmetic is done in the model's dtype with exactly the operations of the dense
engine (``u = beta * v + I``; no FMA contraction: no ``fastmath``).  ``u >= theta`` fires.
"""
from __future__ import annotations

import sys

import numpy as np
from numba import njit

from snncore import neuron as _neuron

from .tables import (HARD_RESET, K_BUNDLED, K_CONV, K_DENSE, K_IDENTITY, K_MAXPOOL,  # noqa: F401
                     K_SPARSE, K_SUMPOOL, POP_READOUT, POP_SPIKING, POST_NONE, POST_SCALE,
                     SUBTRACT_RESET)

DRIVE_NONE, DRIVE_STATIC, DRIVE_STEPS = 0, 1, 2
MODE_STEP, MODE_PREDICT = 0, 1
CUBA_LAZY, CUBA_STEP = 0, 1
SCHEDULE_TIME, SCHEDULE_LAYER = 0, 1
# a sparse or conv delivery of >= n_target / 16 synapses counts as touching every target
SPARSE_WHOLE_DIV = 16
LEAK_REPEAT, LEAK_POWER = 0, 1


# ---------------------------------------------------------------------------------------
# input check
# ---------------------------------------------------------------------------------------
EV_OK, EV_VALUE, EV_TIME, EV_INDEX, EV_ORDER = 0, 1, 2, 3, 4


@njit(cache=True)
def _events_ok(times, indices, values, ptr, T, n_inputs):
    """Whether every event passes :func:`check_events`'s tests, in one branch-free pass
    that vectorises: times and indices compared as unsigned integers (a negative one is
    huge), NaN and infinities caught by ``v - v != 0``, the order within a sample by the
    sign bit of the OR of successive differences (no overflow once every time is in
    ``[0, T)``, which the same result requires)."""
    uT, un = np.uint64(T), np.uint64(n_inputs)
    out = np.uint64(0)       # any event out of range or not finite
    order = 0                # negative if some sample steps back in time
    for b in range(len(ptr) - 1):
        lo, hi = ptr[b], ptr[b + 1]
        if hi <= lo:
            continue
        tt, ii, vv = times[lo:hi], indices[lo:hi], values[lo:hi]
        t_prev, t_next = times[lo:hi - 1], times[lo + 1:hi]
        for k in range(hi - lo):
            out |= (np.uint64(np.uint64(tt[k]) >= uT) | np.uint64(np.uint64(ii[k]) >= un)
                    | np.uint64(vv[k] - vv[k] != 0))
        for k in range(hi - lo - 1):
            order |= t_next[k] - t_prev[k]
    return out == 0 and order >= 0


@njit(cache=True)
def check_events(times, indices, values, ptr, T, n_inputs):
    """The first event that breaks an event stream's contract, in one pass: returns
    ``(code, k)``, ``(EV_OK, -1)`` if there is none.  Event ``k`` of sample ``b``
    (``ptr[b] <= k < ptr[b+1]``; ``ptr`` rises from 0 to ``len(times)``) needs a finite
    value (else ``EV_VALUE``), ``0 <= times[k] < T`` (``EV_TIME``), ``0 <= indices[k] <
    n_inputs`` (``EV_INDEX``) and ``times[k] >= times[k-1]`` within its sample
    (``EV_ORDER``), checked in that order."""
    # a branch-free pass (vectorised) first; the event-by-event search only if it fails
    if _events_ok(times, indices, values, ptr, T, n_inputs):
        return EV_OK, -1
    b = 0
    nxt = ptr[1]
    for k in range(len(times)):
        while k >= nxt:
            b += 1
            nxt = ptr[b + 1]
        if not np.isfinite(values[k]):
            return EV_VALUE, k
        t = times[k]
        if t < 0 or t >= T:
            return EV_TIME, k
        i = indices[k]
        if i < 0 or i >= n_inputs:
            return EV_INDEX, k
        if k > ptr[b] and t < times[k - 1]:
            return EV_ORDER, k
    return EV_OK, -1


# ---------------------------------------------------------------------------------------
# scatter kernels: events (index, value) of a source space -> currents of a destination
# ---------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def touch(blk, mark, m_off, tlist, tcount, s):
    """Append block ``blk`` of space ``s`` to its touched list unless already marked."""
    if mark[m_off + blk] == 0:
        mark[m_off + blk] = 1
        tlist[m_off + tcount[s]] = blk
        tcount[s] += 1


# Hot loops index with unsigned integers (no negative-index wraparound code, so the row
# loops vectorise) and avoid array slices (whose reference counting costs more than a short
# row).  Window geometry comes from per-stage tables (``eventsim.network.window_tables``),
# not from integer divisions.

@njit(cache=True, inline="always")
def _add_row(acc, ab, wt, wb, n, v):
    """``acc[ab + j] += v * wt[wb + j]`` for ``j < n`` (unsigned offsets and count); ``v``
    of +1 or -1 adds or subtracts the weight (same floats as the product, no multiply)."""
    if v == 1.0:
        for j in range(n):
            acc[ab + j] += wt[wb + j]
    elif v == -1.0:
        for j in range(n):
            acc[ab + j] -= wt[wb + j]
    else:
        for j in range(n):
            acc[ab + j] += v * wt[wb + j]


@njit(cache=True)
def scatter_dense(wt, w_off, n_dst, ev_idx, ev_val, k0, k1, acc, a_off):
    """``acc[a_off + j] += v * WT[i, j]`` for events ``(i, v) = (ev_idx[k], ev_val[k])``,
    ``k0 <= k < k1``; ``WT [n_src, n_dst]`` (transposed weight, one contiguous row per
    source) starts at ``wt[w_off]``.  Returns the number of synaptic events."""
    nd = np.uint64(n_dst)
    ao = np.uint64(a_off)
    for k in range(k0, k1):
        _add_row(acc, ao, wt, np.uint64(w_off + ev_idx[k] * n_dst), nd, ev_val[k])
    return (k1 - k0) * n_dst


@njit(cache=True)
def dense_window(wt, w_off, n_src, n_dst, events, k0, k1, t0, acc2):
    """Source-major :func:`scatter_dense` over several steps: for events ``events = (ev_t,
    ev_idx, ev_val)``, ``(t, i, v) = (ev_t[k], ev_idx[k], ev_val[k])``, ``k0 <= k < k1``
    (sorted by step, within a step by source index), ``acc2[(t - t0) * n_dst + j] += v *
    WT[i, j]``.

    Events are regrouped by source (counting sort, stable), so each source's row is read
    once per window and added to the rows of all the steps it spiked at.  Every entry
    ``(t, j)`` still receives its terms in ascending source order, the order in which
    :func:`scatter_dense` adds a step's events: the sums are bit-identical.  Returns the
    number of synaptic events."""
    ev_t, ev_idx, ev_val = events
    m = k1 - k0
    start = np.zeros(n_src + 1, np.int64)
    for k in range(k0, k1):
        start[ev_idx[k] + 1] += 1
    for i in range(n_src):
        start[i + 1] += start[i]
    fill = start[:n_src].copy()
    row = np.empty(m, np.int64)          # offset of the event's step in acc2
    val = np.empty(m, ev_val.dtype)
    for k in range(k0, k1):
        i = ev_idx[k]
        f = fill[i]
        row[f] = (ev_t[k] - t0) * n_dst
        val[f] = ev_val[k]
        fill[i] = f + 1
    nd = np.uint64(n_dst)
    for i in range(n_src):
        wb = np.uint64(w_off + i * n_dst)
        for f in range(start[i], start[i + 1]):
            _add_row(acc2, np.uint64(row[f]), wt, wb, nd, val[f])
    return m * n_dst


@njit(cache=True)
def scatter_sparse(wf, wi, st, dsp, A, ev_idx, ev_val, k0, k1):
    """Source-major CSR rows of stage ``st`` (tables.STAGE record; ``indptr = wi[st.poff:]``,
    ``indices = wi[st.ioff:]``, ``data = wf[st.woff:]``) into space ``st.dst`` (``dsp``: its
    SPACE record; ``A``: the Accum): for event ``(i, v) = (ev_idx[k], ev_val[k])``,
    ``k0 <= k < k1``, and ``p`` in ``indptr[i]:indptr[i+1]``, ``acc[dsp.off + indices[p]]
    += v * data[p]``, touching the target's block unless the space is wholly touched
    (``A.allt``).  The indices are int32, two to an int64 entry (``network.pack_int32``):
    ``indices[p] = wi.view(int32)[2 * st.ioff + p]``.  Returns the number of synaptic
    events."""
    acc, mark, tlist, tcount, allt = A
    s = st.dst
    wi32 = wi.view(np.int32)
    ao, io, do = np.uint64(dsp.off), np.uint64(2 * st.ioff), np.uint64(st.woff)
    po = np.uint64(st.poff)
    n = 0
    if allt[s]:
        for k in range(np.uint64(k0), np.uint64(k1)):
            i = np.uint64(ev_idx[k])
            v = ev_val[k]
            p0 = wi[po + i]
            p1 = wi[po + i + np.uint64(1)]
            for p in range(np.uint64(p0), np.uint64(p1)):
                acc[ao + np.uint64(wi32[io + p])] += v * wf[do + p]
            n += p1 - p0
        return n
    bs, mo = dsp.bs, np.uint64(dsp.boff)
    cnt = tcount[s]
    for k in range(np.uint64(k0), np.uint64(k1)):
        i = np.uint64(ev_idx[k])
        v = ev_val[k]
        p0 = wi[po + i]
        p1 = wi[po + i + np.uint64(1)]
        for p in range(np.uint64(p0), np.uint64(p1)):
            j = wi32[io + p]
            acc[ao + np.uint64(j)] += v * wf[do + p]
            blk = np.uint64(j if bs == 1 else j // bs)
            if mark[mo + blk] == 0:
                mark[mo + blk] = 1
                tlist[mo + np.uint64(cnt)] = blk
                cnt += 1
        n += p1 - p0
    tcount[s] = cnt
    return n


@njit(cache=True, inline="always")
def _event_window(wi, t_off, Hi, Wi, C, i):
    """Where input entry ``i`` of a channel-last ``(Hi, Wi, C)`` map lands, read from the
    stage's :func:`eventsim.network.window_tables` at ``wi[t_off:]``: returns
    ``(c, y, x, oy0, oy1, ox0, ox1)``, its channel and position and the inclusive ranges of
    the output positions whose window contains it."""
    HW = Hi * Wi
    t_y = t_off + HW * C
    t_x = t_y + HW
    t_oy = t_x + HW
    t_ox = t_oy + 2 * Hi
    pos = wi[t_off + i]
    y = wi[t_y + pos]
    x = wi[t_x + pos]
    return (i - pos * C, y, x, wi[t_oy + y], wi[t_oy + Hi + y], wi[t_ox + x],
            wi[t_ox + Wi + x])


@njit(cache=True)
def scatter_conv(wf, wi, st, dsp, A, ev_idx, ev_val, k0, k1, pbuf):
    """Cross-correlation scattered around each event (PyTorch/NIR Conv2d, zero padding).

    Stage ``st`` (tables.STAGE record) maps source ``(Hi, Wi, Ci)`` to destination ``(Ho,
    Wo, Co)``, both channel-last; its weight is stored ``[Ci, kh, kw, Co]`` at
    ``wf[st.woff]`` and ``wi[st.toff:]`` holds its :func:`eventsim.network.window_tables`.
    An event ``(i, v) = (ev_idx[k], ev_val[k])``, ``k0 <= k < k1``, at ``(y, x, ci)``
    reaches output ``(oy, ox)`` through tap ``(ky, kx) = (y + ph - oy*sh, x + pw - ox*sw)``
    when the tap lies inside the kernel: ``acc[(oy, ox), :] += v * W[ci, ky, kx, :]`` in
    space ``st.dst`` (``dsp``: its SPACE record; ``A``: the Accum).  Blocks are output
    positions (all ``Co`` channels), not marked when the space is wholly touched
    (``A.allt``).  ``pbuf`` (>= 2*kh*kw int64) holds one event's row offsets.  Returns the
    number of synaptic events."""
    acc, mark, tlist, tcount, allt = A
    s = st.dst
    Hi, Wi, Ci, Wo, Co = st.Hi, st.Wi, st.Ci, st.Wo, st.Co
    kh, kw, sh, sw, ph, pw = st.kh, st.kw, st.sh, st.sw, st.ph, st.pw
    w_off, t_off, a_off, m_off = st.woff, st.toff, dsp.off, dsp.boff
    whole = allt[s]
    n = 0
    C = np.uint64(Co)
    for k in range(k0, k1):
        v = ev_val[k]
        ci, y, x, oy0, oy1, ox0, ox1 = _event_window(wi, t_off, Hi, Wi, Ci, ev_idx[k])
        m = 0
        for oy in range(oy0, oy1 + 1):
            wrow = w_off + (ci * kh + y + ph - oy * sh) * kw * Co
            for ox in range(ox0, ox1 + 1):
                opos = oy * Wo + ox
                if not whole and mark[m_off + opos] == 0:
                    mark[m_off + opos] = 1
                    tlist[m_off + tcount[s]] = opos
                    tcount[s] += 1
                pbuf[m] = a_off + opos * Co
                pbuf[m + 1] = wrow + (x + pw - ox * sw) * Co
                m += 2
        for p in range(0, m, 2):
            _add_row(acc, np.uint64(pbuf[p]), wf, np.uint64(pbuf[p + 1]), C, v)
        n += (m // 2) * Co
    return n


@njit(cache=True)
def scatter_sumpool(wi, st, dsp, A, ev_idx, ev_val, k0, k1):
    """Sum pooling (no padding, floor mode) of stage ``st`` into space ``st.dst`` (``dsp``,
    ``A`` as in :func:`scatter_conv`): an event at ``(y, x, c)`` adds its value to every
    window ``(oy, ox, c)`` containing it (ranges from the stage's
    :func:`eventsim.network.window_tables` at ``wi[st.toff:]``).  Average pooling is this
    followed by a multiplication by ``dtype(1/(kh*kw))`` when the destination space is read
    (``POST_SCALE``), as the dense engine computes a window mean.  Blocks are touched even
    when the space is wholly touched (``A.allt`` is not read: the drain clears them either
    way).  Returns the number of synaptic events."""
    acc, mark, tlist, tcount = A.acc, A.mark, A.tlist, A.tcount
    s = st.dst
    Hi, Wi, C, Wo, t_off = st.Hi, st.Wi, st.Ci, st.Wo, st.toff
    a_off, m_off = dsp.off, dsp.boff
    n = 0
    for k in range(k0, k1):
        v = ev_val[k]
        c, _, _, oy0, oy1, ox0, ox1 = _event_window(wi, t_off, Hi, Wi, C, ev_idx[k])
        for oy in range(oy0, oy1 + 1):
            for ox in range(ox0, ox1 + 1):
                opos = oy * Wo + ox
                acc[a_off + opos * C + c] += v
                if mark[m_off + opos] == 0:
                    mark[m_off + opos] = 1
                    tlist[m_off + tcount[s]] = opos
                    tcount[s] += 1
                n += 1
    return n


@njit(cache=True)
def scatter_maxpool(wi, st, dsp, A, ev_idx, ev_val, k0, k1, last, stamp):
    """Max pooling of binary spikes (arguments as :func:`scatter_sumpool`): a window emits 1
    at most once per step.  ``last[st.moff:]`` (one entry per output) holds the stamp of the
    step that last emitted; ``stamp`` is this step's."""
    acc, mark, tlist, tcount = A.acc, A.mark, A.tlist, A.tcount
    s = st.dst
    Hi, Wi, C, Wo, t_off, l_off = st.Hi, st.Wi, st.Ci, st.Wo, st.toff, st.moff
    a_off, m_off = dsp.off, dsp.boff
    n = 0
    for k in range(k0, k1):
        v = ev_val[k]
        c, _, _, oy0, oy1, ox0, ox1 = _event_window(wi, t_off, Hi, Wi, C, ev_idx[k])
        for oy in range(oy0, oy1 + 1):
            for ox in range(ox0, ox1 + 1):
                opos = oy * Wo + ox
                j = opos * C + c
                if last[l_off + j] != stamp:
                    last[l_off + j] = stamp
                    acc[a_off + j] += v
                    if mark[m_off + opos] == 0:
                        mark[m_off + opos] = 1
                        tlist[m_off + tcount[s]] = opos
                        tcount[s] += 1
                    n += 1
    return n


@njit(cache=True)
def scatter_identity(s, dsp, A, ev_idx, ev_val, k0, k1):
    """``acc[dsp.off + i] += v`` into space ``s`` (``dsp``: its SPACE record; ``A``: the
    Accum), touching the blocks even when the space is wholly touched (a population fed
    directly by another, or a pooled result handed on to its population).  Returns the
    number of events."""
    acc, mark, tlist, tcount = A.acc, A.mark, A.tlist, A.tcount
    a_off, bs, m_off = dsp.off, dsp.bs, dsp.boff
    for k in range(k0, k1):
        i = ev_idx[k]
        acc[a_off + i] += ev_val[k]
        blk = i if bs == 1 else i // bs
        if mark[m_off + blk] == 0:
            mark[m_off + blk] = 1
            tlist[m_off + tcount[s]] = blk
            tcount[s] += 1
    return k1 - k0


# ---------------------------------------------------------------------------------------
# the delay ring of a bundle (tables.DelayRing): future input currents by arrival step
# ---------------------------------------------------------------------------------------
@njit(cache=True)
def delay_push(ring, bun, D, ev, t, T, cap, dr):
    """Push events emitted at step ``t`` into a bundle's delay ring.

    ``ring``: the DelayRing; ``bun``: the bundle's record (tables.BUNDLE); ``D``: the
    Delivery group (``wi``/``wf``: the int and float tables; ``syn``: synaptic events per
    stage, incremented); ``ev = (ev_idx, ev_val, k0, k1)``: the source's spikes of step
    ``t``, ``(ev_idx, ev_val)[k0:k1]``; ``T``: steps of the run; ``cap``: list entries that
    make a slot dense (see below); ``dr = (d_lo, d_hi)``: only the segments with delay
    ``d_lo <= d < d_hi`` (the pipelined schedule splits them between two threads).

    Segment ``m`` of row ``i`` (``wi[ptr + i*nseg + m] <= p < wi[ptr + i*nseg + m + 1]``,
    targets ``wi.view(int32)[2*idx + p]`` (int32, two to an int64 entry), weights
    ``wf[w + p]``, delay ``d = wi[seg + 2m]``, stage ``g = wi[seg + 2m + 1]``) adds ``v * w``
    to slot ``(t + d) % R`` (values ``ring.val[roff + slot*n_t + j]``), appends ``j`` to the
    slot's list (``ring.lst[loff + slot*(n_t + 1):]``, ``ring.cnt[rcoff + slot]`` entries; a
    target may appear more than once; once ``cap <= n_t`` entries are listed the slot counts
    as dense, :func:`delay_advance` adds it whole, and the list stops growing) and counts its
    synapses in ``syn[g]``.  Segment by segment, then event by event (so connections with
    equal delays add up one after the other).  Segments arriving at or after ``T`` are
    skipped (delays ascending); ``1 <= d <= R``."""
    ev_idx, ev_val, k0, k1 = ev
    d_lo, d_hi = dr
    bring, blist, bcnt = ring
    wi, wf, syn = D.wi, D.wf, D.syn
    wi32 = wi.view(np.int32)
    p_off, s_off, nseg = bun.ptr, bun.seg, bun.nseg
    R, n_t, r_off, l_off, rc_off = bun.R, bun.n_t, bun.roff, bun.loff, bun.rcoff
    m_lo = 0
    while m_lo < nseg and wi[s_off + 2 * m_lo] < d_lo:
        m_lo += 1
    m_end = m_lo
    while m_end < nseg and t + wi[s_off + 2 * m_end] < T and wi[s_off + 2 * m_end] < d_hi:
        m_end += 1
    if m_end == m_lo:
        return
    tm = t % R
    io, wo = np.uint64(2 * bun.idx), np.uint64(bun.w)
    for m in range(m_lo, m_end):   # segment by segment: one slot, its count in a register
        slot = tm + wi[s_off + 2 * m]
        if slot >= R:
            slot -= R
        base = np.uint64(r_off + slot * n_t)
        lb = np.uint64(l_off + slot * (n_t + 1))
        c = bcnt[rc_off + slot]
        n = 0
        for k in range(np.uint64(k0), np.uint64(k1)):
            v = ev_val[k]
            rp = np.uint64(p_off + ev_idx[k] * nseg + m)
            p0 = wi[rp]
            p1 = wi[rp + np.uint64(1)]
            for p in range(np.uint64(p0), np.uint64(p1)):
                j = np.uint64(wi32[io + p])
                bring[base + j] += v * wf[wo + p]
                blist[lb + np.uint64(c)] = j     # branch-free: slot n_t is spare
                c += 1 if c < cap else 0
            n += p1 - p0
        bcnt[rc_off + slot] = c
        syn[wi[s_off + 2 * m + 1]] += n


@njit(cache=True, inline="always")
def slot_cap(n_t, dense_div):
    """Entries of a delay-ring slot's list (target of ``n_t`` neurons) at which
    :func:`delay_advance` adds the slot whole, given its ``dense_div`` (0: only a full
    list): :func:`delay_push` lists no more than that."""
    if dense_div <= 0:
        return n_t
    return min(n_t, (n_t + dense_div - 1) // dense_div)


@njit(cache=True)
def delay_advance(ring, bun, slot, dense_div, A, spaces):
    """Hand slot ``slot`` of a bundle's delay ring to the target's accumulator and clear it.

    ``ring``: the DelayRing; ``bun``: the bundle's record; ``dense_div``: a slot listing at
    least ``n_t / dense_div`` targets (0: never) or a full list is added whole; ``A``: the
    Accum; ``spaces``: the SPACE table (the target is ``spaces[bun.space]``).

    Added whole, the target space counts as wholly touched (``allt``); else entry by entry
    in list order, touching the targets' blocks (a repeated target adds the 0 left by its
    first entry: no change, as the slot never holds -0.0).  Same floats either way."""
    bring, blist, bcnt = ring
    acc, mark, tlist, tcount, allt = A
    n_t, r_off, rc_off = bun.n_t, bun.roff, bun.rcoff
    c = bcnt[rc_off + slot]
    if c == 0:
        return
    s = bun.space
    sp = spaces[s]
    base = np.uint64(r_off + slot * n_t)
    ao = np.uint64(sp.off)
    if c >= n_t or (dense_div > 0 and c * dense_div >= n_t):
        for j in range(np.uint64(n_t)):
            acc[ao + j] += bring[base + j]
            bring[base + j] = 0
        allt[s] = True
    else:
        lb = np.uint64(bun.loff + slot * (n_t + 1))
        whole = allt[s]
        bs, m_off = sp.bs, sp.boff
        cnt = tcount[s]
        for k in range(np.uint64(c)):
            j = np.uint64(blist[lb + k])
            acc[ao + j] += bring[base + j]
            bring[base + j] = 0
            if not whole:
                blk = np.int64(j) if bs == 1 else np.int64(j) // bs
                if mark[m_off + blk] == 0:
                    mark[m_off + blk] = 1
                    tlist[m_off + cnt] = blk
                    cnt += 1
        tcount[s] = cnt
    bcnt[rc_off + slot] = 0


@njit(cache=True)
def drain(spaces, s, A, out_idx, out_val):
    """Move the non-zero touched entries of space ``s`` (``spaces``: the SPACE table; ``A``:
    the Accum) into the event list ``(out_idx, out_val)`` (times ``scale`` for POST_SCALE
    spaces), clear them and the space's touched list; returns the number of events."""
    acc, mark, tlist, tcount, allt = A
    sp = spaces[s]
    n, a_off, bs, m_off, post, scale = sp.n, sp.off, sp.bs, sp.boff, sp.post, sp.scale
    cnt = 0
    if allt[s]:
        for i in range(n):
            x = acc[a_off + i]
            if x != 0:
                acc[a_off + i] = 0
                if post == POST_SCALE:
                    x = x * scale
                out_idx[cnt] = i
                out_val[cnt] = x
                cnt += 1
        for k in range(tcount[s]):
            mark[m_off + tlist[m_off + k]] = 0
    else:
        for k in range(tcount[s]):
            blk = tlist[m_off + k]
            mark[m_off + blk] = 0
            for i in range(blk * bs, blk * bs + bs):
                x = acc[a_off + i]
                if x != 0:
                    acc[a_off + i] = 0
                    if post == POST_SCALE:
                        x = x * scale
                    out_idx[cnt] = i
                    out_val[cnt] = x
                    cnt += 1
    tcount[s] = 0
    allt[s] = False
    return cnt


# ---------------------------------------------------------------------------------------
# neuron kernels (docs/methods.md section 2)
# ---------------------------------------------------------------------------------------
# One canonical update of one neuron, ``(u, s, v_new)``: written once, in the contract layer
# (snncore.neuron), and inlined here as in the dense engine's fused LIF loop.
neuron_step = _neuron.canonical_update


@njit(cache=True)
def update_all(pop, src, a_off, V, U, cst, flags):
    """:func:`neuron_step` for every neuron of population ``pop`` (its POP record: beta,
    theta, reset, ...): input ``src[a_off + i]`` (cleared), constant input ``cst``, state
    ``V``/``U`` at ``pop.noff + i``.  Writes ``v_new`` to ``V``, ``u`` to ``U`` when neurons
    are recorded (only they read it), spikes to ``flags[i]`` (int8).  The canonical update
    selects rather than branches on the neuron's state: the loop vectorises.  Populations with per-neuron beta/theta: :func:`update_all_per_neuron`
    (one function with both loops was measured 2x slower on this one).

    ``cst`` None: the population has no constant input (a full pass of a lazy population),
    and the input is ``src`` alone, one array fewer to read: the same floats as adding a
    zero constant, since ``x + 0 == x`` for every accumulated ``x`` (a sum started from +0
    is never -0)."""
    n, no, ao = pop.n, np.uint64(pop.noff), np.uint64(a_off)
    beta, theta, reset, v_reset, v_min = pop.beta, pop.theta, pop.reset, pop.v_reset, pop.v_min
    has_vmin, tern, keep_u = pop.has_vmin != 0, pop.ternary != 0, pop.recn > 0
    for i in range(np.uint64(n)):
        if cst is None:
            x = src[ao + i]
        else:
            x = src[ao + i] + cst[no + i]
        u, f, vn = neuron_step(V[no + i], x, beta, theta, reset, v_reset, has_vmin, v_min,
                               tern)
        src[ao + i] = 0
        if keep_u:
            U[no + i] = u
        V[no + i] = vn
        flags[i] = f


@njit(cache=True)
def update_all_per_neuron(pop, src, a_off, V, U, cst, flags, nbeta, ntheta):
    """:func:`update_all` with every neuron's own beta and theta, ``nbeta/ntheta[pop.noff +
    i]`` (model format 3)."""
    n, no, ao = pop.n, np.uint64(pop.noff), np.uint64(a_off)
    reset, v_reset, v_min = pop.reset, pop.v_reset, pop.v_min
    has_vmin, tern, keep_u = pop.has_vmin != 0, pop.ternary != 0, pop.recn > 0
    for i in range(np.uint64(n)):
        u, f, vn = neuron_step(V[no + i], src[ao + i] + cst[no + i], nbeta[no + i],
                               ntheta[no + i], reset, v_reset, has_vmin, v_min, tern)
        src[ao + i] = 0
        if keep_u:
            U[no + i] = u
        V[no + i] = vn
        flags[i] = f


@njit(cache=True)
def update_all_cuba(pop, src, a_off, V, U, Isyn, cst, flags, npar):
    """Every neuron of current-based population ``pop`` (its POP record, ``cuba = 1``) updated
    for one step, as the dense engine's ``training.CubaLIF`` (docs/methods.md section 16):
    ``i = alpha * i_prev + (src[a_off + i] + cst)`` (the input cleared), then
    :func:`neuron_step` charges the membrane with ``i``.  ``npar = (nalpha, nbeta, ntheta)``:
    every neuron's parameters at ``pop.noff + i`` (uniform populations repeat theirs), as the
    state ``V``/``U``/``Isyn`` (synaptic current, ``i_{-1} = 0``) and ``cst``.  Spikes to
    ``flags[i]`` (int8); ``u`` to ``U`` only when neurons are recorded.  Neurons behind (a
    lazy population, ``Simulator(cuba="lazy")``) first catch up: :func:`catch_up_cuba`."""
    nalpha, nbeta, ntheta = npar
    n, no, ao = pop.n, np.uint64(pop.noff), np.uint64(a_off)
    reset, v_reset, v_min = pop.reset, pop.v_reset, pop.v_min
    has_vmin, tern, keep_u = pop.has_vmin != 0, pop.ternary != 0, pop.recn > 0
    for i in range(np.uint64(n)):
        c = nalpha[no + i] * Isyn[no + i] + (src[ao + i] + cst[no + i])
        u, f, vn = neuron_step(V[no + i], c, nbeta[no + i], ntheta[no + i], reset, v_reset,
                               has_vmin, v_min, tern)
        src[ao + i] = 0
        Isyn[no + i] = c
        if keep_u:
            U[no + i] = u
        V[no + i] = vn
        flags[i] = f



# ---------------------------------------------------------------------------------------
# lazy current-based neurons: exact catch-up, crossing prediction, a safe no-crossing bound
# ---------------------------------------------------------------------------------------
# the bound below over-estimates every rounding by float32's unit roundoff (2**-24: also
# valid, more loosely, for float64) and the float64 arithmetic it is computed in by 2**-20
CUBA_ROUND = 2.0 ** -24
CUBA_SLACK = 1.0 + 2.0 ** -20


@njit(cache=True, inline="always")
def cuba_free_steps(v, i, n, alpha, beta, has_vmin, v_min, z):
    """``n`` steps without input of a current-based neuron (membrane ``v``, current ``i``):
    ``i = alpha * i + z``, ``v = max(beta * v + i, v_min)``, the float operations of
    :func:`update_all_cuba` with an untouched accumulator (``z``: its ``0 + constant
    input``, +0.0 for a population without constant input).  The caller knows that no step
    crosses threshold (else the neuron would have been woken).  Stops early at a fixed
    point (neither state changes).  Returns ``(v, i)``."""
    for _ in range(n):
        ni = alpha * i + z
        u = beta * v + ni
        if has_vmin and u < v_min:
            u = v_min
        if u == v and ni == i:
            break
        v = u
        i = ni
    return v, i


@njit(cache=True, inline="always")
def cuba_geometric(alpha, H):
    """An upper bound, in float64, on ``sum_{k=1..H} i_k / i_0`` for the rounded current
    ``i_k = fl(alpha * i_{k-1})`` (``0 <= alpha <= 1``, ``i_0 > 0``): ``min(H, a / (1 - a))``
    with ``a = alpha (1 + 2**-23)`` (each rounded product is at most ``alpha * i (1 +
    2**-24)``, and never above ``i``)."""
    a = np.float64(alpha) * (1.0 + 2.0 * CUBA_ROUND)
    if a >= 1.0:
        return np.float64(H)
    return min(np.float64(H), a / (1.0 - a))


@njit(cache=True, inline="always")
def cuba_quiet(v, i, theta, vfloor, g, grow):
    """Whether a current-based neuron at ``(v, i)`` (after its update; binary spikes;
    ``0 <= alpha, beta <= 1``; no constant input; ``v_min < theta``) provably does not
    cross ``theta`` in the next ``H`` steps without input.  ``vfloor = max(0, v_min)``
    (0 without clamp), ``g = cuba_geometric(alpha, H)``, ``grow = exp(H * 2**-24) *
    CUBA_SLACK`` (all float64).

    Why: ``i <= 0`` stays ``<= 0`` (``fl(alpha * i) <= 0``) and ``fl(beta * v) <= max(v,
    0)``, so with ``v < theta`` every later ``u = fl(fl(beta v) + i)`` stays below theta
    (rounding is monotone; the clamp keeps ``v < theta``).  With ``i > 0``, ``w_k = max(v_k,
    0)`` and ``u_k`` are at most ``(w_{k-1} + i_k)(1 + 2**-24)``, hence at most ``(1 +
    2**-24)**k (max(w_0, v_min) + sum_j i_j) <= grow * (max(v, vfloor) + i * g)``."""
    if i <= 0:
        return v < theta
    w = max(np.float64(v), vfloor)
    return (w + np.float64(i) * g) * grow < np.float64(theta)


@njit(cache=True)
def cuba_next_crossing(v, i, H, npar, z, bound):
    """Steps ``d in 1..H`` until a current-based neuron at ``(v, i)`` (just updated) first
    crosses threshold without input, found by stepping its exact recurrence
    (:func:`cuba_free_steps`' operations), or -1: no crossing within ``H`` steps, a fixed
    point, or a state :func:`cuba_quiet` proves silent.  ``npar = (alpha, beta, theta,
    has_vmin, v_min)``; ``bound = (vfloor, g, grow)`` as :func:`cuba_quiet` takes them (for
    a horizon of at least ``H``)."""
    alpha, beta, theta, has_vmin, v_min = npar
    vfloor, g, grow = bound
    for d in range(1, H + 1):
        if cuba_quiet(v, i, theta, vfloor, g, grow):
            return -1
        ni = alpha * i + z
        u = beta * v + ni
        if u >= theta:
            return d
        if has_vmin and u < v_min:
            u = v_min
        if u == v and ni == i:
            return -1
        v = u
        i = ni
    return -1


@njit(cache=True)
def catch_up_cuba(pop, t, lf, V, Isyn, L, cst, npar, zero):
    """:func:`catch_up` of a current-based population (lazy, no constant input): every
    neuron behind (last updated at ``max(L[noff + i], lf) < t - 1``) steps both states
    over the missed steps (:func:`cuba_free_steps`, the neuron's ``alpha`` and ``beta`` from
    ``npar = (nalpha, nbeta)``; ``zero``: +0.0 in the model dtype)."""
    nalpha, nbeta = npar
    no = np.uint64(pop.noff)
    has_vmin, v_min = pop.has_vmin != 0, pop.v_min
    for k in range(np.uint64(pop.n)):
        gap = t - 1 - max(L[no + k], lf)
        if gap > 0:
            V[no + k], Isyn[no + k] = cuba_free_steps(V[no + k], Isyn[no + k], gap,
                                                      nalpha[no + k], nbeta[no + k], has_vmin,
                                                      v_min, zero + cst[no + k])

# bit positions of the lowest set bit, by de Bruijn multiplication (collect_spikes)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_POS = np.zeros(64, np.int64)
for _b in range(64):
    _DEBRUIJN_POS[(((1 << _b) * 0x03F79D71B4CB0A89) % (1 << 64)) >> 58] = _b
_BYTE_LSB = np.uint64(0x0101010101010101)
_LITTLE_ENDIAN = sys.byteorder == "little"


@njit(cache=True)
def collect_spikes(flags, n, ring_idx, ring_val, rbase):
    """Compress the non-zero ``flags[:n]`` (0, 1 or -1) into the spike list at
    ``ring_idx/ring_val[rbase:]`` in ascending order; returns its length.  ``len(flags)`` is
    a multiple of 8: words of 8 flags are read at once and only their non-zero bytes
    visited (lowest set bit by de Bruijn multiplication), so the cost follows the spikes."""
    cnt = 0
    words = flags.view(np.uint64)
    one = np.uint64(1)
    s58 = np.uint64(58)
    nw = n // 8 if _LITTLE_ENDIAN else 0
    for w in range(nw):
        x = words[w] & _BYTE_LSB          # bit 8j set where flag j of the word is non-zero
        while x != 0:
            low = x & (~x + one)
            i = w * 8 + (_DEBRUIJN_POS[(low * _DEBRUIJN) >> s58] >> 3)
            ring_idx[rbase + cnt] = i
            ring_val[rbase + cnt] = flags[i]
            cnt += 1
            x ^= low
    for i in range(nw * 8, n):
        f = flags[i]
        if f != 0:
            ring_idx[rbase + cnt] = i
            ring_val[rbase + cnt] = f
            cnt += 1
    return cnt


@njit(cache=True)
def free_steps(v, c, n, beta, has_vmin, v_min):
    """``n`` steps of the recurrence without spikes, ``v = max(beta*v + c, v_min)``, with
    the same float operations as :func:`neuron_step` (exact catch-up of a lazy neuron);
    stops early at a fixed point."""
    for _ in range(n):
        u = beta * v + c
        if has_vmin and u < v_min:
            u = v_min
        if u == v:
            break
        v = u
    return v


@njit(cache=True)
def catch_up(pop, t, lf, V, L, cst, nbeta, powrow, leak):
    """Bring every neuron of population ``pop`` (its POP record; no constant input: ``cst``
    is zero) to step ``t - 1`` before a full update at step ``t``: neuron ``i`` (state at
    ``pop.noff + i``) was last updated at ``max(L[noff + i], lf)`` and gets the leak of the
    ``gap`` steps since, exactly as the lazy update would when it is next touched: ``leak``
    ``LEAK_POWER`` multiplies once by ``powrow[gap]`` (the population's ``beta**gap``; then
    clamps to ``v_min``), else :func:`free_steps` with the neuron's ``nbeta`` (skipped when
    ``beta == 1``: the state already satisfies ``v >= v_min``, as every update leaves it, so
    the clamp would change nothing).  Populations with per-neuron beta always step."""
    no = np.uint64(pop.noff)
    has_vmin, v_min = pop.has_vmin != 0, pop.v_min
    power = leak == LEAK_POWER and not pop.pn
    for i in range(np.uint64(pop.n)):
        gap = t - 1 - max(L[no + i], lf)
        if gap > 0:
            v = V[no + i]
            beta = nbeta[no + i]
            if power:
                v = v * powrow[gap]
                if has_vmin and v < v_min:
                    v = v_min
            elif beta != 1:
                v = free_steps(v, cst[no + i], gap, beta, has_vmin, v_min)
            V[no + i] = v


@njit(cache=True)
def predict_steps(v, c, horizon, beta, theta, has_vmin, v_min, ternary):
    """Steps ``d in 1..horizon`` until a neuron at ``v`` with constant input ``c`` (and no
    other input) first crosses threshold (``u >= theta`` or ternary ``u <= -theta``), or -1
    if it does not within ``horizon`` steps (or reaches a fixed point first)."""
    for d in range(1, horizon + 1):
        u = beta * v + c
        if u >= theta or (ternary and u <= -theta):
            return d
        if has_vmin and u < v_min:
            u = v_min
        if u == v:
            return -1
        v = u
    return -1


@njit(cache=True)
def wake_push(head, wnext, wprev, wake_t, h, tw, gi):
    """Queue neuron ``gi`` (not queued) in bucket ``h`` for step ``tw`` (doubly linked)."""
    x = head[h]
    wnext[gi] = x
    wprev[gi] = -1
    if x >= 0:
        wprev[x] = gi
    head[h] = gi
    wake_t[gi] = tw


@njit(cache=True)
def wake_remove(head, wnext, wprev, wake_t, h, gi):
    """Unlink queued neuron ``gi`` from bucket ``h``."""
    p = wprev[gi]
    x = wnext[gi]
    if p >= 0:
        wnext[p] = x
    else:
        head[h] = x
    if x >= 0:
        wprev[x] = p
    wake_t[gi] = -1


# ---------------------------------------------------------------------------------------
# event lists
# ---------------------------------------------------------------------------------------
@njit(cache=True)
def step_end(ev_t, p, pend, t):
    """End of step ``t``'s events: the first ``k`` in ``p..pend`` with ``k == pend`` or
    ``ev_t[k] > t`` (``ev_t[p:pend]`` sorted, ``>= t``), by galloping then bisection
    (``O(log m)`` for ``m`` events of the step, not ``O(m)``)."""
    if p >= pend or ev_t[p] > t:
        return p
    lo = p                       # ev_t[lo] <= t
    step = 1
    hi = p + 1
    while hi < pend and ev_t[hi] <= t:
        lo = hi
        step *= 2
        hi = lo + step
    if hi > pend:
        hi = pend
    while hi - lo > 1:           # ev_t[lo] <= t; hi == pend or ev_t[hi] > t
        mid = (lo + hi) // 2
        if ev_t[mid] <= t:
            lo = mid
        else:
            hi = mid
    return hi



@njit(cache=True)
def split_spikes(counts, neuron, value, perm, perm_off, pop_major):
    """Regroup :func:`run_batch`'s spikes by population: ``counts [B, T, Q]``, ``neuron``
    (internal index) and ``value`` in (b, t, q) order (``pop_major``: (b, q, t) order) ->
    ``(sample, t, neuron, value, ptr)`` with population ``q``'s spikes at
    ``ptr[q]:ptr[q+1]`` in (b, t) order, neurons mapped to canonical indices
    ``perm[perm_off[q] + internal]``."""
    B, T, Q = counts.shape
    ptr = np.zeros(Q + 1, np.int64)
    for b in range(B):
        for t in range(T):
            for q in range(Q):
                ptr[q + 1] += counts[b, t, q]
    for q in range(Q):
        ptr[q + 1] += ptr[q]
    n = ptr[Q]
    o_b = np.empty(n, np.int32)
    o_t = np.empty(n, np.int32)
    o_n = np.empty(n, np.int32)
    o_v = np.empty(n, np.int8)
    fill = ptr[:Q].copy()
    k = 0
    for b in range(B):
        for g in range(T * Q):
            q, t = (g // T, g % T) if pop_major else (g % Q, g // Q)
            f = fill[q]
            po = perm_off[q]
            for _ in range(counts[b, t, q]):
                o_b[f] = b
                o_t[f] = t
                o_n[f] = perm[po + neuron[k]]
                o_v[f] = value[k]
                f += 1
                k += 1
            fill[q] = f
    return o_b, o_t, o_n, o_v, ptr
