"""training.recipes: the checked TOML recipe behind ``eventsim train``.

Every key is checked (unknown keys name their dotted path and the closest allowed name),
nonsense combinations are refused before anything is written, every allowed preset x
method trains a few batches, and a budget-stopped run resumed from its checkpoint ends
with the same weights as an uninterrupted run.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from training import recipes
from training.checkpoint import load_checkpoint
from training.recipes.schema import SECTIONS

TINY = {"data": {"train_limit": 16, "test_limit": 8},
        "train": {"T": 2, "epochs": 1, "batch_size": 8}}
MODELS = {"mlp": {"hidden": [16]}, "conv": {"channels": [4]}, "recurrent": {"hidden": [16]},
          "feedback_mlp": {"hidden": [16]}, "feedback_conv": {"channels": [2]},
          "layers": {"layers": ["conv 4 3", "neuron", "avgpool 2", "flatten", "linear 16",
                                "neuron"]}}
METHODS = ("bptt", "ottt_a", "ottt_o", "saf_e", "saf_f", "ide")
ALLOWED = {(p, m) for p in ("mlp", "conv", "layers") for m in METHODS if m != "ide"} | {
    ("recurrent", "bptt"), ("feedback_mlp", "ide"), ("feedback_conv", "ide")}


def tiny(**tables) -> dict:
    """The TINY recipe document with ``tables`` merged in."""
    d = {k: dict(v) for k, v in TINY.items()}
    for name, values in tables.items():
        d.setdefault(name, {}).update(values)
    return d


def test_default_config_round_trips():
    text = recipes.to_toml()
    assert recipes.loads(text) == recipes.Recipe()
    for name, cls in SECTIONS.items():            # every key is shown, set or commented out
        assert f"[{name}]" in text
        for key in vars(cls()):
            assert f"\n{key} = " in text or f"\n# {key} = " in text, key


def test_a_changed_recipe_round_trips():
    r = recipes.from_dict(tiny(model={"preset": "conv", "channels": [8, 8]},
                               neuron={"kind": "klif", "surrogate_alpha": 3.0},
                               train={"clip_norm": 1.0, "budget_seconds": 10.0},
                               data={"dataset": "fashion-mnist", "dir": 'C:\\a "b"\n\u00e9'}))
    assert recipes.loads(recipes.to_toml(r)) == r
    assert recipes.loads(recipes.to_toml(r, comments=False)) == r


@pytest.mark.parametrize("doc, needles", [
    ({"model": {"hiden": [3]}}, ["model.hiden: unknown key", "did you mean 'hidden'"]),
    ({"modle": {}}, ["modle: unknown key", "did you mean 'model'"]),
    ({"T": 4}, ["T: keys belong in a table", "[train] T"]),
    ({"neuron": {"kind": "lfi"}}, ["neuron.kind: 'lfi' is not allowed", "did you mean 'lif'",
                                   "lif, if, klif, cuba"]),
    ({"train": {"T": 0}}, ["train.T: 0 is out of range; need >= 1"]),
    ({"train": {"lr": "fast"}}, ["train.lr: expected a number, got 'fast'"]),
    ({"train": {"epochs": True}}, ["train.epochs: expected an integer, got True"]),
    ({"train": {"epochs": 2.5}}, ["train.epochs: expected an integer, got 2.5"]),
    ({"model": {"hidden": [10, 0]}}, ["model.hidden[1]: 0 is out of range"]),
    ({"neuron": {"msg_p": 1.0}}, ["neuron.msg_p: 1.0 is out of range; need < 1"]),
    ({"model": "mlp"}, ["model: expected a table [model]"]),
])
def test_bad_keys_and_values_name_the_dotted_key(doc, needles):
    with pytest.raises(recipes.RecipeError) as e:
        recipes.from_dict(doc)
    message = str(e.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize("doc, key", [
    ({"method": {"name": "ide"}}, "method.name"),
    ({"model": {"preset": "feedback_mlp"}}, "method.name"),
    ({"model": {"preset": "recurrent"}, "method": {"name": "ottt_a"}}, "method.name"),
    ({"neuron": {"kind": "klif"}, "method": {"name": "saf_e"}}, "neuron.kind"),
    ({"neuron": {"reset": "hard"}, "method": {"name": "ottt_o"}}, "neuron.reset"),
    ({"model": {"norm": "batchnorm"}, "method": {"name": "ottt_a"}}, "model.norm"),
    ({"method": {"name": "saf_f", "decoder": "two"}}, "method.decoder"),
    ({"method": {"online_loss_c": 0.5}}, "method.online_loss_c"),
    ({"neuron": {"kind": "klif", "spikes": "ternary"}}, "neuron.spikes"),
    ({"neuron": {"kind": "cuba", "msg_p": 0.5}}, "neuron.msg_p"),
    ({"model": {"preset": "recurrent"}, "neuron": {"kind": "klif"}}, "neuron.kind"),
    ({"data": {"encoding": "rows"}}, "train.T"),
    ({"data": {"encoding": "rows"}, "model": {"preset": "conv"}, "train": {"T": 28}},
     "data.encoding"),
    ({"data": {"dataset": "events"}}, "data.train_events"),
    ({"data": {"train_events": "x.h5"}}, "data.train_events"),
    ({"model": {"preset": "layers", "layers": ["linear 10"]}}, "model.layers"),
    ({"model": {"preset": "layers", "layers": ["linear 10", "neurons"]}}, "model.layers[1]"),
    ({"model": {"preset": "layers", "layers": ["conv 4", "neuron"]}}, "model.layers[0]"),
    ({"model": {"kernel_size": 4}}, "model.kernel_size"),
    ({"model": {"preset": "feedback_mlp", "norm": "ws"}, "method": {"name": "ide"}},
     "model.norm"),
    ({"model": {"preset": "recurrent", "norm": "batchnorm"}}, "model.norm"),
    ({"model": {"preset": "feedback_mlp", "hidden": [8, 8]}, "method": {"name": "ide"}},
     "model.hidden"),
])
def test_nonsense_combinations_are_refused(doc, key):
    with pytest.raises(recipes.RecipeError) as e:
        recipes.from_dict(doc)
    assert str(e.value).startswith(key), str(e.value)


def test_allowed_presets_and_methods_are_exactly_the_sensible_ones():
    found = set()
    for preset, method in itertools.product(MODELS, METHODS):
        try:
            recipes.from_dict({"model": dict(preset=preset, **MODELS[preset]),
                               "method": {"name": method}})
            found.add((preset, method))
        except recipes.RecipeError as e:
            assert str(e).split(":")[0] in ("method.name", "neuron.kind"), str(e)
    assert found == ALLOWED


@pytest.mark.parametrize("preset, method", sorted(ALLOWED))
def test_every_allowed_preset_and_method_trains(preset, method, tmp_path):
    r = recipes.from_dict(tiny(model=dict(preset=preset, **MODELS[preset]),
                               method={"name": method}))
    result = recipes.train(recipes.prepare(r, tmp_path / "run"), progress=False)
    assert result.stopped == "finished" and result.summary["epochs_done"] == 1
    assert np.isfinite(result.summary["final"]["train_loss"])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(recipes.FILES)


@pytest.mark.parametrize("tables", [
    {"neuron": {"kind": "if"}},
    {"neuron": {"kind": "klif", "msg_p": 0.25}},
    {"neuron": {"kind": "cuba", "learn_decay": True}},
    {"neuron": {"spikes": "ternary", "learn_amplitude": True}},
    {"neuron": {"learn_decay": True, "msg_p": 0.5, "surrogate": "sigmoid"}},
    {"method": {"decoder": "two", "two_warmup": 0}, "train": {"epochs": 2}},
    {"model": {"preset": "recurrent"}, "neuron": {"kind": "cuba"},
     "data": {"encoding": "rows"}, "train": {"T": 28}},
    {"model": {"preset": "conv", "channels": [4], "pool": "max"}, "data": {"encoding": "rate"},
     "train": {"optimizer": "sgd", "schedule": "constant", "clip_norm": 1.0}},
], ids=["if", "klif-msg", "cuba", "ternary", "plif-msg", "two", "rows-cuba", "conv-rate-sgd"])
def test_neuron_and_training_variants_train(tables, tmp_path):
    base = tiny(model={"hidden": [16]})
    for name, values in tables.items():
        base.setdefault(name, {}).update(values)
    result = recipes.train(recipes.prepare(recipes.from_dict(base), tmp_path / "run"),
                           progress=False)
    assert np.isfinite(result.summary["final"]["train_loss"])


def test_budget_stops_after_an_epoch_and_resume_matches_an_uninterrupted_run(tmp_path):
    doc = tiny(model={"hidden": [16], "dropout": 0.2}, neuron={"msg_p": 0.3},
               data={"encoding": "rate"}, train={"epochs": 3})
    whole = recipes.train(recipes.prepare(recipes.from_dict(doc), tmp_path / "whole"),
                          progress=False)
    assert whole.stopped == "finished"
    doc["train"]["budget_seconds"] = 1e-9         # every epoch "would end past it"
    r = recipes.from_dict(doc)
    first = recipes.train(recipes.prepare(r, tmp_path / "parts"), progress=False)
    assert first.stopped == "budget" and first.summary["epochs_done"] == 1
    assert load_checkpoint(tmp_path / "parts" / "checkpoint.h5").epoch == 1
    second = recipes.train(recipes.prepare(r, tmp_path / "parts", resume=True), progress=False)
    assert second.stopped == "budget" and second.summary["epochs_done"] == 2
    doc["train"]["budget_seconds"] = 1e9          # the budget may change on resume
    last = recipes.train(recipes.prepare(recipes.from_dict(doc), tmp_path / "parts",
                                         resume=True), progress=False)
    assert last.stopped == "finished" and last.summary["epochs_done"] == 3
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.h5").model_state
    b = load_checkpoint(tmp_path / "parts" / "checkpoint.h5").model_state
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert whole.summary["history"]["train_loss"] == last.summary["history"]["train_loss"]


def test_resume_with_another_recipe_names_the_key(tmp_path):
    recipes.train(recipes.prepare(recipes.from_dict(tiny(model={"hidden": [16]})),
                                  tmp_path / "run"), progress=False)
    with pytest.raises(recipes.RecipeError, match=r"--resume: train.lr = 0.01 differs"):
        recipes.prepare(recipes.from_dict(tiny(model={"hidden": [16]}, train={"lr": 0.01})),
                        tmp_path / "run", resume=True)


def test_refused_runs_write_nothing(tmp_path):
    out = tmp_path / "a" / "b"
    bad = [tiny(data={"dataset": "fashion-mnist", "dir": str(tmp_path / "nowhere")}),
           tiny(data={"dataset": "events", "train_events": str(tmp_path / "no.h5"),
                      "test_events": str(tmp_path / "no.h5")})]
    for doc in bad:
        with pytest.raises(recipes.RecipeError) as e:
            recipes.prepare(recipes.from_dict(doc), out)
        assert str(e.value).startswith(("data.dir", "data.train_events")), str(e.value)
        assert str(tmp_path) in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_metadata_holds_every_key():
    from training.recipes.run import _metadata
    from training.trainer import History

    r = recipes.from_dict(tiny())
    data = type("D", (), {"info": {"classes": ["a", "b"]}})()
    meta = _metadata(r, data, History(), "finished")
    for key in r.flat():
        assert key in meta
    assert recipes.loads(meta["recipe"]) == r


def test_a_run_failing_before_its_first_checkpoint_leaves_nothing(tmp_path, monkeypatch):
    import training.trainer as trainer

    def diverge(*args, **kwargs):
        raise trainer.TrainingDiverged("loss became nan at epoch 1, batch 1")

    monkeypatch.setattr(trainer, "fit", diverge)
    p = recipes.prepare(recipes.from_dict(tiny(model={"hidden": [16]})), tmp_path / "a" / "run")
    assert (tmp_path / "a" / "run").is_dir()
    with pytest.raises(trainer.TrainingDiverged):
        recipes.train(p, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_the_readme_example_recipe_is_valid():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Train from the command line", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    r = recipes.loads(block, "README.md")
    assert r.model.preset == "conv" and r.neuron.kind == "klif" and r.method.decoder == "two"
    assert r.train.budget_seconds == 600
