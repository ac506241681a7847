"""Deliberately plain NumPy twins of the simulator's kernels, and a time-stepped reference.

Part 1 mirrors every ``@njit`` function of ``eventsim/kernels.py`` with the same arguments
and the same float operations in the same order, written with Python loops over NumPy
scalars (so float32 stays float32); the kernels must match them exactly.

Part 2, :func:`simulate`, is an independent dense simulator written straight from
docs/methods.md section 2 and the model-file records: every layer of every sample is computed at
every step, in canonical (C-order, channel-first) layout, with plain loops for convolution
and pooling.  It handles everything the model file can express (ternary spikes, ``v_min``,
biases, delayed recurrent/feedback connections, leaky readout), and is itself checked against
the dense training engine on the binary feed-forward cases.
"""
from __future__ import annotations

import numpy as np

from eventsim import kernels as K
from snncore import modelfile as mf


# ---------------------------------------------------------------------------------------
# part 1: twins of the kernels
# ---------------------------------------------------------------------------------------
def touch(blk, mark, m_off, tlist, tcount, s):
    if mark[m_off + blk] == 0:
        mark[m_off + blk] = 1
        tlist[m_off + tcount[s]] = blk
        tcount[s] += 1


def scatter_dense(wt, w_off, n_dst, ev_idx, ev_val, k0, k1, acc, a_off):
    for k in range(k0, k1):
        row = wt[w_off + ev_idx[k] * n_dst: w_off + (ev_idx[k] + 1) * n_dst]
        acc[a_off:a_off + n_dst] += ev_val[k] * row
    return (k1 - k0) * n_dst


def dense_window(wt, w_off, n_src, n_dst, ev_t, ev_idx, ev_val, k0, k1, t0, acc2):
    """Step by step, event by event: what :func:`scatter_dense` does at each step."""
    for k in range(k0, k1):
        a = (ev_t[k] - t0) * n_dst
        row = wt[w_off + ev_idx[k] * n_dst: w_off + (ev_idx[k] + 1) * n_dst]
        acc2[a:a + n_dst] += ev_val[k] * row
    return (k1 - k0) * n_dst


