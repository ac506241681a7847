"""Per-phase profile counters (``Simulator(profile=True)``, ``eventsim simulate --profile``).

The counters are checked against what a Recording reports independently: synaptic events
delivered, spikes emitted, and the neuron updates of populations whose count is known
(updated every step: n * T per sample).  Profiling changes no result.
"""
from __future__ import annotations

import json
import platform

import numpy as np
import pytest

import eventsim
from eventsim import cli
from snncore import modelfile as mf

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _model(rng):
    """Input -> 12 (bias: driven, "step" mode: every neuron every step) -> 9 (lazy, with a
    delayed recurrent sparse connection) -> readout of 3."""
    w = lambda *s: (rng.integers(-96, 160, s) / 256).astype(np.float32)
    rec = w(9, 9) * (rng.random((9, 9)) < 0.3)
    sparse = mf.Sparse(data=rec[rec != 0], indices=np.nonzero(rec)[1],
                       indptr=np.concatenate([[0], np.cumsum((rec != 0).sum(1))]), shape=(9, 9))
    return mf.Model(input_shape=(10,), T=16, encoding="rate", layers=[
        mf.Dense(w(12, 10), np.full(12, 0.125, np.float32)), mf.Spiking(beta=0.5, theta=0.5),
        mf.Dense(w(9, 12)), mf.Spiking(beta=0.75, theta=0.5, reset="subtract"),
        mf.Dense(w(3, 9)), mf.Readout()],
        connections=[mf.Connection(source=3, target=3, delay=2, projection=sparse)])


def _sum(rows, where=None, phase=None, key="events"):
    return sum(r[key] for r in rows if (where is None or r["where"] == where)
               and (phase is None or r["phase"] == phase))


@pytest.mark.parametrize("schedule", ["time", "layer"])
def test_profile_counters_agree_with_the_recording(schedule):
    rng = np.random.default_rng(0)
    model = _model(rng)
    if schedule == "layer":
        model.connections = []
    x = (rng.random((16, 5, 10)) < 0.3).astype(np.float32)
    plain = eventsim.Simulator(model, schedule=schedule).run(x)
    sim = eventsim.Simulator(model, schedule=schedule, profile=True)
    rec = sim.run(x)
    np.testing.assert_array_equal(rec.readout, plain.readout)
    for layer in model.spiking_layers:
        np.testing.assert_array_equal(rec.spikes[layer].to_dense(16, 5),
                                      plain.spikes[layer].to_dense(16, 5))
    rows = sim.last_profile
    assert plain.synaptic_events == rec.synaptic_events
    assert _sum(rows, phase="delivery") == rec.synaptic_events["total"] > 0
    for layer in model.spiking_layers:
        emitted = _sum(rows, f"layers[{layer}]", "emission")
        assert emitted == rec.spike_counts[layer] > 0
    T, B = 16, 5
    # layer 1 has constant input: updated every step ("step" mode); the readout too
    assert _sum(rows, "layers[1]", "update", "neuron_updates") == 12 * T * B
    assert _sum(rows, "layers[5]", "update", "neuron_updates") == 3 * T * B
    lazy = _sum(rows, "layers[3]", "update", "neuron_updates")
    assert 0 < lazy <= 9 * T * B
    if X86:
        assert all(_sum(rows, f"layers[{l}]", "update", "cycles") > 0 for l in (1, 3, 5))
        assert _sum(rows, "network", "set-up", "cycles") > 0
    assert plain.elapsed_s >= 0 and eventsim.Simulator(model).last_profile is None


def test_profile_is_off_by_default_and_validated():
    sim = eventsim.Simulator(_model(np.random.default_rng(1)))
    sim.run(np.zeros((16, 1, 10), np.float32))
    assert sim.last_profile is None
    with pytest.raises(ValueError, match="profile"):
        eventsim.Simulator(_model(np.random.default_rng(1)), profile="yes")


def test_cli_simulate_profile(tmp_path, capsys):
    pytest.importorskip("snncore.datasets")
    rng = np.random.default_rng(2)
    model = _model(rng)
    model.input_shape = (1, 28, 28)
    model.layers[:1] = [mf.Flatten(),
                        mf.Dense((rng.integers(-8, 16, (12, 784)) / 256).astype(np.float32))]
    model.connections = [mf.Connection(source=4, target=4, delay=2,
                                       projection=model.connections[0].projection)]
    path = mf.write_model(model, tmp_path / "m.h5")
    rc = cli.main(["simulate", str(path), "--dataset", "fashion-mnist-small", "--limit", "12",
                   "--batch-size", "5", "--profile"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    d = json.loads(out)
    rows = d["profile"]
    assert _sum(rows, phase="delivery") == d["synaptic_events"] > 0
    assert {r["where"] for r in rows} >= {"layers[2]", "layers[4]", "layers[6]", "network"}
    header = [l for l in err.splitlines() if l.startswith("where")]
    assert header and "cycles" in header[0] and "neuron upd." in header[0]
    assert sum(1 for l in err.splitlines() if l.startswith("layers[4]")) >= 2
    rc = cli.main(["simulate", str(path), "--dataset", "fashion-mnist-small", "--limit", "4"])
    out, err = capsys.readouterr()
    assert rc == 0 and "profile" not in json.loads(out) and "cycles" not in err
