"""Fixtures of the distributed tests: a small model file and one 2-worker local cluster."""
from __future__ import annotations

import numpy as np
import pytest

from snncore import modelfile as mf


def small_model(encoding="rate", T=6, hidden=24, seed=0) -> mf.Model:
    """784 -> hidden LIF -> 10 readout with non-dyadic float32 weights (round-off matters)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 0.06, (hidden, 784)).astype(np.float32)
    w2 = rng.normal(0.0, 0.3, (10, hidden)).astype(np.float32)
    return mf.Model(input_shape=(1, 28, 28),
                    layers=[mf.Flatten(), mf.Dense(w1, np.full(hidden, 0.05, np.float32)),
                            mf.Spiking(beta=0.6, theta=0.5), mf.Dense(w2), mf.Readout()],
                    T=T, encoding=encoding, metadata={"dataset": "fashion-mnist-small"})


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return str(mf.write_model(small_model(), tmp_path_factory.mktemp("m") / "small.h5"))


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (one thread each) and its client."""
    distributed = pytest.importorskip("distributed")
    import dask

    from eventsim.distributed import local_cluster

    # as eventsim sweep --scheduler local:N: 2 resubmissions after a lost worker, one task
    # per worker at a time
    with dask.config.set({"distributed.scheduler.allowed-failures": 2,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = local_cluster(2)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(autouse=True)
def _restore_environment():
    """Dask's nannies write their workers' environment (NUMBA_NUM_THREADS=1, ...) into this
    process when they (re)start a worker; put it back so later tests see the real one (Numba
    refuses a changed NUMBA_NUM_THREADS once its threads run)."""
    import os

    saved = dict(os.environ)
    yield
    for k in set(os.environ) - set(saved):
        del os.environ[k]
    os.environ.update(saved)
