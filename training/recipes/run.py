"""Run a checked recipe into an output directory: check, train, checkpoint, export, summarise.

The directory holds, once training ends (or its budget stops it after an epoch)::

    config.toml     the resolved recipe (written first; --resume compares against it)
    checkpoint.h5   written by ``fit`` after every epoch (atomic)
    model.h5        the exported model; its metadata holds every recipe key ("model.preset",
                    "train.T", ...) and the whole recipe as TOML ("recipe")
    summary.json    recipe, per-epoch history, final metrics, why training stopped

:func:`prepare` does every check that can fail on the input (the recipe against the
network it builds, the data, the output directory) before anything is written; every
file is written atomically, so a refused or failed run leaves no partial file.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snncore.dtypes import default_dtype
from snncore.fileio import atomic_output

from .build import Data, build_network, load_data, make_optimizer
from .schema import Recipe, RecipeError, from_dict, loads, to_toml

FILES = ("config.toml", "checkpoint.h5", "model.h5", "summary.json")


@dataclass
class Prepared:
    """A recipe ready to train: the network, its data and optimiser, the output directory."""
    recipe: Recipe
    out: Path
    resume: bool
    data: Data
    net: object
    optimizer: object
    schedule: object
    created: list = field(default_factory=list)   # directories this run made


@dataclass
class Result:
    """What :func:`train` did: the history, how it stopped, the files it wrote."""
    history: object
    stopped: str                  # "finished" or "budget"
    summary: dict
    files: dict
    net: object = None


class _BudgetReached(Exception):
    """Raised by the epoch callback when the next epoch would end past the budget."""


def _dtype(r):
    return np.dtype(r.train.dtype).type


def _check_method(r, net) -> None:
    """``fit``'s own checks of the method against the built network, as a RecipeError."""
    from ..trainer import _check_training_method

    m = r.method
    try:
        _check_training_method(m.name, m.online_loss_c, m.saf_rules, m.loss, m.label_smoothing,
                               m.decoder, net, (m.ide_solver, m.ide_tol, m.ide_max_iter))
    except ValueError as e:
        raise RecipeError(f"method.name = {m.name!r}: {str(e).removeprefix('fit: ')}") from None


def _first_difference(a: dict, b: dict, ignore=("train.budget_seconds",)) -> str | None:
    """The first dotted key whose value differs between two flat recipes, or None."""
    for key in sorted(set(a) | set(b)):
        if key not in ignore and a.get(key) != b.get(key):
            return key
    return None


def _check_out(out: Path, r: Recipe, resume: bool) -> list:
    """Check (and create) the output directory; returns the directories made.

    Refuses (RecipeError naming the path) a file in the way, an unwritable directory, a
    directory holding another run without ``resume``, and with ``resume`` a directory with
    no checkpoint or whose recipe differs (naming the first differing key).
    """
    if out.exists() and not out.is_dir():
        raise RecipeError(f"--out {out}: exists and is not a directory")
    if resume:
        if not (out / "checkpoint.h5").is_file():
            raise RecipeError(f"--resume: {out / 'checkpoint.h5'} does not exist (nothing to "
                              "resume; drop --resume to start)")
        saved_path = out / "config.toml"
        try:
            saved = loads(saved_path.read_text(), str(saved_path))
        except OSError as e:
            raise RecipeError(f"--resume: cannot read {saved_path} ({e.strerror})") from None
        key = _first_difference(saved.flat(), r.flat())
        if key is not None:
            raise RecipeError(f"--resume: {key} = {r.flat().get(key)!r} differs from the run "
                              f"in {out} ({saved.flat().get(key)!r}); resume with its "
                              f"config.toml, or choose another --out")
    elif out.is_dir():
        found = [n for n in FILES if (out / n).exists()]
        if found:
            raise RecipeError(f"--out {out}: already holds a run ({', '.join(found)}); pass "
                              "--resume to continue it or choose another directory")
    created, p = [], out.absolute()
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        _remove_dirs(created)
        raise RecipeError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    return created


