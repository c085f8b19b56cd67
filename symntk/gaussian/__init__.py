"""Gaussian expectations of activations: the dual activation V, V̇ (theory/lazy.md L1–L5)."""
from .derive import DualActivation, derive

__all__ = ["DualActivation", "derive"]
