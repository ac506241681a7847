"""The training recipe's configuration: typed sections, every key checked, a commented default.

A recipe is a TOML file with five tables (``[model]``, ``[neuron]``, ``[method]``, ``[data]``,
``[train]``); every key is optional and defaults to the value :func:`default_toml` prints.
:func:`from_dict` checks the whole file before anything runs: an unknown table or key (the
message names its dotted path, the closest allowed name and all allowed names), a value of
the wrong type, outside its range or not among its choices, and combinations that make no
sense (``training.recipes.checks``).  Every problem raises :class:`RecipeError` with one line
``<dotted.key>: <what is wrong>``.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any

try:
    import tomllib                      # Python >= 3.11
except ModuleNotFoundError:             # pragma: no cover
    import tomli as tomllib

METHOD_NAMES = ("bptt", "ottt_a", "ottt_o", "saf_e", "saf_f", "ide")
PRESETS = ("mlp", "conv", "recurrent", "feedback_mlp", "feedback_conv", "layers")
SURROGATES = ("atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle")
DATASETS = ("fashion-mnist-small", "fashion-mnist", "mnist", "events")


class RecipeError(ValueError):
    """A bad recipe: one line naming the dotted key (or file) and what is wrong."""


def _opt(default, help: str, *, choices=None, lo=None, hi=None, lo_open=False, hi_open=False,
         kind=None, example=None):
    """A config field: ``default`` (None: unset, optional), its help text, and its checks.

    ``kind``: the element type ("int", "float", "bool", "str", "int list", "str list");
    taken from the default when not given.  ``lo``/``hi``: inclusive bounds unless
    ``lo_open``/``hi_open``.  ``example``: the value print-config shows for an unset key.
    """
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str"}[type(default)]
    meta = dict(help=help, choices=choices, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open,
                kind=kind, example=example)
    if isinstance(default, list):
        return field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Model:
    """[model]: the network."""
    preset: str = _opt("mlp", "network: recurrent = RecurrentLIF/CubaLIF layers, feedback_* = "
                       "IDE's feedback nets, layers = model.layers",
                       choices=PRESETS)
    hidden: list = _opt([400], "hidden sizes (mlp, recurrent; feedback_mlp: exactly one)",
                        kind="int list", lo=1)
    channels: list = _opt([32, 64], "conv channels per layer (conv, feedback_conv)",
                          kind="int list", lo=1)
    kernel_size: int = _opt(3, "odd conv kernel ('same' padding)", lo=1)
    pool: str = _opt("avg", "2x2 pooling after each conv layer (conv)",
                     choices=("avg", "max", "none"))
    norm: str = _opt("auto", "normalisation after each weight layer: auto (BatchNorm for conv "
                     "with BPTT, weight standardisation for online methods, else none), "
                     "batchnorm, ws (WSLinear/WSConv2d + Scale), none",
                     choices=("auto", "batchnorm", "ws", "none"))
    ws_scale: float = _opt(2.74, "gain of the Scale after a weight-standardised layer",
                           lo=0.0, lo_open=True)
    dropout: float = _opt(0.0, "dropout probability before the readout (mlp, conv, "
                          "feedback_mlp)", lo=0.0, hi=1.0, hi_open=True)
    layers: list = _opt([], "preset = 'layers': entries 'linear N', 'wslinear N', "
                        "'conv C K', 'wsconv C K', 'batchnorm', 'scale S', 'neuron', "
                        "'avgpool K', 'maxpool K', 'dropout P', 'flatten'; the readout "
                        "Linear is appended", kind="str list",
                        example=["linear 256", "neuron"])


@dataclass
class Neuron:
    """[neuron]: the spiking layers."""
    kind: str = _opt("lif", "neuron model: klif = learnable membrane scaling k, cuba = "
                     "current-based LIF", choices=("lif", "if", "klif", "cuba"))
    tau: float = _opt(2.0, "membrane time constant in steps (beta = 1 - 1/tau; feedback "
                      "nets: lam = 1 - 1/tau)", lo=1.0)
    alpha: float = _opt(0.5, "synaptic decay per step (cuba)", lo=0.0, hi=1.0)
    threshold: float = _opt(1.0, "firing threshold", lo=0.0, lo_open=True)
    reset: str = _opt("subtract", "reset after a spike (online methods need subtract)",
                      choices=("subtract", "hard"))
    detach_reset: bool = _opt(True, "treat the spike in the reset as a constant in backward")
    spikes: str = _opt("binary", "spike values: binary {0, 1}, ternary {-1, 0, 1} (lif/if)",
                       choices=("binary", "ternary"))
    learn_amplitude: bool = _opt(False, "learn the spike amplitude (lif/if; folded at export)")
    learn_decay: bool = _opt(False, "learn the decay (PLIF: beta = sigmoid(w); cuba: alpha "
                             "and beta)")
    learn_k: bool = _opt(True, "learn KLIF's k (klif)")
    surrogate: str = _opt("atan", "surrogate gradient", choices=SURROGATES)
    surrogate_alpha: float = _opt(None, "surrogate sharpness (unset: the surrogate's default)",
                                  kind="float", lo=0.0, lo_open=True, example=2.0)
    msg_p: float = _opt(0.0, "MSG masking probability of the surrogate derivative (lif, if, "
                        "klif)", lo=0.0, hi=1.0, hi_open=True)


@dataclass
class Method:
    """[method]: how the gradients are computed and the output decoded."""
    name: str = _opt("bptt", "training method: ottt_*/saf_* are online (memory "
                     "independent of T), ide needs a feedback preset", choices=METHOD_NAMES)
    decoder: str = _opt("mean", "output decoder: two = temporally weighted (bptt)",
                        choices=("mean", "two"))
    two_lam: float = _opt(0.3, "TWO step size", lo=0.0, hi=1.0, lo_open=True)
    two_warmup: int = _opt(5, "TWO keeps uniform weights for epochs 0..two_warmup", lo=0)
    loss: str = _opt("rate_ce", "bptt loss", choices=("rate_ce", "per_step_ce"))
    label_smoothing: float = _opt(0.0, "label smoothing (bptt)", lo=0.0, hi=1.0, hi_open=True)
    online_loss_c: float = _opt(0.0, "MSE weight c of the online loss", lo=0.0, hi=1.0)
    saf_rules: str = _opt("natural", "SAF-E layer-1 and bias gradients",
                          choices=("natural", "ottt"))
    ide_solver: str = _opt("broyden", "IDE adjoint solver", choices=("broyden", "iterate"))
    ide_tol: float = _opt(1e-6, "IDE adjoint tolerance", lo=0.0, lo_open=True)
    ide_max_iter: int = _opt(50, "IDE adjoint iterations at most", lo=1)


@dataclass
class Data:
    """[data]: what the network learns from."""
    dataset: str = _opt("fashion-mnist-small", "fashion-mnist-small = the committed subset, "
                        "events = files of 'eventsim convert'",
                        choices=DATASETS)
    dir: str = _opt(None, "directory holding the IDX files (unset: $FASHION_MNIST_DIR / "
                    "$MNIST_DIR, data/, the Debian package)", kind="str",
                    example="/data/fashion-mnist")
    download: bool = _opt(False, "download a missing fashion-mnist / mnist")
    train_events: str = _opt(None, "event file of the training samples (dataset = 'events')",
                             kind="str", example="runs/events/train.h5")
    test_events: str = _opt(None, "event file of the test samples (dataset = 'events')",
                            kind="str", example="runs/events/test.h5")
    dt_us: float = _opt(None, "event bin width in microseconds (unset: the file's dt)",
                        kind="float", lo=0.0, lo_open=True, example=50000.0)
    train_limit: int = _opt(None, "first N training samples only (unset: all)", kind="int",
                            lo=1, example=1000)
    test_limit: int = _opt(None, "first N test samples only (unset: all)", kind="int", lo=1,
                           example=500)
    encoding: str = _opt("direct", "images: direct = analog every step, rate = "
                         "Bernoulli spikes, rows = row t at step t (T = 28)",
                         choices=("direct", "rate", "rows"))


@dataclass
class Train:
    """[train]: the optimisation run."""
    T: int = _opt(4, "time steps", lo=1)
    epochs: int = _opt(5, "epochs (in all, counting resumed ones)", lo=1)
    batch_size: int = _opt(128, "samples per batch", lo=1)
    optimizer: str = _opt("adam", "optimiser", choices=("adam", "adamw", "sgd"))
    lr: float = _opt(1e-3, "learning rate", lo=0.0, lo_open=True)
    weight_decay: float = _opt(0.0, "weight decay", lo=0.0)
    momentum: float = _opt(0.9, "SGD momentum", lo=0.0, hi=1.0, hi_open=True)
    schedule: str = _opt("cosine", "learning-rate schedule over all steps",
                         choices=("cosine", "constant"))
    clip_norm: float = _opt(None, "clip the gradient norm to this (unset: no clipping)",
                            kind="float", lo=0.0, lo_open=True, example=1.0)
    seed: int = _opt(0, "seeds initialisation, shuffling, encoding and masks", lo=0)
    budget_seconds: float = _opt(None, "wall-clock budget: stop (with a checkpoint) before an "
                                 "epoch that would end past it (unset: no budget)",
                                 kind="float", lo=0.0, lo_open=True, example=3600.0)
    dtype: str = _opt("float32", "float type of training and of the exported model",
                      choices=("float32", "float64"))


@dataclass
class Recipe:
    """A whole training recipe (every table)."""
    model: Model = field(default_factory=Model)
    neuron: Neuron = field(default_factory=Neuron)
    method: Method = field(default_factory=Method)
    data: Data = field(default_factory=Data)
    train: Train = field(default_factory=Train)

    def as_dict(self) -> dict:
        """``{table: {key: value}}`` without unset (None) keys: what :func:`from_dict` reads."""
        return {s: {k: v for k, v in vars(getattr(self, s)).items() if v is not None}
                for s in SECTIONS}

    def flat(self) -> dict:
        """``{"table.key": value}`` of every set key (the exported model's metadata)."""
        return {f"{s}.{k}": v for s, d in self.as_dict().items() for k, v in d.items()}


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Recipe)}


