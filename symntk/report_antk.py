"""``symntk antk``: the two-layer aNTK (gradient flow with weight decay at its fixed point,
theory/adaptive.md T1–T6) against the lazy NTK on a data set.

Prints and writes the test MSE of the NTK predictor (ridgeless kernel regression with the
two-layer NTK at initialisation, σ_w = 1, σ_b = 0) and of the aNTK predictor (T3, kernel form
Φ¹[Φ¹ + λI]⁻¹y), the learning curves of the particle dynamics, the final kernels (sorted by class)
and the pre-activation densities at initialisation and at the fixed point.  Output:
``antk_report.md``, ``antk_results.json``, ``antk_learning_curves.png``, ``antk_kernels.png``,
``antk_densities.png``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import predict
from .antk import WeightDecayMLP
from .kernels import MLP
from .plot import figure, kernel_heatmap, learning_curve


def run(data, out, activation, gamma0=1.0, lam=1e-2, particles=2000, n_train=100, n_test=200, tol=1e-4, dt=None,
        t_max=None, log=print):
    """Solve the aNTK for the first ``n_train``/``n_test`` points of ``data`` and write the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    xtr, ytr, xte, yte = data.x_train[:n_train], data.y_train[:n_train], data.x_test[:n_test], data.y_test[:n_test]
    p = len(ytr)
    t0 = time.perf_counter()
    model = WeightDecayMLP(activation, gamma0=gamma0, lam=lam, particles=particles)
    sol = model.solve(xtr, ytr, x_test=xte, tol=tol, dt=dt, t_max=t_max, throw=False)
    seconds = time.perf_counter() - t0
    x = np.concatenate([xtr, xte])
    theta = MLP(activation, depth=1, sigma_w=1.0, sigma_b=0.0).kernel(x).ntk
    ntk = predict.ntk_gradient_flow(theta[:p, :p], theta[:, :p], ytr, t=[np.inf],
                                    ridge=1e-10 * np.max(np.abs(theta))).mean[0]
    mse = lambda f, y: float(np.mean((f - y) ** 2))  # noqa: E731
    losses = {"ntk": {"train": mse(ntk[:p], ytr), "test": mse(ntk[p:], yte)},
              "antk": {"train": mse(sol.kernel_form[:p], ytr), "test": mse(sol.kernel_form[p:], yte)}}
    log(f"{model.activation.expr}, γ₀ = {gamma0}, λ = {lam}, {particles} particles, {p} train / {len(yte)} test points: "
        f"test MSE NTK {losses['ntk']['test']:.4f}, aNTK {losses['antk']['test']:.4f} "
        f"({sol.result}, T4 residuals {sol.residual[0]:.2g}, {sol.residual[1]:.2g}; {seconds:.0f} s)")

    fig, ax = figure(figsize=(6.4, 4.2))
    t = sol.times[1:]
    learning_curve(ax, t, np.mean((sol.outputs[1:, :p] - ytr) ** 2, axis=1), label="train MSE", color="C0")
    learning_curve(ax, t, np.mean((sol.outputs[1:, p:] - yte) ** 2, axis=1), label="test MSE", color="C1",
                   limits=[(losses["ntk"]["test"], "NTK regression, test")])
    ax.set_ylabel("MSE"), ax.legend(fontsize=7)
    ax.set_title(f"aNTK particle dynamics, φ = {model.activation.expr}, γ₀ = {gamma0}, λ = {lam}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "antk_learning_curves.png", dpi=130)

    fig, axes = figure(1, 2, figsize=(9, 4))
    kernel_heatmap(axes[0], theta[:p, :p], ytr, "NTK at initialisation")
    kernel_heatmap(axes[1], sol.ntk[:p, :p], ytr, "aNTK K = Φ¹ + G¹⊙Kˣ at the fixed point")
    fig.tight_layout()
    fig.savefig(out / "antk_kernels.png", dpi=130)

    fig, ax = figure(figsize=(6.4, 4))
    h = sol.preactivation_density(point=0)
    q = float(np.sum(x[0] * x[0]) / x.shape[1])
    grid = np.linspace(min(h.min(), -4 * np.sqrt(q)), max(h.max(), 4 * np.sqrt(q)), 400)
    ax.hist(h, bins=80, density=True, alpha=0.6, label="fixed point (particles)")
    ax.plot(grid, np.exp(-grid ** 2 / (2 * q)) / np.sqrt(2 * np.pi * q), color="k", lw=1, label="initialisation N(0, Kˣ)")
    ax.set_xlabel("pre-activation h at training point 0"), ax.set_ylabel("density"), ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "antk_densities.png", dpi=130)

    lines = [f"# aNTK vs NTK: `{activation}` on {data.name}", "",
             f"Two layers, γ₀ = {gamma0}, λ = {lam}, {particles} particles; {p} training and {len(yte)} test points; "
             f"{seconds:.1f} s.  Result: {sol.result} (T4 residuals {sol.residual[0]:.3g}, {sol.residual[1]:.3g}; "
             f"tolerance {tol:g}); the two T3 forms differ by {sol.form_disagreement:.3g}.", "",
             "| predictor | train MSE | test MSE |", "|---|---:|---:|",
             f"| NTK regression (t → ∞, γ₀ → 0) | {losses['ntk']['train']:.4f} | {losses['ntk']['test']:.4f} |",
             f"| aNTK (T3) | {losses['antk']['train']:.4f} | {losses['antk']['test']:.4f} |", "",
             "![learning curves](antk_learning_curves.png)", "", "![kernels](antk_kernels.png)", "",
             "![densities](antk_densities.png)"]
    (out / "antk_report.md").write_text("\n".join(lines) + "\n")
    (out / "antk_results.json").write_text(json.dumps({
        "activation": activation, "gamma0": gamma0, "lam": lam, "particles": particles, "result": sol.result,
        "residual": list(sol.residual), "form_disagreement": sol.form_disagreement, "losses": losses,
        "times": sol.times.tolist(), "seconds": seconds}, indent=1))
    return sol, losses
