"""Every Numba kernel of ``eventsim/kernels.py`` against a reference written from its definition.

Each test describes a kernel's input the natural way (a dense weight matrix, a
``scipy.sparse.csr_matrix``, a PyTorch-layout convolution weight, events as NumPy arrays, a
population's :class:`snncore.neuron.NeuronParams`), packs it into the kernel's records and
flat arrays (``eventsim.tables``) at non-zero offsets inside larger arrays holding random
values that must survive (so offset bugs show), runs the kernel, and compares with a
reference computed from what the kernel is documented to compute, not from its loops:

- scatter kernels: each event ``(i, v)``, in event order, adds ``v`` times the stage's
  impulse response of source entry ``i`` (a dense weight row, a CSR row, ``naive._conv`` or
  a pooling of a one-hot map, identity); every output entry receives one product per event,
  so this is bit-identical to the kernel.  Touched blocks are compared as sets;
- the delay ring: a future-input buffer ``future[t + d][j] += v * w``, run over a sample;
- neuron kernels: :func:`snncore.neuron.canonical_step`, the canonical update in NumPy,
  iterated for missed and predicted steps;
- event lists: ``searchsorted``, sets, a stable grouping, the first violated rule.

Float results are compared bit for bit, float32 and float64, with general (non-dyadic)
values.  ``tests/reference/naive_eventsim.py`` holds the dense references (``_conv``,
``_pool``, ``window_tables``, ``simulate``).  The event loop itself (``run_batch`` and its
private helpers) is tested end to end in ``test_equivalence.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sps
from numba.core.registry import CPUDispatcher

from eventsim import kernels as K
from eventsim import tables as TB
from eventsim.network import merge_delayed, pack_int32, window_tables
from snncore.neuron import NeuronParams, canonical_step
from tests.reference import naive_eventsim as naive

DTYPES = [np.float32, np.float64]


# ---------------------------------------------------------------------------------------
# the kernels' flags, and that each one is exercised here
# ---------------------------------------------------------------------------------------
# inlined helpers, exercised through the kernels that call them
INLINED = {"_add_row": "scatter_dense", "_event_window": "scatter_conv"}


@pytest.mark.skipif(bool(int(os.environ.get("NUMBA_DISABLE_JIT", "0") or 0)),
                    reason="kernels are plain Python functions with NUMBA_DISABLE_JIT=1")
def test_every_kernel_is_tested():
    """Every ``@njit`` function of eventsim/kernels.py is called by a test of this file
    (as ``K.<name>``, or through the kernel that inlines it), is ``cache=True``, and has
    neither ``fastmath`` nor ``parallel``."""
    kernels = {name for name, obj in vars(K).items() if isinstance(obj, CPUDispatcher)}
    assert kernels, "no kernels found"
    source = Path(__file__).read_text(encoding="utf-8")
    untested = sorted(k for k in kernels if f"K.{INLINED.get(k, k)}(" not in source)
    assert not untested, f"kernels no test calls: {untested}"
    for name in kernels:
        d = getattr(K, name)
        assert d.targetoptions.get("fastmath", False) is False, name
        assert type(d._cache).__name__ != "NullCache", f"{name} is not cache=True"
        assert not d.targetoptions.get("parallel", False), name


# ---------------------------------------------------------------------------------------
# helpers: comparison, records, events, a destination space
# ---------------------------------------------------------------------------------------
def _assert_bits(got, want, msg=""):
    """Same dtype, shape and bits (so -0.0 differs from 0.0 and NaN equals itself)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (msg, got.dtype, want.dtype)
    if got.dtype.kind == "f":
        u = f"u{got.dtype.itemsize}"
        bad = got.view(u) != want.view(u)
        assert not bad.any(), f"{msg}: {got[bad]} != {want[bad]} at {np.flatnonzero(bad)}"
    else:
        np.testing.assert_array_equal(got, want, err_msg=msg)


def _record(dtype, **fields):
    """One record of ``dtype`` (a tables record dtype) with the given fields, others 0."""
    rec = np.zeros(1, dtype)
    for name, v in fields.items():
        rec[name] = v
    return rec[0]


def _embed(rng, parts, dtype):
    """Concatenate ``parts`` with 1-3 random filler entries before each; returns the array
    and the offset of every part."""
    out, offs, n = [], [], 0
    for p in parts:
        pad = rng.integers(-9, 9, size=int(rng.integers(1, 4))).astype(dtype)
        out += [pad, np.asarray(p, dtype)]
        offs.append(n + len(pad))
        n += len(pad) + len(p)
    out.append(rng.integers(-9, 9, size=2).astype(dtype))
    return np.concatenate(out), offs


def _values(rng, m, dtype):
    """Event values: +-1, 0.5, -0.3 and general (non-dyadic) floats."""
    val = rng.choice([1.0, -1.0, 0.5, -0.3], size=m).astype(dtype)
    other = rng.random(m) < 0.3
    val[other] = rng.standard_normal(int(other.sum()))
    return val


def _events(rng, n_src, m, dtype, binary=False):
    """``m`` events of a source of ``n_src`` entries at ``k0:k1`` of longer arrays (the
    events around them must not be read); returns ``(ev_idx, ev_val, k0, k1)``."""
    pre, post = (int(x) for x in rng.integers(0, 3, size=2))
    idx = rng.integers(0, n_src, size=pre + m + post).astype(np.int64)
    val = np.ones(pre + m + post, dtype) if binary else _values(rng, pre + m + post, dtype)
    return idx, val, pre, pre + m


class Space:
    """Space ``s = 1`` (``n`` entries in blocks of ``bs``) of a three-row SPACE table, at
    random non-zero offsets of Accum arrays whose other entries (other spaces) must survive.
    ``pre`` blocks are already touched and hold random currents, the rest of it is zero;
    ``allt``: the space is wholly touched."""

    s = 1

    def __init__(self, rng, n, bs, dtype, pre=True, allt=False, post=TB.POST_NONE, scale=1):
        self.n, self.bs, self.nb, self.dtype = n, bs, n // bs, np.dtype(dtype)
        self.off, self.boff = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        self.table = np.zeros(3, TB.space_dtype(self.dtype))
        self.table[:] = (3, 0, 1, 0, TB.POST_NONE, 1)
        self.table[self.s] = (n, self.off, bs, self.boff, post, scale)
        acc = rng.standard_normal(self.off + n + 4).astype(dtype)
        acc[self.off:self.off + n] = 0
        mark = rng.integers(0, 2, size=self.boff + self.nb + 3).astype(np.uint8)
        mark[self.boff:self.boff + self.nb] = 0
        tlist = rng.integers(0, 99, size=self.boff + self.nb + 3).astype(np.int64)
        self.A = TB.Accum(acc, mark, tlist, np.array([5, 0, 2], np.int64),
                          np.array([True, allt, False]))
        if pre:
            for blk in rng.permutation(self.nb)[:int(rng.integers(0, self.nb + 1))]:
                mark[self.boff + blk] = 1
                tlist[self.boff + self.A.tcount[self.s]] = blk
                self.A.tcount[self.s] += 1
                acc[self.off + blk * bs:self.off + (blk + 1) * bs] = rng.standard_normal(bs)
        self.before = [a.copy() for a in self.A]
        self.pre_listed = self.listed()

    @property
    def record(self):
        return self.table[self.s]

    def values(self):
        return self.A.acc[self.off:self.off + self.n].copy()

    def listed(self):
        return self.A.tlist[self.boff:self.boff + self.A.tcount[self.s]].copy()

    def check(self, values, blocks=None, allt=None):
        """The space holds ``values``; its touched list is the blocks listed before followed
        by the others of ``blocks`` (a set; None: the list is unchanged), each listed once,
        exactly the listed blocks marked; ``allt`` (None: unchanged); nothing else changed."""
        acc, mark, tlist, tcount, allt_arr = self.A
        _assert_bits(self.values(), values, "space values")
        o, b, nb = self.off, self.boff, self.nb
        _assert_bits(np.delete(acc, np.s_[o:o + self.n]),
                     np.delete(self.before[0], np.s_[o:o + self.n]), "other spaces' currents")
        for name, a, a0 in (("mark", mark, self.before[1]), ("tlist", tlist, self.before[2])):
            _assert_bits(np.delete(a, np.s_[b:b + nb]), np.delete(a0, np.s_[b:b + nb]), name)
        _assert_bits(np.delete(tcount, self.s), np.delete(self.before[3], self.s), "tcount")
        _assert_bits(np.delete(allt_arr, self.s), np.delete(self.before[4], self.s), "allt")
        listed = self.listed()
        assert len(set(listed.tolist())) == len(listed), f"listed twice: {listed}"
        _assert_bits(listed[:len(self.pre_listed)], self.pre_listed, "blocks listed before")
        want = set(self.pre_listed.tolist()) | (set() if blocks is None else set(blocks))
        assert set(listed.tolist()) == want
        _assert_bits(mark[b:b + nb], np.isin(np.arange(nb), listed).astype(np.uint8), "mark")
        assert allt_arr[self.s] == (self.before[4][self.s] if allt is None else allt)


