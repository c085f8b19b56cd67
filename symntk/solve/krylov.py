"""Restarted GMRES(m) with a single matrix–vector product site (Saad & Schultz 1986).

Solves A x = b for a matrix-free A.  Each cycle starts from r₀ = b − A x, β = ‖r₀‖, v₀ = r₀/β and
builds the Arnoldi basis V (m + 1 vectors, Gram–Schmidt applied twice) and Hessenberg matrix H with
A V_k = V_{k+1} H_k.  After each step the small least-squares problem y = argmin ‖β e₁ − H_k y‖ gives
the residual of x + V_k y, r = V_{k+1}(β e₁ − H_k y).  The cycle ends when ‖r‖ ≤ tol·‖b‖ (the solve
stops), after m steps or at a breakdown, and x ← x + V_k y; the next cycle starts from that r, so
every product with A is an Arnoldi step (none for r₀ = b at x = 0, none to re-check the residual:
with Gram–Schmidt twice the recurrence keeps it to rounding error).  At most ``restarts`` cycles.

It does what ``jax.scipy.sparse.linalg.gmres`` does. The difference is that every product with A
happens at one place in one ``lax.while_loop``, so A is traced and compiled once. JAX's GMRES traces
A five times (tests/test_krylov.py), and lineax's compiled no faster. In the aNBK Newton step, A is
the linearised saddle-point map through tanh's Hermite series, and this cut the XLA compile of
``symntk.anbk._solve`` from 39 s to 28 s on one core.
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

    def cycle(r, cycles):
        """The state at the start of a cycle from the residual r (no product: V₀ = r/‖r‖)."""
        beta = jnp.linalg.norm(r)
        V = jnp.zeros((m + 1, n), b.dtype).at[0].set(r / jnp.where(beta > 0, beta, 1))
        return dict(V=V, H=jnp.zeros((m + 1, m), b.dtype), beta=beta, j=1, cycles=cycles,
                    done=(beta <= target) | (cycles >= restarts))

    def body(s):
        j = s["j"]  # Arnoldi step k = j − 1: A v_k against the basis vectors 0..k
        Av = matvec(s["V"][j - 1].reshape(shape)).ravel()
        mask = (jnp.arange(m + 1) < j).astype(b.dtype)
        h = mask * (s["V"] @ Av)
        w = Av - h @ s["V"]
        h2 = mask * (s["V"] @ w)  # Gram–Schmidt twice
        w, h = w - h2 @ s["V"], h + h2
        norm = jnp.linalg.norm(w)
        V = s["V"].at[j].set(w / jnp.where(norm > 0, norm, 1))
        H = s["H"].at[:, j - 1].set(h.at[j].set(norm))
        rhs = jnp.zeros(m + 1, b.dtype).at[0].set(s["beta"])
        y = jnp.linalg.lstsq(H, rhs)[0]  # argmin ‖β e₁ − H y‖ (H's unused columns are 0)
        res = rhs - H @ y
        converged = jnp.linalg.norm(res) <= target
        end = converged | (j == m) | (norm == 0)
        x = jnp.where(end, s["x"] + y @ V[:m], s["x"])
        nxt = cycle(res @ V, s["cycles"] + 1)  # r = b − A x = V_{m+1}(β e₁ − H y)
        nxt["done"] |= converged
        same = dict(V=V, H=H, beta=s["beta"], j=j + 1, cycles=s["cycles"], done=False)
        return dict(x=x, **{k: jnp.where(end, nxt[k], same[k]) for k in same})

    init = dict(x=jnp.zeros(n, b.dtype), **cycle(b, 0))
    return lax.while_loop(lambda s: ~s["done"], body, init)["x"].reshape(shape)
