# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # aNTK: gradient flow with weight decay in the feature-learning limit
#
# `sn.antk.WeightDecayMLP` runs the mean-field particle dynamics of a two-layer network trained by
# gradient flow with weight decay (theory/adaptive.md T5) to its fixed point (T4), and
# `symntk.nets.weight_decay.train` trains actual finite-width networks the same way.  Here: the
# single-point phase transition T6 (theory, particles and networks), the pre-activation density
# at initialisation and at the fixed point, ReLU units sliding on the kink on several points,
# λ > 0 against λ = 0 (a kernel predictor or not), the depth-2 DMFT against the deep-linear closed
# form and networks, and — with `--full` — digits test loss against P for the NTK, the aNTK and
# finite networks.
#
# Run as a script (`python notebooks/antk.py`, what CI does; `--full` adds the digits sweep,
# several minutes) or open with `jupytext --to notebook notebooks/antk.py`.  Figures go to
# `notebooks/figures/`.  Apart from the ReLU section, the multi-point sections use the smooth
# x·erf(x), whose networks train fast with adaptive steps.

# %%
import sys
from pathlib import Path

import numpy as np

import symntk as sn
from symntk.antk import WeightDecayMLP
from symntk.data import digits
from symntk.nets.weight_decay import train
from symntk.plot import figure

FULL = "--full" in sys.argv
FIG = Path(__file__).parent / "figures" if "__file__" in globals() else Path("figures")
FIG.mkdir(parents=True, exist_ok=True)
ONE_X, ONE_Y = np.array([[1.0]]), np.array([1.0])

# %% [markdown]
# ## The phase transition T6
# One whitened point, label y = 1, ReLU, λ = 0.3.  Above γ₀y = λ the fixed point has
# f = y − λ/γ₀ and ⟨φ(h)²⟩ = γ₀y − λ; below, everything collapses (f = 0).  Particles (2000) and
# width-512 networks (4 seeds) against the formulas.  Close to the threshold the dynamics slows
# down critically, so the checks skip 0.7 < γ₀/λ < 1.5.  Below threshold a network's *raw* output
# collapses to 0, so its centred output is −f(x, 0) = O(1/(γ₀√N)) per seed (the particles start
# in antithetic pairs, f(x, 0) = 0): the networks are checked above threshold.

# %%
lam = 0.3
ratios = np.array([0.5, 0.8, 1.25, 2.0, 3.0, 5.0])
theory_f = np.where(ratios > 1, 1 - 1 / ratios, 0.0)
particles_f, particles_phi2, network_f = [], [], []
for r in ratios:
    sol = WeightDecayMLP("relu(x)", gamma0=r * lam, lam=lam, particles=2000).solve(ONE_X, ONE_Y, throw=False)
    particles_f.append(sol.output[0])
    particles_phi2.append(np.mean(np.maximum(sol.h[:, 0], 0) ** 2))
    run = train("relu(x)", ONE_X, ONE_Y, width=512, gamma0=r * lam, lam=lam, times=[200.0], seeds=4, dt=0.05)
    network_f.append(run.outputs[:, -1, 0].mean())
particles_f, particles_phi2, network_f = map(np.array, (particles_f, particles_phi2, network_f))
away = (ratios < 0.7) | (ratios > 1.5)
assert np.max(np.abs(particles_f - theory_f)[away]) < 1e-3
assert np.max(np.abs(network_f - theory_f)[ratios > 1.5]) < 1e-6
assert np.max(np.abs(particles_phi2 - np.maximum(ratios * lam - lam, 0))[away]) < 1e-3

fig, axes = figure(1, 2, figsize=(9, 3.6))
grid = np.linspace(0.3, 5.2, 300)
axes[0].plot(grid, np.where(grid > 1, 1 - 1 / grid, 0), "k-", lw=1, label="T6: y − λ/γ₀")
axes[0].plot(ratios, particles_f, "o", label="particles (2000)")
axes[0].plot(ratios, network_f, "x", label="networks (N = 512)")
axes[0].set_xlabel("γ₀ / λ"), axes[0].set_ylabel("f at the fixed point"), axes[0].legend(fontsize=7)
axes[1].plot(grid, np.maximum(grid * lam - lam, 0), "k-", lw=1, label="T6: γ₀y − λ")
axes[1].plot(ratios, particles_phi2, "o", label="particles")
axes[1].set_xlabel("γ₀ / λ"), axes[1].set_ylabel("⟨φ(h)²⟩"), axes[1].legend(fontsize=7)
fig.suptitle("two-layer ReLU, one point, λ = 0.3: the aNTK phase transition", fontsize=9)
fig.tight_layout()
fig.savefig(FIG / "antk_transition.png", dpi=130)

