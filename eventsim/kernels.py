"""Numba kernels of the event-driven simulator (only ``@njit`` functions over arrays).

``eventsim.network`` validates a model and compiles it into the flat integer/float tables
documented below; ``eventsim.simulator`` validates the input and calls :func:`run_batch`.
Nothing here checks its arguments.  Every kernel has a plain-NumPy twin in
``tests/reference/naive_eventsim.py`` that it is tested against.

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

# stage kinds
K_IDENTITY, K_DENSE, K_SPARSE, K_CONV, K_SUMPOOL, K_MAXPOOL = 0, 1, 2, 3, 4, 5
K_BUNDLED = 6   # a sparse connection delivered through its bundle (the stage only counts)
HARD_RESET, SUBTRACT_RESET = 0, 1
POP_SPIKING, POP_READOUT = 0, 1
DRIVE_NONE, DRIVE_STATIC, DRIVE_STEPS = 0, 1, 2
MODE_STEP, MODE_PREDICT = 0, 1
SCHEDULE_TIME, SCHEDULE_LAYER = 0, 1
# a sparse or conv delivery of >= n_target / 16 synapses counts as touching every target
SPARSE_WHOLE_DIV = 16
LEAK_REPEAT, LEAK_POWER = 0, 1

# stage_i columns
(S_KIND, S_SRC, S_DST, S_WOFF, S_POFF, S_IOFF, S_HI, S_WI, S_CI, S_HO, S_WO, S_CO, S_KH, S_KW,
 S_SH, S_SW, S_PH, S_PW, S_MOFF, S_TOFF) = range(20)
N_STAGE_COLS = 20
# space_i columns (space_f[s] holds the factor of POST_SCALE spaces)
SP_N, SP_OFF, SP_BS, SP_BOFF, SP_POST = range(5)
N_SPACE_COLS = 5
POST_NONE, POST_SCALE = 0, 1
# pop_i columns; pop_f columns: beta, theta, v_reset, v_min
(P_KIND, P_SPACE, P_N, P_NOFF, P_RESET, P_TERN, P_HASVMIN, P_RING, P_R, P_RINGC, P_RECOFF,
 P_RECN) = range(12)
N_POP_COLS = 12
F_BETA, F_THETA, F_VRESET, F_VMIN = range(4)
# edge_i columns
E_SRC, E_TGT, E_DELAY, E_SOFF, E_NS = range(5)
N_EDGE_COLS = 5
# bun_i columns (wi: ptr at B_PTR, indices at B_IDX, (delay, stage) per segment at B_SEG;
# wf: weights at B_W; bring: R slots of n_target at B_ROFF; blist: R slots of n_target + 1
# at B_LOFF; bcnt: R at B_RCOFF)
(B_SRC, B_TGT, B_NSEG, B_PTR, B_IDX, B_W, B_SEG, B_R, B_ROFF, B_LOFF, B_RCOFF) = range(11)
N_BUNDLE_COLS = 11
# sizes[] entries passed to run_batch
(Z_ACC, Z_BLOCKS, Z_NEURONS, Z_RING, Z_RINGC, Z_MP, Z_SCRATCH, Z_SPIKECAP, Z_PBUF,
 Z_FULLDIV, Z_FULLDIV_CHEAP, Z_BRING, Z_BLIST, Z_BRINGC, Z_RINGDIV, Z_WINDOW) = range(16)
N_SIZES = 16


# ---------------------------------------------------------------------------------------
# input check
# ---------------------------------------------------------------------------------------
EV_OK, EV_VALUE, EV_TIME, EV_INDEX, EV_ORDER = 0, 1, 2, 3, 4


@njit(cache=True)
def check_events(times, indices, values, ptr, T, n_inputs):
    """The first event that breaks an event stream's contract, in one pass: returns
    ``(code, k)``, ``(EV_OK, -1)`` if there is none.  Event ``k`` of sample ``b``
    (``ptr[b] <= k < ptr[b+1]``; ``ptr`` rises from 0 to ``len(times)``) needs a finite
    value (else ``EV_VALUE``), ``0 <= times[k] < T`` (``EV_TIME``), ``0 <= indices[k] <
    n_inputs`` (``EV_INDEX``) and ``times[k] >= times[k-1]`` within its sample
    (``EV_ORDER``), checked in that order."""
    # a branch-free pass (vectorised) first; the event-by-event search only if it fails
    ok = True
    for k in range(len(times)):
        t = times[k]
        i = indices[k]
        ok &= (values[k] - values[k] == 0) & (t >= 0) & (t < T) & (i >= 0) & (i < n_inputs)
    for b in range(len(ptr) - 1):
        for k in range(ptr[b] + 1, ptr[b + 1]):
            ok &= times[k] >= times[k - 1]
    if ok:
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
def dense_window(wt, w_off, n_src, n_dst, ev_t, ev_idx, ev_val, k0, k1, t0, acc2):
    """Source-major :func:`scatter_dense` over several steps: for events
    ``(t, i, v) = (ev_t[k], ev_idx[k], ev_val[k])``, ``k0 <= k < k1`` (sorted by step,
    within a step by source index), ``acc2[(t - t0) * n_dst + j] += v * WT[i, j]``.

    Events are regrouped by source (counting sort, stable), so each source's row is read
    once per window and added to the rows of all the steps it spiked at.  Every entry
    ``(t, j)`` still receives its terms in ascending source order, the order in which
    :func:`scatter_dense` adds a step's events: the sums are bit-identical.  Returns the
    number of synaptic events."""
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
def scatter_sparse(wi, p_off, i_off, wf, d_off, ev_idx, ev_val, k0, k1, acc, a_off, bs,
                   mark, m_off, tlist, tcount, s, whole):
    """Source-major CSR rows: for event ``(i, v)`` and ``p`` in ``indptr[i]:indptr[i+1]``
    (``indptr = wi[p_off:]``, ``indices = wi[i_off:]``, ``data = wf[d_off:]``),
    ``acc[a_off + indices[p]] += v * data[p]``, touching the target's block (not when
    ``whole``: the destination is already wholly touched)."""
    n = 0
    if whole:
        ao, io, do = np.uint64(a_off), np.uint64(i_off), np.uint64(d_off)
        po = np.uint64(p_off)
        for k in range(np.uint64(k0), np.uint64(k1)):
            i = np.uint64(ev_idx[k])
            v = ev_val[k]
            p0 = wi[po + i]
            p1 = wi[po + i + np.uint64(1)]
            for p in range(np.uint64(p0), np.uint64(p1)):
                acc[ao + np.uint64(wi[io + p])] += v * wf[do + p]
            n += p1 - p0
        return n
    ao, io, do = np.uint64(a_off), np.uint64(i_off), np.uint64(d_off)
    po, mo = np.uint64(p_off), np.uint64(m_off)
    cnt = tcount[s]
    for k in range(np.uint64(k0), np.uint64(k1)):
        i = np.uint64(ev_idx[k])
        v = ev_val[k]
        p0 = wi[po + i]
        p1 = wi[po + i + np.uint64(1)]
        for p in range(np.uint64(p0), np.uint64(p1)):
            j = wi[io + p]
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
def scatter_conv(wf, w_off, wi, t_off, Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw,
                 ev_idx, ev_val, k0, k1, acc, a_off, mark, m_off, tlist, tcount, s, pbuf,
                 whole=False):
    """Cross-correlation scattered around each event (PyTorch/NIR Conv2d, zero padding).

    Source ``(Hi, Wi, Ci)`` and destination ``(Ho, Wo, Co)`` are channel-last; the weight is
    stored ``[Ci, kh, kw, Co]`` at ``wf[w_off]``; ``wi[t_off:]`` holds the stage's
    :func:`eventsim.network.window_tables`.  An event at ``(y, x, ci)`` reaches output ``(oy, ox)`` through
    tap ``(ky, kx) = (y + ph - oy*sh, x + pw - ox*sw)`` when the tap lies inside the kernel:
    ``acc[(oy, ox), :] += v * W[ci, ky, kx, :]``.  Blocks are output positions (all ``Co``
    channels), not marked when ``whole`` (the destination is wholly touched already).
    ``pbuf`` (>= 2*kh*kw int64) holds one event's row offsets."""
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
def scatter_sumpool(wi, t_off, Hi, Wi, C, Ho, Wo, ev_idx, ev_val, k0, k1,
                    acc, a_off, mark, m_off, tlist, tcount, s):
    """Sum pooling (no padding, floor mode): an event at ``(y, x, c)`` adds its value to
    every window ``(oy, ox, c)`` containing it (ranges from the stage's
    :func:`eventsim.network.window_tables` at ``wi[t_off:]``).  Average pooling is this followed by a
    multiplication by ``dtype(1/(kh*kw))`` when the destination space is read
    (``POST_SCALE``), as the dense engine computes a window mean."""
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
def scatter_maxpool(wi, t_off, Hi, Wi, C, Ho, Wo, ev_idx, ev_val, k0, k1,
                    acc, a_off, mark, m_off, tlist, tcount, s, last, l_off, stamp):
    """Max pooling of binary spikes: a window emits 1 at most once per step.  ``last``
    (at ``l_off``, one entry per output) holds the stamp of the step that last emitted."""
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
def scatter_identity(ev_idx, ev_val, k0, k1, acc, a_off, bs, mark, m_off, tlist, tcount, s):
    """``acc[a_off + i] += v`` (a population fed directly by another, or a pooled result
    handed on to its population)."""
    for k in range(k0, k1):
        i = ev_idx[k]
        acc[a_off + i] += ev_val[k]
        blk = i if bs == 1 else i // bs
        if mark[m_off + blk] == 0:
            mark[m_off + blk] = 1
            tlist[m_off + tcount[s]] = blk
            tcount[s] += 1
    return k1 - k0


