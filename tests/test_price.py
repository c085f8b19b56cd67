"""Price's theorem (theory/lazy.md L3): ∂V/∂c = V̇ on every derived result."""
import numpy as np
import pytest
import sympy as sp

import symntk as sn
from symntk.catalog import CATALOG
from symntk.gaussian.moments import c, q1, q2

CLOSED = [n for n, f in CATALOG.items() if sn.derive(f).method != "hermite"]
NUMERIC = [n for n, f in CATALOG.items() if sn.derive(f).method == "hermite"]
POINTS = [(0.7, 0.3, 1.3), (2.0, -1.1, 0.9), (0.05, 0.01, 0.02)]


@pytest.mark.parametrize("name", CLOSED)
def test_price_theorem_symbolic_at_30_digits(name):
    """d/dc of the derived V minus the independently derived V̇ vanishes to 25 digits
    (a symbolic derivative evaluated in exact rational arithmetic at 30 digits)."""
    d = sn.derive(CATALOG[name])
    residual = sp.diff(d.nngp_expr, c) - d.ntk_expr
    for a, b, e in POINTS:
        val = residual.subs({q1: sp.Rational(str(a)), c: sp.Rational(str(b)), q2: sp.Rational(str(e))}).evalf(30)
        ref = d.ntk_expr.subs({q1: sp.Rational(str(a)), c: sp.Rational(str(b)), q2: sp.Rational(str(e))}).evalf(30)
        assert abs(val) <= 1e-25 * max(1, abs(ref))


@pytest.mark.parametrize("name", ["relu", "erf", "sign"])
def test_price_theorem_symbolic_simplifies_to_zero(name):
    d = sn.derive(CATALOG[name])
    assert sp.simplify(sp.diff(d.nngp_expr, c) - d.ntk_expr) == 0


@pytest.mark.parametrize("name", NUMERIC)
def test_price_theorem_numerical_strategy(name):
    """Hermite: V̇ equals a 4th-order central difference of V in c (error h⁴·V⁽⁵⁾ ≲ 1e-9)."""
    f = sn.derive(CATALOG[name]).jax(checked=False)
    for a, b, e in POINTS[:2]:
        h = 1e-3 * np.sqrt(a * e)
        V = lambda cc: float(f(a, cc, e)[0])  # noqa: E731
        fd = (-V(b + 2 * h) + 8 * V(b + h) - 8 * V(b - h) + V(b - 2 * h)) / (12 * h)
        assert abs(fd - float(f(a, b, e)[1])) <= 1e-8 * max(1, abs(fd))


def test_boundary_at_c0_factorises_symbolically():
    """L4: V(q1, 0, q2) = E[φ(u)] E[φ(v)] for ReLU: (√q1/√2π)(√q2/√2π)."""
    d = sn.derive("relu(x)")
    assert sp.simplify(d.nngp_expr.subs(c, 0) - sp.sqrt(q1 * q2) / (2 * sp.pi)) == 0


@pytest.mark.parametrize("n_terms", [1, 2, 96, 200])
def test_series_custom_jvp_is_the_loops_derivative(n_terms):
    """The Mehler series' custom jvp (three series: dA1, dA2 and the ρ-slope Σ nA1ₙA2ₙρⁿ⁻¹) equals
    JAX's differentiation of the Horner loop itself (``_horner.fun``), first and second order, with
    broadcasting coefficients and 1 … 200 terms (two scan blocks): the same sums regrouped, so to
    rounding (1e-13 of the largest entry)."""
    import jax
    import jax.numpy as jnp
    from symntk.gaussian import hermite
    rng = np.random.default_rng(n_terms)
    decay = 0.9 ** np.arange(n_terms)
    A1, A2 = (jnp.asarray(rng.normal(size=s + (n_terms,)) * decay) for s in ((4, 1), (1, 3)))
    rho = jnp.asarray(rng.uniform(-0.99, 0.99, (4, 3)))
    tangents = tuple(jnp.asarray(rng.normal(size=a.shape)) for a in (A1, A2, rho))
    for order in (1, 2):
        got, want = (
            jax.jvp(lambda *p: jax.jvp(f, p, tangents)[1], (A1, A2, rho), tangents)[1] if order == 2
            else jax.jvp(f, (A1, A2, rho), tangents)[1] for f in (hermite._horner, hermite._horner.fun))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * float(jnp.max(jnp.abs(want))))