# %% [markdown]
# ## Pre-activation density: initialisation and fixed point
# Above threshold (γ₀ = 1, λ = 0.3) feature learning removes the left half of the density: no
# particle is left at h < 0, and ⟨φ²⟩ = 0.7.

# %%
sol = WeightDecayMLP("relu(x)", gamma0=1.0, lam=0.3, particles=4000).solve(ONE_X, ONE_Y)
h = sol.preactivation_density(point=0)
assert h.min() > -1e-5 and abs(np.mean(np.maximum(h, 0) ** 2) - 0.7) < 1e-4
fig, ax = figure(figsize=(6, 3.6))
z = np.linspace(-4, 4, 400)
ax.plot(z, np.exp(-z ** 2 / 2) / np.sqrt(2 * np.pi), "k-", lw=1, label="initialisation N(0, 1)")
active = h[h > 1e-6]
edges = np.linspace(0, active.max(), 61)  # density over all particles: the mass at h = 0 is left out of the bars
ax.hist(active, bins=edges, weights=np.full(len(active), 1 / (len(h) * (edges[1] - edges[0]))), alpha=0.6,
        label=f"fixed point, h > 0 ({len(active) / len(h):.0%} of particles; the rest at h = 0)")
ax.set_xlabel("h"), ax.set_ylabel("density"), ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIG / "antk_density.png", dpi=130)

# %% [markdown]
# ## ReLU on several points: particles on the kink
# Six points on a circle in D = 2 (more points than dimensions), γ₀ = 1, λ = 0.1.  At the fixed
# point the units that carry the output sit exactly on the kink of some training points
# (h_μ = 0), where φ'(0) takes the value in [0, 1] that holds them there (a Filippov slope); the
# others have decayed to h = z = 0.  The solver steps them with
# a semi-implicit scheme whose fixed point is T4 with those slopes (`symntk/solve/semi_implicit.py`), so
# both T3 forms agree with the output; the tests check the output against the convex program the
# fixed point solves (derivations/antk.md).

# %%
angles = np.array([0.1, 0.9, 1.8, 2.9, 4.0, 5.1, 3.4])
x6 = np.sqrt(2) * np.stack([np.cos(angles), np.sin(angles)], 1)
y6 = np.array([1.0, -0.6, 0.9, -0.8, 0.7, -0.5])
sol6 = WeightDecayMLP("relu(x)", gamma0=1.0, lam=0.1, particles=2000).solve(x6[:6], y6, x_test=x6[6:], tol=1e-6)
alive = np.abs(sol6.z) > 1e-3 * np.abs(sol6.z).max()  # the units that carry the output
on_kink = np.mean(np.any((np.abs(sol6.h[alive, :6]) < 1e-8) & (sol6.slopes[alive] > 1e-6), axis=1))
print(f"{sol6.result} at t = {sol6.t_final:.0f}: output {np.round(sol6.output, 4)}; kernel form − output "
      f"{np.max(np.abs(sol6.kernel_form - sol6.output)):.1e}, NTK form − output "
      f"{np.max(np.abs(sol6.ntk_form - sol6.output)):.1e}; {alive.mean():.0%} of the units carry the output, "
      f"and {on_kink:.0%} of those sit on the kink of a training point")
assert sol6.result == "successful" and sol6.form_disagreement < 1e-5
fig, axes = figure(1, 2, figsize=(9, 3.4))
for k in range(7):
    axes[0].semilogx(sol6.times[1:], sol6.outputs[1:, k], color=f"C{k}", lw=1)
    axes[0].axhline(sol6.kernel_form[k], color=f"C{k}", ls=":", lw=1)
