"""Closed forms of an analytic φ at small variances: the Mehler series where the formula cancels.

A closed form can be a sum of terms of order one whose total, for an analytic φ at small variances,
is O(qᵖ), so rounding leaves an error ~1e-16/qᵖ relative.  :mod:`.condense` removes most such
cancellation symbolically (x·erf(x), as Price's descent writes it, lost 8 digits at q1 = q2 = 1e-4;
condensed, none); what it leaves (sin, cos: cosh and sinh of small arguments) is found by
:func:`needs_branch`.  There the Mehler series of :mod:`.hermite`, V = Σ aₙ(q1)aₙ(q2)ρⁿ, converges
geometrically (aₙ(q) = O((Cq)^{n/2}) for an analytic φ), and its per-point coefficients, computed by
that module's rule (:func:`hermite.smooth_features`), are accurate relative to the point's own scale
E[φ²]^{1/2}, which is what the closed form loses.

:func:`blend` takes the series' (V, V̇) wherever min(q1, q2) ≤ Q_MIN or max(q1, q2) ≤ Q_MAX and its
truncation bound is below SERIES_TOL of the kernel's scale (the tails are Parseval residuals, whose
rounding floor ~1e-20·E[φ²] makes the bound ~1e-10·√(T/E[φ²]) of the other point at |ρ| → 1), the
closed form elsewhere.  :func:`features`
computes the series data only for an array of variances holding one ≤ Q_MAX (a ``lax.cond``), so a
call at ordinary variances costs what the closed form costs.  The mixed case (q1 ≤ Q_MIN, q2 > Q_MAX)
needs the features of the large variance too: ``dual(q1, c, q2)`` passes each side the other as
``partner``, and a kernel matrix of one point set has both in one array; the cross kernel between
two sets computes each set's features alone and keeps the closed form there.
The engine adds the branch to an activation when the closed form, evaluated in float64, misses its
50-digit value by more than PROBE_TOL at small variances (:func:`needs_branch`).
"""
from __future__ import annotations

import itertools

import jax.numpy as jnp
import mpmath
import numpy as np
import sympy as sp
from jax import lax

from ..activation import x
from . import hermite
from .moments import c, q1, q2

Q_MIN, Q_MAX = 1e-3, 5e-2
N_TERMS = 40  # aₙ(q) ≲ (2q)^{n/2}·(n-th derivative scale): 1e-20 relative at q = Q_MAX for the catalog; the bound decides
SERIES_TOL = 1e-12  # the closed forms' own tolerance: the series is taken only where its bound guarantees it
RULE_TOL = 1e-10  # a gross check of the rule against the closed form's diagonal
PROBE_TOL = 1e-13
PROBE_VARIANCES = ((1e-4, 1e-4), (1e-3, 1e-3), (1e-2, 1e-2), (1e-4, 1e-2), (1e-4, 1.0), (1e-4, 1e3))
PROBE_RHOS = (-0.9, 0.3, 0.99)


def features(phi, dphi, closed_diagonal, q, at_zero, partner=None):
    """(q, aₙ, bₙ, T_V, T_V̇, E[φ²], E[φ'²]) of :func:`hermite.smooth_features` where some q ≤ Q_MAX
    (or some variance of the ``partner`` array, the other side of a pair, is ≤ Q_MIN), else q and
    placeholders whose infinite tails keep :func:`blend` on the closed form.  Above Q_MAX a point's
    rule must reproduce the closed form's E[φ²], E[φ'²] (``closed_diagonal(q)``) to RULE_TOL, or its
    tails are set infinite too: an oscillating φ (sin at q = 1e3) outruns the rule's nodes."""
    q = jnp.asarray(q)
    need = jnp.any(q <= Q_MAX) if partner is None else jnp.any(q <= Q_MAX) | jnp.any(jnp.asarray(partner) <= Q_MIN)

    def computed():
        f = hermite.smooth_features(phi, dphi, q, N_TERMS, at_zero)
        close = lambda rule, exact: jnp.abs(rule - exact) <= RULE_TOL * jnp.abs(exact)  # noqa: E731
        V, Vdot = closed_diagonal(q)
        valid = (q <= Q_MAX) | (close(f[5], V) & close(f[6], Vdot))
        return (*f[:3], jnp.where(valid, f[3], jnp.inf), jnp.where(valid, f[4], jnp.inf), *f[5:])

    def skipped():
        zero, none = jnp.zeros(q.shape + (N_TERMS,), q.dtype), jnp.zeros_like(q)
        return q, zero, zero, jnp.full_like(q, jnp.inf), jnp.full_like(q, jnp.inf), none, none

    return lax.cond(need, computed, skipped)


