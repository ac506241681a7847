"""The training loop: ``fit`` a network by BPTT with progress bars, metrics and checkpoints.

One epoch: shuffle with the run's seeded generator, encode each batch to ``[T, B, ...]``,
forward, loss on the readout, hand-derived backward, optional clipping, optimiser step and
per-iteration schedule step.  After every epoch the metrics are recorded and, if a
checkpoint path is given, a checkpoint is written atomically.  Resuming from it continues
bit-identically (weights, optimiser, schedule, and every random generator are restored).

A non-finite loss stops training with :class:`TrainingDiverged`; the last checkpoint
written (at the end of the last good epoch) is left intact.  Ctrl-C (KeyboardInterrupt) stops
it with :class:`TrainingInterrupted`, whose one-line message says which epoch the checkpoint
holds and how to resume.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from snncore import encoding
from snncore.fileio import check_output

from . import losses
from . import ide as ide_mod
from . import online as online_mod
from . import two as two_mod
from .checkpoint import (check_architecture, load_checkpoint, restore_rng, rng_state,
                         save_checkpoint)
from .layers import Sequential
from .module import Module
from .optim import clip_grad_norm


class TrainingDiverged(FloatingPointError):
    """The loss or the gradients became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`fit`; the message says where and how to resume.

    Attributes:
        epoch: the epoch (counted from 1) that was running.
        checkpoint: the checkpoint path given to ``fit``, or None.
        checkpoint_epoch: the number of finished epochs the checkpoint holds, or None when
            this run has not written (or resumed from) one.
    """

    def __init__(self, message: str, epoch: int | None = None, checkpoint=None,
                 checkpoint_epoch: int | None = None):
        super().__init__(message)
        self.epoch, self.checkpoint, self.checkpoint_epoch = epoch, checkpoint, checkpoint_epoch


def _interrupted(where: str, epoch: int, ckpt_path, saved_epoch) -> TrainingInterrupted:
    """The TrainingInterrupted for Ctrl-C at ``where`` ("epoch 2, batch 7", ...)."""
    if ckpt_path is None:
        advice = "no checkpoint was configured (pass checkpoint=PATH to fit to be able to resume)"
    elif saved_epoch is None:
        advice = (f"no checkpoint written yet (the first is written to {ckpt_path} at the end of "
                  f"epoch {epoch})")
    else:
        advice = (f"checkpoint {ckpt_path} holds epoch {saved_epoch}: call "
                  f"fit(..., checkpoint={str(ckpt_path)!r}, resume=True) to continue")
    return TrainingInterrupted(f"training interrupted at {where}; {advice}", epoch=epoch,
                               checkpoint=ckpt_path, checkpoint_epoch=saved_epoch)


@dataclass
class History:
    """Per-epoch metrics; every list has one entry per finished epoch.

    ``epoch`` holds epoch numbers counted from 1, as everywhere in ``fit``: the progress bar
    ("epoch 1/5"), the ``on_epoch_end(epoch, history)`` callback, a checkpoint's ``epoch``
    (epochs completed) and the divergence messages all name the first epoch 1.

    Filled only by the runs that use them (else empty):

    - ``time_weights``: with ``decoder="two"``, one float64 array ``[T]`` per epoch, the
      decoder weights after that epoch's update (the weights the next epoch trains with);
    - ``msg_p``: with ``msg_schedule``, the masking probability the epoch trained with.

    :meth:`as_dict` holds the per-epoch numbers (``msg_p`` only when filled), not the
    ``time_weights`` rows.
    """
    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    time_weights: list = field(default_factory=list)
    msg_p: list = field(default_factory=list)

    def as_dict(self) -> dict[str, list[float]]:
        """``{name: [float per epoch]}``; ``msg_p`` only when filled, no ``time_weights``."""
        return {k: [float(v) for v in vals] for k, vals in vars(self).items()
                if k != "time_weights" and (vals or k != "msg_p")}

    @classmethod
    def from_dict(cls, d: dict, time_weights=None) -> "History":
        """The History of :meth:`as_dict`'s ``d``; ``time_weights``: rows ``[epochs, T]``."""
        h = cls()
        for k in vars(h):
            if k != "time_weights":
                getattr(h, k).extend(d.get(k, []))
        if time_weights is not None:
            h.time_weights.extend(np.array(row, dtype=np.float64) for row in time_weights)
        return h


