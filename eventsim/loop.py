"""The event loop: :func:`run_batch` simulates samples ``b0 <= b < b1`` phase by phase.

Phases (docs/event-loop.md draws them):

1. *sample set-up* (:func:`sample_setup`): state cleared, constant inputs and drive set,
   each population's update mode chosen, first predicted threshold crossings queued;
2. *delivery* of a step: delayed connections (:func:`deliver_delayed`: bundles through their
   delay rings, dense delayed edges from the source's spike ring), then each population's
   feed-forward edge (:func:`run_edge`, or in the layer-major schedule a window of steps
   at once: :func:`fill_window`, :func:`window_row`);
3. *population update*: a full pass over every neuron (:func:`full_pass`, read in place
   when :func:`full_pass_ready`), else :func:`update_population` (lazy pass over the
   touched and due neurons, or every neuron of a driven population); the readout
   integrator :func:`update_readout`;
4. *spike emission*: the step's spikes counted and listed, membranes recorded.

One driver per schedule: :func:`run_time_major` / :func:`time_major_sample` (each step:
every population in turn) and :func:`run_layer_major` / :func:`layer_pass` (feed-forward
networks: one population over all steps, then the next).  Both add every current's terms
in the same order: same results.  Their step loops, :func:`time_major_steps` and
:func:`layer_steps`, are compiled without reference counting (``_nrt=False``), and so is
everything they call: none of it may allocate or return an array (docs/event-loop.md,
"What a step costs besides the work").  The drivers around them grow the outputs first.
Functions called only from compiled code are compiled without a Python wrapper
(``no_cpython_wrapper=True``: unboxing dozens of arrays made each wrapper cost seconds of
compile time).

The fixed tables and the state groups are defined in ``eventsim.tables``; each kernel
unpacks the groups it needs into locals at entry.  With ``Options.profile`` the drivers
count, per population (row q) and for the network as a whole (row Q: set-up, delayed
connections), the cycles, events and neuron updates of each phase in ``Scratch.prof``
(:data:`PH_SETUP` ... ; columns :data:`C_CYCLES`, :data:`C_EVENTS`, :data:`C_NEURONS`).
"""
from __future__ import annotations

import ctypes
import platform
import threading

import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

from .kernels import (CUBA_LAZY, CUBA_ROUND, CUBA_SLACK, DRIVE_NONE, DRIVE_STEPS, HARD_RESET,
                      K_CONV, K_DENSE, K_MAXPOOL, K_SPARSE, K_SUMPOOL, LEAK_POWER, LEAK_REPEAT,
                      MODE_PREDICT, POP_SPIKING, SCHEDULE_LAYER, SPARSE_WHOLE_DIV, catch_up,
                      catch_up_cuba, collect_spikes, cuba_free_steps, cuba_geometric,
                      cuba_next_crossing, cuba_quiet,
                      delay_advance, delay_push, dense_window, drain, free_steps, neuron_step,
                      slot_cap,
                      predict_steps,
                      scatter_conv, scatter_dense, scatter_identity, scatter_maxpool,
                      scatter_sparse, scatter_sumpool, step_end, touch, update_all,
                      update_all_cuba, update_all_per_neuron, wake_push, wake_remove)
from .tables import (Accum, DelayRing, Delivery, Modes, Neurons, Output, Scratch, Shared,
                     SpikeList, SpikeRing, State, WakeQueue)

# profile counters Scratch.prof[row, phase, column]
PH_SETUP, PH_DELIVER, PH_UPDATE, PH_EMIT = 0, 1, 2, 3
N_PHASES = 4
PHASE_NAMES = ("set-up", "delivery", "update", "emission")
C_CYCLES, C_EVENTS, C_NEURONS = 0, 1, 2
# integers handed to a kernel start from ZERO (an int64), not from the literal 0: Numba would
# compile a second copy of the kernel, and of all it calls, specialised to the literal
ZERO = np.int64(0)


