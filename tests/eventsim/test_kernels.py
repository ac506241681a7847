"""Every Numba kernel of ``eventsim/kernels.py`` against its NumPy twin.

The twins in ``tests/reference/naive_eventsim.py`` perform the same float operations in the
same order, so results must be bit-identical even for general (non-dyadic) float32 values.
The scatter kernels are also checked against the dense definitions (convolution, pooling)
on dyadic values.  The event loop itself (``run_batch`` and its private helpers) is tested
end to end in ``test_equivalence.py``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from eventsim import kernels as K
from eventsim import tables as TB
from eventsim.network import merge_delayed, window_tables
from tests.reference import naive_eventsim as naive

END_TO_END = {"_add_row", "_event_window"}


@pytest.mark.skipif(bool(int(os.environ.get("NUMBA_DISABLE_JIT", "0") or 0)),
                    reason="kernels are plain Python functions with NUMBA_DISABLE_JIT=1")
def test_every_public_kernel_has_a_twin():
    kernels = {name for name, obj in vars(K).items() if isinstance(obj, CPUDispatcher)}
    assert kernels, "no kernels found"
    missing = sorted(k for k in kernels - END_TO_END if not hasattr(naive, k)
                     and k not in ("wake_push", "wake_remove"))
    assert not missing, f"kernels without a NumPy twin: {missing}"
    for name in kernels:
        d = getattr(K, name)
        assert d.targetoptions.get("fastmath", False) is False, name
        assert type(d._cache).__name__ != "NullCache", f"{name} is not cache=True"
        assert not d.targetoptions.get("parallel", False), name


class State:
    """A destination space ``s = 1`` at non-zero offsets inside larger arrays."""

    def __init__(self, rng, n, bs, dtype=np.float32, S=3):
        self.a_off, self.m_off, self.s = 5, 3, 1
        self.acc = rng.standard_normal(n + 10).astype(dtype)
        self.acc[self.a_off:self.a_off + n] = 0
        self.mark = np.zeros(n // bs + 6, np.uint8)
        self.tlist = np.zeros(n // bs + 6, np.int64)
        self.tcount = np.zeros(S, np.int64)

    def copy(self):
        c = object.__new__(State)
        c.__dict__ = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        return c

    def args(self):
        return self.acc, self.a_off

    def touch_args(self):
        return self.mark, self.m_off, self.tlist, self.tcount, self.s

    def assert_same(self, other):
        for name in ("acc", "mark", "tlist", "tcount"):
            np.testing.assert_array_equal(getattr(self, name), getattr(other, name), err_msg=name)


def _stage_record(**fields):
    """One STAGE record (tables.STAGE_DTYPE) with the given fields (others 0)."""
    rec = np.zeros(1, TB.STAGE_DTYPE)
    for name, v in fields.items():
        rec[name] = v
    return rec[0]


def _target(st, allt=False):
    """The kernels' view of State ``st``: (SPACE record of space st.s, Accum)."""
    dsp = _space_table(3, st.s, len(st.acc), st.a_off, 1, st.m_off, dtype=st.acc.dtype)[st.s]
    flags = np.zeros(3, np.bool_)
    flags[st.s] = allt
    return dsp, TB.Accum(st.acc, st.mark, st.tlist, st.tcount, flags)


