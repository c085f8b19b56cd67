"""Typed errors and warnings; every message says what went wrong and what to do."""


class SymntkError(Exception):
    """Base class of all symntk errors."""


class ActivationError(SymntkError, ValueError):
    """An activation formula could not be parsed or is not allowed."""


class DivergentIntegralError(SymntkError, ArithmeticError):
    """A Gaussian expectation E[φ(u)φ(v)] does not exist for the given covariance."""


class DerivationError(SymntkError):
    """No derivation strategy applies to this activation."""


class CovarianceError(SymntkError, ValueError):
    """Covariance inputs are not a valid (PSD) covariance or have mismatched shapes."""


class ConvergenceError(SymntkError, RuntimeError):
    """An iterative solver or a numerical expansion did not reach its tolerance."""


class PrecisionWarning(UserWarning):
    """A result may have lost precision (float32, truncated expansion)."""


class DataError(SymntkError, ValueError):
    """Input data or model settings are malformed (shapes, NaN/inf, out-of-range parameters)."""


class SingularKernelError(SymntkError, ValueError):
    """A kernel matrix is not positive definite enough to solve with; add a ridge."""
