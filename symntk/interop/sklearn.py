"""The NNGP / NTK of an infinite-width MLP as a scikit-learn kernel (theory/lazy.md L9–L11).

``MLPKernel`` evaluates :func:`symntk.kernels.kernel_matrix` with the generated dual activation,
jitted once per (activation, depth, parameterisation, which).  Its hyperparameters ``sigma_w`` and
``sigma_b`` (shared by all layers) are optimised by scikit-learn in log space; the gradient
∂K/∂log σ = σ ∂K/∂σ is exact (forward-mode JAX through the generated code).  A zero ``sigma_b``
(no bias) is a fixed hyperparameter.
"""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel

from ._mlp import as_inputs, check_sigmas, kernel_functions, scalar_sigmas


@lru_cache(maxsize=None)
def _jitted(value, diagonal):
    """Jitted (value, value and log-σ gradients, diagonal); cached so that cloned and unpickled
    kernels share the compiled code."""
    def with_gradient(s, x):
        jac = jax.jacfwd(value)(s, x)  # (N, N, 2): ∂K/∂σ_w, ∂K/∂σ_b
        return value(s, x), jac * s  # ∂K/∂log σ

    return jax.jit(value), jax.jit(with_gradient), jax.jit(diagonal)


class MLPKernel(Kernel):
    """K(x, x') = the ``which`` kernel ("nngp" or "ntk") of a depth-``depth`` MLP of ``activation``
    (a formula or :class:`~symntk.Activation`) with weight/bias scales ``sigma_w``/``sigma_b``."""

    def __init__(self, activation="relu(x)", depth=1, sigma_w=1.0, sigma_b=0.0, parameterization="ntk",
                 which="nngp", sigma_w_bounds=(1e-2, 1e2), sigma_b_bounds=(1e-3, 1e2)):
        self.activation, self.depth, self.parameterization, self.which = activation, depth, parameterization, which
        self.sigma_w, self.sigma_b = sigma_w, sigma_b
        self.sigma_w_bounds, self.sigma_b_bounds = sigma_w_bounds, sigma_b_bounds

    @property
    def hyperparameter_sigma_w(self):
        return Hyperparameter("sigma_w", "numeric", self.sigma_w_bounds)

    @property
    def hyperparameter_sigma_b(self):
        return Hyperparameter("sigma_b", "numeric", self.sigma_b_bounds if self.sigma_b > 0 else "fixed")

    def _functions(self):
        check_sigmas(self.sigma_w, self.sigma_b)
        value, diagonal = kernel_functions(self.activation, self.depth, self.parameterization, self.which)
        return _jitted(value, diagonal)

    def __call__(self, X, Y=None, eval_gradient=False):
        """K(X, Y) (default Y = X); with ``eval_gradient`` also ∂K/∂θ over the non-fixed
        hyperparameters in ``self.hyperparameters`` order, shape (N, N, n_free)."""
        value, with_gradient, _ = self._functions()
        s = jnp.asarray([self.sigma_w, self.sigma_b], dtype=float)
        if Y is not None:
            if eval_gradient:
                raise ValueError("Gradient can only be evaluated when Y is None.")
            return np.array(value(s, *as_inputs(X, Y)))
        (x,) = as_inputs(X)
        if not eval_gradient:
            return np.array(value(s, x))
        K, grad = (np.array(a) for a in with_gradient(s, x))
        column = {"sigma_w": 0, "sigma_b": 1}
        free = [column[h.name] for h in self.hyperparameters if not h.fixed]
        return K, grad[:, :, free]

    def diag(self, X):
        """K(x, x) for the rows of X, shape (N,)."""
        _, _, diagonal = self._functions()
        return np.array(diagonal(jnp.asarray([self.sigma_w, self.sigma_b], dtype=float), *as_inputs(X)))

    def is_stationary(self):
        return False

    def __repr__(self):
        return (f"MLPKernel({str(self.activation)!r}, depth={self.depth}, sigma_w={self.sigma_w:.4g}, "
                f"sigma_b={self.sigma_b:.4g}, which={self.which!r})")


def sklearn_kernel(mlp, which="nngp", **bounds) -> MLPKernel:
    """An :class:`MLPKernel` with ``mlp``'s activation, depth, parameterisation and σ's as the
    starting hyperparameters; ``bounds``: ``sigma_w_bounds``, ``sigma_b_bounds``."""
    return MLPKernel(mlp.activation, mlp.depth, *scalar_sigmas(mlp), mlp.parameterization, which, **bounds)
