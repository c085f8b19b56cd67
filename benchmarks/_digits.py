"""The benchmarks' large two-class digits problem (any pair of single digits has only ~360 points)."""
import numpy as np


def all_digits(P):
    """The first P of all 1797 digits (shuffled), y = +1 for 0–4 and −1 for 5–9, normalised as
    symntk.data does."""
    from sklearn.datasets import load_digits

    from symntk.data import normalise
    X, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))[:P]
    x, _ = normalise(X[order].astype(float), X[order[:1]].astype(float))
    return x, np.where(labels[order] < 5, 1.0, -1.0)
