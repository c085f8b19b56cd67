"""Adaptive two-variable Chebyshev interpolation of a matrix-valued function, compressed to low rank.

A function F(a, b) with values in R^M, (a, b) in the box [a₀, a₁] × [b₀, b₁], is sampled on the tensor
grid of Chebyshev–Lobatto points a_i = ā + ½(a₁ − a₀) cos(πi/(n_a − 1)) (likewise b_j) and
interpolated by the polynomial

    F(a, b) ≈ Σ_{p<n_a, q<n_b} T_p(â) T_q(b̂) F̂_pq,     F̂ = D_a F D_bᵀ (type-I discrete cosine transform),

with â, b̂ the box mapped to [−1, 1].  A direction whose last max(3, n/8) coefficients exceed
tol·max|F| is refined from n − 1 to 2(n − 1) intervals (the grids are nested, so only new points
are evaluated; for an analytic F the coefficients fall geometrically and the last ones measure the
error: Boyd, *Chebyshev and Fourier Spectral Methods*, §2.12), and the interpolant is then checked
against F at two random points off the grid (both directions are refined if it misses).  The node
values are never stored: as they arrive they are written in an orthonormal basis U_r grown by
Gram–Schmidt (a residual above tol·max|F|/16 in some entry adds a direction), F(a_i, b_j) ≈ Σ_r Q_(ij),r U_r,
so memory is O(rank·M) and

    F(a, b) ≈ Σ_r c_r(a, b) U_r,    c_r(a, b) = Σ_pq T_p(â) T_q(b̂) Q̂_pq,r.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

#: Lobatto points per direction at the start, and at most
START, MOST = 9, 65
#: entries of F per block when the tail coefficients are formed (bounds the temporary memory)
BLOCK = 2**15
#: most points per call of ``evaluate``
POINTS = 32
#: bound on the Lebesgue constant of the largest grid (see ``_Basis``)
LEBESGUE = 16


@dataclass(frozen=True)
class LowRankInterpolant:
    """F(a, b) ≈ Σ_r c_r(a, b) U_r: ``coefficients`` Q̂ (n_a, n_b, r), ``modes`` U (r, M), orthonormal rows;
    ``error``: the largest deviation from F at the two check points, relative to ``scale`` = max|F|
    over the grid; ``evaluations``: the points at which F was evaluated."""

    box: tuple[float, float, float, float]
    coefficients: np.ndarray
    modes: np.ndarray
    error: float
    scale: float
    evaluations: int

    def weights(self, a, b):
        """c_r(a, b) at the broadcast points, shape broadcast(a, b).shape + (r,)."""
        Ta = basis(a, self.coefficients.shape[0], *self.box[:2])
        Tb = basis(b, self.coefficients.shape[1], *self.box[2:])
        return np.einsum("...p,...q,pqr->...r", Ta, Tb, self.coefficients, optimize=True)


def lobatto(n, lo, hi):
    """The n Chebyshev–Lobatto points of [lo, hi] (from hi down to lo); one point when n = 1."""
    return np.array([lo], float) if n == 1 else (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * np.arange(n) / (n - 1))


def transform(n):
    """D (n, n) with F̂ = D F: Chebyshev coefficients from the values at the n Lobatto points."""
    if n == 1:
        return np.ones((1, 1))
    j = np.arange(n)
    D = np.cos(np.pi * np.outer(j, j) / (n - 1)) * 2 / (n - 1)
    D[:, [0, -1]] /= 2
    D[[0, -1]] /= 2
    return D


def basis(x, n, lo, hi):
    """T_p(x̂) for p < n at x (any shape), x̂ = x mapped from [lo, hi] to [−1, 1]: shape x.shape + (n,)."""
    x = np.asarray(x, dtype=float)
    xh = np.clip((2 * x - lo - hi) / (hi - lo), -1.0, 1.0) if hi > lo else np.zeros_like(x)
    return np.cos(np.arange(n) * np.arccos(xh)[..., None])


def fit(evaluate, box, tol, budget, max_rank):
    """Interpolate ``evaluate(a, b) -> (k, M)`` (F at the k ≤ ``POINTS`` points (a[i], b[i])) on ``box`` to
    ``tol`` relative to max|F|.  Returns a :class:`LowRankInterpolant`, or None when the grid would need
    more than ``budget`` evaluations, more than ``MOST`` points per direction or more than ``max_rank`` modes."""
    a0, a1, b0, b1 = box
    n = [START if a1 > a0 else 1, START if b1 > b0 else 1]
    span, coords, known, count = _Basis(tol), None, None, 0
    while True:
        grid = np.meshgrid(lobatto(n[0], a0, a1), lobatto(n[1], b0, b1), indexing="ij")
        todo = np.argwhere(np.ones(n, bool) if known is None else ~known)
        if count + len(todo) + 2 > budget:
            return None
        for lo in range(0, len(todo), POINTS):
            i, j = todo[lo:lo + POINTS].T
            new = span.add(evaluate(grid[0][i, j], grid[1][i, j]))
            if span.rank > max_rank:
                return None
            coords = np.zeros(tuple(n) + (span.rank,)) if coords is None else _widen(coords, span.rank)
            coords[i, j, :new.shape[1]] = new
        count += len(todo)
        coefficients = np.einsum("pi,qj,ijr->pqr", transform(n[0]), transform(n[1]), coords)
        refine = _tails(coefficients, span, tol)
        if not any(refine):
            a, b = np.random.default_rng(0).uniform(box[::2], box[1::2], (2, 2)).T
            fitted = LowRankInterpolant(tuple(map(float, box)), coefficients, span.U, 0.0, span.scale, count + 2)
            error = np.max(np.abs(fitted.weights(a, b) @ span.U - evaluate(a, b))) / span.scale
            if error <= tol:
                return dataclasses.replace(fitted, error=float(error))
            count += 2
            refine = (n[0] > 1, n[1] > 1)
        grown = [2 * k - 1 if r else k for k, r in zip(n, refine)]
        if max(grown) > MOST:
            return None
        step = [2 if r else 1 for r in refine]
        old, coords = coords, np.zeros(tuple(grown) + coords.shape[2:])
        coords[::step[0], ::step[1]] = old
        known = np.zeros(grown, bool)
        known[::step[0], ::step[1]] = True
        n = grown


def _widen(coords, rank):
    """``coords`` with zero coordinates appended for directions added since (earlier values lie in the old span)."""
    return np.pad(coords, [(0, 0)] * (coords.ndim - 1) + [(0, rank - coords.shape[-1])])


class _Basis:
    """Orthonormal rows U spanning the values seen so far to tol·scale/``LEBESGUE`` per entry (scale:
    the largest |F| seen, so the criterion only tightens): each value is projected on U, and while
    some residual has an entry above that, the largest becomes a new row, reorthogonalised against U
    (column-pivoted Gram–Schmidt, which keeps the new rows well conditioned).
    Interpolation amplifies node errors by at most the Lebesgue constant of the grid,
    (1 + (2/π) ln n_a)(1 + (2/π) ln n_b) ≤ 13.4 for n ≤ ``MOST``, so the compression costs ≤ tol·scale."""

    def __init__(self, tol):
        self.tol, self.scale, self.U = tol, np.finfo(float).tiny, None

    @property
    def rank(self):
        return 0 if self.U is None else self.U.shape[0]

    def add(self, V):
        """Coordinates (k, rank) of the k values V (k, M) on the grown basis."""
        self.scale = max(self.scale, float(np.max(np.abs(V))))
        threshold = self.tol * self.scale / LEBESGUE
        coords = V @ self.U.T if self.rank else np.zeros((len(V), 0))
        residual = V - coords @ self.U if self.rank else V
        while np.max(np.abs(residual)) > threshold:  # the largest residual first (column-pivoted Gram–Schmidt)
            e = residual[np.argmax(np.max(np.abs(residual), axis=1))]
            for _ in range(2 if self.rank else 0):  # reorthogonalised: U stays orthonormal to rounding
                e = e - (self.U @ e) @ self.U
            e = e / np.linalg.norm(e)
            self.U = e[None] if self.U is None else np.vstack([self.U, e])
            along = residual @ e  # = V·e, as e ⊥ the earlier rows
            coords, residual = np.column_stack([coords, along]), residual - np.outer(along, e)
        return coords


def _tails(C, span, tol):
    """Whether each direction's last max(3, n/8) Chebyshev coefficients (C, on the modes of ``span``)
    exceed tol·scale in some entry."""
    n_a, n_b, r = C.shape
    tails = [C[-max(3, n_a // 8):].reshape(-1, r) if n_a > 1 else np.zeros((0, r)),
             C[:, -max(3, n_b // 8):].reshape(-1, r) if n_b > 1 else np.zeros((0, r))]
    worst = [0.0, 0.0]
    for lo in range(0, span.U.shape[1], BLOCK):
        for d, T in enumerate(tails):
            if len(T):
                worst[d] = max(worst[d], float(np.max(np.abs(T @ span.U[:, lo:lo + BLOCK]))))
    return worst[0] > tol * span.scale, worst[1] > tol * span.scale
