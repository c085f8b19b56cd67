"""Embedded and user data sets: arrays ``x_train, y_train, x_test, y_test``.

The default is scikit-learn's bundled handwritten digits (no download) as a two-class
regression task, y = ±1.  Inputs are centred by the training mean and each row scaled to
‖x‖² = d, so the first-layer variance σ_w² x·x/d + σ_b² is the same for every point.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str


def normalise(x_train, x_test):
    """Centre by the training mean and scale every row to squared norm d."""
    mu = x_train.mean(axis=0)

    def scale(x):
        x = x - mu
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x * np.sqrt(x.shape[1]) / np.where(norm > 0, norm, 1)
    return scale(x_train), scale(x_test)


def digits(classes=(3, 8), n_train=200, seed=0) -> Dataset:
    """Two digit classes of scikit-learn's 8×8 digits, y = +1 for ``classes[0]``, −1 for ``classes[1]``."""
    from sklearn.datasets import load_digits

    X, labels = load_digits(return_X_y=True)
    keep = np.isin(labels, classes)
    X, y = X[keep].astype(float), np.where(labels[keep] == classes[0], 1.0, -1.0)
    order = np.random.default_rng(seed).permutation(len(y))
    if not 0 < n_train < len(y):
        raise DataError(f"n_train must be between 1 and {len(y) - 1} for digits {classes}, got {n_train}")
    tr, te = order[:n_train], order[n_train:]
    x_train, x_test = normalise(X[tr], X[te])
    return Dataset(x_train, y[tr], x_test, y[te], f"digits {classes[0]} vs {classes[1]}")


def load_npz(path) -> Dataset:
    """A user data set: an .npz file with arrays x_train (P, d), y_train (P,), x_test (Q, d), y_test (Q,)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable .npz file ({err})") from None
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks the arrays {missing}; it needs {list(KEYS)}")
    d = {k: arrays[k] for k in KEYS}
    for k, v in d.items():
        if not np.issubdtype(v.dtype, np.number):
            raise DataError(f"{path}: {k} must be numeric, got dtype {v.dtype}")
        if not np.all(np.isfinite(v)):
            raise DataError(f"{path}: {k} contains NaN or inf")
    for split in ("train", "test"):
        x, y = d[f"x_{split}"], d[f"y_{split}"]
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise DataError(f"{path}: x_{split} must be (N, d) and y_{split} (N,) with N > 0, "
                            f"got {x.shape} and {y.shape}")
    if d["x_train"].shape[1] != d["x_test"].shape[1]:
        raise DataError(f"{path}: x_train has {d['x_train'].shape[1]} features, x_test {d['x_test'].shape[1]}")
    return Dataset(*(d[k].astype(float) for k in KEYS), path.name)
