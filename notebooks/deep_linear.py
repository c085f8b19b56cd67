# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Deep linear networks learn features exactly
#
# In the Bayesian feature-learning limit (theory/adaptive.md, D1–D6) a deep linear network's
# layer kernels Φˡ align with the labels: on whitened data (Kˣ = I, |y| = 1) the overlap
# c_ℓ = yᵀΦˡy solves one scalar equation (D4), grows with the feature-learning strength γ₀ and
# exponentially across layers (c_ℓ = c_L^{ℓ/L}), with three asymptotic regimes (D5).  We show
# the overlaps against γ₀ and depth, check them against finite-width networks sampled by
# Langevin dynamics (A2 with λ = T = 1/β), and show on digits that the kernels adapt while the
# ridgeless predictor does not (D6).
#
# Run as a script (`python notebooks/deep_linear.py`, what CI does; add `--full` for wider
# networks and longer chains) or open with `jupytext --to notebook notebooks/deep_linear.py`.
# Figures go to `notebooks/figures/`.

# %%
import sys
from pathlib import Path

import numpy as np

from symntk import deep_linear as dl
from symntk.data import digits
from symntk.nets.bayesian import sample_kernels
from symntk.plot import figure, kernel_heatmap
from symntk.report_deep_linear import run as overlap_figures

FIG = Path(__file__).parent / "figures" if "__file__" in globals() else Path("figures")
FIG.mkdir(parents=True, exist_ok=True)
FULL = "--full" in sys.argv

# %% [markdown]
# ## Overlap against γ₀ for each depth, and across layers
# Dotted: lazy asymptote 1 + Lγ₀²/(1 + β⁻¹)²; dashed: rich γ₀^{2L/(L+1)}; dash-dot (L ≥ 8):
# deep Lγ₀²/W(Lγ₀²).  (`symntk deep-linear` draws the same figures.)

# %%
gammas = np.geomspace(1e-2, 1e2, 60)
c_last = overlap_figures(FIG, [1, 2, 4, 8, 16], gammas, 100.0)
for L, c in c_last.items():
    assert np.all(np.diff(c) > 0), "c_L grows with γ₀"
print("figures:", FIG / "deep_linear_overlaps.png", FIG / "deep_linear_layers.png")

# %% [markdown]
# ## Overlap against depth
# At fixed γ₀ the last-layer overlap keeps growing with depth, approaching the deep scaling
# Lγ₀²/W(Lγ₀²) (ratio → 1 as L → ∞; its corrections are O(ln ln / ln)).

# %%
depths = np.unique(np.geomspace(1, 1000, 40).astype(int))
fig, ax = figure(figsize=(6.4, 4))
for i, g in enumerate([0.3, 1.0, 3.0]):
    cL = dl.last_overlap(depths, g, np.inf)
    ax.loglog(depths, cL, color=f"C{i}", label=f"γ₀ = {g}")
    ax.loglog(depths, dl.asymptotes(depths, g, np.inf).deep, color=f"C{i}", ls="-.", lw=0.8)
    assert np.all(np.diff(cL) > 0), "c_L grows with depth"
ax.set_xlabel("depth L"), ax.set_ylabel("c_L"), ax.legend(fontsize=8)
ax.set_title("last-layer overlap against depth, β = ∞ (dash-dot: Lγ₀²/W(Lγ₀²))", fontsize=9)
fig.tight_layout()
fig.savefig(FIG / "deep_linear_depth.png", dpi=130)

# %% [markdown]
# ## Theory against finite-width networks (L = 8 and L = 16)
# Langevin chains of deep linear networks of width N on whitened data (P = 4), β = 1: the
# per-layer overlaps averaged over the trajectory and over independent chains (error bars: one
# standard error).  Finite-width corrections are O(L/N), so the deeper net needs the wider
# layers: the points approach the theory as N doubles.  The default (CI) settings are small —
# N ≤ 128, chains of 18 time units — and sit 10–30 % below the theory's feature learning c_L − 1
# (narrow layers and an alignment that takes ~L time units to equilibrate); `--full` runs
# N = 128…512 with 60 time units.  The quantitative width check (error shrinking with N, within
# Monte-Carlo error of D4) is in `tests/test_deep_linear.py`.  β = 1 keeps the sampler's stiffest
# direction (curvature ≈ β(L + 1)c_L) resolvable with Δt ≈ 0.01; the increments are Rademacher
# (±1, same covariance as Gaussian ones, ~6× faster here; see `symntk.nets.bayesian`).

