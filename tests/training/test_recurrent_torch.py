"""RecurrentLIF and CubaLIF against PyTorch autograd (issue 18): binary forward spikes and
the hand-derived BPTT gradients of ``training/recurrent.py`` compared, in float64, with
autograd through an independent PyTorch re-implementation of the forward equations of that
module's docstring (docs/methods.md section 16), for the input, ``recurrent_weight``,
``bias`` and every learnable decay and threshold.

The reference spike function is a ``torch.autograd.Function``: the Heaviside step
``1[x >= 0]`` forward, the surrogate derivative ``g'(x)`` of ``training/surrogates.py``
(written again here in torch) backward.  Nothing of our NumPy code runs inside autograd;
the reference reads only the layers' initial parameter values.

Skipped without torch (the default test install has none).  To run them, install torch's
CPU build first (as for the ``bench`` extra): ``pip install torch==2.13.0``.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import training  # noqa: E402
from training import CubaLIF, RecurrentLIF  # noqa: E402

torch.set_num_threads(1)

T, B, F = 6, 3, 5
KINDS = ["rlif_beta", "rlif_tau", "cuba", "cuba_rec"]
RESETS = {"subtract": ("subtract", 0.0), "hard_zero": ("hard", 0.0),
          "hard_vreset": ("hard", -0.2)}
PARAMS = ["learned_layer", "learned_neuron", "fixed_neuron"]
SURROGATES = ["sigmoid", "atan", "triangle", "rectangle", "fast_sigmoid"]


@pytest.fixture
def float64():
    """Layers built in float64; the previous default dtype is restored afterwards."""
    before = training.get_default_dtype()
    with training.default_dtype(np.float64):
        yield
    assert training.get_default_dtype() == before


# -- the PyTorch reference -------------------------------------------------------------------

def surrogate_derivative(name, a, x):
    """``g'(x)`` of training/surrogates.py, in torch."""
    if name == "sigmoid":
        s = torch.sigmoid(a * x)
        return a * s * (1 - s)
    if name == "atan":
        return a / 2 / (1 + (math.pi / 2 * a * x) ** 2)
    if name == "triangle":
        return torch.clamp(a - a * a * x.abs(), min=0.0)
    if name == "rectangle":
        return a * (x.abs() < 1 / (2 * a)).to(x.dtype)
    if name == "fast_sigmoid":
        return 1 / (1 + a * x.abs()) ** 2
    raise ValueError(name)


class Spike(torch.autograd.Function):
    """Heaviside ``1[x >= 0]`` forward, ``dL/dx = dL/ds * g'(x)`` backward."""

    @staticmethod
    def forward(ctx, x, name, a):
        ctx.save_for_backward(x)
        ctx.name, ctx.a = name, a
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_s):
        (x,) = ctx.saved_tensors
        return grad_s * surrogate_derivative(ctx.name, ctx.a, x), None, None


def torch_forward(x, p, cfg):
    """Spikes and membranes ``[T, B, F]`` of the equations, step by step:
    ``I_t = gain (x_t + s_{t-1} W^T + b)``, ``i_t = alpha i_{t-1} + I_t`` (CubaLIF),
    ``u_t = beta v_{t-1} + i_t``, ``s_t = H(u_t - theta)``, then
    ``v_t = u_t - theta r_t`` or ``u_t (1 - r_t) + v_reset r_t`` with ``r_t = s_t``
    (``s_t.detach()`` with detach_reset: the reset term only)."""
    steps, batch, feat = x.shape
    s = torch.zeros(batch, feat, dtype=torch.float64)
    v = torch.zeros_like(s)
    i = torch.zeros_like(s)
    alpha, beta, theta = p["alpha"], p["beta"], p["theta"]
    out, mem = [], []
    for t in range(steps):
        I = x[t]
        if p["W"] is not None:
            I = I + s @ p["W"].T
        if p["b"] is not None:
            I = I + p["b"]
        I = cfg["gain"] * I
        i = alpha * i + I if alpha is not None else I
        u = beta * v + i
        s = Spike.apply(u - theta, cfg["surrogate"], cfg["surrogate_alpha"])
        r = s.detach() if cfg["detach_reset"] else s
        if cfg["reset"] == "hard":
            v = u * (1 - r) + cfg["v_reset"] * r
        else:
            v = u - theta * r
        out.append(s)
        mem.append(u)
    return torch.stack(out), torch.stack(mem)


# -- the cases -------------------------------------------------------------------------------

def make_case(kind, reset, params, detach_reset, surrogate="atan"):
    """``(layer, cfg, x)``: our layer, the settings for the reference, and an input that makes
    some but not all neurons spike."""
    reset_name, v_reset = RESETS[reset]
    per_neuron = params != "learned_layer"
    learn = params != "fixed_neuron"
    if per_neuron:
        beta = np.linspace(0.6, 0.9, F)
        alpha = np.linspace(0.4, 0.7, F)
        theta = np.linspace(0.5, 0.9, F)
    else:
        beta, alpha, theta = 0.8, 0.6, 0.7
    common = dict(threshold=theta, reset=reset_name, v_reset=v_reset, surrogate=surrogate,
                  detach_reset=detach_reset, learn_beta=learn, learn_threshold=learn,
                  per_neuron=per_neuron)
    gain, alpha_ref, beta_ref = 1.0, None, beta
    if kind == "rlif_beta":
        layer = RecurrentLIF(F, beta=beta, rng=1, **common)
        mean = 0.5
    elif kind == "rlif_tau":
        tau = 2.0
        gain, beta_ref = 1.0 / tau, 1.0 - 1.0 / tau
        layer = RecurrentLIF(F, tau=tau, rng=4, **common)
        mean = 0.9
    else:
        recurrent = kind == "cuba_rec"
        layer = CubaLIF(alpha, beta, features=F, recurrent=recurrent, learn_alpha=learn,
                        rng=2, **common)
        alpha_ref = alpha
        mean = 0.15
    if layer.recurrent_weight is not None:
        layer.recurrent_weight.data *= 3.0     # a recurrence strong enough to matter
    layer.record = True
    x = np.random.default_rng(7).normal(mean, 0.8, (T, B, F))
    cfg = dict(gain=gain, alpha=alpha_ref, beta=beta_ref, theta=theta, reset=reset_name,
               v_reset=v_reset, detach_reset=detach_reset, learn=learn,
               surrogate=layer.surrogate.name, surrogate_alpha=layer.surrogate.alpha)
    return layer, cfg, x


