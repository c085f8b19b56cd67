"""Price's-theorem descent (theory/lazy.md L3, L4): closed forms derived, not typed in.

For F, G with F⁽ᵏ⁾, G⁽ᵏ⁾ resolved (δ's or polynomial × exp(quadratic)), Taylor's theorem
in the covariance with Price's ∂ᶜE[F(u)G(v)] = E[F'(u)G'(v)] gives

    E[F(u)G(v)](c) = Σ_{j<k} cʲ/j! · E[F⁽ʲ⁾(u)]·E[G⁽ʲ⁾(v)]
                     + ∫₀ᶜ (c−s)ᵏ⁻¹/(k−1)! · E[F⁽ᵏ⁾(u)G⁽ᵏ⁾(v)](s) ds .

The integrand is Σ P(s)·(κ − λs²)^(−p/2) with p odd; s = √(κ/λ)·sin θ turns each piece
into ∫ sinʲθ cos¹⁻ᵖθ dθ, and the angle comes back as atan2(c√λ, √(κ − λc²)).
One-point expectations E_q[F] use the same idea in the variance: ∂_q E = ½E[F''].
"""
from __future__ import annotations

import functools

import sympy as sp

from ..activation import x
from .moments import W, c, expect_1d, expect_pair, pair_conditions, q, q1, q2, s, smooth_1d_pieces
from .terms import Term, Unsupported, diff_terms, resolved

MAX_ORDER = 10
_th = sp.Symbol("theta", real=True)
_r = sp.Symbol("r", positive=True)
_t = sp.Symbol("t", positive=True)


_DESCENDABLE = (sp.exp, sp.erf, sp.erfc, sp.sin, sp.cos, sp.sinh, sp.cosh)


def _descendable(g) -> bool:
    """Only polynomials, exp, erf, sin/cos and their products can reach a Gaussian form."""
    for e in sp.preorder_traversal(g):
        if isinstance(e, sp.Function) and not isinstance(e, _DESCENDABLE):
            return False
        if isinstance(e, sp.Pow) and not isinstance(e.base, sp.exp) and e.base.has(x) \
                and not (e.exp.is_Integer and e.exp >= 0):
            return False
    return True


def descent_order(terms: list[Term]) -> int:
    """Smallest k with every term of F⁽ᵏ⁾ resolved; raises Unsupported past MAX_ORDER."""
    for t in terms:
        if t.kind != "delta" and not _descendable(t.g):
            raise Unsupported(f"{t.g} has no derivative of polynomial × exp(quadratic) form")
    for k in range(MAX_ORDER + 1):
        if all(resolved(t) for t in terms):
            return k
        terms = diff_terms(terms)
    raise Unsupported(f"no derivative up to order {MAX_ORDER} is integrable in closed form")


def derivatives(terms, k):
    out = [terms]
    for _ in range(k):
        out.append(diff_terms(out[-1]))
    return out


@functools.lru_cache(maxsize=None)
def _theta_primitive(j, p):
    return sp.integrate(sp.sin(_th) ** j * sp.cos(_th) ** (1 - p), _th)


def _theta_integral(j, p, kappa, lam, upper):
    """∫₀^upper sʲ (κ − λ s²)^(−p/2) ds for λ > 0 and odd p, by s = √(κ/λ) sin θ."""
    prim = _theta_primitive(j, p)
    w = sp.sqrt(kappa - lam * upper**2)
    S, C = upper * sp.sqrt(lam) / sp.sqrt(kappa), w / sp.sqrt(kappa)
    angle = sp.atan2(upper * sp.sqrt(lam), w)

    def at(sv, cv, av):
        e = prim.subs(sp.tan(_th), sp.sin(_th) / sp.cos(_th))
        e = e.subs({sp.sin(_th): sv, sp.cos(_th): cv}).subs(_th, av)
        if e.has(_th) or e.has(sp.sec, sp.csc, sp.cot):
            raise Unsupported("trigonometric primitive not reducible")
        return e

    R = sp.sqrt(kappa / lam)
    return R ** (j + 1) * kappa ** sp.Rational(-p, 2) * (at(S, C, angle) - at(0, 1, 0))


def _split_W(expr, var=s):
    """expr(var, W) → {p: P(var)} with expr = Σ P(var)·W⁻ᵖ."""
    Y = sp.Symbol("Y", positive=True)
    out = {}
    for t in sp.Add.make_args(sp.expand(expr.subs(W, 1 / Y))):
        co, p = t.as_coeff_exponent(Y)
        if co.has(Y) or not co.is_polynomial(var) or not p.is_integer:
            raise Unsupported("integrand is not a polynomial times a power of the determinant")
        out[int(p)] = out.get(int(p), 0) + co
    return out


