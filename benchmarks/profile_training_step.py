"""Where one training step of ``bench_training_step.py``'s networks spends its time, by layer.

    python benchmarks/profile_training_step.py --config conv4 --threads 2
    python benchmarks/profile_training_step.py --config fc32 --rate --steps 20

Runs the step of ``bench_training_step.py`` (same network, input, loss and Adam) in this
process and times every layer's ``forward`` and ``backward``, the loss, ``zero_grad`` and
the optimiser step with ``time.perf_counter`` around each call; prints the median over the
timed steps of each part (ms), its share of the median step, and the step's median.  A
diagnostic for finding what to optimise, not a comparison: the ratios against snnTorch come
from ``bench_training_step.py`` (fresh processes, alternating engines).  The wrappers add
a few microseconds per call.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_training_step import CONFIGS, build_ours  # noqa: E402


def _timed(obj, name: str, key: str, times: dict) -> None:
    """Replace ``obj.name`` by a wrapper that appends its duration (s) to ``times[key]``."""
    fn = getattr(obj, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        times.setdefault(key, []).append(time.perf_counter() - t)
        return out
    setattr(obj, name, wrapper)


def profile(config: str, rate: bool, steps: int, warm: int) -> tuple[dict, list]:
    """``(parts, totals)``: per part a list of durations (s) over the timed steps, and the
    steps' total durations."""
    import training  # noqa: F401  (threads set by the caller)
    from training import losses
    cfg = CONFIGS[config]
    if cfg.get("inference"):
        raise SystemExit(f"profile_training_step: {config} is an inference configuration")
    net, opt, inp, labels = build_ours(cfg, rate)
    times: dict = {}
    for i, layer in enumerate(net.layers):
        tag = f"{i} {type(layer).__name__}"
        _timed(layer, "forward", f"{tag}.forward", times)
        _timed(layer, "backward", f"{tag}.backward", times)
    _timed(opt, "zero_grad", "optimiser.zero_grad", times)
    _timed(opt, "step", "optimiser.step", times)
    totals = []
    for k in range(warm + steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        y = net.forward(inp)
        t = time.perf_counter()
        _, g = losses.rate_cross_entropy(y, labels)
        times.setdefault("loss", []).append(time.perf_counter() - t)
        net.backward(g, need_input_grad=False)
        opt.step()
        totals.append(time.perf_counter() - t0)
        if k + 1 == warm:           # drop the warm-up (JIT, first allocations)
            for values in times.values():
                values.clear()
            totals.clear()
    return times, totals


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="conv4",
                    choices=[c for c, v in CONFIGS.items() if not v.get("inference")])
    ap.add_argument("--rate", action="store_true",
                    help="binary rate-coded input (bench_training_step's ours-rate)")
    ap.add_argument("--threads", type=int, default=None,
                    help="training.set_num_threads (BLAS and Numba); default: libraries' own")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warm", type=int, default=3, help="untimed steps first")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warm < 1:
        raise SystemExit("profile_training_step: --steps and --warm must be >= 1")
    import training
    if args.threads:
        training.set_num_threads(args.threads)
    parts, totals = profile(args.config, args.rate, args.steps, args.warm)
    step = statistics.median(totals)
    from snncore.threads import blas_threads
    print(f"{args.config} ({'binary rate' if args.rate else 'direct'} input), threads "
          f"{training.get_num_threads()} (Numba) / {blas_threads()} (BLAS), "
          f"{args.steps} steps: median step {step * 1e3:.2f} ms")
    print(f"{'part':28s} {'ms':>8s} {'share':>6s}")
    for key, values in parts.items():
        if values:
            med = statistics.median(values)
            print(f"{key:28s} {med * 1e3:8.2f} {med / step:6.1%}")


if __name__ == "__main__":
    main()
