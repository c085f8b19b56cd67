"""Two-layer aNTK particle solver (theory/adaptive.md T1–T6): the solvable single-point example
(with the two forms of the T3 predictor), multi-point fixed points of smooth activations, the lazy
limit, the homogeneity degree, and bad input; piecewise-linear φ on several points (particles sliding
along the kink) against the convex program their fixed point solves."""
import cvxpy as cp
import numpy as np

import symntk as sn
import pytest

from symntk.antk import WeightDecayMLP, homogeneity_degree
from symntk.errors import DataError

ONE_POINT = np.array([[1.0]]), np.array([1.0])


FOUR_POINTS = np.random.default_rng(0).normal(size=(4, 5))
FOUR_POINTS *= np.sqrt(5) / np.linalg.norm(FOUR_POINTS, axis=1, keepdims=True)  # whitened rows, Kˣ_μμ = 1
FOUR_LABELS = np.array([1.0, -0.5, 0.8, 0.3])


def convex_fixed_point(x, y, reg, slopes, directions=100_000):
    """f(X) at the fixed point of a two-layer network of φ(h) = s_R h (h > 0), s_L h (h < 0), as the
    minimiser of ½|f − y|² + reg·∫|dβ| over measures β on unit directions u with f = ∫φ(Xu/√D)dβ(u)
    (reg = λ/γ₀, derivations/antk.md), which is strictly convex in f.  Split by the sign pattern p of
    Xu, φ(Xu/√D) = diag(s_p)Xu/√D on the cone (2p − 1) ⊙ Xu ≥ 0, the measure's part on each cone
    collapses to two vectors v_p, w_p (signs ±) of norm their mass: a second-order cone program
    (Pilanci & Ergen 2020), solved by Clarabel to ~1e-9.  The patterns are those that
    ``directions`` random u reach (all 2^P for a few points in general position)."""
    a = x / np.sqrt(x.shape[1])
    u = np.random.default_rng(0).normal(size=(directions, x.shape[1]))
    patterns = np.unique(u @ a.T >= 0, axis=0)
    f, mass, cones = 0, 0, []
    for p in patterns:
        v, w = cp.Variable(x.shape[1]), cp.Variable(x.shape[1])
        side = np.diag(2.0 * p - 1) @ a
        cones += [side @ v >= 0, side @ w >= 0]
        f = f + np.diag(np.where(p, slopes[1], slopes[0])) @ a @ (v - w)
        mass = mass + cp.norm(v) + cp.norm(w)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(f - y) + reg * mass), cones)
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
    assert problem.status == "optimal", problem.status
    return np.asarray(f.value)


def test_single_point_above_threshold_is_the_t6_fixed_point():
    """γ₀y = 1 > λ = 0.3: Δ = λ/γ₀, f = y − λ/γ₀ (to the T4 tolerance), ⟨φ²⟩ = ⟨φz⟩ = γ₀f
    = γ₀y − λ (antithetic particles: f(·, 0) = 0 exactly), and no mass left at h < 0."""
    m = WeightDecayMLP("relu(x)", gamma0=1.0, lam=0.3, particles=2000)
    sol = m.solve(*ONE_POINT)
    assert sol.result == "successful" and max(sol.residual) < 1e-6
    assert sol.output[0] == pytest.approx(0.7, abs=1e-5)
    phi2, phiz = np.mean(np.maximum(sol.h[:, 0], 0) ** 2), np.mean(np.maximum(sol.h[:, 0], 0) * sol.z)
    assert phi2 == pytest.approx(phiz, rel=1e-5)
    assert phi2 == pytest.approx(0.7, abs=1e-5)
    assert np.min(sol.h[:, 0]) > -1e-5 * np.sqrt(np.mean(sol.h[:, 0] ** 2))
    assert sol.form_disagreement < 1e-10
    np.testing.assert_allclose(sol.predict(ONE_POINT[0]), sol.kernel_form, rtol=1e-5)  # h(x) rebuilt from T4


def test_single_point_below_threshold_collapses():
    """γ₀y = 1 < λ = 1.5: every particle decays, ⟨φ²⟩ → 0 and the output f → 0."""
    sol = WeightDecayMLP("relu(x)", gamma0=1.0, lam=1.5, particles=2000).solve(*ONE_POINT)
    assert np.mean(np.maximum(sol.h, 0) ** 2) < 1e-10
    assert abs(sol.output[0]) < 1e-5


