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
    """Clip c into [−√(q1 q2), √(q1 q2)] so that rounding never makes |ρ| > 1."""
    bound = jnp.sqrt(q1 * q2)
    return jnp.clip(c, -bound, bound)
