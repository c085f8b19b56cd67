"""The NDK predictor as a linear Volterra equation of the second kind (theory/ndk.md N8, N9).

On a grid 0 = t_0 < … < t_{N−1} with steps h_n = t_n − t_{n−1}, the trapezoid rule with an
implicit last node discretises f̄(x, t) = ∫₀ᵗ ds K_d(t, s, x, X) [Y − f̄(X, s)] as

    f̄_n = Σ_{m<n} w_m K_nm r_m + (h_n/2) K_nn r_n,   r_m = Y − f̄_m(X),   w_m = (h_m + h_{m+1})/2,

with h_0 := 0 and K_nm = K_d(t_n, t_m, ·, X); on the training rows it is solved for r_n,
(I + (h_n/2) K_nn^{XX}) f̄_n(X) = Σ_{m<n} w_m K_nm^{XX} r_m + (h_n/2) K_nn^{XX} Y.  The error is
O(h²) on a smoothly graded grid.  Written as one block lower-triangular operator A (blocks
W_nm K_nm), the same scheme reads f̄ = A (Ȳ − f̄_X), and a realisation's fluctuation is
δf = f⁰ − A δf_X with f⁰ the prior process of covariance C (N9).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

#: time nodes whose kernels the history sum evaluates together (vmapped)
CHUNK = 4


def trapezoid(t):
    """The scheme's weights on the grid t: w_m = (h_m + h_{m+1})/2 (h_0 := 0) for the history terms
    m < n, and h_n/2 for the implicit node n ≥ 1 (entry 0 unused, 0)."""
    h = np.diff(np.asarray(t, dtype=float))
    return (np.concatenate([[0.0], h]) + np.concatenate([h, [0.0]])) / 2, np.concatenate([[0.0], h / 2])


def weights(t):
    """The trapezoid weight matrix W (N, N): W_nm = w_m for m < n, h_n/2 for m = n ≥ 1, else 0."""
    w, last = trapezoid(t)
    W = np.tril(np.broadcast_to(w, (len(w), len(w))), -1)
    return W + np.diag(last)


def mean(pair, params, t, dot, features, self_kernel, y):
    """N8 on the grid ``t``: f̄(t_n) at every point, shape (N, P_all), training points first.

    ``pair(params, t, s, dot, f1, f2) -> (C, K_d, bound)`` evaluates the kernels between two point
    sets at times (t, s) and their largest series truncation bound; ``dot`` (P_all, P) is x·x'/d of
    all points against the training points; ``features`` holds every point's per-layer features at
    every grid time (leaves (N, L, P_all, …)); ``self_kernel`` (N, P) is K_d(t_n, t_n, x_μ, x_μ) from
    the exact diagonal pass, which replaces the pair's value there.  Returns (f̄, the largest bound
    over the pairs used).
    """
    w, last = trapezoid(t)
    return _mean(pair, params, jnp.asarray(t), jnp.asarray(w), jnp.asarray(last), dot, features, self_kernel, y)


@partial(jax.jit, static_argnums=0)
def _mean(pair, params, t, w, last, dot, features, self_kernel, y):
    N, P, P_all = t.shape[0], y.shape[0], dot.shape[0]
    at = lambda tree, i: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
    train = jax.tree.map(lambda a: a[:, :, :P], features)

    def step(carry, n):
        fn = at(features, n)

        def history(j, carry):  # Σ_m w_m K_nm r_m over the nodes m = j·CHUNK + (0..CHUNK−1) < n
            acc, worst = carry
            ms = jnp.minimum(j * CHUNK + jnp.arange(CHUNK), N - 1)
            _, K, bound = jax.vmap(lambda m: pair(params, t[n], t[m], dot, fn, at(train, m)))(ms)
            valid = j * CHUNK + jnp.arange(CHUNK) < n
            wm = jnp.where(valid, w[ms], 0.0)
            return acc + jnp.einsum("c,cij,cj->i", wm, K, R[ms]), jnp.maximum(worst, jnp.max(jnp.where(valid, bound, 0)))

        R, worst = carry
        acc, worst = jax.lax.fori_loop(0, (n + CHUNK - 1) // CHUNK, history, (jnp.zeros(P_all, t.dtype), worst))
        _, K, bound = pair(params, t[n], t[n], dot, fn, at(train, n))
        r, f = _implicit_node(acc, K.at[jnp.arange(P), jnp.arange(P)].set(self_kernel[n]), last[n], y)
        return (R.at[n].set(r), jnp.maximum(worst, bound)), f

    R = jnp.zeros((N, P), t.dtype).at[0].set(y)
    (_, worst), f = jax.lax.scan(step, (R, jnp.zeros((), t.dtype)), jnp.arange(1, N))
    return jnp.concatenate([jnp.zeros((1, P_all), t.dtype), f]), worst


def _implicit_node(acc, K, half, y):
    """The implicit node n given the history sum ``acc`` and K = K_nn (P_all, P): solve
    (I + (h_n/2) K^{XX}) f̄_n(X) = acc(X) + (h_n/2) K^{XX} Y (K^{XX} = K_d(t_n, t_n, X, X), symmetric
    positive semi-definite: symmetrised, Cholesky) and return (r_n = Y − f̄_n(X), f̄_n at every point)."""
    P = y.shape[0]
    KX = (K[:P] + K[:P].T) / 2
    f_train = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(jnp.eye(P, dtype=K.dtype) + half * KX),
                                         acc[:P] + half * KX @ y)
    r = y - f_train
    return r, acc + half * K @ r


def mean_low_rank(t, c, modes, y):
    """N8 on the grid ``t`` as :func:`mean`, for a kernel of low rank in time,
    K_d(t_n, t_m, ·, X) = Σ_r c_nm,r U_r with ``c`` (N, N, r) (entries m ≤ n used) and ``modes`` U (r, P_all, P):
    the history sum is Σ_r U_r Σ_{m<n} w_m c_nm,r r_m.  Returns f̄ (N, P_all), training points first."""
    w, last = trapezoid(t)
    return _mean_low_rank(jnp.asarray(w), jnp.asarray(last), c, modes, y)


@jax.jit
def _mean_low_rank(w, last, c, modes, y):
    N, P = c.shape[0], y.shape[0]

    def step(R, n):
        history = jnp.where(jnp.arange(N) < n, w, 0.0)[:, None] * c[n]  # (N, r): w_m c_nm for m < n
        r, f = _implicit_node(jnp.einsum("rij,rj->i", modes, history.T @ R), jnp.einsum("r,rij->ij", c[n, n], modes),
                              last[n], y)
        return R.at[n].set(r), f

    R = jnp.zeros((N, P), w.dtype).at[0].set(y)
    _, f = jax.lax.scan(step, R, jnp.arange(1, N))
    return jnp.concatenate([jnp.zeros((1, modes.shape[1]), w.dtype), f])


def operator(t, Kd):
    """The block operator A of the scheme, shape (N·P_all, N·P): rows (n, x), columns (m, μ),
    from K_d(t_n, t_m, x, x_μ) given as ``Kd`` (N, N, P_all, P)."""
    N, _, P_all, P = Kd.shape
    return (weights(t)[:, :, None, None] * Kd).transpose(0, 2, 1, 3).reshape(N * P_all, N * P)


def covariance(t, Kd, C):
    """N9: the equal-time covariance of f, shape (N, P_all, P_all), from K_d (N, N, P_all, P) and the
    prior covariance C (N, N, P_all, P_all) on the grid ``t``.

    δf = S f⁰ with S = I − A (I + A_XX)⁻¹ E_X (E_X picks the training rows), so Cov = S C Sᵀ.
    """
    N, _, P_all, P = Kd.shape
    A = operator(t, Kd)
    rows = (np.arange(N)[:, None] * P_all + np.arange(P)).ravel()  # the training rows (n, μ)
    E = np.zeros((N * P, N * P_all))
    E[np.arange(N * P), rows] = 1.0
    S = np.eye(N * P_all) - A @ np.linalg.solve(np.eye(N * P) + A[rows], E)
    SC = (S @ C.transpose(0, 2, 1, 3).reshape(N * P_all, N * P_all)).reshape(N, P_all, N * P_all)
    cov = SC @ S.reshape(N, P_all, N * P_all).transpose(0, 2, 1)
    return (cov + cov.transpose(0, 2, 1)) / 2