def integrate_remainder(pieces, k, upper=c):
    """∫₀^upper (upper − s)ᵏ⁻¹/(k−1)! · Σ pieces(s) ds, pieces = [(expr in W, D(s))]."""
    total = 0
    for expr, D in pieces:
        Dp = sp.Poly(D, s)
        if Dp.degree() > 2 or Dp.coeff_monomial(s) != 0:
            raise Unsupported("determinant not of the form κ − λ s²")
        kappa, lam = Dp.coeff_monomial(1), -Dp.coeff_monomial(s**2)
        for p, P in _split_W(expr).items():
            integrand = sp.Poly(sp.expand((upper - s) ** (k - 1) / sp.factorial(k - 1) * P), s)
            for (j,), co in integrand.terms():
                if lam == 0:
                    total += co * kappa ** sp.Rational(-p, 2) * upper ** (j + 1) / (j + 1)
                elif p % 2 == 0 and p <= 0:
                    poly = sp.Poly(sp.expand(s**j * D ** (-p // 2)), s)
                    total += co * sum(cf * upper ** (e + 1) / (e + 1) for (e,), cf in poly.terms())
                elif p % 2 == 1 and lam.is_number and lam > 0:
                    total += co * _theta_integral(j, p, kappa, lam, upper)
                else:
                    raise Unsupported(f"integral of s^{j}·(κ − λs²)^(−{p}/2) with λ = {lam}")
    return total


def expect_one(terms: list[Term], var=q):
    """E[F(z)], z ~ N(0, var): direct for resolved terms, otherwise descent in the variance.

    E_q[F] = Σ_{i<m} F⁽²ⁱ⁾(0)(q/2)ⁱ/i! + ∫₀^q (q−r)^{m−1}/(m−1)! · 2⁻ᵐ E_r[F⁽²ᵐ⁾] dr.
    Returns (value, conditions).
    """
    total, conds = sp.Integer(0), []
    for t in terms:
        if t.kind != "smooth" or resolved(t):
            v, cd = expect_1d(t, var)
        elif sp.expand(t.g.subs(x, -x) + t.g) == 0:
            v, cd = sp.Integer(0), []
        else:
            v, cd = _variance_descent(t, var)
        total += v
        conds += cd
    return total, conds


def _variance_descent(t: Term, var):
    if not _descendable(t.g):
        raise Unsupported(f"E[{t.g}] has no closed form reachable by descent")
    ders = [t]
    for m in range(1, MAX_ORDER + 1):
        ders += diff_terms(diff_terms([ders[-1]]))
        if resolved(ders[-1]):
            break
    else:
        raise Unsupported(f"E[{t.g}] has no closed form reachable by descent")
    m = len(ders) - 1
    head = sum(d.g.subs(x, 0) * (var / 2) ** i / sp.factorial(i) for i, d in enumerate(ders[:-1]))
    pieces, conds = smooth_1d_pieces(ders[-1].g, _r)
    tail = 0
    for expr, D in pieces:
        for p, P in _split_W(expr, _r).items():
            poly = sp.Poly(sp.expand((var - _r) ** (m - 1) / sp.factorial(m - 1) / 2**m * P), _r)
            tail += sum(co * _power_integral(j, sp.Rational(-p, 2), D, var) for (j,), co in poly.terms())
    return head + tail, [cd.subs(_r, var) for cd in conds]


def _power_integral(j, e, base, upper):
    """∫₀^upper rʲ (α + βr)ᵉ dr with base = α + βr, by u = α + βr and the binomial theorem."""
    bp = sp.Poly(base, _r)
    beta, alpha = bp.coeff_monomial(_r), bp.coeff_monomial(1)
    if beta == 0:
        return alpha**e * upper ** (j + 1) / (j + 1)
    total = 0
    for i in range(j + 1):
        cf = sp.binomial(j, i) * (-alpha) ** (j - i) / beta ** (j + 1)
        total += cf * ((alpha + beta * upper) ** (e + i + 1) - alpha ** (e + i + 1)) / (e + i + 1)
    return total


def price_descent(phi_terms: list[Term]):
    """E[F(u)F(v)] for (u, v) ~ N(0, [[q1, c], [c, q2]]) by descent; returns (expr, k, steps, conds)."""
    k = descent_order(phi_terms)
    ders = derivatives(phi_terms, k)
    steps, conds, boundary = [], [], 0
    for j in range(k):
        e1, c1 = expect_one(ders[j], q1)
        e2 = e1.subs(q1, q2)
        conds += c1 + [cd.subs(q1, q2) for cd in c1]
        boundary += c**j / sp.factorial(j) * e1 * e2
        steps.append((f"E[F^({j})(u)] at c = 0", e1))
    pieces = [pc for t1 in ders[k] for t2 in ders[k] for pc in expect_pair(t1, t2)]
    conds += [cd for t1 in ders[k] for t2 in ders[k] for cd in pair_conditions(t1, t2)]
    integrand = sum(e.subs(W, sp.sqrt(D)) for e, D in pieces)
    steps.append((f"E[F^({k})(u)F^({k})(v)](s)", integrand))
    if k == 0:
        value = integrand.subs(s, c)
    else:
        value = boundary + integrate_remainder(pieces, k)
    return value, k, steps, conds
