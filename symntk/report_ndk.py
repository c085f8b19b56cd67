"""``symntk ndk``: the NDK learning curves of a Langevin-trained network on a data set (theory/ndk.md).

Train and test MSE of the mean predictor N8 through time on a log axis, with the two limits it
must connect drawn as lines: the NTK ensemble trained to convergence at T = 0 (N11, t → ∞, from
K_d(0,0)) and the NNGP posterior with prior σ² and noise T (N12).  Output: ``ndk_report.md``,
``ndk_results.json``, ``ndk_learning_curves.png``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import predict
from .kernels import MLP
from .ndk import LangevinMLP
from .plot import figure, learning_curve


def limits(net, x_train, y_train, x_test):
    """Test-point means of the two limits: NTK flow at t = ∞ (Θ = K_d(0,0)) and the NNGP posterior (N12)."""
    x = np.concatenate([x_train, x_test])
    p = len(y_train)
    theta = net.ndk(0.0, 0.0, x)
    ridge = 1e-10 * np.max(np.abs(theta))
    ntk = predict.ntk_gradient_flow(theta[:p, :p], theta[:, :p], y_train, t=[np.inf], ridge=ridge).mean[0]
    if net.depth == 0:
        k_gp = net.sigma_sq * x @ x.T / x.shape[1]
    else:
        k_gp = MLP(net.activation, net.depth, sigma_w=np.sqrt(net.sigma_sq), sigma_b=0.0).kernel(x).nngp
    nngp = predict.nngp_posterior(k_gp[:p, :p], k_gp[:, :p], None, y_train, noise=max(net.temperature, ridge)).mean
    return ntk, nngp


def run(data, out, activation, depth=2, sigma0_sq=2.0, sigma_sq=0.5, temperature=0.05, n_train=100, n_test=100,
        n_times=None, log=print):
    """Solve N8 for ``data`` (first ``n_train``/``n_test`` points) and write the report into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    xtr, ytr, xte, yte = data.x_train[:n_train], data.y_train[:n_train], data.x_test[:n_test], data.y_test[:n_test]
    t0 = time.perf_counter()
    net = LangevinMLP(activation, depth, sigma0_sq, sigma_sq, temperature)
    sol = net.predict(xtr, ytr, xte, n_times=n_times, covariance=False)
    p = len(ytr)
    mse = lambda f, y: np.mean((f - y) ** 2, axis=-1)  # noqa: E731
    train, test = mse(sol.mean[:, :p], ytr), mse(sol.mean[:, p:], yte)
    ntk, nngp = limits(net, xtr, ytr, xte)
    lim = {name: {"train": float(mse(f[:p], ytr)), "test": float(mse(f[p:], yte))} for name, f in (("ntk", ntk), ("nngp", nngp))}
    seconds = time.perf_counter() - t0
    log(f"{net!r}: {len(sol.grid)} time points, {seconds:.1f} s")

    fig, ax = figure(figsize=(6.4, 4.2))
    t = sol.times[1:]
    learning_curve(ax, t, train[1:], label="train MSE", color="C0")
    learning_curve(ax, t, test[1:], label="test MSE", color="C1",
                   limits=[(lim["ntk"]["test"], "NTK limit (T = 0, t → ∞), test"),
                           (lim["nngp"]["test"], "NNGP posterior (t → ∞), test")])
    ph = sol.phases
    for tau, name in ((ph.gradient, "1/λ_max"), (ph.diffusive, "σ²/T")):
        if np.isfinite(tau):
            ax.axvline(tau, color="grey", lw=0.6, ls=":")
            ax.text(tau, ax.get_ylim()[1], name, fontsize=7, va="top")
    ax.set_ylabel("MSE of the mean predictor")
    ax.set_title(f"NDK, φ = {net.activation.expr}, L = {depth}, σ₀² = {sigma0_sq}, σ² = {sigma_sq}, T = {temperature}",
                 fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "ndk_learning_curves.png", dpi=130)

    pick = np.unique(np.searchsorted(sol.times, np.geomspace(max(sol.times[1], 1e-300), sol.times[-1], 12)))
    pick = pick[pick < len(sol.times)]
    lines = [f"# NDK learning curves: `{activation}` on {data.name}", "",
             f"depth {depth}, σ₀² = {sigma0_sq}, σ² = {sigma_sq}, T = {temperature}; {p} training and {len(yte)} test "
             f"points; {len(sol.grid)} time points; {seconds:.1f} s.", "",
             f"Phases: gradient 1/λ_max = {ph.gradient:.3g} (slowest mode {ph.gradient_slowest:.3g}), "
             f"diffusive σ²/T = {ph.diffusive:.3g}.", "",
             "| t | train MSE | test MSE |", "|---:|---:|---:|"]
    lines += [f"| {sol.times[i]:.4g} | {train[i]:.4f} | {test[i]:.4f} |" for i in pick]
    lines += ["", f"NTK limit (T = 0, t → ∞): train {lim['ntk']['train']:.4f}, test {lim['ntk']['test']:.4f}.  "
              f"NNGP posterior (N12): train {lim['nngp']['train']:.4f}, test {lim['nngp']['test']:.4f}.", "",
              "![learning curves](ndk_learning_curves.png)"]
    (out / "ndk_report.md").write_text("\n".join(lines) + "\n")
    (out / "ndk_results.json").write_text(json.dumps({
        "activation": activation, "depth": depth, "sigma0_sq": sigma0_sq, "sigma_sq": sigma_sq,
        "temperature": temperature, "times": sol.times.tolist(), "train_mse": train.tolist(),
        "test_mse": test.tolist(), "limits": lim, "seconds": seconds,
        "phases": {"gradient": ph.gradient, "gradient_slowest": ph.gradient_slowest, "diffusive": ph.diffusive}}, indent=1))
    return sol, train, test, lim
