"""IDE vs BPTT: time and peak memory of one training step at T = 5 and T = 30.

    python benchmarks/bench_ide.py --threads 2 --json benchmarks/logs/bench_ide_2threads.json
    python benchmarks/bench_ide.py --threads 1
    python benchmarks/bench_ide.py --from-json benchmarks/logs/bench_ide_2threads.json

One training step = one batch: the first 128 images of the committed Fashion-MNIST subset
(direct input; real images, so the adjoint solve takes the iterations it takes in training),
forward, loss, backward and one optimiser step:

  ide        FeedbackMLP 784-400-10 (LIF, lam 0.95, threshold 2, BatchNorm on the drive,
             dropout 0.2): ``training.ide.gradients`` (T simulated steps, Broyden adjoint
             solve to 1e-6) + SGD
  bptt_rlif  the same network trained by BPTT: Linear(784, 400) - BatchNorm1d - Dropout(0.2)
             - RecurrentLIF(400, beta 0.95, threshold 2, subtract reset) - Linear(400, 10),
             "rate_ce" loss + SGD
  bptt_mlp   the feed-forward MLP of ``train_fmnist.py`` (784-800-10, LIF tau 2, hard reset,
             atan surrogate; 89.5-90.2 % on Fashion-MNIST at T = 4): BPTT + AdamW
  ide_conv   FeedbackConv(1, (16, 16), (14, 14), 10), IF, threshold 2, on 2x2-average-pooled
             images, conv weights scaled x2 / x3 so that both layers fire (rates 7 % / 1.6 %;
             at the default initialisation layer 2 is silent and the adjoint solve trivial):
             ``ide.gradients`` + SGD
  bptt_conv  the same two conv layers with BatchNorm, without the feedback (``train_fmnist.py
             --model conv14``: Conv2d(1, 16, 3) - BN - LIF - Conv2d(16, 16, 3) - BN - LIF -
             Linear): BPTT + AdamW

Each (method, T) runs in a fresh process (``bench_online.measure``: median step time after
two warm-up steps, tracemalloc peak of one more step: the working memory a step allocates,
weights and optimiser state excluded); rounds alternate the order; medians over rounds.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_online import THREAD_VARS, measure  # noqa: E402  (same directory)

METHODS = ("ide", "bptt_rlif", "bptt_mlp", "ide_conv", "bptt_conv")
PAIRS = (("ide", "bptt_rlif"), ("ide", "bptt_mlp"), ("ide_conv", "bptt_conv"))
BATCH = 128


def make_step(method: str, T: int):
    import numpy as np

    import training
    from training import encoding, ide, losses, optim

    from training import datasets
    train = datasets.load_fashion_mnist_small("train")
    images = train.float_images(flatten=True)[:BATCH]
    labels = train.labels[:BATCH].astype(np.int64)
    if method in ("ide_conv", "bptt_conv"):
        images = np.ascontiguousarray(
            images.reshape(-1, 1, 14, 2, 14, 2).mean(axis=(3, 5)), dtype=np.float32)
    if method == "ide_conv":
        net = training.FeedbackConv(1, (16, 16), (14, 14), 10, neuron="IF", rng=0)
        net.conv1.weight.data *= 2.0      # at the default initialisation layer 2 is silent
        net.conv2.weight.data *= 3.0      # (and the adjoint trivial): make both layers fire
        opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

        def step():
            ide.gradients(net, encoding.direct(images, T), labels)
            opt.step()
        return step
    if method == "ide":
        net = training.FeedbackMLP(784, 400, 10, neuron="LIF", rng=0, batch_norm=True,
                                   dropout=0.2)
        opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

        def step():
            ide.gradients(net, encoding.direct(images, T), labels)
            opt.step()
        return step
    r = np.random.default_rng(0)
    if method == "bptt_rlif":
        net = training.Sequential(
            training.Linear(784, 400, rng=r), training.BatchNorm1d(400),
            training.Dropout(0.2, rng=1),
            training.RecurrentLIF(400, beta=0.95, threshold=2.0, reset="subtract", rng=r),
            training.Linear(400, 10, rng=r))
        opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    elif method == "bptt_conv":
        net = training.Sequential(
            training.Conv2d(1, 16, 3, padding=1, rng=r), training.BatchNorm2d(16),
            training.LIF(tau=2.0, surrogate="atan", detach_reset=True),
            training.Conv2d(16, 16, 3, padding=1, rng=r), training.BatchNorm2d(16),
            training.LIF(tau=2.0, surrogate="atan", detach_reset=True),
            training.Flatten(), training.Linear(16 * 14 * 14, 10, rng=r))
        opt = optim.AdamW(list(net.named_parameters()), lr=1e-3)
    else:
        net = training.Sequential(
            training.Linear(784, 800, rng=r),
            training.LIF(tau=2.0, surrogate="atan", detach_reset=True),
            training.Linear(800, 10, rng=r))
        opt = optim.AdamW(list(net.named_parameters()), lr=1e-3)
    net.train()

    def step():
        opt.zero_grad()
        y = net.forward(encoding.direct(images, T))
        _, g = losses.rate_cross_entropy(y, labels)
        net.backward(g, need_input_grad=False)
        opt.step()
    return step


def run_all(args) -> list[dict]:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(args.threads)
    rows = []
    for r in range(args.rounds):
        chosen = [m for m in METHODS if m in args.methods]
        ms = chosen[r % len(chosen):] + chosen[:r % len(chosen)]
        for T in (args.T if r % 2 == 0 else list(reversed(args.T))):
            for m in ms:
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", m, str(T)]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(f"[{m} T={T}] failed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
                    continue
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                res.update(round=r, method=m, T=T)
                rows.append(res)
                print(f"round {r + 1} T={T:2d} {m:9s} {res['step_ms']:8.1f} ms  peak "
                      f"{res['peak_mib']:7.2f} MiB", file=sys.stderr, flush=True)
    return rows


def report(rows: list[dict]) -> str:
    med = {}
    for r in rows:
        med.setdefault((r["method"], r["T"]), []).append(r)
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("step_ms", "peak_mib")}
           for k, v in med.items()}
    Ts = sorted({r["T"] for r in rows})
    lines = ["| method | " + " | ".join(f"T = {T}: step ms / peak MiB" for T in Ts)
             + f" | peak T={Ts[-1]} / T={Ts[0]} |", "|---" * (len(Ts) + 2) + "|"]
    for m in METHODS:
        v = [med.get((m, T)) for T in Ts]
        cells = [f"{x['step_ms']:.1f} / {x['peak_mib']:.2f}" if x else "-" for x in v]
        ratio = f"{v[-1]['peak_mib'] / v[0]['peak_mib']:.2f}" if v[0] and v[-1] else "-"
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {ratio} |")
    for mine, other in PAIRS:
        cells = []
        for T in Ts:
            a, b = med.get((mine, T)), med.get((other, T))
            cells.append(f"{a['step_ms'] / b['step_ms']:.2f}x time, "
                         f"{a['peak_mib'] / b['peak_mib']:.2f}x peak" if a and b else "-")
        lines.append(f"| {mine} / {other} | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", nargs="+", type=int, default=[5, 30])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--from-json", default=None)
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(make_step(args.worker[0], int(args.worker[1])))))
        return 0
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        print(f"threads per worker {saved['threads']}")
        print(report(saved["rows"]))
        return 0
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; threads {args.threads}; "
          f"rounds {args.rounds}; T {args.T}", flush=True)
    rows = run_all(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=1)
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
