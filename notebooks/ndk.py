# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The Neural Dynamical Kernel on digits: from NTK to NNGP
#
# A wide network trained by Langevin dynamics (theory/ndk.md, N1–N2) first learns in a
# *gradient phase* driven by the NTK, on the time scale 1/λ(Θ) set by the initial weight
# variance σ₀², then drifts in a *diffusive phase* (time scale σ²/T) until it samples the
# Bayesian posterior, whose mean is the NNGP predictor.  We reproduce the paper's qualitative
# results on two digit classes (3 vs 8): the two phases on a log time axis, the σ₀²/σ² sweep,
# erf versus ReLU, depth 1–3, and early stopping inside the diffusive phase.
#
# Run as a script (`python notebooks/ndk.py`, what CI does) or open with
# `jupytext --to notebook notebooks/ndk.py`.  Figures go to `notebooks/figures/`.
# Small settings keep it under a few minutes on 2 CPU cores: 60 training and 60 test points,
# 150 time points on the solver's two-scale grid (trapezoid error ≲ 1 % of the MSE).

# %%
from pathlib import Path

import numpy as np

import symntk as sn
from symntk.data import digits
from symntk.plot import figure, learning_curve
from symntk.report_ndk import limits

FIG = Path(__file__).parent / "figures" if "__file__" in globals() else Path("figures")
FIG.mkdir(parents=True, exist_ok=True)
data = digits()
P, Q, N_TIMES = 60, 60, 150
xtr, ytr, xte, yte = data.x_train[:P], data.y_train[:P], data.x_test[:Q], data.y_test[:Q]


def curves(act, depth=2, sigma0_sq=2.0, sigma_sq=0.5, temperature=0.05):
    """Train/test MSE of the NDK mean predictor through time, and the solution."""
    net = sn.ndk.LangevinMLP(act, depth, sigma0_sq, sigma_sq, temperature)
    sol = net.predict(xtr, ytr, xte, n_times=N_TIMES, covariance=False)
    mse = lambda f, y: np.mean((f - y) ** 2, axis=1)  # noqa: E731
    return net, sol, mse(sol.mean[:, :P], ytr), mse(sol.mean[:, P:], yte)


# %% [markdown]
# ## Two phases on a log time axis (erf, depth 2)
# Dashed lines: the two limits — the NTK ensemble trained to convergence at T = 0 (N11) and the
# NNGP posterior with prior σ² and noise T (N12).  Dotted: 1/λ_max(Θ) and σ²/T.

# %%
net, sol, train, test = curves("erf(x)")
ntk, nngp = limits(net, xtr, ytr, xte)
fig, ax = figure(figsize=(6.4, 4))
learning_curve(ax, sol.times[1:], train[1:], label="train", color="C0")
learning_curve(ax, sol.times[1:], test[1:], label="test", color="C1",
               limits=[(np.mean((ntk[P:] - yte) ** 2), "NTK limit (test)"), (np.mean((nngp[P:] - yte) ** 2), "NNGP (test)")])
for tau in (sol.phases.gradient, sol.phases.diffusive):
    ax.axvline(tau, color="grey", ls=":", lw=0.7)
ax.set_ylabel("MSE"), ax.legend(fontsize=7), fig.tight_layout()
fig.savefig(FIG / "ndk_two_phases.png", dpi=120)
print("final test MSE", test[-1], "NNGP limit", np.mean((nngp[P:] - yte) ** 2))
assert abs(test[-1] - np.mean((nngp[P:] - yte) ** 2)) < 0.01 * np.mean((nngp[P:] - yte) ** 2) + 1e-3

# %% [markdown]
# ## Early stopping inside the diffusive phase
# The test error is lowest before equilibrium: stopping at that time beats both the posterior
# and (here) the converged NTK predictor.

# %%
best = int(np.argmin(test))
print(f"best test MSE {test[best]:.4f} at t = {sol.times[best]:.3g} "
      f"(gradient time {sol.phases.gradient:.3g}, diffusive time {sol.phases.diffusive:.3g}); final {test[-1]:.4f}")

# %% [markdown]
# ## σ₀²/σ² sweep at fixed T
# For erf both variances change the predictor: σ₀² sets the gradient phase (its speed and the
# kernel it learns with), σ² the equilibrium.

# %%
fig, ax = figure(figsize=(6.4, 4))
for i, ratio in enumerate((0.25, 1.0, 4.0, 16.0)):
    _, s, _, te = curves("erf(x)", sigma0_sq=0.5 * ratio)
    learning_curve(ax, s.times[1:], te[1:], label=f"σ₀²/σ² = {ratio:g}", color=f"C{i}")
ax.set_ylabel("test MSE"), ax.legend(fontsize=7), fig.tight_layout()
fig.savefig(FIG / "ndk_sigma0_sweep.png", dpi=120)

# %% [markdown]
# ## erf versus ReLU
# Without bias, ReLU is positively homogeneous: σ₀² only rescales the gradient-phase time
# (curves shift along the log axis), while for erf the shape changes too.

# %%
fig, axes = figure(1, 2, figsize=(9, 3.6), sharey=True)
for ax, act in zip(axes, ("erf(x)", "relu(x)")):
    for i, s0 in enumerate((0.5, 2.0)):
        _, s, _, te = curves(act, sigma0_sq=s0)
        learning_curve(ax, s.times[1:], te[1:], label=f"σ₀² = {s0:g}", color=f"C{i}")
    ax.set_title(act, fontsize=9), ax.legend(fontsize=7)
axes[0].set_ylabel("test MSE"), fig.tight_layout()
fig.savefig(FIG / "ndk_erf_vs_relu.png", dpi=120)

# %% [markdown]
# ## Depth 1–3

# %%
fig, ax = figure(figsize=(6.4, 4))
for depth in (1, 2, 3):
    _, s, _, te = curves("erf(x)", depth=depth)
    learning_curve(ax, s.times[1:], te[1:], label=f"depth {depth}", color=f"C{depth - 1}")
ax.set_ylabel("test MSE"), ax.legend(fontsize=7), fig.tight_layout()
fig.savefig(FIG / "ndk_depth.png", dpi=120)
print("figures in", FIG)
