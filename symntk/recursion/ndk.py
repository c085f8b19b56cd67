"""The two-time NDK recursion N3–N7 (theory/ndk.md) for one activation and depth, as equations."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class NdkRecursion:
    """N3–N7 written out with this activation's V_φ and V̇_φ; ``latex()`` gives one equation per line."""

    dual: object  # DualActivation
    depth: int

    def latex(self) -> str:
        V, Vd = sp.latex(self.dual.nngp_expr), sp.latex(self.dual.ntk_expr)
        L = self.depth
        return "\n".join([
            r"\varphi(x) = " + sp.latex(self.dual.activation.expr) + rf"\quad\text{{(depth }}L = {L}\text{{)}}",
            r"m(t,t') = \sigma^2 e^{-k|t-t'|} + (\sigma_0^2 - \sigma^2)\, e^{-k(t+t')},\quad k = T/\sigma^2",
            r"K^0(x,x') = x\cdot x'/N_0,\quad G^0 = K^0",
            r"K^\ell(t,t',x,x') = V_\varphi\big(m(t,t) K^{\ell-1}(t,t,x,x),\ m(t,t') K^{\ell-1}(t,t',x,x'),\ "
            r"m(t',t') K^{\ell-1}(t',t',x',x')\big),\quad \ell = 1..L",
            r"\dot K^\ell(t,t',x,x') = \dot V_\varphi\big(\text{same arguments}\big)",
            r"G^\ell = K^\ell + m(t,t')\, \dot K^\ell\, G^{\ell-1}",
            r"C(t,t',x,x') = m(t,t')\, K^{L}(t,t',x,x')",
            r"K_d(t,t',x,x') = e^{-k(t-t')}\, G^{L}(t,t',x,x'),\quad t \ge t'",
            r"\bar f(x,t) = \int_0^t ds \sum_\mu K_d(t,s,x,x_\mu)\,[y_\mu - \bar f(x_\mu,s)]",
            r"V_\varphi(q_1, c, q_2) = " + V,
            r"\dot V_\varphi(q_1, c, q_2) = " + Vd,
        ])
