"""Infinite-width NNGP and NTK kernels of a deep MLP, evaluated with generated code (theory/lazy.md L9–L11).

``MLP.kernel`` runs the recursion of :mod:`symntk.recursion.lazy` in two jitted passes:

1. the diagonal pass: Σ^ℓ(x, x) and Θ^ℓ(x, x) per point, with the dual activation's exact
   diagonal (E[φ²], E[φ'²]), and the per-point ``features`` every later layer needs;
2. the pair pass over square tiles of the (N1, N2) matrix (a ``lax.scan`` over layers), so
   memory stays O(tile²) on the device while the result is assembled on the host; for a
   symmetric kernel (``x2 is None``) only tiles on and above the diagonal are computed.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from .errors import DataError, PrecisionWarning
from .gaussian import derive, hermite
from .gaussian.derive import RELATIVE_TOLERANCE
from .recursion.lazy import LazyRecursion, layer_coefficients

TILE = 2048


@dataclass(frozen=True)
class Kernel:
    """NNGP kernel K = Σ^{L+1} and NTK Θ = Θ^{L+1}: shape (N1, N2), or (N,) for a diagonal."""

    nngp: np.ndarray
    ntk: np.ndarray


def _check_x(name, x):
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (points, features), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(jnp.result_type(float))
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]}); clean the data first")
    return x


class MLP:
    """A depth-``depth`` fully connected network of activation φ in the infinite-width limit.

    ``sigma_w``, ``sigma_b``: numbers or lists of ``depth + 1`` values (input layer first);
    ``parameterization``: ``"ntk"`` or ``"standard"`` (see :mod:`symntk.recursion.lazy`).
    ``coefficients``: the per-layer arrays (σ_w², σ_b², α_w, α_b) of that recursion.
    ``n_terms``: the Hermite truncation N of a dual activation without closed form; by default
    N = 96, and a kernel whose truncation bound exceeds 1e-10 is recomputed with N = 320 (which
    this MLP then keeps using).
    """

    def __init__(self, activation, depth, sigma_w=1.0, sigma_b=0.0, parameterization="ntk", n_terms=None):
        self.dual = derive(activation) if n_terms is None else derive(activation, n_terms=n_terms)
        self.activation = self.dual.activation
        self.depth, self.parameterization = depth, parameterization
        self.sigma_w, self.sigma_b = sigma_w, sigma_b
        self.coefficients = layer_coefficients(depth, sigma_w, sigma_b, parameterization)
        self._diag, self._tile = _passes(self.dual.module())
        self._lengthen = can_lengthen(self.dual, n_terms)

    def __repr__(self):
        return (f"MLP({str(self.activation.expr)!r}, depth={self.depth}, sigma_w={self.sigma_w}, "
                f"sigma_b={self.sigma_b}, parameterization={self.parameterization!r})")

    def recursion(self) -> LazyRecursion:
        """The symbolic recursion L9–L11 for this network (``.latex()``)."""
        return LazyRecursion(self.dual, self.depth, self.parameterization)

    def kernel(self, x1, x2=None, diagonal=False, tile=TILE, progress=None) -> Kernel:
        """NNGP and NTK between the rows of ``x1`` (N1, d) and ``x2`` (N2, d; default ``x1``).

        ``diagonal=True`` returns only K(x, x) and Θ(x, x) of ``x1``, shape (N1,).  The dtype
        follows the inputs (float64 under symntk's default x64).  ``progress``: show a bar
        over tiles (default: when there are more than 8).
        """
        x1 = _check_x("x1", x1)
        if x2 is not None:
            x2 = _check_x("x2", x2)
            if x2.shape[1] != x1.shape[1]:
                raise DataError(f"x1 has {x1.shape[1]} features but x2 has {x2.shape[1]}")
        dtype = jnp.result_type(x1.dtype, x2.dtype if x2 is not None else x1.dtype)
        coef = tuple(jnp.asarray(a, dtype) for a in self.coefficients)
        x1 = jnp.asarray(x1, dtype)
        x2 = None if x2 is None else jnp.asarray(x2, dtype)
        if diagonal:
            return Kernel(*(np.asarray(v) for v in self._diag(x1, coef)[1]))
        k, bound = _pair_kernel(self._diag, self._tile, coef, x1, x2, dtype, tile, progress)
        if lengthened(self, bound):
            self._diag, self._tile = _passes(self.dual.module())
            k, bound = _pair_kernel(self._diag, self._tile, coef, x1, x2, dtype, tile, progress)
        warn_truncation(self.dual, bound, "MLP")
        return k


def _pair_kernel(diag, tile_fn, coef, x1, x2, dtype, tile, progress):
    """(Kernel, largest series bound) from the diagonal and pair passes of one generated module."""
    f1, d1 = diag(x1, coef)
    if x2 is None:
        return _assemble(tile_fn, coef, (x1, f1), (x1, f1), d1, dtype, tile, progress)
    return _assemble(tile_fn, coef, (x1, f1), (x2, diag(x2, coef)[0]), None, dtype, tile, progress)


def can_lengthen(dual, n_terms):
    """Whether a kernel of ``dual`` may switch to the longest Hermite series (N = hermite.MAX_TERMS)
    when its truncation bound needs it: the user left ``n_terms`` to symntk and the series is shorter."""
    return n_terms is None and dual.method == "hermite" and dual.n_terms < hermite.MAX_TERMS


def lengthened(owner, bound):
    """Switch ``owner`` (an MLP or LangevinMLP: ``activation``, ``dual``, ``_lengthen``), once, to the
    longest series the quadrature rule allows when ``bound`` exceeds 1e-10; True when the caller must
    rebuild its passes from ``owner.dual`` and recompute."""
    if not (bound > RELATIVE_TOLERANCE and owner._lengthen):
        return False
    owner.dual, owner._lengthen = derive(owner.activation, n_terms=hermite.MAX_TERMS), False
    return True


def warn_truncation(dual, bound, owner):
    """A PrecisionWarning when ``bound``, the largest truncation bound of ``dual``'s Hermite series
    relative to the kernel's scale (:func:`hermite.relative_bound`), exceeds 1e-10."""
    if bound > RELATIVE_TOLERANCE:
        more = (f", or use more terms ({owner}(..., n_terms=…), up to {hermite.MAX_TERMS})"
                if dual.n_terms < hermite.MAX_TERMS else f" (N = {dual.n_terms} is the longest series available)")
        warnings.warn(f"{dual.activation.expr}: the Hermite series of its dual activation is truncated with an "
                      f"error bound of {bound:.2g} relative to the kernel's scale at the variances and "
                      f"correlations reached; rescale the inputs (or the weight variance) towards variance ~1"
                      + more, PrecisionWarning, stacklevel=3)


def series_bound(mod):
    """``hermite.relative_bound`` for a generated Hermite-series module, None for a closed form."""
    return hermite.relative_bound if hasattr(mod, "dual_with_bound") else None


@lru_cache(maxsize=None)
def _passes(mod):
    """The jitted diagonal and pair passes of one generated module, shared by every MLP using it
    (jit then compiles once per input shape, not once per instance).  The pair pass also returns
    the Hermite series' truncation bound (0 for the other strategies)."""
    bound = series_bound(mod)
    return (jax.jit(partial(_diagonal_pass, mod.features, mod.diagonal)),
            jax.jit(lambda x1, x2, f1, f2, coef: _tile_pass(mod.pair, _dot(x1, x2), f1, f2, coef, bound)))


def _layer(p, V, Vdot, theta):
    """One step of L9–L11: (Σ^{ℓ+1}, Θ^{ℓ+1}) from V, V̇ of Σ^ℓ and Θ^ℓ; p = (σ_w², σ_b², α_w, α_b) of layer ℓ."""
    return p[0] * V + p[1], p[2] * V + p[3] + p[0] * Vdot * theta


def _dot(x1, x2):
    """The input-layer kernel x·x'/d, shape (N1, N2)."""
    return x1 @ x2.T / x1.shape[1]


def _diagonal_pass(features, diagonal, x, coef):
    """Σ^ℓ(x,x), Θ^ℓ(x,x) for ℓ = 1..L+1; returns (features of Σ^1..Σ^L stacked, (K, Θ) diagonals)."""
    sw2, sb2, aw, ab = coef
    sq = jnp.sum(x * x, axis=1) / x.shape[1]  # the diagonal of _dot(x, x)
    q, theta = sw2[0] * sq + sb2[0], aw[0] * sq + ab[0]

    def layer(carry, p):
        q, theta = carry
        f = features(q)
        return _layer(p, *diagonal(f), theta), f

    (q, theta), feats = jax.lax.scan(layer, (q, theta), tuple(a[1:] for a in coef))
    return feats, (q, theta)


def _tile_pass(pair, dot, f1, f2, coef, bound=None):
    """Σ^{L+1}, Θ^{L+1} between two sets of points, given their input kernel ``dot`` = x·x'/d and
    both sets' per-layer features: a ``lax.scan`` over layers (compile time independent of depth;
    unrolling was measured 2.4× slower for Hermite activations, benchmarks/RESULTS.md).  With
    ``bound(f1, c, f2)`` (a series' relative truncation bound) also its largest value over layers."""
    sw2, sb2, aw, ab = coef

    def layer(carry, xs):
        p, g1, g2 = xs
        g1, g2 = jax.tree.map(lambda a: a[:, None], g1), jax.tree.map(lambda a: a[None, :], g2)
        V, Vdot = pair(g1, carry[0], g2)
        return _layer(p, V, Vdot, carry[1]), None if bound is None else bound(g1, carry[0], g2)

    carry = (sw2[0] * dot + sb2[0], aw[0] * dot + ab[0])
    out, worst = jax.lax.scan(layer, carry, (tuple(a[1:] for a in coef), f1, f2))
    return out if bound is None else (*out, jnp.max(worst))


def kernel_matrix(module, coef, x1, x2=None):
    """(K, Θ) between the rows of x1 and x2 (default: x1, then with the exact diagonal) in one
    traceable pass — jit-able and differentiable in ``coef`` (e.g. for hyperparameter gradients),
    O(N1 N2) memory (no tiles).  ``module``: a generated dual-activation module."""
    f1, d1 = _diagonal_pass(module.features, module.diagonal, x1, coef)
    if x2 is None:
        K, T = (0.5 * (a + a.T) for a in _tile_pass(module.pair, _dot(x1, x1), f1, f1, coef))
        i = jnp.arange(x1.shape[0])
        return K.at[i, i].set(d1[0]), T.at[i, i].set(d1[1])
    f2, _ = _diagonal_pass(module.features, module.diagonal, x2, coef)
    return _tile_pass(module.pair, _dot(x1, x2), f1, f2, coef)


def _rows(tree, start, size, axis):
    """Entries start:start+size along ``axis`` of every leaf, padded to ``size`` by repeating the last."""
    def take(a):
        a = jax.lax.slice_in_dim(a, start, min(start + size, a.shape[axis]), axis=axis)
        short = size - a.shape[axis]
        if short:
            widths = [(0, 0)] * a.ndim
            widths[axis] = (0, short)
            a = jnp.pad(a, widths, mode="edge")
        return a
    return jax.tree.map(take, tree)


def _assemble(tile_fn, coef, side1, side2, diagonal, dtype, tile, progress):
    """The (N1, N2) kernel tile by tile, and the largest series bound the tiles reported (0 without
    one); ``diagonal`` = (K, Θ) of x1 with itself marks a symmetric kernel."""
    (x1, f1), (x2, f2) = side1, side2
    symmetric = diagonal is not None
    n1, n2 = x1.shape[0], x2.shape[0]
    b1, b2 = min(tile, n1), min(tile, n2)
    K, T = np.empty((n1, n2), dtype), np.empty((n1, n2), dtype)
    jobs = [(i, j) for i in range(0, n1, b1) for j in range(0, n2, b2) if not (symmetric and j < i)]
    if progress is None:
        progress = len(jobs) > 8
    if progress:
        from tqdm.auto import tqdm
        jobs = tqdm(jobs, desc="kernel tiles", unit="tile")
    worst = 0.0
    for i, j in jobs:
        c, theta, *bound = tile_fn(_rows(x1, i, b1, 0), _rows(x2, j, b2, 0), _rows(f1, i, b1, 1),
                                   _rows(f2, j, b2, 1), coef)
        c, theta, worst = np.asarray(c), np.asarray(theta), max([worst, *map(float, bound)])
        if symmetric and i == j:
            c, theta = (c + c.T) / 2, (theta + theta.T) / 2
        r, s = min(b1, n1 - i), min(b2, n2 - j)
        K[i:i + r, j:j + s], T[i:i + r, j:j + s] = c[:r, :s], theta[:r, :s]
        if symmetric and i != j:
            K[j:j + s, i:i + r], T[j:j + s, i:i + r] = c[:r, :s].T, theta[:r, :s].T
    if symmetric:
        idx = np.arange(n1)
        K[idx, idx], T[idx, idx] = np.asarray(diagonal[0]), np.asarray(diagonal[1])
    return Kernel(K, T), worst