axes[0].set_xlabel("t"), axes[0].set_ylabel("f(t)")
axes[0].set_title("ReLU, 6 train points + 1 test: output (lines), T3 kernel form (dotted)", fontsize=8)
h0, h6 = sol6.state_at(0.0)[0][:, 0], sol6.preactivation_density(point=0)
moved = h6[np.abs(h6) > 1e-9]
bins = np.linspace(min(h0.min(), h6.min()), max(h0.max(), h6.max()), 61)
axes[1].hist(h0, bins=bins, weights=np.full(len(h0), 1 / len(h0)), alpha=0.5, label="initialisation")
axes[1].hist(moved, bins=bins, weights=np.full(len(moved), 1 / len(h6)), alpha=0.6,
             label=f"fixed point, h ≠ 0 ({len(moved) / len(h6):.0%} of particles; the rest at h = 0)")
axes[1].set_xlabel("h at the first training point"), axes[1].set_ylabel("fraction of particles per bin")
axes[1].legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIG / "antk_relu_kink.png", dpi=130)

# %% [markdown]
# ## λ > 0 against λ = 0: the initialisation is forgotten, or not
# Weight decay makes the *raw* output f(·; θ) of a trained network (`centred=False`) a kernel
# predictor with its own final kernel, f = Φ¹(x, X)[Φ¹ + λI]⁻¹y (T3), at any width — the readout's
# stationarity λw = γ₀φ(X)ᵀΔ forces it — and the weights forget θ₀ (e^{−λt}).  Without weight decay
# the part of W(0) the data never touch stays, and the prediction off the data keeps it.
#
# Linear φ shows it exactly: with λ > 0 a two-layer network's stationary point minimises a convex
# function of the predictor (derivations/antk.md), so every seed reaches the same predictor — the
# closed form — even at width 64.  With λ = 0 every seed interpolates the training labels, but
# at the test point (D = 5 > P = 3) the seeds disagree by O(1/(γ₀√N)).  (The centred output
# f(·; θ) − f(·; θ₀) would carry each seed's initial output into the fixed point in both cases.)

# %%
rng = np.random.default_rng(0)
x = rng.normal(size=(4, 5))
x *= np.sqrt(5) / np.linalg.norm(x, axis=1, keepdims=True)
y = np.array([1.0, -0.5, 0.8])
kx = x @ x.T / 5
seed_times = np.geomspace(0.1, 100.0, 40)
closed = sn.antk.linear_fixed_point(kx[3:, :3], kx[:3, :3], y, gamma0=1.5, lam=0.3, depth=1)[0]
fig, axes = figure(1, 2, figsize=(9, 3.4))
for ax, lam_ in zip(axes, (0.3, 0.0)):
    run = train("x", x[:3], y, x_test=x[3:], width=64, gamma0=1.5, lam=lam_, times=seed_times, seeds=6,
                centred=False)
    ax.semilogx(run.times[1:], run.outputs[:, 1:, 3].T, lw=1)
    if lam_ > 0:
        ax.axhline(closed, color="k", ls="--", lw=1, label="closed form (any width)")
        ax.legend(fontsize=8)
        assert np.abs(run.outputs[:, -1, 3] - closed).max() < 1e-5
    ax.set_xlabel("t"), ax.set_ylabel("raw output at the test point")
    ax.set_title(f"linear, width 64, 6 seeds, λ = {lam_}", fontsize=9)
    print(f"λ = {lam_}: the test output per seed at t = 100: {np.round(run.outputs[:, -1, 3], 5)}")
fig.tight_layout()
fig.savefig(FIG / "antk_seeds.png", dpi=130)

# %% [markdown]
# The same for x·erf(x) (γ₀ = 1, λ = 0.1 against 0, t = 300, 4 seeds): with weight decay each
# network equals the T3 kernel form of its own final kernel to integration accuracy, and the seeds'
# spread at the test point falls fast with width; without, the network is not its kernel form and
# the seeds stay O(1/√N) apart.

# %%
for width in (256, 1024):
    for lam_ in (0.1, 0.0):
        run = train("x*erf(x)", x[:3], y, x_test=x[3:], width=width, gamma0=1.0, lam=lam_, times=[300.0],
                    seeds=4, centred=False)
        kernel_form = np.array([P[3, :3] @ np.linalg.solve(P[:3, :3] + lam_ * np.eye(3), y) for P in run.phi])
        gap, spread = np.abs(run.outputs[:, -1, 3] - kernel_form).max(), np.ptp(run.outputs[:, -1, 3])
        print(f"width {width:4d}, λ = {lam_}: |network − own T3 kernel form| ≤ {gap:.1e}, "
              f"seed spread at the test point {spread:.1e}")
        if lam_ > 0:
            assert gap < 1e-4

