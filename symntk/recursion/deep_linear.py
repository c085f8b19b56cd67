"""The deep linear saddle point, derived by SymPy from the action B2 (theory/adaptive.md D1–D4).

For φ(h) = h the single-site integral B3 is Gaussian.  SymPy computes it for one coordinate,

    Z = ∫ dh N(h; 0, a) e^{−q h²/2} = (1 + a q)^{−1/2},

whose P-dimensional form (diagonalise Φˡ⁻¹Φ̂ˡ) is ln Z_ℓ = −½ ln det(I + Φˡ⁻¹Φ̂ˡ).  On whitened data
(Kˣ = I, |y| = 1) the ansatz Φˡ = I + (c_ℓ − 1)yyᵀ, Φ̂ˡ = ĉ_ℓ yyᵀ reduces every trace and determinant
to scalars (matrix-determinant lemma: det(I + Φˡ⁻¹ĉ_ℓ yyᵀ) = 1 + c_{ℓ−1}ĉ_ℓ; y is an eigenvector of
Φᴸ with eigenvalue c_L), so the action is

    S = −½ Σ_ℓ c_ℓ ĉ_ℓ + ½ Σ_ℓ ln(1 + c_{ℓ−1} ĉ_ℓ) + (γ₀²/2)/(c_L + β⁻¹),   c₀ = 1,

and SymPy differentiates it: ∂S/∂ĉ_ℓ = 0 and ∂S/∂c_ℓ = 0 are D2, their product gives the
conservation law D3, and D3 turns D2 into the scalar equation D4.  ``matrix_check`` verifies the
matrix stationarity conditions D1 entrywise for symbolic 2 × 2 symmetric matrices.
``root_equations`` turns D4 and D6 into the residuals the numerical solvers run as generated code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.codegen.cfunctions import log1p

gamma0, beta, chi = sp.symbols("gamma_0 beta chi", positive=True)


@dataclass
class SaddleEquations:
    """The derivation for one depth: ``action``, ``stationarity`` (list of sp.Eq), ``solved`` (D2 in
    explicit form), ``conservation`` (D3, verified), ``scalar`` (D4 as sp.Eq in c_L)."""

    depth: int
    c: tuple
    c_hat: tuple
    single_site: sp.Expr
    action: sp.Expr
    stationarity: list = field(default_factory=list)
    solved: list = field(default_factory=list)
    scalar: sp.Eq = None

    def latex(self) -> str:
        """The derivation, one equation per line."""
        lines = [r"Z = \int dh\, \mathcal N(h; 0, a)\, e^{-q h^2/2} = " + sp.latex(self.single_site),
                 r"S = " + sp.latex(self.action)]
        lines += [sp.latex(e) for e in self.stationarity]
        lines += [sp.latex(e) for e in self.solved]
        lines += [r"c_\ell \hat c_\ell = \chi \;\;(\ell = 1..L)", r"c_\ell = (1 - \chi)^\ell", sp.latex(self.scalar)]
        return "\n".join(lines)


def single_site_integral():
    """B3 for one coordinate with φ(h) = h: (1 + a q)^{−1/2}, computed by SymPy."""
    h, a, q = sp.symbols("h a q", positive=True)
    Z = sp.integrate(sp.exp(-h**2 / (2 * a) - q * h**2 / 2) / sp.sqrt(2 * sp.pi * a), (h, -sp.oo, sp.oo))
    return sp.simplify(Z)


def saddle_equations(depth: int) -> SaddleEquations:
    """Derive D2–D4 for ``depth`` layers from the whitened action (see the module docstring)."""
    if not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f"depth must be an integer ≥ 1, got {depth!r}")
    c = sp.symbols(f"c_1:{depth + 1}", positive=True)
    ch = sp.symbols(rf"\hat{{c}}_1:{depth + 1}", real=True)
    prev = (sp.Integer(1),) + c[:-1]
    S = (-sp.Rational(1, 2) * sum(ci * hi for ci, hi in zip(c, ch))
         + sp.Rational(1, 2) * sum(sp.log(1 + p * hi) for p, hi in zip(prev, ch))
         + gamma0**2 / 2 / (c[-1] + 1 / beta))
    stationarity = [sp.Eq(sp.diff(S, v), 0) for v in ch + c]
    solved = [sp.Eq(c[i], sp.solve(stationarity[i], c[i])[0]) for i in range(depth)]
    solved += [sp.Eq(ch[i], sp.solve(stationarity[depth + i], ch[i])[0]) for i in range(depth)]
    # D3: on the solution, c_{ℓ−1}ĉ_{ℓ−1} = c_ℓĉ_ℓ (the product of the two recursions)
    for i in range(1, depth):
        lhs = prev[i] * solved[depth + i - 1].rhs
        assert sp.simplify(lhs.subs(c[i], solved[i].rhs) - solved[i].rhs * ch[i]) == 0
    # D4: c_ℓ = c_{ℓ−1}/(1 + χ c_{ℓ−1}/c_ℓ) ⇒ c_ℓ = (1 − χ)c_{ℓ−1}; χ = c_L ĉ_L
    step = sp.solve(sp.Eq(c[0], 1 / (1 + chi / c[0])), c[0])
    assert step == [1 - chi]
    scalar = sp.Eq(c[-1], (1 - (c[-1] * solved[-1].rhs)) ** depth)
    return SaddleEquations(depth, c, ch, single_site_integral(), S, stationarity, solved, scalar)


def matrix_check() -> bool:
    """The first half of D1 from the matrix action, entrywise, for symbolic symmetric 2 × 2
    matrices A = Φˡ⁻¹, H = Φ̂ˡ: the H-gradient of −ln Z_ℓ = ½ ln det(I + AH) is ½(A⁻¹ + H)⁻¹
    (off-diagonal entries counted twice), so ∂S/∂Φ̂ˡ = −½Φˡ + ½(A⁻¹ + H)⁻¹ = 0 is
    Φˡ = [(Φˡ⁻¹)⁻¹ + Φ̂ˡ]⁻¹."""
    a, h = sp.symbols("a1:4"), sp.symbols("h1:4")
    A, H = sp.Matrix([[a[0], a[1]], [a[1], a[2]]]), sp.Matrix([[h[0], h[1]], [h[1], h[2]]])
    minus_log_z = sp.Rational(1, 2) * sp.log((sp.eye(2) + A * H).det())
    grad = [sp.diff(minus_log_z, h[0]), sp.diff(minus_log_z, h[1]) / 2, sp.diff(minus_log_z, h[2])]
    F = (A.inv() + H).inv()
    return all(sp.simplify(g - t / 2) == 0 for g, t in zip(grad, (F[0, 0], F[0, 1], F[1, 1])))


def root_equations() -> dict:
    """The scalar equations the solvers root-find, as SymPy expressions for code generation.

    ``whitened``: (F, dF/dx) of D4 in x = log c_L, F = L log(1 − c_L ĉ_L) − x, where ĉ_L is the
    derived last-layer stationarity condition and β = 1/b (so β = ∞ is b = 0); written in e^{−x} so
    that it cannot overflow for c_L up to e^{L log(1 + γ₀²)}.
    ``general_mode``: one eigenmode (λ, ŷ² = (uᵀy)² of Kˣ) of κ'(s)/γ₀² = (1 + s) vᵀKˣv in D6, with
    v = ((1 + s)Kˣ + bI)⁻¹y, in z = log(1 + s) and e^{−z}.
    """
    x, z, L, b, w = sp.symbols("x z L b w", real=True)
    lam, yhat2 = sp.symbols("lam yhat2", nonnegative=True)
    eqs = saddle_equations(1)
    c_last, c_hat_last = eqs.c[-1], eqs.solved[-1].rhs  # ĉ_L(c_L) is the same at every depth
    g = sp.factor(sp.cancel((-c_last * c_hat_last).subs(beta, 1 / b).subs(c_last, 1 / w))).subs(w, sp.exp(-x))
    F = L * log1p(g) - x
    v = sp.sqrt(yhat2) / (sp.exp(z) * lam + b)  # eigen-coordinate of v, with 1 + s = e^z
    mode = sp.factor(sp.cancel((sp.exp(z) * lam * v**2).subs(sp.exp(z), 1 / w))).subs(w, sp.exp(-z))
    return {"whitened": (F, sp.diff(F, x)), "general_mode": mode}
