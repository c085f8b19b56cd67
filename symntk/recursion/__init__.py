"""Layer recursions built from the dual activation (symbolic, printable as LaTeX)."""
from .lazy import LazyRecursion, layer_coefficients

__all__ = ["LazyRecursion", "layer_coefficients"]
