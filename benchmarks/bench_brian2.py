"""Random recurrent LIF network: this project's event simulator vs Brian2 (cpp_standalone).

    python benchmarks/bench_brian2.py                         # 3 rounds, defaults below
    python benchmarks/bench_brian2.py --rounds 5 --engines ours-float32 ours-float64 brian2
    python benchmarks/bench_brian2.py --check                 # small net, spike-for-spike check
    python benchmarks/bench_brian2.py --profile               # where ours spends its time
    python benchmarks/bench_brian2.py --eventsim-rev HEAD     # eventsim/ as committed, not the work tree
    python benchmarks/bench_brian2.py --rounds 5 --engines ours-float32 ours-float32-2t brian2 brian2-2t

The network (built once in NumPy from ``--seed``; both simulators get the identical arrays):

- N = 10,000 LIF neurons, ``u_t = beta v_{t-1} + I_t``, spike when ``u_t >= theta``, hard
  reset to ``v_reset``, no refractoriness; ``beta = exp(-dt/tau_m)`` (exact exponential
  decay), ``tau_m = 20 ms``, ``dt = 0.1 ms``, T = 10,000 steps (1 s).
- Fixed in-degree K = 100 per neuron: 80 excitatory sources (weight J) and 20 inhibitory
  sources (weight -g J), drawn at random without replacement and without self-connections
  (Brunel's model A); out-degrees are therefore random (binomial, mean 100).
- One integer delay per synapse, uniform in 1..15 steps (0.1-1.5 ms).
- Drive: one independent Poisson source per neuron (rate ``--nu-in``, weight ``--w-in``)
  through a sparse one-to-one projection; the input spike times are drawn once (seeded)
  and given to both simulators (ours: an EventBatch; Brian2: a SpikeGeneratorGroup).
- Weights are dyadic (multiples of 2^-4), so they are exact in float32 and float64.

Ours: model records ``Sparse(inputs -> LIF)``, ``Spiking``, ``Dense(10000 -> 1, zeros)``,
``Readout``; the recurrent synapses are one ``Connection`` (LIF -> LIF) per distinct delay,
each a CSR matrix holding the synapses of that delay.  Run with ``n_threads=1`` (one sample);
engines ``ours-<dtype>-2t`` add ``threads_per_sample=2`` (the pipelined schedule: a helper
thread delivers the delays >= 2 one step behind; bit-identical to one thread); engines
``ours-<dtype>-part`` and ``ours-<dtype>-part-2t`` run ``partition="targets"`` on one and two
threads (``eventsim.partition``: each thread owns half of the neurons; bit-identical to one
thread).  ``ours-<dtype>`` is the default (``partition="auto"``: since session 29 the
partitioned kernel with one range for this network); ``ours-<dtype>-loop`` forces the
general event loop (``partition="pipeline"``), the default before.

Brian2: ``dv/dt = -v/tau : 1`` with ``method='exact'``, ``threshold='v >= theta'``,
``reset='v = v_reset'``, ``on_pre='v += w'`` synapses, ``Synapses.connect(i=..., j=...)``.
Brian2's default schedule (groups, thresholds, synapses, resets) adds a spike arriving at
step t *after* the threshold test of step t (and a reset then wipes it); this project adds
it before (``u_t = beta v_{t-1} + I_t``, then the test).  The Brian2 network therefore runs
with ``schedule = [start, groups, synapses, thresholds, resets, end]`` and the input
generator in the ``start`` slot.  In that order a recurrent synapse pushes the spikes of step
t-1 at step t, so its Brian2 delay is ``(d - 1) * dt`` for our delay d (delivery at t-1+d);
input synapses have delay 0 (same step, as ours).  ``--check`` verifies this mapping spike
for spike on a small network in float64.  Brian2 runs single-threaded (no OpenMP; engine
``brian2``) or with ``prefs.devices.cpp_standalone.openmp_threads = 2`` (engine ``brian2-2t``)
with its default compiler flags (``-O3 -ffast-math -march=native``) in float64.

Timing (each engine in its own process, engines alternate, medians over rounds):
  ours    sim = wall time of ``Simulator.run`` (after a short warm-up run that loads or
          compiles the Numba kernels); kernel = the Recording's ``elapsed_s``;
          total = the whole worker process (imports, network records, load, JIT, run).
  brian2  sim = ``device._last_run_time`` (the simulation loop, measured by the binary);
          binary = wall time of the compiled binary (loading arrays, creating synapses,
          the loop, writing results); total = the whole worker process (code generation
          and C++ compilation included).
Synaptic events = delivered (spike, target) additions: input spikes x fan-out (1) plus
recurrent spikes x out-degree, less the synapses whose delay carries them past the last
step.  Counted from each engine's own spikes (and checked against ours' counter); the
readout's 1 event per spike is reported separately.

``--profile`` runs the network with ``Simulator(profile=True)`` (the event loop's own
per-phase counters of CPU cycles, events and neuron updates; no source editing) with
``leak="repeat"`` and ``"power"`` (fastest of 3 each) and prints seconds and cost per event /
per touched neuron for each phase, plus a what-if: the time of a plain vectorised update of
every LIF neuron at every step.  ``--eventsim-src DIR`` profiles the eventsim/ in DIR.

Brian2 2.9 (the newest for Python 3.11) cannot be imported with NumPy >= 2.4
(``ndarray.ptp`` was removed).  The Brian2 worker runs under ``--brian2-python``; by default
this interpreter if ``import brian2`` works, else ``benchmarks/results/venv-brian2/bin/python``
(create it: ``python -m venv benchmarks/results/venv-brian2 &&
benchmarks/results/venv-brian2/bin/pip install "brian2==2.9.0" "numpy<2.4"``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
VENV_PY = RESULTS / "venv-brian2" / "bin" / "python"

DEFAULTS = dict(N=10000, K=100, frac_exc=0.8, J=0.0625, g=5.0, theta=1.0, v_reset=0.0,
                tau=0.02, dt=1e-4, T=10000, d_min=1, d_max=15, nu_in=650.0, w_in=0.0625)
CHECK = dict(N=500, K=40, J=0.125, g=5.0, T=4000, nu_in=900.0, w_in=0.125)


# ---------------------------------------------------------------------------------------
# network (NumPy, seeded): identical arrays for both simulators
# ---------------------------------------------------------------------------------------
def build_network(p: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    N, K = p["N"], p["K"]
    NE = int(round(p["frac_exc"] * N))
    KE = int(round(p["frac_exc"] * K))
    KI = K - KE
    pre = np.empty(N * K, dtype=np.int64)
    for j in range(N):   # K distinct sources per target, no self-connection
        e = rng.choice(NE - (j < NE), KE, replace=False)
        e[e >= j] += j < NE
        i = rng.choice(N - NE - (j >= NE), KI, replace=False)
        i[i >= j - NE] += j >= NE
        pre[j * K:j * K + KE] = e
        pre[j * K + KE:(j + 1) * K] = NE + i
    post = np.repeat(np.arange(N, dtype=np.int64), K)
    w = np.where(pre < NE, p["J"], -p["g"] * p["J"])
    delay = rng.integers(p["d_min"], p["d_max"] + 1, size=N * K).astype(np.int64)
    # Poisson input: one source per neuron, Bernoulli(nu dt) per step (geometric ISIs)
    T, prob = p["T"], p["nu_in"] * p["dt"]
    mean = prob * T
    m = int(mean + 12 * np.sqrt(mean) + 30)
    t = np.cumsum(rng.geometric(prob, size=(N, m)), axis=1) - 1
    if np.any(t[:, -1] < T):
        raise RuntimeError("Poisson input: not enough ISIs drawn")
    src = np.broadcast_to(np.arange(N, dtype=np.int64)[:, None], t.shape)
    keep = t < T
    in_t, in_src = t[keep], src[keep]
    order = np.lexsort((in_src, in_t))
    return dict(pre=pre, post=post, w=w, delay=delay, in_t=in_t[order], in_src=in_src[order],
                in_pre=np.arange(N, dtype=np.int64), in_post=np.arange(N, dtype=np.int64),
                in_w=np.full(N, p["w_in"]), n_in=np.int64(N), n_exc=np.int64(NE),
                params=np.array(json.dumps(p)))


def load_network(path) -> tuple[dict, dict]:
    with np.load(path) as f:
        net = {k: f[k] for k in f.files}
    return net, json.loads(str(net.pop("params")))


def delivered_events(net: dict, p: dict, t: np.ndarray, i: np.ndarray) -> int:
    """Recurrent synaptic events delivered within the run from spikes ``(t, i)``:
    a spike at t reaches the synapses whose delay d satisfies t + d <= T - 1."""
    N, dmax, T = p["N"], p["d_max"], p["T"]
    hist = np.zeros((N, dmax + 1), dtype=np.int64)
    np.add.at(hist, (net["pre"], net["delay"]), 1)
    cum = np.cumsum(hist, axis=1)                 # cum[i, k]: synapses of i with delay <= k
    return int(cum[i, np.minimum(dmax, T - 1 - t)].sum())


# ---------------------------------------------------------------------------------------
# workers (each in its own process)
# ---------------------------------------------------------------------------------------
def _csr(rows, cols, vals, shape, dtype):
    from snncore import modelfile as mf
    order = np.lexsort((cols, rows))
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return mf.Sparse(data=np.ascontiguousarray(vals[order], dtype=dtype),
                     indices=np.ascontiguousarray(cols[order], dtype=np.int64),
                     indptr=indptr, shape=tuple(int(s) for s in shape))


def make_model(net: dict, p: dict, dtype):
    """The benchmark network as eventsim model records."""
    from snncore import modelfile as mf
    N, n_in = p["N"], int(net["n_in"])
    layers = [_csr(net["in_post"], net["in_pre"], net["in_w"], (N, n_in), dtype),
              mf.Spiking(beta=float(np.exp(-p["dt"] / p["tau"])), theta=p["theta"], reset="hard",
                         v_reset=p["v_reset"]),
              mf.Dense(weight=np.zeros((1, N), dtype=dtype)),
              mf.Readout(beta=0.0)]
    conns = []
    for d in np.unique(net["delay"]):
        s = net["delay"] == d
        conns.append(mf.Connection(source=1, target=1, delay=int(d),
                                   projection=_csr(net["post"][s], net["pre"][s], net["w"][s],
                                                   (N, N), dtype)))
    return mf.Model(input_shape=(n_in,), layers=layers, connections=conns, T=p["T"],
                    encoding="events", metadata={"benchmark": "bench_brian2"})


def worker_ours(data: str, out: str, dtype: str, eventsim_src: str | None,
                leak: str = "repeat", threads: int = 1, partition: str = "auto") -> dict:
    t_proc = time.perf_counter()
    if eventsim_src:
        sys.path.insert(0, eventsim_src)
    else:
        sys.path.insert(0, str(REPO))
    import eventsim
    from eventsim.inputs import from_spike_times

    net, p = load_network(data)
    dt = np.dtype(dtype)
    t0 = time.perf_counter()
    model = make_model(net, p, dt)
    t1 = time.perf_counter()
    compiled = eventsim.load(model)
    kw = {"threads_per_sample": threads} if threads > 1 else {}
    if partition != "auto":
        kw.update(threads_per_sample=threads, partition=partition)
    sim = eventsim.Simulator(compiled, n_threads=1, leak=leak, **kw)
    t2 = time.perf_counter()
    n_in = int(net["n_in"])
    batch = from_spike_times(net["in_t"], net["in_src"], T=p["T"], input_shape=(n_in,),
                             values=np.ones(len(net["in_t"]), dtype=dt))
    w = net["in_t"] < 20   # warm-up: loads (or compiles) the Numba kernels
    sim.run(from_spike_times(net["in_t"][w], net["in_src"][w], T=20, input_shape=(n_in,),
                             values=np.ones(int(w.sum()), dtype=dt)))
    t3 = time.perf_counter()
    rec = sim.run(batch)
    t4 = time.perf_counter()
    sp = rec.spikes[1]
    np.savez(out, t=sp.t, i=sp.neuron)
    syn = rec.synaptic_events
    readout = syn.get("layers[2]", 0)
    return dict(engine=f"ours-{dtype}" + ("" if leak == "repeat" else f"-{leak}")
                + {"auto": "", "targets": "-part", "pipeline": "-loop"}[partition]
                + ("" if threads == 1 else f"-{threads}t"), sim_s=t4 - t3, kernel_s=rec.elapsed_s,
                model_s=t1 - t0, load_s=t2 - t1, warmup_s=t3 - t2,
                total_s=time.perf_counter() - t_proc, n_spikes=len(sp.t),
                events_counter=syn["total"] - readout, readout_events=readout,
                events_by_projection=syn, eventsim=eventsim.__file__)


def worker_brian2(data: str, out: str, build_dir: str, threads: int = 1) -> dict:
    t_proc = time.perf_counter()
    import brian2 as b2
    net, p = load_network(data)
    t0 = time.perf_counter()
    b2.set_device("cpp_standalone", directory=build_dir, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0 if threads == 1 else threads
    dt = p["dt"] * b2.second
    b2.defaultclock.dt = dt
    ns = dict(tau=p["tau"] * b2.second, theta=p["theta"], v_reset=p["v_reset"])
    G = b2.NeuronGroup(p["N"], "dv/dt = -v/tau : 1", threshold="v >= theta",
                       reset="v = v_reset", method="exact", namespace=ns, name="lif")
    inp = b2.SpikeGeneratorGroup(int(net["n_in"]), net["in_src"], net["in_t"] * dt,
                                 when="start", sorted=True, name="poisson_input")
    S_in = b2.Synapses(inp, G, "w : 1 (constant)", on_pre="v += w", name="input_syn")
    S_in.connect(i=net["in_pre"], j=net["in_post"])
    S_in.w = net["in_w"]
    S = b2.Synapses(G, G, "w : 1 (constant)", on_pre="v += w", name="recurrent_syn")
    S.connect(i=net["pre"], j=net["post"])
    S.w = net["w"]
    S.delay = (net["delay"] - 1) * dt   # pushed one step late in this schedule (see doc)
    M = b2.SpikeMonitor(G, name="spikes")
    network = b2.Network(G, inp, S_in, S, M)
    network.schedule = ["start", "groups", "synapses", "thresholds", "resets", "end"]
    network.run(p["T"] * dt, namespace={})
    t1 = time.perf_counter()   # network description done; code generation + compilation next
    b2.device.build(directory=build_dir, compile=True, run=False, with_output=False)
    t2 = time.perf_counter()
    b2.device.run(directory=build_dir, with_output=False)
    t3 = time.perf_counter()
    t = np.round(np.asarray(M.t_) / p["dt"]).astype(np.int64)
    i = np.asarray(M.i[:], dtype=np.int64)
    order = np.lexsort((i, t))
    np.savez(out, t=t[order], i=i[order])
    return dict(engine="brian2" + ("" if threads == 1 else f"-{threads}t"),
                sim_s=float(b2.device._last_run_time), binary_s=t3 - t2,
                codegen_compile_s=t2 - t0, describe_s=t1 - t0, total_s=time.perf_counter() - t_proc,
                n_spikes=len(t), brian2=b2.__version__)


# ---------------------------------------------------------------------------------------
# --profile: where ours spends its time (the kernel's own per-phase counters)
# ---------------------------------------------------------------------------------------
def worker_profile(data: str, eventsim_src: str | None) -> dict:
    """Run the network with ``Simulator(profile=True)`` (``leak="repeat"`` and ``"power"``,
    fastest of 3 each) and return the per-phase counter rows of each."""
    sys.path.insert(0, eventsim_src or str(REPO))
    import eventsim
    from eventsim.inputs import from_spike_times

    net, p = load_network(data)
    dt = np.dtype(np.float32)
    compiled = eventsim.load(make_model(net, p, dt))
    n_in = int(net["n_in"])
    batch = from_spike_times(net["in_t"], net["in_src"], T=p["T"], input_shape=(n_in,),
                             values=np.ones(len(net["in_t"]), dtype=dt))
    w = net["in_t"] < 20
    warm = from_spike_times(net["in_t"][w], net["in_src"][w], T=20, input_shape=(n_in,),
                            values=np.ones(int(w.sum()), dtype=dt))
    out = {}
    for leak in ("repeat", "power"):
        try:
            sim = eventsim.Simulator(compiled, n_threads=1, leak=leak, profile=True)
        except TypeError:
            raise SystemExit(f"--profile: {eventsim.__file__} has no Simulator(profile=True)")
        sim.run(warm)
        rec, rows = None, None
        for _ in range(3):   # keep the fastest of 3 runs (the machine may be shared)
            r = sim.run(batch)
            if rec is None or r.elapsed_s < rec.elapsed_s:
                rec, rows = r, sim.last_profile
        out[leak] = dict(rows=rows, kernel_s=rec.elapsed_s, spikes=len(rec.spikes[1].t))
    out["full_pass_s"] = _time_full_pass(p["N"], p["T"], dt)
    return out


def _time_full_pass(n: int, T: int, dt) -> float:
    """What-if: every LIF neuron updated at every step by one branch-free loop (the
    arithmetic of the canonical neuron with a hard reset), then its spikes listed."""
    from numba import njit

    @njit(nogil=True)
    def loop(steps, acc, V, flags, out, beta, theta, v_reset):
        total = 0
        n = len(V)
        for _ in range(steps):
            for i in range(n):
                u = beta * V[i] + acc[i]
                acc[i] = 0
                s = u >= theta
                V[i] = v_reset if s else u
                flags[i] = s
            c = 0
            for i in range(n):
                out[c] = i
                c += flags[i]
            total += c
        return total

    args = (np.zeros(n, dt), np.random.default_rng(0).random(n).astype(dt), np.zeros(n, np.int8),
            np.zeros(n + 1, np.int64), dt.type(np.exp(-0.005)), dt.type(1.0), dt.type(0.0))
    loop(2, *args)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        loop(T, *args)
        best = min(best, time.perf_counter() - t0)
    return best


def run_profile(args, data: Path):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "profile", "--data",
           str(data)] + (["--eventsim-src", str(args.eventsim_src)] if args.eventsim_src else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-8000:])
        raise SystemExit("profile worker failed")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    (args.out_dir / "profile.json").write_text(json.dumps(res, indent=1))
    _print_profile(res, data)


def _print_profile(res: dict, data: Path):
    full = res.pop("full_pass_s", None)
    for leak, x in res.items():
        rows = x["rows"]
        cyc = sum(r["cycles"] for r in rows) or 1
        scale = x["kernel_s"] / cyc     # counter ticks -> seconds of this run
        lif = sum(r["neuron_updates"] for r in rows
                  if r["where"] == "layers[1]" and r["phase"] == "update")
        print(f"\nprofile (float32, leak={leak!r}, fastest of 3): kernel {x['kernel_s']:.3f} s, "
              f"{x['spikes']} spikes, {lif} touched neuron updates in the LIF layer "
              f"({lif / (p_N(data) * p_T(data)):.1%} of neuron-steps)")
        table = []
        for r in rows:
            s = r["cycles"] * scale
            per = ""
            if r["events"]:
                per = f"{s / r['events'] * 1e9:.1f} ns/event ({r['events'] / 1e6:.2f} M events)"
            elif r["neuron_updates"]:
                per = f"{s / r['neuron_updates'] * 1e9:.1f} ns/touched neuron"
            name = {"layers[1]": "LIF", "layers[3]": "readout",
                    "network": "network"}.get(r["where"], r["where"])
            what = "delayed connections" if name == "network" and r["phase"] == "delivery" else r["phase"]
            table.append([f"{name}: {what}", f"{s:.3f}", f"{r['cycles'] / cyc:.1%}", per])
        print(fmt_table(table, ["phase of the event loop", "s", "share", "cost"]))
    if full is not None:
        print(f"what-if: a vectorised update of all {p_N(data)} LIF neurons at every one of the "
              f"{p_T(data)} steps (u = beta v + I, threshold, hard reset, spike list; this "
              f"script's own loop): {full:.3f} s")


def p_N(data):
    return load_network(data)[1]["N"]


def p_T(data):
    return load_network(data)[1]["T"]


# ---------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------
def spike_stats(t, i, p) -> dict:
    N, T, dt = p["N"], p["T"], p["dt"]
    dur = T * dt
    counts = np.bincount(i, minlength=N)
    rates = counts / dur
    # CV of ISIs per neuron with >= 3 spikes (spikes sorted by (t, neuron))
    o = np.lexsort((t, i))
    ti, ii = t[o], i[o]
    isi = np.diff(ti).astype(np.float64)
    same = ii[1:] == ii[:-1]
    isi, who = isi[same], ii[1:][same]
    n_isi = np.bincount(who, minlength=N)
    s1 = np.bincount(who, weights=isi, minlength=N)
    s2 = np.bincount(who, weights=isi * isi, minlength=N)
    ok = n_isi >= 2
    mu = s1[ok] / n_isi[ok]
    var = s2[ok] / n_isi[ok] - mu * mu
    cv = np.sqrt(np.maximum(var, 0)) / mu
    # Fano factor of spike counts in 100 ms windows, per neuron with spikes
    win = max(1, int(round(0.1 / dt)))
    nw = T // win
    keep = t < nw * win
    c = np.zeros((nw, N))
    np.add.at(c, (t[keep] // win, i[keep]), 1)
    m = c.mean(axis=0)
    act = m > 0
    ff = c[:, act].var(axis=0, ddof=1) / m[act]
    # population rate in 1 ms bins (after the first 100 ms: all neurons start at v = 0)
    b = max(1, int(round(1e-3 / dt)))
    pop = np.bincount(t // b, minlength=T // b)[:T // b] / (N * b * dt)
    pop = pop[int(round(0.1 / (b * dt))):]
    return dict(n_spikes=int(len(t)), rate_hz=len(t) / (N * dur),
                rate_pcts={q: float(np.percentile(rates, q)) for q in (5, 25, 50, 75, 95)},
                rate_std=float(rates.std()), silent_frac=float(np.mean(counts == 0)),
                cv_isi_mean=float(cv.mean()) if len(cv) else float("nan"),
                cv_isi_median=float(np.median(cv)) if len(cv) else float("nan"),
                fano_mean=float(ff.mean()) if len(ff) else float("nan"),
                pop_rate_std_hz=float(pop.std()), _rates=rates, _pop=pop)


def compare(a_t, a_i, b_t, b_i, sa, sb, p, window_s=0.05) -> dict:
    from scipy import stats as st
    T = p["T"]
    key_a = a_t * p["N"] + a_i
    key_b = b_t * p["N"] + b_i
    first = int(min(np.concatenate([np.setdiff1d(key_a, key_b), np.setdiff1d(key_b, key_a),
                                    [T * p["N"]]])) // p["N"])
    w = int(round(window_s / p["dt"]))
    ka, kb = key_a[a_t < w], key_b[b_t < w]
    common = len(np.intersect1d(ka, kb))
    common_all = len(np.intersect1d(key_a, key_b))
    ra, rb = sa["_rates"], sb["_rates"]
    return dict(rate_ratio=sa["rate_hz"] / sb["rate_hz"] if sb["rate_hz"] else float("nan"),
                first_divergent_step=first, window_ms=window_s * 1e3,
                window_spikes=(len(ka), len(kb)), window_common=common,
                all_common=common_all,
                rate_corr=float(np.corrcoef(ra, rb)[0, 1]),
                rate_ks=float(st.ks_2samp(ra, rb).statistic),
                rate_ks_p=float(st.ks_2samp(ra, rb).pvalue),
                pop_corr_1ms=float(np.corrcoef(sa["_pop"], sb["_pop"])[0, 1]))


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------
def brian2_python(arg: str | None) -> str:
    if arg:
        return arg
    ok = subprocess.run([sys.executable, "-c", "import brian2"], capture_output=True).returncode == 0
    if ok:
        return sys.executable
    if VENV_PY.exists():
        return str(VENV_PY)
    raise SystemExit("brian2 cannot be imported here (Brian2 2.9 needs NumPy < 2.4); create "
                     f"{VENV_PY.parent.parent} (see this script's docstring) or pass --brian2-python")


def run_worker(engine: str, data: Path, out: Path, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(engine_threads(engine)), OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    script = str(Path(__file__).resolve())
    if engine.startswith("brian2"):
        cmd = [brian2_python(args.brian2_python), script, "--worker", engine, "--data", str(data),
               "--out", str(out), "--build-dir", str(args.out_dir / f"{engine}_build")]
    else:
        cmd = [sys.executable, script, "--worker", engine, "--data", str(data), "--out", str(out)]
        if args.eventsim_src:
            cmd += ["--eventsim-src", args.eventsim_src]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-8000:])
        raise SystemExit(f"worker {engine} failed (exit {r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def same_spikes_as(e: str, spikes: dict) -> str:
    """The other engines whose spikes ``(t, i)`` equal engine ``e``'s, comma-separated."""
    same = [f for f in spikes if f != e and np.array_equal(spikes[f][0], spikes[e][0])
            and np.array_equal(spikes[f][1], spikes[e][1])]
    return ", ".join(same) or "none"


