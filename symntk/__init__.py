"""symntk: exact infinite-width kernels of wide neural networks, derived symbolically.

Importing symntk switches JAX to float64 (``jax_enable_x64``) because theory results are
float64 by default; set the environment variable ``SYMNTK_X64=0`` before import to keep
JAX's float32 default, and pass float32 arrays to get float32 results.  It also asks for float32
matrix products at float32 precision (``jax_default_matmul_precision = "highest"``): JAX's default
on NVIDIA GPUs from Ampere on is TF32 (a 10-bit mantissa), which breaks float32's stated
tolerances; an explicit ``JAX_DEFAULT_MATMUL_PRECISION`` in the environment is left as it is.
"""
import os

import jax

if os.environ.get("SYMNTK_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)
if "JAX_DEFAULT_MATMUL_PRECISION" not in os.environ:
    jax.config.update("jax_default_matmul_precision", "highest")

from .activation import Activation, activation  # noqa: E402
from .errors import (ActivationError, ConvergenceError, CovarianceError, DataError, DerivationError,  # noqa: E402
                     DivergentIntegralError, PrecisionWarning, SingularKernelError)
from .gaussian import DualActivation, derive  # noqa: E402
from .kernels import MLP, Kernel  # noqa: E402
from . import anbk, antk, deep_linear, interop, ndk, predict  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Activation", "activation", "derive", "DualActivation", "MLP", "Kernel", "anbk", "antk", "deep_linear", "interop",
           "ndk", "predict", "ActivationError", "ConvergenceError",
           "CovarianceError", "DataError", "DerivationError", "SingularKernelError", "DivergentIntegralError", "PrecisionWarning"]