@intrinsic
def _cycles(typingctx):
    """The CPU's cycle counter (``llvm.readcyclecounter``: the time-stamp counter on x86)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@njit(cache=True, inline="always")
def _lap(prof, row, ph, c0, events, neurons):
    """Add the cycles since ``c0`` and the counts to ``prof[row, ph]``; returns the clock."""
    c = _cycles()
    prof[row, ph, C_CYCLES] += c - c0
    prof[row, ph, C_EVENTS] += events
    prof[row, ph, C_NEURONS] += neurons
    return c


# ---------------------------------------------------------------------------------------
# two threads on one sample: progress counters (the pipelined schedule, run_batch)
# ---------------------------------------------------------------------------------------
# Shared.sync: one cache line per entry in use.  SYNC_MAIN: steps the main thread has done;
# SYNC_CLAIMED / SYNC_HELPER: delivery jobs claimed / done (see delay_helper)
SYNC_MODE, SYNC_MAIN, SYNC_HELPER, SYNC_ABORT, SYNC_CLAIMED, SYNC_LEN = 0, 8, 16, 24, 32, 40
# spins (each a CPU pause, ~50 ns) before a waiting thread yields its core at each check
SPINS_BEFORE_YIELD = 200
# delays pushed by the main thread: all (one thread), or below this one (pipelined)
D_ALL, D_HELPER = np.int64(1 << 62), np.int64(2)
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
_libc = ctypes.CDLL(None)
# the compiled code calls sched_yield by name: make the name known to LLVM's linker
llvm_binding.add_symbol("sched_yield", ctypes.cast(_libc.sched_yield, ctypes.c_void_p).value)


@intrinsic
def _load_acquire(typingctx, arr, pos):
    """``arr[pos]`` (int64 array) read atomically with acquire ordering: never hoisted out
    of a loop, and what the writer stored before its release store is visible after."""
    sig = types.int64(arr, types.int64)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        return builder.load_atomic(ptr, ordering="acquire", align=8)
    return sig, codegen


@intrinsic
def _store_release(typingctx, arr, pos, val):
    """``arr[pos] = val`` (int64 array) stored atomically with release ordering: every
    store before it is visible to a thread that reads ``val`` with :func:`_load_acquire`."""
    sig = types.void(arr, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        builder.store_atomic(args[2], ptr, ordering="release", align=8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _claim(typingctx, arr, pos, expected):
    """Atomically ``arr[pos] = expected + 1`` if ``arr[pos] == expected`` (int64 array;
    compare-and-swap, acquire-release); returns whether it did."""
    sig = types.boolean(arr, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        new = builder.add(args[2], ir.Constant(ir.IntType(64), 1))
        res = builder.cmpxchg(ptr, args[2], new, "acq_rel", "acquire")
        return builder.extract_value(res, 1)
    return sig, codegen


@intrinsic
def _relax(typingctx, yield_core):
    """One wait of a spin loop: the CPU's pause hint (x86), or ``sched_yield()`` when
    ``yield_core`` (an overloaded machine then runs the other thread instead)."""
    sig = types.void(types.boolean)

    def codegen(context, builder, signature, args):
        with builder.if_else(args[0]) as (then, otherwise):
            with then:
                fnty = ir.FunctionType(ir.IntType(32), [])
                fn = cgutils.get_or_insert_function(builder.module, fnty, "sched_yield")
                builder.call(fn, [])
            with otherwise:
                if _X86:   # (Numba's LLVM has no inline-assembly parser: the intrinsic)
                    fn = cgutils.get_or_insert_function(
                        builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
                    builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, no_cpython_wrapper=True)
def wait_progress(sync, pos, g):
    """Wait until ``sync[pos] >= g`` (the other thread's steps done), spinning, then
    yielding the core at each check after ``SPINS_BEFORE_YIELD`` spins.  Returns False if a
    stop was requested (``sync[SYNC_ABORT]``) before, else True."""
    spins = 0
    while _load_acquire(sync, pos) < g:
        if _load_acquire(sync, np.int64(SYNC_ABORT)) != 0:
            return False
        spins += 1
        _relax(spins > SPINS_BEFORE_YIELD)
    return True


# ---------------------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def new_state(tab, T, leak, n_win, shared):
    """Every mutable array of a kernel call (``tab``: Tables, ``T`` steps, ``leak`` mode,
    ``n_win`` values of the layer-major window), zeroed, with the spike ring, the delay
    ring and ``ring_div`` of ``shared`` (Shared); returns a State."""
    pops, sz = tab.pops, tab.sizes[0]
    Q, S, G = pops.shape[0], tab.spaces.shape[0], tab.stages.shape[0]
    dt = tab.const_all.dtype
    nN = sz.neurons
    A = Accum(np.zeros(sz.acc, dt), np.zeros(sz.blocks, np.uint8), np.zeros(sz.blocks, np.int64),
              np.zeros(S, np.int64), np.zeros(S, np.bool_))
    nrn = Neurons(np.zeros(nN, dt), np.zeros(nN, dt), np.full(nN, -1, np.int64), np.zeros(nN, dt),
                  np.full(Q, -1, np.int64), np.zeros(nN, dt))
    wake = WakeQueue(np.full(Q * T, -1, np.int64), np.full(nN, -1, np.int64),
                     np.full(nN, -1, np.int64), np.full(nN, -1, np.int64), np.zeros(nN, np.int64))
    ring, dring = shared.ring, shared.dring
    scr = Scratch(np.zeros(sz.scratch, np.int64), np.zeros(sz.scratch, dt),
                  np.zeros((sz.scratch + 7) // 8 * 8, np.int8), np.zeros(sz.pbuf, np.int64),
                  np.zeros(sz.mp, np.int64), np.zeros(n_win, dt), np.zeros(G, np.int64),
                  np.zeros((Q + 1, N_PHASES, 3), np.int64))
    full_div = np.zeros(Q, np.int64)   # lower when the lazy catch-up steps the leak
    vmin_hi = np.zeros(Q, np.bool_)    # v_min >= theta: neurons can fire with no input
    for q in range(Q):
        pop = pops[q]
        stepped = pop.pn != 0 or (leak == LEAK_REPEAT and pop.beta != 0 and pop.beta != 1)
        full_div[q] = sz.full_div if stepped else sz.full_div_cheap
        if pop.cuba != 0:
            full_div[q] = sz.full_div_cuba
        for i in range(pop.noff, pop.noff + pop.n):   # any neuron with theta <= v_min
            if pop.has_vmin != 0 and pop.v_min >= tab.ntheta[i]:
                vmin_hi[q] = True
    modes = Modes(np.zeros(Q, np.bool_), np.zeros(Q, np.bool_), full_div, vmin_hi,
                  shared.ring_div, np.ones(S, np.bool_), np.zeros(Q, np.int64))
    return State(A, nrn, wake, ring, dring, scr, modes)


@njit(cache=True, inline="always")
def new_shared(tab, pipelined):
    """The Shared arrays of a kernel call (``tab``: Tables), zeroed; ``pipelined``: 0 or 1,
    stored in ``sync[SYNC_MODE]``.  Every delay-ring slot is handed on and cleared by the
    step it is due at, and nothing is delivered at or after T: the rings are empty between
    samples."""
    sz = tab.sizes[0]
    dt = tab.const_all.dtype
    sync = np.zeros(SYNC_LEN, np.int64)
    sync[SYNC_MODE] = pipelined
    return Shared(SpikeRing(np.zeros(sz.ring, np.int64), np.zeros(sz.ring, dt),
                            np.zeros(sz.ringc, np.int64)),
                  DelayRing(np.zeros(sz.bring, dt), np.zeros(sz.blist, np.int32),
                            np.zeros(sz.bringc, np.int64)),
                  np.zeros(tab.pops.shape[0], np.int64), sync)


@njit(cache=True, no_cpython_wrapper=True)
def _grow(a, cap, n):
    """A copy of ``a[:n]`` in a new array of ``cap`` entries (element by element: a slice
    assignment would compile the messages of its shape check)."""
    out = np.empty(cap, a.dtype)
    for k in range(n):
        out[k] = a[k]
    return out


@njit(cache=True, no_cpython_wrapper=True)
def grow_output(out, used, more):
    """``out`` (Output) with room for ``more`` spikes after its ``used`` entries (capacity
    doubled as often as needed)."""
    cap = out.neuron.shape[0]
    while used + more > cap:
        cap *= 2
    return Output(out.counts, _grow(out.neuron, cap, used), _grow(out.value, cap, used),
                  out.readout, out.mem)


@njit(cache=True, inline="always")
def copy_spikes(neuron, value, used, idx, val, k0, c):
    """The spikes ``(idx, val)[k0:k0 + c]`` into ``neuron/value`` (int32, int8) after
    ``used`` entries (room checked by the caller)."""
    for k in range(c):
        neuron[used + k] = idx[k0 + k]
        value[used + k] = np.int8(val[k0 + k])


@njit(cache=True, inline="always")
def _room(lm, used, more):
    """``lm`` (SpikeList) with room for ``more`` entries after ``used``."""
    if used + more <= lm.i.shape[0]:
        return lm
    cap = lm.i.shape[0]
    while cap < used + more:
        cap *= 2
    return SpikeList(_grow(lm.t, cap, used), _grow(lm.i, cap, used), _grow(lm.v, cap, used),
                     lm.start)


# ---------------------------------------------------------------------------------------
# phase 1: sample set-up
# ---------------------------------------------------------------------------------------
@njit(cache=True, no_cpython_wrapper=True)
def set_drive(t, bb, tab, drive, cst):
    """The first population's constant input at step ``t``: ``drive[t, bb, :]`` plus its
    input from delayed connections' biases (``tab.const_conn``), into ``cst``."""
    pop = tab.pops[tab.edges[0].tgt]
    off0, const_conn = pop.noff, tab.const_conn
    for i in range(pop.n):
        cc = const_conn[off0 + i]
        cst[off0 + i] = drive[t, bb, i] if cc == 0 else drive[t, bb, i] + cc


@njit(cache=True, no_cpython_wrapper=True)
def _queue_first_crossings(q, T, tab, cst, V, wake):
    """Queue the predicted first crossing (from ``v_{-1} = 0``) of every neuron of population
    ``q`` with constant input ``cst`` (``tab``: Tables; ``V``: membranes; ``wake``:
    WakeQueue; ``T`` steps)."""
    head, wnext, wprev, wake_t, _ = wake
    pop = tab.pops[q]
    noff = pop.noff
    for i in range(pop.n):
        c = cst[noff + i]
        if c != 0:
            d = predict_steps(V[noff + i], c, T, tab.nbeta[noff + i], tab.ntheta[noff + i],
                              pop.has_vmin != 0, pop.v_min, pop.ternary != 0)
            if d > 0:
                wake_push(head[q * T:(q + 1) * T], wnext[noff:], wprev[noff:], wake_t[noff:],
                          d - 1, d - 1, i)


@njit(cache=True, no_cpython_wrapper=True)
def sample_setup(b, b0, T, opts, tab, inp, S):
    """Phase 1 for sample ``b`` (kernel call from ``b0``, ``T`` steps; ``opts``: Options,
    ``tab``: Tables, ``inp``: Inputs, ``S``: State): clear the state, set constant inputs
    and the drive of step 0, choose each population's mode (``S.modes``) and queue the first
    predicted crossings of lazily updated driven neurons."""
    pops = tab.pops
    V, U, L, cst, lfull, Isyn = S.nrn
    head, _, _, wake_t, period = S.wake
    lazy, driven_q, _, vmin_hi, ring_div, whole_ok, unpredicted = S.modes
    unpredicted[:] = 0
    V[:] = 0
    U[:] = 0
    Isyn[:] = 0
    L[:] = -1
    wake_t[:] = -1
    head[:] = -1
    period[:] = 0
    S.ring.cnt[:] = 0
    lfull[:] = -1
    for i in range(cst.shape[0]):   # (a slice copy would compile a shape check's messages)
        cst[i] = tab.const_all[i]
    if inp.drive_mode != DRIVE_NONE:
        set_drive(ZERO, b - b0, tab, inp.drive, cst)
    q0 = tab.edges[0].tgt
    predict = opts.mode == MODE_PREDICT
    for q in range(pops.shape[0]):
        lazy[q] = False
        pop = pops[q]
        if pop.kind == POP_SPIKING:
            # a drive that changes by step counts even when it is zero at step 0
            driven = q == q0 and inp.drive_mode == DRIVE_STEPS
            for i in range(pop.n):
                if cst[pop.noff + i] != 0:
                    driven = True
                    break
            driven_q[q] = driven
            lazy[q] = not driven or (predict and not (q == q0 and inp.drive_mode == DRIVE_STEPS))
            if pop.cuba != 0:   # current-based: lazy only without constant input (below)
                lazy[q] = (not driven and opts.cuba == CUBA_LAZY and pop.ternary == 0
                           and not vmin_hi[q])
            if driven and lazy[q]:
                _queue_first_crossings(q, T, tab, cst, V, S.wake)
    for q in range(pops.shape[0]):
        # a dense delay-ring slot or a large delivery makes the whole target touched: fine
        # unless the target is updated lazily neuron by neuron even then (driven, predict)
        by_neuron = lazy[q] and driven_q[q]
        ring_div[q] = 0 if by_neuron else tab.sizes[0].ring_div
        whole_ok[pops[q].space] = not by_neuron


# ---------------------------------------------------------------------------------------
# phase 2: delivery
# ---------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def delivery(tab, S):
    """The Delivery group of a kernel call (``tab``: Tables, ``S``: State)."""
    A, scr = S.acc, S.scr
    return Delivery(tab.stages, tab.spaces, tab.edges, tab.edge_stage, tab.wf, tab.wi, A.acc,
                    A.mark, A.tlist, A.tcount, A.allt, S.modes.whole_ok, scr.idx, scr.val,
                    scr.pbuf, scr.mp_last, scr.syn)


@njit(cache=True, inline="always")
def scatter(D, A, g, ev_idx, ev_val, k0, k1, stamp):
    """Deliver events ``(ev_idx, ev_val)[k0:k1]`` through stage ``g`` into its destination
    space (``D``: Delivery, ``A``: its Accum arrays, ``stamp``: the step's max-pooling
    stamp); returns the number of synaptic events.  A large sparse or conv delivery
    (synapses >= 1/16 of the destination) marks the destination wholly touched when
    ``whole_ok`` allows."""
    wf, wi, allt = D.wf, D.wi, D.allt
    st = D.stages[g]
    kind, d = st.kind, st.dst
    dsp = D.spaces[d]
    if kind == K_DENSE:
        allt[d] = True
        return scatter_dense(wf, st.woff, dsp.n, ev_idx, ev_val, k0, k1, D.acc, dsp.off)
    if kind == K_CONV:
        nsyn = (k1 - k0) * st.kh * st.kw * st.Co
        if not allt[d] and D.whole_ok[d] and nsyn * SPARSE_WHOLE_DIV >= dsp.n:
            allt[d] = True
        return scatter_conv(wf, wi, st, dsp, A, ev_idx, ev_val, k0, k1, D.pbuf)
    if kind == K_SPARSE:
        if not allt[d] and D.whole_ok[d]:
            po = st.poff
            nsyn = 0
            for k in range(k0, k1):
                nsyn += wi[po + ev_idx[k] + 1] - wi[po + ev_idx[k]]
            if nsyn * SPARSE_WHOLE_DIV >= dsp.n:
                allt[d] = True
        return scatter_sparse(wf, wi, st, dsp, A, ev_idx, ev_val, k0, k1)
    if kind == K_SUMPOOL:
        return scatter_sumpool(wi, st, dsp, A, ev_idx, ev_val, k0, k1)
    if kind == K_MAXPOOL:
        return scatter_maxpool(wi, st, dsp, A, ev_idx, ev_val, k0, k1, D.mp_last, stamp)
    return scatter_identity(d, dsp, A, ev_idx, ev_val, k0, k1)


@njit(cache=True, no_cpython_wrapper=True)
def run_edge(D, e, ev_idx, ev_val, k0, k1, stamp):
    """Deliver events ``(ev_idx, ev_val)[k0:k1]`` through every stage of edge ``e``
    (intermediate spaces are accumulated, then drained into the scratch event list for the
    next stage); counts each stage's synaptic events in ``D.syn`` and returns their sum
    (``D``: Delivery, ``stamp``: see :func:`scatter`)."""
    ed = D.edges[e]
    syn = D.syn
    A = Accum(D.acc, D.mark, D.tlist, D.tcount, D.allt)
    total = 0
    for j in range(ed.ns):
        g = D.edge_stage[ed.soff + j]
        if j == 0:
            n = scatter(D, A, g, ev_idx, ev_val, k0, k1, stamp)
        else:
            cnt = drain(D.spaces, D.stages[g].src, A, D.scr_idx, D.scr_val)
            n = scatter(D, A, g, D.scr_idx, D.scr_val, ZERO, cnt, stamp) if cnt > 0 else 0
        syn[g] += n
        total += n
    return total


@njit(cache=True, no_cpython_wrapper=True)
def deliver_delayed(t, T, tab, S, D, stamp, d_hi):
    """Phase 2, delayed connections at step ``t`` (time-major; ``T`` steps, ``tab``: Tables,
    ``S``: State, ``D``: its Delivery group, ``stamp``: see :func:`scatter`): each bundle pushes its source's spikes of
    step ``t - 1`` into its delay ring (arrival ``t - 1 + d >= t``), then hands the slot of
    step ``t`` to the target; dense delayed edges take the source's spikes of step
    ``t - delay`` from its spike ring."""
    pops, bundles, edges = tab.pops, tab.bundles, tab.edges
    ring_idx, ring_val, ringc = S.ring
    ring_div = S.modes.ring_div
    for nb in range(bundles.shape[0]):
        bun = bundles[nb]
        if t > 0:
            ps = pops[bun.src]
            slot = (t - 1) % ps.R
            c = ringc[ps.ringc + slot]
            if c > 0:
                base = ps.ring + slot * ps.n
                delay_push(S.dring, bun, D, (ring_idx, ring_val, base, base + c), t - 1, T,
                           slot_cap(bun.n_t, ring_div[bun.tgt]), (ZERO, d_hi))
        delay_advance(S.dring, bun, t % bun.R, ring_div[bun.tgt], S.acc, tab.spaces)
    for e in range(pops.shape[0], edges.shape[0]):
        tt = t - edges[e].delay
        if tt >= 0:
            ps = pops[edges[e].src]
            c = ringc[ps.ringc + tt % ps.R]
            if c > 0:
                base = ps.ring + (tt % ps.R) * ps.n
                run_edge(D, e, ring_idx, ring_val, base, base + c, stamp)


@njit(cache=True, no_cpython_wrapper=True)
def fill_window(tab, g, t0, events, k0, k1, win):
    """Layer-major: the input currents of dense stage ``g`` over the steps of a window that
    starts at ``t0``, from events ``(ev_t, ev_idx, ev_val)[k0:k1]`` (``events``),
    source-major into ``win[(t - t0) * n_dst:]`` (:func:`eventsim.kernels.dense_window`)."""
    st = tab.stages[g]
    n_src, n_dst = tab.spaces[st.src].n, tab.spaces[st.dst].n
    if k1 > k0:
        dense_window(tab.wf, st.woff, n_src, n_dst, events, k0, k1, t0, win)


@njit(cache=True, inline="always")
def window_row(t, n_win, n_now, n, allt, d):
    """Layer-major: offset of step ``t``'s row (``n`` values) in the window of ``n_win``
    steps, or -1 when the source had no events (``n_now``); the destination space ``d`` then
    counts as wholly touched (``allt``)."""
    if n_now == 0:
        return -1
    allt[d] = True
    return (t % n_win) * n


@njit(cache=True, inline="always")
def _hand_off(acc, a_off, win, wrow, n):
    """Add window row ``win[wrow:wrow + n]`` to ``acc[a_off:]`` and clear it."""
    for j in range(n):
        acc[a_off + j] += win[wrow + j]
        win[wrow + j] = 0


@njit(cache=True, inline="always")
def _clear_marks(s, m_off, mark, tlist, tcount, allt):
    """Clear space ``s``'s touched list (its blocks at ``m_off``)."""
    for k in range(tcount[s]):
        mark[m_off + tlist[m_off + k]] = 0
    tcount[s] = 0
    allt[s] = False


@njit(cache=True, inline="always")
def full_pass_ready(pop, lazy, driven, vmin_hi, full_div, due, whole, touched):
    """Whether a spiking population (record ``pop``; its mode flags ``lazy``, ``driven``,
    ``vmin_hi``, ``full_div``; first neuron due now ``due``; space wholly touched ``whole``
    or ``touched`` neurons) is updated at this step by a full pass needing no wake-up or
    recording (the full pass brings neurons behind up to date itself)."""
    return (pop.kind == POP_SPIKING and lazy and not driven and due < 0 and pop.cuba == 0
            and pop.recn == 0 and not vmin_hi and (whole or touched * full_div >= pop.n))


@njit(cache=True, inline="always")
def idle(pop, lazy, due, whole, touched):
    """Whether a lazily updated population (record ``pop``; its space wholly touched: ``whole``,
    or ``touched`` blocks; first neuron due now ``due``) has nothing to update at
    this step: no neuron touched, due or recorded.  Checked by the drivers before calling
    :func:`update_population` (a call hands it the state groups: reference counts)."""
    return lazy and not whole and touched == 0 and due < 0 and pop.recn == 0


@njit(cache=True, inline="always")
def update_readout(t, b, pop, sp, acc, V, cst, perm, readout_out):
    """The readout integrator ``r_t = beta * r_{t-1} + I_t`` (record ``pop``, its space's
    record ``sp``; step ``t``, sample ``b``), written to ``readout_out[t, b, perm[i]]``."""
    n, noff, beta, a_off = pop.n, pop.noff, pop.beta, sp.off
    for i in range(n):
        gi = noff + i
        r = beta * V[gi] + (acc[a_off + i] + cst[gi])
        acc[a_off + i] = 0
        V[gi] = r
        readout_out[t, b, perm[i]] = r


@njit(cache=True, inline="always")
def full_pass(q, t, T, pop, nrn, wake, src, off, dst, aux):
    """One vectorised update of every neuron of lazy population ``q`` (record ``pop``) at
    step ``t`` of ``T``: those behind first catch up on the leak (:func:`catch_up`); input
    ``src[off:]`` (the accumulator, or a layer-major window row); spikes into ``dst =
    (out_i, out_v, rbase)``, and those that would cross again without input queued for
    ``t + 1`` (``wake``: WakeQueue); ``nrn``: Neurons; ``aux = (flags, powtab, leak, nbeta,
    ntheta)``.  Returns the spike count (the caller clears the space's touched list).
    Arrays needed only now and then (catch-up, wake queue) are taken out of their groups
    only then: each one taken costs reference counts at every call."""
    V, U, cst, lfull = nrn.V, nrn.U, nrn.cst, nrn.lfull
    flags, nbeta, ntheta = aux[0], aux[3], aux[4]
    out_i, out_v, rbase = dst
    n, noff, tern = pop.n, pop.noff, pop.ternary != 0
    lf = lfull[q]
    if lf < t - 1:
        catch_up(pop, t, lf, V, nrn.L, cst, nbeta, aux[1][q], aux[2])
    if pop.pn:
        update_all_per_neuron(pop, src, off, V, U, cst, flags, nbeta, ntheta)
    else:   # not driven: no constant input
        update_all(pop, src, off, V, U, None, flags)
    cnt = collect_spikes(flags, n, out_i, out_v, rbase)
    if t + 1 < T:   # only neurons that spiked can cross again without input
        for k in range(cnt):
            i = out_i[rbase + k]
            un = nbeta[noff + i] * V[noff + i]
            theta = ntheta[noff + i]
            if un >= theta or (tern and un <= -theta):
                wake_push(wake.head[q * T:(q + 1) * T], wake.wnext[noff:], wake.wprev[noff:],
                          wake.wake_t[noff:], t + 1, t + 1, i)
    lfull[q] = t
    return cnt


@njit(cache=True, no_cpython_wrapper=True)
def _touch_due(q, t, T, tab, S):
    """Population ``q``'s neurons due at step ``t`` (wake queue) and its recorded neurons
    join its touched blocks (``T`` steps, ``tab``: Tables, ``S``: State)."""
    pop = tab.pops[q]
    sp = tab.spaces[pop.space]
    mark, tlist, tcount = S.acc.mark, S.acc.tlist, S.acc.tcount
    head, wnext, _, wake_t, _ = S.wake
    s, bs, m_off, noff = pop.space, sp.bs, sp.boff, pop.noff
    h = q * T + t
    i = head[h]
    while i >= 0:   # wake lists hold population-local indices
        nx = wnext[noff + i]
        wake_t[noff + i] = -1
        touch(i // bs, mark, m_off, tlist, tcount, s)
        i = nx
    head[h] = -1
    rec_idx = tab.rec_idx
    for k in range(pop.recoff, pop.recoff + pop.recn):
        touch(rec_idx[k] // bs, mark, m_off, tlist, tcount, s)


@njit(cache=True, no_cpython_wrapper=True)
def _heapsort(a, n):
    """Sort ``a[:n]`` in place, ascending (heapsort: O(n log n), no recursion, no
    allocation; NumPy's sort in Numba compiles a quicksort for several seconds)."""
    for start in range(n // 2 - 1, -1, -1):
        _sift_down(a, start, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        _sift_down(a, 0, end)


@njit(cache=True, inline="always")
def _sift_down(a, i, n):
    """Restore the max-heap property of ``a[:n]`` below entry ``i``."""
    x = a[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and a[c + 1] > a[c]:
            c += 1
        if a[c] <= x:
            break
        a[i] = a[c]
        i = c
    a[i] = x


@njit(cache=True, no_cpython_wrapper=True)
def _sort_spikes(out_i, out_v, flags, cnt):
    """Spike list ``out_i[:cnt]`` in ascending order, values from ``flags``: the order of a
    full pass (later projections add spikes up in list order)."""
    if cnt > 64:
        _heapsort(out_i, cnt)
    else:   # insertion sort: few spikes, often in order already (no call, no allocation)
        for a in range(1, cnt):
            x = out_i[a]
            b = a - 1
            while b >= 0 and out_i[b] > x:
                out_i[b + 1] = out_i[b]
                b -= 1
            out_i[b + 1] = x
    for k in range(cnt):
        out_v[k] = flags[out_i[k]]


@njit(cache=True, no_cpython_wrapper=True)
def lazy_pass(q, t, T, tab, S, opts, ring_i, ring_v):
    """Neuron by neuron over population ``q``'s touched blocks at step ``t`` (``T`` steps,
    ``tab``: Tables, ``S``: State, ``opts``: Options): each neuron catches up on the leak of
    the steps it missed, is updated (:func:`neuron_step`) and queued for its next predicted
    crossing; spikes into ``ring_i/ring_v`` (views of n entries), sorted; returns their count.
    Same floats as the full pass: an untouched neuron's step there is ``beta*v + (0 + 0)``,
    the operation the catch-up repeats."""
    pop = tab.pops[q]
    sp = tab.spaces[pop.space]
    n, noff, a_off, bs, m_off = pop.n, pop.noff, sp.off, sp.bs, sp.boff
    v_reset, v_min = pop.v_reset, pop.v_min
    reset, tern, has_vmin = pop.reset, pop.ternary != 0, pop.has_vmin != 0
    leak, predict, powtab = opts.leak, opts.mode == MODE_PREDICT, tab.powtab
    if pop.pn:
        leak = LEAK_REPEAT   # no power table for per-neuron beta: step the leak
    head, wnext, wprev, wake_t, period = S.wake
    whole = S.acc.allt[pop.space]
    tlist, flags = S.acc.tlist, S.scr.flags
    lf = S.nrn.lfull[q]
    hq = head[q * T:(q + 1) * T]
    vr = v_min if has_vmin and v_reset < v_min else v_reset
    # views: loop indices from range(0, ...) need no negative-index wraparound
    accv = S.acc.acc[a_off:a_off + n]
    Vv, Uv = S.nrn.V[noff:noff + n], S.nrn.U[noff:noff + n]
    cv, Lv = S.nrn.cst[noff:noff + n], S.nrn.L[noff:noff + n]
    bv, tv = tab.nbeta[noff:noff + n], tab.ntheta[noff:noff + n]
    wt_v, wn_v, wp_v = wake_t[noff:noff + n], wnext[noff:noff + n], wprev[noff:noff + n]
    per_v = period[noff:noff + n]
    cnt = ZERO
    nb = 1 if whole else S.acc.tcount[pop.space]
    blen = n if whole else bs
    for k in range(nb):
        i0 = 0 if whole else tlist[m_off + k] * bs
        for j in range(blen):
            i = i0 + j
            c = cv[i]
            v = Vv[i]
            beta, theta = bv[i], tv[i]
            gap = t - 1 - max(Lv[i], lf)
            if gap > 0:
                v = _catch_up_one(v, c, gap, leak, powtab, q, beta, has_vmin, v_min)
            u, sp_, vn = neuron_step(v, accv[i] + c, beta, theta, reset, v_reset,
                                     has_vmin, v_min, tern)
            accv[i] = 0
            Vv[i] = vn
            Uv[i] = u
            Lv[i] = t
            if sp_ != 0:
                ring_i[cnt] = i
                flags[i] = sp_
                cnt += 1
            tw = wt_v[i]
            if tw >= 0:
                wake_remove(hq, wn_v, wp_v, wt_v, tw, i)
            if t + 1 < T:
                nprm = (beta, theta, reset, has_vmin, v_min, tern)
                d = _next_crossing(t, T, c, vn, sp_, vr, nprm, predict, per_v, i)
                if d > 0 and t + d < T:
                    wake_push(hq, wn_v, wp_v, wt_v, t + d, t + d, i)
    _sort_spikes(ring_i, ring_v, flags, cnt)
    return cnt


# how cuba_pass updates a population
CUBA_BY_NEURON, CUBA_FULL, CUBA_FULL_PREDICT_ALL, CUBA_FULL_UNPREDICTED = 0, 1, 2, 3
# after a full pass with large input, this many more full passes (about 1 ns a neuron each)
# without predictions before one predicts for every neuron (tens of ns a neuron): a
# population with input at most steps is then updated as every step
CUBA_PATIENCE = 8


@njit(cache=True, no_cpython_wrapper=True)
def cuba_pass(q, t, T, tab, S, how, ring_i, ring_v):
    """Update of a lazy current-based population ``q`` (no constant input, binary spikes,
    ``v_min < theta``) at step ``t`` of ``T``; its touched blocks include the due and
    recorded neurons.  ``how``:

    - ``CUBA_BY_NEURON``: neuron by neuron over the touched blocks, each catching up on the
      steps it missed (:func:`eventsim.kernels.cuba_free_steps`), then updated as
      :func:`eventsim.kernels.update_all_cuba` would;
    - ``CUBA_FULL``, ``CUBA_FULL_PREDICT_ALL``, ``CUBA_FULL_UNPREDICTED``: a full pass:
      every neuron behind catches up (:func:`eventsim.kernels.catch_up_cuba`), then one
      vectorised :func:`eventsim.kernels.update_all_cuba`.

    Then each touched neuron (every neuron with ``CUBA_FULL_PREDICT_ALL``, none with
    ``CUBA_FULL_UNPREDICTED``) is queued for its next crossing without input
    (:func:`eventsim.kernels.cuba_quiet`, else
    :func:`eventsim.kernels.cuba_next_crossing`; a queued wake-up is replaced).  An
    untouched neuron's trajectory is the one its last prediction stepped, so that prediction
    stands; after a pass with large input (the next steps are likely to update every
    neuron again) the caller runs full passes until one predicts for all.  Spikes into
    ``ring_i/ring_v`` (views of n entries), ascending; returns their count.  Same floats as
    an update at every step: a missed step is ``alpha * i + (0 + 0)``, ``beta * v + i``,
    which the catch-up repeats, and no missed step crosses (it would have been a wake-up)."""
    pop = tab.pops[q]
    sp = tab.spaces[pop.space]
    n, noff, a_off, bs, m_off = pop.n, pop.noff, sp.off, sp.bs, sp.boff
    v_reset, v_min = pop.v_reset, pop.v_min
    reset, has_vmin = pop.reset, pop.has_vmin != 0
    head, wnext, wprev, wake_t, _ = S.wake
    tlist, flags = S.acc.tlist, S.scr.flags
    nrn = S.nrn
    lf = nrn.lfull[q]
    hq = head[q * T:(q + 1) * T]
    accv = S.acc.acc[a_off:a_off + n]
    Vv, Uv, Iv = nrn.V[noff:noff + n], nrn.U[noff:noff + n], nrn.I[noff:noff + n]
    cv, Lv = nrn.cst[noff:noff + n], nrn.L[noff:noff + n]
    av, bv, tv = tab.nalpha[noff:noff + n], tab.nbeta[noff:noff + n], tab.ntheta[noff:noff + n]
    wt_v, wn_v, wp_v = wake_t[noff:noff + n], wnext[noff:noff + n], wprev[noff:noff + n]
    zero = tv[0] - tv[0]                # +0.0 in the model dtype (theta is finite)
    cnt = ZERO
    full = how != CUBA_BY_NEURON
    if full:
        if lf < t - 1:
            catch_up_cuba(pop, t, lf, nrn.V, nrn.I, nrn.L, nrn.cst, (tab.nalpha, tab.nbeta),
                          zero)
        update_all_cuba(pop, S.acc.acc, a_off, nrn.V, nrn.U, nrn.I, nrn.cst, flags,
                        (tab.nalpha, tab.nbeta, tab.ntheta))
        cnt = collect_spikes(flags, n, ring_i, ring_v, ZERO)
        nrn.lfull[q] = t
    H = T - 1 - t                       # steps left after this one
    if how == CUBA_FULL_UNPREDICTED or (full and H == 0):
        return cnt
    vfloor = max(0.0, np.float64(v_min)) if has_vmin else 0.0
    grow = np.exp(H * CUBA_ROUND) * CUBA_SLACK
    g_pop = cuba_geometric(pop.alpha, H) if pop.alpha == pop.alpha else -1.0
    whole = S.acc.allt[pop.space] or how == CUBA_FULL_PREDICT_ALL
    nb = 1 if whole else S.acc.tcount[pop.space]
    blen = n if whole else bs
    for k in range(nb):
        i0 = 0 if whole else tlist[m_off + k] * bs
        for j in range(blen):
            i = i0 + j
            alpha, beta, theta = av[i], bv[i], tv[i]
            if not full:
                v, ci = Vv[i], Iv[i]
                gap = t - 1 - max(Lv[i], lf)
                if gap > 0:
                    v, ci = cuba_free_steps(v, ci, gap, alpha, beta, has_vmin, v_min,
                                            zero + cv[i])
                ci = alpha * ci + (accv[i] + cv[i])
                u, sp_, vn = neuron_step(v, ci, beta, theta, reset, v_reset, has_vmin, v_min,
                                         False)
                accv[i] = 0
                Vv[i] = vn
                Iv[i] = ci
                Uv[i] = u
                Lv[i] = t
                if sp_ != 0:
                    ring_i[cnt] = i
                    flags[i] = sp_
                    cnt += 1
            tw = wt_v[i]
            if tw >= 0:
                wake_remove(hq, wn_v, wp_v, wt_v, tw, i)
            if H > 0:
                g = g_pop if g_pop >= 0 else cuba_geometric(alpha, H)
                if not cuba_quiet(Vv[i], Iv[i], theta, vfloor, g, grow):
                    d = cuba_next_crossing(Vv[i], Iv[i], H, (alpha, beta, theta, has_vmin,
                                                             v_min), zero + cv[i],
                                           (vfloor, g, grow))
                    if d > 0:
                        wake_push(hq, wn_v, wp_v, wt_v, t + d, t + d, i)
    if not full:
        _sort_spikes(ring_i, ring_v, flags, cnt)
    return cnt


@njit(cache=True, inline="always")
def _catch_up_one(v, c, gap, leak, powtab, q, beta, has_vmin, v_min):
    """A lazy neuron at ``v`` (constant input ``c``) brought over the ``gap`` steps it
    missed: one multiplication by ``powtab[q, gap]`` (``LEAK_POWER``, no constant input),
    else :func:`free_steps` (skipped when there is nothing to step: ``c == 0, beta == 1``)."""
    if c == 0 and leak == LEAK_POWER:
        v = v * powtab[q, gap]
        if has_vmin and v < v_min:
            v = v_min
    elif c != 0 or beta != 1:
        v = free_steps(v, c, gap, beta, has_vmin, v_min)
    return v


@njit(cache=True, inline="always")
def _next_crossing(t, T, c, vn, sp, vr, nprm, predict, per_v, i):
    """Steps after ``t`` (of ``T``) until neuron ``i``, just updated (``vn``, spike ``sp``,
    constant input ``c``), crosses without input, or <= 0: the next step when ``c == 0``
    (only then can it cross at once); with ``predict``, by :func:`predict_steps` (a
    hard-reset neuron's period from ``vr`` is cached in ``per_v[i]``).  ``nprm``: the
    neuron's ``(beta, theta, reset, has_vmin, v_min, ternary)``."""
    beta, theta, reset, has_vmin, v_min, tern = nprm
    if c == 0:
        un = beta * vn + c
        if un >= theta or (tern and un <= -theta):
            return 1
        return -1
    if not predict:
        return -1
    if sp != 0 and reset == HARD_RESET:
        d = per_v[i]
        if d == 0:
            d = predict_steps(vr, c, T, beta, theta, has_vmin, v_min, tern)
            per_v[i] = d
        return d
    return predict_steps(vn, c, T - 1 - t, beta, theta, has_vmin, v_min, tern)


@njit(cache=True, inline="always")
def update_every(pop, src, off, V, U, cst, aux, dst, cuba):
    """Every neuron of population ``pop`` (record) updated at once, without catch-up (it is
    updated at every step): input ``src[off:]``, state ``V/U/cst``; ``aux = (flags, powtab,
    leak, nbeta, ntheta)``; spikes to ``dst = (out_i, out_v, rbase)``; ``cuba = (nalpha,
    I)``: what a current-based population (``pop.cuba``) also reads and writes (every
    neuron's alpha, the synaptic currents); returns the spike count."""
    flags, _, _, nbeta, ntheta = aux
    out_i, out_v, rbase = dst
    if pop.cuba:
        update_all_cuba(pop, src, off, V, U, cuba[1], cst, flags, (cuba[0], nbeta, ntheta))
    elif pop.pn:
        update_all_per_neuron(pop, src, off, V, U, cst, flags, nbeta, ntheta)
    else:
        update_all(pop, src, off, V, U, cst, flags)
    return collect_spikes(flags, pop.n, out_i, out_v, rbase)


@njit(cache=True, no_cpython_wrapper=True)
def update_population(q, t, T, tab, S, opts, out_i, out_v, rbase):
    """Phase 3 for a lazily updated spiking population ``q`` at step ``t`` that is neither
    :func:`full_pass_ready` nor :func:`idle` (``T`` steps; ``tab``: Tables; ``S``: State;
    ``opts``: Options; the drivers update every-step populations themselves): the due and
    recorded neurons join the touched ones, then a full pass runs when enough are touched
    (1/full_div; never for driven populations or ``v_min >= theta``), else a lazy pass.
    Spikes to ``out_i/out_v[rbase:]`` (room for n) in ascending neuron order; returns their
    count and the number of neurons updated."""
    pop = tab.pops[q]
    s, n = pop.space, pop.n
    sp = tab.spaces[s]
    acc, mark, tlist, tcount, allt = S.acc
    _, driven, full_div, vmin_hi, _, _, unpredicted = S.modes
    big_input = allt[s] or tcount[s] * sp.bs * full_div[q] >= n
    _touch_due(q, t, T, tab, S)
    updated = n if allt[s] else tcount[s] * sp.bs
    if pop.cuba:
        how = CUBA_BY_NEURON
        if big_input:   # predict only after CUBA_PATIENCE full passes without large input
            how = CUBA_FULL_UNPREDICTED
            unpredicted[q] = CUBA_PATIENCE + 1
        elif unpredicted[q] > 1:
            how = CUBA_FULL_UNPREDICTED
            unpredicted[q] -= 1
        elif unpredicted[q] == 1:
            how = CUBA_FULL_PREDICT_ALL
            unpredicted[q] = 0
        elif allt[s] or tcount[s] * sp.bs * full_div[q] >= n:
            how = CUBA_FULL
        cnt = cuba_pass(q, t, T, tab, S, how, out_i[rbase:rbase + n], out_v[rbase:rbase + n])
        updated = updated if how == CUBA_BY_NEURON else n
    elif not driven[q] and not vmin_hi[q] and (allt[s] or tcount[s] * sp.bs * full_div[q] >= n):
        updated = n
        cnt = full_pass(q, t, T, pop, S.nrn, S.wake, acc, sp.off, (out_i, out_v, rbase),
                        (S.scr.flags, tab.powtab, opts.leak, tab.nbeta, tab.ntheta))
    else:
        cnt = lazy_pass(q, t, T, tab, S, opts, out_i[rbase:rbase + n], out_v[rbase:rbase + n])
    _clear_marks(s, sp.boff, mark, tlist, tcount, allt)
    return cnt, updated


@njit(cache=True, inline="always")
def record_membranes(t, b, pop, U, rec_idx, mem_out):
    """``mem_out[t, b, k] = u`` of the recorded neurons of population ``pop``."""
    for k in range(pop.recoff, pop.recoff + pop.recn):
        mem_out[t, b, k] = U[pop.noff + rec_idx[k]]


@njit(cache=True, no_cpython_wrapper=True)
def time_major_sample(b, b0, T, tab, inp, S, opts, out, ocnt, shared):
    """Driver of the time-major schedule for sample ``b`` (after its set-up; ``T`` steps,
    kernel call from ``b0``; ``tab``: Tables, ``inp``: Inputs, ``S``: State, ``opts``:
    Options, ``out``: Output holding ``ocnt`` spikes): :func:`time_major_steps` until the
    last step, growing ``out`` whenever it has no room for a step in which every neuron
    spikes.  Returns ``(out, ocnt)``."""
    room = ZERO
    for q in range(tab.pops.shape[0]):
        if tab.pops[q].kind == POP_SPIKING:
            room += tab.pops[q].n
    t, k0 = ZERO, inp.ev_ptr[b]
    while t < T:
        if ocnt + room > out.neuron.shape[0]:
            out = grow_output(out, ocnt, room)
        t, ocnt, k0 = time_major_steps((b, b0, T), t, tab, inp, S, opts, out, ocnt, k0, room,
                                       shared)
    return out, ocnt


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def time_major_steps(bt, t, tab, inp, S, opts, out, ocnt, k0, room, shared):
    """Steps ``t, t + 1, ...`` of sample ``b`` (``bt = (b, b0, T)``; arguments as
    :func:`time_major_sample`'s; input events from ``k0``) while ``out`` has room for
    ``room`` more spikes: the drive of the step, then :func:`time_major_step`.  Pipelined
    (``shared``: Shared, ``sync[SYNC_MODE]`` set), step ``t`` first needs the spikes of
    ``t - 2`` pushed (:func:`need_job`), pushes only the delay-1 segments of bundles and
    marks itself done in ``sync[SYNC_MAIN]``.  Returns
    ``(t, ocnt, k0)`` where it stopped.  Compiled without reference counting
    (``_nrt=False``: it neither allocates nor returns an array), as is all it calls."""
    b, b0, T = bt
    in_t, pend, cap = inp.ev_t, inp.ev_ptr[b + 1], out.neuron.shape[0]
    sync = shared.sync
    piped = sync[SYNC_MODE] != 0
    d_hi = D_HELPER if piped else D_ALL
    D = delivery(tab, S)
    while t < T and ocnt + room <= cap:
        g = (b - b0) * T + t + 1                     # this step, counted from 1
        if piped and t > 0:   # the spikes of t - 2 pushed (job g - 1)
            need_job(g - 1, T, tab, shared, D)
        if inp.drive_mode == DRIVE_STEPS and t > 0:
            set_drive(t, b - b0, tab, inp.drive, S.nrn.cst)
        k1 = step_end(in_t, k0, pend, t)
        ocnt = time_major_step((t, b, b - b0), T, tab, inp, S, opts, out, ocnt, (k0, k1, d_hi))
        if piped:
            _store_release(sync, np.int64(SYNC_MAIN), g)
        k0 = k1
        t += 1
    return t, ocnt, k0


@njit(cache=True, inline="always")
def time_major_step(at, T, tab, inp, S, opts, out, ocnt, kd):
    """Step ``t`` of sample ``b`` in the time-major schedule (``at = (t, b, b - b0)``;
    ``T`` steps; ``tab``: Tables, ``inp``: Inputs (this step's events ``k0:k1``), ``S``:
    State, ``opts``: Options; ``out``: Output with room for every spike after ``ocnt``;
    ``kd = (k0, k1, d_hi)``: this step's input events ``k0:k1``, bundle segments with delays
    below ``d_hi`` pushed):
    the delayed connections, then every population's edge, update and emission.  Returns
    the new spike count."""
    t, b, bb = at
    k0, k1, d_hi = kd
    syn, prof, D = S.scr.syn, S.scr.prof, delivery(tab, S)
    on, Q, stamp = opts.profile, tab.pops.shape[0], bb * T + t + 1
    c0, ev = (_cycles(), syn.sum()) if on else (0, 0)
    if tab.bundles.shape[0] > 0 or tab.edges.shape[0] > Q:
        deliver_delayed(t, T, tab, S, D, stamp, d_hi)
    if on:
        c0 = _lap(prof, Q, PH_DELIVER, c0, syn.sum() - ev, 0)
    for q in range(Q):
        ocnt, c0 = pop_step(q, at, T, tab, inp, S, opts, out, ocnt, (k0, k1, stamp, c0))
    return ocnt


@njit(cache=True, inline="always")
def pop_step(q, at, T, tab, inp, S, opts, out, ocnt, kc):
    """Population ``q``'s part of step ``t`` in the time-major schedule (``at``, ``T``,
    ``tab``, ``inp``, ``S``, ``opts``, ``out``, ``ocnt`` as :func:`time_major_step`'s;
    ``kc = (k0, k1, stamp, c0)``: the step's input events ``k0:k1``, the max-pooling stamp,
    the profile's cycle count so far): its edge, update and emission.  Returns
    ``(ocnt, c0)``."""
    t, b, bb = at
    k0, k1, stamp, c0 = kc
    pops, spaces, rec_idx, rperm = tab.pops, tab.spaces, tab.rec_idx, tab.readout_perm
    nrn, wake = S.nrn, S.wake
    V, U, cst, lfull, head = nrn.V, nrn.U, nrn.cst, nrn.lfull, wake.head
    acc, mark, tlist, tcount, allt = S.acc
    lazy, driven, full_div, vmin_hi, _, _, unpredicted = S.modes
    ring_idx, ring_val, ringc = S.ring
    prof, D = S.scr.prof, delivery(tab, S)
    aux = (S.scr.flags, tab.powtab, opts.leak, tab.nbeta, tab.ntheta)
    on = opts.profile
    counts, o_neuron, o_value, readout, mem = out
    pop = pops[q]
    s, sp = pop.space, spaces[pop.space]
    if q == 0:       # the input's events of step t
        ev = run_edge(D, q, inp.ev_i, inp.ev_v, k0, k1, stamp) if k1 > k0 else 0
    else:            # the source's spikes
        src = pops[q - 1]
        ka = src.ring + (t % src.R) * src.n
        kb = ka + ringc[src.ringc + t % src.R]
        ev = run_edge(D, q, ring_idx, ring_val, ka, kb, stamp) if kb > ka else 0
    if on:
        c0 = _lap(prof, q, PH_DELIVER, c0, ev, 0)
    rbase = pop.ring + (t % pop.R) * pop.n
    c, nu = 0, pop.n
    if pop.kind != POP_SPIKING:
        update_readout(t, b, pop, sp, acc, V, cst, rperm, readout)
        if tcount[s] > 0 or allt[s]:
            _clear_marks(s, sp.boff, mark, tlist, tcount, allt)
    elif full_pass_ready(pop, lazy[q], driven[q], vmin_hi[q], full_div[q], head[q * T + t],
                         allt[s], tcount[s] * sp.bs):
        c = full_pass(q, t, T, pop, nrn, wake, acc, sp.off, (ring_idx, ring_val, rbase), aux)
        _clear_marks(s, sp.boff, mark, tlist, tcount, allt)
    elif not lazy[q]:   # every neuron every step
        c = update_every(pop, acc, sp.off, V, U, cst, aux, (ring_idx, ring_val, rbase),
                         (tab.nalpha, nrn.I))
        lfull[q] = t
        _clear_marks(s, sp.boff, mark, tlist, tcount, allt)
    elif idle(pop, lazy[q] and unpredicted[q] == 0, head[q * T + t], allt[s], tcount[s]):
        nu = 0
    else:
        c, nu = update_population(q, t, T, tab, S, opts, ring_idx, ring_val, rbase)
    if pop.kind == POP_SPIKING:
        ringc[pop.ringc + t % pop.R] = c
    if on:
        c0 = _lap(prof, q, PH_UPDATE, c0, 0, nu)
    if c > 0:
        counts[bb, t, q] = c
        copy_spikes(o_neuron, o_value, ocnt, ring_idx, ring_val, rbase, c)
        ocnt += c
    if pop.recn > 0:
        record_membranes(t, b, pop, U, rec_idx, mem)
    if on:
        c0 = _lap(prof, q, PH_EMIT, c0, c, 0)
    return ocnt, c0


@njit(cache=True, nogil=True)
def run_time_major(tab, inp, T, b0, b1, opts, readout_out, mem_out):
    """Driver of the time-major schedule (any network; arguments and result as
    :func:`run_batch`'s), one thread: :func:`time_major`."""
    return time_major(tab, inp, T, b0, b1, opts, readout_out, mem_out, new_shared(tab, ZERO))


@njit(cache=True, nogil=True)
def run_time_pipelined(tab, inp, T, b0, b1, opts, readout_out, mem_out, shared):
    """The main thread of the pipelined time-major schedule (``shared``: Shared, with
    ``sync[SYNC_MODE] = 1``; :func:`delay_helper` runs on the other thread): :func:`time_major`."""
    return time_major(tab, inp, T, b0, b1, opts, readout_out, mem_out, shared)


@njit(cache=True, no_cpython_wrapper=True)
def time_major(tab, inp, T, b0, b1, opts, readout_out, mem_out, shared):
    """The time-major schedule (arguments and result as :func:`run_batch`'s; ``shared``:
    Shared): for each sample, set-up (phase 1), then :func:`time_major_sample`.  Pipelined
    (``shared.sync[SYNC_MODE]``), the set-up of a sample waits for the helper thread to
    finish the previous one."""
    S, out = begin(tab, T, b0, b1, opts, readout_out, mem_out, ZERO, shared)
    ocnt = ZERO
    sync = shared.sync
    for b in range(b0, b1):
        if sync[SYNC_MODE] != 0 and b > b0:   # the previous sample's jobs done
            need_job((b - b0) * T, T, tab, shared, delivery(tab, S))
        c0 = _cycles() if opts.profile else 0
        sample_setup(b, b0, T, opts, tab, inp, S)
        if opts.profile:
            _lap(S.scr.prof, tab.pops.shape[0], PH_SETUP, c0, 0, 0)
        out, ocnt = time_major_sample(b, b0, T, tab, inp, S, opts, out, ocnt, shared)
    return (out.counts, out.neuron[:ocnt].copy(), out.value[:ocnt].copy(), S.scr.syn,
            S.scr.prof)


@njit(cache=True, nogil=True)
def delay_helper(tab, shared, syn, T, b0, b1):
    """The helper thread of the pipelined time-major schedule (``tab``: Tables, ``shared``:
    Shared, samples ``b0 <= b < b1`` of ``T`` steps; synaptic events counted in ``syn``).

    Job ``j = (b - b0) * T + t + 1`` (:func:`delivery_job`) pushes the spikes of step
    ``t - 1`` through the bundle segments with delays >= 2 (slots ``t + 1`` and later), once
    the main thread has finished step ``t - 1`` and job ``j - 1`` is done.  Jobs are
    claimed in order by compare-and-swap on ``sync[SYNC_CLAIMED]`` and their completion
    published in ``sync[SYNC_HELPER]``; the main thread needs job ``j - 1`` done before its
    step ``j`` and runs it itself if this thread has not claimed it by then (a helper
    descheduled on a busy machine costs no more than one thread's work).  Meanwhile the
    main thread pushes the delay-1 segments into slot ``t`` and hands slot ``t`` on, so
    every slot receives its additions in the one-thread order.  Returns False if stopped
    (``sync[SYNC_ABORT]``)."""
    sync = shared.sync
    D = _job_delivery(tab, syn)
    for j in range(1, (b1 - b0) * T + 1):
        if not wait_progress(sync, np.int64(SYNC_MAIN), j - 1):
            return False
        if _claim(sync, np.int64(SYNC_CLAIMED), j - 1):
            delivery_job(j, T, tab, shared, D)
            _store_release(sync, np.int64(SYNC_HELPER), j)
        elif not wait_progress(sync, np.int64(SYNC_HELPER), j):   # the main thread ran it
            return False
    return True


@njit(cache=True, inline="always")
def _job_delivery(tab, syn):
    """A Delivery group with the fields :func:`delay_push` reads (``wi``, ``wf``, ``syn``)."""
    dt = tab.const_all.dtype
    z = np.zeros(1, np.int64)
    return Delivery(tab.stages, tab.spaces, tab.edges, tab.edge_stage, tab.wf, tab.wi,
                    np.zeros(1, dt), np.zeros(1, np.uint8), z, z, np.zeros(1, np.bool_),
                    np.zeros(1, np.bool_), z, np.zeros(1, dt), z, z, syn)


@njit(cache=True, no_cpython_wrapper=True)
def delivery_job(j, T, tab, shared, D):
    """Job ``j`` of the pipelined schedule (see :func:`delay_helper`; ``D``: the Delivery
    group whose ``syn`` counts the events): step ``t = (j - 1) % T`` pushes the spikes of
    ``t - 1`` (nothing at ``t = 0``) through every bundle's segments with delays >= 2."""
    t = (j - 1) % T
    if t == 0:
        return
    ring_idx, ring_val, ringc = shared.ring
    pops, bundles, ring_div = tab.pops, tab.bundles, shared.ring_div
    for nb in range(bundles.shape[0]):
        bun = bundles[nb]
        ps = pops[bun.src]
        slot = (t - 1) % ps.R
        c = ringc[ps.ringc + slot]
        if c > 0:
            base = ps.ring + slot * ps.n
            delay_push(shared.dring, bun, D, (ring_idx, ring_val, base, base + c), t - 1, T,
                       slot_cap(bun.n_t, ring_div[bun.tgt]), (D_HELPER, D_ALL))


@njit(cache=True, no_cpython_wrapper=True)
def need_job(j, T, tab, shared, D):
    """The main thread's side of :func:`delay_helper`: job ``j`` (>= 1) done, by this thread
    (counting into ``D.syn``) if the helper has not claimed it, else by waiting."""
    sync = shared.sync
    if _load_acquire(sync, np.int64(SYNC_HELPER)) >= j:
        return
    if _claim(sync, np.int64(SYNC_CLAIMED), j - 1):
        delivery_job(j, T, tab, shared, D)
        _store_release(sync, np.int64(SYNC_HELPER), j)
    else:
        wait_progress(sync, np.int64(SYNC_HELPER), j)


@njit(cache=True, no_cpython_wrapper=True)
def window_plan(q, tab, in_sorted, T):
    """Layer-major: ``(g, steps)`` when population ``q``'s edge is one dense stage ``g``
    delivered source-major over windows of ``steps`` steps (input events need each step's
    events in ascending order, ``in_sorted``), else ``(-1, 0)``."""
    ed = tab.edges[q]
    g = tab.edge_stage[ed.soff]
    if ed.ns != 1 or tab.stages[g].kind != K_DENSE or not (q > 0 or in_sorted):
        return -1, 0
    n = tab.spaces[tab.stages[g].dst].n
    return g, min(T, max(1, window_size(tab, T) // n))


@njit(cache=True, no_cpython_wrapper=True)
def window_size(tab, T):
    """Values of the layer-major window: the largest target of a one-dense-stage edge,
    times the steps that fit ``sizes.window`` (at least one step)."""
    n = 0
    for e in range(tab.edges.shape[0]):
        g = tab.edge_stage[tab.edges[e].soff]
        if tab.edges[e].ns == 1 and tab.stages[g].kind == K_DENSE:
            n = max(n, tab.spaces[tab.stages[g].dst].n)
    return max(n, min(tab.sizes[0].window, T * n))


@njit(cache=True, no_cpython_wrapper=True)
def layer_pass(q, b, b0, T, tab, inp, S, opts, out, lm):
    """Population ``q`` over all steps of sample ``b`` in the layer-major schedule (arguments
    as :func:`time_major_sample`'s; ``lm``: the sample's SpikeList, population q's spikes to
    be appended from entry ``lm.start[q, 0]``): its edge delivers its source's spikes (input
    events, or population q - 1's in ``lm``), by windows of steps when it is one dense stage
    (for the input's events: when each step's are in ascending order).  The steps run in
    spans (a window, else at most ``sizes.spikecap / n`` steps), each with its window filled
    and room for every neuron to spike at every step (:func:`layer_steps`).  Returns
    ``(lm, entries)``."""
    n, bb = tab.pops[q].n, b - b0
    src_t, src_i, src_v, in_sorted = _layer_input(q, b, inp, lm)
    g, n_win = window_plan(q, tab, in_sorted, T)
    span = n_win if n_win > 0 else max(1, min(T, tab.sizes[0].spikecap // max(n, 1)))
    lm_n, k1, pend = lm.start[q, 0], inp.ev_ptr[b], inp.ev_ptr[b + 1]
    for t0 in range(0, T, span):
        t1 = min(T, t0 + span)
        if n_win > 0:
            k0, _, kw = _layer_source(q, t0, T, n_win, src_t, pend, lm.start, out.counts[bb], k1)
            fill_window(tab, g, t0, (src_t, src_i, src_v), k0, kw, S.scr.win)
        lm = _room(lm, lm_n, (t1 - t0) * n)
        lm_n, k1 = layer_steps((q, b, bb, T, g, n_win), (t0, t1, lm_n, k1), tab, inp, S, opts,
                               out, lm, (src_t, src_i, src_v))
    if q + 1 < tab.pops.shape[0]:
        lm.start[q + 1, 0] = lm_n
    return lm, lm_n


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def layer_steps(lp, cur, tab, inp, S, opts, out, lm, src):
    """Steps ``t0 <= t < t1`` of :func:`layer_pass` (``lp = (q, b, b - b0, T, g, n_win)``:
    the population, sample, steps and window plan; ``cur = (t0, t1, entries, k)``: the span,
    the SpikeList's entries so far (``lm`` has room for every neuron at every step of the
    span) and the first input event of step t0; the span is one window when ``n_win > 0``,
    already filled; ``src = (ev_t, ev_idx, ev_val)``: the spikes
    feeding the edge).  Returns ``(entries, k)`` after the span.  Compiled without
    reference counting (``_nrt=False``: it neither allocates nor returns an array)."""
    q, b, bb, T, g, n_win = lp
    t0, t1, lm_n, k1 = cur
    src_t, src_i, src_v = src
    pop = tab.pops[q]
    s, sp = pop.space, tab.spaces[pop.space]
    nrn, wake = S.nrn, S.wake
    V, U, cst, lfull, head = nrn.V, nrn.U, nrn.cst, nrn.lfull, wake.head
    acc, mark, tlist, tcount, allt = S.acc
    lazy, driven, full_div, vmin_hi, _, _, unpredicted = S.modes
    win, syn, prof = S.scr.win, S.scr.syn, S.scr.prof
    aux, D = (S.scr.flags, tab.powtab, opts.leak, tab.nbeta, tab.ntheta), delivery(tab, S)
    on, counts = opts.profile, out.counts[bb]
    drive_q = inp.drive_mode == DRIVE_STEPS and q == tab.edges[0].tgt
    start, out_t, out_i, out_v = lm.start, lm.t, lm.i, lm.v
    c0 = _cycles() if on else 0
    for t in range(t0, t1):
        if drive_q and t > 0:
            set_drive(t, bb, tab, inp.drive, cst)
        k0, k1, _kw = _layer_source(q, t, T, n_win, src_t, inp.ev_ptr[b + 1], start, counts, k1)
        wrow = -1
        if n_win > 0:   # the window was filled by layer_pass
            wrow = window_row(t, n_win, k1 - k0, sp.n, allt, s)
            ev = (k1 - k0) * sp.n
            syn[g] += ev
        else:
            ev = run_edge(D, q, src_i, src_v, k0, k1, bb * T + t + 1) if k1 > k0 else 0
        if on:
            c0 = _lap(prof, q, PH_DELIVER, c0, ev, 0)
        start[q, t] = lm_n
        c, nu = 0, pop.n
        src_a, src_off = (win, wrow) if wrow >= 0 else (acc, sp.off)
        if pop.kind == POP_SPIKING and full_pass_ready(
                pop, lazy[q], driven[q], vmin_hi[q], full_div[q], head[q * T + t], allt[s],
                tcount[s] * sp.bs):
            c = full_pass(q, t, T, pop, nrn, wake, src_a, src_off, (out_i, out_v, lm_n), aux)
            _clear_marks(s, sp.boff, mark, tlist, tcount, allt)
        elif pop.kind == POP_SPIKING and not lazy[q]:   # every neuron every step
            c = update_every(pop, src_a, src_off, V, U, cst, aux, (out_i, out_v, lm_n),
                             (tab.nalpha, nrn.I))
            lfull[q] = t
            _clear_marks(s, sp.boff, mark, tlist, tcount, allt)
        else:
            c, nu = _update_rest(q, t, T, tab, S, opts, (out_i, out_v, lm_n), (b, wrow), out.readout)
        if on:
            c0 = _lap(prof, q, PH_UPDATE, c0, 0, nu)
        counts[t, q] = c
        for k in range(lm_n, lm_n + c):
            out_t[k] = t
        lm_n += c
        if pop.recn > 0:
            record_membranes(t, b, pop, U, tab.rec_idx, out.mem)
        if on:
            c0 = _lap(prof, q, PH_EMIT, c0, c, 0)
    return lm_n, k1


@njit(cache=True, inline="always")
def _update_rest(q, t, T, tab, S, opts, dst, bw, readout):
    """Layer-major phase 3 of population ``q`` at step ``t`` when it is not updated by a
    pass over every neuron (``T`` steps; ``tab``: Tables; ``S``: State; ``opts``: Options;
    spikes to ``dst = (out_i, out_v, base)``; ``bw = (b, wrow)``: the sample and the
    window row holding the step's input, -1: none; ``readout``: Output.readout): the row goes to the accumulator, then
    the readout integrator, nothing (:func:`idle`) or :func:`update_population`.  Returns
    the spike count and the number of neurons updated."""
    b, wrow = bw
    pop = tab.pops[q]
    s = pop.space
    sp = tab.spaces[s]
    acc, mark, tlist, tcount, allt = S.acc
    if wrow >= 0:   # the row to the accumulator: not read in place
        _hand_off(acc, sp.off, S.scr.win, wrow, sp.n)
    if pop.kind != POP_SPIKING:
        update_readout(t, b, pop, sp, acc, S.nrn.V, S.nrn.cst, tab.readout_perm, readout)
        if tcount[s] > 0 or allt[s]:
            _clear_marks(s, sp.boff, mark, tlist, tcount, allt)
        return 0, pop.n
    if idle(pop, S.modes.lazy[q] and S.modes.unpredicted[q] == 0, S.wake.head[q * T + t],
            allt[s], tcount[s]):
        return 0, 0
    out_i, out_v, base = dst
    return update_population(q, t, T, tab, S, opts, out_i, out_v, base)


@njit(cache=True, inline="always")
def _layer_input(q, b, inp, lm):
    """Layer-major: the arrays ``(ev_t, ev_idx, ev_val)`` holding the spikes that feed
    population ``q`` in sample ``b`` (the input's events, or population q - 1's in the
    SpikeList ``lm``: its arrays now, which stay valid when ``lm`` grows, since growing
    copies) and whether each step's events are in ascending index order."""
    if q == 0:
        return (inp.ev_t, inp.ev_i, inp.ev_v,
                _steps_sorted(inp.ev_t, inp.ev_i, inp.ev_ptr[b], inp.ev_ptr[b + 1]))
    return lm.t, lm.i, lm.v, True


@njit(cache=True, inline="always")
def _layer_source(q, t, T, n_win, ev_t, pend, start, counts, k_prev):
    """Layer-major: where the spikes feeding population ``q``'s edge at step ``t`` are, as
    ``(k0, k1, kw)``: entries ``k0:k1`` (q == 0: the input's events of the step, from
    ``k_prev``, steps ``ev_t``, the sample's last at ``pend``; else population q - 1's in the
    sample's SpikeList: ``start`` and ``counts [T, Q]``), and ``kw``: the end of those of
    the window starting at ``t`` (``n_win`` steps; 0: none)."""
    if q == 0:
        k0 = k_prev
        k1 = step_end(ev_t, k0, pend, t)
        kw = k1
        if n_win > 0 and t % n_win == 0:
            kw = step_end(ev_t, k0, pend, min(T, t + n_win) - 1)
        return k0, k1, kw
    k0 = start[q - 1, t]
    k1 = k0 + counts[t, q - 1]
    kw = k1
    if n_win > 0 and t % n_win == 0:
        t1 = min(T, t + n_win)
        kw = start[q - 1, t1 - 1] + counts[t1 - 1, q - 1]
    return k0, k1, kw


@njit(cache=True, no_cpython_wrapper=True)
def _steps_sorted(ev_t, ev_i, p, pend):
    """Whether each step's events ``p:pend`` are in ascending index order."""
    for k in range(p + 1, pend):
        if ev_t[k] == ev_t[k - 1] and ev_i[k] < ev_i[k - 1]:
            return False
    return True


@njit(cache=True, nogil=True)
def run_layer_major(tab, inp, T, b0, b1, opts, readout_out, mem_out):
    """Driver of the layer-major schedule (feed-forward networks; arguments and result as
    :func:`run_batch`'s): for each sample, set-up, then population after population over all
    steps (:func:`layer_pass`); the sample's spikes are listed in (q, t) order."""
    S, out = begin(tab, T, b0, b1, opts, readout_out, mem_out, window_size(tab, T),
                   new_shared(tab, ZERO))
    Q = tab.pops.shape[0]
    dt = tab.const_all.dtype
    lm = SpikeList(np.empty(1024, np.int64), np.empty(1024, np.int64), np.empty(1024, dt),
                   np.zeros((Q, T), np.int64))
    ocnt = ZERO
    for b in range(b0, b1):
        c0 = _cycles() if opts.profile else 0
        sample_setup(b, b0, T, opts, tab, inp, S)
        if opts.profile:
            _lap(S.scr.prof, Q, PH_SETUP, c0, 0, 0)
        lm.start[0, 0] = 0
        lm_n = ZERO
        for q in range(Q):
            lm, lm_n = layer_pass(q, b, b0, T, tab, inp, S, opts, out, lm)
        if ocnt + lm_n > out.neuron.shape[0]:
            out = grow_output(out, ocnt, lm_n)
        copy_spikes(out.neuron, out.value, ocnt, lm.i, lm.v, ZERO, lm_n)
        ocnt += lm_n
    return (out.counts, out.neuron[:ocnt].copy(), out.value[:ocnt].copy(), S.scr.syn,
            S.scr.prof)


@njit(cache=True, no_cpython_wrapper=True)
def begin(tab, T, b0, b1, opts, readout_out, mem_out, n_win, shared):
    """The State (``n_win`` values of layer-major window; the arrays of ``shared``: Shared)
    and the Output of a kernel call (arguments as :func:`run_batch`'s).  The spike buffer is sized for the worst case (every
    neuron every step) up to a limit; pages are only touched when written, and it grows by
    doubling past the limit."""
    Q = tab.pops.shape[0]
    S = new_state(tab, T, opts.leak, n_win, shared)
    n_spiking = 0
    for q in range(Q):
        if tab.pops[q].kind == POP_SPIKING:
            n_spiking += tab.pops[q].n
    cap = max(16, min(n_spiking * T * (b1 - b0), tab.sizes[0].spikecap))
    out = Output(np.zeros((b1 - b0, T, Q), np.int32), np.empty(cap, np.int32),
                 np.empty(cap, np.int8), readout_out, mem_out)
    return S, out


def run_batch(tab, inp, T, b0, b1, opts, readout_out, mem_out, pipeline=False):
    """Simulate samples ``b0 <= b < b1`` for ``T`` steps (plain Python: it picks the
    driver, a Numba function that releases the GIL).

    ``tab``: Tables (``eventsim.tables``); ``inp``: Inputs; ``opts``: Options (constant
    drive mode, leak, schedule, profile).  Outputs: ``readout_out[t, b, :]``,
    ``mem_out[t, b, :]`` (recorded neurons, u before reset); returns ``(counts [b1-b0, T, Q]
    int32, neuron int32, value int8, synaptic events per stage, profile counters
    [Q + 1, N_PHASES, 3])``: the spikes of population q at step t of sample b are the next
    ``counts[b - b0, t, q]`` entries of ``(neuron, value)`` (ascending internal index, the
    order in which the population's projections add them up), taken in (b, t, q) order, or
    in (b, q, t) order when the layer-major schedule ran (see ``kernels.split_spikes``).

    ``SCHEDULE_LAYER`` (valid only without bundles and delayed edges) runs
    :func:`run_layer_major`, else :func:`run_time_major`, or with ``pipeline`` and a bundle
    with delays of 2 steps or more (:func:`pipelines`), :func:`run_pipelined` (two threads,
    the same results).  Each driver is compiled on first use: a program that runs one
    schedule never compiles the other."""
    layer_major = (opts.schedule == SCHEDULE_LAYER and tab.bundles.shape[0] == 0
                   and tab.edges.shape[0] == tab.pops.shape[0])
    args = (tab, inp, T, np.int64(b0), np.int64(b1), opts, readout_out, mem_out)
    if layer_major:
        return run_layer_major(*args)
    if pipeline and pipelines(tab):
        return run_pipelined(*args)
    return run_time_major(*args)


def pipelines(tab) -> bool:
    """Whether the pipelined schedule has work for its helper thread: some bundle has a
    segment with a delay of 2 steps or more (``tab``: Tables)."""
    for bun in tab.bundles:
        seg = tab.wi[bun["seg"]:bun["seg"] + 2 * bun["nseg"]:2]
        if np.any(seg >= D_HELPER):
            return True
    return False


def shared_arrays(tab, pipelined: bool):
    """:func:`new_shared` in NumPy (the same arrays and dtypes), for a kernel call whose
    threads share them."""
    sz = tab.sizes[0]
    dt = tab.const_all.dtype
    sync = np.zeros(SYNC_LEN, np.int64)
    sync[SYNC_MODE] = int(pipelined)
    return Shared(SpikeRing(np.zeros(int(sz["ring"]), np.int64), np.zeros(int(sz["ring"]), dt),
                            np.zeros(int(sz["ringc"]), np.int64)),
                  DelayRing(np.zeros(int(sz["bring"]), dt), np.zeros(int(sz["blist"]), np.int32),
                            np.zeros(int(sz["bringc"]), np.int64)),
                  np.zeros(tab.pops.shape[0], np.int64), sync)


def run_pipelined(tab, inp, T, b0, b1, opts, readout_out, mem_out):
    """The pipelined time-major schedule on two threads (arguments and result as
    :func:`run_batch`'s; time-major networks only): this thread runs
    :func:`run_time_pipelined`, every step but the bundle segments with delays >= 2, which
    a helper thread (:func:`delay_helper`) pushes one step behind; both release the GIL
    and wait for each other through ``Shared.sync`` (spin, then yield the core).  Every
    sum is formed in the one-thread order, so results are bit-identical to
    :func:`run_time_major`'s; the helper's synaptic event counts are added to the result's.
    If either thread fails the other is stopped and the error raised."""
    shared = shared_arrays(tab, True)
    syn = np.zeros(tab.stages.shape[0], np.int64)
    failure = []

    def helper():
        try:
            delay_helper(tab, shared, syn, T, b0, b1)
        except BaseException as e:   # noqa: BLE001 (re-raised by the main thread)
            failure.append(e)
            shared.sync[SYNC_ABORT] = 1

    th = threading.Thread(target=helper, name="eventsim-delay-helper", daemon=True)
    th.start()
    try:
        res = run_time_pipelined(tab, inp, T, b0, b1, opts, readout_out, mem_out, shared)
    finally:
        shared.sync[SYNC_ABORT] = 1   # the helper has no work left after the last step
        th.join()
    if failure:
        raise failure[0]
    counts, neuron, value, syn_main, prof = res
    return counts, neuron, value, syn_main + syn, prof