@njit(cache=True)
def scatter_delayed(wi, p_off, i_off, s_off, nseg, wf, w_off, ev_idx, ev_val, k0, k1, t, T, R,
                    n_t, bring, blist, bcnt, r_off, l_off, rc_off, syn):
    """Deliver events ``k0:k1`` emitted at step ``t`` through a bundle: segment ``m`` of
    row ``i`` (``wi[p_off + i*nseg + m] <= p < wi[p_off + i*nseg + m + 1]``, targets
    ``wi[i_off + p]``, weights ``wf[w_off + p]``, delay ``d = wi[s_off + 2m]``, stage
    ``g = wi[s_off + 2m + 1]``) adds ``v * w`` to ring slot ``(t + d) % R``
    (``bring[r_off + slot*n_t + j]``), appends ``j`` to the slot's list
    (``blist[l_off + slot*(n_t + 1):]``, ``bcnt[rc_off + slot]`` entries; a target may
    appear more than once; once ``n_t`` entries are listed the slot counts as dense and
    the list stops growing) and counts its synapses in ``syn[g]``.  Segment by segment,
    then event by event (so connections with equal delays add up one after the other).
    Segments arriving at or after ``T`` are skipped (delays ascending); ``1 <= d <= R``."""
    m_end = 0
    while m_end < nseg and t + wi[s_off + 2 * m_end] < T:
        m_end += 1
    if m_end == 0:
        return
    tm = t % R
    cap = n_t
    io, wo = np.uint64(i_off), np.uint64(w_off)
    for m in range(m_end):   # segment by segment: one slot, its count in a register
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
                j = np.uint64(wi[io + p])
                bring[base + j] += v * wf[wo + p]
                blist[lb + np.uint64(c)] = j     # branch-free: slot n_t is spare
                c += 1 if c < cap else 0
            n += p1 - p0
        bcnt[rc_off + slot] = c
        syn[wi[s_off + 2 * m + 1]] += n


@njit(cache=True)
def ring_to_acc(bring, blist, bcnt, r_off, l_off, rc_off, slot, n_t, dense_div, acc, a_off, bs,
                mark, m_off, tlist, tcount, s, allt):
    """Add ring slot ``slot`` of a bundle (see :func:`scatter_delayed`) to the target's
    accumulator ``acc[a_off:]`` and clear it.  A slot with at least ``n_t / dense_div``
    listed targets (``dense_div = 0``: never) or a full list is added as a whole (space
    ``s`` then counts as wholly touched, ``allt[s]``); else entry by entry in list order,
    touching the targets' blocks (a repeated target adds the 0 left by its first entry:
    no change, as the slot never holds -0.0).  Same floats either way."""
    c = bcnt[rc_off + slot]
    if c == 0:
        return
    base = np.uint64(r_off + slot * n_t)
    ao = np.uint64(a_off)
    if c >= n_t or (dense_div > 0 and c * dense_div >= n_t):
        for j in range(np.uint64(n_t)):
            acc[ao + j] += bring[base + j]
            bring[base + j] = 0
        allt[s] = True
    else:
        lb = np.uint64(l_off + slot * (n_t + 1))
        whole = allt[s]
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
def drain(s, space_i, space_f, acc, mark, tlist, tcount, allt, out_idx, out_val):
    """Move the non-zero touched entries of space ``s`` into the event list
    ``(out_idx, out_val)`` (times ``space_f[s]`` for ``POST_SCALE`` spaces), clear them
    and the space's touched list; returns the number of events."""
    n = space_i[s, SP_N]
    a_off = space_i[s, SP_OFF]
    bs = space_i[s, SP_BS]
    m_off = space_i[s, SP_BOFF]
    post = space_i[s, SP_POST]
    scale = space_f[s]
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
@njit(cache=True)
def neuron_step(v, I, beta, theta, reset, v_reset, has_vmin, v_min, ternary):
    """One canonical update: returns ``(u, s, v_new)``.

    ``u = beta*v + I``; ``s = 1[u >= theta]`` (ternary: ``-1[u <= -theta]``);
    hard: ``v_new = v_reset`` where ``s != 0``; subtract: ``v_new = u - theta*s``;
    then ``v_new = max(v_new, v_min)`` when ``has_vmin``.  ``s`` is an int."""
    u = beta * v + I
    s = 0
    if u >= theta:
        s = 1
    elif ternary and u <= -theta:
        s = -1
    if s == 0:
        vn = u
    elif reset == HARD_RESET:
        vn = v_reset
    elif s == 1:
        vn = u - theta
    else:
        vn = u + theta
    if has_vmin and vn < v_min:
        vn = v_min
    return u, s, vn


