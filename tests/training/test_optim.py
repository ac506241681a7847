"""Optimisers, schedules and clipping against plain-Python reference updates (and against
torch.optim when torch happens to be importable)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from training.module import Module, Parameter
from training.optim import (SGD, Adam, AdamW, CosineSchedule, MultiStepSchedule,
                            StepSchedule, clip_grad_norm, clip_grad_value)

N_STEPS = 6
SHAPES = {"w": (3, 4), "b": (5,)}        # "b" has weight_decay=False


# ------------------------------------------------------------------------------------------
# helpers: a deterministic problem, evaluated both vectorised and scalar by scalar


def make_problem(dtype=np.float64, seed=0):
    """Two parameters and per-step noise; the gradient is ``0.3 * p + noise[t]``."""
    rng = np.random.default_rng(seed)
    params = [("w", Parameter(rng.standard_normal(SHAPES["w"]).astype(dtype))),
              ("b", Parameter(rng.standard_normal(SHAPES["b"]).astype(dtype),
                              weight_decay=False))]
    noise = {n: rng.standard_normal((N_STEPS,) + s) for n, s in SHAPES.items()}
    return params, noise


def set_grads(params, noise, t):
    for name, p in params:
        p.grad[...] = 0.3 * p.data + noise[name][t].astype(p.data.dtype)


def run(opt, params, noise, steps=N_STEPS, start=0):
    for t in range(start, start + steps):
        set_grads(params, noise, t)
        opt.step()


def scalars(params, noise):
    """Flatten to [(x, decays, [noise per step])] for the reference loops."""
    out = []
    for name, p in params:
        for k, x in enumerate(p.data.astype(np.float64).ravel().tolist()):
            out.append([x, p.weight_decay, [float(noise[name][t].ravel()[k])
                                            for t in range(N_STEPS)]])
    return out


def flat(params):
    return np.concatenate([p.data.astype(np.float64).ravel() for _, p in params])


def ref_sgd(items, lr, momentum, dampening, nesterov, weight_decay, steps=N_STEPS):
    result = []
    for x, decays, noise in items:
        buf = None
        for t in range(steps):
            g = 0.3 * x + noise[t]
            if decays:
                g = g + weight_decay * x
            if momentum != 0:
                buf = g if buf is None else momentum * buf + (1 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            x = x - lr * g
        result.append(x)
    return np.array(result)


def ref_adam(items, lr, beta1, beta2, eps, weight_decay, decoupled, steps=N_STEPS):
    result = []
    for x, decays, noise in items:
        m = v = 0.0
        for t in range(1, steps + 1):
            g = 0.3 * x + noise[t - 1]
            if decays and decoupled:
                x = x - lr * weight_decay * x
            elif decays:
                g = g + weight_decay * x
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat = m / (1 - beta1 ** t)
            v_hat = v / (1 - beta2 ** t)
            x = x - lr * m_hat / (math.sqrt(v_hat) + eps)
        result.append(x)
    return np.array(result)


SGD_CASES = [
    dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0),
    dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0),
    dict(lr=0.05, momentum=0.9, dampening=0.3, nesterov=False, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, dampening=0.0, nesterov=True, weight_decay=0.0),
    dict(lr=0.05, momentum=0.8, dampening=0.0, nesterov=True, weight_decay=0.02),
]
ADAM_CASES = [
    dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    dict(lr=0.01, betas=(0.3, 0.9), eps=1e-8, weight_decay=0.05),     # lerp's other branch
    dict(lr=0.01, betas=(0.0, 0.0), eps=1e-3, weight_decay=0.0),
]


# ------------------------------------------------------------------------------------------
# reference updates


@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_sgd_matches_reference(kw):
    params, noise = make_problem()
    expected = ref_sgd(scalars(params, noise), **kw)
    run(SGD(params, **kw), params, noise)
    np.testing.assert_allclose(flat(params), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("kw", ADAM_CASES, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_adam_matches_reference(cls, kw):
    params, noise = make_problem()
    expected = ref_adam(scalars(params, noise), kw["lr"], *kw["betas"], kw["eps"],
                        kw["weight_decay"], decoupled=cls is AdamW)
    run(cls(params, **kw), params, noise)
    np.testing.assert_allclose(flat(params), expected, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: AdamW(ps, lr=0.01),
], ids=["sgd", "adam", "adamw"])
def test_float32_updates_in_place_in_float32(make):
    params, noise = make_problem(np.float32)
    params64, _ = make_problem(np.float64)
    arrays = [p.data for _, p in params]
    opt = make(params)
    run(opt, params, noise)
    run(make(params64), params64, noise)
    for (_, p), a in zip(params, arrays):
        assert p.data is a and p.data.dtype == np.float32
    for st in opt.state:
        assert all(v.dtype == np.float32 for v in st.values())
    np.testing.assert_allclose(flat(params), flat(params64), rtol=2e-5, atol=2e-5)


def test_mixed_dtypes_in_one_optimizer():
    p32 = Parameter(np.ones(7, np.float32))
    p64 = Parameter(np.ones((2, 2), np.float64))
    opt = Adam([p32, p64], lr=0.1)
    p32.grad[...] = 1
    p64.grad[...] = 1
    opt.step()
    assert p32.data.dtype == np.float32 and p64.data.dtype == np.float64
    # first Adam step: p - lr * g / (|g| + eps)
    np.testing.assert_allclose(p32.data, np.float32(1 - 0.1 / (1 + 1e-8)), rtol=1e-7)
    np.testing.assert_allclose(p64.data, 1 - 0.1 / (1 + 1e-8), rtol=1e-15)


# ------------------------------------------------------------------------------------------
# weight decay flags, gradients, zero_grad, None gradients


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, weight_decay=0.5),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.5),
    lambda ps: Adam(ps, lr=0.1, weight_decay=0.5),
    lambda ps: AdamW(ps, lr=0.1, weight_decay=0.5),
], ids=["sgd", "sgd-momentum", "adam", "adamw"])
def test_weight_decay_only_on_flagged_params(make):
    decayed = Parameter(np.full(4, 2.0))
    exempt = Parameter(np.full(4, 2.0), weight_decay=False)
    opt = make([decayed, exempt])
    for _ in range(3):
        opt.zero_grad()             # zero loss gradient: only weight decay can move p
        opt.step()
    assert np.all(exempt.data == 2.0)
    assert np.all(decayed.data < 2.0)


def test_step_does_not_modify_grad():
    params, noise = make_problem()
    set_grads(params, noise, 0)
    before = [p.grad.copy() for _, p in params]
    for opt in (SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
                Adam(params, weight_decay=0.1), AdamW(params)):
        opt.step()
        for (_, p), g in zip(params, before):
            np.testing.assert_array_equal(p.grad, g)


def test_zero_grad_and_none_grads_are_skipped():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = SGD([a, b], lr=1.0)
    a.grad[...] = 1.0
    b.grad = None
    opt.step()
    np.testing.assert_array_equal(a.data, 0.0)
    np.testing.assert_array_equal(b.data, 1.0)
    assert opt.steps == [1, 0]
    opt.zero_grad()
    np.testing.assert_array_equal(a.grad, 0.0)


def test_lr_is_settable_and_used():
    p = Parameter(np.zeros(2))
    opt = SGD([p], lr=1.0)
    opt.lr = 0.25
    p.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(p.data, -0.25)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0


def test_accepts_module_named_pairs_and_plain_params():
    class Net(Module):
        def __init__(self):
            super().__init__()
            self.weight = Parameter(np.ones(3))
            self.bias = Parameter(np.zeros(3), weight_decay=False)

    net = Net()
    assert SGD(net, lr=0.1).names == ["weight", "bias"]
    assert SGD(net.named_parameters(), lr=0.1).names == ["weight", "bias"]
    assert SGD(net.parameters(), lr=0.1).names == ["0", "1"]


# ------------------------------------------------------------------------------------------
# state_dict round trip


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, dampening=0.1),
    lambda ps: SGD(ps, lr=0.05),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
    lambda ps: AdamW(ps, lr=0.01),
], ids=["sgd-nesterov", "sgd-dampening", "sgd-plain", "adam", "adamw"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_resume_is_bit_identical(make, dtype):
    params, noise = make_problem(dtype)
    run(make(params), params, noise)                 # uninterrupted: 6 steps

    first, _ = make_problem(dtype)
    opt = make(first)
    run(opt, first, noise, steps=3)
    state = opt.state_dict()
    model = {n: p.data.copy() for n, p in first}
    run(opt, first, noise, steps=2, start=3)         # state_dict must be a copy

    resumed, _ = make_problem(dtype, seed=99)        # different initial values
    for n, p in resumed:
        p.data[...] = model[n]
    opt2 = make(resumed)
    opt2.lr = 123.0                                  # overwritten by load_state_dict
    opt2.load_state_dict(state)
    run(opt2, resumed, noise, steps=3, start=3)
    for (_, p), (_, q) in zip(params, resumed):
        assert p.data.dtype == q.data.dtype
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_flat_and_numeric():
    params, noise = make_problem()
    opt = Adam(params)
    run(opt, params, noise, steps=1)
    state = opt.state_dict()
    assert set(state) == {"lr", "beta1", "beta2", "eps", "weight_decay",
                          "state.w.step", "state.w.exp_avg", "state.w.exp_avg_sq",
                          "state.b.step", "state.b.exp_avg", "state.b.exp_avg_sq"}
    for value in state.values():
        assert isinstance(value, (np.ndarray, float, int))


def test_load_state_dict_rejects_mismatches():
    params, _ = make_problem()
    sgd = SGD(params, lr=0.1, momentum=0.9)
    adam = Adam(params)
    with pytest.raises(ValueError, match="missing"):
        sgd.load_state_dict(adam.state_dict())
    state = sgd.state_dict()
    state["state.w.momentum_buffer"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match="state.w.momentum_buffer.*shape"):
        sgd.load_state_dict(state)
    state = sgd.state_dict()
    state["state.extra.step"] = 0
    with pytest.raises(ValueError, match="unexpected.*state.extra.step"):
        sgd.load_state_dict(state)
    state = sgd.state_dict()
    state["lr"] = 0.5
    state["momentum"] = -1.0
    with pytest.raises(ValueError, match="momentum"):
        sgd.load_state_dict(state)
    assert sgd.lr == 0.1 and sgd.momentum == 0.9     # untouched after a failed load


# ------------------------------------------------------------------------------------------
# schedules


def lrs(schedule, n):
    out = [schedule.optimizer.lr]
    for _ in range(n):
        schedule.step()
        out.append(schedule.optimizer.lr)
    return out


def sgd(lr=1.0):
    return SGD([Parameter(np.zeros(1))], lr=lr)


def test_cosine_schedule_matches_closed_form():
    base, eta_min, T = 0.5, 0.01, 10
    expected = [eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T)) / 2
                for t in range(T + 1)] + [eta_min] * 3
    got = lrs(CosineSchedule(sgd(base), total_steps=T, min_lr=eta_min), T + 3)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    assert got[0] == base and got[T] == eta_min


def test_cosine_schedule_with_warmup():
    got = lrs(CosineSchedule(sgd(0.6), total_steps=6, warmup_steps=2), 7)
    expected = [0.2, 0.4, 0.6,
                0.6 * (1 + math.cos(math.pi * 1 / 4)) / 2, 0.3,
                0.6 * (1 + math.cos(math.pi * 3 / 4)) / 2, 0.0, 0.0]
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-16)


def test_step_and_multistep_schedules():
    assert lrs(StepSchedule(sgd(1.0), step_size=2, gamma=0.5), 6) == \
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert lrs(MultiStepSchedule(sgd(2.0), milestones=[1, 4], gamma=0.1), 5) == \
        [2.0, 2.0 * 0.1, 2.0 * 0.1, 2.0 * 0.1, 2.0 * 0.1 ** 2, 2.0 * 0.1 ** 2]


@pytest.mark.parametrize("make", [
    lambda o: CosineSchedule(o, total_steps=20, warmup_steps=3, min_lr=0.001),
    lambda o: StepSchedule(o, step_size=3, gamma=0.7),
    lambda o: MultiStepSchedule(o, milestones=(2, 5, 9), gamma=0.3),
], ids=["cosine", "step", "multistep"])
def test_schedule_state_dict_round_trip(make):
    reference = make(sgd(0.4))
    expected = lrs(reference, 12)
    schedule = make(sgd(0.4))
    lrs(schedule, 5)
    state = schedule.state_dict()
    assert all(isinstance(v, (int, float, np.ndarray)) for v in state.values())
    restored = make(sgd(9.0))
    restored.load_state_dict(state)
    assert restored.optimizer.lr == expected[5]
    assert lrs(restored, 7) == expected[5:]
    bad = dict(state, unknown=1)
    with pytest.raises(ValueError, match="unexpected"):
        restored.load_state_dict(bad)


# ------------------------------------------------------------------------------------------
# clipping


def test_clip_grad_norm_returns_pre_clip_norm_and_scales():
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros((1, 1)))
    a.grad[...] = [3.0, 4.0]
    b.grad[...] = 12.0
    assert clip_grad_norm([a, b], max_norm=100.0) == 13.0
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])          # below the limit: untouched
    norm = clip_grad_norm([("a", a), ("b", b)], max_norm=6.5)
    assert norm == 13.0
    coef = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3.0 * coef, 4.0 * coef], rtol=1e-15)
    np.testing.assert_allclose(b.grad, [[12.0 * coef]], rtol=1e-15)
    assert abs(clip_grad_norm([a, b], max_norm=math.inf) - 6.5) < 1e-6


def test_clip_grad_norm_float32_and_nonfinite():
    p = Parameter(np.full(100, 0.5, np.float32))
    p.grad[...] = 0.5
    assert clip_grad_norm([p], 1.0) == pytest.approx(5.0, rel=1e-6)
    assert p.grad.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p.grad.astype(np.float64)), 1.0, rtol=1e-5)
    p.grad[0] = np.inf
    with pytest.raises(ValueError, match="norm"):
        clip_grad_norm([p], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm([p], 1.0) == math.inf
    assert np.isnan(p.grad[0]) and np.all(p.grad[1:] == 0)     # scaled by 1/inf, as torch


def test_clip_grad_value():
    p = Parameter(np.zeros(4, np.float32))
    p.grad[...] = [-3.0, -0.5, 0.5, 3.0]
    clip_grad_value([p], 1.0)
    np.testing.assert_array_equal(p.grad, [-1.0, -0.5, 0.5, 1.0])
    assert p.grad.dtype == np.float32


# ------------------------------------------------------------------------------------------
# argument validation


def _p():
    return [Parameter(np.zeros(2))]


@pytest.mark.parametrize("make, name", [
    (lambda: SGD(_p(), lr=-0.1), "lr"),
    (lambda: SGD(_p(), lr=float("nan")), "lr"),
    (lambda: SGD(_p(), lr=0.1, momentum=-0.5), "momentum"),
    (lambda: SGD(_p(), lr=0.1, dampening=1.5), "dampening"),
    (lambda: SGD(_p(), lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda: SGD(_p(), lr=0.1, nesterov=True), "nesterov"),
    (lambda: SGD(_p(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda: SGD([], lr=0.1), "empty"),
    (lambda: SGD([("a", _p()[0]), ("a", _p()[0])], lr=0.1), "duplicate"),
    (lambda: SGD([Parameter(np.zeros(2, np.int64))], lr=0.1), "floating"),
    (lambda: Adam(_p(), lr=-1.0), "lr"),
    (lambda: Adam(_p(), betas=(1.0, 0.999)), "beta1"),
    (lambda: Adam(_p(), betas=(0.9, -0.1)), "beta2"),
    (lambda: Adam(_p(), betas=(0.9,)), "betas"),
    (lambda: Adam(_p(), eps=-1e-8), "eps"),
    (lambda: AdamW(_p(), weight_decay=-0.01), "weight_decay"),
    (lambda: CosineSchedule(sgd(), total_steps=0), "total_steps"),
    (lambda: CosineSchedule(sgd(), total_steps=5, warmup_steps=5), "warmup_steps"),
    (lambda: CosineSchedule(sgd(), total_steps=5, min_lr=-1.0), "min_lr"),
    (lambda: StepSchedule(sgd(), step_size=0), "step_size"),
    (lambda: StepSchedule(sgd(), step_size=2, gamma=0.0), "gamma"),
    (lambda: MultiStepSchedule(sgd(), milestones=[3, 2]), "milestones"),
    (lambda: MultiStepSchedule(sgd(), milestones=[0, 2]), "milestones"),
    (lambda: clip_grad_norm(_p(), -1.0), "max_norm"),
    (lambda: clip_grad_value(_p(), -1.0), "value"),
])
def test_bad_arguments_raise(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_same_parameter_twice_raises():
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p], lr=0.1)


# ------------------------------------------------------------------------------------------
# torch.optim, if installed


def _torch_run(torch, make_torch, params, noise, steps=N_STEPS):
    decay = [torch.tensor(p.data.copy(), requires_grad=True) for _, p in params
             if p.weight_decay]
    no_decay = [torch.tensor(p.data.copy(), requires_grad=True) for _, p in params
                if not p.weight_decay]
    opt = make_torch([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}])
    tensors = decay + no_decay
    names = [n for n, p in params if p.weight_decay] + [n for n, p in params
                                                        if not p.weight_decay]
    for t in range(steps):
        for name, x in zip(names, tensors):
            x.grad = 0.3 * x.detach() + torch.tensor(noise[name][t]).to(x.dtype)
        opt.step()
    return dict(zip(names, [x.detach().numpy() for x in tensors]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, kw", [("sgd", kw) for kw in SGD_CASES]
                         + [("adam", kw) for kw in ADAM_CASES]
                         + [("adamw", kw) for kw in ADAM_CASES])
def test_matches_torch(kind, kw, dtype):
    torch = pytest.importorskip("torch")
    cls, tcls = {"sgd": (SGD, torch.optim.SGD), "adam": (Adam, torch.optim.Adam),
                 "adamw": (AdamW, torch.optim.AdamW)}[kind]
    params, noise = make_problem(dtype)
    expected = _torch_run(torch, lambda groups: tcls(groups, **kw), params, noise)
    run(cls(params, **kw), params, noise)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name, p in params:
        np.testing.assert_allclose(p.data, expected[name], rtol=tol, atol=tol)


def test_schedules_and_clipping_match_torch():
    torch = pytest.importorskip("torch")

    def torch_lrs(make, n, lr=0.4):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
        sched = make(opt)
        out = [opt.param_groups[0]["lr"]]
        for _ in range(n):
            opt.step()
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        return out

    lr_ = torch.optim.lr_scheduler
    np.testing.assert_allclose(
        lrs(CosineSchedule(sgd(0.4), total_steps=10, min_lr=0.01), 10),
        torch_lrs(lambda o: lr_.CosineAnnealingLR(o, T_max=10, eta_min=0.01), 10), rtol=1e-9)
    np.testing.assert_allclose(
        lrs(StepSchedule(sgd(0.4), step_size=3, gamma=0.5), 10),
        torch_lrs(lambda o: lr_.StepLR(o, step_size=3, gamma=0.5), 10), rtol=1e-12)
    np.testing.assert_allclose(
        lrs(MultiStepSchedule(sgd(0.4), milestones=[2, 5], gamma=0.3), 8),
        torch_lrs(lambda o: lr_.MultiStepLR(o, milestones=[2, 5], gamma=0.3), 8), rtol=1e-12)

    rng = np.random.default_rng(3)
    grads = [rng.standard_normal((4, 5)), rng.standard_normal(7)]
    params = [Parameter(np.zeros_like(g)) for g in grads]
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, x, g in zip(params, tensors, grads):
        p.grad[...] = g
        x.grad = torch.tensor(g)
    norm = clip_grad_norm(params, 1.5)
    tnorm = torch.nn.utils.clip_grad_norm_(tensors, 1.5)
    assert norm == pytest.approx(float(tnorm), rel=1e-12)
    for p, x in zip(params, tensors):
        np.testing.assert_allclose(p.grad, x.grad.numpy(), rtol=1e-12)


# ------------------------------------------------------------------------------------------
# fused Adam kernel against the NumPy path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("kw", ADAM_CASES, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_fused_adam_is_bitwise_the_numpy_update(cls, kw, dtype):
    """The one-pass kernel (contiguous arrays) gives the NumPy path's bits at every step,
    for parameters with and without weight decay."""
    rng = np.random.default_rng(3)
    shapes = [(37, 23), (23,), (5, 3, 2)]
    fused = [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    reference = [Parameter(p.data.copy()) for p in fused]
    fused[1].weight_decay = reference[1].weight_decay = False
    opt_f, opt_r = cls(fused, **kw), cls(reference, **kw)
    opt_r._update = lambda p, g, st, t, tmp0, tmp1: opt_r._update_numpy(
        p, g, st["exp_avg"], st["exp_avg_sq"], t, tmp0, tmp1)
    for _ in range(6):
        for a, b in zip(fused, reference):
            a.grad = rng.standard_normal(a.data.shape).astype(dtype) * dtype(0.3)
            b.grad = a.grad.copy()
        opt_f.step()
        opt_r.step()
        for a, b in zip(fused, reference):
            np.testing.assert_array_equal(a.data, b.data)
        for sa, sb in zip(opt_f.state, opt_r.state):
            np.testing.assert_array_equal(sa["exp_avg"], sb["exp_avg"])
            np.testing.assert_array_equal(sa["exp_avg_sq"], sb["exp_avg_sq"])


def test_adam_on_non_contiguous_parameter_uses_the_numpy_path():
    """A parameter whose data was replaced by a strided view is updated in place, with the
    same values as a contiguous one."""
    base = np.arange(24, dtype=np.float32).reshape(4, 6) / 10
    view = Parameter(np.zeros((4, 3), np.float32))
    view.data = base[:, ::2]
    dense = Parameter(base[:, ::2])
    opts = [Adam([view], lr=0.1, weight_decay=0.01), Adam([dense], lr=0.1, weight_decay=0.01)]
    for _ in range(3):
        for p, opt in zip((view, dense), opts):
            p.grad = np.full(p.data.shape, 0.5, np.float32)
            opt.step()
    np.testing.assert_array_equal(view.data, dense.data)
    np.testing.assert_array_equal(base[:, ::2], dense.data)     # written through the view
