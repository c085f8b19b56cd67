"""symntk kernels in the tools people already use.

``sklearn_kernel(mlp, which)``: the NNGP or NTK of a :class:`symntk.MLP` as a scikit-learn
``Kernel`` (hyperparameters σ_w, σ_b with exact gradients; :mod:`symntk.interop.sklearn`).
scikit-learn is imported on first use, not with ``import symntk``.
"""
from __future__ import annotations

__all__ = ["MLPKernel", "sklearn_kernel"]


def __getattr__(name):
    if name in __all__:
        from . import sklearn
        return getattr(sklearn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
