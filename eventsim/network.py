"""Load, validate and compile a model into the flat arrays the Numba event loop runs on.

``load(source)`` accepts a model file path (read and validated by
:func:`snncore.modelfile.read_model`), an in-memory :class:`~snncore.modelfile.Model`
(validated here), or a ``training.Sequential`` (exported with ``training.export.to_model``).
Everything is checked before any Numba call: a model that is valid but that the simulator
cannot run event by event raises ``ValueError`` here, naming the layer.

Compilation (see ``eventsim/kernels.py`` for the vocabulary)
------------------------------------------------------------
- Each spiking layer and the readout become a *population* with the canonical parameters of
  docs/methods.md section 2 cast to the model dtype (so ``beta * v`` is a float32 multiply when the
  weights are float32).
- The projections between two populations become an *edge*: a chain of *stages*
  (dense: transposed weight ``WT[n_in, n_out]`` so a spike streams one contiguous row;
  sparse: source-major CSR; conv: weight ``[C_in, kH, kW, C_out]`` scattered around the
  spike; average pooling: window sums multiplied by ``dtype(1/(kH*kW))`` when read (as the
  dense engine's pooling: exact window sums of spikes, then one rounding); max pooling of binary spikes; Flatten costs nothing).  Feature maps are
  stored channel-last internally; ``perm`` arrays map internal to canonical (C-order,
  channel-first) indices, and weights are permuted at compile time, so results are reported
  in canonical order.
- Biases become a per-neuron constant input of the edge's target population.  A bias in the
  middle of a chain (e.g. Conv with bias -> AvgPool -> Spiking) is propagated to the target
  through the rest of the chain once (exact in real arithmetic; bit-exact for dyadic values).
- Extra ``Connection`` s: dense ones become edges with a delay (spikes wait in the source
  population's ring of the last ``delay + 1`` steps' spike lists).  The sparse ones between
  the same source and target are merged into one *bundle*: per source neuron one row of
  segments, one per connection, sorted by delay (then connection index); a spike is
  delivered once, into a ring of future input currents indexed by arrival step, whose due
  slot is added to the target at every step (before dense connections and feed-forward
  input).  The input current of a target neuron from a bundle at step t is summed in
  order of emission step (longest delay first), then, within one emission step, connection
  by connection (those with that delay), source neuron by source neuron as before; exact
  for dyadic weights, otherwise a different rounding than connection by connection.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snncore import modelfile as mf

from . import tables as TB


# A lazy population without constant input is updated by one vectorised pass over all its
# neurons (about 1 ns per neuron) at the steps where at least 1/div of them are touched
# (``sizes["full_div"]``, ``sizes["full_div_cheap"]``; 0: only when all are).  Crossovers
# measured on 10k LIF neurons with uniform random input (float32, 2000 steps): a lazy
# neuron costs ~25 ns when its catch-up is one operation (``leak="power"``, beta 0 or 1):
# full passes win above ~5 % touched; with ``leak="repeat"`` and 0 < beta < 1 the catch-up
# steps the leak over every missed step (~3.5 ns a step), so full passes win down to
# ~0.2 % touched if every neuron is touched sooner or later (at 1 %: 21 ms against 43 ms)
# and lose when only a few neurons are ever active; 1/64 is a compromise.
FULL_PASS_DIV = 64          # leak stepped: leak="repeat" and 0 < beta < 1
FULL_PASS_DIV_CHEAP = 20    # catch-up in one operation
# current-based populations: a full pass steps both states of every neuron behind (no
# early end before the current has decayed to an exact fixed point), a lazy pass only the
# touched ones'; full passes from 1/4 touched (benchmarks/bench_cuba_lazy.py)
FULL_PASS_DIV_CUBA = 4
# layer-major schedule: a dense edge is delivered source-major over windows of steps whose
# input currents (steps x targets) fit this many values (512 KB of float32: in L2)
LAYER_WINDOW = 1 << 17
# A bundle's ring slot is added to its target as a whole (about 0.3 ns a neuron, and the
# target then counts as wholly touched: a full pass) when it lists at least 1/16 as many
# synapses as the target has neurons; entry by entry it costs about 4 ns a synapse.
RING_DENSE_DIV = 16         # sizes["ring_div"]


class UnsupportedModelError(ValueError):
    """The model is valid but cannot be simulated event by event (message names the layer)."""


@dataclass
class _Space:
    n: int
    bs: int                 # block size: C for channel-last feature maps, else 1
    perm: np.ndarray        # internal index -> canonical flat index
    hwc: tuple | None       # (H, W, C) for channel-last spaces
    post_scale: float = 0.0  # multiply by this when read (average pooling); 0: none
    off: int = 0
    boff: int = 0


@dataclass
class _Stage:
    kind: int
    src: int
    dst: int
    label: str | None
    ints: dict = field(default_factory=dict)
    weights: np.ndarray | None = None       # float payload (flattened later)
    iptr: np.ndarray | None = None          # sparse: source-major indptr
    idx: np.ndarray | None = None           # sparse: destination indices


def _hwc_perm(shape):
    C, H, W = shape
    return np.arange(C * H * W, dtype=np.int64).reshape(C, H, W).transpose(1, 2, 0).ravel()


def _new_space(shape) -> _Space:
    n = int(np.prod(shape))
    if len(shape) == 3:
        C, H, W = (int(s) for s in shape)
        return _Space(n=n, bs=C, perm=_hwc_perm(shape), hwc=(H, W, C))
    return _Space(n=n, bs=1, perm=np.arange(n, dtype=np.int64), hwc=None)


def _like_space(sp: _Space) -> _Space:
    return _Space(n=sp.n, bs=sp.bs, perm=sp.perm, hwc=sp.hwc)


def _inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm), dtype=perm.dtype)
    return inv


def window_tables(Hi, Wi, C, Ho, Wo, kh, kw, sh, sw, ph, pw):
    """Geometry tables of a convolution or pooling stage (plain NumPy, int64), concatenated:
    ``pos[i] = i // C`` for the ``Hi*Wi*C`` channel-last inputs, ``y[pos]``, ``x[pos]``, and
    the inclusive ranges ``oy0[y], oy1[y]``, ``ox0[x], ox1[x]`` of the outputs whose window
    ``(o*s - p) .. (o*s - p + k - 1)`` contains the input row / column."""
    pos = np.arange(Hi * Wi * C, dtype=np.int64) // C
    y, x = np.divmod(np.arange(Hi * Wi, dtype=np.int64), Wi)

    def ranges(n_in, n_out, k, st, p):
        r = np.arange(n_in, dtype=np.int64) + p
        lo = np.maximum(0, -((k - 1 - r) // st))          # ceil((r - k + 1) / st)
        hi = np.minimum(n_out - 1, r // st)
        return lo, hi

    oy0, oy1 = ranges(Hi, Ho, kh, sh, ph)
    ox0, ox1 = ranges(Wi, Wo, kw, sw, pw)
    return np.concatenate([pos, y, x, oy0, oy1, ox0, ox1])


def merge_delayed(conns, n_src):
    """Merge sparse connections with one source and one target into a bundle (plain NumPy).

    ``conns``: dicts with ``delay``, ``g`` (stage index) and the source-major CSR ``iptr``,
    ``idx`` (target, internal), ``w`` of each connection.  Returns ``ptr [n_src*nseg + 1]``
    (segment ``m`` of row ``i``: ``ptr[i*nseg + m] : ptr[i*nseg + m + 1]``), ``idx``, ``w``
    and ``seg [2*nseg]`` = ``(delay, g)`` per segment; segments are the connections sorted by
    delay (stable: connection order for equal delays), entries keep each row's order."""
    order = sorted(range(len(conns)), key=lambda k: conns[k]["delay"])
    nseg = len(conns)
    src_parts, seg_parts, idx_parts, w_parts = [], [], [], []
    for m, k in enumerate(order):
        c = conns[k]
        counts = np.diff(c["iptr"])
        src_parts.append(np.repeat(np.arange(n_src, dtype=np.int64), counts))
        seg_parts.append(np.full(len(c["idx"]), m, dtype=np.int64))
        idx_parts.append(np.asarray(c["idx"], dtype=np.int64))
        w_parts.append(c["w"])
    src, seg_of = np.concatenate(src_parts), np.concatenate(seg_parts)
    pos = np.arange(len(src), dtype=np.int64)
    o = np.lexsort((pos, seg_of, src))
    ptr = np.zeros(n_src * nseg + 1, dtype=np.int64)
    np.cumsum(np.bincount(src * nseg + seg_of, minlength=n_src * nseg), out=ptr[1:])
    seg = np.array([(conns[k]["delay"], conns[k]["g"]) for k in order], dtype=np.int64).ravel()
    return ptr, np.concatenate(idx_parts)[o], np.concatenate(w_parts)[o], seg