@pytest.mark.parametrize("formula", ["x", "x**2"])
def test_multi_point_fixed_point_of_smooth_activations(formula):
    """Three training points and one test point: the T4 residuals fall below 1e-5, the two forms of
    T3 agree (the issue asks 1e-3; at a residual r they differ by O(r)) on the train and test points,
    and the test output rebuilt from T4 (``predict``) is the particles' own test output."""
    x, y = FOUR_POINTS, FOUR_LABELS
    sol = WeightDecayMLP(formula, gamma0=1.0, lam=0.1, particles=2000).solve(x[:3], y[:3], x_test=x[3:],
                                                                             tol=1e-5, rtol=1e-9)
    assert sol.result == "successful" and max(sol.residual) < 1e-5
    assert sol.form_disagreement < 1e-4
    np.testing.assert_allclose(sol.kernel_form, sol.output, atol=1e-4)
    np.testing.assert_allclose(sol.predict(x[3:]), sol.output[3:], atol=1e-4)


@pytest.mark.parametrize("formula", ["x", "x**2", "x*erf(x)"])
def test_semi_implicit_integrator_reaches_the_fixed_point_of_tsit5(formula):
    """On a smooth φ the semi-implicit integrator (output modes implicit, first order, steps up to
    0.5/λ) stops at the fixed point Tsit5 reaches from the same initialisation: both at T4 residual
    1e-5, their outputs agree within 10× that (each is O(residual) from the fixed point), and so does
    the semi-implicit solution's kernel form of T3."""
    x, y = FOUR_POINTS, FOUR_LABELS
    m = WeightDecayMLP(formula, gamma0=1.0, lam=0.1, particles=2000)
    ref = m.solve(x[:3], y[:3], x_test=x[3:], tol=1e-5, rtol=1e-9)
    sol = m.solve(x[:3], y[:3], x_test=x[3:], tol=1e-5, integrator="semi-implicit")
    assert sol.result == "successful" and max(sol.residual) < 1e-5
    np.testing.assert_allclose(sol.output, ref.output, atol=1e-4)
    np.testing.assert_allclose(sol.kernel_form, sol.output, atol=1e-4)


ANGLES = np.array([0.1, 0.9, 1.8, 2.9, 4.0, 5.1, 3.4])
CIRCLE = np.sqrt(2) * np.stack([np.cos(ANGLES), np.sin(ANGLES)], 1)
CIRCLE_LABELS = np.array([1.0, -0.6, 0.9, -0.8, 0.7, -0.5])  # six training points in D = 2, one test point


@pytest.mark.parametrize("formula, dt", [("relu(x)", None), ("abs(x)", 1.0), ("leaky_relu(x, 0.2)", None)])
def test_piecewise_linear_fixed_point_is_the_convex_programs(formula, dt):
    """Six points in D = 2 (more points than dimensions: the fixed point needs several units, and
    the units that carry the output sit on the kink of some training points, h_μ = 0 with a
    Filippov slope strictly inside (s_L, s_R)).  The sliding integrator (own steps, or fixed ``dt``)
    stops at a T4 residual of 1e-6; the training output then equals the convex program's unique
    minimiser (:func:`convex_fixed_point`) within 10× the residual (the distance to the fixed point
    is O(residual): 1.5× measured; the cone program adds ~1e-9), and both T3 forms and the test
    output rebuilt from T4 agree with the output just as closely.  abs takes fixed steps dt = 1 with
    dt·λ_max(K) ≈ 28 at the fixed point, far past explicit Euler's bound 2 on the output modes: the
    implicit output error is what makes them stable."""
    m = WeightDecayMLP(formula, gamma0=1.0, lam=0.1, particles=2000)
    sol = m.solve(CIRCLE[:6], CIRCLE_LABELS, x_test=CIRCLE[6:], tol=1e-6, dt=dt, t_max=5000.0)
    assert sol.result == "successful"
    if dt is not None:
        assert dt * np.linalg.eigvalsh(sol.ntk[:6, :6])[-1] > 10
    np.testing.assert_allclose(sol.output[:6], convex_fixed_point(CIRCLE[:6], CIRCLE_LABELS, 0.1, m._bounds),
                               atol=1e-5)
    lo, hi = sorted(m._bounds)
    alive = np.abs(sol.z) > 1e-3 * np.abs(sol.z).max()  # the units that carry the output
    sliding = (np.abs(sol.h[:, :6]) < 1e-8) & (sol.slopes > lo + 1e-6) & (sol.slopes < hi - 1e-6)
    assert np.mean(sliding[alive]) > 0.05  # measured 0.11–0.17 of the (unit, point) pairs
    for form in (sol.kernel_form, sol.ntk_form):
        np.testing.assert_allclose(form, sol.output, atol=1e-5)
    np.testing.assert_allclose(sol.predict(CIRCLE[6:]), sol.output[6:], atol=1e-5)


