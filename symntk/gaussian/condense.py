"""A closed form condensed: collected on its transcendental factors, each coefficient simplified as an
algebraic function, so that float64 evaluates it without cancelling terms.

Price's descent returns a sum of boundary terms and integrated pieces.  Each is O(1) or larger where
their sum is small: for x·erf(x) at q1 = q2 = 1e3 terms of 1.3e7 sum to V ≈ 1e3 (5.7e-12 relative
error in float64), and factors such as √(1 + 2q) − 1 cancel at small q.  Written as

    V = Σ_k R_k(q1, c, q2) T_k,   T_k the products of the non-algebraic factors (atan2, exp, erf, …),

with every R_k one fraction, the cancellation happens symbolically (x·erf(x): 15 terms become
(2c/π) atan2(2c, A) + 4(4q1²q2² + 2q1²q2 + 2q1q2² + q1q2 + c² − 4c²q1q2)/(π(2q1 + 1)(2q2 + 1)A),
A = √((2q1 + 1)(2q2 + 1) − 4c²); its float64 error falls to 2e-15).

How: every square-root factor √f of an irreducible radicand becomes a positive symbol r.  Where f is
linear in one variance (2q + 1, q) that variance is rewritten through r (q = (r² − 1)/2), so
the radical is a polynomial variable; where f is quadratic in c (q1q2 − c², (1 + 2q1)(1 + 2q2) − 4c²),
c² is eliminated through r² = f.  Each coefficient is then a rational function, reduced by ``cancel``,
and the radicals are substituted back, numerators expanded.  The result is kept only where it is
no longer than the input and equals it to 40 digits at probe covariances, interior and boundary
(c = 0, |ρ| = 1) alike; otherwise the input is returned unchanged.
"""
from __future__ import annotations

import itertools

import mpmath
import sympy as sp

from .moments import c, q1, q2

PROBE_VARIANCES = ((0.25, 4.0), (2.0**-10, 16.0), (9.0, 9.0), (36.0, 0.0625))  # q1q2 a square: c exact at |ρ| = 1
PROBE_RHOS = (-1, -0.6, 0, 0.45, 1)
DIGITS = 50


def condense(expr: sp.Expr) -> sp.Expr:
    """``expr`` (a dual activation in q1, c, q2) as Σ_k R_k T_k, or ``expr`` itself where that fails,
    is longer, or differs at a probe covariance (module docstring), or holds symbolic parameters
    (which the probes could not check)."""
    if not expr.free_symbols <= {q1, c, q2}:
        return expr
    try:
        out = _condensed(expr)
    except (sp.PolynomialError, sp.polys.polyerrors.PolificationFailed, ValueError, TypeError,
            NotImplementedError, ZeroDivisionError):
        return expr
    if out is None or sp.count_ops(out) > sp.count_ops(expr) or not _agree(expr, out):
        return expr
    return out


def _condensed(expr):
    """Σ_k R_k T_k (module docstring), or None where a radical's radicand holds a transcendental factor."""
    functions = sorted(expr.atoms(sp.Function), key=sp.default_sort_key)
    outer = [f for f in functions if not any(g != f and g.has(f) for g in functions)]
    factors = {f: sp.Dummy(f"T{i}") for i, f in enumerate(outer)}
    e = expr.xreplace(factors)
    roots, variance_of, quadratic = {}, {}, {}  # radicand f → its symbol r; q → q(r); r → f, f not linear in a q
    replace = {}
    for p in sorted((p for p in e.atoms(sp.Pow) if p.exp.is_Rational and p.exp.q == 2), key=sp.default_sort_key):
        if p.base.has(*factors.values()):
            return None
        const, parts = sp.factor_list(p.base)
        value = sp.Pow(const, p.exp)
        for f, m in parts:
            if f not in roots:
                r = roots[f] = sp.Dummy("r", positive=True)
                linear = [v for v in (q1, q2) if f.free_symbols == {v} and sp.degree(f, v) == 1]
                if linear and linear[0] not in variance_of:
                    slope, offset = sp.Poly(f, linear[0]).all_coeffs()
                    variance_of[linear[0]] = (r**2 - offset) / slope
                else:
                    quadratic[r] = f
            value *= roots[f] ** (2 * m * p.exp)
        replace[p] = value
    e = e.xreplace(replace).subs(variance_of, simultaneous=True)
    back = {r: sp.sqrt(f) for f, r in roots.items()}
    c_squared = None  # c² in terms of the first radical r with r² = α + βc²
    for r, f in quadratic.items():
        poly = sp.Poly(sp.expand(f.subs(variance_of, simultaneous=True)), c)
        if c_squared is None and poly.degree() == 2 and poly.coeff_monomial(c) == 0:
            c_squared = (r**2 - poly.coeff_monomial(1)) / poly.coeff_monomial(c**2)
    out = 0
    for monomial, coefficient in sp.collect(sp.expand(e), list(factors.values()), evaluate=False).items():
        rational = sp.cancel(sp.together(coefficient))
        if c_squared is not None:
            rational = sp.cancel(rational.subs(c**2, c_squared))
        num, den = sp.fraction(rational)
        out += sp.factor_terms(sp.expand(num.subs(back)) / sp.factor(den.subs(back))) * monomial
    # every node rebuilt with evaluation, as unpickling does (factor_terms leaves 9*(2c² + q1q2) unevaluated,
    # which a pickle round trip through derive's cache turns into 18c² + 9q1q2: docs and code would differ)
    return sp.bottom_up(out.xreplace({v: k for k, v in factors.items()}), lambda e: e.func(*e.args))


def _agree(a, b):
    """a = b to 40 digits (relative to max(|a|, 1e-30)) at every probe covariance where a is finite,
    and b finite there too; a must be finite at every interior probe (|ρ| < 1)."""
    fa, fb = (sp.lambdify((q1, c, q2), e, "mpmath") for e in (a, b))
    with mpmath.workdps(DIGITS):
        for (u, v), rho in itertools.product(PROBE_VARIANCES, PROBE_RHOS):
            point = (mpmath.mpf(u), rho * mpmath.sqrt(mpmath.mpf(u) * v), mpmath.mpf(v))
            va = _value(fa, point)
            if va is None and abs(rho) < 1:
                return False
            if va is None:
                continue
            vb = _value(fb, point)
            if vb is None or abs(va - vb) > mpmath.mpf(10) ** -40 * max(abs(va), 1e-30):
                return False
    return True


def _value(f, point):
    """f(point) in mpmath, or None where it is not a finite number (a pole, or a function mpmath lacks)."""
    try:
        value = f(*point)
    except (ZeroDivisionError, ValueError, TypeError, NameError):
        return None
    return value if mpmath.isfinite(value) else None
