"""The NNGP / NTK of an infinite-width MLP as a GPyTorch kernel (theory/lazy.md L9–L11).

The kernel is computed by JAX (:func:`symntk.kernels.kernel_matrix`, float64 whatever the
tensors' dtype, cast back to it) inside a ``torch.autograd.Function`` whose backward is JAX's
vector–Jacobian product, so σ_w, σ_b (``Positive``-constrained parameters, shared by all layers)
and the inputs get exact gradients in PyTorch.  A zero ``sigma_b`` (no bias) stays zero.
Inputs are ``(N, d)`` tensors on the CPU; batched kernels (leading batch dimensions) are not
supported.
"""
from __future__ import annotations

from functools import lru_cache

import jax
import numpy as np

try:
    import torch
    from gpytorch.constraints import Positive
    from gpytorch.kernels import Kernel
except ImportError as err:  # pragma: no cover - exercised with the packages absent
    raise ImportError("symntk.interop.gpytorch_kernel needs PyTorch and GPyTorch: "
                      "pip install 'symntk[gpytorch]'") from err

from ..errors import DataError
from ._mlp import as_inputs, check_sigmas, kernel_functions, scalar_sigmas


@lru_cache(maxsize=None)
def _jitted(f):
    """(f, its vector–Jacobian product (cotangent, *args) ↦ ∂⟨cotangent, f⟩/∂args), both jitted."""
    return jax.jit(f), jax.jit(lambda ct, *args: jax.vjp(f, *args)[1](ct))


def _to_jax(*tensors):
    """Finite float64 JAX copies of CPU tensors."""
    return as_inputs(*(t.detach().cpu().double().numpy() for t in tensors))


def _to_torch(a, like):
    return torch.from_numpy(np.array(a)).to(dtype=like.dtype, device=like.device)


class _JaxFunction(torch.autograd.Function):
    """out = f(s, *xs) evaluated by JAX in float64; backward through JAX's VJP."""

    @staticmethod
    def forward(ctx, f, s, *xs):
        ctx.f = f
        ctx.save_for_backward(s, *xs)
        value, _ = _jitted(f)
        s_, *xs_ = _to_jax(s, *xs)
        return _to_torch(value(s_[0], *xs_), xs[0])

    @staticmethod
    def backward(ctx, cotangent):
        s, *xs = ctx.saved_tensors
        _, vjp = _jitted(ctx.f)
        ct, s_, *xs_ = _to_jax(cotangent, s, *xs)
        grads = vjp(ct if cotangent.dim() > 1 else ct[0], s_[0], *xs_)
        return (None, *(_to_torch(g, t) for g, t in zip(grads, (s, *xs))))


class MLPKernel(Kernel):
    """K(x, x') = the ``which`` kernel ("nngp" or "ntk") of a depth-``depth`` MLP of ``activation``
    with trainable weight/bias scales ``sigma_w``/``sigma_b``; ``kwargs`` go to
    ``gpytorch.kernels.Kernel`` (e.g. ``active_dims``)."""

    def __init__(self, activation="relu(x)", depth=1, sigma_w=1.0, sigma_b=0.0, parameterization="ntk",
                 which="nngp", **kwargs):
        if kwargs.get("batch_shape") or kwargs.get("ard_num_dims"):
            raise DataError("MLPKernel has one sigma_w and one sigma_b: no batch_shape or ard_num_dims")
        super().__init__(**kwargs)
        check_sigmas(sigma_w, sigma_b)
        self._value, self._diagonal = kernel_functions(activation, depth, parameterization, which)
        self.register_parameter("raw_sigma_w", torch.nn.Parameter(torch.zeros((), dtype=torch.float64)))
        self.register_constraint("raw_sigma_w", Positive())
        self.sigma_w = sigma_w
        if sigma_b > 0:
            self.register_parameter("raw_sigma_b", torch.nn.Parameter(torch.zeros((), dtype=torch.float64)))
            self.register_constraint("raw_sigma_b", Positive())
            self.sigma_b = sigma_b

    @property
    def sigma_w(self):
        return self.raw_sigma_w_constraint.transform(self.raw_sigma_w)

    @sigma_w.setter
    def sigma_w(self, value):
        self.initialize(raw_sigma_w=self.raw_sigma_w_constraint.inverse_transform(torch.as_tensor(value, dtype=torch.float64)))

    @property
    def sigma_b(self):
        if not hasattr(self, "raw_sigma_b"):
            return torch.zeros((), dtype=torch.float64)
        return self.raw_sigma_b_constraint.transform(self.raw_sigma_b)

    @sigma_b.setter
    def sigma_b(self, value):
        self.initialize(raw_sigma_b=self.raw_sigma_b_constraint.inverse_transform(torch.as_tensor(value, dtype=torch.float64)))

    @property
    def is_stationary(self):
        return False

    def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
        """K(x1, x2) (N, M); with ``diag`` (x1 = x2, GPyTorch's contract) its diagonal (N,)."""
        if last_dim_is_batch or x1.dim() != 2 or x2.dim() != 2:
            raise DataError(f"MLPKernel takes (N, d) inputs without batch dimensions, got shapes "
                            f"{tuple(x1.shape)} and {tuple(x2.shape)}")
        same = x1 is x2 or (x1.shape == x2.shape and not x2.requires_grad and torch.equal(x1, x2))
        s = torch.stack([self.sigma_w, self.sigma_b])
        if diag:
            if not same:
                raise DataError("diag=True needs x1 == x2 (GPyTorch's Kernel contract)")
            return _JaxFunction.apply(self._diagonal, s, x1)
        return _JaxFunction.apply(self._value, s, x1) if same else _JaxFunction.apply(self._value, s, x1, x2)


def gpytorch_kernel(mlp, which="nngp", **kwargs) -> MLPKernel:
    """An :class:`MLPKernel` with ``mlp``'s activation, depth, parameterisation and σ's as the
    starting values of its parameters."""
    return MLPKernel(mlp.activation, mlp.depth, *scalar_sigmas(mlp), mlp.parameterization, which, **kwargs)
