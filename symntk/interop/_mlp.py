"""The NNGP / NTK of an infinite-width MLP as a pure JAX function of (σ_w, σ_b) and the inputs —
the one piece every adapter (scikit-learn, GPyTorch) wraps (theory/lazy.md L9–L11).

σ_w and σ_b are shared by all layers; ``value(s, x1, x2=None)`` with s = (σ_w, σ_b) is
:func:`symntk.kernels.kernel_matrix` (exact symmetric Gram when x2 is None) and is
differentiable in s and in the inputs.
"""
from __future__ import annotations

from functools import lru_cache

import jax.numpy as jnp
import numpy as np

from ..activation import activation as parse
from ..errors import DataError
from ..gaussian import derive
from ..kernels import _diagonal_pass, kernel_matrix
from ..recursion.lazy import PARAMETERIZATIONS, scaled_coefficients

WHICH = ("nngp", "ntk")


def check_sigmas(sigma_w, sigma_b):
    """σ_w > 0 and σ_b ≥ 0, one number each (the adapters' hyperparameters are shared by all layers)."""
    if not (np.isscalar(sigma_w) and np.isscalar(sigma_b) and sigma_w > 0 and sigma_b >= 0):
        raise DataError(f"sigma_w must be a number > 0 and sigma_b a number ≥ 0 (one value for all layers), "
                        f"got {sigma_w!r}, {sigma_b!r}")


def scalar_sigmas(mlp):
    """(σ_w, σ_b) of an :class:`~symntk.MLP` built with one σ_w and one σ_b for all layers."""
    if not (np.isscalar(mlp.sigma_w) and np.isscalar(mlp.sigma_b)):
        raise DataError("the adapters' hyperparameters are one sigma_w and one sigma_b for all layers; "
                        "build the MLP with scalar sigma_w and sigma_b")
    return float(mlp.sigma_w), float(mlp.sigma_b)


def kernel_functions(activation, depth, parameterization, which):
    """(value(s, x1, x2=None), diagonal(s, x)) for a validated network: K(x1, x2) and K(x, x) row
    by row."""
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise DataError(f"depth must be an integer ≥ 1, got {depth!r}")
    if parameterization not in PARAMETERIZATIONS or which not in WHICH:
        raise DataError(f"parameterization must be one of {PARAMETERIZATIONS} and which one of {WHICH}, "
                        f"got {parameterization!r}, {which!r}")
    act = parse(activation)
    if act.params:
        raise DataError(f"bind the activation's parameters {[p.name for p in act.params]} first")
    return _functions(act, int(depth), parameterization, which)


@lru_cache(maxsize=None)
def _functions(act, depth, parameterization, which):
    mod = derive(act).module()
    out = WHICH.index(which)

    def coef(s):
        ones = jnp.ones(depth + 1)
        return scaled_coefficients(s[0] ** 2 * ones, s[1] ** 2 * ones, parameterization)

    def value(s, x1, x2=None):
        return kernel_matrix(mod, coef(s), x1, x2)[out]

    def diagonal(s, x):
        return _diagonal_pass(mod.features, mod.diagonal, x, coef(s))[1][out]

    return value, diagonal


def as_inputs(*xs):
    """Finite float64 2-D arrays (one row per point) as JAX arrays."""
    out = []
    for x in xs:
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if not np.all(np.isfinite(x)):
            raise DataError("the inputs contain NaN or inf")
        out.append(jnp.asarray(x))
    return out
