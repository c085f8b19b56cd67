"""Numerical solvers, one file per theory; they call generated code, never SymPy."""