def make_encoder(spec, T: int) -> Callable:
    """``encoder(images [B, ...], rng) -> [T, B, ...]`` from "direct", "rate" or a callable."""
    if callable(spec):
        return lambda x, rng: spec(x, T, rng)
    if spec == "direct":
        return lambda x, rng: encoding.direct(x, T)
    if spec == "rate":
        return lambda x, rng: encoding.rate(x, T, rng)
    raise ValueError(f"encoder must be 'direct', 'rate' or a callable, got {spec!r}")


def _loss_fn(spec, label_smoothing: float, time_weights: Callable = lambda: None):
    """``(y, labels) -> (loss, dL/dy)``; "rate_ce" decodes with ``time_weights()`` (read at
    every call, so ``fit`` can change the weights between epochs)."""
    if callable(spec):
        return spec
    if spec not in losses.LOSSES:
        raise ValueError(f"loss must be one of {sorted(losses.LOSSES)} or a callable, got {spec!r}")
    fn = losses.LOSSES[spec]
    if spec == "rate_ce":
        return lambda y, labels: fn(y, labels, time_weights=time_weights(),
                                    label_smoothing=label_smoothing)
    return lambda y, labels: fn(y, labels, label_smoothing=label_smoothing)


def _constrained(net) -> list:
    """Every module of ``net`` (itself, its layers, their sub-modules) with a ``constrain()``
    method, in order, each once: ``fit`` calls them after every optimiser step."""
    found, seen = [], set()

    def walk(m):
        if id(m) in seen:
            return
        seen.add(id(m))
        if callable(getattr(m, "constrain", None)):
            found.append(m)
        for value in vars(m).values():
            for sub in (value if isinstance(value, (list, tuple)) else (value,)):
                if isinstance(sub, Module):
                    walk(sub)

    walk(net)
    return found


def _check_msg_schedule(msg_schedule):
    if msg_schedule is not None and not callable(getattr(msg_schedule, "apply", None)):
        raise ValueError(f"msg_schedule: must be a training.MSGSchedule (an object with "
                         f"apply(net, epoch)), got {type(msg_schedule).__name__}")


def _seed_default_generators(net, seed: int) -> None:
    """Layers built without ``rng=`` (MSG and dropout masks) all start from the same default
    stream, so layers of one shape would draw the same masks: each gets its own,
    ``default_rng([seed, position])``, reproducible from ``fit``'s seed."""
    for i, layer in enumerate(getattr(net, "layers", [net])):
        if getattr(layer, "rng_given", True) is False:
            layer.rng = np.random.default_rng([seed, i])


def _generators(net) -> dict[str, np.random.Generator]:
    """Every np.random.Generator held by a layer (dropout masks), keyed by layer position."""
    found = {}
    for i, layer in enumerate(getattr(net, "layers", [net])):
        for name, value in vars(layer).items():
            if isinstance(value, np.random.Generator):
                found[f"layer{i}.{name}"] = value
    return found


def _check_data(name, data, encoder, caller="fit"):
    if not (isinstance(data, tuple) and len(data) == 2):
        raise ValueError(f"{caller}: {name} must be a pair (images, labels)")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim < 2 or y.shape != (len(x),):
        raise ValueError(f"{caller}: {name} images {x.shape} and labels {y.shape} do not match "
                         "([N, ...features] and [N])")
    if len(x) == 0:
        raise ValueError(f"{caller}: the {name} set is empty: images {x.shape}, labels {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{caller}: {name} labels must be integers, got {y.dtype}")
    _check_images(f"{caller}: {name} images", x, encoder)
    return x, y