def pack_int32(a) -> np.ndarray:
    """Integers ``a`` (each fits int32) as int32 values packed two to an int64 entry (native
    byte order; an odd count padded with 0), to be stored in ``wi`` and read through
    ``wi.view(np.int32)`` at twice the entry's offset: the bundles' targets, half the
    bytes per synapse."""
    a = np.asarray(a, dtype=np.int64)
    if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
        raise ValueError(f"pack_int32: values outside int32 ({a.min()}..{a.max()})")
    out = np.zeros(len(a) + len(a) % 2, dtype=np.int32)
    out[:len(a)] = a
    return out.view(np.int64)


# ---------------------------------------------------------------------------------------
# dense NumPy forms of the projections (canonical layout), used for analog input currents
# and to propagate mid-chain biases
# ---------------------------------------------------------------------------------------
def _windows(x, kh, kw, sh, sw):
    """``x [M, C, H, W] -> [M, C, Ho, Wo, kh, kw]`` (views, floor mode)."""
    v = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return v[:, :, ::sh, ::sw]


def dense_apply(rec, x: np.ndarray, bias: bool = True) -> np.ndarray:
    """Apply projection record ``rec`` to ``x [M, *shape]`` (canonical layout, model dtype)."""
    M = x.shape[0]
    if isinstance(rec, mf.Dense):
        y = x.reshape(M, -1) @ rec.weight.T
        if bias and rec.bias is not None:
            y += rec.bias
        return y
    if isinstance(rec, mf.Sparse):
        import scipy.sparse as sps
        W = sps.csr_matrix((rec.data, rec.indices, rec.indptr), shape=tuple(rec.shape))
        y = np.ascontiguousarray((W @ x.reshape(M, -1).T).T, dtype=x.dtype)
        if bias and rec.bias is not None:
            y += rec.bias
        return y
    if isinstance(rec, mf.Conv2d):
        # as training.conv: per image y_n = W2 @ cols_n (K = C_in*kH*kW rows), then + bias
        co, ci, kh, kw = rec.weight.shape
        (sh, sw), (ph, pw) = tuple(rec.stride), tuple(rec.padding)
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
        win = _windows(xp, kh, kw, sh, sw)                      # [M, ci, Ho, Wo, kh, kw]
        Ho, Wo = win.shape[2:4]
        cols = np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3)).reshape(M, ci * kh * kw, Ho * Wo)
        y = np.matmul(rec.weight.reshape(co, -1), cols)          # [M, co, Ho*Wo]
        if bias and rec.bias is not None:
            y += rec.bias[None, :, None]
        return y.reshape(M, co, Ho, Wo)
    if isinstance(rec, mf.AvgPool2d):
        # as training.pooling: window sum in row-major order (2x2/2: pairs), times 1/(kh*kw)
        (kh, kw), (sh, sw) = tuple(rec.kernel), tuple(rec.stride)
        win = _windows(x, kh, kw, sh, sw)
        if (kh, kw, sh, sw) == (2, 2, 2, 2):
            s = (win[..., 0, 0] + win[..., 0, 1]) + (win[..., 1, 0] + win[..., 1, 1])
        else:
            s = np.zeros(win.shape[:4], dtype=x.dtype)
            for i in range(kh):
                for j in range(kw):
                    s += win[..., i, j]
        return s * x.dtype.type(1.0 / (kh * kw))
    if isinstance(rec, mf.MaxPool2d):
        (kh, kw), (sh, sw) = tuple(rec.kernel), tuple(rec.stride)
        return np.ascontiguousarray(_windows(x, kh, kw, sh, sw).max(axis=(-2, -1)))
    if isinstance(rec, mf.Flatten):
        return x.reshape(M, -1)
    raise TypeError(f"not a projection: {type(rec).__name__}")


