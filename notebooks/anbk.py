# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # aNBK: Bayesian feature learning in deep networks
#
# `sn.anbk.BayesianMLP` solves the saddle point B4–B6 of theory/adaptive.md (derivation and solver:
# derivations/anbk.md) and `symntk.nets.bayesian.sample_kernels` samples finite-width networks from
# the posterior the theory describes (Langevin dynamics A2 with λ = T = 1/β).  Here, on digits
# (3 vs 8, tanh, depth 2, β = 5): test loss against P for the NNGPK, the aNBK and finite networks;
# kernel–label alignment against γ₀ layer by layer; and, on a small ReLU problem, the non-Gaussian
# pre-activation densities of theory and networks.
#
# Run as a script (`python notebooks/anbk.py`, what CI does with small settings: one training-set
# size; `--full` draws the curve against P, with more samples and wider networks) or open with
# `jupytext --to notebook notebooks/anbk.py`.
# Figures go to `notebooks/figures/`.  The importance sampler of the single-site densities works
# while the last layer's tilt is moderate (γ₀²·aᵀΦa of order a few): at β = 5 on digits up to
# γ₀ ≈ 0.2 for tanh; beyond that the solver reports `sampling_degenerate` (derivations/anbk.md).

# %%
import sys
import time
from pathlib import Path

import numpy as np

from symntk.anbk import BayesianMLP
from symntk.data import digits
from symntk.nets.bayesian import sample_kernels
from symntk.plot import figure

FULL = "--full" in sys.argv
FIG = Path(__file__).parent / "figures" if "__file__" in globals() else Path("figures")
FIG.mkdir(parents=True, exist_ok=True)
ACT, DEPTH, BETA, GAMMA0 = "tanh(x)", 2, 5.0, 0.2
SAMPLES = 2**14 if FULL else 2**11
data = digits(n_train=400 if FULL else 60)
mse = lambda f, y: float(np.mean((f - y) ** 2))  # noqa: E731
START = time.perf_counter()

# %% [markdown]
# ## Test loss against P
# NNGPK: B1 with the lazy kernels (γ₀ = 0); aNBK: B1 at the saddle point (γ₀ = 0.2); networks:
# the posterior-mean output of width-N networks (time average of f over the Langevin trajectory
# after burn-in, averaged over chains), scaled as the theory assumes (loss × γ₀²N, weight decay and
# temperature 1/β).  The network's curve should follow the aNBK, not the NNGPK, where they differ.

# %%
sizes = [50, 100, 200, 400] if FULL else [40]  # CI: one size (each compiles the tanh solver, ~1 min on one core)
width, chains, t_end = (1024, 8, 20.0) if FULL else (128, 4, 5.0)
x_test, y_test = (data.x_test[:200], data.y_test[:200]) if FULL else (data.x_test[:100], data.y_test[:100])
curves = {"NNGPK": [], "aNBK": [], f"network N = {width}": []}
for P in sizes:
    x, y = data.x_train[:P], data.y_train[:P]
    for name, g in (("NNGPK", 0.0), ("aNBK", GAMMA0)):
        sol = BayesianMLP(ACT, depth=DEPTH, gamma0=g, beta=BETA, samples=SAMPLES).solve(x, y, x_test=x_test)
        curves[name].append(mse(sol.prediction, y_test))
    net = sample_kernels(x, y, DEPTH, width, GAMMA0, BETA, activation=ACT, x_test=x_test, chains=chains, dt=0.005,
                         t_end=t_end, burn_in=5.0, noise="rademacher")
    curves[f"network N = {width}"].append(mse(net.mean_output.mean(0)[P:], y_test))
    print(f"P = {P}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in curves.items())
          + f" ({time.perf_counter() - START:.0f} s)")

fig, ax = figure(figsize=(5.4, 3.8))
for (name, v), style in zip(curves.items(), ("o--", "o-", "s:")):
    ax.plot(sizes, v, style, label=name)
ax.set_xscale("log"), ax.set_xlabel("training points P"), ax.set_ylabel("test MSE"), ax.legend(fontsize=7)
ax.set_title(f"digits 3 vs 8, φ = tanh, depth {DEPTH}, β = {BETA}, γ₀ = {GAMMA0}", fontsize=8)
fig.tight_layout()
fig.savefig(FIG / "anbk_test_loss.png", dpi=130)

# %% [markdown]
# ## Alignment against γ₀, layer by layer
# A(Φˡ, yyᵀ) = yᵀΦˡy/(‖Φˡ‖_F|y|²).  Feature learning raises it, the last layer first and most.

# %%
P = 100 if FULL else sizes[-1]  # a size of the loop above: with its test points, its compiled solver is reused
x, y = data.x_train[:P], data.y_train[:P]
gammas = np.array([0.0, 0.05, 0.1, 0.15, 0.2])
align = np.array([BayesianMLP(ACT, depth=DEPTH, gamma0=g, beta=BETA, samples=SAMPLES).solve(x, y, x_test=x_test)
                  .alignment() for g in gammas])
gain = align[-1] - align[0]
print("alignment gain γ₀ = 0 → 0.2, layers 1..L:", np.round(gain[1:], 3), f"({time.perf_counter() - START:.0f} s)")
assert np.all(gain[1:] > 0) and gain[-1] > gain[1], "alignment must grow with γ₀, most in the last layer"

fig, ax = figure(figsize=(5.4, 3.8))
for ell in range(1, DEPTH + 1):
    ax.plot(gammas, align[:, ell], "o-", label=f"layer {ell}")
ax.axhline(align[0, 0], color="0.5", ls="--", lw=1, label="input kernel Kˣ")
ax.set_xlabel("γ₀"), ax.set_ylabel("alignment A(Φˡ, yyᵀ)"), ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIG / "anbk_alignment.png", dpi=130)

# %% [markdown]
# ## Non-Gaussian pre-activation densities, theory and networks
# ReLU, depth 2, six random points, γ₀ = 0.5, β = 5: the single-site density of h² at the first
# point, from the importance samples of the saddle point and from the neurons of width-N networks
# (one sample per neuron at the end of each chain), with the lazy Gaussian.

# %%
rng = np.random.default_rng(3)
xs, ys = rng.normal(size=(6, 4)), np.sign(rng.normal(size=6))
sol = BayesianMLP("relu(x)", depth=2, gamma0=0.5, beta=BETA, samples=2**14).solve(xs, ys)
net = sample_kernels(xs, ys, 2, 1024 if FULL else 256, 0.5, BETA, activation="relu(x)", chains=16 if FULL else 8,
                     dt=0.01, t_end=20.0 if FULL else 5.0, burn_in=10.0, noise="rademacher")
cos = [float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(net.phi.mean(0), sol.phi)]
print("kernel cosine similarity network vs aNBK, layers 1, 2:", np.round(cos, 4), f"({time.perf_counter() - START:.0f} s)")
fig, axes = figure(1, 2, figsize=(9, 3.6))
for ell, ax in enumerate(axes, start=1):
    c, dens, gauss = sol.preactivation_density(layer=ell, point=0, bins=40)
    ax.hist(net.preactivations[:, ell - 1].ravel(), bins=c.size, range=(c[0], c[-1]), density=True, alpha=0.5,
            label="networks")
    ax.plot(c, dens, color="C1", label="aNBK theory")
    ax.plot(c, gauss, color="k", lw=1, label="lazy Gaussian")
    ax.set_xlabel(f"h{ell} at point 0"), ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIG / "anbk_densities.png", dpi=130)
