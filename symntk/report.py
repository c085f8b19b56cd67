"""The main job (``symntk run``): lazy NNGP/NTK predictors on a data set, written to a report.

For each activation and depth: the NNGP posterior (L12) and the NTK gradient-flow ensemble
(L13) at t = ∞, their test MSE and sign accuracy; learning curves of the NTK ensemble through
time; kernel heat-maps sorted by class.  Output: ``report.md``, ``results.json`` and PNGs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import predict
from .kernels import MLP
from .plot import figure, kernel_heatmap, learning_curve



def _scores(mean, y):
    return float(np.mean((mean - y) ** 2)), float(np.mean(np.sign(mean) == np.sign(y)))


def run(data, out, activations, depths=(1, 3), sigma_w=1.5, sigma_b=0.1, noise=1e-3,
        parameterization="ntk", log=print):
    """Compute the report for ``data`` (a :class:`symntk.data.Dataset`) into directory ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x = np.concatenate([data.x_train, data.x_test])
    tr, te = slice(0, len(data.y_train)), slice(len(data.y_train), None)
    rows, curves, heat = [], {}, {}
    times = np.logspace(-3, 3, 40)
    for formula in activations:
        for depth in depths:
            t0 = time.perf_counter()
            mlp = MLP(formula, depth=depth, sigma_w=sigma_w, sigma_b=sigma_b, parameterization=parameterization)
            k = mlp.kernel(x)
            sub = lambda a, b: type(k)(k.nngp[a, b], k.ntk[a, b])  # noqa: E731
            post = predict.nngp_posterior(sub(tr, tr), sub(te, tr), None, data.y_train, noise=noise)
            lam_max = np.linalg.eigvalsh(k.ntk[tr, tr])[-1]
            flow = predict.ntk_gradient_flow(sub(tr, tr), sub(te, tr), data.y_train, t=list(times / lam_max) + [None],
                                             ridge=noise, k_test_test=np.diag(k.nngp)[te])
            ntk_mse, ntk_acc = _scores(flow.mean[-1], data.y_test)
            nngp_mse, nngp_acc = _scores(post.mean, data.y_test)
            rows.append(dict(activation=formula, method=mlp.dual.method, depth=depth, nngp_mse=nngp_mse,
                             nngp_acc=nngp_acc, ntk_mse=ntk_mse, ntk_acc=ntk_acc, seconds=time.perf_counter() - t0))
            log(f"{formula:<16} depth {depth}  NNGP mse {nngp_mse:.4f} acc {nngp_acc:.3f}   "
                f"NTK mse {ntk_mse:.4f} acc {ntk_acc:.3f}   ({rows[-1]['seconds']:.1f} s, {mlp.dual.method})")
            if depth == max(depths):
                mse_mean = np.mean((flow.mean[:-1] - data.y_test) ** 2, axis=1)
                curves[formula] = (times, mse_mean, mse_mean + np.mean(flow.covariance[:-1], axis=1), nngp_mse)
                heat[formula] = (k.nngp[te, te], k.ntk[te, te])
    _figures(out, data, curves, heat, max(depths))
    (out / "results.json").write_text(json.dumps(dict(data=data.name, sigma_w=sigma_w, sigma_b=sigma_b, noise=noise,
                                                      parameterization=parameterization, results=rows), indent=2))
    (out / "report.md").write_text(_markdown(data, rows, sigma_w, sigma_b, noise, parameterization, activations))
    return rows


def _figures(out, data, curves, heat, depth):
    fig, axes = figure(1, len(curves), figsize=(3.2 * len(curves), 3), squeeze=False)
    for ax, (formula, (t, mse, member, nngp_mse)) in zip(axes[0], curves.items()):
        learning_curve(ax, t, mse, label="ensemble mean", color="C0")
        learning_curve(ax, t, member, label="one network (mean + variance)", color="C1",
                       limits=[(nngp_mse, "NNGP posterior")])
        ax.set_xlabel(r"$t\,\lambda_{max}(\Theta)$")
        ax.set_yscale("log")
        ax.set_title(f"{formula}, depth {depth}", fontsize=9)
    axes[0][0].set_ylabel("test MSE")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    fig, axes = figure(2, len(heat), figsize=(3.2 * len(heat), 6), squeeze=False)
    for j, (formula, (K, T)) in enumerate(heat.items()):
        kernel_heatmap(axes[0][j], K, data.y_test, f"NNGP {formula}")
        kernel_heatmap(axes[1][j], T, data.y_test, f"NTK {formula}")
    fig.tight_layout()
    fig.savefig(out / "kernels.png", dpi=120)


def _markdown(data, rows, sigma_w, sigma_b, noise, parameterization, activations):
    lines = [f"# symntk: lazy NNGP / NTK predictors on {data.name}", "",
             f"{len(data.y_train)} training and {len(data.y_test)} test points, {data.x_train.shape[1]} features; "
             f"σ_w = {sigma_w}, σ_b = {sigma_b}, {parameterization} parameterisation; NNGP noise and NTK ridge {noise}.",
             "NTK: the infinite ensemble after gradient flow to t = ∞ (L13); NNGP: the posterior mean (L12). "
             "Accuracy is that of sign(prediction).", "",
             "| activation | method | depth | NNGP test MSE | NNGP acc | NTK test MSE | NTK acc | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['activation']}` | {r['method']} | {r['depth']} | {r['nngp_mse']:.4f} | {r['nngp_acc']:.3f} "
                     f"| {r['ntk_mse']:.4f} | {r['ntk_acc']:.3f} | {r['seconds']:.1f} |")
    lines += ["", "![learning curves](learning_curves.png)", "", "![kernels](kernels.png)", ""]
    return "\n".join(lines)
