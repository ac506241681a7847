"""Efficiency report: per-sample synaptic operations agree with the event loop's counts,
dense counts follow the formulas, energy follows the cost table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import eventsim
from eventsim import modelfile as mf
from eventsim.cli import main
from eventsim.efficiency import CostTable, EfficiencyReport, dense_ops, efficiency_report
from eventsim.inputs import from_dense
from eventsim.simulator import warmup_models

DATA = Path(__file__).resolve().parent.parent / "data"


def _x(model, T, B, p, seed, graded=False):
    rng = np.random.default_rng(seed)
    x = (rng.random((T, B) + tuple(model.input_shape)) < p).astype(np.float32)
    return x * rng.random(x.shape).astype(np.float32) if graded else x


@pytest.mark.parametrize("kind", [0, 1])
@pytest.mark.parametrize("graded", [False, True])
def test_per_sample_counts_match_the_event_loop(kind, graded):
    """Sparse, ternary, a delayed connection (mlp); padding, max and average pooling, CUBA
    (conv): every projection's per-sample counts sum to the kernel's, and each sample's
    counts are what a run of that sample alone reports."""
    model = warmup_models(np.float32)[kind]
    x = _x(model, 6, 5, 0.4, seed=kind, graded=graded)
    rep = efficiency_report(model, x, n_threads=1)
    for label, counts in rep.per_sample.items():
        assert int(counts.sum()) == rep.kernel_counts.get(label, 0), label
    for b in range(5):
        one = eventsim.Simulator(model, n_threads=1).run(x[:, b:b + 1]).synaptic_events
        for label, counts in rep.per_sample.items():
            assert counts[b] == one.get(label, 0), (label, b)
    ops = {p["label"]: p["op"] for p in rep.projections}
    first = "layers[0]"
    assert ops[first] == ("MAC" if graded else "AC")
    if kind == 1:
        assert ops["layers[3]"] == "AC"         # binary spikes through max pooling
        assert ops["layers[7]"] == "MAC"        # average-pooled values into a Dense


def test_event_batch_input():
    model = warmup_models(np.float32)[0]
    x = _x(model, 6, 3, 0.3, seed=3)
    a = efficiency_report(model, from_dense(x), n_threads=1)
    b = efficiency_report(model, x, n_threads=1, dense_input="current")
    for label in a.per_sample:
        assert np.array_equal(a.per_sample[label], b.per_sample[label])


def test_all_ones_input_meets_the_dense_formula():
    """Every input entry non-zero: synaptic operations of the first projection are the dense
    count for Dense, Sparse and an unpadded conv; fewer than the dense count with padding."""
    rng = np.random.default_rng(0)
    w = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)   # noqa: E731
    mask = rng.random((6, 5)) < 0.5
    indptr = np.concatenate([[0], np.cumsum(mask.sum(1))]).astype(np.int64)
    firsts = {
        "dense": (mf.Dense(w(6, 5)), (5,)),
        "sparse": (mf.Sparse(data=w(int(mask.sum())), indices=np.nonzero(mask)[1].astype(np.int64),
                             indptr=indptr, shape=(6, 5)), (5,)),
        "conv": (mf.Conv2d(w(3, 2, 3, 3), None, stride=(1, 1), padding=(0, 0)), (2, 5, 5)),
        "conv_pad": (mf.Conv2d(w(3, 2, 3, 3), None, stride=(2, 2), padding=(1, 1)), (2, 5, 5)),
    }
    for name, (proj, shape) in firsts.items():
        layers = [proj, mf.Spiking(beta=0.5, theta=1.0)]
        if len(shape) == 3:
            layers.append(mf.Flatten())
        out_shape = mf.projection_output_shape(proj, shape, "test")
        n_hidden = int(np.prod(out_shape))
        model = mf.Model(input_shape=shape, T=3,
                         layers=layers + [mf.Dense(w(2, n_hidden)), mf.Readout()])
        x = np.ones((3, 2) + shape, np.float32)
        rep = efficiency_report(model, x, n_threads=1)
        row = rep.projections[0]
        formula = 3 * dense_ops(proj, shape, out_shape)
        if name == "conv_pad":
            # 3x3 outputs of a padded 5x5: 3*3*3 outputs x 18 taps, minus the padding taps
            assert row["dense_ops"] == 3 * 3 * 3 * 3 * 2 * 9
            assert row["synops"] < formula
        else:
            assert row["synops"] == formula == row["dense_ops"], name
        assert row["op"] == "AC"


def test_energy_and_totals_follow_the_cost_table():
    model = warmup_models(np.float32)[1]
    x = _x(model, 6, 4, 0.5, seed=1, graded=True)
    costs = CostTable(ac_pj=1.5, mac_pj=7.0, neuron_update_pj=0.25, name="test")
    rep = efficiency_report(model, x, n_threads=1, costs=costs)
    t = rep.totals
    ac = sum(p["synops"] for p in rep.projections if p["op"] == "AC")
    mac = sum(p["synops"] for p in rep.projections if p["op"] == "MAC")
    upd = sum(p["updates_event"] for p in rep.populations)
    assert t["ac"] == ac and t["mac"] == mac and ac > 0 and mac > 0
    assert t["energy_pj"] == pytest.approx(1.5 * ac + 7.0 * mac + 0.25 * upd)
    assert t["dense_energy_pj"] == pytest.approx(
        7.0 * t["dense_ops"] + 0.25 * sum(p["updates_dense"] for p in rep.populations))
    for p in rep.populations:
        if p["spiking"]:
            assert p["firing_rate"] == pytest.approx(p["spikes"] / (p["neurons"] * 6))
    json.loads(rep.to_json())
    assert "memory traffic" in rep.format()


def test_concatenate_equals_one_report():
    model = warmup_models(np.float32)[0]
    x = _x(model, 6, 6, 0.4, seed=2)
    whole = efficiency_report(model, x, n_threads=1)
    parts = EfficiencyReport.concatenate([efficiency_report(model, x[:, :2], n_threads=1),
                                          efficiency_report(model, x[:, 2:], n_threads=1)])
    assert parts.to_dict() == whole.to_dict()
    with pytest.raises(ValueError, match="different models"):
        EfficiencyReport.concatenate([whole, efficiency_report(warmup_models(np.float32)[1],
                                                               _x(warmup_models(np.float32)[1],
                                                                  6, 1, 0.3, 0), n_threads=1)])


def test_bad_cost_table():
    with pytest.raises(ValueError, match="CostTable.mac_pj"):
        CostTable(mac_pj=-1.0)
    with pytest.raises(ValueError, match="CostTable.ac_pj"):
        CostTable(ac_pj=float("nan"))


def test_cli_report(capsys):
    assert main(["report", str(DATA / "fmnist_mlp.h5"), "--dataset", "fashion-mnist-small",
                 "--limit", "6", "--batch-size", "4", "--json", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["batch_size"] == 6 and out["n"] == 6
    assert out["projections"][0]["op"] == "MAC"          # direct-encoded images
    assert out["projections"][0]["synops"] <= out["projections"][0]["dense_ops"]
    assert main(["report", str(DATA / "fmnist_mlp.h5"), "--dataset", "fashion-mnist-small",
                 "--limit", "2", "--threads", "1"]) == 0
    assert "synops" in capsys.readouterr().out
    assert main(["report", "missing.h5"]) == 2
    assert "missing.h5" in capsys.readouterr().err
