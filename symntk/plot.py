"""Plotting helpers for the figures users look at: kernels and learning curves (matplotlib)."""
from __future__ import annotations

import numpy as np


def figure(*args, **kwargs):
    """A matplotlib figure on the non-interactive Agg backend (safe on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def kernel_heatmap(ax, K, labels=None, title=""):
    """Show K with rows and columns sorted by ``labels`` (class blocks become visible)."""
    order = np.argsort(labels, kind="stable") if labels is not None else np.arange(len(K))
    im = ax.imshow(np.asarray(K)[np.ix_(order, order)], cmap="viridis")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def learning_curve(ax, t, values, label=None, limits=(), **kwargs):
    """``values`` against time on a log axis; ``limits`` = [(value, label), …] drawn as dashed lines."""
    t = np.asarray(t, float)
    ax.semilogx(t, values, label=label, **kwargs)
    for value, name in limits:
        ax.axhline(value, ls="--", lw=0.8, color=kwargs.get("color"), alpha=0.7, label=name)
    ax.set_xlabel("time t (learning rate × steps)")
    return ax