# %% [markdown]
# ## Digits (3 vs 8): test loss against P (with `--full`)
# NTK regression (the two-layer NTK at initialisation), the aNTK fixed point (x·erf(x), γ₀ = 1,
# λ = 0.2, 1000 particles, T4 residual 1e-3) and width-1024 networks trained for as long.

# %%
if FULL:
    sizes, losses = [10, 20, 40], {"NTK": [], "aNTK": [], "network": []}
    for P in sizes:
        d = digits(n_train=P)
        xte, yte = d.x_test[:100], d.y_test[:100]
        sol = WeightDecayMLP("x*erf(x)", gamma0=1.0, lam=0.2, particles=1000).solve(d.x_train, d.y_train, x_test=xte,
                                                                                    tol=1e-3, rtol=1e-6)
        xall = np.concatenate([d.x_train, xte])
        theta = sn.MLP("x*erf(x)", depth=1, sigma_w=1.0, sigma_b=0.0).kernel(xall).ntk
        ntk = sn.predict.ntk_gradient_flow(theta[:P, :P], theta[P:, :P], d.y_train, t=[np.inf], ridge=1e-10).mean[0]
        run = train("x*erf(x)", d.x_train, d.y_train, x_test=xte, width=1024, gamma0=1.0, lam=0.2,
                    times=[sol.times[-1]], seeds=2)
        losses["NTK"].append(np.mean((ntk - yte) ** 2))
        losses["aNTK"].append(np.mean((sol.kernel_form[P:] - yte) ** 2))
        losses["network"].append(np.mean((run.mean_output[-1, P:] - yte) ** 2))
    fig, ax = figure(figsize=(6, 3.6))
    for name, v in losses.items():
        ax.loglog(sizes, v, "o-", label=name)
    ax.set_xlabel("P"), ax.set_ylabel("test MSE"), ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIG / "antk_digits.png", dpi=130)
    print({k: np.round(v, 4).tolist() for k, v in losses.items()})

# %% [markdown]
# ## Depth 2: the DMFT against the deep-linear closed form and finite networks
# `WeightDecayMLP(depth=2)` solves the DMFT of T5 (`symntk/dmft.py`). For a linear φ its fixed
# point is known in closed form (`antk.linear_fixed_point`: ridge regression with an adapted ridge,
# derivations/antk.md). The DMFT's output through time reaches it, and so do width-512 networks
# trained by the same flow.

# %%
x4 = np.random.default_rng(0).normal(size=(4, 5))
x4 *= np.sqrt(5) / np.linalg.norm(x4, axis=1, keepdims=True)
y3 = np.array([1.0, -0.5, 0.8])
deep = WeightDecayMLP("x", depth=2, gamma0=1.5, lam=0.3, particles=400)
sol2 = deep.solve(x4[:3], y3, x_test=x4[3:], t_max=10.0, n_times=50, tol=1e-7, response_samples=1)
kx4 = x4 @ x4[:3].T / 5
closed = sn.antk.linear_fixed_point(kx4, kx4[:3], y3, 1.5, 0.3, 2)
net_times = sol2.times[[15, 25, 35, 49]]
nets = train("x", x4[:3], y3, x_test=x4[3:], width=512, gamma0=1.5, lam=0.3, times=net_times, seeds=2, depth=2,
             dt=0.05)
fig, ax = figure(figsize=(6.4, 4))
for k in range(4):
    ax.plot(sol2.times[1:], sol2.outputs[1:, k], color=f"C{k}", label=f"DMFT, point {k}" + (" (test)" if k == 3 else ""))
    ax.axhline(closed[k], color=f"C{k}", ls=":", lw=1)
    ax.plot(net_times, nets.mean_output[1:, k], "o", color=f"C{k}", ms=4)
ax.set_xscale("log"), ax.set_xlabel("t"), ax.set_ylabel("f(t)")
ax.set_title("depth-2 linear, γ₀ = 1.5, λ = 0.3: DMFT (lines), closed form (dotted), width 512 (dots)", fontsize=7)
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIG / "antk_deep_linear.png", dpi=130)
print("DMFT at t = 10:", np.round(sol2.output, 4), " closed form:", np.round(closed, 4),
      " networks:", np.round(nets.mean_output[-1], 4))