def _events(rng, n_src, m, values="mixed", dtype=np.float32):
    idx = rng.integers(0, n_src, size=m).astype(np.int64)
    if values == "binary":
        val = np.ones(m, dtype)
    else:
        val = rng.choice([1.0, -1.0, 0.5, -0.3], size=m).astype(dtype)
        other = rng.random(m) < 0.3
        val[other] = rng.standard_normal(int(other.sum()))
    pad = rng.integers(0, 3)
    return (np.concatenate([np.zeros(pad, np.int64), idx]),
            np.concatenate([np.zeros(pad, dtype), val]), pad, pad + m)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_dense(seed, dtype):
    rng = np.random.default_rng(seed)
    n_src, n_dst = rng.integers(1, 30, size=2)
    w_off = int(rng.integers(0, 5))
    wt = rng.standard_normal(w_off + n_src * n_dst).astype(dtype)
    ev_idx, ev_val, k0, k1 = _events(rng, n_src, int(rng.integers(0, 40)), dtype=dtype)
    a = State(rng, n_dst, 1, dtype)
    b = a.copy()
    na = K.scatter_dense(wt, w_off, n_dst, ev_idx, ev_val, k0, k1, *a.args())
    nb = naive.scatter_dense(wt, w_off, n_dst, ev_idx, ev_val, k0, k1, *b.args())
    assert na == nb
    a.assert_same(b)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_window(seed, dtype):
    """Source-major delivery over a window of steps == step by step, bit for bit (float
    weights, so the order of every sum matters), with repeated events and values +-1, 0.5."""
    rng = np.random.default_rng(seed)
    n_src, n_dst, n_t = (int(v) for v in rng.integers(1, 25, size=3))
    t0, w_off = int(rng.integers(0, 4)), int(rng.integers(0, 5))
    wt = rng.standard_normal(w_off + n_src * n_dst).astype(dtype)
    m = int(rng.integers(0, 80))
    ev_t = np.sort(rng.integers(t0, t0 + n_t, size=m))
    ev_i = rng.integers(0, n_src, size=m)
    order = np.lexsort((ev_i, ev_t))              # by step, then source (repeats kept)
    pad = int(rng.integers(0, 3))
    ev_t = np.concatenate([np.zeros(pad, np.int64), ev_t[order]]).astype(np.int64)
    ev_i = np.concatenate([np.zeros(pad, np.int64), ev_i[order]]).astype(np.int64)
    ev_v = rng.choice(np.array([1.0, -1.0, 0.5], dtype), size=pad + m)
    acc_a = rng.standard_normal(n_t * n_dst).astype(dtype)
    acc_b = acc_a.copy()
    na = K.dense_window(wt, w_off, n_src, n_dst, (ev_t, ev_i, ev_v), pad, pad + m, t0, acc_a)
    nb = naive.dense_window(wt, w_off, n_src, n_dst, ev_t, ev_i, ev_v, pad, pad + m, t0, acc_b)
    assert na == nb == m * n_dst
    np.testing.assert_array_equal(acc_a, acc_b)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("whole", [False, True])
def test_scatter_sparse(seed, whole):
    rng = np.random.default_rng(seed)
    n_src, n_blocks, bs = int(rng.integers(1, 20)), int(rng.integers(1, 8)), int(rng.integers(1, 4))
    n_dst = n_blocks * bs
    counts = rng.integers(0, 6, size=n_src)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = rng.integers(0, n_dst, size=indptr[-1]).astype(np.int64)
    p_off = 2
    wi = np.concatenate([[7, 7], indptr, indices]).astype(np.int64)
    i_off = p_off + len(indptr)
    data = rng.standard_normal(indptr[-1] + 1).astype(np.float32)
    ev_idx, ev_val, k0, k1 = _events(rng, n_src, int(rng.integers(0, 30)))
    a = State(rng, n_dst, bs)
    b = a.copy()
    dsp, A = _target(a, whole)
    dsp["bs"] = bs
    st = _stage_record(dst=a.s, poff=p_off, ioff=i_off, woff=1)
    na = K.scatter_sparse(data, wi, st, dsp, A, ev_idx, ev_val, k0, k1)
    nb = naive.scatter_sparse(wi, p_off, i_off, data, 1, ev_idx, ev_val, k0, k1, *b.args(), bs, *b.touch_args(), whole)
    assert na == nb
    a.assert_same(b)


def _bundle(rng, n_src, n_t, delays, dtype=np.float32):
    """Random sparse connections (source-major CSR) with the given delays, merged."""
    conns = []
    for g, d in enumerate(delays):
        counts = rng.integers(0, min(5, n_t) + 1, size=n_src)
        iptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        idx = np.concatenate([np.sort(rng.choice(n_t, size=c, replace=False)) for c in counts]
                             ).astype(np.int64)
        conns.append(dict(delay=int(d), g=g + 1, iptr=iptr, idx=idx,
                          w=rng.standard_normal(len(idx)).astype(dtype)))
    return conns, merge_delayed(conns, n_src)


@pytest.mark.parametrize("seed", range(6))
def test_merge_delayed(seed):
    """Segment m of row i is row i of the m-th connection in delay order."""
    rng = np.random.default_rng(seed)
    n_src, n_t = int(rng.integers(1, 12)), int(rng.integers(1, 15))
    conns, (ptr, idx, w, seg) = _bundle(rng, n_src, n_t, rng.integers(1, 5, size=rng.integers(1, 5)))
    order = sorted(range(len(conns)), key=lambda k: conns[k]["delay"])
    nseg = len(conns)
    assert list(seg) == [x for k in order for x in (conns[k]["delay"], conns[k]["g"])]
    assert ptr[0] == 0 and ptr[-1] == len(idx) == len(w)
    for i in range(n_src):
        for m, k in enumerate(order):
            c = conns[k]
            a, b = ptr[i * nseg + m], ptr[i * nseg + m + 1]
            np.testing.assert_array_equal(idx[a:b], c["idx"][c["iptr"][i]:c["iptr"][i + 1]])
            np.testing.assert_array_equal(w[a:b], c["w"][c["iptr"][i]:c["iptr"][i + 1]])