@njit(cache=True)
def update_all(acc, a_off, cst, V, U, noff, n, flags, beta, theta, reset, v_reset, has_vmin,
               v_min, ternary, keep_u):
    """:func:`neuron_step` for the ``n`` neurons of a population (input ``acc[a_off + i]``,
    constant input ``cst``, state ``V``/``U`` at ``noff + i``), branch-free so that it
    vectorises: writes ``v_new`` to ``V``, ``u`` to ``U`` if ``keep_u`` (it is only read for
    recorded neurons), spikes to ``flags[i]`` (int8) and clears the accumulator."""
    neg = -theta
    ao = np.uint64(a_off)
    no = np.uint64(noff)
    for i in range(np.uint64(n)):
        u = beta * V[no + i] + (acc[ao + i] + cst[no + i])
        acc[ao + i] = 0
        if keep_u:
            U[no + i] = u
        pos = u >= theta
        ng = ternary and u <= neg
        if reset == HARD_RESET:
            vn = v_reset if (pos or ng) else u
        else:
            vn = u - theta if pos else (u + theta if ng else u)
        if has_vmin and vn < v_min:
            vn = v_min
        V[no + i] = vn
        flags[i] = 1 if pos else (-1 if ng else 0)


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
def catch_up(V, L, cst, noff, n, lf, t, leak, powtab, q, beta, has_vmin, v_min):
    """Bring every neuron of a population without constant input (``cst`` is zero) to
    step ``t - 1`` before a full update at step ``t``: neuron ``i`` (state at ``noff + i``)
    was last updated at ``max(L[noff + i], lf)`` and gets the leak of the ``gap`` steps
    since, exactly as the lazy update would when it is next touched: ``leak`` ``LEAK_POWER``
    multiplies once by ``powtab[q, gap]`` (then clamps to ``v_min``), else
    :func:`free_steps` (skipped when ``beta == 1``)."""
    no = np.uint64(noff)
    for i in range(np.uint64(n)):
        gap = t - 1 - max(L[no + i], lf)
        if gap > 0:
            v = V[no + i]
            if leak == LEAK_POWER:
                v = v * powtab[q, gap]
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
# the event loop
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
def _scatter(g, stage_i, space_i, wf, wi, ev_idx, ev_val, k0, k1, acc, mark, tlist, tcount,
             allt, whole_ok, mp_last, stamp, pbuf):
    kind = stage_i[g, S_KIND]
    d = stage_i[g, S_DST]
    a_off = space_i[d, SP_OFF]
    bs = space_i[d, SP_BS]
    m_off = space_i[d, SP_BOFF]
    if kind == K_DENSE:
        allt[d] = True
        return scatter_dense(wf, stage_i[g, S_WOFF], space_i[d, SP_N], ev_idx, ev_val, k0, k1,
                             acc, a_off)
    if kind == K_CONV:
        nsyn = (k1 - k0) * stage_i[g, S_KH] * stage_i[g, S_KW] * stage_i[g, S_CO]
        if not allt[d] and whole_ok[d] and nsyn * SPARSE_WHOLE_DIV >= space_i[d, SP_N]:
            allt[d] = True   # as for sparse: enough events to touch all (see SPARSE_WHOLE_DIV)
        return scatter_conv(wf, stage_i[g, S_WOFF], wi, stage_i[g, S_TOFF], stage_i[g, S_HI],
                            stage_i[g, S_WI], stage_i[g, S_CI], stage_i[g, S_HO], stage_i[g, S_WO],
                            stage_i[g, S_CO], stage_i[g, S_KH], stage_i[g, S_KW], stage_i[g, S_SH],
                            stage_i[g, S_SW], stage_i[g, S_PH], stage_i[g, S_PW], ev_idx, ev_val,
                            k0, k1, acc, a_off, mark, m_off, tlist, tcount, d, pbuf, allt[d])
    if kind == K_SPARSE:
        if not allt[d] and whole_ok[d]:
            # as many synapses as 1/16 of the targets: mark the destination wholly touched
            # (a full pass reads it all) rather than target by target
            po = stage_i[g, S_POFF]
            nsyn = 0
            for k in range(k0, k1):
                nsyn += wi[po + ev_idx[k] + 1] - wi[po + ev_idx[k]]
            if nsyn * SPARSE_WHOLE_DIV >= space_i[d, SP_N]:
                allt[d] = True
        return scatter_sparse(wi, stage_i[g, S_POFF], stage_i[g, S_IOFF], wf, stage_i[g, S_WOFF],
                              ev_idx, ev_val, k0, k1, acc, a_off, bs, mark, m_off, tlist, tcount, d,
                              allt[d])
    if kind == K_SUMPOOL:
        return scatter_sumpool(wi, stage_i[g, S_TOFF], stage_i[g, S_HI], stage_i[g, S_WI],
                               stage_i[g, S_CI], stage_i[g, S_HO], stage_i[g, S_WO],
                               ev_idx, ev_val, k0, k1, acc, a_off, mark, m_off, tlist, tcount, d)
    if kind == K_MAXPOOL:
        return scatter_maxpool(wi, stage_i[g, S_TOFF], stage_i[g, S_HI], stage_i[g, S_WI],
                               stage_i[g, S_CI], stage_i[g, S_HO], stage_i[g, S_WO],
                               ev_idx, ev_val, k0, k1, acc, a_off, mark, m_off, tlist, tcount, d,
                               mp_last, stage_i[g, S_MOFF], stamp)
    return scatter_identity(ev_idx, ev_val, k0, k1, acc, a_off, bs, mark, m_off, tlist, tcount, d)


