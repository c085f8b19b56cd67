"""``symntk anbk``: the aNBK saddle point (Bayesian feature learning, theory/adaptive.md B1–B6)
against the lazy NNGP kernel on a data set.

Prints and writes the test MSE of the NNGPK predictor (B1 with the lazy kernels, γ₀ = 0) and of the
aNBK predictor (B1 at the saddle point), the kernel heat-maps sorted by class, the kernel–label
alignment per layer and the pre-activation densities of every layer at one training point (tilted
density by importance sampling, with the lazy Gaussian).  Output: ``anbk_report.md``,
``anbk_results.json``, ``anbk_kernels.png``, ``anbk_alignment.png``, ``anbk_densities.png``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .anbk import BayesianMLP
from .plot import figure, kernel_heatmap


def run(data, out, activation, depth=2, gamma0=0.2, beta=5.0, samples=2**13, n_train=100, n_test=200, tol=1e-6,
        log=print):
    """Solve the aNBK for the first ``n_train``/``n_test`` points of ``data`` and write the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    xtr, ytr, xte, yte = data.x_train[:n_train], data.y_train[:n_train], data.x_test[:n_test], data.y_test[:n_test]
    p = len(ytr)
    t0 = time.perf_counter()
    model = BayesianMLP(activation, depth=depth, gamma0=gamma0, beta=beta, samples=samples)
    sol = model.solve(xtr, ytr, x_test=xte, tol=tol)
    seconds = time.perf_counter() - t0
    held = sol.ess_heldout
    lazy = BayesianMLP(activation, depth=depth, gamma0=0.0, beta=beta, samples=samples).solve(xtr, ytr, x_test=xte)
    mse = lambda f, y: float(np.mean((f - y) ** 2))  # noqa: E731
    train = lambda s: s.phi[-1] @ np.linalg.solve(s.phi[-1] + np.eye(p) / beta, ytr)  # noqa: E731
    losses = {name: {"train": mse(train(s), ytr), "test": mse(s.prediction, yte)}
              for name, s in (("nngp", lazy), ("anbk", sol))}
    log(f"{model.activation.expr}, depth {depth}, γ₀ = {gamma0}, β = {beta}, {samples} samples, {p} train / "
        f"{len(yte)} test points: test MSE NNGPK {losses['nngp']['test']:.4f}, aNBK {losses['anbk']['test']:.4f} "
        f"({sol.result}, stationarity residual {sol.residual:.2g}, ESS {np.min(sol.ess):.0f}, on independent points "
        f"{np.nanmin(held, initial=np.inf):.0f}; {seconds:.0f} s)")

    fig, axes = figure(2, depth, figsize=(4.2 * depth, 7.6), squeeze=False)
    for ell in range(depth):
        kernel_heatmap(axes[0, ell], lazy.phi[ell], ytr, f"NNGPK Φ{ell + 1} (γ₀ = 0)")
        kernel_heatmap(axes[1, ell], sol.phi[ell], ytr, f"aNBK Φ{ell + 1} (γ₀ = {gamma0})")
    fig.tight_layout()
    fig.savefig(out / "anbk_kernels.png", dpi=130)

    fig, ax = figure(figsize=(5.4, 3.8))
    layers = np.arange(depth + 1)
    ax.plot(layers, lazy.alignment(), "o--", color="0.5", label="NNGPK (γ₀ = 0)")
    ax.plot(layers, sol.alignment(), "o-", color="C0", label=f"aNBK (γ₀ = {gamma0})")
    ax.set_xticks(layers), ax.set_xlabel("layer ℓ (0: input kernel)"), ax.set_ylabel("alignment A(Φˡ, yyᵀ)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "anbk_alignment.png", dpi=130)

    fig, axes = figure(1, depth, figsize=(4.2 * depth, 3.6), squeeze=False)
    for ell in range(depth):
        c, dens, gauss = sol.preactivation_density(layer=ell + 1, point=0)
        axes[0, ell].plot(c, dens, color="C0", label="aNBK (tilted)")
        axes[0, ell].plot(c, gauss, color="k", lw=1, label="lazy Gaussian")
        axes[0, ell].set_xlabel(f"h{ell + 1} at training point 0"), axes[0, ell].legend(fontsize=7)
    axes[0, 0].set_ylabel("density")
    fig.tight_layout()
    fig.savefig(out / "anbk_densities.png", dpi=130)

    lines = [f"# aNBK vs NNGPK: `{activation}` on {data.name}", "",
             f"Depth {depth}, γ₀ = {gamma0}, β = {beta}, {samples} importance samples per layer; {p} training and "
             f"{len(yte)} test points; {seconds:.1f} s.  Result: {sol.result} (stationarity residual {sol.residual:.3g}, "
             f"tolerance {tol:g}; effective sample sizes {', '.join(f'{e:.0f}' for e in sol.ess)}, on independent "
             f"points {', '.join(f'{e:.0f}' for e in held)}: Solution.heldout_ess).", "",
             "| predictor | train MSE | test MSE |", "|---|---:|---:|",
             f"| NNGPK (γ₀ → 0) | {losses['nngp']['train']:.4f} | {losses['nngp']['test']:.4f} |",
             f"| aNBK (B1 at the saddle point) | {losses['anbk']['train']:.4f} | {losses['anbk']['test']:.4f} |", "",
             "Alignment A(Φˡ, yyᵀ), ℓ = 0..L: NNGPK " + ", ".join(f"{a:.3f}" for a in lazy.alignment())
             + "; aNBK " + ", ".join(f"{a:.3f}" for a in sol.alignment()), "",
             "![kernels](anbk_kernels.png)", "", "![alignment](anbk_alignment.png)", "",
             "![densities](anbk_densities.png)"]
    (out / "anbk_report.md").write_text("\n".join(lines) + "\n")
    (out / "anbk_results.json").write_text(json.dumps({
        "activation": activation, "depth": depth, "gamma0": gamma0, "beta": beta, "samples": samples,
        "result": sol.result, "residual": sol.residual, "ess": sol.ess.tolist(),
        "ess_heldout": [None if np.isnan(e) else float(e) for e in held], "losses": losses,
        "alignment": {"nngp": lazy.alignment().tolist(), "anbk": sol.alignment().tolist()}, "seconds": seconds},
        indent=1))
    return sol, losses