# %%
P = 4
x_white = np.sqrt(P) * np.linalg.qr(np.random.default_rng(0).normal(size=(P, P)))[0]
y_white = np.array([1.0, -1.0, 1.0, -1.0]) / 2
chains, t_end, burn_in = (16, 30.0, 30.0) if FULL else (4, 8.0, 10.0)
fig, axes = figure(1, 2, figsize=(9, 3.8))
for ax, (L, g, dt, widths) in zip(axes, [(8, 0.7, 0.01, (64, 128)), (16, 0.5, 0.004, (128,))]):
    widths = (128, 256, 512) if FULL else widths
    theory = dl.whitened_overlaps(L, g, 1.0).c
    ell = np.arange(1, L + 1)
    ax.plot(ell, theory, "k-", label="theory (D4)")
    learned = []
    for j, N in enumerate(widths):
        r = sample_kernels(x_white, y_white, L, N, g, 1.0, chains=chains, dt=dt, t_end=t_end, burn_in=burn_in,
                           noise="rademacher")
        ax.errorbar(ell + 0.1 * j, r.mean_overlap, r.overlap_error, fmt="o", ms=3, color=f"C{j}", label=f"N = {N}")
        learned.append((r.mean_overlap[-1] - 1) / (theory[-1] - 1))
        print(f"L = {L}, γ₀ = {g}, N = {N}: c_L = {r.mean_overlap[-1]:.4f} ± {r.overlap_error[-1]:.4f} "
              f"(theory {theory[-1]:.4f})")
    assert learned[-1] > 0.5, "the widest net shows most of the theory's feature learning c_L − 1"
    ax.set_xlabel("layer ℓ"), ax.set_ylabel("c_ℓ = yᵀΦˡy"), ax.set_title(f"L = {L}, γ₀ = {g}, β = 1", fontsize=9)
    ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIG / "deep_linear_finite_width.png", dpi=130)

# %% [markdown]
# ## Digits: the kernels adapt, the ridgeless predictor does not (D6)
# Input kernel Kˣ = x·x'/D on 30 training digits (3 vs 8, labels ±1; with more points than
# pixel dimensions in use Kˣ would be singular), depth 3.  For any γ₀ the
# solution is Φˡ = Kˣ + rank one, and the predictor is ridge regression with the shrunk ridge
# β⁻¹/(1 + s): as β → ∞ it is the lazy (kernel-interpolation) predictor whatever γ₀, while the
# last-layer kernel aligns with the labels, A(Φ, yyᵀ) = yᵀΦy/(‖Φ‖_F |y|²).

# %%
data = digits()
n = 30
xtr, ytr, xte, yte = data.x_train[:n], data.y_train[:n], data.x_test, data.y_test
D = xtr.shape[1]
kx, k_test = xtr @ xtr.T / D, xte @ xtr.T / D
gs = np.geomspace(0.05, 20, 12)
align = lambda K, y: y @ K @ y / (np.linalg.norm(K) * (y @ y))  # noqa: E731
rows = {}
for beta in (1.0, 1e6):
    sols = [dl.solve(kx, ytr, 3, g, beta) for g in gs]
    assert max(s.residual for s in sols) < 1e-9
    rows[beta] = ([align(s.phi[-1], ytr) for s in sols], [np.mean((s.predict(k_test) - yte) ** 2) for s in sols])
    print(f"β = {beta:g}: alignment {rows[beta][0][0]:.3f} → {rows[beta][0][-1]:.3f}, "
          f"test MSE {rows[beta][1][0]:.4f} → {rows[beta][1][-1]:.4f}")
assert rows[1e6][0][0] < 0.8 < 0.95 < rows[1e6][0][-1], "the kernels adapt (alignment → 1)"
assert np.ptp(rows[1e6][1]) < 1e-3 * np.mean(rows[1e6][1]), "the near-ridgeless predictor does not"
fig, axes = figure(1, 2, figsize=(9, 3.6))
for beta, ls in zip(rows, ("--", "-")):
    axes[0].semilogx(gs, rows[beta][0], ls, color="C0", label=f"β = {beta:g}")
    axes[1].semilogx(gs, rows[beta][1], ls, color="C1", label=f"β = {beta:g}")
axes[0].set_ylabel("alignment A(Φᴸ, yyᵀ)"), axes[1].set_ylabel("test MSE")
for ax in axes:
    ax.set_xlabel("γ₀"), ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIG / "deep_linear_digits.png", dpi=130)

fig, axes = figure(1, 2, figsize=(8, 3.6))
for ax, g in zip(axes, (gs[0], gs[-1])):
    kernel_heatmap(ax, dl.solve(kx, ytr, 3, g, 1e6).phi[-1], ytr, title=f"Φ³ on digits, γ₀ = {g:.3g}")
fig.tight_layout()
fig.savefig(FIG / "deep_linear_digits_kernels.png", dpi=130)
print("done:", sorted(p.name for p in FIG.glob("deep_linear*.png")))