@njit(cache=True)
def _run_edge(e, edge_i, edge_stage, stage_i, space_i, space_f, wf, wi, ev_idx, ev_val, k0, k1,
              acc, mark, tlist, tcount, allt, whole_ok, mp_last, stamp, scr_idx, scr_val, syn,
              pbuf):
    """Deliver events ``k0:k1`` through every stage of edge ``e`` (intermediate spaces are
    accumulated, then drained into the scratch event list for the next stage)."""
    soff = edge_i[e, E_SOFF]
    for j in range(edge_i[e, E_NS]):
        g = edge_stage[soff + j]
        if j == 0:
            syn[g] += _scatter(g, stage_i, space_i, wf, wi, ev_idx, ev_val, k0, k1, acc, mark,
                               tlist, tcount, allt, whole_ok, mp_last, stamp, pbuf)
        else:
            cnt = drain(stage_i[g, S_SRC], space_i, space_f, acc, mark, tlist, tcount, allt,
                        scr_idx, scr_val)
            if cnt > 0:
                syn[g] += _scatter(g, stage_i, space_i, wf, wi, scr_idx, scr_val, 0, cnt, acc,
                                   mark, tlist, tcount, allt, whole_ok, mp_last, stamp, pbuf)


@njit(cache=True)
def _deliver_delayed(t, T, NB, n_ff, E, bun_i, pop_i, edge_i, edge_stage, stage_i, space_i,
                     space_f, wf, wi, ring_idx, ring_val, ringc, bring, blist, bcnt, ring_div,
                     acc, mark, tlist, tcount, allt, whole_ok, mp_last, stamp, scr_idx, scr_val,
                     syn, pbuf):
    """Delayed connections at step ``t``: each bundle delivers its source's spikes of step
    ``t - 1`` into its ring (arrival ``t - 1 + d >= t``), then adds the slot of step ``t``
    to the target; dense connections take the source's spikes of step ``t - delay``."""
    for nb in range(NB):
        qs = bun_i[nb, B_SRC]
        qt = bun_i[nb, B_TGT]
        R = bun_i[nb, B_R]
        n_t = pop_i[qt, P_N]
        if t > 0:
            Rs = pop_i[qs, P_R]
            c = ringc[pop_i[qs, P_RINGC] + (t - 1) % Rs]
            if c > 0:
                base = pop_i[qs, P_RING] + ((t - 1) % Rs) * pop_i[qs, P_N]
                scatter_delayed(wi, bun_i[nb, B_PTR], bun_i[nb, B_IDX], bun_i[nb, B_SEG],
                                bun_i[nb, B_NSEG], wf, bun_i[nb, B_W], ring_idx, ring_val,
                                base, base + c, t - 1, T, R, n_t, bring, blist, bcnt,
                                bun_i[nb, B_ROFF], bun_i[nb, B_LOFF], bun_i[nb, B_RCOFF], syn)
        st = pop_i[qt, P_SPACE]
        ring_to_acc(bring, blist, bcnt, bun_i[nb, B_ROFF], bun_i[nb, B_LOFF],
                    bun_i[nb, B_RCOFF], t % R, n_t, ring_div[qt], acc,
                    space_i[st, SP_OFF], space_i[st, SP_BS], mark, space_i[st, SP_BOFF],
                    tlist, tcount, st, allt)
    for e in range(n_ff, E):
        tt = t - edge_i[e, E_DELAY]
        if tt < 0:
            continue
        qs = edge_i[e, E_SRC]
        R = pop_i[qs, P_R]
        c = ringc[pop_i[qs, P_RINGC] + tt % R]
        if c > 0:
            base = pop_i[qs, P_RING] + (tt % R) * pop_i[qs, P_N]
            _run_edge(e, edge_i, edge_stage, stage_i, space_i, space_f, wf, wi,
                      ring_idx, ring_val, base, base + c, acc, mark, tlist, tcount, allt,
                      whole_ok, mp_last, stamp, scr_idx, scr_val, syn, pbuf)


@njit(cache=True)
def _clear_marks(s, space_i, mark, tlist, tcount, allt):
    m_off = space_i[s, SP_BOFF]
    for k in range(tcount[s]):
        mark[m_off + tlist[m_off + k]] = 0
    tcount[s] = 0
    allt[s] = False


@njit(cache=True, inline="always")
def _update_readout(q, t, b, pop_i, pop_f, space_i, acc, mark, tlist, tcount, allt, V, cst,
                    readout_out, readout_perm):
    """The readout integrator ``r_t = beta * r_{t-1} + I_t`` (population ``q``, every step),
    written to ``readout_out[t, b, :]`` in the model's output order."""
    s = pop_i[q, P_SPACE]
    n = pop_i[q, P_N]
    noff = pop_i[q, P_NOFF]
    a_off = space_i[s, SP_OFF]
    beta = pop_f[q, F_BETA]
    for i in range(n):
        gi = noff + i
        r = beta * V[gi] + (acc[a_off + i] + cst[gi])
        acc[a_off + i] = 0
        V[gi] = r
        readout_out[t, b, readout_perm[i]] = r
    if tcount[s] > 0 or allt[s]:
        _clear_marks(s, space_i, mark, tlist, tcount, allt)


@njit(cache=True, inline="always")
def _collect_and_wake(flags, n, sp_i, sp_v, rbase, V, noff, beta, theta, tern, t, T, hq,
                      wnext, wprev, wake_t):
    """After a full pass of a population (state at ``noff``): its spikes into
    ``sp_i/sp_v[rbase:]`` (:func:`collect_spikes`), and every neuron that spiked and would
    cross again at ``t + 1`` without input queued in ``hq`` (its wake buckets); returns the
    number of spikes."""
    cnt = collect_spikes(flags, n, sp_i, sp_v, rbase)
    if t + 1 < T:
        for k in range(cnt):
            i = sp_i[rbase + k]
            un = beta * V[noff + i]
            if un >= theta or (tern and un <= -theta):
                wake_push(hq, wnext[noff:], wprev[noff:], wake_t[noff:], t + 1, t + 1, i)
    return cnt


