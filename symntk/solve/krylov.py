"""Restarted GMRES(m) with a single matrix–vector product site (Saad & Schultz 1986).

Solves A x = b for a matrix-free A.  Each cycle starts from r₀ = b − A x, β = ‖r₀‖, v₀ = r₀/β and
builds the Arnoldi basis V (m + 1 vectors, Gram–Schmidt applied twice) and Hessenberg matrix H with
A V_k = V_{k+1} H_k.  After each step the small least-squares problem y = argmin ‖β e₁ − H_k y‖ gives
the residual norm of x + V_k y.  The cycle ends when that norm is ≤ tol·‖b‖ or after m steps, and
x ← x + V_k y.  The solve stops at the first cycle start whose true residual is ≤ tol·‖b‖, or after
``restarts`` cycles.

It does what ``jax.scipy.sparse.linalg.gmres`` does. The difference is that every product with A,
the residual's included, happens at one place in one ``lax.while_loop``, so A is traced and
compiled once.  JAX's GMRES traces A five times (tests/test_krylov.py), and lineax's compiled no
faster.  In the aNBK Newton step, A is the linearised saddle-point map through tanh's Hermite
series, and this cut the XLA compile of ``symntk.anbk._solve`` from 39 s to 28 s on one core.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def gmres(matvec, b, tol, restart, restarts):
    """x with ‖b − A x‖ ≤ ``tol``·‖b‖ (or the best after ``restarts`` cycles of ``restart`` steps), from
    x = 0; ``matvec``: v ↦ A v on arrays shaped like ``b``."""
    shape, b = b.shape, b.ravel()
    n, m = b.size, restart
    target = tol * jnp.linalg.norm(b)

    def lstsq(H, beta):
        """(y, ‖β e₁ − H y‖) for the (m + 1) × m Hessenberg H (its unused columns are 0)."""
        rhs = jnp.zeros(m + 1, b.dtype).at[0].set(beta)
        y = jnp.linalg.lstsq(H, rhs)[0]
        return y, jnp.linalg.norm(rhs - H @ y)

    def body(s):
        j = s["j"]
        Av = matvec(jnp.where(j == 0, s["x"], s["V"][jnp.maximum(j - 1, 0)]).reshape(shape)).ravel()
        # j = 0: a cycle starts from the true residual
        r = b - Av
        beta = jnp.linalg.norm(r)
        start_V = jnp.zeros((m + 1, n), b.dtype).at[0].set(r / jnp.where(beta > 0, beta, 1))
        # j ≥ 1: Arnoldi step k = j − 1 against the basis vectors 0..k
        mask = (jnp.arange(m + 1) < j).astype(b.dtype)
        h = mask * (s["V"] @ Av)
        w = Av - h @ s["V"]
        h2 = mask * (s["V"] @ w)
        w, h = w - h2 @ s["V"], h + h2
        norm = jnp.linalg.norm(w)
        h = h.at[j].set(norm)
        V = s["V"].at[j].set(w / jnp.where(norm > 0, norm, 1))
        H = s["H"].at[:, jnp.maximum(j - 1, 0)].set(h)
        y, res = lstsq(H, s["beta"])
        end = (res <= target) | (j == m) | (norm == 0)
        arnoldi = dict(x=jnp.where(end, s["x"] + y @ V[:m], s["x"]), V=V, H=H, beta=s["beta"],
                       j=jnp.where(end, 0, j + 1), cycles=s["cycles"] + end, done=False)
        starting = dict(x=s["x"], V=start_V, H=jnp.zeros_like(H), beta=beta, j=1, cycles=s["cycles"],
                        done=(beta <= target) | (s["cycles"] >= restarts))
        return {k: jnp.where(j == 0, starting[k], arnoldi[k]) for k in starting}

    init = dict(x=jnp.zeros(n, b.dtype), V=jnp.zeros((m + 1, n), b.dtype), H=jnp.zeros((m + 1, m), b.dtype),
                beta=jnp.zeros((), b.dtype), j=0, cycles=0, done=False)
    return lax.while_loop(lambda s: ~s["done"], body, init)["x"].reshape(shape)