# ---------------------------------------------------------------------------------------
# scatter kernels: the impulse responses of the dense definitions
# ---------------------------------------------------------------------------------------
def _scatter_reference(values, response, support, ev_idx, ev_val, k0, k1):
    """Each event ``(i, v)`` of ``k0:k1``, in event order, adds ``v * response[i]`` on the
    structural non-zeros ``support[i]`` of source ``i``'s impulse response.  Returns the
    values, the number of synaptic events and the output entries reached."""
    out = values.copy()
    reached = set()
    n = 0
    for i, v in zip(ev_idx[k0:k1], ev_val[k0:k1]):
        j = support[i]
        out[j] += v * response[i][j]
        reached.update(j.tolist())
        n += len(j)
    return out, n, reached


def _one_hot_maps(Hi, Wi, C, dtype):
    """``[Hi*Wi*C, C, Hi, Wi]``: map ``i`` is 1 at channel-last entry ``i`` (y, x, c)."""
    n = Hi * Wi * C
    return np.eye(n, dtype=dtype).reshape(n, Hi, Wi, C).transpose(0, 3, 1, 2)


def _channel_last(y):
    """``[B, C, H, W] -> [B, H*W*C]`` (the simulator's layout of a feature map)."""
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1)).reshape(len(y), -1)


def _sum_pool(x, kh, kw, sh, sw):
    """Window sums (no padding, floor mode) of ``x [B, C, H, W]``."""
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return win[:, :, ::sh, ::sw].sum(axis=(4, 5))


def _supports(response):
    return [np.flatnonzero(r) for r in response]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_dense(seed, dtype):
    """Impulse response of source ``i``: column ``i`` of the weight ``W [n_dst, n_src]``."""
    rng = np.random.default_rng(seed)
    n_src, n_dst = (int(x) for x in rng.integers(1, 30, size=2))
    W = rng.standard_normal((n_dst, n_src)).astype(dtype)
    wt, (w_off,) = _embed(rng, [W.T.ravel()], dtype)
    ev_idx, ev_val, k0, k1 = _events(rng, n_src, int(rng.integers(0, 40)), dtype)
    acc, (a_off,) = _embed(rng, [rng.standard_normal(n_dst)], dtype)
    before = acc.copy()
    n = K.scatter_dense(wt, w_off, n_dst, ev_idx, ev_val, k0, k1, acc, a_off)
    want, n_want, _ = _scatter_reference(before[a_off:a_off + n_dst], W.T,
                                         [np.arange(n_dst)] * n_src, ev_idx, ev_val, k0, k1)
    assert n == n_want == (k1 - k0) * n_dst
    _assert_bits(acc[a_off:a_off + n_dst], want)
    _assert_bits(np.delete(acc, np.s_[a_off:a_off + n_dst]),
                 np.delete(before, np.s_[a_off:a_off + n_dst]))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_window(seed, dtype):
    """A window of steps delivered at once == each step's dense delivery (its events in
    order, each adding ``v * W[:, i]``) into that step's row, bit for bit."""
    rng = np.random.default_rng(seed)
    n_src, n_dst, n_t = (int(v) for v in rng.integers(1, 25, size=3))
    t0 = int(rng.integers(0, 4))
    W = rng.standard_normal((n_dst, n_src)).astype(dtype)
    wt, (w_off,) = _embed(rng, [W.T.ravel()], dtype)
    m = int(rng.integers(0, 80))
    ev_t = rng.integers(t0, t0 + n_t, size=m)
    ev_i = rng.integers(0, n_src, size=m)
    order = np.lexsort((ev_i, ev_t))              # by step, then source (repeats kept)
    pad = int(rng.integers(0, 3))
    ev_t = np.concatenate([np.full(pad, t0), ev_t[order], [t0]]).astype(np.int64)
    ev_i = np.concatenate([np.zeros(pad, np.int64), ev_i[order], [0]]).astype(np.int64)
    ev_v = _values(rng, pad + m + 1, dtype)
    acc = rng.standard_normal((n_t, n_dst)).astype(dtype)
    want = acc.copy()
    n = K.dense_window(wt, w_off, n_src, n_dst, (ev_t, ev_i, ev_v), pad, pad + m, t0,
                       acc.reshape(-1))
    for t in range(t0, t0 + n_t):
        for k in pad + np.flatnonzero(ev_t[pad:pad + m] == t):
            want[t - t0] += ev_v[k] * W[:, ev_i[k]]
    assert n == m * n_dst
    _assert_bits(acc, want)


