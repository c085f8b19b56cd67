"""Independent references for E[f(u)g(v)], (u, v) ~ N(0, [[q1, c], [c, q2]]) (theory/lazy.md L1, L4).

* ``one_point`` / ``boundary``: mpmath at 30 digits for the exact 1-D cases — c = 0 (product of
  two 1-D integrals) and |c| = √(q1 q2) (the degenerate pair v = ±√(q2/q1) u).
* ``double_quad``: nested adaptive Gauss–Kronrod (SciPy QUADPACK) in float64 with the kink of
  piecewise activations and the Gaussian peak as breakpoints; returns the value and QUADPACK's error estimate,
  which the tests add to their tolerance.
"""
from __future__ import annotations

import math

import mpmath as mp
import sympy as sp
from scipy import integrate

from symntk.activation import x

DPS = 30


def _heaviside_free(expr):
    return expr.replace(lambda e: isinstance(e, sp.Heaviside),
                        lambda e: sp.Piecewise((1, e.args[0] > 0), (sp.Rational(1, 2), sp.Eq(e.args[0], 0)), (0, True)))


def mp_function(expr):
    return sp.lambdify(x, _heaviside_free(expr), "mpmath")


def np_function(expr):
    """f as a float function; where an intermediate overflows float64 (sigmoid' = e⁻ˣ/(1 + e⁻ˣ)² at
    x = −400) that point is evaluated in mpmath instead."""
    f, g = sp.lambdify(x, sp.piecewise_fold(_heaviside_free(expr)), "math"), mp_function(expr)

    def value(v):
        try:
            return float(f(v))
        except OverflowError:
            return float(g(mp.mpf(v)))
    return value


def _pts(oscillating, freq, *extra):
    """mp.quad's breakpoints: 0, the ``extra`` points and, for an ``oscillating`` integrand (sin,
    cos in φ) of angular frequency up to ``freq`` in z, every half-period π/freq on [−12, 12]
    (tanh-sinh on [0, ∞) gets a rapidly oscillating integrand wrong; the mass beyond 12 is 4e-33)."""
    grid = []
    if oscillating and freq > mp.pi:
        n = int(mp.ceil(24 * freq / mp.pi))
        grid = [-12 + 24 * mp.mpf(i) / n for i in range(n + 1)]
    return [-mp.inf, *sorted({mp.mpf(0), *grid, *extra}), mp.inf]


def boundary(f_expr, g_expr, q1, q2, sign, kinks=()):
    """30-digit E[f(u) g(v)] at c = 0 (sign = 0) or c = sign·√(q1 q2) (sign = ±1); the
    integration is split at 0, at the images z of the ``kinks`` x of f and g, and for sin/cos
    every half-period."""
    osc = any(e.has(sp.sin, sp.cos) for e in (f_expr, g_expr))
    with mp.workdps(DPS):
        f, g = mp_function(f_expr), mp_function(g_expr)
        s1, s2 = mp.sqrt(mp.mpf(q1)), mp.sqrt(mp.mpf(q2))
        k = [mp.mpf(v) for v in kinks]
        if sign == 0:
            ef = mp.quad(lambda z: mp.npdf(z) * f(s1 * z), _pts(osc, s1, *(v / s1 for v in k)))
            eg = mp.quad(lambda z: mp.npdf(z) * g(s2 * z), _pts(osc, s2, *(v / s2 for v in k)))
            return ef * eg
        return mp.quad(lambda z: mp.npdf(z) * f(s1 * z) * g(sign * s2 * z),
                       _pts(osc, s1 + s2, *(v / s1 for v in k), *(sign * v / s2 for v in k)))


Z_CUT = 12.0  # Gaussian mass beyond |z| = 12 is 4e-33 (nothing), and exp(√q z) stays finite for q ≤ 3400


def double_quad(f_expr, g_expr, q1, c, q2):
    """(value, error estimate) of E[f(u) g(v)] by nested QUADPACK in z1, z2 (standard normals),
    each on [−12, 12] (so exp(√q z) cannot overflow float64 for q ≤ 3400)."""
    f, g = np_function(f_expr), np_function(g_expr)
    a = c / math.sqrt(q1)
    b = math.sqrt(max(q2 - c * c / q1, 0.0))
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    errs = []

    def inner(z1):
        brk = sorted((min(max(-a * z1 / b, -Z_CUT), Z_CUT), 0.0))
        val = 0.0
        for lo, hi in ((-Z_CUT, brk[0]), (brk[0], brk[1]), (brk[1], Z_CUT)):
            v, e = integrate.quad(lambda z2: pdf(z2) * g(a * z1 + b * z2), lo, hi, epsabs=1e-15, epsrel=1e-14, limit=200)
            val += v
            errs.append(e)
        return val

    total, err = 0.0, 0.0
    for lo, hi in ((-Z_CUT, 0.0), (0.0, Z_CUT)):
        v, e = integrate.quad(lambda z1: pdf(z1) * f(math.sqrt(q1) * z1) * inner(z1), lo, hi,
                              epsabs=1e-15, epsrel=1e-14, limit=200)
        total += v
        err += e
    return total, err + max(errs, default=0.0)
