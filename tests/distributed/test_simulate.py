"""Batch simulation on a 2-worker LocalCluster is bitwise the in-process simulation."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("distributed")

from eventsim import cli  # noqa: E402
from eventsim.recording import Recording  # noqa: E402
from eventsim.distributed import (SchedulerError, parse_scheduler,  # noqa: E402
                                  simulate_chunks)

N = 40


def _in_process(tmp_path, model_file, batch_size: int) -> Recording:
    out = tmp_path / f"local-{batch_size}.h5"
    rc = cli.main(["simulate", model_file, "--dataset", "fashion-mnist-small", "--limit", str(N),
                   "--batch-size", str(batch_size), "--seed", "7", "--no-progress",
                   "--out-recording", str(out)])
    assert rc == 0
    return Recording.load(out)


def _assert_same(a: Recording, b: Recording) -> None:
    assert a.readout.dtype == b.readout.dtype
    np.testing.assert_array_equal(a.readout, b.readout)     # bitwise: no tolerance
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert sorted(a.spikes) == sorted(b.spikes)
    for k in a.spikes:
        for f in ("sample", "t", "neuron"):
            np.testing.assert_array_equal(getattr(a.spikes[k], f), getattr(b.spikes[k], f))
    assert a.synaptic_events == b.synaptic_events


def test_in_process_output_does_not_depend_on_batch_size(tmp_path, model_file):
    _assert_same(_in_process(tmp_path, model_file, 40), _in_process(tmp_path, model_file, 7))


@pytest.mark.parametrize("chunk", [1, 7, 16, 40])
def test_cluster_equals_in_process_bitwise(tmp_path, model_file, client, chunk):
    reference = _in_process(tmp_path, model_file, 13)
    args = cli.build_parser().parse_args(
        ["simulate", model_file, "--dataset", "fashion-mnist-small", "--limit", str(N),
         "--batch-size", str(chunk), "--seed", "7", "--scheduler", "local:2"])
    recs = simulate_chunks(client, args, N)
    assert len(recs) == -(-N // chunk)
    _assert_same(Recording.concatenate(recs), reference)
    assert reference.spike_counts and sum(reference.spike_counts.values()) > 0


def test_model_sent_as_bytes_when_workers_cannot_read_it(tmp_path, model_file, client,
                                                         monkeypatch):
    import eventsim.distributed as ed

    sent = []

    def as_bytes(client, path):
        sent.append(path)
        return open(path, "rb").read()

    monkeypatch.setattr(ed, "_model_transfer", as_bytes)
    args = cli.build_parser().parse_args(
        ["simulate", model_file, "--dataset", "fashion-mnist-small", "--limit", str(N),
         "--batch-size", "9", "--seed", "7", "--scheduler", "local:2"])
    recs = simulate_chunks(client, args, N)
    assert len(sent) == 1                        # once for all workers and chunks
    _assert_same(Recording.concatenate(recs), _in_process(tmp_path, model_file, 40))


@pytest.mark.slow      # ~12 s: starts its own 2-worker cluster
def test_cli_scheduler_local_summary(tmp_path, model_file, capsys):
    rc = cli.main(["simulate", model_file, "--dataset", "fashion-mnist-small", "--limit", "20",
                   "--batch-size", "8", "--seed", "7", "--no-progress"])
    local = json.loads(capsys.readouterr().out)
    rc2 = cli.main(["simulate", model_file, "--dataset", "fashion-mnist-small", "--limit", "20",
                    "--batch-size", "6", "--seed", "7", "--scheduler", "local:2"])
    dist = json.loads(capsys.readouterr().out)
    assert rc == rc2 == 0 and dist["workers"] == 2
    for k in ("accuracy", "synaptic_events", "spikes_per_layer", "n"):
        assert dist[k] == local[k], k


def test_local_workers_one_thread_and_no_malloc_trim(client):
    import os

    env = client.run(lambda: {k: os.environ.get(k) for k in (
        "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")})
    assert len(env) == 2
    for e in env.values():
        assert e == {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1", "MALLOC_TRIM_THRESHOLD_": None}


@pytest.mark.parametrize("text", ["local:0", "local:x", "cluster", "tcp://", "http://h:1"])
def test_malformed_scheduler_is_refused(text):
    with pytest.raises(SchedulerError, match="--scheduler"):
        parse_scheduler(text)


def test_unreachable_scheduler_one_error_before_work(model_file, capsys, monkeypatch):
    monkeypatch.setattr("eventsim.distributed.CONNECT_TIMEOUT", 2.0)
    rc = cli.main(["simulate", model_file, "--dataset", "fashion-mnist-small", "--limit", "4",
                   "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "no Dask scheduler reachable" in err and "tcp://127.0.0.1:9" in err