def test_kernels_through_time():
    """``kernels_at``: at t = 0 the particles are the Gaussian initialisation, so Φ¹ and G¹ are
    Monte-Carlo estimates of the dual activation V, V̇ at covariance Kˣ (within 5 standard errors
    of the M/2 distinct (h, z²); E[z²] = 1); at the flow's final time they are
    the Solution's kernels exactly (the same integration, replayed)."""
    x, y = FOUR_POINTS, FOUR_LABELS
    m = WeightDecayMLP("x*erf(x)", gamma0=1.0, lam=0.2, particles=4000)
    sol = m.solve(x[:3], y[:3], x_test=x[3:], tol=1e-3)
    Phi, G, K = sol.kernels_at(sol.t_final)
    for a, b in ((Phi, sol.phi), (G, sol.g), (K, sol.ntk)):
        np.testing.assert_array_equal(a, b)
    Phi0, G0, K0 = sol.kernels_at(0.0)
    kx = x @ x.T / x.shape[1]
    q = np.diag(kx)
    V, Vdot = (np.asarray(v) for v in m.dual.jax()(q[:, None], kx, q[None, :]))
    h0, z0, _ = sol.state_at(0.0)
    half = len(z0) // 2  # antithetic pairs: h repeats, z flips sign
    for est, exact, f in ((Phi0, V, m._phi(h0[:half])), (G0, Vdot, z0[:half, None] * m._dphi(h0[:half]))):
        f = np.asarray(f)
        se = np.std(f[:, :, None] * f[:, None, :], axis=0) / np.sqrt(half)
        assert np.all(np.abs(est - exact) <= 5 * se + 1e-12)  # + rounding of 2000-term means (~2000 u)
    np.testing.assert_allclose(K0, Phi0 + G0 * kx, rtol=1e-14)
    assert np.max(np.abs(Phi - Phi0)) > 0.1  # the kernels moved: a check that t selects a time
    with pytest.raises(DataError, match="t must be"):
        sol.kernels_at(-1.0)


def test_lazy_limit_follows_ntk_gradient_flow():
    """γ₀ → 0 then small λ: before weight decay acts (λt ≪ 1) the output follows NTK gradient flow
    f(t) = (1 − e^{−Θt})y with Θ the two-layer NTK at σ_w = 1, σ_b = 0 (μP: Φ¹ + G¹ ⊙ Kˣ at
    initialisation).  Error budget: the particles' Θ has Monte-Carlo error ≈ √(2/M) ≈ 1 % at
    M = 20000, plus O(γ₀) + O(λt) ≈ 1e-3; 0.05 absolute is 4 standard errors on |y| ≤ 1."""
    x, y = FOUR_POINTS, FOUR_LABELS
    sol = WeightDecayMLP("x*erf(x)", gamma0=1e-3, lam=1e-4, particles=20000).solve(x, y, t_max=20.0, throw=False)
    ntk = sn.MLP("x*erf(x)", depth=1, sigma_w=1.0, sigma_b=0.0).kernel(x).ntk
    ref = sn.predict.ntk_gradient_flow(ntk, ntk, y, t=sol.times)
    assert np.max(np.abs(sol.outputs - ref.mean)) < 0.05


@pytest.mark.parametrize("formula, k", [("relu(x)", 1), ("x", 1), ("x**2", 2), ("leaky_relu(x, 0.1)", 1),
                                        ("abs(x)", 1), ("tanh(x)", None), ("erf(x)", None)])
def test_homogeneity_degree_is_symbolic_and_holds_numerically(formula, k):
    """k from SymPy; then the two-layer output w·φ(Wx)/N scales as α^{1+k} under θ → αθ."""
    assert homogeneity_degree(formula) == k
    m = WeightDecayMLP(formula, gamma0=1.0, lam=0.1, particles=10)
    rng = np.random.default_rng(1)
    W, w, x = rng.normal(size=(50, 3)), rng.normal(size=50), rng.normal(size=3)
    out = lambda a: float(np.asarray(m._phi(a * W @ x)) @ (a * w))  # noqa: E731
    if k is None:
        assert m.kappa is None
    else:
        assert m.kappa == 1 + k and out(1.7) == pytest.approx(1.7 ** (1 + k) * out(1.0), rel=1e-12)


def test_bad_settings_are_rejected():
    with pytest.raises(DataError, match="depth"):
        WeightDecayMLP("relu(x)", depth=0)
    with pytest.raises(DataError, match="lam"):
        WeightDecayMLP("relu(x)", lam=0.0)
    with pytest.raises(DataError, match="y_train"):
        WeightDecayMLP("relu(x)", particles=10).solve(np.ones((3, 2)), np.ones(2))
    for formula, integrator in (("relu(x)", "tsit5"), ("tanh(x)", "euler")):
        with pytest.raises(DataError, match="integrator"):
            WeightDecayMLP(formula, particles=10).solve(np.ones((2, 2)), np.ones(2), integrator=integrator)
    with pytest.raises(DataError, match="integrator"):  # the DMFT has its own grid
        WeightDecayMLP("tanh(x)", depth=2, particles=10).solve(np.ones((2, 2)), np.ones(2), integrator="tsit5")
