"""The default install and code paths never import Dask or mpi4py."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_default_paths_import_neither_dask_nor_mpi(tmp_path):
    code = textwrap.dedent(f"""
        import contextlib, io, sys
        import numpy as np
        import eventsim, training
        from eventsim import cli
        from snncore import modelfile as mf
        rng = np.random.default_rng(0)
        model = mf.Model(input_shape=(1, 28, 28),
                         layers=[mf.Flatten(), mf.Dense(rng.normal(0, .05, (8, 784)).astype(np.float32)),
                                 mf.Spiking(beta=0.5, theta=0.5), mf.Dense(rng.normal(0, .3, (10, 8)).astype(np.float32)),
                                 mf.Readout()], T=3, encoding="rate")
        path = str(mf.write_model(model, {str(tmp_path / 'm.h5')!r}))
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["info", path]) == 0
            assert cli.main(["simulate", path, "--dataset", "fashion-mnist-small", "--limit", "5",
                             "--no-progress"]) == 0
        net = training.Sequential(training.Linear(6, 4, rng=rng), training.LIF(),
                                  training.Linear(4, 2, rng=rng))
        opt = training.optim.SGD(list(net.named_parameters()), lr=0.1)
        training.fit(net, (rng.random((8, 6)).astype(np.float32), rng.integers(0, 2, 8)), T=2,
                     epochs=1, batch_size=4, optimizer=opt, progress=False)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "mpi4py"))
        assert not bad, bad
        print("clean")
    """)
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("clean"), r.stderr[-2000:]