def blend(f1, c, f2, closed):
    """(V, V̇): the series where the variances are small and its bound is below SERIES_TOL relative,
    the closed form ``closed(q1, c, q2)`` elsewhere.  The closed form stays outside the ``lax.cond``:
    XLA on CPU runs a conditional's body unfused and on one thread (the GELU closed form took 4×
    longer inside one); without small variances the cond only writes zeros and a False mask."""
    q1, q2 = f1[0], f2[0]
    V, Vdot = closed(q1, c, q2)
    # decided on the per-point arrays (not per entry), so that ordinary variances cost two reductions
    any_below = lambda q, t: jnp.any(q <= t)  # noqa: E731
    need = any_below(q1, Q_MIN) | any_below(q2, Q_MIN) | (any_below(q1, Q_MAX) & any_below(q2, Q_MAX))

    def series():
        # q = 0 exactly stays with the closed form: the series in ρ = c/√(q1 q2) has no c-derivative there
        small = ((jnp.minimum(q1, q2) <= Q_MIN) | (jnp.maximum(q1, q2) <= Q_MAX)) & (q1 > 0) & (q2 > 0)
        Vs, Vds, bound, bound_dot = hermite.pair(f1, c, f2)
        ok = (small & (bound <= SERIES_TOL * jnp.sqrt(f1[5] * f2[5]))
              & (bound_dot <= SERIES_TOL * jnp.sqrt(f1[6] * f2[6])))
        return jnp.broadcast_to(Vs, V.shape), jnp.broadcast_to(Vds, V.shape), jnp.broadcast_to(ok, V.shape)

    def skipped():
        return jnp.zeros_like(V), jnp.zeros_like(V), jnp.zeros(V.shape, bool)

    Vs, Vds, ok = lax.cond(need, series, skipped)
    return jnp.where(ok, Vs, V), jnp.where(ok, Vds, Vdot)


def diagonal(f, V, Vdot):
    """(V, V̇) at q1 = q2 = c: the rule's E[φ²], E[φ'²] where q ≤ Q_MAX, else the closed form's."""
    small = f[0] <= Q_MAX
    return jnp.where(small, f[5], V), jnp.where(small, f[6], Vdot)


def needs_branch(phi, V, Vdot):
    """True when φ is analytic and not a polynomial and the float64 closed form (V, V̇) misses its
    50-digit value by more than PROBE_TOL of the Cauchy–Schwarz scale √(V(q1,q1,q1) V(q2,q2,q2))
    at one of the probe points (PROBE_VARIANCES × PROBE_RHOS)."""
    if phi.has(sp.Heaviside, sp.DiracDelta, sp.Abs, sp.sign, sp.Piecewise, sp.Max, sp.Min) \
            or phi.free_symbols != {x} or phi.is_polynomial(x):
        return False
    for expr in (V, Vdot):
        f64 = sp.lambdify((q1, c, q2), expr, ["scipy", "numpy"])
        exact = sp.lambdify((q1, c, q2), expr, "mpmath")
        on_diagonal = sp.lambdify(q1, expr.xreplace({q2: q1, c: q1}), "mpmath")
        with mpmath.workdps(50):
            for (a, b), rho in itertools.product(PROBE_VARIANCES, PROBE_RHOS):
                cv = rho * np.sqrt(a * b)
                ref = exact(mpmath.mpf(a), mpmath.mpf(cv), mpmath.mpf(b))
                scale = mpmath.sqrt(abs(on_diagonal(mpmath.mpf(a)) * on_diagonal(mpmath.mpf(b))))
                with np.errstate(all="ignore"):
                    val = float(f64(np.float64(a), np.float64(cv), np.float64(b)))
                if not abs(val - ref) <= PROBE_TOL * max(abs(ref), scale):
                    return True
    return False
