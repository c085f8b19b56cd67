"""Generated code: deterministic, cached, finite at the boundary, float32-capable."""
import os
import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import symntk as sn
from symntk.catalog import CATALOG
import sys

import symntk.gaussian.derive  # noqa: F401  (registers the module)

derive_mod = sys.modules["symntk.gaussian.derive"]

INFINITE_VDOT_AT_RHO1 = {"sign", "step"}  # E[δ(u)δ(u)] is genuinely infinite


def test_generated_module_is_byte_identical():
    a = sn.derive("gelu(x)", cache=False).source
    b = sn.derive("gelu(x)", cache=False).source
    assert a == b
    assert sn.derive("gelu(x)").source == a
    assert "eval" not in a and "exec" not in a


def test_cache_hit_skips_derivation(monkeypatch):
    sn.derive("x*erf(x)")
    monkeypatch.setattr(derive_mod, "_closed_form", lambda phi: (_ for _ in ()).throw(AssertionError("re-derived")))
    d = sn.derive("x*erf(x)")
    assert d.method == "price"
    assert d.module().__file__.endswith(f"dual_{d.key}.py")


def test_different_inputs_give_different_keys():
    assert sn.derive("relu(x)").key != sn.derive("abs(x)").key
    assert sn.derive("tanh(x)").key != sn.derive("tanh(x)", n_terms=48).key


@pytest.mark.parametrize("name", list(CATALOG))
def test_no_nan_or_inf_at_rho_pm1_and_c0(name):
    f = sn.derive(CATALOG[name]).jax(checked=False)
    q1 = jnp.array([0.5, 0.5, 0.5, 2.0, 1e-4, 1e2])
    q2 = jnp.array([2.0, 2.0, 2.0, 2.0, 1e-4, 1e2])
    c = jnp.array([1.0, -1.0, 0.0, 2.0, -1e-4, 1e2])
    V, Vd = f(q1, c, q2)
    assert np.all(np.isfinite(V))
    if name not in INFINITE_VDOT_AT_RHO1:
        assert np.all(np.isfinite(Vd))


@pytest.mark.parametrize("name", ["relu", "abs", "leaky_relu", "gelu", "erf", "tanh"])
def test_gradients_finite_at_kink_and_boundary(name):
    f = sn.derive(CATALOG[name]).jax(checked=False)
    for c0 in (1.0, -1.0, 0.0):
        g = jax.grad(lambda a, b, d: f(a, b, d)[0], argnums=(0, 1, 2))(1.0, c0, 1.0)
        assert all(np.isfinite(float(v)) for v in g)


@pytest.mark.parametrize("name", ["relu", "erf", "gelu", "sin", "x4", "tanh"])
def test_float32_within_float32_tolerance(name):
    """Float32 inputs give float32 outputs within 1e-5 relative of float64 (≈ 100 ulp after
    the ~10 operations of a closed form; the Hermite sum of 96 terms stays within that)."""
    f = sn.derive(CATALOG[name]).jax(checked=False)
    rng = np.random.default_rng(1)
    q1, q2 = rng.uniform(0.2, 3, 100), rng.uniform(0.2, 3, 100)
    c = rng.uniform(-0.95, 0.95, 100) * np.sqrt(q1 * q2)
    V64, Vd64 = f(q1, c, q2)
    V32, Vd32 = f(*(a.astype(np.float32) for a in (q1, c, q2)))
    assert V32.dtype == jnp.float32
    scale = np.sqrt(np.abs(f(q1, np.sqrt(q1 * q1), q1)[0] * f(q2, np.sqrt(q2 * q2), q2)[0]))
    assert np.max(np.abs(np.asarray(V32, np.float64) - V64) / scale) < 1e-5
    assert V64.dtype == jnp.float64


def test_float32_matrix_products_run_at_float32_precision():
    """Importing symntk asks JAX for float32-precision matrix products unless the environment chose:
    JAX's default on NVIDIA GPUs from Ampere on is TF32 (10-bit mantissa), under which the test above
    failed for tanh on an H100 (8.4e-5: the Hermite coefficients are matrix products)."""
    assert jax.config.jax_default_matmul_precision == os.environ.get("JAX_DEFAULT_MATMUL_PRECISION", "highest")


def test_jit_and_broadcasting():
    f = jax.jit(sn.derive("relu(x)").jax(checked=False))
    q = jnp.linspace(0.5, 2, 5)
    V, Vd = f(q[:, None], 0.3 * jnp.ones((5, 5)), q[None, :])
    assert V.shape == (5, 5)


def test_hermite_error_bound_is_an_upper_bound():
    """The reported bound really bounds the truncation error (N = 24 vs N = 160)."""
    coarse = sn.derive("tanh(x)", n_terms=24).module().dual_with_bound
    fine = sn.derive("tanh(x)", n_terms=160).module().dual_with_bound
    q = np.array([0.5, 2.0, 10.0])
    for rho in (0.5, 0.9, 0.99, 1.0):
        V, _, bound, _ = coarse(q, rho * q, q)
        Vf, _, bf, _ = fine(q, rho * q, q)
        assert np.all(np.abs(np.asarray(V) - np.asarray(Vf)) <= np.asarray(bound) + np.asarray(bf) + 1e-14)


