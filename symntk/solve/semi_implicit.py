"""Semi-implicit Euler for the two-layer aNTK particle flow (theory/adaptive.md T5; derivations/antk.md):
weight decay and the output feedback implicit, so that steps are not bounded by λ_max of the NTK;
for a piecewise-linear φ with its kink at 0 (relu, leaky_relu, abs) the slopes on attracting kinks
are implicit too, and particles slide along those kinks (Filippov) instead of chattering across them.

A particle (a, z) has h = aB_Xᵀ on the training points, K = B_X B_Xᵀ = Kˣ(X, X) and slopes s = φ'(h)
(for a piecewise-linear φ, s_L or s_R on either side of 0).  With d = 1/(1 + λdt) and v = d dt γ₀ z Δ̂,

    z⁺ = d (z + dt γ₀ φ(h)·Δ̂),   a⁺ = d a + (v ⊙ s) B_X,   so   h⁺ = d h + K(v ⊙ s).

The output feedback is linearly implicit: Δ̂ is the training error after the step to first order,
Δ̂ = Δ − J(u⁺ − u) with J the output's Jacobian at the current slopes, which is

    (I + c Θ) Δ̂ = Δ + c λ ⟨z(φ(h) + s ⊙ h)⟩/γ₀,   c = d dt,   Θ = ⟨φφᵀ⟩ + ⟨ggᵀ⟩ ⊙ K  (g = zs),

Θ the NTK at the current state.  At a stationary state λ⟨z(φ + s ⊙ h)⟩/γ₀ = ΘΔ (J applied to T4), so
Δ̂ = Δ there: the fixed point is unchanged, and the output modes, whose rates λ_max(Θ) grow with P
(≈ 2000 on 1000 digits), no longer bound the step.  What does is the explicit per-particle part,
the coupling of a and z through Δ̂ and, for a curved φ, of a with itself through φ'' (:func:`rate`).

For a smooth φ, s = φ'(h) (:func:`smooth_step`).  For a piecewise-linear one (:func:`step`): where a
kink repels (v_μ(s_R − s_L) ≥ 0) s_μ = φ'(h_μ) (explicit).  Where it attracts, s_μ is implicit,
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
import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve

SWEEPS = 1  # coordinate-descent sweeps per step; warm starts converge them over the steps near a fixed point


def slope(dphi, h):
    """φ'(h) as an array of h's shape and dtype (the generated φ' of a linear φ is a constant)."""
    return jnp.broadcast_to(jnp.asarray(dphi(h), h.dtype), h.shape)


def smooth_step(state, dt, BX, training, gamma0, lam, phi, dphi):
    """One step (a, z) → (a⁺, z⁺) of the scheme above for a smooth φ; ``training(a, z)`` = (h, Δ) on
    the training points."""
    a, z = state
    h, delta = training(a, z)
    s = slope(dphi, h)
    d, v, z_new = _implicit_part(z, s, h, delta, dt, BX, gamma0, lam, phi)
    return d * a + (v * s) @ BX, z_new


def step(state, dt, BX, training, gamma0, lam, phi, bounds):
    """One step (a, z, s) → (a⁺, z⁺, s⁺) of the scheme above for a piecewise-linear φ; s (M, P) the
    slopes φ' on the training columns, ``training(a, z)`` = (h, Δ), ``bounds`` = (s_L, s_R)."""
    a, z, s = state
    lo, hi = bounds
    h, delta = training(a, z)
    d, v, z_new = _implicit_part(z, s, h, delta, dt, BX, gamma0, lam, phi)
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
    return d * a + u, z_new, s_t.T


def _implicit_part(z, s, h, delta, dt, BX, gamma0, lam, phi):
    """(d, v, z⁺): d = 1/(1 + λdt), c = d dt, v = c γ₀ z Δ̂, z⁺ = d(z + dt γ₀ φ(h)·Δ̂), and Δ̂ from
    (I + cΘ)Δ̂ = Δ + cλ⟨z(φ(h) + s ⊙ h)⟩/γ₀ (above; Θ = ⟨φφᵀ⟩ + ⟨ggᵀ⟩ ⊙ B_X B_Xᵀ, g = zs) in the form
    Δ̂ = Δ − c(I + cΘ̃)⁻¹ḟ, ḟ = ΘΔ − λ⟨z(φ + s ⊙ h)⟩/γ₀ the output's velocity (float64 products) and
    Θ̃ = Θ formed in float32: 4× cheaper at P = 1000, and where ḟ = 0, at the fixed point, Δ̂ = Δ
    exactly whatever Θ̃."""
    M, f, g, d = len(z), phi(h), z[:, None] * s, 1 / (1 + lam * dt)
    velocity = (f.T @ (f @ delta) + jnp.sum(g * (((g * delta) @ BX) @ BX.T), axis=0)
                - lam * (f.T @ z + jnp.sum(g * h, axis=0)) / gamma0) / M
    f32, g32, b32 = (u.astype(jnp.float32) for u in (f, g, BX))
    ntk = ((f32.T @ f32 + (g32.T @ g32) * (b32 @ b32.T)) / M).astype(h.dtype)
    delta = delta - d * dt * solve(jnp.eye(len(delta)) + d * dt * ntk, velocity, assume_a="pos")
    return d, (d * dt * gamma0 * z)[:, None] * delta, d * (z + dt * gamma0 * f @ delta)


def rate(z, s, h, delta, BX, gamma0, dphi):
    """The fastest explicit per-particle rate of the scheme: γ₀ max_i [|(s_i ⊙ Δ)B_X| (a ↔ z through Δ)
    + |z_i| Σ_μ |φ''(h_iμ)Δ_μ| Kˣ_μμ (a ↔ a through φ'', a bound on |z_i B_Xᵀ diag(φ''Δ) B_X|)];
    ≤ λ at a fixed point of a piecewise-linear φ, where a growing unit would not be stationary."""
    curvature = jax.jvp(lambda u: slope(dphi, u), (h,), (jnp.ones_like(h),))[1]
    k_diag = jnp.sum(BX * BX, axis=1)
    return gamma0 * jnp.max(jnp.linalg.norm((s * delta) @ BX, axis=1)
                            + jnp.abs(z) * (jnp.abs(curvature * delta) @ k_diag))


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
    """Steps dt = ``fraction``/max(``rate(y)``, ``floor``), ``rate`` the fastest explicit per-particle
    rate (:func:`rate`; the output modes are implicit).  It is large while the features grow and
    falls to about λ near the fixed point, where ``floor`` = λ caps the steps at ``fraction``/λ."""

    rate: Callable
    fraction: float
    floor: float

    def wrap(self, direction):
        return self

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        return t0 + jnp.minimum(self._dt(y0), t1 - t0), t1

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, t_end):
        next_t1 = jnp.minimum(t1 + self._dt(y1_candidate), t_end)
        return True, t1, next_t1, False, t_end, diffrax.RESULTS.successful

    def _dt(self, y):
        return self.fraction / jnp.maximum(self.rate(y), self.floor)