def _check_images(what: str, x: np.ndarray, encoder) -> None:
    """Refuse images the built-in encoder would misread: integer pixels (0..255) and values
    outside what it accepts ("direct": finite; "rate": finite and in [0, 1]).  A callable
    encoder gets the images as they are and checks them itself."""
    if callable(encoder) or encoder not in ("direct", "rate"):
        return
    if x.dtype.kind != "f":
        raise ValueError(f"{what} are {x.dtype}; the {encoder!r} encoder needs float images in "
                         "[0, 1]: use dataset.float_images() or images.astype(np.float32) / 255")
    lo, hi = x.min(), x.max()       # NaN propagates: one pass, no mask unless a value is bad
    if (0 <= lo and hi <= 1) if encoder == "rate" else (np.isfinite(lo) and np.isfinite(hi)):
        return
    bad = ~np.isfinite(x)
    if encoder == "rate":
        bad |= (x < 0) | (x > 1)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        need = "finite values in [0, 1] (spike probabilities)" if encoder == "rate" else "finite values"
        raise ValueError(f"{what}[{', '.join(map(str, where))}] = {x[where].item()!r}: the "
                         f"{encoder!r} encoder needs {need}")


def _check_gradients(named, epoch: int, batch: int) -> None:
    """Raise TrainingDiverged naming the first parameter whose gradient is not finite.

    Spiking layers turn a NaN membrane into "no spike", so a NaN weight need not reach the
    loss; its gradient always carries it.  One sum per parameter is cheap next to the GEMMs.
    """
    for name, p in named:
        if not np.isfinite(p.grad.sum()):
            bad = "parameter" if not np.isfinite(p.data.sum()) else "gradient"
            raise TrainingDiverged(f"{bad} {name!r} became non-finite at epoch {epoch + 1}, "
                                   f"batch {batch + 1}; training stopped")


METHODS = ("bptt",) + online_mod.ONLINE_METHODS + ("ide",)


def _check_training_method(method, online_loss_c, saf_rules, loss, label_smoothing, decoder,
                           net, ide_options=("broyden", 1e-6, 50)) -> None:
    """ValueError (saying what to use) for a bad ``method`` or an option it does not take."""
    if method not in METHODS:
        raise ValueError(f"fit: unknown method {method!r}; choose one of {list(METHODS)}")
    from .feedback import _FeedbackNet
    if isinstance(net, _FeedbackNet) and method != "ide":
        raise ValueError(f"fit: a {type(net).__name__} trains with method='ide' (it has no "
                         f"backward pass through time), got method={method!r}")
    if method == "bptt":
        if online_loss_c != 0.0:
            raise ValueError("fit: online_loss_c applies to the online methods (ottt_a, ottt_o, "
                             "saf_e, saf_f); BPTT uses loss=")
        return
    if method == "ide":
        _check_ide(online_loss_c, loss, label_smoothing, decoder, net)
        ide_mod._check_solver(*ide_options)
        return
    online_mod._check_c(online_loss_c)
    if saf_rules not in online_mod.SAF_RULES:
        raise ValueError(f"fit: saf_rules must be one of {list(online_mod.SAF_RULES)}, "
                         f"got {saf_rules!r}")
    if decoder != "mean":
        raise ValueError(f"fit: decoder={decoder!r} is for BPTT; method={method!r} trains each "
                         "step's output (use decoder='mean')")
    if loss != "rate_ce" or label_smoothing != 0.0:
        raise ValueError(f"fit: method={method!r} trains with the per-step loss "
                         "(1 - c) CE + c MSE (set c with online_loss_c); leave loss='rate_ce' "
                         "and label_smoothing=0 (they apply to BPTT and evaluation)")
    online_mod.plan(net, method)     # the network's layers: ValueError naming the bad one


def _check_ide(online_loss_c, loss, label_smoothing, decoder, net) -> None:
    """ValueError for an option ``method="ide"`` does not take, or a network it cannot train."""
    from .feedback import _FeedbackNet
    if not isinstance(net, _FeedbackNet):
        raise ValueError(f"fit: method='ide' trains a training.FeedbackMLP or FeedbackConv, "
                         f"got {type(net).__name__}")
    if online_loss_c != 0.0:
        raise ValueError("fit: online_loss_c applies to the online methods, not method='ide'")
    if decoder != "mean" or loss != "rate_ce" or label_smoothing != 0.0:
        raise ValueError("fit: method='ide' trains the cross-entropy of the readout of the "
                         "equilibrium rate; leave decoder='mean', loss='rate_ce' and "
                         "label_smoothing=0")


