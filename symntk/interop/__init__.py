"""symntk kernels in the tools people already use; each adapter imports its library on first use,
not with ``import symntk``.

* ``sklearn_kernel(mlp, which)``: the NNGP or NTK of a :class:`symntk.MLP` as a scikit-learn
  ``Kernel`` (hyperparameters σ_w, σ_b with exact gradients; :mod:`symntk.interop.sklearn`).
* ``gpytorch_kernel(mlp, which)``: the same as a GPyTorch kernel with trainable σ_w, σ_b
  (extra ``[gpytorch]``; :mod:`symntk.interop.gpytorch`).
* ``neural_tangents_layer(activation)``: the derived dual activation as a neural-tangents
  ``stax.Elementwise`` layer (its own environment; :mod:`symntk.interop.neural_tangents`).
"""
from __future__ import annotations

_WHERE = {"MLPKernel": "sklearn", "sklearn_kernel": "sklearn", "gpytorch_kernel": "gpytorch",
          "neural_tangents_layer": "neural_tangents"}
__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        from importlib import import_module
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