def scatter_sparse(wi, p_off, i_off, wf, d_off, ev_idx, ev_val, k0, k1, acc, a_off, bs,
                   mark, m_off, tlist, tcount, s, whole=False):
    n = 0
    for k in range(k0, k1):
        i, v = ev_idx[k], ev_val[k]
        for p in range(wi[p_off + i], wi[p_off + i + 1]):
            j = wi[i_off + p]
            acc[a_off + j] += v * wf[d_off + p]
            if not whole:
                touch(j // bs, mark, m_off, tlist, tcount, s)
            n += 1
    return n


def scatter_conv(wf, w_off, wi, t_off, Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw,
                 ev_idx, ev_val, k0, k1, acc, a_off, mark, m_off, tlist, tcount, s, pbuf=None,
                 whole=False):
    """Every output position is tried; the tap is used when it lies inside the kernel
    (the geometry tables ``wi[t_off:]`` and the scratch ``pbuf`` are not used)."""
    W = wf[w_off:w_off + Ci * kh * kw * Co].reshape(Ci, kh, kw, Co)
    n = 0
    for k in range(k0, k1):
        i, v = ev_idx[k], ev_val[k]
        y, x, ci = i // (Wi * Ci), (i // Ci) % Wi, i % Ci
        for oy in range(Ho):
            for ox in range(Wo):
                ky, kx = y + ph - oy * sh, x + pw - ox * sw
                if 0 <= ky < kh and 0 <= kx < kw:
                    base = a_off + (oy * Wo + ox) * Co
                    acc[base:base + Co] += v * W[ci, ky, kx]
                    if not whole:
                        touch(oy * Wo + ox, mark, m_off, tlist, tcount, s)
                    n += Co
    return n


def _table_windows(wi, t_off, Hi, Wi, C, i):
    """``(c, [(oy, ox), ...])`` of input ``i`` read from the geometry tables."""
    HW = Hi * Wi
    pos = int(wi[t_off + i])
    c = i - pos * C
    y, x = int(wi[t_off + HW * C + pos]), int(wi[t_off + HW * C + HW + pos])
    t_oy = t_off + HW * C + 2 * HW
    t_ox = t_oy + 2 * Hi
    oys = range(int(wi[t_oy + y]), int(wi[t_oy + Hi + y]) + 1)
    oxs = range(int(wi[t_ox + x]), int(wi[t_ox + Wi + x]) + 1)
    return c, [(oy, ox) for oy in oys for ox in oxs]


def window_tables(Hi, Wi, C, Ho, Wo, kh, kw, sh, sw, ph, pw):
    """The geometry tables of ``eventsim.network.window_tables`` by brute force."""
    pos = [i // C for i in range(Hi * Wi * C)]
    ys = [p // Wi for p in range(Hi * Wi)]
    xs = [p % Wi for p in range(Hi * Wi)]

    def ranges(n_in, n_out, k, st, p):
        lo, hi = [], []
        for r in range(n_in):
            outs = [o for o in range(n_out) if o * st - p <= r <= o * st - p + k - 1]
            lo.append(outs[0] if outs else 1)
            hi.append(outs[-1] if outs else 0)
        return lo, hi

    oy0, oy1 = ranges(Hi, Ho, kh, sh, ph)
    ox0, ox1 = ranges(Wi, Wo, kw, sw, pw)
    return np.array(pos + ys + xs + oy0 + oy1 + ox0 + ox1, dtype=np.int64)


def scatter_sumpool(wi, t_off, Hi, Wi, C, Ho, Wo, ev_idx, ev_val, k0, k1,
                    acc, a_off, mark, m_off, tlist, tcount, s):
    n = 0
    for k in range(k0, k1):
        c, windows = _table_windows(wi, t_off, Hi, Wi, C, int(ev_idx[k]))
        for oy, ox in windows:
            acc[a_off + (oy * Wo + ox) * C + c] += ev_val[k]
            touch(oy * Wo + ox, mark, m_off, tlist, tcount, s)
            n += 1
    return n


def scatter_maxpool(wi, t_off, Hi, Wi, C, Ho, Wo, ev_idx, ev_val, k0, k1,
                    acc, a_off, mark, m_off, tlist, tcount, s, last, l_off, stamp):
    n = 0
    for k in range(k0, k1):
        c, windows = _table_windows(wi, t_off, Hi, Wi, C, int(ev_idx[k]))
        for oy, ox in windows:
            j = (oy * Wo + ox) * C + c
            if last[l_off + j] != stamp:
                last[l_off + j] = stamp
                acc[a_off + j] += ev_val[k]
                touch(oy * Wo + ox, mark, m_off, tlist, tcount, s)
                n += 1
    return n


def scatter_identity(ev_idx, ev_val, k0, k1, acc, a_off, bs, mark, m_off, tlist, tcount, s):
    for k in range(k0, k1):
        acc[a_off + ev_idx[k]] += ev_val[k]
        touch(ev_idx[k] // bs, mark, m_off, tlist, tcount, s)
    return k1 - k0


def delay_push(wi, p_off, i_off, s_off, nseg, wf, w_off, ev_idx, ev_val, k0, k1, t, T, R,
               n_t, bring, blist, bcnt, r_off, l_off, rc_off, syn):
    """A bundle's delay ring, push (the kernel reads the offsets from the bundle's record).
    Segment by segment, spike by spike; every segment checks its own arrival step; a
    full list (``n_t`` entries) stops growing (the kernel's spare entry is not written)."""
    for m in range(nseg):
        d, g = wi[s_off + 2 * m], wi[s_off + 2 * m + 1]
        if t + d >= T:
            continue
        slot = (t + d) % R
        for k in range(k0, k1):
            i, v = ev_idx[k], ev_val[k]
            lo, hi = wi[p_off + i * nseg + m], wi[p_off + i * nseg + m + 1]
            for p in range(lo, hi):
                j = wi[i_off + p]
                bring[r_off + slot * n_t + j] += v * wf[w_off + p]
                if bcnt[rc_off + slot] < n_t:
                    blist[l_off + slot * (n_t + 1) + bcnt[rc_off + slot]] = j
                    bcnt[rc_off + slot] += 1
            syn[g] += hi - lo


def delay_advance(bring, blist, bcnt, r_off, l_off, rc_off, slot, n_t, dense_div, acc, a_off, bs,
                  mark, m_off, tlist, tcount, s, allt):
    """A bundle's delay ring, advance: adds every listed entry once (no repeats) when not
    dense."""
    c = bcnt[rc_off + slot]
    vals = bring[r_off + slot * n_t:r_off + (slot + 1) * n_t]
    if c == 0:
        return
    if c >= n_t or (dense_div > 0 and c * dense_div >= n_t):
        acc[a_off:a_off + n_t] += vals
        allt[s] = True
    else:
        listed = blist[l_off + slot * (n_t + 1):l_off + slot * (n_t + 1) + c]
        for j in dict.fromkeys(int(x) for x in listed):    # first appearances, in order
            acc[a_off + j] += vals[j]
            if not allt[s]:
                touch(j // bs, mark, m_off, tlist, tcount, s)
    vals[:] = 0
    bcnt[rc_off + slot] = 0


def drain(s, space, acc, mark, tlist, tcount, allt, out_idx, out_val):
    """``space``: ``(n, off, bs, boff, post, scale)`` of space ``s``."""
    n, a_off, bs, m_off, post = (int(v) for v in space[:5])
    scale = space[5]
    if allt[s]:
        entries = range(n)
    else:
        entries = [i for k in range(tcount[s]) for i in range(tlist[m_off + k] * bs,
                                                              (tlist[m_off + k] + 1) * bs)]
    cnt = 0
    for i in entries:
        x = acc[a_off + i]
        if x != 0:
            acc[a_off + i] = 0
            out_idx[cnt] = i
            out_val[cnt] = x * scale if post == K.POST_SCALE else x
            cnt += 1
    for k in range(tcount[s]):
        mark[m_off + tlist[m_off + k]] = 0
    tcount[s] = 0
    allt[s] = False
    return cnt


def neuron_step(v, I, beta, theta, reset, v_reset, has_vmin, v_min, ternary):
    u = beta * v + I
    s = 1 if u >= theta else (-1 if ternary and u <= -theta else 0)
    if s == 0:
        vn = u
    elif reset == K.HARD_RESET:
        vn = v_reset
    else:
        vn = u - theta * type(u)(s)
    if has_vmin:
        vn = max(vn, v_min)
    return u, s, vn


def update_all_per_neuron(pop, src, a_off, V, U, cst, flags, nbeta, ntheta):
    """``pop``: a POP record; beta/theta per neuron from ``nbeta/ntheta`` when ``pop["pn"]``."""
    noff = pop["noff"]
    for i in range(pop["n"]):
        beta, theta = ((nbeta[noff + i], ntheta[noff + i]) if pop["pn"]
                       else (pop["beta"], pop["theta"]))
        u, s, vn = neuron_step(V[noff + i], src[a_off + i] + cst[noff + i], beta, theta,
                               pop["reset"], pop["v_reset"], bool(pop["has_vmin"]), pop["v_min"],
                               bool(pop["ternary"]))
        src[a_off + i] = 0
        V[noff + i], flags[i] = vn, s
        if pop["recn"] > 0:
            U[noff + i] = u


def update_all(pop, src, a_off, V, U, cst, flags):
    update_all_per_neuron(pop, src, a_off, V, U, cst, flags, None, None)


def collect_spikes(flags, n, ring_idx, ring_val, rbase):
    idx = np.nonzero(flags[:n])[0]
    ring_idx[rbase:rbase + len(idx)] = idx
    ring_val[rbase:rbase + len(idx)] = flags[idx]
    return len(idx)


def free_steps(v, c, n, beta, has_vmin, v_min):
    """No early exit: stepping at a fixed point changes nothing."""
    for _ in range(n):
        v = beta * v + c
        if has_vmin:
            v = max(v, v_min)
    return v


def catch_up(pop, t, lf, V, L, cst, nbeta, powrow, leak):
    """Every neuron steps with its own beta (or, per-population beta and ``LEAK_POWER``,
    multiplies by ``beta**gap``) over the steps since its last update, ``max(L, lf)``;
    ``beta == 1`` is stepped too (no-op)."""
    noff, has_vmin, v_min = pop["noff"], bool(pop["has_vmin"]), pop["v_min"]
    for i in range(pop["n"]):
        gap = t - 1 - max(L[noff + i], lf)
        if gap <= 0:
            continue
        if leak == K.LEAK_POWER and not pop["pn"]:
            v = V[noff + i] * powrow[gap]
            V[noff + i] = max(v, v_min) if has_vmin else v
        else:
            V[noff + i] = free_steps(V[noff + i], cst[noff + i], gap, nbeta[noff + i], has_vmin,
                                     v_min)


def predict_steps(v, c, horizon, beta, theta, has_vmin, v_min, ternary):
    """Plain stepping up to ``horizon`` steps, no fixed-point shortcut."""
    for d in range(1, horizon + 1):
        u = beta * v + c
        if u >= theta or (ternary and u <= -theta):
            return d
        v = max(u, v_min) if has_vmin else u
    return -1


def step_end(ev_t, p, pend, t):
    k = p
    while k < pend and ev_t[k] <= t:
        k += 1
    return k


# ---------------------------------------------------------------------------------------
# part 2: a dense, time-stepped reference simulator
# ---------------------------------------------------------------------------------------
def _conv(x, W, b, stride, padding):
    """``x [B, C, H, W]`` -> ``[B, O, Ho, Wo]`` by explicit taps (cross-correlation)."""
    B, C, H, Wd = x.shape
    O, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((B, C, H + 2 * ph, Wd + 2 * pw), dtype=x.dtype)
    xp[:, :, ph:ph + H, pw:pw + Wd] = x
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    y = np.zeros((B, O, Ho, Wo), dtype=x.dtype)
    for oy in range(Ho):
        for ox in range(Wo):
            patch = xp[:, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw].reshape(B, -1)
            y[:, :, oy, ox] = patch @ W.reshape(O, -1).T
    if b is not None:
        y += b[:, None, None]
    return y


def _pool(x, kernel, stride, how):
    B, C, H, W = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    y = np.zeros((B, C, Ho, Wo), dtype=x.dtype)
    for oy in range(Ho):
        for ox in range(Wo):
            win = x[:, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
            if how == "max":
                y[:, :, oy, ox] = win.max(axis=(2, 3))
            else:
                total = np.zeros(win.shape[:2], dtype=x.dtype)
                for i in range(kh):          # row-major window sum, then times 1/(kh*kw),
                    for j in range(kw):      # as training.pooling (exact for spike counts)
                        total += win[:, :, i, j]
                y[:, :, oy, ox] = total * x.dtype.type(1.0 / (kh * kw))
    return y


def _dense_matrix(p):
    if isinstance(p, mf.Dense):
        return p.weight
    W = np.zeros(tuple(p.shape), dtype=p.data.dtype)
    for r in range(p.shape[0]):
        for k in range(p.indptr[r], p.indptr[r + 1]):
            W[r, p.indices[k]] += p.data[k]
    return W


def apply_projection(layer, x):
    """One projection record on ``x [B, *shape]`` (canonical layout), bias included."""
    B = x.shape[0]
    if isinstance(layer, (mf.Dense, mf.Sparse)):
        y = x.reshape(B, -1) @ _dense_matrix(layer).T
        return y + layer.bias if layer.bias is not None else y
    if isinstance(layer, mf.Conv2d):
        return _conv(x, layer.weight, layer.bias, tuple(layer.stride), tuple(layer.padding))
    if isinstance(layer, mf.AvgPool2d):
        return _pool(x, tuple(layer.kernel), tuple(layer.stride), "avg")
    if isinstance(layer, mf.MaxPool2d):
        return _pool(x, tuple(layer.kernel), tuple(layer.stride), "max")
    if isinstance(layer, mf.Flatten):
        return x.reshape(B, -1)
    raise TypeError(type(layer).__name__)


def events_to_dense(batch, T=None, dtype=np.float32):
    """Dense ``[T, B, *input_shape]`` input values of an EventBatch (values summed)."""
    T = batch.T if T is None else T
    B, n = batch.batch_size, batch.n_inputs
    x = np.zeros((T, B, n), dtype=dtype)
    b = np.repeat(np.arange(B), np.diff(batch.sample_ptr))
    np.add.at(x, (batch.times, b, batch.indices), batch.values.astype(dtype))
    return x.reshape((T, B) + tuple(batch.input_shape))


def simulate(model: mf.Model, x, dtype=np.float32):
    """Step every layer densely.  ``x``: the input values ``[T, B, *input_shape]`` fed to
    the first projection at every step (analog current, or spikes as 0/1 / +-1 values).

    Returns ``(spikes, membranes, readout)``: ``{layer: [T, B, n] int8}``,
    ``{layer: [T, B, n]}`` (u before reset), and ``[T, B, n_out]``.
    """
    dt = np.dtype(dtype).type
    x = np.asarray(x, dtype=dtype)
    T, B = x.shape[:2]
    layers = model.layers
    shapes = mf.validate(model)
    spikes = {i: np.zeros((T, B, int(np.prod(shapes[i]))), np.int8) for i in model.spiking_layers}
    membranes = {i: np.zeros((T, B, int(np.prod(shapes[i]))), dtype) for i in model.spiking_layers}
    v = {i: np.zeros((B, int(np.prod(shapes[i]))), dtype) for i in model.spiking_layers}
    readout = np.zeros((T, B, shapes[-1][0]), dtype)
    r = np.zeros((B, shapes[-1][0]), dtype)
    conn_W = [_dense_matrix(c.projection) for c in model.connections]
    for t in range(T):
        cur = x[t]
        for i, layer in enumerate(layers):
            if isinstance(layer, mf.Spiking):
                I = cur.reshape(B, -1).astype(dtype)
                for c, W in zip(model.connections, conn_W):
                    if c.target == i:
                        if t - c.delay >= 0:
                            I = I + spikes[c.source][t - c.delay].astype(dtype) @ W.T
                        if c.projection.bias is not None:
                            I = I + c.projection.bias
                beta, theta = dt(layer.beta), dt(layer.theta)
                u = beta * v[i] + I
                s = (u >= theta).astype(np.int8)
                if layer.spikes == "ternary":
                    s = s - (u <= -theta).astype(np.int8)
                sf = s.astype(dtype)
                if layer.reset == "hard":
                    vn = u * (1 - np.abs(sf)) + dt(layer.v_reset) * np.abs(sf)
                else:
                    vn = u - theta * sf
                if layer.v_min is not None:
                    vn = np.maximum(vn, dt(layer.v_min))
                v[i] = vn
                spikes[i][t], membranes[i][t] = s, u
                cur = sf.reshape((B,) + tuple(shapes[i]))
            elif isinstance(layer, mf.Readout):
                r = dt(layer.beta) * r + cur.reshape(B, -1)
                readout[t] = r
            else:
                cur = apply_projection(layer, cur)
    return spikes, membranes, readout


def split_spikes(counts, neuron, value, perm, perm_off, pop_major=False):
    """Population by population: boolean selection of the (b, t, q) groups (or (b, q, t))."""
    B, T, Q = counts.shape
    c = (counts.transpose(0, 2, 1) if pop_major else counts).reshape(-1)
    bb, xx, yy = np.meshgrid(np.arange(B), np.arange(counts.shape[2 if pop_major else 1]),
                             np.arange(counts.shape[1 if pop_major else 2]), indexing="ij")
    q_grid, t_grid = (xx, yy) if pop_major else (yy, xx)
    group_q = np.repeat(q_grid.reshape(-1), c)
    group_b = np.repeat(bb.reshape(-1), c)
    group_t = np.repeat(t_grid.reshape(-1), c)
    parts = [[], [], [], []]
    ptr = [0]
    for q in range(Q):
        sel = group_q == q
        parts[0].append(group_b[sel])
        parts[1].append(group_t[sel])
        parts[2].append(perm[perm_off[q] + neuron[sel]])
        parts[3].append(value[sel])
        ptr.append(ptr[-1] + int(sel.sum()))
    return tuple(np.concatenate(p) for p in parts) + (np.array(ptr),)


def check_events(times, indices, values, ptr, T, n_inputs):
    """Each condition over all events with NumPy; the first event breaking any of them."""
    k = np.arange(len(times))
    sample = np.searchsorted(ptr, k, side="right") - 1
    back = np.zeros(len(times), bool)
    back[1:] = (times[1:] < times[:-1]) & (sample[1:] == sample[:-1])
    problems = [(~np.isfinite(values), 1), ((times < 0) | (times >= T), 2),
                ((indices < 0) | (indices >= n_inputs), 3), (back, 4)]
    first = [(int(np.argmax(bad)), code) for bad, code in problems if bad.any()]
    if not first:
        return 0, -1
    k, code = min(first)   # the earliest event; at equal events, the first condition
    return code, k
