"""Combinations of recipe choices that cannot train, refused before anything runs.

Each rule raises :class:`RecipeError` naming the keys involved and what to use instead.
The network-level checks of ``fit`` (``training.trainer._check_training_method``) run
afterwards on the built network (``training.recipes.build``), as a backstop.
"""
from __future__ import annotations

from .schema import RecipeError

ONLINE = ("ottt_a", "ottt_o", "saf_e", "saf_f")
FEEDBACK = ("feedback_mlp", "feedback_conv")
LAYER_WORDS = {"linear": 1, "wslinear": 1, "conv": 2, "wsconv": 2, "batchnorm": 0, "scale": 1,
               "neuron": 0, "avgpool": 1, "maxpool": 1, "dropout": 1, "flatten": 0}


def _refuse(cond: bool, message: str) -> None:
    if cond:
        raise RecipeError(message)


def check_combinations(r) -> None:
    """RecipeError for the first combination of ``r`` (a Recipe) that makes no sense."""
    _check_model(r)
    _check_neuron(r)
    _check_method(r)
    _check_data(r)


def _check_model(r) -> None:
    m = r.model
    _refuse(m.preset in ("mlp", "recurrent") and not m.hidden,
            f"model.hidden: preset {m.preset!r} needs at least one hidden size")
    _refuse(m.preset == "feedback_mlp" and len(m.hidden) != 1,
            f"model.hidden: feedback_mlp has one hidden layer; give one size, got {m.hidden}")
    _refuse(m.preset in ("conv", "feedback_conv") and not m.channels,
            f"model.channels: preset {m.preset!r} needs at least one conv layer")
    _refuse(m.kernel_size % 2 == 0, f"model.kernel_size: must be odd ('same' padding), got "
                                    f"{m.kernel_size}")
    _refuse(m.preset == "layers" and not m.layers,
            "model.layers: preset 'layers' needs a list of layers, e.g. "
            "[\"linear 256\", \"neuron\"]")
    _refuse(m.preset != "layers" and bool(m.layers),
            f"model.layers: used only with preset = 'layers' (preset is {m.preset!r})")
    for i, entry in enumerate(m.layers):
        words = entry.split()
        where = f"model.layers[{i}] = {entry!r}"
        _refuse(not words or words[0] not in LAYER_WORDS,
                f"{where}: unknown layer; allowed: " + ", ".join(LAYER_WORDS))
        _refuse(len(words) != 1 + LAYER_WORDS[words[0]],
                f"{where}: '{words[0]}' takes {LAYER_WORDS[words[0]]} number(s)")
        for w in words[1:]:
            try:
                v = float(w)
            except ValueError:
                raise RecipeError(f"{where}: {w!r} is not a number") from None
            ok = (0 <= v < 1) if words[0] == "dropout" else (v > 0 and (
                words[0] == "scale" or v == int(v)))
            _refuse(not ok, f"{where}: {w!r} is out of range")
    if m.preset == "layers":
        _refuse("neuron" not in [e.split()[0] for e in m.layers],
                "model.layers: no 'neuron' entry: the network would not spike")
    _refuse(m.norm == "ws" and m.preset in FEEDBACK + ("recurrent",),
            f"model.norm: 'ws' is for the mlp and conv presets, not {m.preset!r}")
    _refuse(m.norm == "batchnorm" and m.preset == "recurrent",
            "model.norm: the recurrent preset has no BatchNorm; use 'auto' or 'none'")
    _refuse(m.norm != "auto" and m.preset == "layers",
            "model.norm: preset 'layers' takes its normalisation from the list ('batchnorm', "
            "'wslinear', 'wsconv', 'scale'); leave norm = 'auto'")
    _refuse(m.dropout > 0 and m.preset in ("recurrent", "feedback_conv", "layers"),
            f"model.dropout: not used by preset {m.preset!r} (layers: add 'dropout P')")


