"""Semi-implicit Euler for the two-layer aNTK particle flow of a piecewise-linear φ with its kink at 0
(relu, leaky_relu, abs): particles slide along the kinks that attract them (Filippov) instead of
chattering across them (theory/adaptive.md T5; derivations/antk.md, "Kinked φ").

A particle (a, z) has h = aB_Xᵀ on the training points, K = B_X B_Xᵀ = Kˣ(X, X) and φ'(h) = s_L or
s_R on either side of 0.  With Δ = y − f from the current state, d = 1/(1 + λdt) and v = d dt γ₀ z Δ,

    z⁺ = d (z + dt γ₀ φ(h)·Δ),   a⁺ = d a + (v ⊙ s) B_X,   so   h⁺ = d h + K(v ⊙ s).

Where a kink repels (v_μ(s_R − s_L) ≥ 0) s_μ = φ'(h_μ) (explicit).  Where it attracts, s_μ is implicit,
s_μ ∈ ∂φ(h⁺_μ) (s_L below 0, s_R above, the whole interval at h⁺_μ = 0): those s minimise over the
box between s_L and s_R the convex quadratic F with ∂F/∂s_μ = v_μ h⁺_μ (Hessian v_μK_μνv_ν), whose
optimality conditions are exactly these.  Coordinate descent solves it, s_μ ← clip(s_μ − h⁺_μ/(K_μμ v_μ)),
warm-started from the previous step's s (carried in the state), ``SWEEPS`` sweeps per step.  At a stationary
state the discrete map gives λh = γ₀K(zs ⊙ Δ) and λz = γ₀φ(h)·Δ exactly, with s the Filippov slopes:
the fixed point T4 itself, whatever dt — unlike an explicit step, whose chattering biases it by O(dt).
"""
from __future__ import annotations

from typing import Callable, ClassVar

import diffrax
import jax.numpy as jnp
from jax import lax

SWEEPS = 1  # coordinate-descent sweeps per step; warm starts converge them over the steps near a fixed point


def step(state, dt, BX, training, gamma0, lam, phi, bounds):
    """One step (a, z, s) → (a⁺, z⁺, s⁺) of the scheme above; s (M, P) the slopes φ' on the training
    columns, ``training(a, z)`` = (h, Δ) on the training points, ``bounds`` = (s_L, s_R)."""
    a, z, s = state
    lo, hi = bounds
    h, delta = training(a, z)
    d = 1 / (1 + lam * dt)
    v = (d * dt * gamma0 * z)[:, None] * delta
    k_diag = jnp.sum(BX * BX, axis=1)
    attract = (v * (hi - lo) < 0) & (k_diag > 0)
    s = jnp.where(attract, s, jnp.where(h > 0, hi, lo))
    pivot = jnp.where(attract, v * k_diag, 1.0)  # ∂h⁺_μ/∂s_μ

    def coordinate(u, row):  # u = (v ⊙ s)B_X, so h⁺ = d h + u B_Xᵀ; one training point μ per row
        s_mu, h_mu, v_mu, attract_mu, pivot_mu, b_mu = row
        new = jnp.clip(s_mu - (d * h_mu + u @ b_mu) / pivot_mu, min(lo, hi), max(lo, hi))
        new = jnp.where(attract_mu, new, s_mu)
        return u + ((new - s_mu) * v_mu)[:, None] * b_mu, new

    u, s_t = (v * s) @ BX, s.T
    for _ in range(SWEEPS):  # point-major rows, so that each step of the scan reads contiguous memory
        u, s_t = lax.scan(coordinate, u, (s_t, h.T, v.T, attract.T, pivot.T, BX))
    return d * a + u, d * (z + dt * gamma0 * phi(h) @ delta), s_t.T


class SemiImplicitEuler(diffrax.AbstractSolver):
    """A diffrax solver that applies ``step_map(y, dt)``, so that ``diffeqsolve``'s saving, events
    and step budget apply; first order, linear interpolation, no error estimate (its steps come from
    :class:`StableSteps` or are fixed)."""

    step_map: Callable
    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation

    def order(self, terms):
        return 1

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1 = self.step_map(y0, t1 - t0)
        return y1, None, dict(y0=y0, y1=y1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class StableSteps(diffrax.AbstractStepSizeController):
    """Steps dt = ``fraction``/max(λ_max(K(y)), ``floor``), inside explicit Euler's stability limit
    2/λ_max on the output modes, which the semi-implicit step still treats explicitly (``floor`` = λ:
    where K is small, as in a collapse to f = 0, steps much longer than 1/λ would turn the flow into
    a slowly contracting fixed-point iteration).  λ_max of the NTK K grows as features are learnt;
    it is tracked by one warm-started power-iteration product ``ntk_matvec(y, v)`` = K(y)v per step
    (``INIT_ITERATIONS`` at t = 0).  An error-controlled step (a PID controller on ½dt(F(y⁺) − F(y)))
    hovered at the stability limit instead, where the explicit part oscillates with an amplitude
    ∝ its tolerance, and the T4 residual with it."""

    ntk_matvec: Callable
    fraction: float
    floor: float

    INIT_ITERATIONS: ClassVar[int] = 30

    def wrap(self, direction):
        return self

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        v = jnp.ones(y0[2].shape[1], y0[2].dtype) / jnp.sqrt(y0[2].shape[1])  # the state is (a, z, s), s (M, P)
        v, growth = lax.fori_loop(0, self.INIT_ITERATIONS, lambda i, c: self._power(y0, c[0]), (v, v[0]))
        return t0 + jnp.minimum(self.fraction / jnp.maximum(growth, self.floor), t1 - t0), (v, t1)

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
        v, t_end = controller_state
        v, growth = self._power(y1_candidate, v)
        next_t1 = jnp.minimum(t1 + self.fraction / jnp.maximum(growth, self.floor), t_end)
        return True, t1, next_t1, False, (v, t_end), diffrax.RESULTS.successful

    def _power(self, y, v):
        """One power-iteration step: (Kv/|Kv|, |Kv|) for a unit v (|Kv| ≤ λ_max, → λ_max)."""
        w = self.ntk_matvec(y, v)
        growth = jnp.linalg.norm(w)
        return jnp.where(growth > 0, w / jnp.where(growth > 0, growth, 1), v), growth
