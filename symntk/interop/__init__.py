"""symntk kernels in the tools people already use.

``sklearn_kernel(mlp, which)``: the NNGP or NTK of a :class:`symntk.MLP` as a scikit-learn
``Kernel`` (hyperparameters σ_w, σ_b with exact gradients; :mod:`symntk.interop.sklearn`).
"""
from .sklearn import MLPKernel, sklearn_kernel

__all__ = ["MLPKernel", "sklearn_kernel"]