def test_vectorised_arctan2_is_within_one_ulp_and_has_the_exact_gradient():
    """symntk._numerics.arctan2 (used by generated code) against NumPy's libm atan2: ≤ 2.3e-16
    relative (1 ulp) over all quadrants and 1e-280 … 1e280; its JVP is (x dy − y dx)/(x² + y²)."""
    import jax
    from symntk._numerics import arctan2
    rng = np.random.default_rng(0)
    for scale in (1e-280, 1e-5, 1.0, 1e5, 1e280):
        y = rng.normal(size=20000) * scale
        x = rng.normal(size=20000) * scale * rng.choice([1e-3, 1.0, 1e3], 20000)
        ref = np.arctan2(y, x)
        assert np.max(np.abs(np.asarray(arctan2(y, x)) - ref) / np.abs(ref)) < 2.3e-16
    assert [float(arctan2(a, b)) for a, b in ((0.0, 0.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0))] == \
        [0.0, np.pi, np.pi / 2, -np.pi / 2]
    g = jax.grad(arctan2, argnums=(0, 1))(0.3, -0.7)
    assert np.allclose(g, (-0.7 / 0.58, -0.3 / 0.58), rtol=1e-15)



@pytest.mark.parametrize("formula", ["tanh(x)", "elu(x)", "silu(x)"])
def test_hermite_quadrature_table_matches_adaptive_quadrature(formula):
    """The graded 544-node table gives aₙ(q) = E[φ(√q z) hₙ(z)] to 1e-14 of √E[φ²] against
    QUADPACK on φ lambdified by SymPy (unit panels, plus breakpoints at ±1/√q and ±10/√q where
    φ(√q z) changes; its own error estimate added), for q = 1e-4 … 1e3 and n up to 95."""
    from math import factorial, sqrt
    import sympy
    from scipy import integrate, special
    from symntk.gaussian import hermite
    act = sn.activation(formula)
    phi_np = sympy.lambdify(sympy.Symbol("x"), act.expr, "numpy")
    phi = sn.derive(formula).module().phi
    for q in (1e-4, 1.0, 1e3):
        a, m = hermite.hermite_coefficients(phi, np.array(q), 96)
        edges = np.unique(np.r_[np.linspace(-10, 10, 21), [s / sqrt(q) for s in (-10, -1, 1, 10) if abs(s / sqrt(q)) < 10]])
        for n in (0, 1, 7, 40, 95):
            norm = sqrt(factorial(n) * 2 * np.pi)
            f = lambda z: phi_np(sqrt(q) * z) * special.eval_hermitenorm(n, z) * np.exp(-z * z / 2) / norm  # noqa: E731
            parts = [integrate.quad(f, lo, hi, limit=200, epsabs=1e-18, epsrel=1e-15) for lo, hi in zip(edges[:-1], edges[1:])]
            ref, err = sum(v for v, _ in parts), sum(e for _, e in parts)
            assert abs(float(a[n]) - ref) <= 1e-14 * sqrt(float(m)) + err, (q, n, float(a[n]), ref, err)


def test_per_point_rule_with_extra_edges_gives_the_shared_tables_coefficients():
    """For a smooth φ an extra panel edge changes nothing: the per-point rule (kinks given) and its
    three-term recurrence reproduce the shared table's features to rounding, all 97 coefficients
    (absolute 5e-15: |tanh|, |tanh'| ≤ 1 bound every feature, and the tails T are differences of
    moments ≤ 1)."""
    from symntk.gaussian import hermite
    mod = sn.derive("tanh(x)").module()
    q = jnp.asarray([1e-3, 0.5, 3.0, 300.0])
    shared, per_point = (hermite.features(mod.phi, mod.dphi, q, mod.AT_ZERO, kinks=k) for k in ((), (-0.7, 2.0)))
    for a, b in zip(shared, per_point):
        np.testing.assert_allclose(b, a, rtol=0, atol=5e-15)


@pytest.mark.parametrize("formula", ["tanh(x)", "gelu(x)"])
@pytest.mark.parametrize("q", [1e-4, 0.7])
def test_partial_derivatives_at_coincident_points(formula, q):
    """At q1 = q2 = c the exact moments replace the series (hermite.pair); their linear correction
    keeps ∂V/∂c = V̇ (Price) and ∂V/∂q1, ∂V/∂q2 equal to the limit of the neighbouring entries:
    ∂V/∂q1 at ρ = 1 − 1e-6 moves from it by ~1e-6 relative, hence the tolerance."""
    f = sn.derive(formula).jax(checked=False)
    V = lambda a, b, e: f(a, b, e)[0]  # noqa: E731
    g = jax.grad(V, argnums=(0, 1, 2))(*map(jnp.float64, (q, q, q)))
    assert float(g[1]) == pytest.approx(float(f(q, q, q)[1]), rel=1e-12)
    assert float(g[0]) == pytest.approx(float(g[2]), rel=1e-12)
    near = jax.grad(V)(*map(jnp.float64, (q, q * (1 - 1e-6), q)))
    assert float(g[0]) == pytest.approx(float(near), rel=1e-4, abs=1e-5 * float(g[1]))


