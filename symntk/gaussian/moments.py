"""Closed-form Gaussian expectations of resolved terms (theory/lazy.md L1, L4).

Two-point results are returned as ``(expr, D)``: ``expr`` is written with the symbol
``W`` standing for √D(s), D a quadratic in the covariance ``s``, so that the Price
integrator sees Σ P(s)·W⁻ᵖ.  Smooth×smooth pairs use the Gaussian moment-generating
function with a quadratic tilt; δ-pairs use the conditional law of the other variable.
"""
from __future__ import annotations

import sympy as sp

from ..activation import x
from .terms import Term, Unsupported, gaussian_form

q1, q2 = sp.symbols("q1 q2", positive=True)
c = sp.Symbol("c", real=True)
s = sp.Symbol("s", real=True)
q = sp.Symbol("q", positive=True)
W = sp.Symbol("W", positive=True)
_al, _be = sp.symbols("alpha beta")


def _poly_coeffs(P):
    p = sp.Poly(P, x)
    return [(m[0], co) for m, co in p.terms()]


def expect_1d(t: Term, var=q):
    """E[t(z)], z ~ N(0, var), for a term of kind smooth (Gaussian form), H± (b = 0) or δ⁽ⁿ⁾.


    Returns ``(value, conditions)``; conditions are expressions that must stay positive
    for the integral to converge.  Raises Unsupported otherwise.
    """
    if t.kind == "delta":
        dens = sp.exp(-x**2 / (2 * var)) / sp.sqrt(2 * sp.pi * var)
        return (-1) ** t.order * t.g * sp.diff(dens, x, t.order).subs(x, 0), []
    if t.kind == "smooth":
        pieces, conds = smooth_1d_pieces(t.g, var)
        return sum(e.subs(W, sp.sqrt(D)) for e, D in pieces), conds
    form = gaussian_form(t.g)
    if form is None:
        raise Unsupported(f"{t.g} is not polynomial × exp(quadratic)")
    total, conds = 0, []
    for P, a, b in form:
        if a > 0:
            conds.append(1 - 2 * a * var)
        if b != 0:
            raise Unsupported("half-line integral with a linear exponent")
        sgn = 1 if t.kind == "H+" else -1
        beta = 1 / (2 * var) - a
        total += sum(co * sgn**k * sp.gamma(sp.Rational(k + 1, 2)) / (2 * beta ** sp.Rational(k + 1, 2))
                     for k, co in _poly_coeffs(P)) / sp.sqrt(2 * sp.pi * var)
    return total, conds


def smooth_1d_pieces(g, var):
    """E[g(z)], z ~ N(0, var), g = Σ P e^{a z² + b z}: [(expr in W, D = 1 − 2a·var)], conditions."""
    form = gaussian_form(g)
    if form is None:
        raise Unsupported(f"{g} is not polynomial × exp(quadratic)")
    pieces, conds = [], []
    for P, a, b in form:
        if a > 0:
            conds.append(1 - 2 * a * var)
        M = sp.exp((b + _al) ** 2 * var / (2 * W**2)) / W
        pieces.append((sum(co * sp.diff(M, _al, k) for k, co in _poly_coeffs(P)).subs(_al, 0), 1 - 2 * a * var))
    return pieces, conds


def _smooth_pair(f1, f2, cov):
    """E[P1(u)e^{a1u²+b1u} P2(v)e^{a2v²+b2v}] via the tilted MGF; returns (expr in W, D)."""
    (P1, a1, b1), (P2, a2, b2) = f1, f2
    Sig = sp.Matrix([[q1, cov], [cov, q2]])
    Ain = sp.eye(2) - 2 * sp.diag(a1, a2) * Sig
    D = sp.expand(Ain.det())
    m = sp.Matrix([b1 + _al, b2 + _be])
    quad = sp.expand((m.T * Sig * Ain.adjugate() * m)[0, 0])
    M = sp.exp(quad / (2 * W**2)) / W
    total = 0
    for i, ci in _poly_coeffs(P1):
        for j, cj in _poly_coeffs(P2):
            total += ci * cj * sp.diff(M, _al, i, _be, j)
    return total.subs({_al: 0, _be: 0}), D


def _delta_pair(order, coeff, other: Term, qa, qb, cov):
    """E[coeff·δ⁽ᵐ⁾(u) T(v)], u ~ N(0, qa), v|u ~ N(cov·u/qa, (qa·qb − cov²)/qa)."""
    u = sp.Symbol("u", real=True)
    pu = sp.exp(-u**2 / (2 * qa)) / sp.sqrt(2 * sp.pi * qa)
    mu, var = cov * u / qa, (qa * qb - cov**2) / qa
    if other.kind == "delta":
        # N(0; mu, var) with var = W²/qa, D = qa·qb − cov²
        dens = sp.exp(-(x - mu) ** 2 * qa / (2 * W**2)) * sp.sqrt(qa) / (sp.sqrt(2 * sp.pi) * W)
        cond = (-1) ** other.order * other.g * sp.diff(dens, x, other.order).subs(x, 0)
        D = sp.expand(qa * qb - cov**2)
    else:
        form = gaussian_form(other.g)
        if other.kind != "smooth" or form is None:
            raise Unsupported("δ paired with a non-resolved term")
        a_set = {a for _, a, _ in form}
        if len(a_set) > 1:
            raise Unsupported("several Gaussian tilts in one term")
        a = a_set.pop()
        D = sp.expand(qa - 2 * a * (qa * qb - cov**2))      # = qa·(1 − 2a·var)
        cond = 0
        for P, _, b in form:
            Mv = sp.exp((a * mu**2 + (b + _be) * mu + (b + _be) ** 2 * var / 2) * qa / W**2) * sp.sqrt(qa) / W
            cond += sum(co * sp.diff(Mv, _be, k) for k, co in _poly_coeffs(P)).subs(_be, 0)
    val = (-1) ** order * coeff * sp.diff(pu * cond, u, order).subs(u, 0)
    return val, D


def pair_conditions(t1: Term, t2: Term, cov=c):
    """Σ⁻¹ − 2·diag(a1, a2) ≻ 0 (both leading minors) for every tilt with a > 0."""
    out = []
    f1 = gaussian_form(t1.g) if t1.kind == "smooth" else [(0, 0, 0)]
    f2 = gaussian_form(t2.g) if t2.kind == "smooth" else [(0, 0, 0)]
    det = q1 * q2 - cov**2
    for _, a1, _ in f1:
        for _, a2, _ in f2:
            if a1 > 0 or a2 > 0:
                out += [q2 - 2 * a1 * det, q1 - 2 * a2 * det,
                        sp.expand((1 - 2 * a1 * q1) * (1 - 2 * a2 * q2) - 4 * a1 * a2 * cov**2)]
    return [e for e in out if not (e.is_number and e > 0)]


def expect_pair(t1: Term, t2: Term, cov=s):
    """E[t1(u) t2(v)] for resolved terms; returns a list of (expr in W, D) pieces."""
    if t1.kind == "delta":
        return [_delta_pair(t1.order, t1.g, t2, q1, q2, cov)]
    if t2.kind == "delta":
        val, D = _delta_pair(t2.order, t2.g, t1, q2, q1, cov)
        return [(val, D)]
    f1, f2 = gaussian_form(t1.g), gaussian_form(t2.g)
    if f1 is None or f2 is None:
        raise Unsupported("pair of non-resolved terms")
    return [_smooth_pair(a, b, cov) for a in f1 for b in f2]
