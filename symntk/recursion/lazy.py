"""The lazy NNGP/NTK layer recursion of a deep MLP (theory/lazy.md L0, L9–L11).

Both parameterisations share the NNGP and differ only in the constants that multiply the
weight and bias gradient contributions to the NTK:

    Σ^1 = σ_w0² x·x'/d + σ_b0²,                  Θ^1 = α_w0 x·x'/d + α_b0
    Σ^{ℓ+1} = σ_wℓ² V_φ(Σ^ℓ) + σ_bℓ²,             Σ̇^{ℓ+1} = σ_wℓ² V̇_φ(Σ^ℓ)
    Θ^{ℓ+1} = α_wℓ V_φ(Σ^ℓ) + α_bℓ + Σ̇^{ℓ+1} Θ^ℓ

* ``ntk``: h^{ℓ+1} = (σ_w/√N) W φ(h^ℓ) + σ_b b with W, b ~ N(0, 1) and one learning rate:
  α_w = σ_w², α_b = σ_b² (then Θ^{ℓ+1} = Σ^{ℓ+1} + Σ̇^{ℓ+1} Θ^ℓ, eq. L11).
* ``standard``: h^{ℓ+1} = W φ(h^ℓ) + b with W ~ N(0, σ_w²/N), b ~ N(0, σ_b²), weights trained
  with learning rate η/N (fan-in), biases with η — the width-scaled rates under which the
  standard parameterisation has a finite NTK (Sohl-Dickstein et al. 2020): α_w = α_b = 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..errors import DataError

PARAMETERIZATIONS = ("ntk", "standard")


def _per_layer(name, value, depth):
    v = np.broadcast_to(np.asarray(value, dtype=float), (depth + 1,)) if np.ndim(value) == 0 else np.asarray(value, float)
    if v.shape != (depth + 1,):
        raise DataError(f"{name} must be a number or a list of depth + 1 = {depth + 1} values (one per weight "
                        f"layer, input layer first), got {len(v)}")
    if not np.all(np.isfinite(v)):
        raise DataError(f"{name} must be finite, got {list(v)}")
    return v


def layer_coefficients(depth, sigma_w, sigma_b, parameterization="ntk"):
    """Per weight layer ℓ = 0..depth: arrays (σ_wℓ², σ_bℓ², α_wℓ, α_bℓ) of the recursion above."""
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise DataError(f"depth counts hidden layers and must be an integer ≥ 1, got {depth!r}")
    if parameterization not in PARAMETERIZATIONS:
        raise DataError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    sw, sb = _per_layer("sigma_w", sigma_w, depth), _per_layer("sigma_b", sigma_b, depth)
    if np.any(sw <= 0):
        raise DataError(f"sigma_w must be > 0 in every layer, got {list(sw)}")
    if np.any(sb < 0):
        raise DataError(f"sigma_b must be ≥ 0 in every layer, got {list(sb)}")
    return scaled_coefficients(sw**2, sb**2, parameterization)


def scaled_coefficients(sw2, sb2, parameterization):
    """(σ_w², σ_b², α_w, α_b) from per-layer σ_w², σ_b² (no checks; NumPy or traced JAX arrays)."""
    if parameterization == "ntk":
        return sw2, sb2, sw2, sb2
    return sw2, sb2, 0 * sw2 + 1, 0 * sb2 + 1


@dataclass(frozen=True)
class LazyRecursion:
    """The recursion L9–L11 for one activation, depth and parameterisation, as equations."""

    dual: object  # DualActivation
    depth: int
    parameterization: str = "ntk"

    def latex(self) -> str:
        """The recursion written out with this activation's V_φ and V̇_φ (one equation per line)."""
        V, Vd = sp.latex(self.dual.nngp_expr), sp.latex(self.dual.ntk_expr)
        ntk = self.parameterization == "ntk"
        lines = [
            r"\varphi(x) = " + sp.latex(self.dual.activation.expr)
            + rf"\quad\text{{(depth }}L = {self.depth}\text{{, {self.parameterization} parameterisation)}}",
            r"\Sigma^{1}(x,x') = \sigma_{w,0}^2\, x\cdot x'/d + \sigma_{b,0}^2",
            (r"\Theta^{1}(x,x') = \Sigma^{1}(x,x')" if ntk else r"\Theta^{1}(x,x') = x\cdot x'/d + 1"),
            r"\Sigma^{\ell+1}(x,x') = \sigma_{w,\ell}^2\, V_\varphi\big(\Sigma^\ell(x,x), \Sigma^\ell(x,x'),"
            r" \Sigma^\ell(x',x')\big) + \sigma_{b,\ell}^2,\quad \ell = 1..L",
            r"\dot\Sigma^{\ell+1}(x,x') = \sigma_{w,\ell}^2\, \dot V_\varphi\big(\Sigma^\ell(x,x), \Sigma^\ell(x,x'),"
            r" \Sigma^\ell(x',x')\big)",
            (r"\Theta^{\ell+1}(x,x') = \Sigma^{\ell+1}(x,x') + \dot\Sigma^{\ell+1}(x,x')\,\Theta^\ell(x,x')" if ntk else
             r"\Theta^{\ell+1}(x,x') = V_\varphi(\Sigma^\ell) + 1 + \dot\Sigma^{\ell+1}(x,x')\,\Theta^\ell(x,x')"),
            r"K = \Sigma^{L+1},\quad \Theta = \Theta^{L+1}",
            r"V_\varphi(q_1, c, q_2) = " + V,
            r"\dot V_\varphi(q_1, c, q_2) = " + Vd,
        ]
        return "\n".join(lines)
