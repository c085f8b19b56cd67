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
16-point Gauss–Legendre rule on z ∈ [−10, 10] (Gaussian mass outside < 2e−23), 544 nodes:
panels of width 1 for |z| ≥ 1, which resolve hₙ(z) for n ≤ 320, and panels halving towards
z = 0 down to 1/128, which resolve φ(√q z) for q ≤ 1e3 (φ changes on the scale |z| ~ 1/√q
there, and the catalog's kinks sit at z = 0, a panel edge).  Against a 5120-panel reference
the coefficients agree to 2e−15 of √E[φ²] for every catalog activation, q ∈ [1e−4, 1e3].
An activation with kinks away from 0 (``relu(x + 1)``, hard tanh) passes their locations xₖ:
each point's rule then gets the extra panel edges xₖ/√q, and its coefficients come from the
three-term recurrence at those per-point nodes instead of the shared table.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from .._numerics import clip_cov, safe_sqrt

Z_MAX, ORDER, FINEST = 10.0, 16, 1 / 128
DEFAULT_TERMS, MAX_TERMS = 96, 320  # the rule resolves hₙ to ~1e-15 up to n ≈ 320 (1e-14 at 384)
BLOCK = 96  # terms of the series per fused loop (see _horner)


def _edges():
    """Panel edges: 0, 1/128, 1/64, …, 1/2, 1, 2, …, 10 and their mirror images."""
    pos = np.concatenate([[0.0], FINEST * 2.0 ** np.arange(7), np.arange(1.0, Z_MAX + 1)])
    return np.concatenate([-pos[:0:-1], pos])


def _nodes():
    x, w = np.polynomial.legendre.leggauss(ORDER)
    edges = _edges()
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    wz = (half[:, None] * w[None, :]).ravel() * np.exp(-z**2 / 2) / np.sqrt(2 * np.pi)
    return z, wz


_Z, _WZ = _nodes()
_TABLES: dict = {}


def _basis(n_terms):
    """hₙ(z_k) at the shared nodes, shape (nodes, n_terms), by the stable three-term recurrence."""
    if n_terms not in _TABLES:
        h = np.empty((_Z.size, n_terms))
        h_prev, h[:, 0] = np.zeros_like(_Z), 1.0
        for n in range(n_terms - 1):
            h[:, n + 1] = (_Z * h[:, n] - np.sqrt(n) * h_prev) / np.sqrt(n + 1.0)
            h_prev = h[:, n]
        _TABLES[n_terms] = h
    return _TABLES[n_terms]


def _table(n_terms):
    """Quadrature table w_k hₙ(z_k), shape (nodes, n_terms)."""
    return _basis(n_terms) * _WZ[:, None]


def _rule(q, kinks):
    """Nodes z and weights w·γ(z): the shared table, or per point (shape q.shape + (nodes,)) with the
    kinks' images xₖ/√q, clipped to [−Z_MAX, Z_MAX], as extra panel edges."""
    if not kinks:
        return jnp.asarray(_Z, q.dtype), jnp.asarray(_WZ, q.dtype)
    zk = jnp.clip(jnp.asarray(kinks, q.dtype) / jnp.sqrt(q)[..., None], -Z_MAX, Z_MAX)
    fixed = jnp.broadcast_to(jnp.asarray(_edges(), q.dtype), q.shape + (_edges().size,))
    return gauss_panels(jnp.sort(jnp.concatenate([fixed, zk], -1), -1), ORDER)


def gauss_panels(edges, order):
    """Composite Gauss–Legendre nodes z and weights w·γ(z) (γ the standard normal density) on the
    panels between sorted ``edges`` (..., n_edges), ``order`` nodes each → shapes (..., panels·order)."""
    x, w = (jnp.asarray(v, edges.dtype) for v in np.polynomial.legendre.leggauss(order))
    mid, half = (edges[..., 1:] + edges[..., :-1]) / 2, (edges[..., 1:] - edges[..., :-1]) / 2
    z = (mid[..., None] + half[..., None] * x).reshape(edges.shape[:-1] + (-1,))
    return z, (half[..., None] * w).reshape(z.shape) * jnp.exp(-z**2 / 2) / np.sqrt(2 * np.pi)


def _project(fw, z, n_terms):
    """Σₖ fwₖ hₙ(zₖ) for n < n_terms at per-point nodes, by the three-term recurrence (a ``lax.scan``)."""
    def step(h, n):
        h_prev, h_n = h
        return (h_n, (z * h_n - jnp.sqrt(n) * h_prev) / jnp.sqrt(n + 1)), jnp.sum(fw * h_n, -1)
    _, a = lax.scan(step, (jnp.zeros_like(z), jnp.ones_like(z)), jnp.arange(n_terms, dtype=z.dtype))
    return jnp.moveaxis(a, 0, -1)


def _moments(phi, q, n_terms, kinks):
    """(aₙ(q) for n < n_terms, E[φ(√q z)²], the rule); shapes q.shape + (n_terms,) and q.shape."""
    z, wz = _rule(q, kinks)
    f = phi(jnp.sqrt(q)[..., None] * z)
    a = f @ jnp.asarray(_table(n_terms), q.dtype) if not kinks else _project(f * wz, z, n_terms)
    return a, jnp.sum(f * f * wz, -1), (z, wz)


def hermite_coefficients(phi, q, n_terms, kinks=()):
    """aₙ(q) for n < n_terms and E[φ(√q z)²]; shapes q.shape + (n_terms,) and q.shape."""
    return _moments(phi, jnp.asarray(q), n_terms, kinks)[:2]


def features(phi, dphi, q, at_zero, n_terms=DEFAULT_TERMS, kinks=()):
    """Per-point data of the series: (q, aₙ, bₙ, T_V, T_V̇, E[φ²], E[φ'²]) for an array q of variances
    (``kinks``: where φ has kinks or jumps away from x = 0; ``at_zero``: see :func:`_at_zero`)."""
    q = jnp.asarray(q)
    positive = jnp.where(q > 0, q, 1)
    a, m, (z, wz) = _moments(phi, positive, n_terms + 1, kinks)
    d = jnp.sum(dphi(jnp.sqrt(positive)[..., None] * z) ** 2 * wz, -1)
    b = a[..., 1:] * jnp.sqrt(jnp.arange(1, n_terms + 1, dtype=q.dtype) / positive[..., None])  # Stein
    a = a[..., :n_terms]
    tail = lambda mom, coef: jnp.maximum(mom - jnp.sum(coef**2, axis=-1), 0)  # noqa: E731
    return _at_zero(q, (q, a, b, tail(m, a), tail(d, b), m, d), at_zero)


def smooth_features(phi, dphi, q, n_terms, at_zero):
    """:func:`features` for an analytic φ, accurate relative to each point's own scale at any small q:
    bₙ = E[φ'(√q z) hₙ(z)] directly (Stein's √((n+1)/q)·aₙ₊₁ divides the rule's error by √q), and
    the tails by Parseval as the quadrature of the squared residual, T = E[(φ − Σ_{n<N} aₙhₙ)²]
    (the difference E[φ²] − Σ aₙ² cannot resolve a tail below ~1e-16·E[φ²])."""
    z, wz = _rule(q, ())
    x = jnp.sqrt(jnp.where(q > 0, q, 1))[..., None] * z
    f, g = phi(x), dphi(x)
    table, basis = jnp.asarray(_table(n_terms), q.dtype), jnp.asarray(_basis(n_terms), q.dtype)
    a, b = f @ table, g @ table
    tail = lambda v, coef: jnp.sum(wz * (v - coef @ basis.T) ** 2, -1)  # noqa: E731
    series = (q, a, b, tail(f, a), tail(g, b), jnp.sum(f * f * wz, -1), jnp.sum(g * g * wz, -1))
    return _at_zero(q, series, at_zero)


def _at_zero(q, series, at_zero):
    """The features ``series`` where q > 0 (computed at q = 1 elsewhere, so that no √q is differentiated
    at 0), and at q = 0 their first-order Taylor expansion from ``at_zero`` = (φ(0), φ'(0), φ''(0),
    φ'''(0)) (one-sided means at a kink, Dirac masses dropped): a₀ = φ(0) + qφ''(0)/2, b₀ = φ'(0) +
    qφ'''(0)/2, E[φ²] = φ(0)² + q(φ'(0)² + φ(0)φ''(0)), E[φ'²] likewise, aₙ = bₙ = 0 for n ≥ 1, tails 0
    (heat equation ∂_q E[f(√q z)] = ½E[f''(√q z)]).  The values at q = 0 are exact, and so are
    ∂V/∂q1 = ½E[φ''(u)φ(v)] and ∂V̇/∂q1 = ½E[φ'''(u)φ'(v)] there (u ≡ 0, c = 0: only n = 0 is left);
    where φ' jumps at 0 (SELU) the true slope is infinite and this is the finite one-sided mean, which
    a zero input (dq = 0) multiplies by 0."""
    f0, f1, f2, f3 = at_zero
    n_terms = series[1].shape[-1]
    first = lambda value: jnp.zeros(q.shape + (n_terms,), q.dtype).at[..., 0].set(value)  # noqa: E731
    taylor = (q, first(f0 + q * f2 / 2), first(f1 + q * f3 / 2), jnp.zeros_like(q), jnp.zeros_like(q),
              f0**2 + q * (f1**2 + f0 * f2), f1**2 + q * (f2**2 + f1 * f3))
    pick = lambda s, t: jnp.where((q > 0).reshape(q.shape + (1,) * (s.ndim - q.ndim)), s, t)  # noqa: E731
    return tuple(pick(s, t) for s, t in zip(series, taylor))


@jax.custom_jvp
def _horner(A1, A2, rho):
    """Σₙ A1ₙ A2ₙ ρⁿ by blocks of at most BLOCK terms, highest first (acc ← acc ρᴮ + block): XLA
    runs one unrolled 320-term loop 6× slower than a ``lax.scan`` over four 80-term blocks.  Each
    block is E(ρ²) + ρ O(ρ²): two independent Horner chains, even and odd n (1.7× faster on CPU
    than one chain, whose every step waits for the previous one)."""
    n = A1.shape[-1]
    n_blocks = -(-n // BLOCK)
    size = -(-n // n_blocks)
    r2, r_size = rho * rho, rho**size
    zero = jnp.zeros(jnp.broadcast_shapes(A1.shape[:-1], A2.shape[:-1], rho.shape), rho.dtype)

    def block(acc, coefficients):
        b1, b2 = coefficients
        even = odd = zero
        for k in range(size - 1, -1, -1):
            if k % 2:
                odd = odd * r2 + b1[..., k] * b2[..., k]
            else:
                even = even * r2 + b1[..., k] * b2[..., k]
        return acc * r_size + even + rho * odd, None

    if n_blocks == 1:
        return block(zero, (A1, A2))[0]
    split = lambda A: jnp.moveaxis(  # noqa: E731  (..., n) → (blocks, ..., size), highest block first
        jnp.pad(A, [(0, 0)] * (A.ndim - 1) + [(0, n_blocks * size - n)]).reshape(A.shape[:-1] + (n_blocks, size)),
        -2, 0)[::-1]
    return lax.scan(block, zero, (split(A1), split(A2)))[0]


@partial(_horner.defjvp, symbolic_zeros=True)
def _horner_jvp(primals, tangents):
    """d Σₙ A1ₙA2ₙρⁿ = Σₙ (dA1ₙA2ₙ + A1ₙdA2ₙ)ρⁿ + dρ Σₙ nA1ₙA2ₙρⁿ⁻¹: three series of the same kind,
    so that a linearisation stores only the inputs, not the loop's 2N intermediate P × P arrays."""
    (A1, A2, rho), (dA1, dA2, drho) = primals, tangents
    out = _horner(A1, A2, rho)
    parts = [(dA1, lambda: _horner(dA1, A2, rho)), (dA2, lambda: _horner(A1, dA2, rho))]
    if A1.shape[-1] > 1:  # the slope Σₙ nA1ₙA2ₙρⁿ⁻¹ (none for a single term)
        n = jnp.arange(1, A1.shape[-1], dtype=rho.dtype)
        parts.append((drho, lambda: _horner(A1[..., 1:] * n, A2[..., 1:], rho) * drho))
    return out, sum((part() for t, part in parts if not isinstance(t, SymbolicZero)), jnp.zeros_like(out))


def _correlation(q1, c, q2):
    """(c clipped, ρ = c/√(q1 q2), and the mask of coincident points: ρ = 1 and q1 = q2 up to
    16 ulp, where u = v and V, V̇ are the exact moments E[φ²], E[φ'²], which the series reaches
    only slowly — the diagonal of a kernel, and also any two identical inputs)."""
    s12, c = safe_sqrt(q1 * q2), clip_cov(q1, c, q2)  # no ∞ slope at q1 q2 = 0
    rho = jnp.where(s12 > 0, c / jnp.where(s12 > 0, s12, 1), 0)
    tol = 16 * jnp.finfo(rho.dtype).eps
    return c, rho, (rho >= 1 - tol) & (jnp.abs(q1 - q2) <= tol * jnp.maximum(q1, q2))


def pair(f1, c, f2):
    """(V, V̇, bound_V, bound_V̇) from the features of the two points and their covariance c; at
    coincident points (see :func:`_correlation`) the exact moments, with bound 0, V written as
    √(m1 m2) + √(d1 d2)(c − √(q1 q2)) so that its first partial derivatives are exact too
    (∂V/∂c = E[φ'²]; ∂V/∂q1 = ½E[φφ''] by the heat equation ∂_q E[φ²] = E[φ'²] + E[φφ''])."""
    q1, a1, b1, t1, u1, m1, d1 = f1
    q2, a2, b2, t2, u2, m2, d2 = f2
    c, rho, same = _correlation(q1, c, q2)
    r = jnp.where(same, 0, jnp.abs(rho) ** a1.shape[-1])
    moment_dot = safe_sqrt(d1 * d2)
    exact = safe_sqrt(m1 * m2) + moment_dot * (c - safe_sqrt(q1 * q2))
    Vdot = jnp.where(same, moment_dot, _horner(b1, b2, rho))
    # at q1 = 0 or q2 = 0 (c clipped to 0) only n = 0 survives, V̇ = b₀b₀; + b₀b₀·c keeps ∂V/∂c = V̇
    # there too (written from b₀, not V̇, so that a caller of V alone does not pay for V̇'s series)
    degenerate = (q1 == 0) | (q2 == 0)
    V = jnp.where(same, exact, _horner(a1, a2, rho) + jnp.where(degenerate, b1[..., 0] * b2[..., 0] * c, 0))
    return V, Vdot, r * jnp.sqrt(t1 * t2), r * jnp.sqrt(u1 * u2)


def relative_bound(f1, c, f2):
    """The largest truncation bound of :func:`pair` relative to the kernel's scale √(E[φ²]₁E[φ²]₂)
    (and the same for V̇) over the entries that use the series (all but coincident points, where
    the exact moments replace it); inf where the features are not finite."""
    (q1, a1, _, t1, u1, m1, d1), (q2, _, _, t2, u2, m2, d2) = f1, f2
    _, rho, same = _correlation(q1, c, q2)
    rel = lambda tail, mom: jnp.sqrt(tail / jnp.where(mom > 0, mom, 1))  # noqa: E731  (per point: O(N); tail ≤ mom)
    ratio = jnp.abs(rho) ** a1.shape[-1] * jnp.maximum(rel(t1, m1) * rel(t2, m2), rel(u1, d1) * rel(u2, d2))
    ratio = jnp.where(jnp.isfinite(ratio), ratio, jnp.inf)
    return jnp.max(jnp.where(same, 0, ratio))


def diagonal(f):
    """(V, V̇) at q1 = q2 = c: the exact second moments E[φ²], E[φ'²]."""
    return f[5], f[6]
