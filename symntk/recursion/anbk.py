"""The aNBK saddle-point equations B4–B6, derived by SymPy from the action B2 (theory/adaptive.md).

The single-site integral B3 of a general φ (an undefined SymPy function) has no closed form, so
the derivation differentiates under the integral sign, one coordinate at a time (the matrix
statements follow entrywise: ∂/∂Φ̂_μν acts on φ_μφ_ν, ∂/∂Σ_μν on
the Gaussian density, whose derivative is ½(Σ⁻¹hhᵀΣ⁻¹ − Σ⁻¹)_μν N):

    Z(a, q) = ∫ dh N(h; 0, a) e^{−q φ(h)²/2}
    S = −½ Σ_ℓ Φ_ℓ Φ̂_ℓ − Σ_ℓ ln Z(Φ_{ℓ−1}, Φ̂_ℓ) + (γ₀²/2) y²/(Φ_L + β⁻¹)

Z_ℓ is kept as a function Z_ℓ(Φ_{ℓ−1}, Φ̂_ℓ); SymPy differentiates S, and each ∂Z_ℓ/∂v is replaced by
Z_ℓ⟨∂_v ln(integrand)⟩_ℓ, the score SymPy computes from the integrand (−φ²/2 for v = Φ̂_ℓ,
h²/(2a²) − 1/(2a) for v = a = Φ_{ℓ−1}), averaged term by term under the tilted density of layer ℓ
(written E_ℓ).  Solving ∂S/∂Φ̂_ℓ = 0 gives B4 (Φ_ℓ = E_ℓ[φ²]), ∂S/∂Φ_ℓ = 0 for ℓ < L gives B5
(Φ̂_ℓ = (Φ_ℓ − E_{ℓ+1}[h²])/Φ_ℓ²) and ∂S/∂Φ_L = 0 gives B6 (Φ̂_L = −γ₀²y²/(Φ_L + β⁻¹)²).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

gamma0, beta, y = sp.symbols("gamma_0 beta y", positive=True)
h = sp.Symbol("h", real=True)
phi = sp.Function("varphi")


def _density(var, tilt):
    """The integrand of B3 for one coordinate: N(h; 0, var) e^{−tilt φ(h)²/2}."""
    return sp.exp(-h**2 / (2 * var)) / sp.sqrt(2 * sp.pi * var) * sp.exp(-tilt * phi(h) ** 2 / 2)


def _score_average(var, tilt, wrt, layer):
    """∂ ln Z/∂wrt = ⟨∂ ln(integrand)/∂wrt⟩ (differentiation under the integral sign): SymPy computes
    the score ∂_wrt(integrand)/integrand and the average is written term by term (linearity) as
    E_layer(·), the tilted single-site average of layer ``layer``."""
    dens = _density(var, tilt)
    score = sp.expand(sp.simplify(sp.diff(dens, wrt) / dens))
    avg = sp.Function(f"E_{layer}")
    out = 0
    for term in sp.Add.make_args(score):
        coeff, dep = term.as_independent(h)
        out += coeff * (avg(dep) if dep != 1 else 1)
    return out


@dataclass
class AnbkEquations:
    """``action`` (B2, one coordinate, Z_ℓ kept as functions), ``stationarity`` (∂S/∂Φ̂_ℓ, ∂S/∂Φ_ℓ
    with the derivatives of ln Z_ℓ as tilted averages E_ℓ) and ``solved`` (B4, B5, B6 as sp.Eq)."""

    depth: int
    Phi: tuple
    Phi_hat: tuple
    action: sp.Expr
    stationarity: list
    solved: list

    def latex(self) -> str:
        """The derivation, one equation per line."""
        lines = [r"Z_\ell = \int dh\, \mathcal N(h; 0, \Phi_{\ell-1})\, e^{-\hat\Phi_\ell\varphi(h)^2/2},\quad"
                 r" E_\ell(\cdot) = \text{average under } \mathcal N e^{-\hat\Phi_\ell\varphi^2/2}/Z_\ell",
                 r"S = " + sp.latex(self.action)]
        lines += [r"0 = " + sp.latex(e) for e in self.stationarity]
        lines += [sp.latex(e) for e in self.solved]
        return "\n".join(lines)


def saddle_equations(depth: int) -> AnbkEquations:
    """Derive B4–B6 for ``depth`` layers (module docstring).  Φ₀ = Kˣ."""
    if not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f"depth must be an integer ≥ 1, got {depth!r}")
    Phi = sp.symbols(f"Phi_1:{depth + 1}", positive=True)
    Phi_hat = sp.symbols(rf"\hat{{\Phi}}_1:{depth + 1}", real=True)
    prev = (sp.Symbol("K^x", positive=True),) + Phi[:-1]
    Z = [sp.Function(f"Z_{i + 1}")(p, t) for i, (p, t) in enumerate(zip(prev, Phi_hat))]
    S = (-sp.Rational(1, 2) * sum(p * t for p, t in zip(Phi, Phi_hat)) - sum(sp.log(z) for z in Z)
         + gamma0**2 * y**2 / (2 * (Phi[-1] + 1 / beta)))
    scores = {}
    for i, (p, t) in enumerate(zip(prev, Phi_hat)):
        for v in (p, t):
            scores[sp.Derivative(Z[i], v)] = Z[i] * _score_average(p, t, v, i + 1)
    stationarity = [sp.simplify(sp.diff(S, v).subs(scores)) for v in Phi_hat + Phi]
    solved = [sp.Eq(v, sp.solve(e, v)[0]) for e, v in zip(stationarity, Phi + Phi_hat)]
    return AnbkEquations(depth, Phi, Phi_hat, S, stationarity, solved)