def dense_chain(records, x: np.ndarray, bias: bool = True) -> np.ndarray:
    for rec in records:
        x = dense_apply(rec, x, bias=bias)
    return x


# ---------------------------------------------------------------------------------------
# the compiled network
# ---------------------------------------------------------------------------------------
def _neuron_values(value, perm: np.ndarray, dt) -> np.ndarray:
    """A spiking layer's ``beta`` or ``theta`` (a float, or one per neuron in canonical
    order) for every neuron of a population in internal order (``perm``: internal ->
    canonical index), in dtype ``dt``."""
    if isinstance(value, np.ndarray):
        return np.asarray(value, dtype=dt)[perm]
    return np.full(len(perm), dt.type(value), dtype=dt)


class CompiledNetwork:
    """A validated model plus the contiguous arrays of its populations and projections.

    Args:
        model: a validated :class:`~eventsim.modelfile.Model`.
        dtype: the float type of every array and every sum of the simulation: ``None``
            (default) keeps the model's own dtype; ``np.float32`` or ``np.float64`` casts the
            model's arrays first (``np.float64`` on a float32 model: exact casts, float64
            accumulation, the precision the dense engine's summation order cannot flip).

    Attributes:
        model: the :class:`~snncore.modelfile.Model` (cast to ``dtype``).  dtype: its float
            dtype.
        shapes: feature shape after each layer.  input_shape, T, encoding: from the model.
        spiking_layers: layer indices of the spiking layers.  n_outputs: readout size.
        pop_layers: layer index of each population (spiking layers in order, readout last).
        pop_perm: per population, internal -> canonical neuron index.
        input_inv: canonical -> internal index of the input space.
        tables (``pops, spaces, stages, edges, bundles, sizes``: record arrays of
        ``eventsim.tables``; ``edge_stage, wf, wi, const_all, const_conn, nbeta, ntheta,
        nalpha``): what :func:`eventsim.loop.run_batch` runs on.
        stage_labels: ``"layers[i]"`` / ``"connections[k]"`` of each stage (None: identity).
    """

    def __init__(self, model: mf.Model, dtype=None):
        native = mf.model_dtype(model)
        self.dtype = native if dtype is None else _float_dtype(dtype, "CompiledNetwork.dtype")
        if self.dtype != native:
            model = cast_model(model, self.dtype)
        self.model = model
        self.shapes = mf.validate(model)
        self.input_shape = tuple(model.input_shape)
        self.T = int(model.T)
        self.encoding = model.encoding
        self.spiking_layers = model.spiking_layers
        self.n_outputs = int(self.shapes[-1][0])
        ro = model.layers[-1]
        self.readout_beta = float(ro.beta)
        self.time_weights = None if ro.time_weights is None else np.asarray(ro.time_weights, dtype=self.dtype)
        self._compile()

    def __repr__(self) -> str:
        kinds = ", ".join(getattr(l, "kind", "?") for l in self.model.layers)
        return (f"CompiledNetwork(input_shape={self.input_shape}, layers=[{kinds}], "
                f"connections={len(self.model.connections)}, dtype={np.dtype(self.dtype).name})")

    # -- compilation ---------------------------------------------------------------------
    def _compile(self):
        model, shapes, dt = self.model, self.shapes, self.dtype
        spaces: list[_Space] = []
        stages: list[_Stage] = []
        edges: list[dict] = []
        pops: list[dict] = []

        def add_space(sp):
            spaces.append(sp)
            return len(spaces) - 1

        in_space = add_space(_new_space(self.input_shape))
        self.input_inv = _inverse(spaces[in_space].perm)
        self.input_event_problem = None   # why input events cannot be simulated (None: they can)
        self.input_needs_binary = False    # input events feed a max pooling: values must be 1

        cur, cur_shape = in_space, self.input_shape
        src_pop, src_binary = -1, None   # None: the input (binary or not is known at run time)
        chain: list[int] = []            # layer indices of the projections of the open edge
        edge_stages: list[int] = []
        biases: list[tuple[int, int]] = []   # (position in chain, layer index)
        maxpool_ok = True                # all stages so far are max pools of binary spikes
        prev_shape = self.input_shape
        for i, layer in enumerate(model.layers):
            where = f"model.layers[{i}]({layer.kind})"
            in_shape = prev_shape
            prev_shape = shapes[i]
            if isinstance(layer, mf.Flatten):
                chain.append(i)
                continue
            if isinstance(layer, (mf.Dense, mf.Sparse, mf.Conv2d, mf.AvgPool2d, mf.MaxPool2d)):
                if isinstance(layer, mf.MaxPool2d):
                    problem = None
                    if not maxpool_ok:
                        problem = ("max pooling is simulated on binary spikes only; here it follows "
                                   "a weighted projection, a pooling or a bias")
                    elif src_pop >= 0 and not src_binary:
                        problem = "max pooling of ternary spikes is not supported"
                    if problem:
                        if src_pop >= 0:
                            raise UnsupportedModelError(f"{where}: {problem}")
                        self.input_event_problem = self.input_event_problem or f"{where}: {problem}"
                    elif src_pop == -1:
                        self.input_needs_binary = True
                else:
                    maxpool_ok = False
                dst = add_space(_new_space(shapes[i]))
                stages.append(self._make_stage(layer, i, cur, dst, spaces, in_shape, shapes[i]))
                edge_stages.append(len(stages) - 1)
                if getattr(layer, "bias", None) is not None:
                    biases.append((len(chain), i))
                    maxpool_ok = False
                chain.append(i)
                cur, cur_shape = dst, shapes[i]
                continue
            # a population: close the edge
            last_is_pool = bool(edge_stages) and stages[edge_stages[-1]].kind == TB.K_SUMPOOL
            if not edge_stages or last_is_pool:
                dst = add_space(_like_space(spaces[cur]))
                stages.append(_Stage(TB.K_IDENTITY, cur, dst, None))
                edge_stages.append(len(stages) - 1)
                cur = dst
            q = len(pops)
            const = self._edge_constant(chain, biases, shapes, i, spaces[cur])
            pops.append(dict(layer=i, rec=layer, space=cur, n=spaces[cur].n, const=const,
                             const_conn=np.zeros(spaces[cur].n, dtype=dt), R=1))
            edges.append(dict(src=src_pop, tgt=q, delay=0, stages=list(edge_stages)))
            if src_pop == -1:
                self.input_chain = [model.layers[j] for j in chain]
            src_pop, src_binary = q, isinstance(layer, mf.Spiking) and layer.spikes == "binary"
            chain, edge_stages, biases, maxpool_ok = [], [], [], True
        self.layer_pop = {p["layer"]: q for q, p in enumerate(pops)}

        # delayed connections: dense ones are edges, sparse ones are merged per (source, target)
        bundles: dict[tuple[int, int], list[dict]] = {}
        for k, c in enumerate(model.connections):
            qs, qt = self.layer_pop[int(c.source)], self.layer_pop[int(c.target)]
            ss, st = pops[qs]["space"], pops[qt]["space"]
            p = c.projection
            n_t, n_s = spaces[st].n, spaces[ss].n
            label = f"connections[{k}]"
            if isinstance(p, mf.Dense):
                W = np.asarray(p.weight, dtype=dt)
                wt = np.ascontiguousarray(W[np.ix_(spaces[st].perm, spaces[ss].perm)].T)
                stages.append(_Stage(TB.K_DENSE, ss, st, label, weights=wt))
                edges.append(dict(src=qs, tgt=qt, delay=int(c.delay), stages=[len(stages) - 1]))
                pops[qs]["R"] = max(pops[qs]["R"], int(c.delay) + 1)
            else:
                sp = self._sparse_stage(p, ss, st, spaces, label)
                stages.append(_Stage(TB.K_BUNDLED, ss, st, label))
                pops[qs]["R"] = max(pops[qs]["R"], 2)   # see _tables: bundle sources
                bundles.setdefault((qs, qt), []).append(
                    dict(g=len(stages) - 1, delay=int(c.delay), iptr=sp.iptr, idx=sp.idx,
                         w=sp.weights))
            if p.bias is not None:
                b = np.asarray(p.bias, dtype=dt)[spaces[st].perm]
                pops[qt]["const_conn"] = pops[qt]["const_conn"] + b
        self._tables(spaces, stages, edges, pops, bundles)

    def _make_stage(self, layer, i, src, dst, spaces, in_shape, out_shape) -> _Stage:
        dt = self.dtype
        label = f"layers[{i}]"
        if isinstance(layer, mf.Dense):
            W = np.asarray(layer.weight, dtype=dt)
            wt = np.ascontiguousarray(W[np.ix_(spaces[dst].perm, spaces[src].perm)].T)
            return _Stage(TB.K_DENSE, src, dst, label, weights=wt)
        if isinstance(layer, mf.Sparse):
            return self._sparse_stage(layer, src, dst, spaces, label)
        Hi, Wi, Ci = spaces[src].hwc
        Ho, Wo, Co = spaces[dst].hwc
        geo = dict(Hi=Hi, Wi=Wi, Ci=Ci, Ho=Ho, Wo=Wo, Co=Co)
        if isinstance(layer, mf.Conv2d):
            co, ci, kh, kw = layer.weight.shape
            (sh, sw), (ph, pw) = tuple(layer.stride), tuple(layer.padding)
            w = np.ascontiguousarray(np.asarray(layer.weight, dtype=dt).transpose(1, 2, 3, 0))
            return _Stage(TB.K_CONV, src, dst, label, weights=w,
                          ints=dict(geo, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw))
        (kh, kw), (sh, sw) = tuple(layer.kernel), tuple(layer.stride)
        ints = dict(geo, kh=kh, kw=kw, sh=sh, sw=sw)
        if isinstance(layer, mf.AvgPool2d):
            spaces[dst].post_scale = 1.0 / (kh * kw)
            return _Stage(TB.K_SUMPOOL, src, dst, label, ints=ints)
        return _Stage(TB.K_MAXPOOL, src, dst, label, ints=ints)

    def _sparse_stage(self, p: mf.Sparse, src, dst, spaces, label) -> _Stage:
        n_out, n_in = (int(s) for s in p.shape)
        indptr = np.asarray(p.indptr, dtype=np.int64)
        rows = np.repeat(np.arange(n_out, dtype=np.int64), np.diff(indptr))
        cols = np.asarray(p.indices, dtype=np.int64)
        s_int = _inverse(spaces[src].perm)[cols]
        d_int = _inverse(spaces[dst].perm)[rows]
        order = np.lexsort((d_int, s_int))
        iptr = np.zeros(n_in + 1, dtype=np.int64)
        np.cumsum(np.bincount(s_int, minlength=n_in), out=iptr[1:])
        return _Stage(TB.K_SPARSE, src, dst, label,
                      weights=np.ascontiguousarray(np.asarray(p.data, dtype=self.dtype)[order]),
                      iptr=iptr, idx=np.ascontiguousarray(d_int[order]))

    def _edge_constant(self, chain, biases, shapes, pop_layer, space: _Space) -> np.ndarray:
        """Constant input current (biases) of the population at ``pop_layer``, internal order."""
        dt = self.dtype
        const = np.zeros(space.n, dtype=dt)
        for pos, li in biases:
            rec = self.model.layers[li]
            b = np.asarray(rec.bias, dtype=dt)
            bmap = np.broadcast_to(b[:, None, None], shapes[li]) if isinstance(rec, mf.Conv2d) else b
            rest = [self.model.layers[j] for j in chain[pos + 1:]]
            y = dense_chain(rest, np.ascontiguousarray(bmap, dtype=dt)[None], bias=False)
            const = const + y.reshape(-1)[space.perm]
        return const

    def _tables(self, spaces, stages, edges, pops, bundles):
        """Fill the record tables of ``eventsim.tables`` (fields documented there)."""
        dt = self.dtype
        # spaces
        off = boff = 0
        for sp in spaces:
            sp.off, sp.boff = off, boff
            off += sp.n
            boff += sp.n // sp.bs
        space_t = np.zeros(len(spaces), dtype=TB.space_dtype(dt))
        for s, sp in enumerate(spaces):
            space_t[s] = (sp.n, sp.off, sp.bs, sp.boff,
                          TB.POST_SCALE if sp.post_scale else TB.POST_NONE,
                          dt.type(sp.post_scale) if sp.post_scale else dt.type(1))
        # stages
        wf_parts, wi_parts = [], []
        wf_off = wi_off = mp_off = 0
        pbuf = 1
        stage_t = np.zeros(len(stages), dtype=TB.STAGE_DTYPE)
        for g, st in enumerate(stages):
            row = stage_t[g:g + 1]
            row["kind"], row["src"], row["dst"] = st.kind, st.src, st.dst
            for name in ("Hi", "Wi", "Ci", "Ho", "Wo", "Co", "kh", "kw", "sh", "sw", "ph", "pw"):
                row[name] = st.ints.get(name, 0)
            if st.weights is not None:
                row["woff"] = wf_off
                wf_parts.append(st.weights.ravel())
                wf_off += st.weights.size
            if st.kind == TB.K_SPARSE:
                row["poff"] = wi_off
                row["ioff"] = wi_off + len(st.iptr)
                idx = pack_int32(st.idx)   # targets as int32, two to an entry of wi
                wi_parts += [st.iptr, idx]
                wi_off += len(st.iptr) + len(idx)
            if st.kind == TB.K_MAXPOOL:
                row["moff"] = mp_off
                mp_off += spaces[st.dst].n
            if st.kind in (TB.K_CONV, TB.K_SUMPOOL, TB.K_MAXPOOL):
                g_ = st.ints
                tab = window_tables(g_["Hi"], g_["Wi"], g_["Ci"], g_["Ho"], g_["Wo"], g_["kh"],
                                    g_["kw"], g_["sh"], g_["sw"], g_.get("ph", 0), g_.get("pw", 0))
                row["toff"] = wi_off
                wi_parts.append(tab)
                wi_off += len(tab)
                pbuf = max(pbuf, 2 * g_["kh"] * g_["kw"])
        self.stage_labels = [st.label for st in stages]
        # populations
        noff = ring = ringc = 0
        pop_t = np.zeros(len(pops), dtype=TB.pop_dtype(dt))
        const_all, const_conn, nbeta, ntheta, nalpha = [], [], [], [], []
        for q, p in enumerate(pops):
            rec = p["rec"]
            row = pop_t[q:q + 1]
            row["space"], row["n"], row["noff"] = p["space"], p["n"], noff
            row["ring"], row["R"], row["ringc"] = ring, p["R"], ringc
            if isinstance(rec, mf.Spiking):
                row["kind"] = TB.POP_SPIKING
                row["reset"] = TB.HARD_RESET if rec.reset == "hard" else TB.SUBTRACT_RESET
                row["ternary"] = rec.spikes == "ternary"
                row["has_vmin"] = rec.v_min is not None
                perm = spaces[p["space"]].perm
                beta, theta = _neuron_values(rec.beta, perm, dt), _neuron_values(rec.theta, perm, dt)
                per_neuron = isinstance(rec.beta, np.ndarray) or isinstance(rec.theta, np.ndarray)
                row["pn"] = per_neuron
                # NaN: a kernel that read the per-population value of such a population
                # would give NaN, caught by the per-neuron equivalence tests
                row["beta"] = np.nan if per_neuron else beta[0]
                row["theta"] = np.nan if per_neuron else theta[0]
                row["v_reset"] = dt.type(rec.v_reset)
                row["v_min"] = dt.type(0.0 if rec.v_min is None else rec.v_min)
                alpha = np.zeros(p["n"], dt)
                if rec.alpha is not None:   # current-based: updated at every step
                    alpha = _neuron_values(rec.alpha, perm, dt)
                    row["cuba"] = 1
                    row["alpha"] = np.nan if isinstance(rec.alpha, np.ndarray) else alpha[0]
            else:
                row["kind"] = TB.POP_READOUT
                row["beta"] = dt.type(rec.beta)
                beta, theta = np.full(p["n"], row["beta"][0], dt), np.zeros(p["n"], dt)
                alpha = np.zeros(p["n"], dt)
            nalpha.append(alpha)
            nbeta.append(beta)
            ntheta.append(theta)
            noff += p["n"]
            ring += p["R"] * p["n"]
            ringc += p["R"]
            cc = np.asarray(p["const_conn"], dtype=dt)
            c = np.asarray(p["const"], dtype=dt)
            const_all.append(c + cc if np.any(cc) else c)
            const_conn.append(cc)
        # edges: feed-forward edge q targets population q; connections follow
        edge_t = np.zeros(len(edges), dtype=TB.EDGE_DTYPE)
        flat_stages = []
        for e, ed in enumerate(edges):
            edge_t[e] = (ed["src"], ed["tgt"], ed["delay"], len(flat_stages), len(ed["stages"]))
            flat_stages += ed["stages"]
        # bundles of sparse connections
        bundle_t = np.zeros(len(bundles), dtype=TB.BUNDLE_DTYPE)
        ring_off = list_off = ringc_off = 0
        for nb, ((qs, qt), conns) in enumerate(bundles.items()):
            # at least 2 ring slots: the pipelined schedule (eventsim.loop.run_pipelined)
            # reads the spikes of t - 1 while the source lists those of t
            assert pops[qs]["R"] >= 2, "bundle source with a one-slot spike ring"
            ptr, idx, w, seg = merge_delayed(conns, pops[qs]["n"])
            idx = pack_int32(idx)   # targets as int32, two to an entry of wi
            R = max(c["delay"] for c in conns)
            n_t = pops[qt]["n"]
            bundle_t[nb] = (qs, qt, pops[qt]["space"], n_t, len(conns), wi_off, wi_off + len(ptr),
                            wf_off, wi_off + len(ptr) + len(idx), R, ring_off, list_off, ringc_off)
            wi_parts += [ptr, idx, seg]
            wi_off += len(ptr) + len(idx) + len(seg)
            wf_parts.append(np.asarray(w, dtype=dt))
            wf_off += len(w)
            ring_off += R * n_t
            list_off += R * (n_t + 1)
            ringc_off += R
        self.pops, self.spaces, self.stages = pop_t, space_t, stage_t
        self.edges, self.bundles = edge_t, bundle_t
        self.edge_stage = np.asarray(flat_stages, dtype=np.int64)
        self.wf = np.ascontiguousarray(np.concatenate(wf_parts) if wf_parts else np.zeros(1, dt), dtype=dt)
        self.wi = np.concatenate(wi_parts).astype(np.int64) if wi_parts else np.zeros(1, np.int64)
        self.const_all = np.ascontiguousarray(np.concatenate(const_all), dtype=dt)
        self.const_conn = np.ascontiguousarray(np.concatenate(const_conn), dtype=dt)
        self.nbeta = np.ascontiguousarray(np.concatenate(nbeta), dtype=dt)
        self.ntheta = np.ascontiguousarray(np.concatenate(ntheta), dtype=dt)
        self.nalpha = np.ascontiguousarray(np.concatenate(nalpha), dtype=dt)
        sizes = np.zeros(1, dtype=TB.SIZES_DTYPE)
        for name, value in (("acc", off), ("blocks", boff), ("neurons", noff), ("ring", ring),
                            ("ringc", ringc), ("mp", mp_off), ("bring", ring_off),
                            ("blist", list_off), ("bringc", ringc_off)):
            sizes[name] = max(value, 1)
        sizes["scratch"] = max(sp.n for sp in spaces)
        sizes["spikecap"] = 1 << 26   # initial spike buffer limit per kernel call
        sizes["pbuf"] = pbuf
        sizes["full_div"] = FULL_PASS_DIV
        sizes["full_div_cheap"] = FULL_PASS_DIV_CHEAP
        sizes["full_div_cuba"] = FULL_PASS_DIV_CUBA
        sizes["ring_div"] = RING_DENSE_DIV
        sizes["window"] = LAYER_WINDOW
        self.sizes = sizes
        self.pop_layers = [p["layer"] for p in pops]
        self.pop_perm = [spaces[p["space"]].perm for p in pops]
        self.pop_size = [p["n"] for p in pops]
        # all populations' permutations in one array (population q's at perm_off[q])
        self.perm_off = np.concatenate([[0], np.cumsum(self.pop_size)]).astype(np.int64)
        self.perm_cat = np.concatenate(self.pop_perm).astype(np.int32)
        self.n_stages = len(stages)

    # -- helpers for the simulator -------------------------------------------------------
    def layer_size(self, layer: int) -> int:
        return int(np.prod(self.shapes[layer]))

    def power_table(self, T: int) -> np.ndarray:
        """``beta**k`` per population, ``k = 0..T``, computed in float64 and rounded once
        (NaN rows for populations with per-neuron beta: their catch-up steps the leak)."""
        beta = self.pops["beta"].astype(np.float64)
        return np.ascontiguousarray(beta[:, None] ** np.arange(T + 1)[None, :], dtype=self.dtype)


