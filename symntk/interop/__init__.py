"""symntk kernels in the tools people already use.

``sklearn_kernel(mlp, which)``: a scikit-learn ``Kernel`` (hyperparameters σ_w, σ_b with exact
gradients).  Optional packages are imported on first use; a missing one raises ImportError
naming the extra to install.
"""
from __future__ import annotations


def _require(module, extra):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(f"{module} is not installed: pip install 'symntk[{extra}]'") from err


def sklearn_kernel(mlp, which="nngp", **bounds):
    """The NNGP or NTK of ``mlp`` (a :class:`symntk.MLP`) as a scikit-learn kernel (see
    :class:`symntk.interop.sklearn.MLPKernel`)."""
    _require("sklearn", "sklearn")
    from .sklearn import sklearn_kernel as make
    return make(mlp, which, **bounds)


__all__ = ["sklearn_kernel"]