def _check_neuron(r) -> None:
    n, preset = r.neuron, r.model.preset
    lif_like = n.kind in ("lif", "if")
    _refuse(n.spikes == "ternary" and not lif_like,
            f"neuron.spikes: ternary spikes need neuron.kind = 'lif' or 'if' (got {n.kind!r})")
    _refuse(n.learn_amplitude and not lif_like,
            f"neuron.learn_amplitude: needs neuron.kind = 'lif' or 'if' (got {n.kind!r})")
    _refuse(n.msg_p > 0 and n.kind == "cuba", "neuron.msg_p: MSG needs neuron.kind = 'lif', "
                                              "'if' or 'klif' (cuba has none)")
    _refuse(n.learn_decay and n.kind in ("if", "klif"),
            f"neuron.learn_decay: a learnable decay needs neuron.kind = 'lif' or 'cuba' "
            f"(got {n.kind!r})")
    _refuse(n.learn_decay and n.tau == 1.0 and n.kind == "lif",
            "neuron.learn_decay: needs 0 < beta < 1 (tau > 1), got tau = 1")
    if preset in FEEDBACK:
        _refuse(not lif_like, f"neuron.kind: {preset} has IF or LIF neurons, got {n.kind!r}")
        _refuse(n.spikes != "binary" or n.learn_amplitude or n.learn_decay or n.msg_p > 0,
                f"neuron: {preset} takes kind, tau and threshold only (no ternary spikes, "
                "learned amplitude or decay, MSG)")
        _refuse(n.kind == "lif" and n.tau == 1.0,
                "neuron.tau: a feedback LIF needs lam = 1 - 1/tau > 0 (tau > 1)")
    if preset == "recurrent":
        _refuse(n.kind not in ("lif", "if", "cuba"),
                f"neuron.kind: preset 'recurrent' uses RecurrentLIF (lif, if) or a recurrent "
                f"CubaLIF (cuba), got {n.kind!r}")
        _refuse(n.spikes != "binary" or n.learn_amplitude or n.msg_p > 0,
                "neuron: preset 'recurrent' takes no ternary spikes, learned amplitude or MSG")


def _check_method(r) -> None:
    name, preset, n = r.method.name, r.model.preset, r.neuron
    _refuse(name == "ide" and preset not in FEEDBACK,
            f"method.name: 'ide' trains a feedback network; set model.preset = 'feedback_mlp' "
            f"or 'feedback_conv' (got {preset!r})")
    _refuse(preset in FEEDBACK and name != "ide",
            f"method.name: model.preset = {preset!r} trains with 'ide' only (got {name!r})")
    if name in ONLINE:
        _refuse(preset not in ("mlp", "conv", "layers"),
                f"method.name: {name!r} trains feed-forward presets (mlp, conv, layers), not "
                f"{preset!r}")
        _refuse(n.kind not in ("lif", "if"),
                f"neuron.kind: {name!r} needs lif or if neurons, got {n.kind!r}")
        _refuse(n.reset != "subtract", f"neuron.reset: {name!r} needs 'subtract'")
        _refuse(n.spikes != "binary" or n.learn_amplitude or n.learn_decay or n.msg_p > 0,
                f"neuron: {name!r} needs plain binary LIF/IF neurons (no ternary spikes, "
                "learned amplitude or decay, MSG)")
        _refuse(r.model.norm == "batchnorm",
                f"model.norm: {name!r} cannot use BatchNorm (its statistics span all T "
                "steps); use 'ws' or 'auto'")
    if name != "bptt":
        _refuse(r.method.decoder != "mean", f"method.decoder: 'two' needs method.name = "
                                            f"'bptt' (got {name!r})")
        _refuse(r.method.loss != "rate_ce" or r.method.label_smoothing != 0.0,
                f"method.loss / method.label_smoothing: apply to bptt only; leave them at "
                f"'rate_ce' and 0 for {name!r}")
    else:
        _refuse(r.method.online_loss_c != 0.0,
                "method.online_loss_c: applies to the online methods, not 'bptt'")
    _refuse(r.method.decoder == "two" and r.method.loss != "rate_ce",
            "method.decoder: 'two' weights the loss 'rate_ce'; set method.loss = 'rate_ce'")


def _check_data(r) -> None:
    d, preset = r.data, r.model.preset
    events = d.dataset == "events"
    if events:
        _refuse(d.train_events is None, "data.train_events: dataset = 'events' needs the "
                                        "training event file")
        _refuse(d.test_events is None, "data.test_events: dataset = 'events' needs the test "
                                       "event file")
        _refuse(d.encoding != "direct", "data.encoding: event data are binned as they are; "
                                        "leave encoding = 'direct'")
        _refuse(d.dir is not None, "data.dir: for image datasets; event data come from "
                                   "data.train_events / data.test_events")
    else:
        for key in ("train_events", "test_events", "dt_us"):
            _refuse(getattr(d, key) is not None,
                    f"data.{key}: used only with dataset = 'events' (got {d.dataset!r})")
        _refuse(d.dir is not None and d.dataset == "fashion-mnist-small",
                "data.dir: the committed subset needs no directory (fashion-mnist and mnist "
                "do)")
    if d.encoding == "rows":
        _refuse(r.train.T != 28, f"train.T: encoding 'rows' presents one image row per step; "
                                 f"set T = 28 (got {r.train.T})")
        _refuse(preset in ("conv", "feedback_conv"),
                f"data.encoding: 'rows' feeds [T, B, 28] rows, which {preset!r} cannot take")