def _ide_batch(net, xb, yb, *, solver, tol, max_iter, optimizer, clip_norm, constrained,
               named, epoch, b):
    """One IDE batch (docs/methods.md section 17); returns ``(loss, score [B, C])``."""
    value, _, _ = ide_mod.gradients(net, xb, yb, solver=solver, tol=tol, max_iter=max_iter)
    if math.isfinite(value):
        _apply_update(named, [p for _, p in named], optimizer, clip_norm, constrained, epoch, b)
    return value, net.last_logits


def _apply_update(named, params, optimizer, clip_norm, constrained, epoch: int, b: int) -> None:
    """Check the gradients, clip their norm (``clip_norm``), step the optimiser and keep
    constrained parameters in range (``constrained``: layers with ``constrain()``)."""
    _check_gradients(named, epoch, b)
    if clip_norm is not None:
        norm = clip_grad_norm(params, clip_norm)
        if not math.isfinite(norm):
            raise TrainingDiverged(f"gradient norm became {norm} at epoch {epoch + 1}, "
                                   f"batch {b + 1}; training stopped")
    optimizer.step()
    for layer in constrained:
        layer.constrain()


def _online_batch(net, xb, yb, *, method, c, saf_rules, optimizer, clip_norm, constrained,
                  named, epoch, b):
    """One batch of an online method; returns ``(loss, score [B, C])``."""
    params = [p for _, p in named]

    def update(_params, _clip):
        _apply_update(named, params, optimizer, clip_norm, constrained, epoch, b)

    if method in online_mod.TRAIN_METHODS:
        return online_mod._run(net, xb, yb, method, c, saf_rules, update=update)
    value, score = online_mod._run(net, xb, yb, method, c, saf_rules)
    if math.isfinite(value):
        update(params, clip_norm)
    return value, score


def _finite_or_diverged(value: float, epoch: int, b: int, ckpt_path) -> float:
    """``value``, or TrainingDiverged when the loss is not finite."""
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"loss became {value} at epoch {epoch + 1}, batch {b + 1}; training stopped"
            + (f"; the last good checkpoint {ckpt_path} (end of epoch {epoch}) is intact"
               if ckpt_path is not None and ckpt_path.exists() else ""))
    return value


def _data_parallel_batch(dp, net, x, yb, loss_fn, params, tw) -> tuple[float, int]:
    """This rank's forward and backward on its slice of the encoded global batch
    ``x [T, B, ...]``, gradients scaled by ``B_r / B`` and summed over the ranks (one
    Allreduce); returns ``(global-batch loss, correct predictions of the global batch)``."""
    B = x.shape[1]
    part = dp.part(B)
    xr, yr = x[:, part], yb[part]
    share = len(yr) / B
    if len(yr):
        y = net.forward(xr)
        value, grad = loss_fn(y, yr)
        net.backward(grad * grad.dtype.type(share), need_input_grad=False)
        hits = int(np.sum(losses.decode(y, tw).argmax(axis=1) == yr))
    else:                                   # more ranks than samples: a zero contribution
        value, hits = 0.0, 0
    total = dp.allreduce(params, [value * share, hits])
    return float(total[0]), int(round(total[1]))


def _extra(T, batch_size, seed, history: History, method="bptt", online_loss_c=0.0,
           saf_rules="natural") -> dict:
    """The checkpoint's ``extra`` group: run settings and the TWO weights' history."""
    extra = {"T": int(T), "batch_size": int(batch_size), "seed": int(seed),
             "method": str(method)}
    if method in online_mod.ONLINE_METHODS:
        extra.update(online_loss_c=float(online_loss_c), saf_rules=str(saf_rules))
    if history.time_weights:
        extra["time_weights_history"] = np.stack(history.time_weights)
    return extra


def evaluate(net: Sequential, images, labels, *, T: int, encoder="direct", batch_size: int = 1000,
             loss="rate_ce", seed: int = 0, time_weights=None, progress: bool = False):
    """Mean loss and accuracy of ``net`` in eval mode; returns ``(loss, accuracy)``.

    The decoder weights are ``time_weights`` when given, else the network's own
    (``net.time_weights``, set by ``fit(..., decoder="two")``), else uniform; they weight
    both the accuracy's decoding and the "rate_ce" loss.

    ``images`` and ``labels`` are checked as :func:`fit` checks its test set (not empty,
    float images the encoder accepts).
    """
    images, labels = _check_data("evaluation", (images, labels), encoder, caller="evaluate")
    return _evaluate(net, images, labels, T=T, encoder=encoder, batch_size=batch_size, loss=loss,
                     seed=seed, time_weights=time_weights, progress=progress)