def _remove_dirs(created: list) -> None:
    """Remove the (empty) directories a refused run made, deepest first."""
    for d in sorted(created, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass


def prepare(recipe: Recipe | dict, out, *, resume: bool = False) -> Prepared:
    """Every check, then the network, data and optimiser; creates ``out`` (empty) last.

    Raises RecipeError (one line naming the key or path) and writes nothing when anything
    is wrong: the recipe, the combination of method and network, a missing data file or
    directory, the output directory (see :func:`_check_out`).
    """
    r = recipe if isinstance(recipe, Recipe) else from_dict(recipe)
    out = Path(out)
    with default_dtype(_dtype(r)):
        data = load_data(r, _dtype(r))
        net = build_network(r, data.input_shape, data.n_classes)
        _check_method(r, net)
        opt, schedule = make_optimizer(r, net, len(data.train[1]))
    created = _check_out(out, r, resume)
    return Prepared(r, out, resume, data, net, opt, schedule, created)


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def _metadata(r: Recipe, data: Data, history, stopped: str) -> dict:
    """The exported model's metadata: every recipe key, the recipe's TOML, the outcome."""
    meta = {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.flat().items()}
    meta.update(recipe=to_toml(r, comments=False), trained_by="eventsim train",
                dataset=r.data.dataset, method=r.method.name, seed=r.train.seed,
                epochs_done=len(history.epoch), stopped=stopped)
    if history.test_acc:
        meta["accuracy"] = float(history.test_acc[-1])
    if "classes" in data.info:
        meta["classes"] = json.dumps(data.info["classes"])
    if "dt_us" in data.info:
        meta["dt_us"] = float(data.info["dt_us"])
    if r.data.encoding == "rows":
        meta["input"] = "rows: step t carries image row t"
    return meta


def train(p: Prepared, *, progress: bool = True) -> Result:
    """Train a prepared recipe; write config.toml, checkpoint.h5, model.h5, summary.json.

    A wall-clock budget (``train.budget_seconds``) stops training after the epoch whose
    successor would end past it (the next epoch is assumed to take as long as the last);
    the checkpoint holds that epoch and ``--resume`` continues the same run exactly.
    """
    from ..export import export
    from ..trainer import fit

    r, out = p.recipe, p.out
    _write_text(out / "config.toml", to_toml(r))
    t0, budget = time.monotonic(), r.train.budget_seconds
    seen = {}

    def on_epoch_end(epoch, history):
        seen["history"] = history
        if budget is not None and epoch < r.train.epochs:
            if time.monotonic() - t0 + history.seconds[-1] > budget:
                raise _BudgetReached()

    m, stopped = r.method, "finished"
    with default_dtype(_dtype(r)):
        try:
            history = fit(p.net, p.data.train, test=p.data.test, T=r.train.T,
                          epochs=r.train.epochs, batch_size=r.train.batch_size,
                          optimizer=p.optimizer, schedule=p.schedule, loss=m.loss,
                          encoder=p.data.encoder, label_smoothing=m.label_smoothing,
                          clip_norm=r.train.clip_norm, seed=r.train.seed,
                          checkpoint=out / "checkpoint.h5", resume=p.resume, progress=progress,
                          on_epoch_end=on_epoch_end, decoder=m.decoder, two_lam=m.two_lam,
                          two_warmup=m.two_warmup, method=m.name,
                          online_loss_c=m.online_loss_c, saf_rules=m.saf_rules,
                          ide_solver=m.ide_solver, ide_tol=m.ide_tol,
                          ide_max_iter=m.ide_max_iter)
        except _BudgetReached:
            history, stopped = seen["history"], "budget"
        except BaseException:
            _forget_unstarted(p)
            raise
        p.net.eval()
        export(p.net, out / "model.h5", input_shape=p.data.input_shape, T=r.train.T,
               encoding=p.data.encoding, dtype=_dtype(r), overwrite=True,
               **_metadata(r, p.data, history, stopped))
    summary = _summary(p, history, stopped, time.monotonic() - t0)
    _write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    files = {name: str(out / name) for name in FILES}
    return Result(history, stopped, summary, files, p.net)


def _forget_unstarted(p: Prepared) -> None:
    """After a failure before the first checkpoint (divergence or Ctrl-C in epoch 1), remove
    config.toml and the directories this run made, so the same command can run again."""
    if p.resume or (p.out / "checkpoint.h5").exists():
        return
    (p.out / "config.toml").unlink(missing_ok=True)
    _remove_dirs(p.created)


def _summary(p: Prepared, history, stopped: str, seconds: float) -> dict:
    r = p.recipe
    h = history.as_dict()
    final = {k: (h[k][-1] if h.get(k) else None)
             for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    return {
        "recipe": r.as_dict(),
        "stopped": stopped,
        "epochs_done": len(history.epoch),
        "epochs": r.train.epochs,
        "final": final,
        "best_test_acc": max(h["test_acc"]) if h.get("test_acc") else None,
        "history": h,
        "seconds_this_run": seconds,
        "parameters": int(sum(np.asarray(q.data).size for q in p.net.parameters())),
        "train_samples": int(len(p.data.train[1])),
        "test_samples": int(len(p.data.test[1])),
        "input_shape": list(p.data.input_shape),
        "encoding": p.data.encoding,
        "data": p.data.info,
        "files": {name: name for name in FILES},
        "resume": f"eventsim train {p.out / 'config.toml'} --out {p.out} --resume",
    }