def engine_threads(engine: str) -> int:
    """Threads of an engine name: ``...-2t`` runs on 2, anything else on 1."""
    return 2 if engine.endswith("-2t") else 1


def export_eventsim(rev: str) -> str:
    """Extract ``eventsim/`` of git revision ``rev`` (another engineer may be editing the
    working tree) into benchmarks/results/eventsim-<commit>/; returns that directory."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], capture_output=True,
                            text=True, check=True).stdout.strip()
    dest = RESULTS / f"eventsim-{commit[:12]}"
    if not (dest / "eventsim" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(["git", "-C", str(REPO), "archive", commit, "eventsim"],
                             capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return str(dest)


def fmt_table(rows, headers) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(wd) for c, wd in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (wd + 2) for wd in widths) + "|")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--engines", nargs="+", default=["ours-float32", "brian2"],
                    help="ours-float32, ours-float64, ours-float32-power (leak='power': one "
                         "multiplication by beta**gap instead of gap steps), brian2; a -2t "
                         "suffix runs on two threads (ours: threads_per_sample=2, brian2: "
                         "OpenMP), e.g. ours-float32-2t, brian2-2t; -part runs ours with "
                         "partition='targets' (ours-float32-part, ours-float32-part-2t), -loop "
                         "with the general event loop (partition='pipeline')")
    ap.add_argument("--check", action="store_true",
                    help="small network (N=500), one round, ours-float64 vs brian2 spike for spike")
    for k, v in DEFAULTS.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=None)
    ap.add_argument("--profile", action="store_true",
                    help="no comparison: time the phases of ours' step loop (instrumented copy)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS / "brian2")
    ap.add_argument("--brian2-python", default=None)
    ap.add_argument("--eventsim-src", default=None,
                    help="directory holding the eventsim package to benchmark (default: this repo)")
    ap.add_argument("--eventsim-rev", default=None,
                    help="benchmark eventsim/ as committed at this git revision (e.g. HEAD)")
    # internal
    ap.add_argument("--worker", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--build-dir", default=None)
    args = ap.parse_args(argv)

    if args.worker:
        threads = engine_threads(args.worker)
        if args.worker.startswith("brian2"):
            res = worker_brian2(args.data, args.out, args.build_dir, threads)
        elif args.worker == "profile":
            res = worker_profile(args.data, args.eventsim_src)
        else:
            # ours-<dtype>[-power][-part|-loop][-2t]
            parts = [x for x in args.worker.split("-") if x not in ("2t", "part", "loop")]
            tags = args.worker.split("-")
            res = worker_ours(args.data, args.out, parts[1], args.eventsim_src,
                              leak=parts[2] if len(parts) > 2 else "repeat", threads=threads,
                              partition="targets" if "part" in tags
                              else "pipeline" if "loop" in tags else "auto")
        print(json.dumps(res))
        return

    p = dict(DEFAULTS)
    if args.check:
        p.update(CHECK)
        args.rounds, args.engines = 1, ["ours-float64", "brian2"]
        args.out_dir = args.out_dir.parent / (args.out_dir.name + "-check")
    for k in DEFAULTS:
        v = getattr(args, k)
        if v is not None:
            p[k] = v
    if args.eventsim_rev:
        args.eventsim_src = export_eventsim(args.eventsim_rev)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print(f"eventsim from {args.eventsim_src or REPO} ({time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"{os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.2f})", flush=True)
    print(f"network: N={p['N']} K={p['K']} ({p['frac_exc']:.0%} exc) J={p['J']} g={p['g']} "
          f"theta={p['theta']} tau={p['tau'] * 1e3:g} ms dt={p['dt'] * 1e3:g} ms T={p['T']} "
          f"delays {p['d_min']}..{p['d_max']} steps, Poisson input {p['nu_in']:g} Hz x "
          f"w={p['w_in']} per neuron, seed {args.seed}", flush=True)
    t0 = time.perf_counter()
    net = build_network(p, args.seed)
    data = args.out_dir / "network.npz"
    np.savez(data, **net)
    print(f"built in {time.perf_counter() - t0:.1f} s: {len(net['pre'])} recurrent synapses, "
          f"{len(net['in_t'])} input spikes", flush=True)

    if args.profile:
        run_profile(args, data)
        return
    results = {e: [] for e in args.engines}
    spikes = {}
    for r in range(args.rounds):
        order = args.engines if r % 2 == 0 else args.engines[::-1]
        for e in order:
            out = args.out_dir / f"spikes_{e}_r{r}.npz"
            load = os.getloadavg()[0]
            res = run_worker(e, data, out, args)
            res["loadavg_before"] = load
            with np.load(out) as f:
                t, i = f["t"], f["i"]
            if e in spikes and not (np.array_equal(spikes[e][0], t) and np.array_equal(spikes[e][1], i)):
                print(f"WARNING: {e} is not deterministic across rounds", flush=True)
            spikes.setdefault(e, (t, i))
            res["events"] = int(len(net["in_t"])) + delivered_events(net, p, t, i)
            if "events_counter" in res and res["events_counter"] != res["events"]:
                print(f"WARNING: {e}: simulator counted {res['events_counter']} events, "
                      f"spikes imply {res['events']}", flush=True)
            results[e].append(res)
            print(f"round {r} {e}: sim {res['sim_s']:.3f} s, total {res['total_s']:.1f} s, "
                  f"{res['n_spikes']} spikes, {res['events'] / res['sim_s'] / 1e6:.1f} M events/s "
                  f"(1-min load average before: {load:.2f})",
                  flush=True)

    med = lambda e, k: statistics.median(x[k] for x in results[e])   # noqa: E731
    stats = {e: spike_stats(*spikes[e], p) for e in args.engines}
    rows = []
    for e in args.engines:
        ev = results[e][0]["events"]
        ro = results[e][0].get("readout_events")
        sim = med(e, "sim_s")
        extra = (f"kernel {med(e, 'kernel_s'):.3f}, load {med(e, 'load_s'):.2f}, warm-up/JIT "
                 f"{med(e, 'warmup_s'):.2f}" if not e.startswith("brian2") else
                 f"binary {med(e, 'binary_s'):.2f}, codegen+compile {med(e, 'codegen_compile_s'):.1f}")
        best = min(x["sim_s"] for x in results[e])
        rows.append([e, engine_threads(e), f"{sim:.3f} ({best:.3f})", f"{med(e, 'total_s'):.1f}",
                     extra, stats[e]["n_spikes"], f"{ev / 1e6:.2f}", f"{ev / sim / 1e6:.1f}",
                     f"{(ev + ro) / sim / 1e6:.1f}" if ro is not None else "-",
                     same_spikes_as(e, spikes)])
    print()
    print(f"medians of {args.rounds} round(s) (min in brackets); events = delivered synaptic events "
          f"(input + recurrent); M events/s from the median sim time")
    print(fmt_table(rows, ["engine", "threads", "sim s (min)", "total s", "other (s)", "spikes",
                           "events (M)", "M events/s", "M events/s incl. readout",
                           "spikes identical to"]))
    rate = lambda e: results[e][0]["events"] / med(e, "sim_s")   # noqa: E731
    for ref in ("brian2", "brian2-2t"):
        if ref not in args.engines:
            continue
        for e in args.engines:
            if e != ref:
                print(f"ratio {e} / {ref} in synaptic events per second: {rate(e) / rate(ref):.2f}x "
                      f"(simulation proper; whole processes: {ref} total / {e} total = "
                      f"{med(ref, 'total_s') / med(e, 'total_s'):.2f})")
    print()
    srows = []
    for e in args.engines:
        s = stats[e]
        pc = s["rate_pcts"]
        srows.append([e, f"{s['rate_hz']:.2f}", f"{pc[5]:.1f} / {pc[25]:.1f} / {pc[50]:.1f} / "
                      f"{pc[75]:.1f} / {pc[95]:.1f}", f"{s['silent_frac']:.3f}",
                      f"{s['cv_isi_mean']:.3f}", f"{s['fano_mean']:.3f}", f"{s['pop_rate_std_hz']:.2f}"])
    print(fmt_table(srows, ["engine", "rate Hz", "per-neuron rate p5/p25/p50/p75/p95 Hz",
                            "silent", "CV ISI", "Fano (100 ms)", "pop-rate std (1 ms bins, t>100 ms) Hz"]))
    comps = {}
    if "brian2" in args.engines:
        bt, bi = spikes["brian2"]
        for e in args.engines:
            if e == "brian2":
                continue
            c = compare(*spikes[e], bt, bi, stats[e], stats["brian2"], p)
            comps[e] = c
            print(f"{e} vs brian2: mean rate ratio {c['rate_ratio']:.4f}; per-neuron rates: "
                  f"Pearson r {c['rate_corr']:.3f}, KS D {c['rate_ks']:.3f} (p {c['rate_ks_p']:.2g}); "
                  f"population rate (1 ms bins) r {c['pop_corr_1ms']:.3f}")
            print(f"    identical spikes: first {c['window_ms']:.0f} ms: {c['window_common']} common of "
                  f"{c['window_spikes'][0]} (ours) / {c['window_spikes'][1]} (brian2); first "
                  f"differing step {c['first_divergent_step']} ({c['first_divergent_step'] * p['dt'] * 1e3:.1f} ms); "
                  f"whole run: {c['all_common']} common")
    summary = dict(params=p, seed=args.seed, rounds=args.rounds, results=results,
                   stats={e: {k: v for k, v in s.items() if not k.startswith("_")} for e, s in stats.items()},
                   compare=comps, date=time.strftime("%Y-%m-%d %H:%M:%S"),
                   command=" ".join([Path(sys.executable).name] + sys.argv))
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"\nsummary: {args.out_dir / 'summary.json'}")


if __name__ == "__main__":
    main()