R_OFF, L_OFF, RC_OFF = 3, 5, 2   # ring values, lists and counts start here


def _bundle_record(ptr, idx, seg, nseg, w, R, n_t, space=1):
    """One bundle record (tables.BUNDLE_DTYPE) with its ring at R_OFF, L_OFF, RC_OFF."""
    rec = np.zeros(1, TB.BUNDLE_DTYPE)
    for name, v in dict(ptr=ptr, idx=idx, seg=seg, nseg=nseg, w=w, R=R, n_t=n_t, space=space,
                        roff=R_OFF, loff=L_OFF, rcoff=RC_OFF).items():
        rec[name] = v
    return rec[0]


def _space_table(S, s, n, off, bs, boff, post=TB.POST_NONE, scale=1.0, dtype=np.float32):
    """A SPACE table of ``S`` rows with row ``s`` set."""
    tab = np.zeros(S, TB.space_dtype(np.dtype(dtype)))
    tab["scale"] = 1
    tab[s] = (n, off, bs, boff, post, scale)
    return tab


def _ring_state(rng, R, n_t, dtype=np.float32):
    """Rings with some synapses already delivered (repeated targets, a full list)."""
    bring = np.zeros(R_OFF + R * n_t + 4, dtype)
    blist = np.full(L_OFF + R * (n_t + 1) + 4, -7, np.int32)
    bcnt = np.zeros(RC_OFF + R + 1, np.int64)
    for slot in range(R):
        m = int(rng.choice([0, rng.integers(0, n_t + 1), n_t]))
        js = rng.integers(0, n_t, size=m)
        for j in js:
            bring[R_OFF + slot * n_t + j] += dtype(rng.standard_normal())
        blist[L_OFF + slot * (n_t + 1):][:m] = js
        bcnt[RC_OFF + slot] = m
    return [bring, blist, bcnt]


def _same_rings(a, b, R, n_t):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])
    for slot in range(R):
        lb = L_OFF + slot * (n_t + 1)
        np.testing.assert_array_equal(a[1][lb:lb + a[2][RC_OFF + slot]],
                                      b[1][lb:lb + b[2][RC_OFF + slot]])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_delay_push(seed, dtype):
    rng = np.random.default_rng(seed)
    n_src, n_t = int(rng.integers(1, 12)), int(rng.integers(1, 15))
    delays = np.sort(rng.integers(1, 6, size=rng.integers(1, 5)))
    conns, (ptr, idx, w, seg) = _bundle(rng, n_src, n_t, delays, dtype)
    R = int(delays.max()) + int(rng.integers(0, 2))
    wi = np.concatenate([[9, 9], ptr, idx, seg]).astype(np.int64)
    wf = np.concatenate([np.ones(1, dtype), w])
    ev_idx, ev_val, k0, k1 = _events(rng, n_src, int(rng.integers(0, 12)), dtype=dtype)
    T = 20
    t = int(rng.integers(10, T))         # late steps: some segments arrive after T
    a = _ring_state(rng, R, n_t, dtype)
    b = [x.copy() for x in a]
    syn_a, syn_b = np.zeros(len(delays) + 1, np.int64), np.zeros(len(delays) + 1, np.int64)
    args = (wi, 2, 2 + len(ptr), 2 + len(ptr) + len(idx), len(conns), wf, 1, ev_idx, ev_val,
            k0, k1, t, T, R, n_t)
    bun = _bundle_record(2, 2 + len(ptr), 2 + len(ptr) + len(idx), len(conns), 1, R, n_t)
    D = TB.Delivery(*([np.zeros(1, np.int64)] * 17))._replace(wi=wi, wf=wf, syn=syn_a)
    K.delay_push(TB.DelayRing(*a), bun, D, ev_idx, ev_val, k0, k1, t, T)
    naive.delay_push(*args, *b, R_OFF, L_OFF, RC_OFF, syn_b)
    _same_rings(a, b, R, n_t)
    np.testing.assert_array_equal(syn_a, syn_b)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dense_div", [0, 3, 1 << 40])
