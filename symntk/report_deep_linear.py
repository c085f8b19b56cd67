"""``symntk deep-linear``: whitened overlaps c_L against γ₀ per depth with the asymptotes D5, and
c_ℓ across layers (theory/adaptive.md D4–D5).  Output: ``deep_linear_overlaps.png``,
``deep_linear_layers.png``, ``deep_linear.json``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import deep_linear as dl
from .errors import DataError
from .plot import figure


def gamma_grid(spec):
    """'lo:hi' (60 log-spaced values) or a comma-separated list."""
    try:
        if ":" in spec:
            lo, hi = (float(v) for v in spec.split(":"))
            return np.geomspace(lo, hi, 60)
        return np.array([float(v) for v in spec.split(",")])
    except ValueError:
        raise DataError(f"--gamma0 must be 'lo:hi' or a comma-separated list of numbers, got {spec!r}") from None


def run(out, depths, gammas, beta, log=print):
    """Compute and plot; returns {depth: c_L array}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = figure(figsize=(6.4, 4.4))
    result = {}
    for i, L in enumerate(depths):
        cL = dl.last_overlap(L, gammas, beta)
        asym = dl.asymptotes(L, gammas, beta)
        result[L] = cL
        ax.loglog(gammas, cL, color=f"C{i}", label=f"L = {L}")
        ax.loglog(gammas, asym.lazy, color=f"C{i}", ls=":", lw=0.8)
        ax.loglog(gammas, asym.rich, color=f"C{i}", ls="--", lw=0.8)
        if L >= 8:
            ax.loglog(gammas, asym.deep, color=f"C{i}", ls="-.", lw=0.8)
    ax.set_ylim(0.8, 2 * max(np.max(v) for v in result.values()))
    ax.set_xlabel("γ₀"), ax.set_ylabel("c_L = yᵀΦᴸy")
    ax.set_title(f"whitened deep linear overlaps, β = {beta:g} (dotted lazy, dashed rich, dash-dot deep)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "deep_linear_overlaps.png", dpi=130)

    fig, ax = figure(figsize=(6.4, 4))
    for i, L in enumerate(depths):
        for g, ls in zip(np.geomspace(gammas[0], gammas[-1], 3), (":", "--", "-")):
            c = dl.whitened_overlaps(int(L), float(g), beta).c
            ax.semilogy(np.arange(1, L + 1) / L, c, color=f"C{i}", ls=ls, marker="." if L <= 16 else None,
                        label=f"L = {L}, γ₀ = {g:.3g}")
    ax.set_xlabel("ℓ / L"), ax.set_ylabel("c_ℓ"), ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "deep_linear_layers.png", dpi=130)
    (out / "deep_linear.json").write_text(json.dumps(
        {"beta": beta, "gamma0": gammas.tolist(), "c_L": {str(L): v.tolist() for L, v in result.items()}}, indent=1))
    log(f"depths {list(depths)}, {len(gammas)} values of γ₀ in [{gammas[0]:.3g}, {gammas[-1]:.3g}], β = {beta:g}")
    return result