# ---------------------------------------------------------------------------------------
# checking
# ---------------------------------------------------------------------------------------
def _unknown(where: str, name: str, allowed) -> RecipeError:
    allowed = list(allowed)
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return RecipeError(f"{where}: unknown key{hint}; allowed: {', '.join(allowed)}")


def _check_scalar(where: str, v, kind: str, meta: dict):
    """``v`` converted to ``kind`` after checking type, range and choices."""
    if kind == "bool":
        if not isinstance(v, bool):
            raise RecipeError(f"{where}: expected true or false, got {v!r}")
        return v
    if kind == "str":
        if not isinstance(v, str):
            raise RecipeError(f"{where}: expected a string, got {v!r}")
        if meta["choices"] and v not in meta["choices"]:
            close = difflib.get_close_matches(v, meta["choices"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(f"{where}: {v!r} is not allowed{hint}; choose one of "
                              f"{', '.join(meta['choices'])}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind == "int" and
                                                                   not isinstance(v, int)):
        raise RecipeError(f"{where}: expected {'an integer' if kind == 'int' else 'a number'}, "
                          f"got {v!r}")
    if not math.isfinite(v):
        raise RecipeError(f"{where}: expected a finite number, got {v!r}")
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and (v <= lo if meta["lo_open"] else v < lo):
        raise RecipeError(f"{where}: {v!r} is out of range; need {'>' if meta['lo_open'] else '>='}"
                          f" {lo:g}" + (f" and {'<' if meta['hi_open'] else '<='} {hi:g}"
                                        if hi is not None else ""))
    if hi is not None and (v >= hi if meta["hi_open"] else v > hi):
        raise RecipeError(f"{where}: {v!r} is out of range; need "
                          f"{'<' if meta['hi_open'] else '<='} {hi:g}"
                          + (f" and {'>' if meta['lo_open'] else '>='} {lo:g}"
                             if lo is not None else ""))
    return int(v) if kind == "int" else float(v)


def _check_value(where: str, v, meta: dict):
    kind = meta["kind"]
    if kind.endswith(" list"):
        if not isinstance(v, list):
            raise RecipeError(f"{where}: expected a list of {kind.split()[0]}s, got {v!r}")
        return [_check_scalar(f"{where}[{i}]", x, kind.split()[0], meta) for i, x in enumerate(v)]
    return _check_scalar(where, v, kind, meta)


def _section(name: str, d, cls):
    if not isinstance(d, dict):
        raise RecipeError(f"{name}: expected a table [{name}], got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, v in d.items():
        if key not in fields:
            raise _unknown(f"{name}.{key}", key, fields)
        values[key] = _check_value(f"{name}.{key}", v, dict(fields[key].metadata))
    return cls(**values)


def from_dict(d: dict) -> Recipe:
    """The checked :class:`Recipe` of a parsed TOML document (RecipeError on any problem,
    combinations included)."""
    from .checks import check_combinations

    if not isinstance(d, dict):
        raise RecipeError(f"config: expected tables, got {d!r}")
    for key, v in d.items():
        if key not in SECTIONS:
            raise _unknown(key, key, SECTIONS) if isinstance(v, dict) else RecipeError(
                f"{key}: keys belong in a table ([model], [neuron], [method], [data], [train]); "
                + (f"did you mean [train] {key}?" if key in _keys("train") else
                   f"no table has a key {key!r}"))
    recipe = Recipe(**{name: _section(name, d.get(name, {}), cls)
                       for name, cls in SECTIONS.items()})
    check_combinations(recipe)
    return recipe


def _keys(section: str) -> list:
    return [f.name for f in dataclasses.fields(SECTIONS[section])]


def loads(text: str, source: str = "config") -> Recipe:
    """Parse and check TOML text; a syntax error names ``source`` and the line."""
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{source}: not valid TOML ({e})") from None
    return from_dict(d)


def load(path) -> dict:
    """The parsed (not yet checked) TOML document of ``path``; RecipeError naming the path
    when it is missing, unreadable or not TOML."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{path}: config file " + ("is a directory" if p.is_dir()
                                                     else "does not exist"))
    try:
        return tomllib.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read the config file ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML ({e})") from None


def parse_override(text: str) -> tuple[list, Any]:
    """``"table.key=value"`` -> ``(["table", "key"], value)``; the value is read as a TOML
    value (``3``, ``1e-3``, ``true``, ``[64, 64]``, ``"atan"``), else taken as a bare string."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--set {text}: expected table.key=value")
    path = key.split(".")
    if len(path) != 2 or not all(path):
        raise RecipeError(f"--set {text}: expected table.key=value (e.g. train.lr=0.01)")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return path, parsed


def apply_overrides(d: dict, overrides) -> dict:
    """A copy of the parsed document ``d`` with ``[(path, value)]`` set."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    for (table, key), value in overrides:
        section = out.setdefault(table, {})
        if not isinstance(section, dict):
            raise RecipeError(f"{table}: expected a table, got {section!r}")
        section[key] = value
    return out


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)   # a TOML basic string
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def _allowed(meta: dict) -> str:
    if meta["choices"]:
        return " | ".join(meta["choices"])
    lo, hi = meta["lo"], meta["hi"]
    parts = []
    if lo is not None:
        parts.append(f"{'>' if meta['lo_open'] else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if meta['hi_open'] else '<='} {hi:g}")
    return " and ".join(parts)


def to_toml(recipe: Recipe | None = None, comments: bool = True) -> str:
    """TOML text of ``recipe`` (default: the defaults): every key of every table, with its
    help and allowed values as comments; unset keys appear commented out with an example.
    ``loads(to_toml(r)) == r``."""
    recipe = Recipe() if recipe is None else recipe
    lines = []
    if comments:
        lines += ["# eventsim train recipe: every key with its default (eventsim train "
                  "--print-config).", "# Every key is optional; unset keys take these values.",
                  ""]
    for name in SECTIONS:
        section = getattr(recipe, name)
        if comments:
            lines.append(f"# {type(section).__doc__}")
        lines.append(f"[{name}]")
        for f in dataclasses.fields(section):
            meta, value = dict(f.metadata), getattr(section, f.name)
            if comments:
                allowed = _allowed(meta)
                lines.append(f"# {meta['help']}" + (f" [{allowed}]" if allowed else ""))
            if value is None:
                if comments:
                    lines.append(f"# {f.name} = {_toml_value(meta['example'])}")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
