"""The network of theory/ndk.md N1 at finite width, trained by the Langevin dynamics N2.

    h¹ = W¹x/√d,  hˡ = Wˡ φ(hˡ⁻¹)/√N,  f = a·φ(hᴸ)/√N,   every weight O(1), initialised N(0, σ₀²)
    θ ← θ − Δt [∇_θ ½Σ_μ (f(x_μ) − y_μ)² + (T/σ²) θ] + √(2TΔt) ξ           (Euler–Maruyama)

The ensemble (``members`` networks) is vmapped and the steps run in ``lax.scan``/``fori_loop``.
With ``antithetic=True`` members come in pairs that share every random number except the sign
of the readout a (its initial value and its noise): a → −a is a symmetry of the prior and of the
noise, so each member is still an exact sample, while the pair average cancels the prior
fluctuation f⁰ = a·φ(h)/√N, the dominant part of the spread.  Statistics must then be taken
over pair averages (``pair_means``).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import DataError


class LangevinNet:
    """A width-``width`` copy of ``model`` (a :class:`symntk.ndk.LangevinMLP`)."""

    def __init__(self, model, width):
        self.model, self.width = model, int(width)
        self.phi = model.dual.module().phi

    def init(self, key, d, readout_sign=1.0):
        """Weights [W¹ (d, N), W² … Wᴸ (N, N), a (N,)], all N(0, σ₀²); a times ``readout_sign``."""
        widths = [d] + [self.width] * self.model.depth
        keys = jax.random.split(key, len(widths))
        s = np.sqrt(self.model.sigma0_sq)
        params = [s * jax.random.normal(k, (n_in, n_out)) for k, n_in, n_out in zip(keys, widths[:-1], widths[1:])]
        return params + [readout_sign * s * jax.random.normal(keys[-1], (widths[-1],))]

    def apply(self, params, x):
        """f(x) for the rows of x, shape (N_x,)."""
        h = x @ params[0] / np.sqrt(x.shape[1])
        for w in params[1:]:
            h = self.phi(h) @ w / np.sqrt(w.shape[0])
        return h


@partial(jax.jit, static_argnames=("net", "steps", "record_every"))
def _run(net, key, sign, x, y, x_eval, dt, steps, record_every):
    model = net.model
    rate, noise = model.rate, jnp.sqrt(2 * model.temperature * dt)
    key, k0 = jax.random.split(key)
    params = net.init(k0, x.shape[1], sign)
    grad = jax.grad(lambda p: 0.5 * jnp.sum((net.apply(p, x) - y) ** 2))

    def step(i, carry):
        p, key = carry
        key, sub = jax.random.split(key)
        xi = [jax.random.normal(k, w.shape) for k, w in zip(jax.random.split(sub, len(p)), p)]
        xi[-1] = sign * xi[-1]
        return [w - dt * (g + rate * w) + noise * z for w, g, z in zip(p, grad(p), xi)], key

    def block(carry, _):
        carry = jax.lax.fori_loop(0, record_every, step, carry)
        return carry, net.apply(carry[0], x_eval)

    _, outs = jax.lax.scan(block, (params, key), None, length=steps // record_every)
    return jnp.concatenate([net.apply(params, x_eval)[None], outs])


def simulate(net, key, x_train, y_train, x_eval, t_end, dt, members, record_every=1, antithetic=True):
    """Outputs f(x_eval) of ``members`` networks at t = 0, r Δt, 2 r Δt, … ``t_end`` (r = ``record_every``).

    Returns (times (n_rec,), outputs (members, n_rec, N_eval)); with ``antithetic`` members 2i and
    2i + 1 are a pair (see the module docstring).
    """
    steps = int(round(t_end / dt))
    if steps < 1 or steps % record_every or abs(steps * dt - t_end) > 1e-9 * t_end:
        raise DataError(f"t_end / dt = {t_end / dt} must be a whole multiple of record_every = {record_every}")
    if antithetic and members % 2:
        raise DataError(f"antithetic sampling needs an even number of members, got {members}")
    x, y, xe = (jnp.asarray(a, dtype=float) for a in (x_train, y_train, x_eval))
    pairs = members // 2 if antithetic else members
    keys = jnp.repeat(jax.random.split(key, pairs), 2 if antithetic else 1, axis=0)
    signs = jnp.asarray(np.tile([1.0, -1.0], pairs) if antithetic else np.ones(members))
    outs = jax.vmap(lambda k, s: _run(net, k, s, x, y, xe, dt, steps, record_every))(keys, signs)
    return dt * record_every * np.arange(steps // record_every + 1), np.asarray(outs)


def pair_means(outputs, antithetic=True):
    """The independent samples of the ensemble: pair averages (antithetic) or the members themselves."""
    return outputs.reshape(-1, 2, *outputs.shape[1:]).mean(axis=1) if antithetic else outputs