def _evaluate(net, images, labels, *, T, encoder, batch_size, loss, seed, time_weights=None,
              progress=False):
    """:func:`evaluate` on checked, non-empty arrays."""
    enc = make_encoder(encoder, T)
    if time_weights is None:
        time_weights = (net.decoder_weights(T) if callable(getattr(net, "decoder_weights", None))
                        else getattr(net, "time_weights", None))
    loss_fn = _loss_fn(loss, 0.0, lambda: time_weights)
    rng = np.random.default_rng(seed)
    was_training = net.training
    net.eval()
    total_loss, correct = 0.0, 0
    n = len(images)
    bar = tqdm(range(0, n, batch_size), desc="eval", leave=False, disable=not progress)
    try:
        for start in bar:
            xb, yb = images[start:start + batch_size], labels[start:start + batch_size]
            y = net.forward(enc(xb, rng))
            total_loss += loss_fn(y, yb)[0] * len(xb)
            correct += int(np.sum(losses.decode(y, time_weights).argmax(axis=1) == yb))
    finally:
        bar.close()
        net.train(was_training)
    return total_loss / n, correct / n


def fit(net: Sequential, train, *, T: int, epochs: int, batch_size: int, optimizer,
        schedule=None, test=None, loss="rate_ce", encoder="direct", label_smoothing: float = 0.0,
        clip_norm: float | None = None, seed: int = 0, checkpoint=None, resume: bool = False,
        overwrite: bool = False, progress: bool = True, eval_batch_size: int = 1000, on_epoch_end=None,
        decoder: str = "mean", two_lam: float = 0.3, two_warmup: int = 5,
        two_accuracy: str = "cumulative", msg_schedule=None, method: str = "bptt",
        online_loss_c: float = 0.0, saf_rules: str = "natural", ide_solver: str = "broyden",
        ide_tol: float = 1e-6, ide_max_iter: int = 50, comm=None) -> History:
    """Train ``net`` by BPTT (the default) or by an online method.

    Args:
        net: network whose output is the readout ``[T, B, C]``.
        train, test: pairs ``(images [N, ...features] float in [0, 1], labels [N] int)``;
            images are shaped as the first layer expects (``[N, 784]`` or ``[N, 1, 28, 28]``).
        T: time steps; encoder: "direct", "rate" or ``f(images, T, rng)``.
        epochs, batch_size: length of training; the last partial batch is used.
        optimizer: a ``training.optim`` optimiser over ``net.parameters()``.
        schedule: a ``training.optim`` schedule, stepped once per iteration (build it with
            ``total_steps = epochs * ceil(N / batch_size)``).
        loss: "rate_ce" (CE of the time-mean readout) or "per_step_ce", or a callable
            ``(y, labels) -> (loss, dL/dy)``.
        clip_norm: clip the global gradient norm to this value.
        seed: seeds shuffling and rate encoding.
        checkpoint: path of the HDF5 checkpoint written after every epoch; with
            ``resume=True`` training continues from it if it exists (a checkpoint of another
            network is refused with a one-line ValueError).
        overwrite: start afresh over an existing ``checkpoint`` (without ``resume``);
            else an existing checkpoint raises FileExistsError before training starts.
            A file of another kind (model, recording, ...) is never replaced.
        on_epoch_end: optional ``f(epoch, history)`` called after each epoch (and after its
            checkpoint is written) with the epoch number counted from 1, the number the
            progress bar shows: ``epoch == history.epoch[-1]``, 1 after the first epoch.
        decoder: "mean" (uniform decoder; clears ``net.time_weights``) or "two" (temporally
            weighted output, docs/methods.md section 6; needs ``loss="rate_ce"``): the
            weights ``net.time_weights`` start at ones and, after every epoch
            ``e > two_warmup`` (counted from 0), become
            ``(1 - two_lam) a + two_lam acc / mean(acc)`` with ``acc[T]`` the epoch's
            training accuracy per step; ``history.time_weights`` records them per epoch.
        two_lam: TWO step size in (0, 1].  two_warmup: epochs ``0..two_warmup`` keep ones.
        two_accuracy: "cumulative" (step t predicts ``argmax sum_{tau <= t} o_tau``, the
            authors' reading) or "per_step" (``argmax o_t``).
        msg_schedule: a ``training.MSGSchedule``; ``msg_schedule.apply(net, epoch)`` sets
            every MSG layer's ``msg_p`` at the start of each epoch (recorded in
            ``history.msg_p``).
        method: "bptt" (backpropagation through time, the default), or an online method of
            ``training.online`` (docs/methods.md section 15): "ottt_a" (OTTT, gradients summed
            over the steps, one update per batch), "ottt_o" (OTTT, one update per step),
            "saf_e" (SAF-E, one update per step) or "saf_f" (SAF-F, one loss at the last step,
            one update per batch).  Online methods train with the per-step loss
            ``((1 - c) CE(o_t, y) + c MSE(o_t, onehot(y))) / T`` (SAF-F: on the accumulated
            output), keep one step of state (memory independent of T), need a network
            without BatchNorm (use WSLinear/WSConv2d) and LIF/IF layers with
            ``reset="subtract"``, and take neither ``decoder="two"`` nor another ``loss`` or
            ``label_smoothing`` (those apply to BPTT; ``loss`` still scores evaluation).
            The training accuracy decodes ``sum_t o_t`` (SAF-F: the accumulated output).
            The method is recorded in the checkpoint; resuming with another is refused.
            "ide" trains a ``training.FeedbackMLP`` or ``FeedbackConv`` by implicit
            differentiation on the equilibrium (docs/methods.md section 17;
            ``training.ide.gradients``): one
            simulation of T steps and one adjoint solve per batch, loss the cross-entropy of
            ``W_o a + b_o`` on the (weighted) average rate ``a``; the training accuracy decodes
            the same logits.
        ide_solver, ide_tol, ide_max_iter: the adjoint solve of method "ide" ("broyden" or
            "iterate", relative-residual tolerance, most iterations); a solve that does not
            converge stops training with ``training.IDEConvergenceError``.
        online_loss_c: the MSE weight ``c`` in [0, 1] of the online loss (0 with BPTT).
        saf_rules: SAF-E's layer-1 and bias gradients, "natural" (with the factor ``c_t``)
            or "ottt" (OTTT's rules); see ``training.online.gradients``.
        After every optimiser step, each layer of ``net`` that defines ``constrain()`` has
        it called (to keep a learnable parameter in range).
        comm: an mpi4py communicator (``MPI.COMM_WORLD``) for data-parallel training
            (``training.distributed``; needs the ``mpi`` extra): every rank calls ``fit``
            with the same arguments, takes its slice of each global batch of
            ``batch_size``, and the gradients are summed by one Allreduce, so every rank
            takes the same step, equal to one process's to float round-off.  Only rank 0
            writes the checkpoint and shows progress.  BPTT with decoder "mean" only; no
            BatchNorm, Dropout or MSG.
    Returns:
        :class:`History` of per-epoch metrics.
    Raises:
        ValueError: an empty train or test set, mismatched labels, or images the encoder
            would misread: integer pixels (convert with ``dataset.float_images()`` or
            ``images / 255``), non-finite values, or values outside [0, 1] for "rate";
            a bad TWO option or ``msg_schedule`` (the message names the argument); resuming
            a checkpoint written with the other decoder.
        TrainingDiverged: the loss or a gradient became NaN or infinite.
        TrainingInterrupted: Ctrl-C; the message says which epoch the checkpoint holds and
            how to resume.  The checkpoint is left as it was at the end of that epoch.
    """
    x, labels = _check_data("train", train, encoder)
    if test is not None:
        x_test, labels_test = _check_data("test", test, encoder)
    if int(T) < 1 or int(epochs) < 0 or int(batch_size) < 1:
        raise ValueError(f"fit: need T >= 1, epochs >= 0, batch_size >= 1; got {T}, {epochs}, {batch_size}")
    decoder, two_lam, two_warmup, two_accuracy = two_mod.check_options(
        decoder, two_lam, two_warmup, two_accuracy)
    use_two = decoder == "two"
    if use_two and loss != "rate_ce":
        raise ValueError(f"decoder: 'two' weights the decoded output of loss='rate_ce', "
                         f"got loss={loss!r}")
    _check_msg_schedule(msg_schedule)
    _check_training_method(method, online_loss_c, saf_rules, loss, label_smoothing, decoder, net,
                           (ide_solver, ide_tol, ide_max_iter))
    dp = None
    if comm is not None:                     # data-parallel over MPI (training.distributed)
        from .distributed import DataParallel

        dp = DataParallel(comm)
        dp.check(net, method, decoder)
        progress = progress and dp.rank == 0
    enc = make_encoder(encoder, T)
    if method != "ide" and (use_two or getattr(net, "time_weights", None) is not None):
        net.time_weights = np.ones(int(T)) if use_two else None
    loss_fn = _loss_fn(loss, label_smoothing, lambda: getattr(net, "time_weights", None))
    constrained = _constrained(net)
    rng = np.random.default_rng(seed)
    _seed_default_generators(net, seed)
    layer_rngs = _generators(net)
    history, start_epoch, step = History(), 0, 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None:
        check_output(ckpt_path, "checkpoint", overwrite=overwrite or resume)
    saved_epoch = None          # epochs held by a checkpoint this run wrote or resumed from

    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        if ("time_weights" in ck.model_state) != use_two:
            raise ValueError(f"checkpoint {ckpt_path} was written with decoder="
                             f"{'two' if not use_two else 'mean'!r}; resume it with that decoder "
                             f"(got decoder={decoder!r})")
        saved_method = str((ck.extra or {}).get("method", "bptt"))
        if saved_method != method:
            raise ValueError(f"checkpoint {ckpt_path} was written by method={saved_method!r}; "
                             f"resume it with that method (got method={method!r})")
        check_architecture(ckpt_path, ck.model_state, net.state_dict())
        net.load_state_dict(ck.model_state)
        optimizer.load_state_dict(ck.optimizer_state)
        if schedule is not None and ck.schedule_state is not None:
            schedule.load_state_dict(ck.schedule_state)
        rng = restore_rng(ck.rng_state["trainer"])
        for key, gen in layer_rngs.items():
            gen.bit_generator.state = restore_rng(ck.rng_state[key]).bit_generator.state
        history = History.from_dict(ck.metrics or {},
                                    (ck.extra or {}).get("time_weights_history"))
        start_epoch, step = ck.epoch, ck.step
        saved_epoch = ck.epoch

    named = list(net.named_parameters())
    params = [p for _, p in named]
    n = len(x)
    n_batches = math.ceil(n / batch_size)
    bar, where, epoch = None, "the start", start_epoch
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            net.train()
            p_msg = None if msg_schedule is None else float(msg_schedule.apply(net, epoch))
            tw = getattr(net, "time_weights", None)     # this epoch's decoder weights
            hits = np.zeros(int(T), dtype=np.int64) if use_two else None
            order = rng.permutation(n)
            sum_loss, correct, seen = 0.0, 0, 0
            bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress,
                       leave=False, unit="batch")
            for b in bar:
                where = f"epoch {epoch + 1}, batch {b + 1}"
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = x[idx], labels[idx]
                if method == "ide":
                    value, score = _ide_batch(
                        net, enc(xb, rng), yb, solver=ide_solver, tol=ide_tol,
                        max_iter=ide_max_iter, optimizer=optimizer, clip_norm=clip_norm,
                        constrained=constrained, named=named, epoch=epoch, b=b)
                if method not in ("bptt", "ide"):
                    value, score = _online_batch(
                        net, enc(xb, rng), yb, method=method, c=float(online_loss_c),
                        saf_rules=saf_rules, optimizer=optimizer, clip_norm=clip_norm,
                        constrained=constrained, named=named, epoch=epoch, b=b)
                if method != "bptt":
                    if not math.isfinite(value):
                        raise TrainingDiverged(
                            f"loss became {value} at epoch {epoch + 1}, batch {b + 1}; training "
                            "stopped" + (f"; the last good checkpoint {ckpt_path} (end of epoch "
                                         f"{epoch}) is intact"
                                         if ckpt_path is not None and ckpt_path.exists() else ""))
                    if schedule is not None:
                        schedule.step()
                    step += 1
                    sum_loss += value * len(idx)
                    correct += int(np.sum(score.argmax(axis=1) == yb))
                    seen += len(idx)
                    if b % 10 == 0:
                        bar.set_postfix(loss=f"{sum_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
                    continue
                optimizer.zero_grad()
                if dp is not None:
                    value, batch_correct = _data_parallel_batch(dp, net, enc(xb, rng), yb,
                                                                loss_fn, params, tw)
                else:
                    y = net.forward(enc(xb, rng))
                    value, grad = loss_fn(y, yb)
                if dp is not None:
                    value = _finite_or_diverged(value, epoch, b, ckpt_path)
                    _apply_update(named, params, optimizer, clip_norm, constrained, epoch, b)
                    if schedule is not None:
                        schedule.step()
                    step += 1
                    sum_loss += value * len(idx)
                    correct += batch_correct
                    seen += len(idx)
                    if b % 10 == 0:
                        bar.set_postfix(loss=f"{sum_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
                    continue
                if not math.isfinite(value):
                    raise TrainingDiverged(
                        f"loss became {value} at epoch {epoch + 1}, batch {b + 1}; training stopped"
                        + (f"; the last good checkpoint {ckpt_path} (end of epoch {epoch}) is intact"
                           if ckpt_path is not None and ckpt_path.exists() else ""))
                net.backward(grad, need_input_grad=False)
                _apply_update(named, params, optimizer, clip_norm, constrained, epoch, b)
                if schedule is not None:
                    schedule.step()
                step += 1
                sum_loss += value * len(idx)
                correct += int(np.sum(losses.decode(y, tw).argmax(axis=1) == yb))
                if hits is not None:
                    hits += two_mod.step_hits(y, yb, two_accuracy)
                seen += len(idx)
                if b % 10 == 0:
                    bar.set_postfix(loss=f"{sum_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
            bar.close()
            net.reset_cache()
            history.epoch.append(epoch + 1)
            history.train_loss.append(sum_loss / seen)
            history.train_acc.append(correct / seen)
            history.lr.append(float(optimizer.lr))
            if p_msg is not None:
                history.msg_p.append(p_msg)
            if use_two:
                if epoch >= two_mod.first_update_epoch(two_warmup):
                    net.time_weights = two_mod.update_weights(tw, hits / seen, two_lam)
                history.time_weights.append(net.time_weights.copy())
            if test is not None:
                where = f"epoch {epoch + 1}, evaluating the test set"
                tl, ta = _evaluate(net, x_test, labels_test, T=T, encoder=encoder, loss=loss,
                                   batch_size=eval_batch_size, seed=seed + 1)
            else:
                tl, ta = float("nan"), float("nan")
            history.test_loss.append(tl)
            history.test_acc.append(ta)
            history.seconds.append(time.perf_counter() - t0)
            if progress:
                tqdm.write(f"epoch {epoch + 1}/{epochs}: train loss {history.train_loss[-1]:.4f} "
                           f"acc {history.train_acc[-1]:.4f} | test loss {tl:.4f} acc {ta:.4f} | "
                           f"{history.seconds[-1]:.1f} s")
            if ckpt_path is not None and (dp is None or dp.rank == 0):
                where = f"epoch {epoch + 1}, writing the checkpoint"
                states = {"trainer": rng_state(rng)}
                states.update({k: rng_state(g) for k, g in layer_rngs.items()})
                save_checkpoint(ckpt_path, model_state=net.state_dict(), optimizer_state=optimizer.state_dict(),
                                schedule_state=None if schedule is None else schedule.state_dict(),
                                rng_state=states, epoch=epoch + 1, step=step, metrics=history.as_dict(),
                                extra=_extra(T, batch_size, seed, history, method,
                                             online_loss_c, saf_rules),
                                overwrite=True)  # this run's own checkpoint (checked above)
                saved_epoch = epoch + 1
            if on_epoch_end is not None:
                where = f"the end of epoch {epoch + 1} (in on_epoch_end)"
                on_epoch_end(epoch + 1, history)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        net.reset_cache()
        raise _interrupted(where, epoch + 1, ckpt_path, saved_epoch) from None
    return history