def torch_gradients(layer, cfg, x, grad_s):
    """Forward and autograd of the reference at the layer's initial parameter values:
    ``(spikes, membranes, {name: gradient})`` with the names of ``named_parameters`` and
    ``"x"``; learned decays are ``sigmoid(w)`` with ``w`` the Parameter's value."""
    leaves = {"x": torch.tensor(x, requires_grad=True)}

    def leaf(name, value):
        leaves[name] = torch.tensor(np.asarray(value, dtype=np.float64), requires_grad=True)
        return leaves[name]

    p = {"W": None, "b": None}
    if layer.recurrent_weight is not None:
        p["W"] = leaf("recurrent_weight", layer.recurrent_weight.data)
    if layer.bias is not None:
        p["b"] = leaf("bias", layer.bias.data)
    for key in ("alpha", "beta"):
        if cfg[key] is None:
            p[key] = None
        elif cfg["learn"]:
            p[key] = torch.sigmoid(leaf(key, getattr(layer, key).data))
        else:
            p[key] = torch.tensor(np.asarray(cfg[key], dtype=np.float64))
    if cfg["learn"]:
        p["theta"] = leaf("threshold", layer.threshold.data)
    else:
        p["theta"] = torch.tensor(np.asarray(cfg["theta"], dtype=np.float64))
    s, u = torch_forward(leaves["x"], p, cfg)
    s.backward(torch.tensor(grad_s))
    return (s.detach().numpy(), u.detach().numpy(),
            {k: t.grad.numpy() for k, t in leaves.items()})


def our_gradients(layer, x, grad_s):
    layer.train()
    layer.zero_grad()
    s = layer.forward(x)
    u = layer.membrane.copy()
    gx = layer.backward(grad_s)
    grads = {n: p.grad.copy() for n, p in layer.named_parameters()}
    grads["x"] = gx
    return s, u, grads


def assert_grad_close(ours, ref, what):
    scale = max(np.abs(ref).max(), 1e-300)
    assert np.abs(ref).max() > 0, f"{what}: the reference gradient is zero (vacuous check)"
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12 * scale, err_msg=what)


def check_against_torch(layer, cfg, x, seed=11):
    grad_s = np.random.default_rng(seed).standard_normal((T, B, F))
    s_ref, u_ref, g_ref = torch_gradients(layer, cfg, x, grad_s)
    s, u, g = our_gradients(layer, x, grad_s)
    # not vacuous: some but not all neurons spike, spikes before the last step (the reset
    # and the recurrence act), and no membrane within round-off of the threshold (so the
    # exact spike comparison cannot hinge on the order of float operations)
    frac = s_ref.mean()
    assert 0.1 < frac < 0.9, f"spike fraction {frac}"
    assert s_ref[:-1].any() and not s_ref[:-1].all()
    assert np.abs(u_ref - np.asarray(cfg["theta"])).min() > 1e-9
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_allclose(u, u_ref, rtol=1e-12, atol=1e-12)
    expected = {"x"} | {n for n, _ in layer.named_parameters()}
    assert set(g) == expected and set(g_ref) == expected
    for name in sorted(expected):
        assert g[name].shape == g_ref[name].shape, name
        assert_grad_close(g[name], g_ref[name], f"gradient of {name}")
    return g_ref


# -- the tests -------------------------------------------------------------------------------

@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("reset", sorted(RESETS))
@pytest.mark.parametrize("kind", KINDS)
def test_spikes_and_gradients_match_torch(float64, kind, reset, params, detach_reset):
    """T = 6, B = 3, F = 5, random dL/ds: spikes equal exactly, membranes and the gradients
    of x and every parameter to 1e-10 relative."""
    layer, cfg, x = make_case(kind, reset, params, detach_reset)
    names = {n for n, _ in layer.named_parameters()}
    learned = {"beta", "threshold"} | ({"alpha"} if kind.startswith("cuba") else set())
    recurrent = {"recurrent_weight", "bias"} if kind != "cuba" else set()
    assert names == (learned if params != "fixed_neuron" else set()) | recurrent
    check_against_torch(layer, cfg, x)


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("kind, reset", [("rlif_beta", "subtract"), ("cuba_rec", "hard_vreset")])
def test_every_surrogate_matches_torch(float64, kind, reset, surrogate):
    layer, cfg, x = make_case(kind, reset, "learned_neuron", False, surrogate=surrogate)
    assert layer.surrogate.name == surrogate
    check_against_torch(layer, cfg, x)


@pytest.mark.parametrize("reset", sorted(RESETS))
@pytest.mark.parametrize("kind", KINDS)
def test_detach_reset_changes_the_gradient(float64, kind, reset):
    """The detached and attached cases above test different things: their reference
    gradients differ."""
    grads = []
    for detach in (False, True):
        layer, cfg, x = make_case(kind, reset, "learned_neuron", detach)
        grads.append(check_against_torch(layer, cfg, x))
    assert not np.allclose(grads[0]["x"], grads[1]["x"], rtol=1e-6, atol=1e-9)
