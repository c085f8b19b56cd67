"""Stabilised JAX primitives used by generated code (finite values and gradients at the boundary)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_jvp
def safe_sqrt(v):
    """√max(v, 0), with derivative 0 (not ∞·0 = NaN) where the argument is ≤ 0."""
    return jnp.sqrt(jnp.maximum(v, 0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (v,), (dv,) = primals, tangents
    r = safe_sqrt(v)
    pos = v > 0
    return r, jnp.where(pos, dv / (2 * jnp.where(pos, r, 1)), 0)


def clip_cov(q1, c, q2):
    """Clip c into [−√(q1 q2), √(q1 q2)] so that rounding never makes |ρ| > 1.

    Only values with c² > q1 q2 are touched: c = q1 = q2 (a diagonal) stays exact, so that
    q1 q2 − c² is exactly 0 there (√(q·q) may round below q, which would leave a gap ~ 1e-16 q²
    whose square root, ~1e-8 q, an arc-cosine kernel's V̇ would feel).
    """
    return jnp.where(c * c > q1 * q2, jnp.sign(c) * jnp.sqrt(q1 * q2), c)


def shaped(values, *like):
    """Each of ``values`` broadcast to the shape and float dtype of the arrays ``like``
    (a constant such as V̇ = 1 of φ(x) = x still comes back as an array)."""
    like = [jnp.asarray(a) for a in like]
    shape = jnp.broadcast_shapes(*(a.shape for a in like))
    dtype = jnp.result_type(*like, float)
    return tuple(jnp.broadcast_to(jnp.asarray(v, dtype), shape) for v in values)
