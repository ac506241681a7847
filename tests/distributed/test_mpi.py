"""Data-parallel training over MPI equals single-process training (to float round-off)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import training
from training.distributed import DataParallel

ROOT = Path(__file__).resolve().parents[2]
# uneven slices (23 and 24 of 47) and plain SGD, whose step shows any gradient scaling error
ARGS = ["--steps", "20", "--batch-size", "47", "--hidden", "64", "--T", "4", "--seed", "3",
        "--optimizer", "sgd", "--lr", "0.5"]


class _FakeComm:
    """Rank and size only (for the argument checks, which run before any communication)."""

    def __init__(self, rank=0, size=2):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_slices_cover_the_batch_once():
    for size in (1, 2, 3, 5):
        parts = [DataParallel(_FakeComm(r, size)).part(7) for r in range(size)]
        assert sum((list(range(7))[p] for p in parts), []) == list(range(7))


@pytest.mark.parametrize("layer, message", [
    (lambda: training.BatchNorm1d(8), "BatchNorm1d"),
    (lambda: training.Dropout(0.2), "Dropout"),
])
def test_unsupported_layers_are_refused(layer, message):
    rng = np.random.default_rng(0)
    net = training.Sequential(training.Linear(6, 8, rng=rng), layer(), training.LIF(),
                              training.Linear(8, 3, rng=rng))
    opt = training.optim.SGD(list(net.named_parameters()), lr=0.1)
    x, y = rng.random((8, 6)).astype(np.float32), rng.integers(0, 3, 8)
    with pytest.raises(ValueError, match=message):
        training.fit(net, (x, y), T=2, epochs=1, batch_size=4, optimizer=opt, progress=False,
                     comm=_FakeComm())


def _mpirun():
    pytest.importorskip("mpi4py")
    exe = shutil.which("mpirun") or shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no MPI runtime (mpirun) on PATH")
    return exe


def test_two_ranks_equal_one_process(tmp_path, record_property):
    mpirun = _mpirun()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    r1 = subprocess.run([sys.executable, "-m", "training.distributed", "--single", *ARGS,
                         "--out", str(one)], env=env, capture_output=True, text=True,
                        timeout=300)
    assert r1.returncode == 0, r1.stderr
    r2 = subprocess.run([mpirun, "-np", "2", sys.executable, "-m", "training.distributed",
                         *ARGS, "--out", str(two)], env=env, capture_output=True, text=True,
                        timeout=300)
    assert r2.returncode == 0, r2.stderr
    d1, d2 = json.loads(r1.stdout), json.loads(r2.stdout)
    assert d2["ranks"] == 2 and d2["max_param_diff_between_ranks"] == 0.0   # same step everywhere
    a, b = np.load(one), np.load(two)
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    print(f"max parameter difference after 20 steps, 2 ranks vs 1 process: {diff:.3g}")
    record_property("max_param_diff", diff)
    assert sorted(a) == sorted(b) and diff < 1e-5
    assert d1["train_loss"] == pytest.approx(d2["train_loss"], rel=1e-5)
    assert d1["train_acc"] == d2["train_acc"]
    assert any(float(np.abs(a[k]).max()) > 0 for k in a)
