"""Finite-width reference networks and their training: the empirical side of every check."""
from .mlp import FiniteMLP, train_gradient_descent

__all__ = ["FiniteMLP", "train_gradient_descent"]
