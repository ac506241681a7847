import numpy as np
import pytest

import training
from training import kernels, surrogates
from training.neurons import IF, LIF, NeuronParams, canonical_step
from tests.gradcheck import assert_close, check_module_gradients, numeric_grad
from tests.reference import naive_training as naive

SURROGATES = ["sigmoid", "atan", "triangle", "rectangle", "fast_sigmoid"]
# g(+inf) - g(-inf): the area under each surrogate (fast_sigmoid's is 2/alpha, snnTorch's form)
AREA = {"sigmoid": 1.0, "atan": 1.0, "triangle": 1.0, "rectangle": 1.0, "fast_sigmoid": 2 / 25}
RESETS = ["hard", "subtract"]


@pytest.fixture
def float64():
    with training.default_dtype(np.float64):
        yield


@pytest.mark.parametrize("name", SURROGATES)
def test_surrogate_derivative_is_derivative_of_primitive(name):
    s = surrogates.get(name)
    x = np.linspace(-2, 2, 4001)
    x = x[np.abs(np.abs(x) - 0.5 / s.alpha) > 1e-3]  # avoid the rectangle's jumps
    x = x[np.abs(np.abs(x) - 1 / s.alpha) > 1e-3]    # and the triangle's kinks
    x = x[np.abs(x) > 1e-3]                          # and fast_sigmoid's jump of g'' at 0
    eps = 1e-6
    numeric = (s.primitive(x + eps) - s.primitive(x - eps)) / (2 * eps)
    np.testing.assert_allclose(s.derivative(x), numeric, rtol=1e-5, atol=1e-6)
    lo, hi = 0.5 - AREA[name] / 2, 0.5 + AREA[name] / 2
    assert s.primitive(np.array(-1e5)) == pytest.approx(lo, abs=1e-4)
    assert s.primitive(np.array(1e5)) == pytest.approx(hi, abs=1e-4)
    assert s.primitive(np.array(0.0)) == pytest.approx(0.5)