def test_zero_variance_gives_the_one_point_limit():
    """At q1 = 0 only the n = 0 Mehler term survives: V = φ(0)E[φ(v)], V̇ = φ'(0)E[φ'(v)], and
    ∂V/∂c = V̇ (Price); checked against the same quantities at q1 = 1e-12 (differences O(1e-6))."""
    f = sn.derive("tanh(x)").jax(checked=False)
    V0, Vd0 = (float(v) for v in f(0.0, 0.0, 1.0))
    Vs, Vds = (float(v) for v in f(1e-12, 0.0, 1.0))
    assert np.isfinite(Vd0) and Vd0 == pytest.approx(Vds, rel=1e-6) and V0 == pytest.approx(Vs, abs=1e-6)
    assert float(jax.grad(lambda c: f(0.0, c, 1.0)[0])(0.0)) == pytest.approx(Vd0, rel=1e-12)


@pytest.mark.parametrize("formula, expected", [("erf(x)", (0.0, -4 / np.pi / np.sqrt(3))),
                                                 ("exp(x)", (0.5 * np.exp(0.5), 0.5 * np.exp(0.5))),
                                                 ("x**3", (0.0, 9.0)), ("relu(x)", (0.0, 0.0))])
def test_closed_form_q_derivatives_at_zero_variance_are_finite(formula, expected):
    """∂V/∂q1 and ∂V̇/∂q1 at q1 = 0, c = 0, q2 = 1.  The clip of c must not leak √(q1 q2)'s infinite
    slope into the gradient of the unclipped entries (∞·0 = NaN, the old behaviour).  Smooth φ: the
    exact values (erf: V̇ = (4/π)(1 + 2q1 + 2q2 + 4q1q2 − 4c²)^{−1/2}; exp: V = V̇ = e^{(q1+q2)/2};
    x³: V = 9q1q2c + 6c³, V̇ = 9q1q2 + 18c²).  ReLU's V ∝ √q1 has no derivative at 0: it reports 0,
    the value that makes a zero-input row's entries (q1 ≡ 0, so dq1 = 0) differentiate to 0, not ∞·0."""
    f = sn.derive(formula).jax(checked=False)
    got = [float(jax.grad(lambda q: f(q, 0.0, 1.0)[k])(0.0)) for k in (0, 1)]
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)


SERIES_AT_ZERO = ["tanh", "sigmoid", "softplus", "silu", "elu", "selu", "mish", "sin", "cos"]


@pytest.mark.parametrize("name", SERIES_AT_ZERO)
def test_series_q_derivatives_at_zero_variance_follow_the_heat_equation(name):
    """The Hermite strategy and the small-variance branch (sin, cos) at q1 = 0, c = 0, q2 = 0.7:
    ∂V/∂q1 = ½E[φ''(u)φ(v)] = ½φ''(0)E[φ(v)] and ∂V̇/∂q1 = ½φ'''(0)E[φ'(v)] (heat equation,
    u ≡ 0), with φ'', φ''' the means of their one-sided limits at a kink (ELU, SELU).  Reference:
    those derivatives by SymPy and E[φ(v)], E[φ'(v)] by 30-digit mpmath quadrature split at 0.
    Before, both were NaN (∞·0 from √q1's slope at 0).  Tolerance 1e-13 of the largest of |value|
    and E[|φ|]-sized scale: the features' rule is accurate to ~2e-15 of √E[φ²]."""
    from symntk.activation import x as xs
    act = sn.activation(CATALOG[name])
    f, q2 = sn.derive(act).jax(checked=False), 0.7
    got = [float(jax.grad(lambda q: f(q, 0.0, q2)[k])(0.0)) for k in (0, 1)]
    for k, (outer, inner) in enumerate(((2, 0), (3, 1))):
        d = sp.diff(act.expr, xs, outer).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
        slope = (sp.limit(d, xs, 0, "+") + sp.limit(d, xs, 0, "-")) / 2
        g = sp.lambdify(xs, sp.diff(act.expr, xs, inner).replace(sp.DiracDelta, lambda *a: sp.S.Zero), "mpmath")
        with mp.workdps(30):
            mean = mp.quad(lambda z: mp.npdf(z) * g(mp.sqrt(mp.mpf(q2)) * z), [-mp.inf, 0, mp.inf])
            scale = mp.quad(lambda z: mp.npdf(z) * abs(g(mp.sqrt(mp.mpf(q2)) * z)), [-mp.inf, 0, mp.inf])
        expected = float(slope / 2 * mean)
        assert abs(got[k] - expected) <= 1e-13 * max(abs(expected), float(scale)), (k, got[k], expected)
