"""Numerical strategy: Mehler/Hermite series in ρ with a rigorous tail bound (theory/lazy.md L5).

    V(q1, c, q2) = Σ_{n<N} aₙ(q1) aₙ(q2) ρⁿ,   aₙ(q) = E[φ(√q z) hₙ(z)],  ρ = c/√(q1 q2)
    V̇(q1, c, q2) = Σ_{n<N} bₙ(q1) bₙ(q2) ρⁿ,   bₙ(q) = √((n+1)/q) aₙ₊₁(q)   (Stein: E[φ' hₙ])

with hₙ = Heₙ/√n! the orthonormal Hermite polynomials.  Since |ρ| ≤ 1, Cauchy–Schwarz
bounds the truncation error by |ρ|ᴺ √(T(q1) T(q2)), T(q) = E[φ²] − Σ_{n<N} aₙ² (and the
same for V̇ with φ').  The coefficients depend on one variance only: :func:`features`
computes them once per point (one matrix product with a fixed quadrature table), and
:func:`pair` costs N multiply-adds per kernel entry — memory O(N1·N2), never a
quadrature grid per entry.  On the diagonal (q1 = q2 = c) the exact second moments
E[φ²], E[φ'²] are used instead of the series.  The one-point integrals use a composite
Gauss–Legendre rule on z ∈ [−10, 10] (Gaussian mass outside < 2e−23) fine enough to
resolve φ(√q z) for q ≤ 1e3.
"""
from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from .._numerics import clip_cov

Z_MAX, PANELS, ORDER = 10.0, 640, 12
DEFAULT_TERMS = 96


def _nodes():
    x, w = np.polynomial.legendre.leggauss(ORDER)
    edges = np.linspace(-Z_MAX, Z_MAX, PANELS + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    wz = (half[:, None] * w[None, :]).ravel() * np.exp(-z**2 / 2) / np.sqrt(2 * np.pi)
    return z, wz


_Z, _WZ = _nodes()
_TABLES: dict = {}


def _table(n_terms):
    """Quadrature table w_k hₙ(z_k), shape (nodes, n_terms), by the stable three-term recurrence."""
    if n_terms not in _TABLES:
        h = np.empty((_Z.size, n_terms))
        h_prev, h[:, 0] = np.zeros_like(_Z), 1.0
        for n in range(n_terms - 1):
            h[:, n + 1] = (_Z * h[:, n] - np.sqrt(n) * h_prev) / np.sqrt(n + 1.0)
            h_prev = h[:, n]
        _TABLES[n_terms] = h * _WZ[:, None]
    return _TABLES[n_terms]


def _at_nodes(phi, q):
    """φ(√q z_k) at the quadrature nodes, shape q.shape + (nodes,)."""
    return phi(jnp.sqrt(q)[..., None] * jnp.asarray(_Z, q.dtype))


def _second_moment(f):
    """E[φ(√q z)²] from φ at the nodes."""
    return (f * f) @ jnp.asarray(_WZ, f.dtype)


def hermite_coefficients(phi, q, n_terms):
    """aₙ(q) for n < n_terms and E[φ(√q z)²]; shapes q.shape + (n_terms,) and q.shape."""
    q = jnp.asarray(q)
    f = _at_nodes(phi, q)
    return f @ jnp.asarray(_table(n_terms), q.dtype), _second_moment(f)


def features(phi, dphi, q, n_terms=DEFAULT_TERMS):
    """Per-point data of the series: (q, aₙ, bₙ, T_V, T_V̇, E[φ²], E[φ'²]) for an array q of variances."""
    q = jnp.asarray(q)
    a, m = hermite_coefficients(phi, q, n_terms + 1)
    d = _second_moment(_at_nodes(dphi, q))
    k = jnp.arange(1, n_terms + 1, dtype=q.dtype)
    b = a[..., 1:] * jnp.sqrt(k / q[..., None])
    a = a[..., :n_terms]
    tail = lambda mom, coef: jnp.maximum(mom - jnp.sum(coef**2, axis=-1), 0)  # noqa: E731
    return q, a, b, tail(m, a), tail(d, b), m, d


def _horner(A1, A2, rho):
    acc = jnp.zeros(jnp.broadcast_shapes(A1.shape[:-1], A2.shape[:-1], rho.shape), rho.dtype)
    for n in range(A1.shape[-1] - 1, -1, -1):
        acc = acc * rho + A1[..., n] * A2[..., n]
    return acc


def pair(f1, c, f2):
    """(V, V̇, bound_V, bound_V̇) from the features of the two points and their covariance c."""
    q1, a1, b1, t1, u1, _, _ = f1
    q2, a2, b2, t2, u2, _, _ = f2
    c = clip_cov(q1, c, q2)
    s12 = jnp.sqrt(q1 * q2)
    rho = jnp.where(s12 > 0, c / jnp.where(s12 > 0, s12, 1), 0)
    r = jnp.abs(rho) ** a1.shape[-1]
    return _horner(a1, a2, rho), _horner(b1, b2, rho), r * jnp.sqrt(t1 * t2), r * jnp.sqrt(u1 * u2)


def relative_bound(f1, c, f2):
    """The largest truncation bound of :func:`pair` relative to the kernel's scale √(E[φ²]₁E[φ²]₂)
    (and the same for V̇) over the entries with |ρ| < 1 (|ρ| = 1 is a kernel's diagonal, where the
    exact moments replace the series); inf where the features are not finite."""
    (q1, a1, _, t1, u1, m1, d1), (q2, _, _, t2, u2, m2, d2) = f1, f2
    s12 = jnp.sqrt(q1 * q2)
    rho = jnp.abs(clip_cov(q1, c, q2)) / jnp.where(s12 > 0, s12, 1)
    rel = lambda tail, mom: jnp.sqrt(tail / mom)  # noqa: E731  (per point: O(N), not per entry)
    ratio = rho ** a1.shape[-1] * jnp.maximum(rel(t1, m1) * rel(t2, m2), rel(u1, d1) * rel(u2, d2))
    ratio = jnp.where(jnp.isfinite(ratio), ratio, jnp.inf)
    return jnp.max(jnp.where(rho < 1, ratio, 0))


def diagonal(f):
    """(V, V̇) at q1 = q2 = c: the exact second moments E[φ²], E[φ'²]."""
    return f[5], f[6]