@njit(cache=True)
def _update_pop(q, t, T, b, lazy, driven, predict, leak, full_div, pop_i, pop_f, space_i, acc,
                mark, tlist, tcount, allt, V, U, L, lfull, flags, cst, ring_idx, ring_val, ringc,
                head, wnext, wprev, wake_t, period, powtab, rec_idx):
    """Update spiking population ``q`` at step ``t`` from its accumulated input; returns
    the number of spikes (written to the population's ring slot for step ``t``).

    A lazy population without constant input is updated by one vectorised pass over all
    its neurons (:func:`catch_up` of the neurons behind, then :func:`update_all`) when its
    touched neurons are at least ``1/full_div`` of it (``full_div = 0``: only when all are
    touched); else neuron by neuron over the touched blocks, each first catching up on the
    leak of the steps it missed.  Both give the same floats: an untouched neuron's step in
    the full pass is ``beta*v + (0 + 0)``, the operation the lazy catch-up repeats."""
    s = pop_i[q, P_SPACE]
    n = pop_i[q, P_N]
    noff = pop_i[q, P_NOFF]
    a_off = space_i[s, SP_OFF]
    bs = space_i[s, SP_BS]
    m_off = space_i[s, SP_BOFF]
    beta = pop_f[q, F_BETA]
    theta = pop_f[q, F_THETA]
    v_reset = pop_f[q, F_VRESET]
    v_min = pop_f[q, F_VMIN]
    reset = pop_i[q, P_RESET]
    tern = pop_i[q, P_TERN] != 0
    has_vmin = pop_i[q, P_HASVMIN] != 0
    R = pop_i[q, P_R]
    rbase = pop_i[q, P_RING] + (t % R) * n
    cnt = 0
    ringc_i = pop_i[q, P_RINGC] + t % R
    if not lazy:
        # constant drive, "step" mode: every neuron every step
        update_all(acc, a_off, cst, V, U, noff, n, flags, beta, theta, reset, v_reset,
                   has_vmin, v_min, tern, pop_i[q, P_RECN] > 0)
        cnt = collect_spikes(flags, n, ring_idx, ring_val, rbase)
        _clear_marks(s, space_i, mark, tlist, tcount, allt)
        ringc[ringc_i] = cnt
        lfull[q] = t
        return cnt
    # lazy population: wake-ups due now and recorded neurons join the touched blocks
    h = q * T + t
    i = head[h]
    while i >= 0:   # wake lists hold population-local indices
        nx = wnext[noff + i]
        wake_t[noff + i] = -1
        touch(i // bs, mark, m_off, tlist, tcount, s)
        i = nx
    head[h] = -1
    r0 = pop_i[q, P_RECOFF]
    for k in range(r0, r0 + pop_i[q, P_RECN]):
        touch(rec_idx[k] // bs, mark, m_off, tlist, tcount, s)
    whole = allt[s]
    lf = lfull[q]
    hq = head[q * T:(q + 1) * T]
    if (not driven and not (has_vmin and (v_min >= theta))
            and (whole or tcount[s] * bs * full_div >= n)):
        # enough neurons touched: the vectorised pass over all of them (after catching up
        # those behind); only neurons that spiked can cross again without input (subtract
        # reset, v_reset >= theta: beta <= 1, theta > 0)
        if lf < t - 1:
            catch_up(V, L, cst, noff, n, lf, t, leak, powtab, q, beta, has_vmin, v_min)
        update_all(acc, a_off, cst, V, U, noff, n, flags, beta, theta, reset, v_reset,
                   has_vmin, v_min, tern, pop_i[q, P_RECN] > 0)
        cnt = _collect_and_wake(flags, n, ring_idx, ring_val, rbase, V, noff, beta, theta, tern,
                                t, T, hq, wnext, wprev, wake_t)
        lfull[q] = t
        _clear_marks(s, space_i, mark, tlist, tcount, allt)
        ringc[ringc_i] = cnt
        return cnt
    vr = v_reset
    if has_vmin and vr < v_min:
        vr = v_min
    # views: loop indices from range(0, ...) need no negative-index wraparound
    accv = acc[a_off:a_off + n]
    Vv = V[noff:noff + n]
    Uv = U[noff:noff + n]
    cv = cst[noff:noff + n]
    ring_i = ring_idx[rbase:rbase + n]
    ring_v = ring_val[rbase:rbase + n]
    Lv = L[noff:noff + n]
    wt_v = wake_t[noff:noff + n]
    wn_v = wnext[noff:noff + n]
    wp_v = wprev[noff:noff + n]
    per_v = period[noff:noff + n]
    nb = 1 if whole else tcount[s]
    blen = n if whole else bs
    for k in range(nb):
        i0 = 0 if whole else tlist[m_off + k] * bs
        for j in range(blen):
            i = i0 + j
            c = cv[i]
            v = Vv[i]
            gap = t - 1 - max(Lv[i], lf)
            if gap > 0:
                if c == 0 and leak == LEAK_POWER:
                    v = v * powtab[q, gap]
                    if has_vmin and v < v_min:
                        v = v_min
                elif c != 0 or beta != 1:
                    v = free_steps(v, c, gap, beta, has_vmin, v_min)
            u, sp, vn = neuron_step(v, accv[i] + c, beta, theta, reset, v_reset,
                                    has_vmin, v_min, tern)
            accv[i] = 0
            Vv[i] = vn
            Uv[i] = u
            Lv[i] = t
            if sp != 0:
                ring_i[cnt] = i
                flags[i] = sp
                cnt += 1
            tw = wt_v[i]
            if tw >= 0:
                wake_remove(hq, wn_v, wp_v, wt_v, tw, i)
            if t + 1 < T:
                if c == 0:
                    un = beta * vn + c
                    if un >= theta or (tern and un <= -theta):
                        wake_push(hq, wn_v, wp_v, wt_v, t + 1, t + 1, i)
                elif predict:
                    if sp != 0 and reset == HARD_RESET:
                        d = per_v[i]
                        if d == 0:
                            d = predict_steps(vr, c, T, beta, theta, has_vmin, v_min, tern)
                            per_v[i] = d
                    else:
                        d = predict_steps(vn, c, T - 1 - t, beta, theta, has_vmin, v_min, tern)
                    if d > 0 and t + d < T:
                        wake_push(hq, wn_v, wp_v, wt_v, t + d, t + d, i)
    # spikes in ascending neuron order, as the full pass lists them (the order in which
    # later projections add them up does not depend on how the population was updated)
    if cnt > 64:
        ring_i[:cnt].sort()
    else:   # insertion sort: few spikes, often in order already (no call, no allocation)
        for a in range(1, cnt):
            x = ring_i[a]
            b = a - 1
            while b >= 0 and ring_i[b] > x:
                ring_i[b + 1] = ring_i[b]
                b -= 1
            ring_i[b + 1] = x
    for k in range(cnt):
        ring_v[k] = flags[ring_i[k]]
    _clear_marks(s, space_i, mark, tlist, tcount, allt)
    ringc[ringc_i] = cnt
    return cnt


@njit(cache=True, nogil=True)
def run_batch(T, b0, b1, mode, leak, pop_i, pop_f, space_i, space_f, stage_i, edge_i, edge_stage,
              n_ff, bun_i, wf, wi, const_all, const_conn, powtab, sizes,
              ev_t, ev_i, ev_v, ev_ptr, drive, drive_mode,
              rec_idx, readout_out, readout_perm, mem_out, schedule):
    """Simulate samples ``b0 <= b < b1`` for ``T`` steps.

    Network tables: see the module docstring and ``eventsim.network`` (``bun_i``: one row
    per bundle of sparse connections).  ``const_all``: the
    constant input of every neuron (biases); ``const_conn``: the part of it from delayed
    connections (kept when ``drive`` replaces the first population's constant input).
    Inputs: events ``ev_t, ev_i (internal index), ev_v`` of sample b at
    ``ev_ptr[b]:ev_ptr[b+1]`` sorted by step, delivered through edge 0; or (``drive_mode``
    static/steps) the first population's input current ``drive[t or 0, b - b0, :]``.
    Outputs: ``readout_out[t, b, :]``, ``mem_out[t, b, :]`` (recorded neurons, u before
    reset); returns ``(counts [b1-b0, T, Q] int32, neuron int32, value int8, synaptic events
    per stage)``: the spikes of population q at step t of sample b are the next
    ``counts[b - b0, t, q]`` entries of ``(neuron, value)`` (ascending internal index, the
    order in which the population's projections add them up), taken in (b, t, q) order, or
    in (b, q, t) order when the layer-major schedule ran (see :func:`split_spikes`).

    ``schedule``: ``SCHEDULE_TIME`` runs every population at each step in turn;
    ``SCHEDULE_LAYER`` (used only when there are no bundles and no delayed edges) runs one
    population over all steps, then the next, delivering each edge that is a single dense
    stage with :func:`dense_window`, window by window (``sizes[Z_WINDOW]`` values).  Both
    add every current's terms in the same order: same results.
    """
    Q = pop_i.shape[0]
    E = edge_i.shape[0]
    G = stage_i.shape[0]
    S = space_i.shape[0]
    dt = const_all.dtype
    acc = np.zeros(sizes[Z_ACC], dt)
    mark = np.zeros(sizes[Z_BLOCKS], np.uint8)
    tlist = np.zeros(sizes[Z_BLOCKS], np.int64)
    tcount = np.zeros(S, np.int64)
    allt = np.zeros(S, np.bool_)
    nN = sizes[Z_NEURONS]
    V = np.zeros(nN, dt)
    U = np.zeros(nN, dt)
    L = np.full(nN, -1, np.int64)
    cst = np.zeros(nN, dt)
    wake_t = np.full(nN, -1, np.int64)
    wnext = np.full(nN, -1, np.int64)
    wprev = np.full(nN, -1, np.int64)
    period = np.zeros(nN, np.int64)
    head = np.full(Q * T, -1, np.int64)
    ring_idx = np.zeros(sizes[Z_RING], np.int64)
    ring_val = np.zeros(sizes[Z_RING], dt)
    ringc = np.zeros(sizes[Z_RINGC], np.int64)
    mp_last = np.zeros(sizes[Z_MP], np.int64)
    scr_idx = np.zeros(sizes[Z_SCRATCH], np.int64)
    scr_val = np.zeros(sizes[Z_SCRATCH], dt)
    syn = np.zeros(G, np.int64)
    NB = bun_i.shape[0]
    # bundles' rings of future input currents: every slot is handed on and cleared by the
    # step it is due at, and nothing is delivered at or after T, so they are empty between
    # samples
    bring = np.zeros(sizes[Z_BRING], dt)
    blist = np.zeros(sizes[Z_BLIST], np.int32)
    bcnt = np.zeros(sizes[Z_BRINGC], np.int64)
    ring_div = np.zeros(Q, np.int64)   # per target population, for ring_to_acc
    pbuf = np.zeros(sizes[Z_PBUF], np.int64)
    lazy = np.zeros(Q, np.bool_)
    driven_q = np.zeros(Q, np.bool_)
    lfull = np.full(Q, -1, np.int64)   # last step at which a population was fully updated
    flags = np.zeros((sizes[Z_SCRATCH] + 7) // 8 * 8, np.int8)
    # spikes: counts[b - b0, t, q] and, in (b, t, q) order, neuron (internal) and value.
    # The buffer is sized for the worst case (every neuron every step) up to a limit; pages
    # are only touched when written, and it grows by doubling past the limit.
    n_spiking = 0
    for q in range(Q):
        if pop_i[q, P_KIND] == POP_SPIKING:
            n_spiking += pop_i[q, P_N]
    cap = max(16, min(n_spiking * T * (b1 - b0), sizes[Z_SPIKECAP]))
    counts = np.zeros((b1 - b0, T, Q), np.int32)
    o_n = np.empty(cap, np.int32)
    o_v = np.empty(cap, np.int8)
    ocnt = 0
    predict = mode == MODE_PREDICT
    # full-pass threshold per population: lower when the lazy catch-up steps the leak
    full_div = np.zeros(Q, np.int64)
    for q in range(Q):
        beta = pop_f[q, F_BETA]
        stepped = leak == LEAK_REPEAT and beta != 0 and beta != 1
        full_div[q] = sizes[Z_FULLDIV] if stepped else sizes[Z_FULLDIV_CHEAP]
    q0 = edge_i[0, E_TGT]
    n0 = pop_i[q0, P_N]
    off0 = pop_i[q0, P_NOFF]
    # layer-major schedule (feed-forward networks only): population after population, each
    # over all steps; an edge that is one dense stage is then delivered source-major
    layer_major = schedule == SCHEDULE_LAYER and NB == 0 and n_ff == E
    sm_stage = np.full(Q, -1, np.int64)     # per population: its edge's dense stage, or -1
    n_acc2 = 0
    if layer_major:
        for e in range(E):
            g = edge_stage[edge_i[e, E_SOFF]]
            if edge_i[e, E_NS] == 1 and stage_i[g, S_KIND] == K_DENSE:
                sm_stage[edge_i[e, E_TGT]] = g
                n_acc2 = max(n_acc2, space_i[stage_i[g, S_DST], SP_N])
        n_acc2 = max(n_acc2, min(sizes[Z_WINDOW], T * n_acc2))
    acc2 = np.zeros(n_acc2, dt)              # [window steps, n_target] of one edge
    lm_s = np.zeros((Q if layer_major else 0, T), np.int64)
    lcap = 1024
    lm_t = np.empty(lcap, np.int64)          # spikes of the sample so far, population-major
    lm_i = np.empty(lcap, np.int64)
    lm_v = np.empty(lcap, dt)
    in_sorted = False
    k0 = 0
    # spaces a large sparse or conv delivery may flag as wholly touched (not the space of a
    # population updated neuron by neuron even then: driven, constant_drive="predict")
    whole_ok = np.ones(S, np.bool_)
    vmin_hi = np.zeros(Q, np.bool_)   # v_min >= theta: neurons can fire with no input
    for q in range(Q):
        vmin_hi[q] = pop_i[q, P_HASVMIN] != 0 and pop_f[q, F_VMIN] >= pop_f[q, F_THETA]
    for b in range(b0, b1):
        V[:] = 0
        U[:] = 0
        L[:] = -1
        wake_t[:] = -1
        head[:] = -1
        period[:] = 0
        ringc[:] = 0
        lfull[:] = -1
        cst[:] = const_all
        if drive_mode != DRIVE_NONE:
            for i in range(n0):
                cc = const_conn[off0 + i]
                cst[off0 + i] = drive[0, b - b0, i] if cc == 0 else drive[0, b - b0, i] + cc
        for q in range(Q):
            lazy[q] = False
            if pop_i[q, P_KIND] == POP_SPIKING:
                noff = pop_i[q, P_NOFF]
                driven = False
                for i in range(pop_i[q, P_N]):
                    if cst[noff + i] != 0:
                        driven = True
                        break
                driven_q[q] = driven
                lazy[q] = not driven or (predict and not (q == q0 and drive_mode == DRIVE_STEPS))
                if driven and lazy[q]:
                    # initial predicted crossings from v_{-1} = 0
                    pf = pop_f[q]
                    tern = pop_i[q, P_TERN] != 0
                    hv = pop_i[q, P_HASVMIN] != 0
                    for i in range(pop_i[q, P_N]):
                        c = cst[noff + i]
                        if c != 0:
                            d = predict_steps(V[noff + i], c, T,
                                              pf[F_BETA], pf[F_THETA], hv, pf[F_VMIN], tern)
                            if d > 0:
                                wake_push(head[q * T:(q + 1) * T], wnext[noff:], wprev[noff:],
                                          wake_t[noff:], d - 1, d - 1, i)
        for q in range(Q):
            # a dense ring slot makes the whole target touched: fine unless the target is
            # updated lazily neuron by neuron even then (driven, constant_drive="predict")
            ring_div[q] = 0 if (lazy[q] and driven_q[q]) else sizes[Z_RINGDIV]
            whole_ok[pop_i[q, P_SPACE]] = not (lazy[q] and driven_q[q])
        p = ev_ptr[b]
        pend = ev_ptr[b + 1]
        if layer_major:
            # source-major delivery of the input needs each step's events in ascending order
            in_sorted = True
            for k in range(p + 1, pend):
                if ev_t[k] == ev_t[k - 1] and ev_i[k] < ev_i[k - 1]:
                    in_sorted = False
                    break
        lm_n = 0
        for qq in range(Q if layer_major else 1):
            # time-major: one pass, every population at every step; layer-major: one pass per
            # population over all steps (its source's spikes of every step are known)
            qa = qq if layer_major else 0
            qb = qq + 1 if layer_major else Q
            win = 0       # > 0: this pass's edge is delivered source-major, win steps at once
            g_sm = -1
            if layer_major and sm_stage[qq] >= 0 and (qq > 0 or in_sorted):
                g_sm = sm_stage[qq]
                n_sm = space_i[stage_i[g_sm, S_DST], SP_N]
                win = min(T, max(1, acc2.shape[0] // n_sm))
            for t in range(T):
                stamp = (b - b0) * T + t + 1
                if drive_mode == DRIVE_STEPS and t > 0 and qa <= q0 < qb:
                    for i in range(n0):
                        cc = const_conn[off0 + i]
                        cst[off0 + i] = drive[t, b - b0, i] if cc == 0 else drive[t, b - b0, i] + cc
                if not layer_major:
                    _deliver_delayed(t, T, NB, n_ff, E, bun_i, pop_i, edge_i, edge_stage, stage_i,
                                     space_i, space_f, wf, wi, ring_idx, ring_val, ringc, bring,
                                     blist, bcnt, ring_div, acc, mark, tlist, tcount, allt,
                                     whole_ok, mp_last, stamp, scr_idx, scr_val, syn, pbuf)
                if qa == 0:
                    k0 = p
                    p = step_end(ev_t, p, pend, t)
                for q in range(qa, qb):
                    wrow = -1     # >= 0: this step's input is row acc2[wrow:wrow + n_sm]
                    if win > 0:
                        if t % win == 0:   # the window's events, source by source
                            t1 = min(T, t + win)
                            w_off = stage_i[g_sm, S_WOFF]
                            n_src = space_i[stage_i[g_sm, S_SRC], SP_N]
                            if q == 0:
                                kw = step_end(ev_t, k0, pend, t1 - 1)
                                if kw > k0:
                                    dense_window(wf, w_off, n_src, n_sm, ev_t, ev_i, ev_v, k0,
                                                 kw, t, acc2)
                            else:
                                ks0 = lm_s[q - 1, t]
                                kw = lm_s[q - 1, t1 - 1] + counts[b - b0, t1 - 1, q - 1]
                                if kw > ks0:
                                    dense_window(wf, w_off, n_src, n_sm, lm_t, lm_i, lm_v, ks0,
                                                 kw, t, acc2)
                        nows = (p - k0) if q == 0 else counts[b - b0, t, q - 1]
                        if nows > 0:   # the step's row of the window, read below
                            wrow = (t % win) * n_sm
                            allt[stage_i[g_sm, S_DST]] = True
                            syn[g_sm] += nows * n_sm
                    elif q == 0:
                        if p > k0:
                            _run_edge(0, edge_i, edge_stage, stage_i, space_i, space_f, wf, wi,
                                      ev_i, ev_v, k0, p, acc, mark, tlist, tcount, allt,
                                      whole_ok, mp_last, stamp, scr_idx, scr_val, syn, pbuf)
                    elif layer_major:
                        c = counts[b - b0, t, q - 1]
                        if c > 0:
                            base = lm_s[q - 1, t]
                            _run_edge(q, edge_i, edge_stage, stage_i, space_i, space_f, wf, wi,
                                      lm_i, lm_v, base, base + c, acc, mark, tlist, tcount,
                                      allt, whole_ok, mp_last, stamp, scr_idx, scr_val, syn, pbuf)
                    else:
                        qs = q - 1
                        R = pop_i[qs, P_R]
                        c = ringc[pop_i[qs, P_RINGC] + t % R]
                        if c > 0:
                            base = pop_i[qs, P_RING] + (t % R) * pop_i[qs, P_N]
                            _run_edge(q, edge_i, edge_stage, stage_i, space_i, space_f, wf, wi,
                                      ring_idx, ring_val, base, base + c, acc, mark, tlist,
                                      tcount, allt, whole_ok, mp_last, stamp, scr_idx, scr_val,
                                      syn, pbuf)
                    sq = pop_i[q, P_SPACE]
                    # the common full pass (enough neurons touched, none behind, nothing
                    # recorded or due), run here without _update_pop's call: what its
                    # full-pass branch does, in the same order
                    fast = (pop_i[q, P_KIND] == POP_SPIKING and lazy[q] and not driven_q[q]
                            and lfull[q] >= t - 1 and head[q * T + t] < 0
                            and pop_i[q, P_RECN] == 0 and not vmin_hi[q]
                            and (allt[sq] or tcount[sq] * space_i[sq, SP_BS] * full_div[q]
                                 >= pop_i[q, P_N]))
                    if wrow >= 0 and not fast:   # hand the window's row to the accumulator
                        ao = space_i[sq, SP_OFF]
                        for j in range(n_sm):
                            acc[ao + j] += acc2[wrow + j]
                            acc2[wrow + j] = 0
                        wrow = -1
                    if layer_major:
                        lm_s[q, t] = lm_n
                    in_lm = False
                    if pop_i[q, P_KIND] == POP_READOUT:
                        c = 0
                        _update_readout(q, t, b, pop_i, pop_f, space_i, acc, mark, tlist, tcount,
                                        allt, V, cst, readout_out, readout_perm)
                    elif (lazy[q] and tcount[sq] == 0 and not allt[sq] and head[q * T + t] < 0
                            and pop_i[q, P_RECN] == 0):
                        # a lazy population with nothing touched and no wake-up due: no neuron
                        # changes (the call below would find no block to update)
                        c = 0
                        ringc[pop_i[q, P_RINGC] + t % pop_i[q, P_R]] = 0
                    elif fast:
                        n = pop_i[q, P_N]
                        noff = pop_i[q, P_NOFF]
                        pf = pop_f[q]
                        beta = pf[F_BETA]
                        theta = pf[F_THETA]
                        tern = pop_i[q, P_TERN] != 0
                        if wrow >= 0:   # input read in place from the window (and cleared)
                            update_all(acc2, wrow, cst, V, U, noff, n, flags, beta, theta,
                                       pop_i[q, P_RESET], pf[F_VRESET], pop_i[q, P_HASVMIN] != 0,
                                       pf[F_VMIN], tern, False)
                        else:
                            update_all(acc, space_i[sq, SP_OFF], cst, V, U, noff, n, flags,
                                       beta, theta, pop_i[q, P_RESET], pf[F_VRESET],
                                       pop_i[q, P_HASVMIN] != 0, pf[F_VMIN], tern, False)
                        if layer_major:   # spikes straight into the sample's spike lists
                            if lm_n + n > lm_i.shape[0]:
                                lm_t, lm_i, lm_v = _grow3(lm_t, lm_i, lm_v, lm_n, lm_n + n)
                            sp_i, sp_v, rbase = lm_i, lm_v, lm_n
                            in_lm = True
                        else:
                            sp_i, sp_v = ring_idx, ring_val
                            rbase = pop_i[q, P_RING] + (t % pop_i[q, P_R]) * n
                        c = _collect_and_wake(flags, n, sp_i, sp_v, rbase, V, noff, beta, theta,
                                              tern, t, T, head[q * T:(q + 1) * T], wnext,
                                              wprev, wake_t)
                        lfull[q] = t
                        if tcount[sq] > 0:
                            _clear_marks(sq, space_i, mark, tlist, tcount, allt)
                        allt[sq] = False
                        ringc[pop_i[q, P_RINGC] + t % pop_i[q, P_R]] = c
                    else:
                        c = _update_pop(q, t, T, b, lazy[q], driven_q[q], predict, leak,
                                        full_div[q], pop_i, pop_f, space_i, acc, mark, tlist,
                                        tcount, allt, V, U, L, lfull, flags, cst, ring_idx,
                                        ring_val, ringc, head, wnext, wprev, wake_t, period,
                                        powtab, rec_idx)
                    if c > 0:
                        counts[b - b0, t, q] = c
                        base = pop_i[q, P_RING] + (t % pop_i[q, P_R]) * pop_i[q, P_N]
                        if in_lm:
                            lm_t[lm_n:lm_n + c] = t
                            lm_n += c
                        elif layer_major:   # kept for the next pass, listed in (t, q) order below
                            if lm_n + c > lm_i.shape[0]:
                                lm_t, lm_i, lm_v = _grow3(lm_t, lm_i, lm_v, lm_n, lm_n + c)
                            for k in range(c):
                                lm_t[lm_n] = t
                                lm_i[lm_n] = ring_idx[base + k]
                                lm_v[lm_n] = ring_val[base + k]
                                lm_n += 1
                        else:
                            o_n, o_v, cap = _reserve(o_n, o_v, cap, ocnt, c)
                            for k in range(c):
                                o_n[ocnt] = ring_idx[base + k]
                                o_v[ocnt] = np.int8(ring_val[base + k])
                                ocnt += 1
                    r0 = pop_i[q, P_RECOFF]
                    noff = pop_i[q, P_NOFF]
                    for k in range(r0, r0 + pop_i[q, P_RECN]):
                        mem_out[t, b, k] = U[noff + rec_idx[k]]
        if layer_major and lm_n > 0:   # the sample's spikes in (q, t) order, as listed
            o_n, o_v, cap = _reserve(o_n, o_v, cap, ocnt, lm_n)
            for k in range(lm_n):
                o_n[ocnt + k] = lm_i[k]
                o_v[ocnt + k] = np.int8(lm_v[k])
            ocnt += lm_n
    return counts, o_n[:ocnt].copy(), o_v[:ocnt].copy(), syn


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


@njit(cache=True)
def _grow3(a, b, c, used, need):
    """Three parallel lists grown (capacity doubled) to hold at least ``need`` entries."""
    cap = a.shape[0]
    while cap < need:
        cap *= 2
    return _grow(a, cap, used), _grow(b, cap, used), _grow(c, cap, used)


@njit(cache=True)
def _reserve(o_n, o_v, cap, used, more):
    """The spike output lists with room for ``more`` entries after ``used``: capacity
    doubled as often as needed; returns ``(o_n, o_v, cap)``."""
    if used + more <= cap:
        return o_n, o_v, cap
    while used + more > cap:
        cap *= 2
    return _grow(o_n, cap, used), _grow(o_v, cap, used), cap


@njit(cache=True)
def _grow(a, cap, n):
    out = np.empty(cap, a.dtype)
    out[:n] = a[:n]
    return out