@pytest.mark.parametrize("name", SURROGATES)
def test_numba_surrogates_match_numpy(name):
    s = surrogates.get(name)
    x = np.random.default_rng(0).uniform(-2, 2, 1000)
    got_g = np.array([kernels.surrogate_primitive(s.code, s.alpha, v) for v in x])
    got_d = np.array([kernels.surrogate_derivative(s.code, s.alpha, v) for v in x])
    np.testing.assert_allclose(got_g, s.primitive(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got_d, s.derivative(x), rtol=1e-12, atol=1e-15)


def test_surrogate_table_values():
    # heights at 0 from docs/methods.md section 4
    for name, h in [("sigmoid", 1.0), ("atan", 1.0), ("triangle", 2.0), ("rectangle", 1.0),
                    ("fast_sigmoid", 1.0)]:
        assert surrogates.get(name).derivative(np.array(0.0)) == pytest.approx(h)


def test_fast_sigmoid_is_snntorch_form():
    """ds/du = 1 / (1 + slope |u - theta|)^2 with slope 25 by default; factory and registry agree."""
    x = np.array([-0.2, -0.04, 0.0, 0.04, 0.2])
    want = 1 / (1 + 25 * np.abs(x)) ** 2
    np.testing.assert_allclose(surrogates.get("fast_sigmoid").derivative(x), want, rtol=1e-15)
    assert surrogates.fast_sigmoid() == surrogates.get("fast_sigmoid")
    assert surrogates.fast_sigmoid(slope=10).alpha == 10.0
    assert surrogates.get(("fast_sigmoid", 10)).derivative(np.array(0.1)) == pytest.approx(0.25)
    assert LIF(beta=0.5, surrogate="fast_sigmoid").surrogate.name == "fast_sigmoid"
    with pytest.raises(ValueError, match="fast_sigmoid.*alpha must be a positive"):
        surrogates.fast_sigmoid(slope=0)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("name", SURROGATES)
@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lif_kernels_match_naive(reset, name, smooth, dtype):
    rng = np.random.default_rng(1)
    p = NeuronParams(beta=0.75, theta=0.8, reset=reset, v_reset=-0.1)
    sur = surrogates.get(name)
    I = rng.normal(0.4, 0.6, size=(6, 50)).astype(dtype)
    S = np.empty_like(I); U = np.empty_like(I)
    dt = np.dtype(dtype).type
    kernels.lif_forward(I, dt(p.beta), dt(p.theta), 0 if reset == "hard" else 1, dt(p.v_reset),
                        sur.code, dt(sur.alpha), smooth, S, U)
    S_ref, U_ref = naive.lif_forward(I, p, sur, smooth)
    tol = dict(rtol=0, atol=0) if not smooth else dict(rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    np.testing.assert_allclose(U, U_ref, **tol)
    np.testing.assert_allclose(S, S_ref, **tol)
    assert 0 < S.mean() < 1 or smooth
    g = rng.standard_normal(I.shape).astype(dtype)
    for detach in (False, True):
        gI = np.empty_like(I)
        kernels.lif_backward(g, U, S, dt(p.beta), dt(p.theta), 0 if reset == "hard" else 1,
                             dt(p.v_reset), sur.code, dt(sur.alpha), detach, gI)
        ref = naive.lif_backward(g.astype(np.float64), U.astype(np.float64), S.astype(np.float64),
                                 p, sur, detach)
        np.testing.assert_allclose(gI, ref, rtol=2e-4 if dtype == np.float32 else 1e-10, atol=1e-5)


def test_canonical_step_threshold_is_inclusive():
    p = NeuronParams(beta=0.5, theta=1.0, reset="hard", v_reset=0.0)
    u, s, v = canonical_step(np.array([1.0, 0.0]), np.array([0.5, 0.999]), p)
    np.testing.assert_array_equal(s, [1.0, 0.0])   # u == theta fires
    np.testing.assert_array_equal(v, [0.0, 0.999])


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("name", SURROGATES)
@pytest.mark.parametrize("form", ["beta", "tau", "if"])
def test_lif_gradients_finite_differences(float64, reset, name, form):
    kw = {"beta": dict(beta=0.7), "tau": dict(tau=2.5), "if": dict(beta=1.0)}[form]
    lif = LIF(threshold=0.6, reset=reset, v_reset=0.05 if reset == "hard" else 0.0,
              surrogate=name, **kw)
    x = np.random.default_rng(3).normal(0.3, 0.8, size=(5, 3, 4))
    check_module_gradients(lif, x, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("name", SURROGATES)
def test_detach_reset_gradients_finite_differences(float64, reset, name):
    """detach_reset: FD of the smooth network whose reset term uses frozen spike values."""
    rng = np.random.default_rng(5)
    p = NeuronParams(beta=0.8, theta=0.5, reset=reset, v_reset=0.0)
    sur = surrogates.get(name)
    lif = LIF(beta=p.beta, threshold=p.theta, reset=reset, surrogate=name, detach_reset=True)
    I = rng.normal(0.3, 0.7, size=(5, 2, 3))
    w = rng.standard_normal(I.shape)
    with training.smooth_mode():
        s = lif.forward(I)
        gI = lif.backward(w)
    frozen = s.reshape(5, -1).copy()
    I2 = I.reshape(5, -1).copy()
    f = lambda: float(np.sum(w.reshape(5, -1) * naive.lif_forward(I2, p, sur, True, frozen)[0]))
    num, idx = numeric_grad(f, I2, 1e-6, None, rng)
    assert_close(gI.reshape(5, -1), num, idx, "detached LIF input gradient", 1e-5, 1e-8)
    # and it is a different gradient from the non-detached one
    lif.detach_reset = False
    with training.smooth_mode():
        lif.forward(I)
        assert not np.allclose(lif.backward(w), gI)


@pytest.mark.parametrize("reset", RESETS)
def test_multilayer_network_gradients(float64, reset):
    rng = np.random.default_rng(7)
    net = training.Sequential(
        training.Linear(6, 8, rng=rng), LIF(beta=0.9, threshold=0.5, reset=reset, surrogate="sigmoid"),
        training.Linear(8, 7, rng=rng), LIF(tau=2.0, threshold=0.4, reset=reset, surrogate="atan"),
        training.Linear(7, 3, rng=rng))
    x = rng.normal(0.5, 1.0, size=(4, 3, 6))
    check_module_gradients(net, x, rtol=1e-5, atol=1e-8)


def test_static_input_gives_same_result_and_gradients(float64):
    rng = np.random.default_rng(2)
    net = training.Sequential(training.Linear(5, 6, rng=rng), LIF(beta=0.8, threshold=0.3),
                              training.Linear(6, 2, rng=rng))
    x0 = rng.random((3, 5))
    x_static = np.broadcast_to(x0[None], (4, 3, 5))
    x_full = np.ascontiguousarray(x_static)
    w = rng.standard_normal((4, 3, 2))
    outs, grads = [], []
    for x in (x_static, x_full):
        net.zero_grad()
        outs.append(net.forward(x))
        net.backward(w, need_input_grad=False)
        grads.append([p.grad.copy() for p in net.parameters()])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-13)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_lif_rejects_bad_arguments():
    with pytest.raises(ValueError, match="beta"):
        LIF(beta=1.5)
    with pytest.raises(ValueError, match="not both"):
        LIF(beta=0.5, tau=2)
    with pytest.raises(ValueError, match="reset"):
        LIF(beta=0.5, reset="soft")
    with pytest.raises(ValueError, match="threshold"):
        LIF(beta=0.5, threshold=0)
    with pytest.raises(ValueError, match="surrogate"):
        LIF(beta=0.5, surrogate="relu")
    with pytest.raises(ValueError, match=r"LIF.*shape \(3,\)"):
        LIF(beta=0.5).forward(np.zeros(3, np.float32))
    with pytest.raises(RuntimeError, match="backward"):
        LIF(beta=0.5).backward(np.zeros((2, 2, 2), np.float32))


def test_linear_rejects_bad_shapes():
    lin = training.Linear(4, 3)
    with pytest.raises(ValueError, match=r"Linear\(4, 3.*\[T, B, 4\].*\(2, 5, 7\)"):
        lin.forward(np.zeros((2, 5, 7), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        lin.forward(np.zeros((2, 5, 4), np.float64))


def test_same_seed_same_weights():
    a = training.Linear(10, 5, rng=42).weight.data
    b = training.Linear(10, 5, rng=42).weight.data
    c = training.Linear(10, 5, rng=43).weight.data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_gradcheck_accepts_static_inputs(float64):
    rng = np.random.default_rng(9)
    net = training.Sequential(training.Linear(4, 5, rng=rng), LIF(beta=0.8, threshold=0.4),
                              training.Linear(5, 2, rng=rng))
    x = np.broadcast_to(rng.random((3, 4))[None], (4, 3, 4))
    check_module_gradients(net, x, rtol=1e-5, atol=1e-8)


def test_tau_inf_is_integrate_and_fire():
    """``LIF(tau=inf)`` is IF: no leak and no input scaling (it used to scale by 1/inf = 0)."""
    x = np.full((4, 1, 3), 0.6, dtype=np.float32)
    a, b = LIF(tau=float("inf")), IF()
    assert a.beta == 1.0 and a.input_gain == 1.0
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert a.forward(x).sum() > 0
