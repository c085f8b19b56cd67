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

from ..activation import activation as parse
from ..errors import DataError
from ..gaussian import derive
from ..kernels import _diagonal_pass, kernel_matrix
from ..recursion.lazy import PARAMETERIZATIONS, scaled_coefficients

WHICH = ("nngp", "ntk")


@lru_cache(maxsize=None)
def _compiled(act, depth, parameterization, which):
    """Jitted (value, value and log-σ gradients, diagonal) for one network; cached so that cloned
    and unpickled kernels share the compiled code."""
    mod = derive(act).module()
    out = WHICH.index(which)

    def coef(s):
        ones = jnp.ones(depth + 1)
        return scaled_coefficients(s[0] ** 2 * ones, s[1] ** 2 * ones, parameterization)

    def value(s, x1, x2=None):
        return kernel_matrix(mod, coef(s), x1, x2)[out]

    def with_gradient(s, x):
        jac = jax.jacfwd(value)(s, x)  # (N, N, 2): ∂K/∂σ_w, ∂K/∂σ_b
        return value(s, x), jac * s  # ∂K/∂log σ

    def diagonal(s, x):
        return _diagonal_pass(mod.features, mod.diagonal, x, coef(s))[1][out]

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
        if not (isinstance(self.depth, (int, np.integer)) and self.depth >= 1):
            raise DataError(f"depth must be an integer ≥ 1, got {self.depth!r}")
        if self.parameterization not in PARAMETERIZATIONS or self.which not in WHICH:
            raise DataError(f"parameterization must be one of {PARAMETERIZATIONS} and which one of {WHICH}, "
                            f"got {self.parameterization!r}, {self.which!r}")
        if not (np.isscalar(self.sigma_w) and np.isscalar(self.sigma_b) and self.sigma_w > 0 and self.sigma_b >= 0):
            raise DataError(f"sigma_w must be a number > 0 and sigma_b a number ≥ 0 (one value for all layers), "
                            f"got {self.sigma_w!r}, {self.sigma_b!r}")
        act = parse(self.activation)
        if act.params:
            raise DataError(f"bind the activation's parameters {[p.name for p in act.params]} first")
        return _compiled(act, int(self.depth), self.parameterization, self.which)

    def _inputs(self, *xs):
        out = []
        for x in xs:
            x = np.atleast_2d(np.asarray(x, dtype=float))
            if not np.all(np.isfinite(x)):
                raise DataError("the inputs contain NaN or inf")
            out.append(jnp.asarray(x))
        return out

    def __call__(self, X, Y=None, eval_gradient=False):
        """K(X, Y) (default Y = X); with ``eval_gradient`` also ∂K/∂θ over the non-fixed
        hyperparameters in ``self.hyperparameters`` order, shape (N, N, n_free)."""
        value, with_gradient, _ = self._functions()
        s = jnp.asarray([self.sigma_w, self.sigma_b], dtype=float)
        if Y is not None:
            if eval_gradient:
                raise ValueError("Gradient can only be evaluated when Y is None.")
            return np.array(value(s, *self._inputs(X, Y)))
        (x,) = self._inputs(X)
        if not eval_gradient:
            return np.array(value(s, x))
        K, grad = (np.array(a) for a in with_gradient(s, x))
        column = {"sigma_w": 0, "sigma_b": 1}
        free = [column[h.name] for h in self.hyperparameters if not h.fixed]
        return K, grad[:, :, free]

    def diag(self, X):
        """K(x, x) for the rows of X, shape (N,)."""
        _, _, diagonal = self._functions()
        return np.array(diagonal(jnp.asarray([self.sigma_w, self.sigma_b], dtype=float), *self._inputs(X)))

    def is_stationary(self):
        return False

    def __repr__(self):
        return (f"MLPKernel({str(self.activation)!r}, depth={self.depth}, sigma_w={self.sigma_w:.4g}, "
                f"sigma_b={self.sigma_b:.4g}, which={self.which!r})")


def sklearn_kernel(mlp, which="nngp", **bounds) -> MLPKernel:
    """An :class:`MLPKernel` with ``mlp``'s activation, depth, parameterisation and σ's as the
    starting hyperparameters; ``bounds``: ``sigma_w_bounds``, ``sigma_b_bounds``."""
    if not (np.isscalar(mlp.sigma_w) and np.isscalar(mlp.sigma_b)):
        raise DataError("scikit-learn hyperparameters are one sigma_w and one sigma_b for all layers; "
                        "build the MLP with scalar sigma_w and sigma_b")
    return MLPKernel(mlp.activation, mlp.depth, float(mlp.sigma_w), float(mlp.sigma_b), mlp.parameterization,
                     which, **bounds)
