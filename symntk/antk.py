"""aNTK: gradient flow with weight decay of a two-layer network in the feature-learning limit
(theory/adaptive.md A1–A2, T1–T6) — the mean-field particle dynamics, run to its fixed point.

Network f = w·φ(h)/(γ₀N), h = W⁰x/√D; gradient flow dθ/dt = −[γ₀²N ∇𝓛 + λθ] on the sum loss
𝓛 = ½Σ_μ(f_μ − y_μ)².  At N → ∞ every hidden unit is a particle (h ∈ R^{P+Q} over the training
and test points, readout z), and with Δ = y − f on the training points

    dh/dt = γ₀ Kˣ(·, X)(z φ'(h) ⊙ Δ) − λh,    dz/dt = γ₀ φ(h)·Δ − λz,
    f(x) = ⟨φ(h(x)) z⟩/γ₀,   f(x, 0) = 0 (antithetic pairs (h, ±z))   (T5, centred output)

integrated with diffrax — Tsit5 with adaptive steps, or the semi-implicit Euler of
:mod:`symntk.solve.semi_implicit` (output modes implicit: steps not bounded by λ_max(K)), the only
choice for relu, leaky_relu, abs, which slide along the kink with Filippov slopes g = zs — until the fixed-point
residuals T4 — ‖λh − γ₀Kˣ(g ⊙ Δ)‖ and ‖λz − γ₀φΔ‖ over the particles, relative to λ‖h(0)‖ and
λ‖z(0)‖ (so that a collapse to h = z = 0 below the T6 threshold also counts as converged) — fall below ``tol``.
Predictor T3 in its two forms, Φ¹(x, X)[Φ¹ + λI]⁻¹y and K(x, X)[K + κλI]⁻¹y with the NTK
K = Φ¹ + G¹ ⊙ Kˣ (T1, G¹ = ⟨ggᵀ⟩, g = zφ'(h)) and κ = 1 + k the output's degree of homogeneity
(φ homogeneous of degree k, found symbolically; None otherwise).  Depth ≥ 2 (or
``method="dmft"``): the deep DMFT of T5 with response functions, in :mod:`symntk.dmft`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from scipy.optimize import brentq

from . import dmft
from .activation import activation as parse, x as x_symbol
from .errors import ConvergenceError, DataError
from .gaussian import derive
from .kernels import _check_x, _dot
from .solve import semi_implicit

STEP_FRACTION = 0.5  # semi-implicit steps without ``dt``: this fraction of 1/(explicit per-particle rate)


def homogeneity_degree(act) -> int | None:
    """k with φ(αx) = α^k φ(x) for all α > 0 (Heaviside(αu) = Heaviside(u)), or None."""
    alpha = sp.Symbol("alpha", positive=True)
    phi = parse(act).expr
    scaled = phi.subs(x_symbol, alpha * x_symbol).replace(sp.Heaviside, lambda u, *rest: sp.Heaviside(u / alpha))
    ratio = sp.simplify(scaled / phi)
    if ratio.has(x_symbol):
        return None
    k = sp.simplify(sp.log(ratio) / sp.log(alpha))
    return int(k) if k.is_Integer else None


def output_degree(k, depth) -> int | None:
    """κ of T2: deg h¹ = 1, deg hˡ⁺¹ = 1 + k·deg hˡ, κ = 1 + k·deg hᴸ (None when k is None)."""
    if k is None:
        return None
    degree = 1
    for _ in range(depth - 1):
        degree = 1 + k * degree
    return 1 + k * degree


def linear_fixed_point(kx_cross, kx, y, gamma0, lam, depth):
    """The t → ∞ predictor of a deep linear network (φ(h) = h, ``depth`` hidden layers) trained by
    gradient flow with weight decay, at the inputs of ``kx_cross`` = Kˣ(x, X) (derivations/antk.md):
    ridge regression f(x) = c Kˣ(x, X)(I + cKˣ)⁻¹y whose ridge 1/c solves
    λc^{q−1} = γ₀^{2−q} m(c)^{1−q/2}, q = 2/(L+1), m(c) = rᵀKˣr, r = (I + cKˣ)⁻¹y (the larger root:
    the stable one; for L ≥ 2, f = 0 is a stable fixed point too)."""
    q = 2 / (depth + 1)

    def gap(log_c):
        c = np.exp(log_c)
        r = np.linalg.solve(np.eye(len(y)) + c * kx, y)
        return (2 - q) * np.log(gamma0) + (1 - q / 2) * np.log(r @ kx @ r) - np.log(lam) - (q - 1) * log_c

    grid = np.linspace(-20, 20, 4001)
    values = np.array([gap(a) for a in grid])
    top = np.argmax(values)
    if values[top] <= 0:
        raise DataError(f"γ₀ = {gamma0}, λ = {lam}: below the threshold, the network collapses to f = 0")
    if not np.any(values[top:] < 0):
        raise DataError("no root of the ridge equation for c ≤ e^20: the labels are fit with a vanishing ridge")
    j = top + np.argmax(values[top:] < 0)
    c = np.exp(brentq(gap, grid[j - 1], grid[j], xtol=1e-14))
    return c * kx_cross @ np.linalg.solve(np.eye(len(y)) + c * kx, y)


@dataclass(frozen=True)
class Solution:
    """Two-layer aNTK fixed point (training points first, then test points, in every point axis).

    ``times``, ``outputs`` (n_t, P + Q): the centred output f through time; ``t_final``: where the
    flow stopped (the final state's time); ``train_loss``: ½ mean
    squared training error at ``times``; ``phi`` (Φ¹), ``g`` (G¹), ``ntk`` (K = Φ¹ + G¹ ⊙ Kˣ):
    final kernels; ``output``: final f; ``kernel_form``, ``ntk_form``: the T3 predictor in its two
    forms (``ntk_form`` None when φ is not homogeneous); ``residual``: the T4 residuals (h, z);
    ``result``: "successful" or "max_steps_reached"; ``h`` (M, P + Q), ``z`` (M,): the particles;
    ``slopes`` (M, P): each particle's φ' on the training points (for a piecewise-linear φ the
    Filippov value in [s_L, s_R] where it slides along the kink); ``kx``: the input kernel Kˣ;
    ``state_at``: t ↦ the particles (h, z, slopes) at time t.
    """

    times: np.ndarray
    t_final: float
    outputs: np.ndarray
    train_loss: np.ndarray
    phi: np.ndarray
    g: np.ndarray
    ntk: np.ndarray
    output: np.ndarray
    kernel_form: np.ndarray
    ntk_form: np.ndarray | None
    residual: tuple
    result: str
    h: np.ndarray
    z: np.ndarray
    slopes: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    model: "WeightDecayMLP"
    kx: np.ndarray
    state_at: Callable

    def kernels_at(self, t):
        """(Φ¹, G¹, K) at time ``t`` of the flow (t = 0: the Gaussian initialisation), from the same
        integration replayed from 0 to t without the stopping rule (the same steps), so at ``t_final``
        they are ``phi``, ``g``, ``ntk`` exactly."""
        if not (np.isfinite(t) and t >= 0):
            raise DataError(f"t must be finite and ≥ 0, got {t!r}")
        return self.model._kernels(*self.state_at(float(t)), self.kx)

    @property
    def form_disagreement(self) -> float:
        """max |kernel_form − ntk_form| (nan without a homogeneity degree)."""
        return np.nan if self.ntk_form is None else float(np.max(np.abs(self.kernel_form - self.ntk_form)))

    def preactivation_density(self, layer=1, point=0):
        """Samples of the single-site density of h at data point ``point`` (the particles)."""
        if layer != 1:
            raise DataError("the two-layer solver has one hidden layer")
        return self.h[:, point]

    def predict(self, x_new):
        """T3 at new inputs: each particle's h(x) from the fixed-point condition T4,
        h(x) = (γ₀/λ) Kˣ(x, X)(g ⊙ Δ) with g = z·``slopes`` (φ'(h), Filippov on a kink), then
        Φ¹(x, X)[Φ¹ + λI]⁻¹y."""
        x_new = jnp.asarray(_check_x("x_new", x_new), dtype=float)
        kx_cross = np.asarray(_dot(x_new, jnp.asarray(self.x_train)))
        g = self.z[:, None] * self.slopes
        return dmft.t4_predict(self.model, [self.h], [g], kx_cross, self.y_train, self.output, self.phi)


class WeightDecayMLP:
    """Network of ``activation`` with ``depth`` hidden layers in the aNTK limit: feature-learning
    strength ``gamma0`` (γ₀ > 0), weight decay ``lam`` (λ > 0); ``particles`` hidden units of the
    two-layer solver, or Monte-Carlo samples of the single-site processes of the DMFT."""

    def __init__(self, activation, depth=1, gamma0=1.0, lam=1e-2, particles=10_000, seed=0):
        if not (isinstance(depth, (int, np.integer)) and depth >= 1):
            raise DataError(f"depth must be an integer ≥ 1, got {depth!r}")
        if not (isinstance(particles, (int, np.integer)) and particles >= 2 and particles % 2 == 0):
            raise DataError(f"particles must be an even integer ≥ 2 (antithetic pairs), got {particles!r}")
        if not (gamma0 > 0 and np.isfinite(gamma0) and lam > 0 and np.isfinite(lam)):
            raise DataError(f"gamma0 and lam must be finite and > 0, got {gamma0}, {lam}")
        self.dual = derive(activation)
        self.activation, self.depth, self.gamma0, self.lam = self.dual.activation, int(depth), float(gamma0), float(lam)
        self.particles, self.seed = int(particles), seed
        k = homogeneity_degree(self.activation)
        self.kappa = output_degree(k, self.depth)
        mod = self.dual.module()
        self._phi, self._dphi = mod.phi, mod.dphi
        # a piecewise-linear φ with its kink at 0: its slopes (s_L, s_R), for the sliding step
        self._bounds = (float(self._dphi(-1.0)), float(self._dphi(1.0))) if k == 1 and self.kinked else None

    @property
    def kinked(self) -> bool:
        """φ' jumps (relu, abs, leaky_relu, selu, …): on several points the fixed point has particles
        sliding along the kink (derivations/antk.md)."""
        return self.activation.derivative.has(sp.Heaviside, sp.sign)

    @property
    def sliding(self) -> bool:
        """φ is piecewise linear with its kink at 0 (relu, leaky_relu, abs): the particle solver steps it
        with :mod:`symntk.solve.semi_implicit`, whose fixed point is T4 with the Filippov slopes.  Other
        kinked φ use Tsit5, whose steps crawl or (fixed) chatter across the kink."""
        return self._bounds is not None

    def solve(self, x_train, y_train, x_test=None, tol=1e-6, rtol=1e-5, t_max=None, max_steps=200_000,
              dt=None, throw=True, method=None, integrator=None, n_times=50, response_samples=256, damping=0.7,
              max_iter=2000):
        """Two-layer particle solver (``method="particles"``, the default at depth 1): run T5 from
        the Gaussian initialisation (h ~ N(0, Kˣ), z ~ N(0, 1), in antithetic pairs (h, ±z) so that
        f(·, 0) = 0 exactly and both T3 forms hold at the fixed point for any number of particles)
        until both T4 residuals are below ``tol`` (or ``t_max``, default 200/λ).
        ``integrator``: "tsit5" (the default for a smooth φ: diffrax Tsit5, adaptive steps with
        relative tolerance ``rtol``, absolute 1e-3 rtol; the residual floors near the integration
        error, so a small ``tol`` needs a small ``rtol``, 1e-9 for 1e-5) or "semi-implicit"
        (:mod:`symntk.solve.semi_implicit`, the only choice for a piecewise-linear φ with its kink at 0,
        :attr:`sliding`): first order, its fixed point T4 exactly at any step, with the output modes
        implicit, so its steps are 0.5/max(rate, λ), ``rate`` the explicit per-particle rate (≈ λ near
        the fixed point), not bounded by λ_max(K) as Tsit5's are: far fewer steps to the fixed point,
        a coarser trajectory on the way.  ``dt``: fixed steps of that size instead.
        Returns a :class:`Solution`.

        DMFT (``method="dmft"``, the default at depth ≥ 2; :mod:`symntk.dmft`): the kernels on the
        grid ``dmft.time_grid(t_max, n_times)`` (t_max default 5/λ: e^{−5} of the initialisation left),
        iterated with ``damping`` until they change by less than ``tol`` (at most ``max_iter``
        iterations); responses averaged over ``response_samples`` of the samples.  The grid must
        resolve the feature dynamics where they are fast (the grid's geometric start does); an
        iteration that does not converge raises (derivations/antk.md).  Returns a
        :class:`symntk.dmft.DMFTSolution` with the T4 residuals at t_max."""
        xtr = _check_x("x_train", x_train).astype(float)
        y = np.asarray(y_train, dtype=float)
        if y.shape != (len(xtr),):
            raise DataError(f"y_train must have shape ({len(xtr)},), got {y.shape}")
        xall = xtr if x_test is None else np.concatenate([xtr, _check_x("x_test", x_test).astype(float)])
        method = method or ("particles" if self.depth == 1 else "dmft")
        if method == "dmft":
            if dt is not None or integrator is not None:
                raise DataError("dt and integrator set the particle solver's steps; the DMFT's grid is t_max and "
                                "n_times")
            times = dmft.time_grid(5.0 / self.lam if t_max is None else float(t_max), n_times)
            return dmft.solve(self, xtr, y, xall, times, self.particles, response_samples, tol, max_iter,
                              damping, self.seed, throw)
        if method != "particles" or self.depth != 1:
            raise DataError(f"method must be 'dmft', or 'particles' at depth 1; got {method!r} at depth {self.depth}")
        allowed = ("semi-implicit",) if self.sliding else ("tsit5", "semi-implicit")
        integrator = integrator or allowed[0]
        if integrator not in allowed:
            raise DataError(f"integrator must be one of {allowed} for {self.activation.expr}, got {integrator!r}")
        P, kx = len(xtr), np.asarray(_dot(jnp.asarray(xall), jnp.asarray(xall)))
        ev, U = np.linalg.eigh(kx)
        keep = ev > 1e-12 * ev[-1] * len(ev)  # numerical rank r ≤ min(D, P + Q)
        B = U[:, keep] * np.sqrt(ev[keep])  # Kˣ = B Bᵀ: h = a Bᵀ with a ∈ R^r per particle
        k1, k2 = jax.random.split(jax.random.PRNGKey(self.seed))
        half = self.particles // 2  # antithetic pairs (h, z), (h, −z): f(·, 0) = 0 exactly
        a0, z0 = jax.random.normal(k1, (half, B.shape[1])), jax.random.normal(k2, (half,))
        a0, z0 = jnp.concatenate([a0, a0]), jnp.concatenate([z0, -z0])
        t_max = 200.0 / self.lam if t_max is None else float(t_max)
        run = _compiled(self._phi, self._dphi, P, max_steps, dt is not None, self._bounds, integrator)
        args = (self.gamma0, self.lam, jnp.asarray(B), jnp.asarray(y), a0, z0)
        steps = (rtol, 1.0 if dt is None else float(dt))
        times, outputs, h, z, slopes, res, stopped, t_final = (np.asarray(a) for a in run(*args, tol, t_max, *steps))

        def state_at(t):
            """(h, z, slopes) at time t: the integration from 0 to t with no stopping event (tol < 0)."""
            if t == 0:
                return np.asarray(a0 @ B.T), np.asarray(z0), self._slopes(np.asarray(a0 @ B[:P].T))
            return tuple(np.asarray(a) for a in run(*args, -1.0, t, *steps)[2:5])

        if not (np.all(np.isfinite(outputs[np.isfinite(times)])) and np.all(np.isfinite(res))):
            raise ConvergenceError("the particle dynamics diverged (non-finite outputs)"
                                   + (f": the fixed step dt = {dt:g} is unstable, halve it" if dt else ""))
        result = "successful" if stopped else "max_steps_reached"
        Phi, G, K = self._kernels(h, z, slopes, kx)
        if result != "successful" and throw:
            stability = "" if dt is None or integrator != "tsit5" else (f"; with the fixed step, dt·λ_max(K) = "
                                               f"{dt * np.linalg.eigvalsh(K[:P, :P])[-1]:.2g} must stay below 2")
            raise ConvergenceError(f"the particle dynamics did not reach the T4 residual tol = {tol:g} by t = "
                                   f"{t_max:g} (residuals {res[0]:.2g}, {res[1]:.2g}){stability}; raise t_max or "
                                   f"max_steps, or pass throw=False")
        keep = np.isfinite(times)
        times, outputs = times[keep], outputs[keep]
        kernel_form, ntk_form = dmft.t3_forms(Phi, K, y, self.lam, self.kappa)
        train_loss = 0.5 * np.mean((outputs[:, :P] - y) ** 2, axis=1)
        return Solution(times, float(t_final), outputs, train_loss, Phi, G, K, outputs[-1], kernel_form, ntk_form,
                        tuple(float(r) for r in res), result, h, z, slopes, xtr, y, self, kx, state_at)

    def _slopes(self, h):
        """φ'(h) as an array of h's shape."""
        return np.broadcast_to(np.asarray(self._dphi(h)), np.shape(h))

    def _kernels(self, h, z, slopes, kx):
        """T1 from the particles: Φ¹ = ⟨φ(h)φ(h)ᵀ⟩, G¹ = ⟨ggᵀ⟩, K = Φ¹ + G¹ ⊙ Kˣ, with g = zφ'(h)
        and φ' on the training columns the particles' ``slopes`` (M, P) (Filippov values on a kink)."""
        P = slopes.shape[1]
        phi_h = np.asarray(self._phi(h))
        g = z[:, None] * np.concatenate([slopes, self._slopes(h[:, P:])], axis=1)
        Phi, G = phi_h.T @ phi_h / len(z), g.T @ g / len(z)
        return Phi, G, Phi + G * kx


@lru_cache(maxsize=None)
def _compiled(phi, dphi, P, max_steps, fixed_step, bounds, integrator):
    """The jitted particle solver for one activation (generated φ, φ'), training-set size, step budget
    and integrator.

    The state is (a, z) with h = a Bᵀ, Kˣ = B Bᵀ (B: (P + Q) × r): dh/dt = γ₀Kˣ(·, X)(g ⊙ Δ) − λh is
    da/dt = γ₀(g ⊙ Δ)B_X − λa, so a step costs O(M P r) instead of O(M P (P + Q)).  With ``bounds``
    = (s_L, s_R), the slopes of a piecewise-linear φ with its kink at 0, the state is (a, z, s), s the
    slopes on the training columns (Filippov values on a kink), stepped by :mod:`.solve.semi_implicit`.
    """

    @jax.jit
    def run(gamma0, lam, B, y, a0, z0, tol, t_max, rtol, dt):
        M, BX = a0.shape[0], B[:P]
        scale_h, scale_z = jnp.linalg.norm(a0 @ BX.T), jnp.linalg.norm(z0)  # residuals relative to the initial scale

        def training(a, z):
            """h on the training columns and the training error Δ = y − f."""
            h = a @ BX.T
            return h, y - phi(h).T @ z / (M * gamma0)

        def slopes_of(state, h):
            """φ' on the training columns: φ'(h), or the slopes the sliding step carries in the state."""
            return semi_implicit.slope(dphi, h) if bounds is None else state[2]

        def field(t, state, args):
            a, z = state[:2]
            h, delta = training(a, z)
            slopes = slopes_of(state, h)
            return (gamma0 * (z[:, None] * slopes * delta) @ BX - lam * a, gamma0 * phi(h) @ delta - lam * z,
                    *([] if bounds is None else [jnp.zeros_like(slopes)]))

        def residual(state):
            field_a, field_z = field(None, state, None)[:2]  # λh − γ₀Kˣ(g ⊙ Δ) = −(field of a) B_Xᵀ
            return jnp.stack([jnp.linalg.norm(field_a @ BX.T) / (lam * scale_h),
                              jnp.linalg.norm(field_z) / (lam * scale_z)])

        def output(t, state, args):
            a, z = state[:2]
            return phi(a @ B.T).T @ z / (M * gamma0)  # f(·, 0) = 0: antithetic pairs

        def rate(state):
            a, z = state[:2]
            h, delta = training(a, z)
            return semi_implicit.rate(z, slopes_of(state, h), h, delta, BX, gamma0, dphi)

        if fixed_step:
            controller = diffrax.ConstantStepSize()
        elif integrator == "tsit5":
            controller = diffrax.PIDController(rtol=rtol, atol=1e-3 * rtol)
        else:
            controller = semi_implicit.StableSteps(rate, STEP_FRACTION, lam)
        common = dict(BX=BX, training=training, gamma0=gamma0, lam=lam, phi=phi)
        if integrator == "tsit5":
            solver, state0 = diffrax.Tsit5(), (a0, z0)
        elif bounds is None:
            solver = semi_implicit.SemiImplicitEuler(partial(semi_implicit.smooth_step, dphi=dphi, **common))
            state0 = (a0, z0)
        else:
            solver = semi_implicit.SemiImplicitEuler(partial(semi_implicit.step, bounds=bounds, **common))
            state0 = (a0, z0, semi_implicit.slope(dphi, a0 @ BX.T))
        ts = jnp.concatenate([jnp.zeros(1), jnp.geomspace(1e-3, 1.0, 79) * t_max])
        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts, fn=output), diffrax.SubSaveAt(t1=True)])
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), solver, 0.0, t_max, dt if fixed_step else 1e-3 / (1 + gamma0), state0,
            saveat=saveat, max_steps=max_steps, stepsize_controller=controller,
            event=diffrax.Event(lambda t, s, a, **kw: jnp.max(residual(s)) < tol), throw=False)
        outputs, final = sol.ys
        final = tuple(v[-1] for v in final)
        times = jnp.where(ts <= sol.ts[1][-1], ts, jnp.inf)
        res = residual(final)
        slopes = slopes_of(final, final[0] @ BX.T)
        return times, outputs, final[0] @ B.T, final[1], slopes, res, jnp.max(res) < tol, sol.ts[1][-1]

    return run