def test_delay_advance(seed, dense_div):
    rng = np.random.default_rng(seed)
    bs = int(rng.integers(1, 4))
    n_t, R = bs * int(rng.integers(1, 6)), int(rng.integers(1, 5))
    ring = _ring_state(rng, R, n_t)
    twin = [x.copy() for x in ring]
    a = State(rng, n_t, bs)
    for blk in rng.permutation(n_t // bs)[:2]:
        naive.touch(int(blk), *a.touch_args())
    b = a.copy()
    allt_a = np.array([False, seed % 3 == 0, False])
    allt_b = allt_a.copy()
    slot = int(rng.integers(0, R))
    bun = _bundle_record(0, 0, 0, 1, 0, R, n_t, space=a.s)
    spaces = _space_table(3, a.s, n_t, a.a_off, bs, a.m_off)
    K.delay_advance(TB.DelayRing(*ring), bun, slot, dense_div,
                    TB.Accum(a.acc, a.mark, a.tlist, a.tcount, allt_a), spaces)
    naive.delay_advance(*twin, R_OFF, L_OFF, RC_OFF, slot, n_t, dense_div, *b.args(), bs, *b.touch_args(), allt_b)
    _same_rings(ring, twin, R, n_t)
    a.assert_same(b)
    np.testing.assert_array_equal(allt_a, allt_b)
    assert ring[2][RC_OFF + slot] == 0 and not ring[0][R_OFF + slot * n_t:R_OFF + (slot + 1) * n_t].any()


GEO = ("Hi", "Wi", "Ci", "Ho", "Wo", "Co", "kh", "kw", "sh", "sw", "ph", "pw")


def _conv_geometry(rng):
    Ci, Co = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    Hi, Wi = int(rng.integers(kh, 9)), int(rng.integers(kw, 9))
    Ho, Wo = (Hi + 2 * ph - kh) // sh + 1, (Wi + 2 * pw - kw) // sw + 1
    return Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("whole", [False, True])
def test_scatter_conv(seed, whole):
    rng = np.random.default_rng(seed)
    Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw = geo = _conv_geometry(rng)
    w = rng.standard_normal(3 + Ci * kh * kw * Co).astype(np.float32)
    ev_idx, ev_val, k0, k1 = _events(rng, Hi * Wi * Ci, int(rng.integers(0, 25)))
    tab = np.concatenate([[5, 5], window_tables(*geo[:5], *geo[6:])])
    a = State(rng, Ho * Wo * Co, Co)
    b = a.copy()
    pbuf = np.zeros(2 * kh * kw, np.int64)
    st = _stage_record(dst=a.s, woff=3, toff=2, **dict(zip(GEO, geo)))
    na = K.scatter_conv(w, tab, st, *_target(a, whole), ev_idx, ev_val, k0, k1, pbuf)
    nb = naive.scatter_conv(w, 3, tab, 2, *geo, ev_idx, ev_val, k0, k1, *b.args(), *b.touch_args(),
                            whole=whole)
    assert na == nb
    a.assert_same(b)


@pytest.mark.parametrize("seed", range(10))
def test_scatter_conv_is_a_convolution(seed):
    """Scattering every non-zero input equals the dense cross-correlation (dyadic values)."""
    rng = np.random.default_rng(100 + seed)
    Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw = geo = _conv_geometry(rng)
    W = (rng.integers(-64, 64, size=(Co, Ci, kh, kw)) / 256).astype(np.float32)
    x = (rng.integers(-2, 3, size=(1, Ci, Hi, Wi)) * (rng.random((1, Ci, Hi, Wi)) < 0.5)).astype(np.float32)
    hwc = x[0].transpose(1, 2, 0).ravel()
    idx = np.nonzero(hwc)[0].astype(np.int64)
    acc = np.zeros(Ho * Wo * Co, np.float32)
    mark, tlist, tcount = np.zeros(Ho * Wo, np.uint8), np.zeros(Ho * Wo, np.int64), np.zeros(1, np.int64)
    st = _stage_record(**dict(zip(GEO, geo)))
    dsp = _space_table(1, 0, len(acc), 0, Co, 0)[0]
    K.scatter_conv(np.ascontiguousarray(W.transpose(1, 2, 3, 0)).ravel(),
                   window_tables(*geo[:5], *geo[6:]), st, dsp,
                   TB.Accum(acc, mark, tlist, tcount, np.zeros(1, np.bool_)), idx, hwc[idx],
                   0, len(idx), np.zeros(2 * kh * kw, np.int64))
    want = naive._conv(x, W, None, (sh, sw), (ph, pw))[0].transpose(1, 2, 0).ravel()
    np.testing.assert_array_equal(acc, want)
    touched = np.zeros(Ho * Wo, bool)
    touched[tlist[:tcount[0]]] = True
    assert np.all(acc.reshape(Ho * Wo, Co)[~touched] == 0)
    assert len(set(tlist[:tcount[0]])) == tcount[0]


def _pool_geometry(rng):
    C = int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    Hi, Wi = int(rng.integers(kh, 10)), int(rng.integers(kw, 10))
    return Hi, Wi, C, (Hi - kh) // sh + 1, (Wi - kw) // sw + 1, kh, kw, sh, sw


@pytest.mark.parametrize("seed", range(10))
def test_scatter_pools(seed):
    rng = np.random.default_rng(seed)
    Hi, Wi, C, Ho, Wo, kh, kw, sh, sw = geo = _pool_geometry(rng)
    tab = np.concatenate([[9], window_tables(Hi, Wi, C, Ho, Wo, kh, kw, sh, sw, 0, 0)])
    g = (tab, 1, Hi, Wi, C, Ho, Wo)
    st = _stage_record(toff=1, Hi=Hi, Wi=Wi, Ci=C, Ho=Ho, Wo=Wo, moff=4)
    ev_idx, ev_val, k0, k1 = _events(rng, Hi * Wi * C, int(rng.integers(0, 30)))
    a = State(rng, Ho * Wo * C, C)
    b = a.copy()
    st["dst"] = a.s
    assert (K.scatter_sumpool(tab, st, *_target(a), ev_idx, ev_val, k0, k1)
            == naive.scatter_sumpool(*g, ev_idx, ev_val, k0, k1, *b.args(), *b.touch_args()))
    a.assert_same(b)
    ev_idx, ev_val, k0, k1 = _events(rng, Hi * Wi * C, int(rng.integers(0, 30)), "binary")
    last_a = rng.integers(0, 3, size=Ho * Wo * C + 4).astype(np.int64)
    last_b = last_a.copy()
    a = State(rng, Ho * Wo * C, C)
    b = a.copy()
    assert (K.scatter_maxpool(tab, st, *_target(a), ev_idx, ev_val, k0, k1, last_a, 2)
            == naive.scatter_maxpool(*g, ev_idx, ev_val, k0, k1, *b.args(), *b.touch_args(), last_b, 4, 2))
    a.assert_same(b)
    np.testing.assert_array_equal(last_a, last_b)


@pytest.mark.parametrize("seed", range(10))
def test_pools_are_pools(seed):
    """Sum pooling times 1/(kh*kw) and max pooling of binary spikes equal the dense
    definitions (window sums of spikes are exact)."""
    rng = np.random.default_rng(200 + seed)
    Hi, Wi, C, Ho, Wo, kh, kw, sh, sw = geo = _pool_geometry(rng)
    x = (rng.random((1, C, Hi, Wi)) < 0.3).astype(np.float32)
    hwc = x[0].transpose(1, 2, 0).ravel()
    idx = np.nonzero(hwc)[0].astype(np.int64)
    n = Ho * Wo * C
    tab = window_tables(Hi, Wi, C, Ho, Wo, kh, kw, sh, sw, 0, 0)
    st = _stage_record(Hi=Hi, Wi=Wi, Ci=C, Ho=Ho, Wo=Wo)
    dsp = _space_table(1, 0, n, 0, C, 0)[0]
    for how in ("avg", "max"):
        acc = np.zeros(n, np.float32)
        mark, tlist, tcount = np.zeros(Ho * Wo, np.uint8), np.zeros(Ho * Wo, np.int64), np.zeros(1, np.int64)
        if how == "avg":
            A = TB.Accum(acc, mark, tlist, tcount, np.zeros(1, np.bool_))
            K.scatter_sumpool(tab, st, dsp, A, idx, hwc[idx], 0, len(idx))
            acc = acc * np.float32(1.0 / (kh * kw))
        else:
            A = TB.Accum(acc, mark, tlist, tcount, np.zeros(1, np.bool_))
            K.scatter_maxpool(tab, st, dsp, A, idx, hwc[idx], 0, len(idx), np.zeros(n, np.int64), 1)
        want = naive._pool(x, (kh, kw), (sh, sw), how)[0].transpose(1, 2, 0).ravel()
        np.testing.assert_array_equal(acc, want, err_msg=how)


def _decode_tables(tab, Hi, Wi, C):
    """pos/y/x tables and the output ranges (as lists) of every input row and column."""
    HW = Hi * Wi
    head = tab[:HW * C + 2 * HW]
    r = tab[HW * C + 2 * HW:]
    rows = [list(range(r[y], r[Hi + y] + 1)) for y in range(Hi)]
    cols = [list(range(r[2 * Hi + x], r[2 * Hi + Wi + x] + 1)) for x in range(Wi)]
    return head.tolist(), rows, cols


@pytest.mark.parametrize("seed", range(8))
def test_window_tables(seed):
    """The geometry tables equal the brute-force window search (conv and pool geometries)."""
    rng = np.random.default_rng(300 + seed)
    Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw = _conv_geometry(rng)
    g = (Hi, Wi, Ci, Ho, Wo, kh, kw, sh, sw, ph, pw)
    assert _decode_tables(window_tables(*g), Hi, Wi, Ci) == _decode_tables(naive.window_tables(*g), Hi, Wi, Ci)
    Hi, Wi, C, Ho, Wo, kh, kw, sh, sw = _pool_geometry(rng)
    g = (Hi, Wi, C, Ho, Wo, kh, kw, sh, sw, 0, 0)
    assert _decode_tables(window_tables(*g), Hi, Wi, C) == _decode_tables(naive.window_tables(*g), Hi, Wi, C)


@pytest.mark.parametrize("seed", range(4))
def test_scatter_identity(seed):
    rng = np.random.default_rng(seed)
    bs = int(rng.integers(1, 4))
    n = bs * int(rng.integers(1, 6))
    ev_idx, ev_val, k0, k1 = _events(rng, n, int(rng.integers(0, 20)))
    a = State(rng, n, bs)
    b = a.copy()
    dsp, A = _target(a)
    dsp["bs"] = bs
    assert (K.scatter_identity(a.s, dsp, A, ev_idx, ev_val, k0, k1)
            == naive.scatter_identity(ev_idx, ev_val, k0, k1, *b.args(), bs, *b.touch_args()))
    a.assert_same(b)


@pytest.mark.parametrize("seed", range(8))
def test_drain(seed):
    rng = np.random.default_rng(seed)
    bs = int(rng.integers(1, 4))
    n = bs * int(rng.integers(1, 8))
    S = 3
    spaces = _space_table(S, 1, n, 4, bs, 2, TB.POST_SCALE if seed % 2 else TB.POST_NONE,
                          np.float32(1 / 3))
    acc = rng.standard_normal(n + 8).astype(np.float32)
    mark = np.zeros(n // bs + 4, np.uint8)
    tlist = np.zeros(n // bs + 4, np.int64)
    tcount = np.zeros(S, np.int64)
    allt = np.zeros(S, np.bool_)
    blocks = rng.permutation(n // bs)[:rng.integers(0, n // bs + 1)]
    for blk in blocks:
        naive.touch(int(blk), mark, 2, tlist, tcount, 1)
    acc[4:4 + n][rng.random(n) < 0.3] = 0
    allt[1] = seed % 3 == 0
    state = [acc, mark, tlist, tcount, allt, np.zeros(n, np.int64), np.zeros(n, np.float32)]
    twin = [a.copy() for a in state]
    ca = K.drain(spaces, 1, TB.Accum(*state[:5]), *state[5:])
    cb = naive.drain(1, tuple(spaces[1]), *twin)
    assert ca == cb
    for a, b in zip(state[:5], twin[:5]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(state[5][:ca], twin[5][:cb])
    np.testing.assert_array_equal(state[6][:ca], twin[6][:cb])
    assert not mark.any() and tcount[1] == 0 and not allt[1]


def _params(rng, dtype):
    d = np.dtype(dtype).type
    return dict(beta=d(rng.choice([1.0, 0.5, 0.75, 0.9, 0.0, rng.random()])),
                theta=d(rng.choice([1.0, 0.5, rng.random() + 0.1])),
                reset=int(rng.integers(2)), v_reset=d(rng.choice([0.0, -0.3, 0.2])),
                has_vmin=bool(rng.integers(2)), v_min=d(rng.choice([0.0, -0.5])),
                ternary=bool(rng.integers(2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_neuron_step(dtype):
    rng = np.random.default_rng(0)
    d = np.dtype(dtype).type
    for _ in range(3000):
        p = _params(rng, dtype)
        v, I = d(rng.standard_normal()), d(rng.standard_normal() * 1.5)
        got = K.neuron_step(v, I, p["beta"], p["theta"], p["reset"], p["v_reset"], p["has_vmin"],
                            p["v_min"], p["ternary"])
        want = naive.neuron_step(v, I, p["beta"], p["theta"], p["reset"], p["v_reset"],
                                 p["has_vmin"], p["v_min"], p["ternary"])
        assert got[1] == want[1], (p, v, I)
        assert d(got[0]) == want[0] and d(got[2]) == want[2], (p, v, I, got, want)


def test_neuron_step_equals_canonical_step():
    """The scalar kernel is docs/methods.md section 2 as written in training.neurons."""
    from snncore.neuron import NeuronParams, canonical_step
    rng = np.random.default_rng(1)
    for reset in ("hard", "subtract"):
        for beta in (1.0, 0.5, 0.9):
            p = NeuronParams(beta=beta, theta=0.7, reset=reset, v_reset=-0.1)
            v = rng.standard_normal(500).astype(np.float32)
            I = rng.standard_normal(500).astype(np.float32)
            u, s, vn = canonical_step(v, I, p)
            for k in range(500):
                got = K.neuron_step(v[k], I[k], np.float32(beta), np.float32(0.7),
                                    K.HARD_RESET if reset == "hard" else K.SUBTRACT_RESET,
                                    np.float32(-0.1), False, np.float32(0), False)
                assert (np.float32(got[0]), got[1], np.float32(got[2])) == (u[k], s[k], vn[k])


def _pop_record(p, n, noff, dtype, per_neuron=False, recorded=True):
    """A POP record with the neuron parameters ``p`` (see :func:`_params`)."""
    rec = np.zeros(1, TB.pop_dtype(dtype))
    rec["n"], rec["noff"], rec["pn"], rec["recn"] = n, noff, per_neuron, int(recorded)
    for name in ("reset", "has_vmin", "ternary"):
        rec[name] = int(p[name])
    for name in ("beta", "theta", "v_reset", "v_min"):
        rec[name] = p[name]
    if per_neuron:
        rec["beta"] = rec["theta"] = np.nan
    return rec[0]


def _neuron_arrays(rng, p, size, per_neuron):
    """Every neuron's beta and theta: ``p``'s values, or (per neuron) random ones."""
    if not per_neuron:
        return np.full(size, p["beta"], np.float32), np.full(size, p["theta"], np.float32)
    beta = rng.choice([1.0, 0.5, 0.75, 0.0, rng.random()], size).astype(np.float32)
    return beta, (rng.random(size) + 0.1).astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_update_all_and_collect_spikes(seed):
    rng = np.random.default_rng(seed)
    p = _params(rng, np.float32)
    n = int(rng.integers(1, 60))
    a_off, noff = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    acc, cst, V, U = (rng.standard_normal(n + 4).astype(np.float32) for _ in range(4))
    cst[rng.random(n + 4) < 0.5] = 0  # some neurons without constant input
    flags = np.zeros((n + 7) // 8 * 8 + 8, np.int8)
    flags[n:] = 1                      # stale flags beyond n must be ignored
    per_neuron = seed % 2 == 1
    pop = _pop_record(p, n, noff, np.float32, per_neuron, recorded=seed % 3 != 0)
    nbeta, ntheta = _neuron_arrays(rng, p, n + 4, per_neuron)
    state = [acc, V, U, cst, flags]
    twin = [a.copy() for a in state]
    if per_neuron:
        K.update_all_per_neuron(pop, state[0], a_off, *state[1:], nbeta, ntheta)
        naive.update_all_per_neuron(pop, twin[0], a_off, *twin[1:], nbeta, ntheta)
    else:
        K.update_all(pop, state[0], a_off, *state[1:])
        naive.update_all(pop, twin[0], a_off, *twin[1:])
    for a, b in zip(state, twin):
        np.testing.assert_array_equal(a, b)
    assert not np.isnan(V).any()
    ri, rv = np.zeros(n + 3, np.int64), np.zeros(n + 3, np.float32)
    ri2, rv2 = ri.copy(), rv.copy()
    c = K.collect_spikes(flags, n, ri, rv, 3)
    assert c == naive.collect_spikes(twin[4], n, ri2, rv2, 3)
    np.testing.assert_array_equal(ri[3:3 + c], ri2[3:3 + c])
    np.testing.assert_array_equal(rv[3:3 + c], rv2[3:3 + c])


def test_free_steps_and_predict_steps():
    rng = np.random.default_rng(2)
    for _ in range(2000):
        p = _params(rng, np.float32)
        v = np.float32(rng.standard_normal() * 0.3)
        c = np.float32(rng.choice([0.0, rng.standard_normal() * 0.3]))
        n = int(rng.integers(0, 40))
        got = K.free_steps(v, c, n, p["beta"], p["has_vmin"], p["v_min"])
        want = naive.free_steps(v, c, n, p["beta"], p["has_vmin"], p["v_min"])
        assert np.float32(got) == want
        args = (v, c, n, p["beta"], p["theta"], p["has_vmin"], p["v_min"], p["ternary"])
        assert K.predict_steps(*args) == naive.predict_steps(*args), args


@pytest.mark.parametrize("seed", range(12))
def test_catch_up(seed):
    rng = np.random.default_rng(40 + seed)
    p = _params(rng, np.float32)
    n, noff, T = int(rng.integers(1, 40)), int(rng.integers(0, 4)), 30
    V = (rng.standard_normal(n + 6) * 0.5).astype(np.float32)
    cst = np.zeros(n + 6, np.float32)
    cst[rng.random(n + 6) < 0.2] = -0.0
    L = rng.integers(-1, 20, size=n + 6).astype(np.int64)
    lf, t = int(rng.integers(-1, 20)), int(rng.integers(0, 24))
    if seed % 3 == 0:
        p["beta"] = np.float32(1.0)
    per_neuron = seed % 4 == 1
    pop = _pop_record(p, n, noff, np.float32, per_neuron)
    nbeta, _ = _neuron_arrays(rng, p, n + 6, per_neuron)
    powrow = np.asarray(np.float64(p["beta"]) ** np.arange(T + 1), dtype=np.float32)
    if per_neuron:
        powrow[:] = np.nan     # not read: per-neuron beta is always stepped
    for leak in (K.LEAK_REPEAT, K.LEAK_POWER):
        a, b = V.copy(), V.copy()
        K.catch_up(pop, t, lf, a, L, cst, nbeta, powrow, leak)
        naive.catch_up(pop, t, lf, b, L, cst, nbeta, powrow, leak)
        np.testing.assert_array_equal(a, b)
        assert not np.isnan(a).any()
        behind = t - 1 - np.maximum(L[noff:noff + n], lf) > 0
        np.testing.assert_array_equal(a[noff:noff + n][~behind], V[noff:noff + n][~behind])


def test_step_end():
    rng = np.random.default_rng(4)
    for _ in range(300):
        ev_t = np.sort(rng.integers(0, 12, size=rng.integers(0, 60))).astype(np.int64)
        p = int(rng.integers(0, len(ev_t) + 1))
        pend = int(rng.integers(p, len(ev_t) + 1))
        t = int(ev_t[p]) if p < pend and rng.random() < 0.7 else int(rng.integers(0, 13))
        if p < pend and t > ev_t[p]:
            t = int(ev_t[p])   # precondition: ev_t[p:pend] >= t
        assert K.step_end(ev_t, p, pend, t) == naive.step_end(ev_t, p, pend, t), (ev_t, p, pend, t)


def test_wake_queue():
    """Doubly linked buckets: pushes and removals keep each bucket's set of neurons."""
    rng = np.random.default_rng(3)
    n, H = 30, 7
    head = np.full(H, -1, np.int64)
    nxt, prv, wake_t = (np.full(n, -1, np.int64) for _ in range(3))
    model = {h: set() for h in range(H)}
    where = {}
    for _ in range(2000):
        gi = int(rng.integers(n))
        if gi in where:
            K.wake_remove(head, nxt, prv, wake_t, where[gi], gi)
            model[where.pop(gi)].discard(gi)
        else:
            h = int(rng.integers(H))
            K.wake_push(head, nxt, prv, wake_t, h, h + 100, gi)
            model[h].add(gi)
            where[gi] = h
        for h in range(H):
            seen, g = set(), head[h]
            while g >= 0:
                seen.add(int(g))
                g = nxt[g]
            assert seen == model[h]
    assert all(wake_t[g] == where[g] + 100 for g in where)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("pop_major", [False, True])
def test_split_spikes(seed, pop_major):
    rng = np.random.default_rng(seed)
    B, T, Q = (int(v) for v in rng.integers(1, 5, size=3))
    sizes = rng.integers(1, 6, size=Q)
    counts = np.stack([rng.integers(0, n + 1, size=(B, T)) for n in sizes], -1).astype(np.int32)
    group_counts = (counts.transpose(0, 2, 1) if pop_major else counts).reshape(-1)
    q_of = np.repeat(np.tile(np.repeat(np.arange(Q), T) if pop_major else np.arange(Q),
                             B if pop_major else B * T), group_counts)
    neuron = np.array([rng.integers(0, sizes[q]) for q in q_of], np.int32)
    value = rng.choice(np.array([-1, 1], np.int8), size=len(neuron))
    perm_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    perm = np.concatenate([rng.permutation(n) for n in sizes]).astype(np.int32)
    got = K.split_spikes(counts, neuron, value, perm, perm_off, pop_major)
    want = naive.split_spikes(counts, neuron, value, perm, perm_off, pop_major)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("seed", range(12))
def test_check_events(seed):
    rng = np.random.default_rng(seed)
    B, T, n_in = int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9))
    sizes = rng.integers(0, 6, size=B)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    times = np.concatenate([np.sort(rng.integers(0, T, size=m)) for m in sizes]).astype(np.int64)
    indices = rng.integers(0, n_in, size=len(times)).astype(np.int64)
    values = rng.standard_normal(len(times)).astype(np.float32)
    for _ in range(int(rng.integers(0, 3))):       # break a few events (or none)
        if len(times):
            k = int(rng.integers(0, len(times)))
            what = int(rng.integers(0, 4))
            if what == 0:
                values[k] = rng.choice([np.nan, np.inf, -np.inf])
            elif what == 1:
                times[k] = rng.choice([-1, T, T + 3])
            elif what == 2:
                indices[k] = rng.choice([-2, n_in])
            else:
                times[k] = max(0, times[k] - 2)
    got = K.check_events(times, indices, values, ptr, T, n_in)
    assert tuple(got) == naive.check_events(times, indices, values, ptr, T, n_in)