def _float_dtype(dtype, where: str) -> np.dtype:
    """``np.dtype(dtype)`` if it is float32 or float64, else a ValueError naming ``where``."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{where}: expected np.float32 or np.float64, got {dtype!r}") from None
    if d not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{where}: expected np.float32 or np.float64, got {d.name}")
    return d


_FLOAT_FIELDS = ("weight", "bias", "data", "time_weights")


def cast_model(model: mf.Model, dtype) -> mf.Model:
    """A copy of ``model`` whose float arrays (weights, biases, sparse data, time weights)
    have dtype ``dtype`` (float32 or float64); scalars and integer arrays are unchanged."""
    import dataclasses

    dt = _float_dtype(dtype, "cast_model.dtype")

    def cast(rec):
        kw = {name: np.asarray(getattr(rec, name)).astype(dt) for name in _FLOAT_FIELDS
              if getattr(rec, name, None) is not None}
        return dataclasses.replace(rec, **kw) if kw else rec

    return dataclasses.replace(
        model, layers=[cast(layer) for layer in model.layers],
        connections=[dataclasses.replace(c, projection=cast(c.projection)) for c in model.connections])


def load(source, *, dtype=None) -> CompiledNetwork:
    """Validate and compile a model for the simulator.

    Args:
        source: a model file path (``str`` / ``os.PathLike``), a
            :class:`snncore.modelfile.Model` record (``training.to_model(net, ...)`` builds
            one from a trained network without writing a file), or a
            :class:`CompiledNetwork` (returned as is).
        dtype: ``None`` (the model's own float dtype), ``np.float32`` or ``np.float64``: the
            float type the simulation computes in (see :class:`CompiledNetwork`); a
            CompiledNetwork of another dtype is recompiled from its model.
    Raises:
        ModelFormatError (a ValueError) naming the first wrong field; UnsupportedModelError
        (a ValueError) for valid models the event loop cannot run; FileNotFoundError;
        TypeError for anything else (a training network: convert it with
        ``training.to_model(net, input_shape=..., T=...)`` first).
    """
    import os

    if dtype is not None:
        dtype = _float_dtype(dtype, "eventsim.load: dtype")
    if isinstance(source, CompiledNetwork):
        if dtype is None or dtype == source.dtype:
            return source
        return CompiledNetwork(source.model, dtype)
    if isinstance(source, (str, os.PathLike)):
        return CompiledNetwork(mf.read_model(source), dtype)
    if isinstance(source, mf.Model):
        mf.validate(source)
        return CompiledNetwork(source, dtype)
    hint = (" (a training network: call training.to_model(net, input_shape=..., T=...) first)"
            if hasattr(source, "named_parameters") else "")
    raise TypeError(f"eventsim.load: expected a model file path or a Model record, got "
                    f"{type(source).__name__}{hint}")