def _random_csr(rng, n_rows, n_cols, dtype, max_row=6):
    """A CSR matrix with up to ``max_row`` distinct columns per row (in random order, some
    explicit zeros)."""
    counts = rng.integers(0, min(max_row, n_cols) + 1, size=n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate([rng.permutation(n_cols)[:c] for c in counts] + [[]]).astype(np.int64)
    data = rng.standard_normal(len(indices)).astype(dtype)
    data[rng.random(len(data)) < 0.1] = 0
    return sps.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("whole", [False, True])
def test_scatter_sparse(seed, dtype, whole):
    """Impulse response of source ``i``: row ``i`` of a CSR matrix ``[n_src, n_dst]``, its
    stored entries the structural non-zeros."""
    rng = np.random.default_rng(seed)
    n_src, bs = int(rng.integers(1, 20)), int(rng.integers(1, 4))
    n_dst = bs * int(rng.integers(1, 8))
    M = _random_csr(rng, n_src, n_dst, dtype)
    wi, (poff, ioff) = _embed(rng, [M.indptr, pack_int32(M.indices)], np.int64)
    wf, (woff,) = _embed(rng, [M.data], dtype)
    st = _record(TB.STAGE_DTYPE, kind=TB.K_SPARSE, src=2, dst=Space.s, woff=woff, poff=poff,
                 ioff=ioff)
    ev_idx, ev_val, k0, k1 = _events(rng, n_src, int(rng.integers(0, 30)), dtype)
    sp = Space(rng, n_dst, bs, dtype, allt=whole)
    support = [M.indices[M.indptr[i]:M.indptr[i + 1]] for i in range(n_src)]
    want, n_want, reached = _scatter_reference(sp.values(), M.toarray(), support, ev_idx,
                                               ev_val, k0, k1)
    n = K.scatter_sparse(wf, wi, st, sp.record, sp.A, ev_idx, ev_val, k0, k1)
    assert n == n_want
    sp.check(want, None if whole else {j // bs for j in reached})


GEO = ("Hi", "Wi", "Ci", "Ho", "Wo", "Co", "kh", "kw", "sh", "sw", "ph", "pw")


def _conv_geometry(rng):
    Ci, Co = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    Hi, Wi = int(rng.integers(kh, 9)), int(rng.integers(kw, 9))
    Ho, Wo = (Hi + 2 * ph - kh) // sh + 1, (Wi + 2 * pw - kw) // sw + 1
    return Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw


def _window_stage(rng, kind, geo, dtype, **fields):
    """A STAGE record with geometry ``geo`` (GEO order) and its window tables at a non-zero
    offset of ``wi``; returns ``(record, wi)``."""
    Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw = geo
    wi, (toff,) = _embed(rng, [window_tables(Hi, Wi, Ci, Ho, Wo, kh, kw, sh, sw, ph, pw)],
                         np.int64)
    return _record(TB.STAGE_DTYPE, kind=kind, src=2, dst=Space.s, toff=toff,
                   **dict(zip(GEO, geo)), **fields), wi


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("whole", [False, True])
def test_scatter_conv(seed, dtype, whole):
    """Impulse response of input entry ``i``: the convolution (``naive._conv``, PyTorch
    layout) of the one-hot map of ``i``, channel-last; its structural non-zeros are those of
    the convolution with an all-ones kernel.  Blocks: output positions."""
    rng = np.random.default_rng(seed)
    Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw = geo = _conv_geometry(rng)
    W = rng.standard_normal((Co, Ci, kh, kw)).astype(dtype)
    wf, (woff,) = _embed(rng, [W.transpose(1, 2, 3, 0).ravel()], dtype)   # [Ci, kh, kw, Co]
    st, wi = _window_stage(rng, TB.K_CONV, geo, dtype, woff=woff)
    ev_idx, ev_val, k0, k1 = _events(rng, Hi * Wi * Ci, int(rng.integers(0, 25)), dtype)
    sp = Space(rng, Ho * Wo * Co, Co, dtype, allt=whole)
    onehot = _one_hot_maps(Hi, Wi, Ci, dtype)
    response = _channel_last(naive._conv(onehot, W, None, (sh, sw), (ph, pw)))
    support = _supports(_channel_last(naive._conv(onehot, np.ones_like(W), None, (sh, sw),
                                                  (ph, pw))))
    want, n_want, reached = _scatter_reference(sp.values(), response, support, ev_idx, ev_val,
                                               k0, k1)
    pbuf = rng.integers(-9, 9, size=2 * kh * kw + 3)
    n = K.scatter_conv(wf, wi, st, sp.record, sp.A, ev_idx, ev_val, k0, k1, pbuf)
    assert n == n_want
    sp.check(want, None if whole else {j // Co for j in reached})


@pytest.mark.parametrize("seed", range(6))
def test_scatter_conv_is_a_convolution(seed):
    """Scattering every non-zero entry of a map equals the dense cross-correlation
    (``naive._conv``) of the whole map (dyadic values: every order of the sums is exact)."""
    rng = np.random.default_rng(100 + seed)
    Hi, Wi, Ci, Ho, Wo, Co, kh, kw, sh, sw, ph, pw = geo = _conv_geometry(rng)
    W = (rng.integers(-64, 64, size=(Co, Ci, kh, kw)) / 256).astype(np.float32)
    x = (rng.integers(-2, 3, size=(1, Ci, Hi, Wi)) * (rng.random((1, Ci, Hi, Wi)) < 0.5)
         ).astype(np.float32)
    flat = _channel_last(x)[0]
    idx = np.flatnonzero(flat).astype(np.int64)
    wf, (woff,) = _embed(rng, [W.transpose(1, 2, 3, 0).ravel()], np.float32)
    st, wi = _window_stage(rng, TB.K_CONV, geo, np.float32, woff=woff)
    sp = Space(rng, Ho * Wo * Co, Co, np.float32, pre=False)
    K.scatter_conv(wf, wi, st, sp.record, sp.A, idx, flat[idx], 0, len(idx),
                   np.zeros(2 * kh * kw, np.int64))
    want = _channel_last(naive._conv(x, W, None, (sh, sw), (ph, pw)))[0]
    _assert_bits(sp.values() + 0, want + 0)          # + 0: a zero sum may be -0.0 in _conv


def _pool_geometry(rng):
    C = int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    Hi, Wi = int(rng.integers(kh, 10)), int(rng.integers(kw, 10))
    return Hi, Wi, C, (Hi - kh) // sh + 1, (Wi - kw) // sw + 1, C, kh, kw, sh, sw, 0, 0


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_sumpool(seed, dtype):
    """Impulse response of input entry ``i``: the window sums of its one-hot map (1 in
    every window containing it), channel-last.  Blocks: output positions."""
    rng = np.random.default_rng(seed)
    Hi, Wi, C, Ho, Wo, _, kh, kw, sh, sw, _, _ = geo = _pool_geometry(rng)
    st, wi = _window_stage(rng, TB.K_SUMPOOL, geo, dtype)
    ev_idx, ev_val, k0, k1 = _events(rng, Hi * Wi * C, int(rng.integers(0, 30)), dtype)
    sp = Space(rng, Ho * Wo * C, C, dtype)
    response = _channel_last(_sum_pool(_one_hot_maps(Hi, Wi, C, dtype), kh, kw, sh, sw))
    want, n_want, reached = _scatter_reference(sp.values(), response, _supports(response),
                                               ev_idx, ev_val, k0, k1)
    n = K.scatter_sumpool(wi, st, sp.record, sp.A, ev_idx, ev_val, k0, k1)
    assert n == n_want
    sp.check(want, {j // C for j in reached})


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_maxpool(seed, dtype):
    """Binary spikes: a step's events add 1 at every output of the max pooling
    (``naive._pool``) of the step's spike map, except outputs already stamped with this
    step (a window emits at most once per step, over several calls); the outputs that emit
    are stamped.  Two calls in one step, then one in the next."""
    rng = np.random.default_rng(seed)
    Hi, Wi, C, Ho, Wo, _, kh, kw, sh, sw, _, _ = geo = _pool_geometry(rng)
    n_out = Ho * Wo * C
    last, (moff,) = _embed(rng, [rng.integers(0, 3, size=n_out)], np.int64)
    st, wi = _window_stage(rng, TB.K_MAXPOOL, geo, dtype, moff=moff)
    for calls, stamp in (((0, 0.5, 1), 2), ((0, 1), 3)):
        ev_idx, ev_val, k0, k1 = _events(rng, Hi * Wi * C, int(rng.integers(0, 30)), dtype,
                                         binary=True)
        cuts = [k0 + int(c * (k1 - k0)) for c in calls]
        sp = Space(rng, n_out, C, dtype)
        last0 = last.copy()
        n = sum(K.scatter_maxpool(wi, st, sp.record, sp.A, ev_idx, ev_val, a, b, last, stamp)
                for a, b in zip(cuts[:-1], cuts[1:]))
        spikes = np.zeros((1, Hi * Wi * C), dtype)
        spikes[0, ev_idx[k0:k1]] = 1
        pooled = _channel_last(naive._pool(spikes.reshape(1, Hi, Wi, C).transpose(0, 3, 1, 2),
                                           (kh, kw), (sh, sw), "max"))[0]
        emit = (pooled != 0) & (last0[moff:moff + n_out] != stamp)
        assert n == emit.sum()
        sp.check(sp.before[0][sp.off:sp.off + n_out] + emit.astype(dtype),
                 set((np.flatnonzero(emit) // C).tolist()))
        want_last = last0.copy()
        want_last[moff:moff + n_out][emit] = stamp
        _assert_bits(last, want_last, "stamps")


@pytest.mark.parametrize("seed", range(8))
def test_pools_are_pools(seed):
    """Sum pooling times 1/(kh*kw) and max pooling of all of a binary map's spikes equal
    ``naive._pool`` (average and max) in one go."""
    rng = np.random.default_rng(200 + seed)
    Hi, Wi, C, Ho, Wo, _, kh, kw, sh, sw, _, _ = geo = _pool_geometry(rng)
    x = (rng.random((1, C, Hi, Wi)) < 0.3).astype(np.float32)
    idx = np.flatnonzero(_channel_last(x)[0]).astype(np.int64)
    ones = np.ones(len(idx), np.float32)
    for how in ("avg", "max"):
        kind = TB.K_SUMPOOL if how == "avg" else TB.K_MAXPOOL
        st, wi = _window_stage(rng, kind, geo, np.float32, moff=0)
        sp = Space(rng, Ho * Wo * C, C, np.float32, pre=False)
        if how == "avg":
            K.scatter_sumpool(wi, st, sp.record, sp.A, idx, ones, 0, len(idx))
            got = sp.values() * np.float32(1.0 / (kh * kw))
        else:
            K.scatter_maxpool(wi, st, sp.record, sp.A, idx, ones, 0, len(idx),
                              np.zeros(Ho * Wo * C, np.int64), 1)
            got = sp.values()
        _assert_bits(got, _channel_last(naive._pool(x, (kh, kw), (sh, sw), how))[0], how)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_identity(seed, dtype):
    """Impulse response of entry ``i``: the unit vector ``e_i``."""
    rng = np.random.default_rng(seed)
    bs = int(rng.integers(1, 4))
    n = bs * int(rng.integers(1, 6))
    ev_idx, ev_val, k0, k1 = _events(rng, n, int(rng.integers(0, 20)), dtype)
    sp = Space(rng, n, bs, dtype)
    want, n_want, reached = _scatter_reference(sp.values(), np.eye(n, dtype=dtype),
                                               [np.array([i]) for i in range(n)], ev_idx,
                                               ev_val, k0, k1)
    assert K.scatter_identity(sp.s, sp.record, sp.A, ev_idx, ev_val, k0, k1) == n_want
    sp.check(want, {j // bs for j in reached})


@pytest.mark.parametrize("seed", range(4))
def test_touch(seed):
    """Touching blocks in any order lists each once, in first-touch order, and marks it."""
    rng = np.random.default_rng(seed)
    bs = int(rng.integers(1, 4))
    sp = Space(rng, bs * int(rng.integers(1, 8)), bs, np.float32)
    blocks = rng.integers(0, sp.nb, size=int(rng.integers(0, 12)))
    acc, mark, tlist, tcount, _ = sp.A
    for blk in blocks:
        K.touch(blk, mark, sp.boff, tlist, tcount, sp.s)
    sp.check(sp.values(), set(blocks.tolist()))
    new = [b for b in dict.fromkeys(blocks.tolist()) if b not in set(sp.pre_listed.tolist())]
    assert sp.listed()[len(sp.pre_listed):].tolist() == new


@pytest.mark.parametrize("seed", range(8))
def test_window_tables(seed):
    """The geometry tables equal the brute-force window search (conv and pool geometries)."""
    rng = np.random.default_rng(300 + seed)
    for geo in (_conv_geometry(rng), _pool_geometry(rng)):
        Hi, Wi, Ci, Ho, Wo, _, kh, kw, sh, sw, ph, pw = geo
        g = (Hi, Wi, Ci, Ho, Wo, kh, kw, sh, sw, ph, pw)
        got, want = window_tables(*g), naive.window_tables(*g)
        head = Hi * Wi * Ci + 2 * Hi * Wi
        _assert_bits(got[:head], want[:head])
        r, rw = got[head:], want[head:]
        for lo, n_in in ((0, Hi), (2 * Hi, Wi)):     # ranges: same outputs (empty alike)
            for k in range(n_in):
                assert (list(range(r[lo + k], r[lo + n_in + k] + 1))
                        == list(range(rw[lo + k], rw[lo + n_in + k] + 1)))


# ---------------------------------------------------------------------------------------
# drain
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", DTYPES)
def test_drain(seed, dtype):
    """Events: the non-zero entries of the touched blocks, in touch order and ascending
    within a block (ascending over the whole space when it is wholly touched), times
    ``scale`` for POST_SCALE; afterwards the space is zero and untouched."""
    rng = np.random.default_rng(seed)
    bs = int(rng.integers(1, 4))
    n = bs * int(rng.integers(1, 8))
    post = TB.POST_SCALE if seed % 2 else TB.POST_NONE
    scale = np.dtype(dtype).type(1 / 3)
    whole = seed % 3 == 0
    sp = Space(rng, n, bs, dtype, allt=whole, post=post, scale=scale)
    acc = sp.A.acc
    if whole:       # any entry may hold a current
        acc[sp.off:sp.off + n] = rng.standard_normal(n)
    acc[sp.off:sp.off + n][rng.random(n) < 0.3] = 0
    values = sp.values()
    sp.before[0] = acc.copy()
    order = (np.arange(n) if whole else
             np.concatenate([np.arange(b * bs, (b + 1) * bs) for b in sp.listed()] + [[]]))
    want_idx = np.array([i for i in order.astype(np.int64) if values[i] != 0], np.int64)
    want_val = values[want_idx] * scale if post == TB.POST_SCALE else values[want_idx]
    out_idx = np.full(n + 2, -5, np.int64)
    out_val = np.full(n + 2, -5, dtype)
    cnt = K.drain(sp.table, sp.s, sp.A, out_idx, out_val)
    assert cnt == len(want_idx)
    _assert_bits(out_idx[:cnt], want_idx, "indices")
    _assert_bits(out_val[:cnt], want_val, "values")
    sp.pre_listed = sp.pre_listed[:0]
    sp.check(np.zeros(n, dtype), set(), allt=False)


# ---------------------------------------------------------------------------------------
# the delay ring: a sample of pushes and arrivals against a future-input buffer
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dense_div", [0, 3, "edge", 1 << 40])
def test_delay_ring(seed, dtype, dense_div):
    """Sparse connections (CSR, delays 1..4, some equal) merged into a bundle; at each step
    ``t`` the spikes of ``t - 1`` are pushed and slot ``t`` advanced, as the event loop does.
    Reference: ``future[t + d][j] += v * w`` (push steps ascending, connections by ascending
    delay, events, synapses), arrivals at or after ``T`` dropped; at step ``t``,
    ``future[t]`` is added to the target's currents.  A slot whose synapse list reaches
    ``min(n_t, n_t / dense_div)`` entries is added whole (space wholly touched), else the
    blocks of its targets are touched (``"edge"``: ``dense_div`` at or just below that
    threshold, chosen at each step).  Synaptic events are counted per stage; the ring is
    empty at the end."""
    rng = np.random.default_rng(seed)
    n_src, bs = int(rng.integers(1, 10)), int(rng.integers(1, 4))
    n_t = bs * int(rng.integers(1, 12))
    delays = [int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 5)))]
    if seed % 2 == 0:
        delays.insert(int(rng.integers(len(delays))), delays[0])     # two equal delays
    mats = [_random_csr(rng, n_src, n_t, dtype, max_row=int(rng.integers(1, 7))) for _ in delays]
    stages = [2 + k for k in range(len(delays))]
    ptr, idx, w, seg = merge_delayed([dict(delay=d, g=g, iptr=M.indptr, idx=M.indices, w=M.data)
                                      for d, g, M in zip(delays, stages, mats)], n_src)
    wi, (p_off, i_off, s_off) = _embed(rng, [ptr, pack_int32(idx), seg], np.int64)
    wf, (w_off,) = _embed(rng, [w], dtype)
    R = max(delays) + int(rng.integers(0, 2))
    T = int(rng.integers(3, 14))
    val, (roff,) = _embed(rng, [np.zeros(R * n_t)], dtype)
    lst = rng.integers(-9, 9, size=R * (n_t + 1) + 5).astype(np.int32)
    cnt, (rcoff,) = _embed(rng, [np.zeros(R)], np.int64)
    ring = TB.DelayRing(val, lst, cnt)
    lists = np.s_[2:2 + R * (n_t + 1)]
    outside = [np.delete(a, s).copy() for a, s in
               ((val, np.s_[roff:roff + R * n_t]), (cnt, np.s_[rcoff:rcoff + R]), (lst, lists))]
    bun = _record(TB.BUNDLE_DTYPE, src=0, tgt=1, space=Space.s, n_t=n_t, nseg=len(delays),
                  ptr=p_off, idx=i_off, w=w_off, seg=s_off, R=R, roff=roff, loff=2, rcoff=rcoff)
    syn = rng.integers(0, 5, size=len(delays) + 3)
    D = TB.Delivery(*([np.zeros(1, np.int64)] * 17))._replace(wi=wi, wf=wf, syn=syn)
    want_syn = syn.copy()
    future = np.zeros((T, n_t), dtype)
    arriving = np.zeros(T, np.int64)                # synapses arriving at each step
    targets = [set() for _ in range(T)]
    spikes = [_events(rng, n_src, int(rng.integers(0, 2 * n_src + 1) if rng.random() < 0.3
                                      else rng.integers(0, 3)), dtype) for _ in range(T)]
    by_delay = sorted(zip(delays, stages, mats), key=lambda c: c[0])   # stable
    for t in range(T + 1):
        if t > 0:                                   # spikes of t - 1
            ev_idx, ev_val, k0, k1 = spikes[t - 1]
            K.delay_push(ring, bun, D, (ev_idx, ev_val, k0, k1), t - 1, T,
                         K.slot_cap(n_t, 0 if dense_div == "edge" else dense_div),
                         (0, 1 << 62))
            for d, g, M in by_delay:
                if t - 1 + d >= T:
                    continue
                for i, v in zip(ev_idx[k0:k1], ev_val[k0:k1]):
                    row = slice(M.indptr[i], M.indptr[i + 1])
                    future[t - 1 + d][M.indices[row]] += v * M.data[row]
                    arriving[t - 1 + d] += row.stop - row.start
                    targets[t - 1 + d].update(M.indices[row].tolist())
                    want_syn[g] += row.stop - row.start
            _assert_bits(syn, want_syn, "synaptic events")
        if t == T:
            break
        sp = Space(rng, n_t, bs, dtype, allt=rng.random() < 0.2)
        c = min(arriving[t], n_t)
        div = dense_div
        if div == "edge":
            div = max(0, -(-n_t // max(c, 1)) - int(rng.integers(0, 2)))
        K.delay_advance(ring, bun, t % R, div, sp.A, sp.table)
        whole = c > 0 and (c >= n_t or (div > 0 and c * div >= n_t))
        blocks = None if whole or c == 0 or sp.before[4][sp.s] else {j // bs for j in targets[t]}
        sp.check(sp.before[0][sp.off:sp.off + n_t] + future[t], blocks,
                 allt=sp.before[4][sp.s] or whole)
    assert not val[roff:roff + R * n_t].any() and not cnt[rcoff:rcoff + R].any(), "ring not empty"
    _assert_bits(np.delete(val, np.s_[roff:roff + R * n_t]), outside[0])
    _assert_bits(np.delete(cnt, np.s_[rcoff:rcoff + R]), outside[1])
    _assert_bits(np.delete(lst, lists), outside[2])


@pytest.mark.parametrize("seed", range(6))
def test_merge_delayed(seed):
    """Segment m of row i is row i of the m-th connection in delay order."""
    rng = np.random.default_rng(seed)
    n_src, n_t = int(rng.integers(1, 12)), int(rng.integers(1, 15))
    delays = [int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 5)))]
    mats = [_random_csr(rng, n_src, n_t, np.float32) for _ in delays]
    conns = [dict(delay=d, g=k + 1, iptr=M.indptr, idx=M.indices, w=M.data)
             for k, (d, M) in enumerate(zip(delays, mats))]
    ptr, idx, w, seg = merge_delayed(conns, n_src)
    order = sorted(range(len(conns)), key=lambda k: conns[k]["delay"])
    nseg = len(conns)
    assert list(seg) == [x for k in order for x in (conns[k]["delay"], conns[k]["g"])]
    assert ptr[0] == 0 and ptr[-1] == len(idx) == len(w)
    for i in range(n_src):
        for m, k in enumerate(order):
            row = slice(mats[k].indptr[i], mats[k].indptr[i + 1])
            a, b = ptr[i * nseg + m], ptr[i * nseg + m + 1]
            _assert_bits(idx[a:b], mats[k].indices[row].astype(np.int64))
            _assert_bits(w[a:b], mats[k].data[row])


# ---------------------------------------------------------------------------------------
# neuron kernels: the canonical update (snncore.neuron.canonical_step)
# ---------------------------------------------------------------------------------------
def _random_params(rng, beta=None):
    """Random NeuronParams (float values exact in float32)."""
    f32 = lambda x: float(np.float32(x))  # noqa: E731
    return NeuronParams(
        beta=f32(rng.choice([1.0, 0.5, 0.75, 0.9, 0.0, rng.random()]) if beta is None else beta),
        theta=f32(rng.choice([1.0, 0.5, rng.random() + 0.1])),
        reset=str(rng.choice(["hard", "subtract"])), v_reset=f32(rng.choice([0.0, -0.3, 0.2])),
        v_min=[None, 0.0, -0.5, 0.2][int(rng.integers(4))],
        spikes=str(rng.choice(["binary", "ternary"])))


def _kernel_args(p, dtype):
    """A NeuronParams as the kernels' scalars: beta, theta, reset, v_reset, has_vmin, v_min,
    ternary."""
    d = np.dtype(dtype).type
    return (d(p.beta), d(p.theta), K.HARD_RESET if p.reset == "hard" else K.SUBTRACT_RESET,
            d(p.v_reset), p.v_min is not None, d(p.v_min or 0), p.spikes == "ternary")


def _pop_record(p, n, noff, dtype, per_neuron=False, recorded=True):
    """The POP record of ``n`` neurons with parameters ``p`` (state at ``noff``)."""
    beta, theta, reset, v_reset, has_vmin, v_min, ternary = _kernel_args(p, dtype)
    if per_neuron:
        beta = theta = np.nan
    return _record(TB.pop_dtype(np.dtype(dtype)), kind=TB.POP_SPIKING, space=1, n=n, noff=noff,
                   reset=reset, ternary=int(ternary), has_vmin=int(has_vmin), pn=int(per_neuron),
                   recn=int(recorded), beta=beta, theta=theta, v_reset=v_reset, v_min=v_min)


def _step(v, current, p):
    """``canonical_step`` over arrays (``p``: one NeuronParams, or one per entry)."""
    if isinstance(p, NeuronParams):
        return canonical_step(v, current, p)
    out = [canonical_step(v[k:k + 1], current[k:k + 1], p[k]) for k in range(len(v))]
    return tuple(np.concatenate([o[j] for o in out]) for j in range(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_neuron_step(dtype):
    """The scalar update inlined by the kernels == canonical_step, bit for bit."""
    rng = np.random.default_rng(0)
    for _ in range(60):
        p = _random_params(rng)
        v = rng.standard_normal(50).astype(dtype)
        I = (rng.standard_normal(50) * 1.5).astype(dtype)
        u, s, vn = canonical_step(v, I, p)
        args = _kernel_args(p, dtype)
        got = [K.neuron_step(v[k], I[k], *args) for k in range(50)]
        _assert_bits(np.array([g[0] for g in got], dtype), u, "u")
        _assert_bits(np.array([g[1] for g in got], dtype), s, "s")
        _assert_bits(np.array([g[2] for g in got], dtype), vn, "v")


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", DTYPES)
def test_update_all(seed, dtype):
    """One canonical step of a population (shared or per-neuron beta/theta) with input
    ``I + c`` (accumulated currents, cleared; constant input): ``v`` written, ``u`` only
    when neurons are recorded, spikes to ``flags[:n]``; then :func:`collect_spikes` lists
    the spiking neurons in ascending order."""
    rng = np.random.default_rng(seed)
    p = _random_params(rng)
    n = int(rng.integers(1, 60))
    per_neuron, recorded = seed % 2 == 1, seed % 3 != 0
    src, (a_off,) = _embed(rng, [rng.standard_normal(n)], dtype)
    V, (noff,) = _embed(rng, [rng.standard_normal(n)], dtype)
    U = rng.standard_normal(len(V)).astype(dtype)
    cst = rng.standard_normal(len(V)).astype(dtype)
    cst[rng.random(len(V)) < 0.5] = 0               # some neurons without constant input
    flags = rng.integers(-1, 2, size=(n + 7) // 8 * 8 + 8).astype(np.int8)  # stale flags
    nbeta, ntheta = np.full(len(V), p.beta, dtype), np.full(len(V), p.theta, dtype)
    params = p
    if per_neuron:
        nbeta[:] = rng.choice([1.0, 0.5, 0.75, 0.0, rng.random()], len(V))
        ntheta[:] = rng.random(len(V)) + 0.1
        params = [NeuronParams(float(b), float(th), p.reset, p.v_reset, p.v_min, p.spikes)
                  for b, th in zip(nbeta[noff:noff + n], ntheta[noff:noff + n])]
    pop = _pop_record(p, n, noff, dtype, per_neuron, recorded)
    cur = slice(noff, noff + n)
    u, s, v = _step(V[cur], src[a_off:a_off + n] + cst[cur], params)
    want_src, want_V, want_U, want_flags = src.copy(), V.copy(), U.copy(), flags.copy()
    before = (src.copy(), V.copy(), U.copy(), flags.copy())
    want_src[a_off:a_off + n] = 0
    want_V[cur] = v
    if recorded:
        want_U[cur] = u
    want_flags[:n] = s
    if per_neuron:
        K.update_all_per_neuron(pop, src, a_off, V, U, cst, flags, nbeta, ntheta)
    else:
        K.update_all(pop, src, a_off, V, U, cst, flags)
    if not per_neuron:   # no constant input (cst None): as with zero constants
        src0, V0, U0, flags0 = before
        _, s0, v0 = _step(V0[cur], src0[a_off:a_off + n] + np.zeros(n, dtype), params)
        K.update_all(pop, src0, a_off, V0, U0, None, flags0)
        _assert_bits(V0[cur], v0, "V, cst None")
        _assert_bits(flags0[:n], s0.astype(np.int8), "flags, cst None")
        assert not src0[a_off:a_off + n].any()
    for name, got, want in (("src", src, want_src), ("V", V, want_V), ("U", U, want_U),
                            ("flags", flags, want_flags)):
        _assert_bits(got, want, name)
    ring_idx, ring_val = np.full(n + 5, -3, np.int64), np.full(n + 5, 7, dtype)
    c = K.collect_spikes(flags, n, ring_idx, ring_val, 3)
    fired = np.flatnonzero(s)
    assert c == len(fired)
    _assert_bits(ring_idx[3:3 + c], fired.astype(np.int64))
    _assert_bits(ring_val[3:3 + c], s[fired])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", DTYPES)
def test_update_all_cuba(seed, dtype):
    """One step of a current-based population: the synaptic current ``i = alpha * i +
    (I + c)`` (NumPy's elementwise operations in the dtype: the reference rounding), then
    the canonical step with ``i``; input cleared, ``i`` stored, ``u`` only when recorded."""
    rng = np.random.default_rng(100 + seed)
    p = _random_params(rng)
    n = int(rng.integers(1, 60))
    recorded = seed % 3 != 0
    src, (a_off,) = _embed(rng, [rng.standard_normal(n)], dtype)
    V, (noff,) = _embed(rng, [rng.standard_normal(n)], dtype)
    U = rng.standard_normal(len(V)).astype(dtype)
    Isyn = rng.standard_normal(len(V)).astype(dtype)
    cst = rng.standard_normal(len(V)).astype(dtype)
    cst[rng.random(len(V)) < 0.5] = 0
    flags = rng.integers(-1, 2, size=(n + 7) // 8 * 8 + 8).astype(np.int8)
    nalpha = rng.choice([0.0, 0.5, 1.0, rng.random()], len(V)).astype(dtype)
    nbeta = rng.choice([1.0, 0.5, 0.0, rng.random()], len(V)).astype(dtype)
    ntheta = (rng.random(len(V)) + 0.1).astype(dtype)
    cur = slice(noff, noff + n)
    i_new = nalpha[cur] * Isyn[cur] + (src[a_off:a_off + n] + cst[cur])
    params = [NeuronParams(float(b), float(th), p.reset, p.v_reset, p.v_min, p.spikes)
              for b, th in zip(nbeta[cur], ntheta[cur])]
    u, s, v = _step(V[cur], i_new, params)
    want = {"src": src.copy(), "V": V.copy(), "U": U.copy(), "I": Isyn.copy(),
            "flags": flags.copy()}
    want["src"][a_off:a_off + n] = 0
    want["V"][cur], want["I"][cur], want["flags"][:n] = v, i_new, s
    if recorded:
        want["U"][cur] = u
    pop = _pop_record(p, n, noff, dtype, True, recorded)
    K.update_all_cuba(pop, src, a_off, V, U, Isyn, cst, flags, (nalpha, nbeta, ntheta))
    for name, got in (("src", src), ("V", V), ("U", U), ("I", Isyn), ("flags", flags)):
        _assert_bits(got, want[name], name)


@pytest.mark.parametrize("seed", range(6))
def test_collect_spikes(seed):
    """Dense and sparse flag patterns (whole words of spikes, none): the non-zero flags of
    ``flags[:n]`` in ascending order, at ``rbase`` of the spike list."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 200))
    flags = rng.integers(-1, 2, size=(n + 7) // 8 * 8 + 8).astype(np.int8)
    flags[:n][rng.random(n) < [0.0, 0.05, 0.5, 0.9, 1.0, 0.3][seed]] = 0
    rbase = int(rng.integers(0, 4))
    ring_idx, ring_val = np.full(rbase + n + 1, -3, np.int64), np.full(rbase + n + 1, 7.0)
    before = ring_idx.copy(), ring_val.copy()
    c = K.collect_spikes(flags, n, ring_idx, ring_val, rbase)
    fired = np.flatnonzero(flags[:n])
    assert c == len(fired)
    _assert_bits(ring_idx[rbase:rbase + c], fired.astype(np.int64))
    _assert_bits(ring_val[rbase:rbase + c], flags[fired].astype(np.float64))
    _assert_bits(ring_idx[:rbase], before[0][:rbase])
    _assert_bits(ring_idx[rbase + c:], before[0][rbase + c:])


def _free(p):
    """``p`` without a threshold: the canonical update of a neuron that cannot fire."""
    return NeuronParams(p.beta, np.inf, "hard", p.v_reset, p.v_min, "binary")


@pytest.mark.parametrize("dtype", DTYPES)
def test_free_steps_and_predict_steps(dtype):
    """``free_steps``: ``n`` canonical steps with input ``c`` and no threshold.
    ``predict_steps``: the first of ``1..horizon`` canonical steps with input ``c`` that
    fires (-1: none)."""
    rng = np.random.default_rng(2)
    for _ in range(40):
        p = _random_params(rng)
        m = 50
        v0 = (rng.standard_normal(m) * 0.3).astype(dtype)
        if p.v_min is not None:
            v0 = np.maximum(v0, dtype(p.v_min))     # a state the update can reach
        c = (rng.standard_normal(m) * 0.3 * (rng.random(m) < 0.7)).astype(dtype)
        steps = rng.integers(0, 40, size=m)
        free, v, first = v0.copy(), v0.copy(), np.full(m, -1)
        for k in range(1, steps.max() + 1):
            live = k <= steps
            free = np.where(live, canonical_step(free, c, _free(p))[2], free)
            _, s, v = canonical_step(v, c, p)
            first[live & (first < 0) & (s != 0)] = k
        beta, theta, _, _, has_vmin, v_min, ternary = _kernel_args(p, dtype)
        for j in range(m):
            got = K.free_steps(v0[j], c[j], int(steps[j]), beta, has_vmin, v_min)
            _assert_bits(np.asarray(got, dtype), free[j], f"free_steps {p} {v0[j]} {c[j]}")
            assert K.predict_steps(v0[j], c[j], int(steps[j]), beta, theta, has_vmin, v_min,
                                   ternary) == first[j], (p, v0[j], c[j], steps[j])


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", DTYPES)
def test_catch_up(seed, dtype):
    """Neuron ``i`` behind by ``gap = t - 1 - max(L[i], lf) > 0`` steps: ``gap`` canonical
    steps without threshold and with its (zero) constant input; or, ``LEAK_POWER`` and one
    beta per population, ``v * beta**gap`` (the population's power row) clamped to
    ``v_min``.  Neurons not behind keep their state."""
    rng = np.random.default_rng(40 + seed)
    p = _random_params(rng, beta=1.0 if seed % 3 == 0 else None)
    n, T = int(rng.integers(1, 40)), 30
    per_neuron = seed % 4 == 1
    V, (noff,) = _embed(rng, [rng.standard_normal(n) * 0.5], dtype)
    if p.v_min is not None:
        V = np.maximum(V, dtype(p.v_min))           # states the update can reach
    cst = np.zeros(len(V), dtype)
    cst[rng.random(len(V)) < 0.2] = -0.0
    L = rng.integers(-1, 20, size=len(V)).astype(np.int64)
    lf, t = int(rng.integers(-1, 20)), int(rng.integers(0, 24))
    nbeta = np.full(len(V), p.beta, dtype)
    if per_neuron:
        nbeta[:] = rng.choice([1.0, 0.5, 0.75, 0.0, rng.random()], len(V))
    powrow = np.asarray(np.float64(p.beta) ** np.arange(T + 1), dtype=dtype)
    if per_neuron:
        powrow[:] = np.nan     # not read: per-neuron beta is always stepped
    pop = _pop_record(p, n, noff, dtype, per_neuron)
    cur = slice(noff, noff + n)
    gap = t - 1 - np.maximum(L[cur], lf)
    for leak in (K.LEAK_REPEAT, K.LEAK_POWER):
        want = V.copy()
        if leak == K.LEAK_POWER and not per_neuron:
            behind = gap > 0
            x = V[cur] * powrow[np.maximum(gap, 0)]
            if p.v_min is not None:
                x = np.maximum(x, dtype(p.v_min))
            want[cur] = np.where(behind, x, V[cur])
        else:
            params = [_free(NeuronParams(float(b), p.theta, p.reset, p.v_reset, p.v_min))
                      for b in nbeta[cur]]
            x = V[cur].copy()
            for k in range(1, max(gap.max(initial=0), 0) + 1):
                x = np.where(k <= gap, _step(x, cst[cur], params)[2], x)
            want[cur] = x
        got = V.copy()
        K.catch_up(pop, t, lf, got, L, cst, nbeta, powrow, leak)
        _assert_bits(got, want, f"leak {leak}")


# ---------------------------------------------------------------------------------------
# event lists, wake queue, input check
# ---------------------------------------------------------------------------------------
def test_step_end():
    """The end of step ``t``'s events in ``ev_t[p:pend]``: ``searchsorted(side="right")``."""
    rng = np.random.default_rng(4)
    for _ in range(300):
        ev_t = np.sort(rng.integers(0, 12, size=rng.integers(0, 60))).astype(np.int64)
        p = int(rng.integers(0, len(ev_t) + 1))
        pend = int(rng.integers(p, len(ev_t) + 1))
        t = int(rng.integers(0, 13))
        if p < pend:
            t = min(t, int(ev_t[p]))        # precondition: ev_t[p:pend] >= t
        want = p + int(np.searchsorted(ev_t[p:pend], t, side="right"))
        assert K.step_end(ev_t, p, pend, t) == want, (ev_t, p, pend, t)


def test_wake_queue():
    """Doubly linked buckets: pushes and removals keep each bucket's set of neurons, linked
    both ways, with their wake-up steps (-1 once removed)."""
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
            assert wake_t[gi] == -1
        else:
            h = int(rng.integers(H))
            K.wake_push(head, nxt, prv, wake_t, h, h + 100, gi)
            model[h].add(gi)
            where[gi] = h
        for h in range(H):
            seen, g, back = [], head[h], -1
            while g >= 0:
                assert prv[g] == back
                seen.append(int(g))
                back, g = g, nxt[g]
            assert sorted(seen) == sorted(model[h])
    assert all(wake_t[g] == where[g] + 100 for g in where)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("pop_major", [False, True])
def test_split_spikes(seed, pop_major):
    """Spikes in (b, t, q) (or (b, q, t)) group order, regrouped by population: a stable
    sort by population, neurons mapped through each population's permutation."""
    rng = np.random.default_rng(seed)
    B, T, Q = (int(v) for v in rng.integers(1, 5, size=3))
    sizes = rng.integers(1, 6, size=Q)
    counts = np.stack([rng.integers(0, n + 1, size=(B, T)) for n in sizes], -1).astype(np.int32)
    b, t, q = (g.ravel() for g in np.meshgrid(np.arange(B), np.arange(T), np.arange(Q),
                                               indexing="ij"))
    group = np.lexsort((t, q, b) if pop_major else (q, t, b))     # the spike list's order
    c = counts[b, t, q][group]
    sample, step, pop = (np.repeat(x[group], c) for x in (b, t, q))
    neuron = np.array([rng.integers(0, sizes[x]) for x in pop], np.int32)
    value = rng.choice(np.array([-1, 1], np.int8), size=len(neuron))
    perm_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    perm = np.concatenate([rng.permutation(n) for n in sizes]).astype(np.int32)
    got = K.split_spikes(counts, neuron, value, perm, perm_off, pop_major)
    o = np.argsort(pop, kind="stable")
    want = (sample[o].astype(np.int32), step[o].astype(np.int32),
            perm[perm_off[pop[o]] + neuron[o]], value[o],
            np.concatenate([[0], np.cumsum(np.bincount(pop, minlength=Q))]).astype(np.int64))
    for name, g, w in zip(("sample", "t", "neuron", "value", "ptr"), got, want):
        _assert_bits(g, w, name)


@pytest.mark.parametrize("seed", range(12))
def test_check_events(seed):
    """The first event (in stream order) that breaks a rule, with the first rule it breaks:
    finite value, ``0 <= t < T``, ``0 <= index < n_inputs``, times not decreasing within
    its sample."""
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
            what = rng.permutation(4)[:int(rng.integers(1, 4))]    # one or more rules
            if 0 in what:
                values[k] = rng.choice([np.nan, np.inf, -np.inf])
            if 3 in what:
                times[k] = max(0, times[k] - 2)
            if 1 in what:
                times[k] = rng.choice([-1, T, T + 3])
            if 2 in what:
                indices[k] = rng.choice([-2, n_in])
    sample = np.repeat(np.arange(B), sizes)
    want = (K.EV_OK, -1)
    for k in range(len(times)):
        rules = [(K.EV_VALUE, np.isfinite(values[k])), (K.EV_TIME, 0 <= times[k] < T),
                 (K.EV_INDEX, 0 <= indices[k] < n_in),
                 (K.EV_ORDER, k == 0 or sample[k - 1] != sample[k] or times[k] >= times[k - 1])]
        broken = [code for code, ok in rules if not ok]
        if broken:
            want = (broken[0], k)
            break
    assert tuple(K.check_events(times, indices, values, ptr, T, n_in)) == want


def test_check_events_extremes():
    """The vectorised pass of :func:`check_events` (unsigned range tests, the order by the
    sign of OR-ed differences) with values at the ends of int64 and float: every broken
    rule is still found, at the first event that breaks it, in long streams."""
    n, T, n_in = 5000, 100, 64
    rng = np.random.default_rng(3)
    ptr = np.array([0, 2000, 2000, n], np.int64)          # an empty sample in between
    times = np.concatenate([np.sort(rng.integers(0, T, 2000)),
                            np.sort(rng.integers(0, T, n - 2000))]).astype(np.int64)
    indices = rng.integers(0, n_in, n).astype(np.int64)
    values = rng.standard_normal(n)
    assert tuple(K.check_events(times, indices, values, ptr, T, n_in)) == (K.EV_OK, -1)
    assert K._events_ok(times, indices, values, ptr, T, n_in)
    big = np.iinfo(np.int64)
    for field, bad, code in [("times", big.min, K.EV_TIME), ("times", big.max, K.EV_TIME),
                             ("times", T, K.EV_TIME), ("indices", big.min, K.EV_INDEX),
                             ("indices", n_in, K.EV_INDEX), ("values", np.nan, K.EV_VALUE),
                             ("values", -np.inf, K.EV_VALUE)]:
        for k in (0, 1999, 2000, n - 1):
            arrs = dict(times=times.copy(), indices=indices.copy(), values=values.copy())
            arrs[field][k] = bad
            got = K.check_events(arrs["times"], arrs["indices"], arrs["values"], ptr, T, n_in)
            assert tuple(got) == (code, k), (field, bad, k)
    back = times.copy()
    back[2999] = back[3000] = T // 2
    back[3000] -= 1                                        # one step back within sample 2
    assert tuple(K.check_events(back, indices, values, ptr, T, n_in)) == (K.EV_ORDER, 3000)
    across = times.copy()                                  # a drop between samples is fine
    across[1999], across[2000] = T - 1, 0
    assert tuple(K.check_events(across, indices, values, ptr, T, n_in)) == (K.EV_OK, -1)


def test_signed_zero_clamp():
    """A membrane of -0.0 clamped at ``v_min = 0`` keeps its sign in the kernels and in
    :func:`canonical_step` alike (``np.maximum`` there used to give +0.0).  With valid
    states it takes ``v_reset = -0.0`` (or an input of exactly -0.0 onto ``v = -0.0``),
    which the tests above do not generate."""
    p = NeuronParams(beta=0.5, theta=1.0, reset="hard", v_reset=-0.0, v_min=0.0)
    v, I = np.array([0.5], np.float32), np.array([1.0], np.float32)
    got = K.neuron_step(v[0], I[0], *_kernel_args(p, np.float32))
    assert got[1] == 1
    _assert_bits(np.array([got[2]], np.float32), canonical_step(v, I, p)[2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuba_lazy_kernels(dtype):
    """Lazy current-based neurons: ``cuba_free_steps`` is ``n`` steps of ``i = alpha i + 0``,
    ``u = beta v + i`` (clamped, no crossing); ``cuba_next_crossing`` the first of ``1..H``
    such steps with ``u >= theta`` (-1: none); ``cuba_quiet`` (with ``cuba_geometric``) is
    never true for a neuron that crosses within ``H``; ``catch_up_cuba`` brings every
    neuron behind over its missed steps."""
    rng = np.random.default_rng(5)
    H = 60
    grow = np.exp(H * K.CUBA_ROUND) * K.CUBA_SLACK
    zero = dtype(0)
    quiet_seen = 0
    for _ in range(300):
        alpha = dtype(rng.choice([0.0, 0.5, 0.9, 0.999, 1.0]))
        beta = dtype(rng.choice([0.0, 0.5, 0.95, 1.0]))
        theta = dtype(1.0)
        has_vmin = bool(rng.random() < 0.4)
        v_min = dtype(-0.5 if has_vmin else 0.0)
        v0 = dtype(rng.uniform(-1, 1.2))
        if has_vmin:
            v0 = max(v0, v_min)
        i0 = dtype(rng.standard_normal() * 0.1)
        vs, first = [], -1
        v, i = v0, i0
        for k in range(1, H + 1):      # reference: the every-step update without input
            i = dtype(alpha * i + (zero + zero))
            u = dtype(beta * v + i)
            if first < 0 and u >= theta:
                first = k
            v = max(u, v_min) if has_vmin else u
            vs.append((v, i))
        g = K.cuba_geometric(alpha, H)
        bound = (max(0.0, float(v_min)) if has_vmin else 0.0, g, grow)
        assert K.cuba_next_crossing(v0, i0, H, (alpha, beta, theta, has_vmin, v_min), zero,
                                    bound) == first
        if K.cuba_quiet(v0, i0, theta, bound[0], g, grow):
            quiet_seen += 1
            assert first < 0
        n = int(rng.integers(1, H)) if first < 0 else first - 1
        if n > 0:
            got = K.cuba_free_steps(v0, i0, n, alpha, beta, has_vmin, v_min, zero)
            # (values: the early end at a fixed point may keep the sign of a zero)
            assert got[0] == vs[n - 1][0] and got[1] == vs[n - 1][1], (alpha, beta, v0, i0, n)
            pop = np.zeros(1, TB.pop_dtype(np.dtype(dtype)))[0]
            pop["n"], pop["has_vmin"], pop["v_min"] = 2, int(has_vmin), v_min
            V, I = np.array([v0, v0], dtype), np.array([i0, i0], dtype)
            L = np.array([-1, 3], np.int64)
            t = 4 + n
            K.catch_up_cuba(pop, t, 3, V, I, L, np.zeros(2, dtype),
                            (np.full(2, alpha), np.full(2, beta)), zero)
            # both were last updated at step 3 (L or lf): n missed steps
            np.testing.assert_array_equal(V, np.full(2, vs[n - 1][0], dtype))
            np.testing.assert_array_equal(I, np.full(2, vs[n - 1][1], dtype))
    assert quiet_seen > 50
