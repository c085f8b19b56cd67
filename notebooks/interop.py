# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # NNGP and NTK kernels inside scikit-learn
#
# `sn.interop.sklearn_kernel(mlp, which)` turns the infinite-width kernel of any `sn.MLP` into a
# scikit-learn `Kernel` whose hyperparameters σ_w and σ_b are fitted by maximum marginal
# likelihood, with exact gradients from the generated JAX code.  Here: Gaussian-process regression
# on two digit classes (3 vs 8, labels ±1) with the NNGP and NTK of a depth-2 ReLU network against
# the classical RBF kernel — the fitted hyperparameters and the learning curves (test error
# against the number of training points).
#
# Run as a script (`python notebooks/interop.py`, what CI does) or open with
# `jupytext --to notebook notebooks/interop.py`.  Figures go to `notebooks/figures/`.

# %%
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

import symntk as sn
from symntk.data import digits
from symntk.plot import figure
from symntk.predict import nngp_posterior

FIG = Path(__file__).parent / "figures" if "__file__" in globals() else Path("figures")
FIG.mkdir(parents=True, exist_ok=True)
data = digits()
xtr, ytr, xte, yte = data.x_train, data.y_train, data.x_test, data.y_test
mlp = sn.MLP("relu(x)", depth=2, sigma_w=1.4, sigma_b=0.1)
KERNELS = {
    "NNGP (ReLU, depth 2)": lambda: sn.interop.sklearn_kernel(mlp, which="nngp"),
    "NTK (ReLU, depth 2)": lambda: sn.interop.sklearn_kernel(mlp, which="ntk"),
    "RBF": lambda: ConstantKernel(1.0) * RBF(length_scale=8.0),
}


def fit(name, n):
    """GP regression on the first n training points, hyperparameters by marginal likelihood.  The
    ±1 labels are noiseless, so the fitted noise level runs to its lower bound (scikit-learn's
    ConvergenceWarning about that bound is silenced)."""
    gp = GaussianProcessRegressor(kernel=KERNELS[name]() + WhiteKernel(0.1, (1e-8, 1.0)), normalize_y=True,
                                  random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gp.fit(xtr[:n], ytr[:n])


# %% [markdown]
# ## Fitted hyperparameters on all 200 training points

# %%
fitted = {name: fit(name, len(xtr)) for name in KERNELS}
for name, gp in fitted.items():
    mse = np.mean((gp.predict(xte) - yte) ** 2)
    err = np.mean(np.sign(gp.predict(xte)) != yte)
    print(f"{name:22s} {gp.kernel_}  log-evidence {gp.log_marginal_likelihood_value_:8.2f}  "
          f"test MSE {mse:.3f}  error {err:.3f}")

# %% [markdown]
# The scikit-learn posterior mean is symntk's own NNGP posterior (L12) at the fitted hyperparameters
# (with normalize_y, on the standardised labels).

# %%
gp = fitted["NNGP (ReLU, depth 2)"]
k, noise = gp.kernel_.k1, gp.kernel_.k2.noise_level
mu, sd = ytr.mean(), ytr.std()
ref = nngp_posterior(k(xtr), k(xte, xtr), k.diag(xte), (ytr - mu) / sd, noise=noise + gp.alpha).mean * sd + mu
assert np.allclose(gp.predict(xte), ref, rtol=1e-8, atol=1e-10)

# %% [markdown]
# ## Learning curves

# %%
sizes = [10, 20, 40, 80, 140, 200]
curves = {name: [np.mean((fit(name, n).predict(xte) - yte) ** 2) for n in sizes] for name in KERNELS}
fig, ax = figure(figsize=(6.4, 4))
for name, c in curves.items():
    ax.loglog(sizes, c, marker="o", label=name)
    print(f"{name:22s} test MSE: " + "  ".join(f"{v:.3f}" for v in c))
    assert c[-1] < 0.5 * c[0], "more data helps every kernel"
ax.set_xlabel("training points"), ax.set_ylabel("test MSE (digits 3 vs 8)"), ax.legend(fontsize=8)
ax.set_title("GP regression in scikit-learn, hyperparameters fitted per size", fontsize=9)
fig.tight_layout()
fig.savefig(FIG / "interop_learning_curves.png", dpi=130)
print("figure:", FIG / "interop_learning_curves.png")
