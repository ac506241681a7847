"""Data-parallel training over MPI: ``training.fit(..., comm=MPI.COMM_WORLD)``.

::

    mpirun -np 2 python -m training.distributed --steps 20 --batch-size 128 --out params.npz

Needs the optional extra ``pip install "snn-eventsim[mpi]"`` (mpi4py) and an MPI runtime;
``fit`` without ``comm`` never imports either.

Every rank holds the whole network and the same data, and draws the same shuffle and the same
input encoding (its generator is seeded alike), so all ranks agree on each global batch of B
samples.  Rank ``r`` of ``R`` takes the contiguous slice ``[r B // R, (r + 1) B // R)``, runs
forward and backward on it, and scales its gradient by ``B_r / B`` (its share of the batch
mean).  One ``Allreduce`` (sum) over one flat buffer, holding every parameter's gradient and
two numbers (the rank's share of the loss and its correct predictions), gives every rank the
gradient of the global-batch mean; every rank then takes the same optimiser step.

Sum order (why the result equals single-process training only to float round-off): one
process sums the B per-sample contributions inside each GEMM in one pass; here each rank sums
its B_r samples, the ``B_r / B`` scaling rounds once more, and MPI adds the R partial sums (in
an order the MPI library chooses; with 2 ranks it is one addition, the same on both ranks).
The parameters of all ranks stay bitwise equal: every rank receives the same reduced buffer.

Limits: method "bptt" with decoder "mean"; no BatchNorm (batch statistics would be per
rank), no Dropout or MSG (each rank would draw its own masks).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np


class DataParallel:
    """The ranks of ``comm`` training one network on slices of every global batch.

    comm: an mpi4py communicator (``MPI.COMM_WORLD``); its ``Get_rank``, ``Get_size`` and
    ``Allreduce`` are used.
    """

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = int(comm.Get_rank()), int(comm.Get_size())
        self._buffer = None

    def part(self, batch: int) -> slice:
        """This rank's contiguous slice of a global batch of ``batch`` samples."""
        return slice(self.rank * batch // self.size, (self.rank + 1) * batch // self.size)

    def allreduce(self, params: list, extras) -> np.ndarray:
        """Sum every rank's ``p.grad`` (in place) and ``extras`` (floats) with one Allreduce
        over one flat buffer; returns the summed extras (float64)."""
        from mpi4py import MPI

        dtype = np.result_type(*[p.grad.dtype for p in params])
        sizes = [p.grad.size for p in params]
        n = sum(sizes) + len(extras)
        if self._buffer is None or self._buffer.size != n or self._buffer.dtype != dtype:
            self._buffer = np.empty(n, dtype=dtype)
        buf, at = self._buffer, 0
        for p, k in zip(params, sizes):
            buf[at:at + k] = p.grad.ravel()
            at += k
        buf[at:] = extras
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        at = 0
        for p, k in zip(params, sizes):
            p.grad[...] = buf[at:at + k].reshape(p.grad.shape)
            at += k
        return buf[at:].astype(np.float64)

    def check(self, net, method: str, decoder: str) -> None:
        """ValueError for a setting whose data-parallel result would differ from one process."""
        from .dropout import Dropout
        from .norm import _BatchNorm

        if method != "bptt" or decoder != "mean":
            raise ValueError(f"fit(comm=...): data-parallel training supports method='bptt' "
                             f"with decoder='mean', got method={method!r}, decoder={decoder!r}")
        for name, m in _modules(net):
            if isinstance(m, _BatchNorm):
                raise ValueError(f"fit(comm=...): {name} is a {type(m).__name__}: its batch "
                                 "statistics would be per rank; use WSLinear/WSConv2d")
            if isinstance(m, Dropout) and float(getattr(m, "p", 0.0)) > 0:
                raise ValueError(f"fit(comm=...): {name} is a Dropout: each rank would draw "
                                 "its own masks")
            if float(getattr(m, "msg_p", 0.0) or 0.0) > 0:
                raise ValueError(f"fit(comm=...): {name} uses MSG (msg_p > 0): each rank would "
                                 "draw its own masks")


def _modules(net):
    """``(name, module)`` of ``net`` and everything it holds, each once."""
    from .module import Module

    seen, out = set(), []

    def walk(name, m):
        if id(m) in seen:
            return
        seen.add(id(m))
        out.append((name, m))
        for key, value in vars(m).items():
            items = value if isinstance(value, (list, tuple)) else (value,)
            for i, sub in enumerate(items):
                if isinstance(sub, Module):
                    walk(f"{name}.{key}" + (f"[{i}]" if len(items) > 1 else ""), sub)

    walk(type(net).__name__, net)
    return out


# ---------------------------------------------------------------------------------------
# python -m training.distributed
# ---------------------------------------------------------------------------------------
def build_mlp(hidden: int, seed: int):
    """MLP 784-hidden-10 with a LIF layer (tau 2, atan surrogate), weights from ``seed``."""
    import training

    rng = np.random.default_rng(seed)
    return training.Sequential(training.Linear(784, hidden, rng=rng),
                               training.LIF(tau=2.0, surrogate="atan", detach_reset=True),
                               training.Linear(hidden, 10, rng=rng))


def _optimizer(name: str, net, lr: float):
    """Adam, or plain SGD (whose step is proportional to the gradient, so a wrongly scaled
    gradient shows)."""
    from training import optim

    params = list(net.named_parameters())
    return optim.Adam(params, lr=lr) if name == "adam" else optim.SGD(params, lr=lr)


def train(args, comm=None) -> dict:
    """``args.steps`` optimiser steps of the MLP on Fashion-MNIST (small) with global batch
    ``args.batch_size``; returns the parameters and timings (see :func:`main`)."""
    import training
    from training import datasets

    data = datasets.load_fashion_mnist_small("train")
    n = args.steps * args.batch_size
    x, y = data.float_images(flatten=True), data.labels
    if n > len(y):
        reps = math.ceil(n / len(y))
        x, y = np.concatenate([x] * reps), np.concatenate([y] * reps)
    x, y = x[:n], y[:n]
    if args.warmup:     # compile the kernels on a throwaway network, outside the timing
        warm = build_mlp(args.hidden, args.seed + 1)
        training.fit(warm, (x[:2 * args.batch_size], y[:2 * args.batch_size]), T=args.T,
                     epochs=1, batch_size=args.batch_size, encoder=args.encoder,
                     optimizer=_optimizer(args.optimizer, warm, args.lr),
                     progress=False, comm=comm)
    net = build_mlp(args.hidden, args.seed)
    opt = _optimizer(args.optimizer, net, args.lr)
    if comm is not None:
        comm.Barrier()
    t0 = time.perf_counter()
    history = training.fit(net, (x, y), T=args.T, epochs=1, batch_size=args.batch_size,
                           optimizer=opt, encoder=args.encoder, seed=args.seed, progress=False,
                           comm=comm)
    seconds = time.perf_counter() - t0
    params = {name: np.array(p.data) for name, p in net.named_parameters()}
    return {"params": params, "seconds": seconds, "train_loss": history.train_loss[-1],
            "train_acc": history.train_acc[-1]}


def _rank_spread(comm, params: dict) -> float:
    """Largest |p_rank - p_rank0| over every parameter and rank (0.0: all ranks equal)."""
    from mpi4py import MPI

    flat = np.concatenate([v.ravel().astype(np.float64) for v in params.values()])
    ref = flat.copy()
    comm.Bcast(ref, root=0)
    return float(comm.allreduce(float(np.max(np.abs(flat - ref))) if flat.size else 0.0,
                                op=MPI.MAX))


def main(argv=None) -> int:
    """Train with every rank of ``MPI.COMM_WORLD`` (or in one process with ``--single``);
    rank 0 prints one JSON object (ranks, step time, loss, max parameter difference between
    the ranks) and saves the parameters to ``--out`` (``.npz``)."""
    p = argparse.ArgumentParser(prog="python -m training.distributed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="optimiser steps (default 20)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch (default 128)")
    p.add_argument("--hidden", type=int, default=400, help="hidden LIF neurons (default 400)")
    p.add_argument("--T", type=int, default=4, help="time steps (default 4)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--encoder", choices=("direct", "rate"), default="direct")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--single", action="store_true",
                   help="train in this process without MPI (the reference)")
    p.add_argument("--warmup", action="store_true",
                   help="first train 2 untimed steps of a throwaway network (kernel compilation)")
    p.add_argument("--out", default=None, help="save the parameters (rank 0) to this .npz")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        p.error(f"--steps and --batch-size must be >= 1, got {args.steps}, {args.batch_size}")
    comm = None
    if not args.single:
        try:
            from mpi4py import MPI
        except ImportError:
            p.error("mpi4py is not installed: pip install 'snn-eventsim[mpi]', or pass --single")
        comm = MPI.COMM_WORLD
    out = train(args, comm)
    rank = 0 if comm is None else comm.Get_rank()
    spread = 0.0 if comm is None else _rank_spread(comm, out["params"])
    if rank == 0:
        if args.out:
            np.savez(args.out, **out["params"])
        print(json.dumps({"ranks": 1 if comm is None else comm.Get_size(), "steps": args.steps,
                          "batch_size": args.batch_size, "hidden": args.hidden, "T": args.T,
                          "seconds": out["seconds"], "step_ms": 1e3 * out["seconds"] / args.steps,
                          "train_loss": out["train_loss"], "train_acc": out["train_acc"],
                          "max_param_diff_between_ranks": spread}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
