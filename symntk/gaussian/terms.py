"""Split φ into terms the engine can integrate, and differentiate them exactly.

A term is ``g(x)·K`` with K ∈ {1, H(x), H(−x)} and g smooth, or ``a·δ⁽ⁿ⁾(x)`` with a
constant.  A smooth g is *Gaussian-form* when it is a sum of P(x)·exp(a x² + b x) with
P a polynomial (sin/cos/sinh/cosh are rewritten through complex exponentials).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..activation import x


class Unsupported(Exception):
    """This strategy cannot handle the expression (another strategy may)."""


@dataclass(frozen=True)
class Term:
    kind: str            # "smooth", "H+", "H-" or "delta"
    g: sp.Expr           # smooth factor g(x); for "delta" the constant coefficient
    order: int = 0       # derivative order of δ

    def latex(self) -> str:
        if self.kind == "delta":
            d = r"\delta" + ("" if self.order == 0 else "^{(%d)}" % self.order)
            return sp.latex(self.g) + r"\," + d + "(x)"
        k = {"smooth": "", "H+": r"\,\Theta(x)", "H-": r"\,\Theta(-x)"}[self.kind]
        return r"\left(" + sp.latex(self.g) + r"\right)" + k


def _heaviside_kind(f):
    arg = f.args[0]
    coeff = sp.simplify(arg / x)
    if not (coeff.is_number and coeff.is_real and coeff != 0):
        raise Unsupported(f"Heaviside with argument {arg} (only H(±a·x) is integrated in closed form)")
    return "H+" if coeff > 0 else "H-"


def decompose(expr: sp.Expr) -> list[Term]:
    """φ → [Term]: group the additive pieces of φ by their Heaviside / Dirac factor."""
    groups: dict[tuple, sp.Expr] = {}
    for t in sp.Add.make_args(sp.expand(expr)):
        kinds, smooth, delta = set(), [], None
        for f in sp.Mul.make_args(t):
            base, exp_ = f.as_base_exp() if isinstance(f, sp.Pow) else (f, 1)
            if isinstance(base, sp.Heaviside):
                kinds.add(_heaviside_kind(base))
            elif isinstance(base, sp.DiracDelta):
                if delta is not None or exp_ != 1 or sp.simplify(base.args[0] - x) != 0:
                    raise Unsupported(f"Dirac factor {f}")
                delta = base.args[1] if len(base.args) > 1 else 0
            else:
                smooth.append(f)
        g = sp.Mul(*smooth)
        if kinds == {"H+", "H-"}:
            continue
        if delta is not None:
            if kinds or x in g.free_symbols:
                raise Unsupported(f"Dirac term with non-constant factor {t}")
            key = ("delta", int(delta))
        else:
            key = (kinds.pop() if kinds else "smooth", 0)
        groups[key] = groups.get(key, 0) + g
    return [Term(k, sp.expand(g) if k != "delta" else g, n) for (k, n), g in sorted(groups.items()) if g != 0]


def diff_terms(terms: list[Term]) -> list[Term]:
    """d/dx of a term list: (g H(±x))' = g' H(±x) ± g(0) δ(x); (a δ⁽ⁿ⁾)' = a δ⁽ⁿ⁺¹⁾."""
    acc: dict[tuple, sp.Expr] = {}

    def add(kind, order, g):
        acc[(kind, order)] = acc.get((kind, order), 0) + g

    for t in terms:
        if t.kind == "delta":
            add("delta", t.order + 1, t.g)
            continue
        add(t.kind, 0, sp.diff(t.g, x))
        if t.kind in ("H+", "H-"):
            g0 = t.g.subs(x, 0)
            if not g0.is_finite:
                raise Unsupported(f"{t.g} is not finite at the jump x = 0")
            add("delta", 0, g0 if t.kind == "H+" else -g0)
    out = []
    for (k, n), g in sorted(acc.items()):
        g = sp.expand(g) if k != "delta" else sp.nsimplify(g) if g.is_number else g
        if g != 0:
            out.append(Term(k, g, n))
    return out


def gaussian_form(g: sp.Expr):
    """Return [(P(x), a, b)] with g = Σ P(x)·exp(a x² + b x), or None if g is not of that form."""
    g = sp.expand(g.rewrite([sp.sin, sp.cos, sp.sinh, sp.cosh], sp.exp), power_exp=False)
    out = []
    for t in sp.Add.make_args(g):
        poly, expo = [], sp.Integer(0)
        for f in sp.Mul.make_args(t):
            if isinstance(f, sp.exp):
                expo += f.args[0]
            elif isinstance(f, sp.Pow) and isinstance(f.base, sp.exp) and f.exp.is_number:
                expo += f.base.args[0] * f.exp
            else:
                poly.append(f)
        P = sp.Mul(*poly)
        expo = sp.expand(expo)
        if not (P.is_polynomial(x) and expo.is_polynomial(x)):
            return None
        ep = sp.Poly(expo, x)
        if ep.degree() > 2:
            return None
        c2, c1, c0 = [ep.coeff_monomial(x**k) for k in (2, 1, 0)]
        if not (c2.is_number and c2.is_real):
            return None
        out.append((sp.expand(P * sp.exp(c0)), c2, c1))
    return out


def resolved(t: Term) -> bool:
    """A term the 2-D moment formulas integrate directly: δ⁽ⁿ⁾ or an H-free Gaussian form."""
    return t.kind == "delta" or (t.kind == "smooth" and gaussian_form(t.g) is not None)
