"""aNBK: the Bayesian feature-learning kernels of a deep network, the saddle point of the action B2
(theory/adaptive.md A1, B1–B6; derivation in :mod:`symntk.recursion.anbk` and derivations/anbk.md).

The saddle point is a fixed point of the dual kernels Φ̂ = (Φ̂¹..Φ̂ᴸ) under the map G:

1. forward (B4): for ℓ = 1..L, samples h of N(0, Φˡ⁻¹) (Φ⁰ = Kˣ: h¹ = Xw/√D, w ~ N(0, I_D); below,
   h = Cz with CCᵀ = Φˡ⁻¹, z ~ N(0, I_P)), self-normalised weights w_s ∝ b_s e^{−½φ(h_s)ᵀΦ̂ˡφ(h_s)}
   (log-sum-exp; b_s the sampler's own weights) and

       Φˡ = V(Φˡ⁻¹) + Σ_s (w_s − b_s) φ(h_s)φ(h_s)ᵀ

   — the Gaussian average V (the dual activation, exact, from the derivation engine's generated
   code) plus the tilt's correction by importance sampling: a control variate whose error
   vanishes with Φ̂, so Φ̂ = 0 gives the NNGP kernels exactly;
2. backward: Φ̂ᴸ = −γ₀² a aᵀ, a = (Φᴸ + β⁻¹I)⁻¹y (B6), and for ℓ < L B5, Φ̂ˡ = (Φˡ)⁻¹ − (Φˡ)⁻¹⟨hhᵀ⟩(Φˡ)⁻¹
   over layer ℓ + 1's tilted law, e^{−T(h)}, T = ½φ(h)ᵀΦ̂ˡ⁺¹φ(h).  For φ with continuous φ' and φ''
   (tanh, erf, GELU, …) it is evaluated after Gaussian integration by parts (Stein's lemma, twice),

       Φ̂ˡ = ⟨∇²T − ∇T∇Tᵀ⟩ = 𝓗ᵀ[Φ̂ˡ⁺¹] + Σ_s (w_s − b_s)∇²T(h_s) − Σ_s w_s ∇T∇Tᵀ(h_s),

   ∇T = φ'⊙Φ̂ˡ⁺¹φ, ∇²T = Φ̂ˡ⁺¹⊙φ'φ'ᵀ + diag(φ''⊙Φ̂ˡ⁺¹φ), 𝓗ᵀ its exact Gaussian average (the
   transposed Jacobian of the layer map, from the engine): no (Φˡ)⁻¹ multiplies the sampling noise,
   which the direct form, Φ̂ˡ = C⁻ᵀ(Σ_s (b_s − w_s) z_s z_sᵀ)C⁻¹ (Φˡ = CCᵀ, h = Cz, ⟨zzᵀ⟩_b for I),
   amplifies by up to cond(Φˡ).  Where φ'' jumps (ELU) the diagonal is taken after one integration by
   parts, diag(⟨∇T zᵀ⟩C⁻¹): C⁻¹ once, on P entries only.  Where φ' jumps (ReLU, leaky ReLU, |x|) the
   direct form remains: the sampled φ' at points h = Cz that move with Φ̂ would make G jump
   (:func:`_integrations_by_parts`).

The samples are drawn once per proposal (common random numbers: G is then a smooth deterministic
map), scrambled Sobol points by default.  Φ̂ = G(Φ̂) is solved by continuation in s = γ₀² from the
lazy point Φ̂ = 0 (secant predictor, step length controlled by the corrector's convergence and the
ESS) with a Newton–Krylov corrector (GMRES on jvps of G, line search, one ``lax.while_loop``):
fixed-point iteration, even Anderson-accelerated, diverges at moderate γ₀ even on the exact map
(derivations/anbk.md, "Strong tilt").  After each step every layer's samples are redrawn from a
Gaussian proposal fitted to the tilted second moment (:func:`_fit_proposal`), and where layer 1's
weights stay uneven its points are replaced by particles of its tilted law (resample-move,
:func:`_particles`, with a telescoping control variate).  It stops on the
stationarity residual ‖G(Φ̂) − Φ̂‖_F/‖G(Φ̂)‖_F (B5–B6; B4 holds by construction).  The min–max of
paper Algorithm 1 reaches the same stationary point by gradient steps on S;
benchmarks/bench_anbk.py compares them.

Failure modes are checked, not hidden: the effective sample size of every layer's weights
(``min_ess``), and for φ of at most linear growth the normalisability of every single-site
density — asymptotically φ(h) ~ φ∞(h) = a₊ relu(h) + a₋ relu(−h), so Z_ℓ is finite iff
max over unit z of −φ∞(Cz)ᵀΦ̂ˡφ∞(Cz) < 1 (maximised over the sample directions, refined by
projected gradient ascent); faster-growing φ make the last-layer tilt e^{γ₀²(a·φ)²/2} diverge for
every γ₀ > 0 and are refused.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jax.scipy.linalg import solve_triangular
from scipy.special import ndtri
from scipy.stats import qmc

from .activation import x as x_symbol
from .errors import ConvergenceError, DataError, DivergentIntegralError
from .gaussian import derive
from .kernels import _check_x, _dot
from .solve.krylov import gmres

SAMPLERS = ("qmc", "mc", "gauss-hermite")
RESULTS = ("successful", "max_steps_reached", "sampling_degenerate", "first_order")
ROUND_TOL = 1e-3  # residual to which the continuation solves before γ₀
NEWTON_STEPS = 8  # Newton steps per continuation step (converging ones need 2–5)
KRYLOV = 20  # GMRES restart length
JACOBIAN_DTYPE = jnp.float32  # Newton's matrix linearises G with its sample products in this dtype (_solve)
LINE_SEARCH = 6  # halvings of a Newton step tried
ESS_DROP = 0.5  # a continuation step may lower a layer's ESS to this fraction of its value at the step's start
MIN_STEP = 2.0**-8  # smallest continuation step, as a fraction of γ₀²: below it the branch is lost
PROPOSAL_INFLATION = 1.2  # adapted proposals are this much wider than the tilted density's second moment
PARTICLES = 1 / 8  # a layer whose ESS stays below this fraction of the samples after a refit is resampled and moved
PCN_STEPS = 32  # MCMC steps of a resample-move
PCN_ACCEPT = 0.3  # acceptance rate the MCMC step length is adapted towards


@lru_cache(maxsize=None)
def asymptotic_slopes(expr) -> tuple | None:
    """(a₊, a₋) with φ(r) ~ a₊ r and φ(−r) ~ a₋ r as r → ∞ (SymPy limits): (0, 0) for sublinear φ,
    None for faster-than-linear growth (or a limit SymPy cannot take)."""
    r = sp.Symbol("r", positive=True)
    try:
        slopes = [sp.limit(expr.subs(x_symbol, s * r) / r, r, sp.oo) for s in (1, -1)]
    except (NotImplementedError, ValueError):  # pragma: no cover - SymPy gave up
        return None
    if not all(s.is_finite for s in slopes):
        return None
    return tuple(float(s) for s in slopes)


def _integrations_by_parts(act) -> int:
    """How many Gaussian integrations by parts B5 takes for φ = ``act`` (:func:`_b5_stein`): the number of
    φ's derivatives that are continuous, at most 2 (0: :func:`_b5_direct`).  After k of them B5 samples
    φ⁽ᵏ⁾ at points h = Cz that move with Φ̂; a jump of φ⁽ᵏ⁾ would make the sampled map G jump, and
    Newton stalls at the size of its jumps (ReLU with k = 1: residual 1e-3 on six points, 2¹² samples).
    A jump can only sit where a Heaviside factor switches; it is found from one-sided values 10⁻³⁰ off
    the switch (``sp.limit`` hangs on nested Heavisides).  Nested switches (a clipped φ such as
    min(relu(x), 6), whose switch points SymPy cannot solve for) take the direct form, valid for any φ."""
    if any(h.args[0].has(sp.Heaviside) for h in act.expr.atoms(sp.Heaviside)):
        return 0
    side = sp.Rational(1, 10**30)

    def jumps(expr):
        points = {r for h in expr.atoms(sp.Heaviside) for r in sp.solve(h.args[0], x_symbol)}
        step = lambda r: expr.xreplace({x_symbol: r + side}) - expr.xreplace({x_symbol: r - side})  # noqa: E731
        return any(abs(float(step(r).evalf(30))) > 1e-20 for r in points)  # a continuous φ moves by O(1e-30) there
    d1 = act.derivative
    d2 = sp.diff(d1, x_symbol).replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))
    return 0 if jumps(act.expr) or jumps(d1) else 1 if jumps(d2) else 2


def _normals(sampler, n, dim, seed):
    """(z (n, dim), log b (n,)): standard normal points and their log-weights (normalised)."""
    if sampler == "qmc":
        m = int(np.ceil(np.log2(n)))
        u = qmc.Sobol(dim, scramble=True, seed=np.random.default_rng(seed)).random_base2(m)
        z = ndtri(np.clip(u, 1e-300, 1 - 1e-16))
    elif sampler == "mc":
        z = np.random.default_rng(seed).standard_normal((n, dim))
    else:
        k = max(2, int(round(n ** (1 / dim))))
        nodes, weights = np.polynomial.hermite_e.hermegauss(k)
        z = np.stack(np.meshgrid(*[nodes] * dim, indexing="ij"), -1).reshape(-1, dim)
        logb = np.sum(np.log(np.stack(np.meshgrid(*[weights] * dim, indexing="ij"), -1).reshape(-1, dim)), 1)
        return z, logb - np.logaddexp.reduce(logb)
    return z, np.full(len(z), -np.log(len(z)))


def _mean_square(mod, q):
    """E[φ(h)²] for h ~ N(0, q), elementwise in q (the dual activation's diagonal)."""
    return mod.diagonal(mod.features(q))[0]


def _layer_map(mod, sigma):
    """V(Σ): the Gaussian average E[φ(h)φ(h)ᵀ], h ~ N(0, Σ), with the exact diagonal."""
    q = jnp.diagonal(sigma)
    V = mod.dual(q[:, None], sigma, q[None, :])[0]
    i = jnp.arange(len(q))
    return V.at[i, i].set(_mean_square(mod, q))


def _rows_map(mod, q_t, c, q_x):
    """E[φ(h_t)φ(h_x)] for test variances q_t (Q,), cross-covariances c (Q, P), train variances q_x (P,),
    and E[φ(h_t)²] (Q,)."""
    return mod.dual(q_t[:, None], c, q_x[None, :])[0], _mean_square(mod, q_t)


def _layer_map_transpose(mod, sigma, m):
    """𝓗ᵀ[M] = ∂tr(M V(Σ))/∂Σ for symmetric M, the transposed Jacobian of the layer map :func:`_layer_map`:
    M_ab V̇_ab off the diagonal (Price), and on it 2Σ_{b≠a} M_ab ∂V_ab/∂q_a + M_aa dE[φ²]/dq_a, the
    q-derivatives by forward mode (reverse mode through the Hermite series compiles 3× slower)."""
    q = jnp.diagonal(sigma)
    (_, vdot), (dv, _) = jax.jvp(lambda s: mod.dual(s[:, None], sigma, q[None, :]), (q,), (jnp.ones_like(q),))
    d_diag = jax.jvp(partial(_mean_square, mod), (q,), (jnp.ones_like(q),))[1]
    eye = jnp.eye(len(q), dtype=bool)
    off = jnp.where(eye, 0.0, m * vdot)
    return off + jnp.diag(2 * jnp.sum(jnp.where(eye, 0.0, m * dv), axis=1) + jnp.diagonal(m) * d_diag)


def _mm(a, b, dtype=None):
    """a @ b with both operands cast to ``dtype`` (None: as they are), returned in a's dtype."""
    return a @ b if dtype is None else (a.astype(dtype) @ b.astype(dtype)).astype(a.dtype)


def _tilt(f, phi_hat, dtype=None):
    """t_s = φ(h_s)ᵀΦ̂φ(h_s) for the rows φ(h_s) of f (..., P): the exponent of the tilt e^{−t/2} (B4)."""
    return jnp.sum(_mm(f, phi_hat, dtype) * f, axis=-1)


def _weights(f, logb, logb0, phi_hat, dtype=None):
    """(w, b): the tilted weights w ∝ b e^{−½fᵀΦ̂f} (log-sum-exp) and the Gaussian ones b, both
    normalised, and the effective sample size S/Σ_s (w_s²/b0_s) against the sampler's own weights b0
    (= 1/Σ w² for equal b0 = 1/S: the count of equally weighted samples the estimate is worth)."""
    logw = logb - 0.5 * _tilt(f, phi_hat, dtype)
    logw = logw - jax.nn.logsumexp(logw)
    return jnp.exp(logw), jnp.exp(logb), len(logb) / jnp.sum(jnp.exp(2 * logw - logb0))


def _layer1(phi, x, smp, phi_hat, dtype=None):
    """Layer 1 at Φ̂¹ = ``phi_hat``: φ(Xw/√D) (S, P), the tilted weights w, the control variate's
    weight differences w − r (r = e^``logr1``, the weights at the reference tilt) and the ESS."""
    f = phi(smp.w @ x.T / np.sqrt(x.shape[1]))
    w, _, ess = _weights(f, smp.logb1, smp.logb1_0, phi_hat, dtype)
    return f, w, w - jnp.exp(smp.logr1), ess


class _Samples(NamedTuple):
    """Fixed points: layer 1 ``w`` (S, D), layers 2..L ``z`` (L−1, S, P); ``logb1``, ``logb``: their
    log-weights for averages under N(0, I) (normalised); ``logb1_0``, ``logb_0``: the sampler's own.
    Layer 1's control variate: Φ¹ = V(Kˣ) + ``anchor1`` + Σ_s (w_s − r_s) φφᵀ with r = e^``logr1``
    the weights at the reference tilt — for Gaussian points r = b and anchor 0; for particles of the
    tilted law at Φ̂ₖ (:func:`_move`) r is uniform and the anchor is the estimate of Φ¹ − V at Φ̂ₖ from
    the points they replaced, so each set estimates only the change since Φ̂ₖ (a telescoping sum).
    ``R1`` (D, D), ``R`` (L−1, P, P): the Gaussian proposals the points were drawn from, w = R1u and
    z = Ru for the sampler's normal points u (identity for the plain points; :func:`_proposal`)."""

    w: jnp.ndarray
    logb1: jnp.ndarray
    z: jnp.ndarray
    logb: jnp.ndarray
    logb1_0: jnp.ndarray
    logb_0: jnp.ndarray
    logr1: jnp.ndarray
    anchor1: jnp.ndarray
    R1: jnp.ndarray
    R: jnp.ndarray


LAYER1_FIELDS = ("w", "logb1", "logb1_0", "logr1", "anchor1", "R1")  # _Samples' layer-1 fields; the rest: layers 2..L


@jax.jit
def _proposal(base, R1, R):
    """The samples drawn from the Gaussian proposals N(0, R1R1ᵀ) (layer 1) and N(0, RRᵀ) (layers 2..L)
    instead of N(0, I): u ↦ Ru, with log-weights corrected by log N(Ru; 0, I) − log N(Ru; 0, RRᵀ)."""
    def move(u, logb0, R):
        z = u @ R.T
        logb = logb0 - 0.5 * jnp.sum(z * z, 1) + 0.5 * jnp.sum(u * u, 1)
        return z, logb - jax.nn.logsumexp(logb)

    w, logb1 = move(base.w, base.logb1_0, R1)
    z, logb = jax.vmap(move)(base.z, base.logb_0, R)
    return _Samples(w, logb1, z, logb, base.logb1_0, base.logb_0, logb1, jnp.zeros_like(base.anchor1), R1, R)


def _b5_direct(C, z, dw, dtype=None):
    """B5 as −C⁻ᵀ(Σ_s (w_s − b_s) z_s z_sᵀ)C⁻¹ (any φ, steps too): the sampling noise is multiplied by C⁻¹ twice."""
    m = _mm((z * dw[:, None]).T, z, dtype)
    left = solve_triangular(C.T, -m, lower=False)  # C⁻ᵀ(−m)
    return solve_triangular(C.T, left.T, lower=False).T  # (C⁻ᵀ leftᵀ)ᵀ = left C⁻¹


def _b5_stein(mod, sigma, C, z, h, f, w, dw, phi_hat, parts, dtype=None):
    """B5 after Gaussian integration by parts (E[Σ⁻¹h g(h)] = E[∇g] for h = Cz ~ N(0, Σ)), for continuous
    φ': ⟨∇²T − ∇T∇Tᵀ⟩ over the tilted law (T = ½φᵀΦ̂φ, ∇T = φ'⊙Φ̂φ), its Gaussian part 𝓗ᵀ[Φ̂] exact and
    the tilt's correction sampled: 𝓗ᵀ[Φ̂] + Φ̂⊙Σ(w − b)φ'φ'ᵀ + diag(Σ(w − b)φ''⊙Φ̂φ) − Σ w∇T∇Tᵀ
    (``parts`` = 2).  With ``parts`` = 1 (φ'' jumps) the diagonal is taken after one integration by
    parts instead, diag(⟨∇T zᵀ⟩C⁻¹) = diag(𝓗ᵀ[Φ̂] + Σ(w − b)∇T zᵀC⁻¹): C⁻¹ multiplies its noise once,
    and only there."""
    dphi = lambda u: jnp.broadcast_to(mod.dphi(u), u.shape).astype(u.dtype)  # noqa: E731  (φ' is 1 for φ(h) = h)
    d1, d2 = jax.jvp(dphi, (h,), (jnp.ones_like(h),))  # φ' and φ'', elementwise
    f_hat = _mm(f, phi_hat, dtype)
    grad = d1 * f_hat
    sampled = phi_hat * _mm((d1 * dw[:, None]).T, d1, dtype) - _mm((grad * w[:, None]).T, grad, dtype)
    if parts == 2:
        diag = jnp.diagonal(sampled) + dw @ (d2 * f_hat)
    else:
        diag = jnp.diagonal(solve_triangular(C.T, _mm((grad * dw[:, None]).T, z, dtype).T, lower=False))
    i = jnp.arange(len(diag))
    return _layer_map_transpose(mod, sigma, phi_hat) + sampled.at[i, i].set(diag)


def _forward(mod, x, smp, phi_hat, xt=None, xi=None, frozen=None, dtype=None, parts=0):
    """B4 at Φ̂: kernels Φ (L, P, P), Cholesky factors C of Φ¹..Φᴸ⁻¹ (L−1, P, P), B5's Φ̂¹..Φ̂ᴸ⁻¹ from
    layers 2..L (:func:`_b5_stein` after ``parts`` ≥ 1 integrations by parts, else :func:`_b5_direct`),
    the ESS per layer (``dtype``: that of the products over the samples, :func:`_mm`; the test rows
    keep float64), and with test inputs ``xt`` (Q, D) and their noise ``xi`` (L−1, S, Q) the test rows
    Φ(x_t, X) (L, Q, P) and diagonals (L, Q): test coordinates are Gaussian given the training ones
    (h_t = A h_X + s ξ), weights use training coordinates only (theory/adaptive.md §aNBK); ``frozen`` =
    (points, weights) the layer-1 anchor was summed from, for its test rows."""
    phi = mod.phi
    D = x.shape[1]
    kx = _dot(x, x)
    f, w, dw, ess = _layer1(phi, x, smp, phi_hat[0], dtype)
    Phi = _layer_map(mod, kx) + smp.anchor1 + _mm((f * dw[:, None]).T, f, dtype)
    M1 = (smp.w * w[:, None]).T @ smp.w
    Phi = (Phi + Phi.T) / 2
    test = None
    if xt is not None:
        ft = phi(smp.w @ xt.T / np.sqrt(D))
        V, Vd = _rows_map(mod, jnp.sum(xt * xt, 1) / D, _dot(xt, x), jnp.diagonal(kx))
        fh, fth = phi(frozen[0] @ x.T / np.sqrt(D)), phi(frozen[0] @ xt.T / np.sqrt(D))
        test = (V + (ft * dw[:, None]).T @ f + (fth * frozen[1][:, None]).T @ fh, Vd + dw @ ft**2 + frozen[1] @ fth**2)

    def layer(carry, inp):
        prev, test = carry
        z, logb, logb0, ph, xi_l = inp
        C = jnp.linalg.cholesky(prev)
        h = _mm(z, C.T, dtype)
        f = phi(h)
        w, b, ess = _weights(f, logb, logb0, ph, dtype)
        dw = w - b
        Phi = _layer_map(mod, prev) + _mm((f * dw[:, None]).T, f, dtype)
        below = _b5_stein(mod, prev, C, z, h, f, w, dw, ph, parts, dtype) if parts else _b5_direct(C, z, dw, dtype)
        moment = (z * w[:, None]).T @ z
        if test is not None:
            rows, diag = test
            W = solve_triangular(C, rows.T, lower=True)  # (P, Q): A h_X = z W
            s = jnp.sqrt(jnp.maximum(diag - jnp.sum(W * W, 0), 0))
            ft = phi(z @ W + xi_l * s)
            V, Vd = _rows_map(mod, diag, rows, jnp.diagonal(prev))
            test = (V + (ft * dw[:, None]).T @ f, Vd + dw @ ft**2)
        return ((Phi + Phi.T) / 2, test), (Phi, C, ((below + below.T) / 2, moment), ess, test)

    L = phi_hat.shape[0]
    if L == 1:
        stack = lambda a: a[None]  # noqa: E731
        return (stack(Phi), jnp.zeros((0,) + kx.shape), jnp.zeros((0,) + kx.shape), stack(ess),
                None if test is None else tuple(map(stack, test)), (M1, jnp.zeros((0,) + kx.shape)))
    xs = (smp.z, smp.logb, smp.logb_0, phi_hat[1:], xi if xi is not None else jnp.zeros((L - 1, 0)))
    _, (Phis, Cs, (below, M), esss, tests) = jax.lax.scan(layer, (Phi, test), xs)
    Phis = jnp.concatenate([Phi[None], (Phis + jnp.swapaxes(Phis, 1, 2)) / 2])
    if test is not None:
        test = tuple(jnp.concatenate([a[None], b]) for a, b in zip(test, tests))
    return Phis, Cs, below, jnp.concatenate([ess[None], esss]), test, (M1, M)


def _dual_kernels(Phis, below, y, gamma0, beta):
    """B6 on top of B5's Φ̂¹..Φ̂ᴸ⁻¹ (``below``, from :func:`_forward`): Φ̂ᴸ = −γ₀² aaᵀ, a = (Φᴸ + β⁻¹I)⁻¹y."""
    a = jnp.linalg.solve(Phis[-1] + jnp.eye(len(y)) / beta, y)
    return jnp.concatenate([below, -gamma0**2 * jnp.outer(a, a)[None]])


def _newton(G, J, x0, tol, max_steps, min_ess):
    """Solve F(x) = G(x) − x = 0 by inexact Newton–Krylov: each step solves J'(x)δ − δ = −F(x) by
    restarted GMRES (:mod:`symntk.solve.krylov`; matrix-free, by jvps of J, G or a cheaper estimate of
    it: :func:`_solve`; XLA hoists their primal part out of GMRES's loop, and a stored
    ``jax.linearize`` was 1.5× slower per product at P = 1000) to relative accuracy
    η = min(0.1, max(r, tol/(2r))) (no finer than this step needs to reach tol: Kelley 1995, §6.3),
    then halves δ (at most LINE_SEARCH times) until the residual r = ‖F‖/‖G‖ falls and every layer
    keeps ESS ≥ ``min_ess``.  Stops when r ≤ tol, after ``max_steps`` steps, or when
    no step is accepted (stalled).  Returns x, r (inf if x0 itself is non-finite or has ESS < ``min_ess``),
    ESS per layer, auxiliary output and the number of steps."""
    def evaluate(x):
        g, aux, ess = G(x)
        r = jnp.linalg.norm(g - x) / jnp.maximum(jnp.linalg.norm(g), 1e-300)
        ok = jnp.isfinite(r) & jnp.all(jnp.isfinite(g)) & (jnp.min(ess) >= min_ess)
        return g - x, jnp.where(ok, r, jnp.inf), aux, ess

    f0, r0, aux0, ess0 = evaluate(x0)

    def cond(s):
        return (s["k"] < max_steps) & (s["r"] > tol) & ~s["stalled"]

    def body(s):
        x, f, r = s["x"], s["f"], s["r"]
        jac = lambda v: jax.jvp(lambda p: J(p)[0], (x,), (v,))[1]  # noqa: E731
        dx = gmres(lambda v: jac(v) - v, -f, jnp.minimum(0.1, jnp.maximum(r, 0.5 * tol / r)), KRYLOV, 3)

        def shorter(t):
            t = t[0] / 2
            return (t,) + evaluate(x + t * dx)

        t, f_new, r_new, aux, ess = jax.lax.while_loop(
            lambda t: (t[2] >= r) & (t[0] > 2.0**-LINE_SEARCH), shorter, (1.0,) + evaluate(x + dx))
        ok = r_new < r
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
        return dict(k=s["k"] + 1, x=keep(x + t * dx, x), f=keep(f_new, f), r=keep(r_new, r), aux=keep(aux, s["aux"]),
                    ess=keep(ess, s["ess"]), stalled=~ok)

    init = dict(k=0, x=x0, f=f0, r=r0, aux=aux0, ess=ess0, stalled=~jnp.isfinite(r0))
    s = jax.lax.while_loop(cond, body, init)
    return s["x"], s["r"], s["ess"], s["aux"], s["k"]


@partial(jax.jit, static_argnames=("mod", "dtype", "parts"))
def _saddle_map(mod, x, y, smp, phi_hat, gamma0, beta, dtype=None, parts=0):
    """G(Φ̂) of B5–B6 on the samples ``smp``: (G, (Φ, tilted second moments), ESS per layer)."""
    Phis, _, below, ess, _, moments = _forward(mod, x, smp, phi_hat, dtype=dtype, parts=parts)
    return _dual_kernels(Phis, below, y, gamma0, beta), (Phis, moments), ess


@partial(jax.jit, static_argnames=("mod", "max_steps", "parts"))
def _solve(mod, x, y, smp, phi_hat0, gamma0, beta, tol, max_steps, min_ess, parts):
    """:func:`_newton` on G (B5 after ``parts`` integrations by parts, :func:`_forward`), with Newton's matrix
    from G's sample products in float32 (JACOBIAN_DTYPE).  Its jvps are then off by float32's rounding:
    ~√S·u₃₂, amplified by at most √cond(Φ¹) for ``parts`` = 1 and cond(Φ¹) for 0 (2.8e-5 relative on
    1000 digits points), which only slows Newton's convergence where that exceeds its forcing term:
    the residual, line search and ESS checks use G in float64.  An S·P² product takes half the time
    (0.17 s against 0.34 s at S = 2¹³, P = 1000, 2 CPU cores)."""
    G = partial(_saddle_map, mod, x, y, smp, gamma0=gamma0, beta=beta, parts=parts)
    J = partial(_saddle_map, mod, x, y, smp, gamma0=gamma0, beta=beta, dtype=JACOBIAN_DTYPE, parts=parts)
    return _newton(G, J, phi_hat0, tol, max_steps, min_ess)


@partial(jax.jit, static_argnames=("mod",))
def _test_rows(mod, x, smp, phi_hat, xt, xi, frozen):
    return _forward(mod, x, smp, phi_hat, xt, xi, frozen)[4]


def _nngp_layers(mod, kx, depth):
    """The lazy layer kernels [Φ¹₀, …, Φᴸ₀]: Φ¹₀ = V(Kˣ), Φˡ⁺¹₀ = V(Φˡ₀) (σ_w = 1, σ_b = 0)."""
    out = [_layer_map(mod, kx)]
    for _ in range(depth - 1):
        out.append(_layer_map(mod, out[-1]))
    return out


@partial(jax.jit, static_argnames=("mod",))
def _first_order(mod, x, y, smp, gamma0, beta):
    """The saddle point to first order in γ₀² (theory/adaptive.md, perturbative check): with NNGP
    kernels Φˡ₀ and a₀ = (Φᴸ₀ + β⁻¹I)⁻¹y,

        Φ̂ᴸ = −γ₀² a₀a₀ᵀ,   Φ̂ˡ = 𝓗ˡ⁺¹ᵀ[Φ̂ˡ⁺¹],   δΦˡ = 𝓗ˡ[δΦˡ⁻¹] − ½ Cov(φφᵀ, φᵀΦ̂ˡφ)  (δΦ⁰ = 0),

    𝓗ˡ the Jacobian of the NNGP layer map V at Φˡ⁻¹₀ (a JAX jvp of the engine's generated V, and its
    transpose by :func:`_layer_map_transpose`: off-diagonal V̇ by Price's theorem, diagonal
    ½E[(φ²)'']), and the four-point covariance of the tilt's direct response estimated with the
    Gaussian samples.  Returns (Φ̂, Φ₀ + δΦ)."""
    L = smp.z.shape[0] + 1
    kx = _dot(x, x)
    V = partial(_layer_map, mod)
    Phi0 = _nngp_layers(mod, kx, L)
    a = jnp.linalg.solve(Phi0[-1] + jnp.eye(len(y)) / beta, y)
    hats = [-gamma0**2 * jnp.outer(a, a)]
    for ell in range(L - 1, 0, -1):  # Φ̂ˡ from Φ̂ˡ⁺¹ through the layer map of layer ℓ + 1
        hats.insert(0, _layer_map_transpose(mod, Phi0[ell - 1], hats[0]))
    D = x.shape[1]
    d_phi, prev = [], jnp.zeros_like(kx)
    for ell in range(L):
        if ell == 0:
            h, logb = smp.w @ x.T / np.sqrt(D), smp.logb1
            lin = jnp.zeros_like(kx)
        else:
            h, logb = smp.z[ell - 1] @ jnp.linalg.cholesky(Phi0[ell - 1]).T, smp.logb[ell - 1]
            lin = jax.jvp(V, (Phi0[ell - 1],), (prev,))[1]
        f = mod.phi(h)
        b = jnp.exp(logb)
        t = _tilt(f, hats[ell])
        # Σ b(t − t̄)φφᵀ as two Gram products: written centred, XLA's CPU (YNNPACK) fusion of jax 0.10
        # runs it 25× slower in float64 (16 s against 0.8 s at S = 2¹³, P = 1000)
        cov = (f * (b * t)[:, None]).T @ f - (b @ t) * ((f * b[:, None]).T @ f)
        prev = lin - 0.5 * (cov + cov.T) / 2
        d_phi.append(prev)
    return jnp.stack(hats), jnp.stack(Phi0) + jnp.stack(d_phi)


@partial(jax.jit, static_argnames=("phi_inf", "steps"))
def _tilt_growth(phi_inf, B, phi_hat, Z, steps=200):
    """max over unit u of −φ∞(Bu)ᵀΦ̂φ∞(Bu): the best of the directions Z/|Z| refined by ``steps`` of
    projected gradient ascent on the sphere from the 8 best."""
    g = lambda u: -_tilt(phi_inf(u @ B.T), phi_hat)  # noqa: E731
    U = Z / jnp.linalg.norm(Z, axis=1, keepdims=True)
    best = U[jnp.argsort(-g(U))[:8]]
    grad = jax.vmap(jax.grad(lambda u: g(u[None])[0]))
    scale = 1 / (1e-300 + jnp.max(jnp.abs(phi_hat)) * jnp.sum(B * B))

    def step(_, u):
        u = u + scale * grad(u)
        return u / jnp.linalg.norm(u, axis=1, keepdims=True)

    return jnp.maximum(jnp.max(g(U)), jnp.max(g(jax.lax.fori_loop(0, steps, step, best))))


def _heldout_ess(model, x, y, smp, frozen, phi_hat, seed=1):
    """The ESS per layer at Φ̂ on independent i.i.d. normal points (``seed``) pushed through the proposals
    ``smp`` was drawn from (R1, R), one pass of G.  The ESS of the points Φ̂ was solved on is optimistic
    where the tilted law has heavy tails that those points under-represent and Φ̂ was tuned to them
    (derivations/anbk.md: on 1000 digits points 1373 there against 1–20 on independent ones).  Layer 1
    reads nan when its points are particles of the tilted law (``frozen`` non-empty: no proposal to
    redraw from); a nan elsewhere means the pass failed (a kernel not positive definite on those points)."""
    P, D = x.shape
    base = _cached_samples.__wrapped__("mc", model.samples, D, P, model.depth, (model.seed, seed))  # once: uncached
    fresh = _proposal(base, smp.R1, smp.R)
    ess = np.array(_saddle_map(model._mod, jnp.asarray(x), jnp.asarray(y), fresh, jnp.asarray(phi_hat), 0.0,
                               model.beta)[2])
    ess[0] = np.nan if len(frozen[1]) else ess[0]
    return ess


@lru_cache(maxsize=None)
def _asymptote(slopes):
    """φ∞(h) = a₊ relu(h) + a₋ relu(−h) as a JAX function (one object per slopes, for jit caching)."""
    ap, am = slopes
    return lambda h: ap * jnp.maximum(h, 0) + am * jnp.maximum(-h, 0)


@dataclass(frozen=True)
class Solution:
    """The aNBK saddle point on the training set (and test rows where asked).

    ``phi``, ``phi_hat`` (L, P, P): Φ¹..Φᴸ and Φ̂¹..Φ̂ᴸ; ``result``: one of ``RESULTS``;
    ``residual``: the stationarity residual ‖G(Φ̂) − Φ̂‖_F/‖G(Φ̂)‖_F of B5–B6 (module docstring);
    ``ess`` (L,): effective sample size per layer, and ``ess_heldout`` (L,) the same on independent
    points; ``steps``: fixed-point iterations; ``growth`` (L,): max over directions of −φ∞ᵀΦ̂ˡφ∞
    (normalisable below 1; nan when φ grows sublinearly); ``phi_test`` (L, Q, P), ``phi_test_diag``
    (L, Q), ``prediction`` (Q,) for ``x_test``.
    """

    phi: np.ndarray
    phi_hat: np.ndarray
    result: str
    residual: float
    ess: np.ndarray
    steps: int
    growth: np.ndarray
    phi_test: np.ndarray | None
    phi_test_diag: np.ndarray | None
    prediction: np.ndarray | None
    model: "BayesianMLP"
    x_train: np.ndarray
    y_train: np.ndarray
    samples: _Samples  # the points the solution was solved on (test rows and densities reuse them)
    frozen: tuple  # (points (S', D), weights (S',)): the layer-1 points and weights ``samples.anchor1`` sums
    ess_heldout: np.ndarray | None = None  # (L,) ESS on independent points (:meth:`heldout_ess`); None at first order

    def test_kernels(self, x_new, batch=256):
        """(Φˡ(x_new, X) (L, Q, P), Φˡ(x, x) (L, Q)) from the same samples, in batches of test points."""
        x_new = _check_x("x_new", x_new).astype(float)
        if x_new.shape[1] != self.x_train.shape[1]:
            raise DataError(f"x_new has {x_new.shape[1]} features, the training inputs {self.x_train.shape[1]}")
        m = self.model
        smp = self.samples
        rows, diags = [], []
        for i in range(0, len(x_new), batch):
            xt = x_new[i:i + batch]
            xi = np.random.default_rng([m.seed, 1, i]).standard_normal((m.depth - 1, smp.w.shape[0], len(xt)))
            r, d = _test_rows(m._mod, jnp.asarray(self.x_train), smp, jnp.asarray(self.phi_hat), jnp.asarray(xt),
                              jnp.asarray(xi), self.frozen)
            rows.append(np.asarray(r))
            diags.append(np.asarray(d))
        return np.concatenate(rows, 1), np.concatenate(diags, 1)

    def predict(self, x_new):
        """B1: f(x) = Φᴸ(x, X)[Φᴸ + β⁻¹I]⁻¹y."""
        return self.with_test(x_new).prediction

    def with_test(self, x_test):
        """This solution with the test rows, diagonals and B1 prediction of ``x_test`` filled in."""
        rows, diag = self.test_kernels(x_test)
        P = len(self.y_train)
        pred = rows[-1] @ np.linalg.solve(self.phi[-1] + np.eye(P) / self.model.beta, self.y_train)
        return replace(self, phi_test=rows, phi_test_diag=diag, prediction=pred)

    def heldout_ess(self, seed=1):
        """The effective sample size per layer at this Φ̂ on independent i.i.d. normal points (``seed``)
        drawn from the solution's own proposals (:func:`_heldout_ess`; ``solve`` checks seed 1)."""
        return _heldout_ess(self.model, self.x_train, self.y_train, self.samples, self.frozen, self.phi_hat, seed)

    def alignment(self):
        """A(Φˡ, yyᵀ) = yᵀΦˡy/(‖Φˡ‖_F |y|²) for ℓ = 0 (Kˣ) .. L."""
        kx = np.asarray(_dot(self.x_train, self.x_train))
        y = self.y_train
        return np.array([y @ k @ y / (np.linalg.norm(k) * (y @ y)) for k in [kx, *self.phi]])

    def preactivation_density(self, layer=1, point=0, bins=60):
        """The single-site density of hˡ at training point ``point``: (bin centres, tilted density,
        the Gaussian N(0, Φˡ⁻¹_μμ) of the lazy limit on the same centres) — weighted histogram of
        the importance samples."""
        m = self.model
        if not (1 <= layer <= m.depth and 0 <= point < len(self.y_train)):
            raise DataError(f"layer must be in 1..{m.depth} and point in 0..{len(self.y_train) - 1}")
        x = self.x_train
        smp = self.samples
        if layer == 1:
            h, logb, var = np.asarray(smp.w) @ x.T / np.sqrt(x.shape[1]), np.asarray(smp.logb1), x[point] @ x[point] / x.shape[1]
        else:
            C = np.linalg.cholesky(self.phi[layer - 2])
            h, logb, var = np.asarray(smp.z[layer - 2]) @ C.T, np.asarray(smp.logb[layer - 2]), self.phi[layer - 2][point, point]
        f = np.asarray(m._mod.phi(h))
        logw = logb - 0.5 * np.asarray(_tilt(f, self.phi_hat[layer - 1]))
        w = np.exp(logw - np.logaddexp.reduce(logw))
        dens, edges = np.histogram(h[:, point], bins=bins, weights=w, density=True)
        centres = (edges[1:] + edges[:-1]) / 2
        return centres, dens, np.exp(-centres**2 / (2 * var)) / np.sqrt(2 * np.pi * var)


class BayesianMLP:
    """A depth-``depth`` network of ``activation`` (A1) in the Bayesian feature-learning limit:
    feature-learning strength ``gamma0`` (γ₀ ≥ 0), inverse temperature ``beta`` (β > 0, np.inf: noiseless).

    ``samples``: importance samples per layer (a power of two for ``"qmc"``); ``sampler``: ``"qmc"``
    (scrambled Sobol, default), ``"mc"`` or ``"gauss-hermite"`` (tensor grid, ⌊samples^{1/dim}⌉ nodes
    per axis: for P, D ≤ 3, where it is exact to quadrature precision); ``seed``; ``min_ess``: the
    smallest effective sample size accepted per layer (kernel entries then carry ~1/√min_ess relative
    sampling error).
    """

    def __init__(self, activation, depth=1, gamma0=0.5, beta=50.0, samples=2**14, sampler="qmc", seed=0, min_ess=256):
        if not (isinstance(depth, (int, np.integer)) and depth >= 1):
            raise DataError(f"depth must be an integer ≥ 1, got {depth!r}")
        if not (np.isfinite(gamma0) and gamma0 >= 0 and beta > 0):
            raise DataError(f"gamma0 must be finite and ≥ 0 and beta > 0, got {gamma0}, {beta}")
        if sampler not in SAMPLERS:
            raise DataError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if not (isinstance(samples, (int, np.integer)) and samples >= 16):
            raise DataError(f"samples must be an integer ≥ 16, got {samples!r}")
        self.dual = derive(activation)
        self.activation = self.dual.activation
        self.depth, self.gamma0, self.beta = int(depth), float(gamma0), float(beta)
        self.samples, self.sampler, self.seed, self.min_ess = int(samples), sampler, seed, float(min_ess)
        self._mod = self.dual.module()
        self._parts = _integrations_by_parts(self.activation)
        self.slopes = asymptotic_slopes(self.activation.expr)
        if self.slopes is None and gamma0 > 0:
            raise DivergentIntegralError(
                f"φ = {self.activation.expr} grows faster than linearly: the last layer's tilt e^(γ₀²(a·φ(h))²/2) "
                f"beats the Gaussian, so the single-site integral Z_L diverges for every gamma0 > 0 (here {gamma0}); "
                "the aNBK saddle point does not exist for this activation")

    def __repr__(self):
        return (f"BayesianMLP({str(self.activation.expr)!r}, depth={self.depth}, gamma0={self.gamma0}, "
                f"beta={self.beta}, samples={self.samples}, sampler={self.sampler!r})")

    def equations(self):
        """The symbolic derivation of B4–B6 (:func:`symntk.recursion.anbk.saddle_equations`)."""
        from .recursion.anbk import saddle_equations
        return saddle_equations(self.depth)

    def _samples(self, P, D):
        return _cached_samples(self.sampler, self.samples, D, P, self.depth, self.seed)

    def _check(self, x_train, y_train):
        x = _check_x("x_train", x_train).astype(float)
        y = np.asarray(y_train, dtype=float)
        if y.shape != (len(x),) or not np.all(np.isfinite(y)):
            raise DataError(f"y_train must be a finite vector of shape ({len(x)},), got {y.shape}")
        # layers 2..L sample N(0, Φˡ⁻¹) through its Cholesky factor and B5 divides by it: each NNGP
        # kernel below the last must be numerically positive definite (λ_min > P·eps·λ_max)
        layers = _nngp_layers(self._mod, _dot(x, x), self.depth - 1) if self.depth > 1 else []
        for ell, k in enumerate(layers, start=1):
            ev = np.linalg.eigvalsh(np.asarray(k))
            if not ev[0] > len(y) * np.finfo(float).eps * ev[-1]:
                raise DataError(
                    f"the layer-{ell} NNGP kernel on x_train is singular (eigenvalues {ev[0]:.3g} … "
                    f"{ev[-1]:.3g}), so layer {ell + 1}'s pre-activations N(0, Φ^{ell}) have no density "
                    "on R^P and the aNBK action is not defined: remove duplicate or linearly dependent "
                    "training points (for φ(h) = h, Φ¹ is Kˣ = xxᵀ/D, singular when P > D or the inputs "
                    "are centred; symntk.deep_linear solves that case exactly)")
        return x, y

    def nngp(self, x_train):
        """The lazy layer kernels Φˡ₀ (L, P, P): the NNGP recursion with σ_w = 1, σ_b = 0 (γ₀ = 0)."""
        x = jnp.asarray(_check_x("x_train", x_train).astype(float))
        return np.stack([np.asarray(a) for a in _nngp_layers(self._mod, _dot(x, x), self.depth)])

    def first_order(self, x_train, y_train):
        """(Φ̂, Φ) to first order in γ₀² (:func:`_first_order`)."""
        x, y = self._check(x_train, y_train)
        hats, phi = _first_order(self._mod, jnp.asarray(x), jnp.asarray(y), self._samples(*x.shape),
                                 self.gamma0, self.beta)
        return np.asarray(hats), np.asarray(phi)

    def perturbative(self, x_train, y_train, x_test=None) -> Solution:
        """The fast approximate solver: a Solution (``result`` = "first_order") holding the first-order
        kernels and dual kernels, no iteration; its ``residual`` is the stationarity residual there
        (relative O(γ₀²) at depth 1, and deeper for φ with no jump, whose B5 has the exact 𝓗ᵀ as its
        Gaussian part; for a step or sign deeper it floors at the O(1/√S) gap between 𝓗ᵀ and B5's
        direct sampled estimate), and test rows come from one sampling pass at the first-order Φ̂."""
        x, y = self._check(x_train, y_train)
        P, D = x.shape
        smp = self._samples(P, D)
        hats, phi = (np.asarray(a) for a in _first_order(self._mod, jnp.asarray(x), jnp.asarray(y), smp, self.gamma0,
                                                         self.beta))
        G, _, ess = _saddle_map(self._mod, jnp.asarray(x), jnp.asarray(y), smp, jnp.asarray(hats), self.gamma0,
                                self.beta, parts=self._parts)
        G = np.asarray(G)
        res = float(np.linalg.norm(G - hats) / max(np.linalg.norm(G), 1e-300))
        sol = Solution(phi, hats, "first_order", res, np.asarray(ess), 0, self._growth(x, smp, phi, hats), None, None,
                       None, self, x, y, smp, _no_frozen(D))
        return sol if x_test is None else sol.with_test(x_test)

    def solve(self, x_train, y_train, x_test=None, tol=1e-6, max_steps=200, warm_start="perturbative", adapt=1,
              throw=True) -> Solution:
        """The saddle point B4–B6 (module docstring) to stationarity residual ``tol``.

        Solved by continuation in s = γ₀² from the lazy point (:meth:`_continue`) with a Newton–Krylov
        corrector (:func:`_newton`); ``max_steps`` bounds the Newton steps of the whole solve.
        ``warm_start``: ``"perturbative"`` (the first-order Φ̂: the first prediction is exact to first
        order), ``"lazy"`` (Φ̂ = 0) or an array of Φ̂ (L, P, P) near the solution (e.g. a previous
        solution at a nearby γ₀): the first step tries it directly at γ₀.
        ``adapt``: rounds of point refreshes at γ₀ (:meth:`_refresh`: Gaussian proposals with the
        tilted second moment × PROPOSAL_INFLATION where that raises a layer's ESS, layer-1 particles
        of the tilted law where its ESS stays below PARTICLES × samples) with the solve repeated; with
        ``adapt`` ≥ 1 the points are also refreshed after every continuation step, and ``adapt = 0``
        keeps the plain N(0, I) samples throughout.
        ``throw``: raise :class:`ConvergenceError` (steps exhausted) or :class:`DivergentIntegralError`
        (``sampling_degenerate``: a tilt that is not normalisable, an ESS below ``min_ess`` on the solve's
        points or on independent ones, :func:`_heldout_ess`) instead of returning a Solution with that
        ``result``.
        """
        x, y = self._check(x_train, y_train)
        P, D = x.shape
        base = self._samples(P, D)
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        if isinstance(warm_start, str):
            if warm_start not in ("perturbative", "lazy"):
                raise DataError(f"warm_start must be 'perturbative', 'lazy' or an array, got {warm_start!r}")
            start = (_first_order(self._mod, xj, yj, base, self.gamma0, self.beta)[0] if warm_start == "perturbative"
                     else jnp.zeros((self.depth, P, P)))
        else:
            start = jnp.asarray(warm_start, dtype=float)
            if start.shape != (self.depth, P, P):
                raise DataError(f"warm_start must have shape {(self.depth, P, P)}, got {start.shape}")
        out, (smp, frozen) = self._continue(xj, yj, base, start, tol, int(max_steps), adapt)
        ph, res, ess, phi, steps, reached, stalled = out
        ph, phi, res, ess = np.asarray(ph), np.asarray(phi), float(res), np.asarray(ess)
        growth = self._growth(x, smp, phi, ph)
        held = _heldout_ess(self, x, y, smp, frozen, ph)
        collapsed = not np.all(held[1 if len(frozen[1]) else 0:] >= self.min_ess)  # nan: the pass failed
        if reached == self.gamma0 and res <= tol and not np.any(growth >= 1) and not collapsed:
            result = "successful"
        elif np.any(growth >= 1) or collapsed or stalled and np.min(ess) < 4 * self.min_ess:
            result = "sampling_degenerate"  # a stall with the weights within 4× of the floor: Newton's
            # steps are routinely refused by it, and the sampled map is rough
        else:
            result = "max_steps_reached"
        sol = Solution(phi, ph, result, res, ess, steps, growth, None, None, None, self, x, y, smp, frozen, held)
        where = "" if reached == self.gamma0 else f" (the continuation reached gamma0 = {reached:.4g})"
        if throw and result == "sampling_degenerate":
            raise DivergentIntegralError(self._degenerate_message(sol, collapsed) + where)
        if throw and result == "max_steps_reached":
            raise ConvergenceError(
                f"the aNBK saddle point was not reached after {steps} Newton steps{where}: the continuation "
                + ("stalled (steps below gamma0²/256: with the ESS well above min_ess, usually a fold of the sampled "
                   "map's branch, which more samples move to larger gamma0, derivations/anbk.md); " if stalled
                   else "ran out of max_steps; ")
                + f"stationarity residual {res:.2g} (tol = {tol:g}), gamma0 = {self.gamma0}; use more samples, "
                "raise max_steps, or a smaller gamma0")
        return sol if x_test is None else sol.with_test(x_test)

    def _continue(self, x, y, base, start, tol, max_steps, adapt):
        """Continuation in s = γ₀² from s = 0, Φ̂ = 0 (where the weights are exact): each step predicts
        Φ̂ at s + Δs along the secant through the last two solutions (the first along the tangent
        ``start``/γ₀², so it tries ``start`` at γ₀ itself) and corrects by Newton on the step's samples,
        to ROUND_TOL (``tol`` at γ₀).  A step is accepted when the corrector converges and no layer's
        ESS falls below ESS_DROP × its value at the step's start — the proposals then still fit the
        tilted law, whose importance weights would otherwise have unbounded variance long before the
        ESS shows it; a rejected step is halved, one that took ≤ 3 Newton steps is lengthened 1.5×.
        With ``adapt`` ≥ 1 the points are refreshed after every accepted step (:meth:`_refresh`), and
        ``adapt`` more rounds are solved at γ₀.  It stops early when Δs < MIN_STEP·γ₀² (stalled) or
        after ``max_steps`` Newton steps.  Returns ((Φ̂, residual, ESS, Φ, Newton steps, the γ₀ reached,
        whether it stalled), (points, frozen layer-1 points) of the returned solution)."""
        S, L = self.gamma0**2, self.depth

        # scalars as Python floats throughout: a NumPy scalar (strongly typed, where 0.0 is weakly typed)
        # would retrace and recompile _solve, 33 s for tanh at depth 2
        def solve(smp, phi_hat, gamma0, tol):
            return _solve(self._mod, x, y, smp, phi_hat, float(gamma0), float(self.beta), float(tol),
                          NEWTON_STEPS, self.min_ess, self._parts)
        path = [(0.0, jnp.zeros_like(start))]
        slope = start / S if S > 0 else jnp.zeros_like(start)
        s, ds, steps, ess_ref = 0.0, S, 0, np.full(L, float(self.samples))
        pts = used = (base, _no_frozen(x.shape[1]))
        out = solve(base, path[0][1], gamma0=0.0, tol=np.inf)
        while steps < max_steps:
            s_new = S if ds >= S - s else s + ds
            (s0, p0), (s1, p1) = path[-2] if len(path) > 1 else (s - 1.0, path[-1][1] - slope), path[-1]
            prediction = p1 + (p1 - p0) * (s_new - s1) / (s1 - s0)
            tol_here = tol if s_new == S else max(tol, ROUND_TOL)
            trial = solve(pts[0], prediction, gamma0=np.sqrt(s_new), tol=tol_here)
            steps += int(trial[4])
            ess = np.asarray(trial[2])
            if not float(trial[1]) <= tol_here or not np.all(ess >= ESS_DROP * ess_ref):
                ds /= 2
                if ds < MIN_STEP * S:
                    break
                continue
            out, used, s = trial, pts, s_new
            path.append((s, out[0]))
            if s == S:
                break
            pts, ess_ref = self._refresh(x, y, base, pts, out, len(path)) if adapt else (pts, ess)
            ds *= 1.5 if int(trial[4]) <= 3 else 1.0
        for i in range(adapt if s == S else 0):
            fresh, _ = self._refresh(x, y, base, used, out, len(path) + i)
            if fresh is used:
                break
            trial = solve(fresh[0], out[0], gamma0=self.gamma0, tol=tol)
            steps += int(trial[4])
            if not float(trial[1]) <= tol:
                break
            out, used = trial, fresh
        ph, res, ess, (phi, _), _ = out
        reached = self.gamma0 if s == S else float(np.sqrt(s))
        return (ph, res, ess, phi, steps, reached, s < S and ds < MIN_STEP * S), used

    def _refresh(self, x, y, base, pts, out, step):
        """New points (``pts`` = (samples, frozen layer-1 points)) for the solution ``out``, solved on
        them: each layer's from the Gaussian proposal fitted to its tilted second moment
        (:func:`_fit_proposal`) where that raises its ESS at out's Φ̂; where layer 1's ESS stays below
        PARTICLES × samples, its points are frozen into the anchor and replaced by particles of its
        tilted law (:func:`_particles`, keyed by ``seed`` and ``step``).  ``pts`` itself if neither
        applies.  Returns (points, ESS per layer at out's Φ̂)."""
        (smp, frozen), (ph, _, ess, (_, (M1, M)), _) = pts, out
        ess = np.asarray(ess)
        R1 = _fit_proposal(M1, ess[0])
        fitted = _proposal(base, R1, jax.vmap(_fit_proposal)(M, ess[1:]))
        ess_fit = np.asarray(_saddle_map(self._mod, x, y, fitted, ph, 0.0, self.beta)[2])
        better, low = ess_fit > ess, max(ess_fit[0], ess[0]) < PARTICLES * self.samples
        if not (better.any() or low):
            return pts, ess
        if better.all() and not low:
            return (fitted, _no_frozen(x.shape[1])), ess_fit
        new = _select(better, fitted, smp)
        if low:
            key = jax.random.fold_in(jax.random.PRNGKey(self.seed), step)
            moved, frozen_new = _particles(self._mod.phi, key, smp, x, ph[0], R1)
            new = _select(np.arange(self.depth) == 0, moved, new)
            frozen = tuple(jnp.concatenate(a) for a in zip(frozen, frozen_new))
        elif better[0]:
            frozen = _no_frozen(x.shape[1])
        return (new, frozen), np.asarray(_saddle_map(self._mod, x, y, new, ph, 0.0, self.beta)[2])

    def _growth(self, x, smp, phi, phi_hat):
        """Per layer, max over unit directions of −φ∞ᵀΦ̂ˡφ∞ (nan for sublinear φ)."""
        if self.slopes == (0.0, 0.0):
            return np.full(self.depth, np.nan)
        f = _asymptote(self.slopes)
        B = [jnp.asarray(x) / np.sqrt(x.shape[1])] + [jnp.linalg.cholesky(jnp.asarray(p)) for p in phi[:-1]]
        Z = [smp.w] + list(smp.z)
        return np.array([float(_tilt_growth(f, b, jnp.asarray(m), z)) for b, m, z in zip(B, phi_hat, Z)])

    def _degenerate_message(self, sol, collapsed):
        bad = np.flatnonzero(sol.growth >= 1)
        if bad.size:
            ell = bad[0] + 1
            return (f"the single-site density of layer {ell} is not normalisable at gamma0 = {self.gamma0}, "
                    f"beta = {self.beta}: along some direction the tilt grows like exp(+{sol.growth[bad[0]]:.3g}·|z|²/2) "
                    "against the Gaussian's exp(−|z|²/2), so Z diverges and no sampler can give a meaningful kernel; "
                    "lower gamma0 (or beta) below the point where this growth reaches 1")
        if collapsed and np.min(sol.ess) >= self.min_ess:
            return (f"on independent points drawn from the solution's proposals the importance weights give ESS "
                    f"{np.array2string(sol.ess_heldout, precision=0)} per layer (min_ess = {self.min_ess:g}; "
                    f"{np.array2string(sol.ess, precision=0)} on the solve's own points) at gamma0 = "
                    f"{self.gamma0}: the tilted weights are heavier-tailed than the solve's points show, and its "
                    "saddle point is specific to them; use more samples or a smaller gamma0")
        ell = int(np.argmin(sol.ess)) + 1
        return (f"importance sampling collapsed in layer {ell} at gamma0 = {self.gamma0}: effective sample size "
                f"{np.min(sol.ess):.3g} (min_ess = {self.min_ess:g}); use more samples or a smaller gamma0")


@jax.jit
def _fit_proposal(M, ess):
    """The symmetric square root R (R² = M') of the proposal covariance fitted to the tilted second
    moment M (in the sampler's coordinates, estimated from ``ess`` effective samples): M's
    eigen-directions whose eigenvalue differs from 1 by more than 4√(d/ess) (twice the
    Marchenko–Pastur spread of pure sampling noise) take that eigenvalue × PROPOSAL_INFLATION, all
    others stay 1 — a low-rank update, because a full-rank refit would add noise in every one of the
    d directions and a width mismatch costs ESS exponentially in d.  The symmetric root leaves the
    points untouched in the other directions (a non-symmetric factor would rotate them, and rotated
    Sobol points lose the stratification that keeps heavy weights rare: derivations/anbk.md)."""
    lam, U = jnp.linalg.eigh((M + M.T) / 2)
    keep = jnp.abs(lam - 1) > 4 * jnp.sqrt(M.shape[0] / ess)
    return (U * jnp.sqrt(jnp.where(keep, PROPOSAL_INFLATION * jnp.maximum(lam, 1e-12), 1.0))) @ U.T


@partial(jax.jit, static_argnames=("phi",))
def _move(phi, key, z, logb, B, phi_hat, R):
    """Resample-move (a sequential Monte-Carlo step): particles of the tilted law
    π(z) ∝ N(z; 0, I) e^{−t(z)/2}, t(z) = φ(Bz)ᵀΦ̂φ(Bz), from the weighted points ``z`` (S, d) with
    log-weights ``logb`` under N(0, I): systematic resampling by the weights e^{logb − t/2}, then
    PCN_STEPS steps of preconditioned Crank–Nicolson MCMC with reference N(0, R²) (R symmetric):
    z' = √(1 − ρ²) z + ρRξ, accepted with probability min(1, e^{ℓ(z') − ℓ(z)}), ℓ = log π − log N(0, R²),
    ρ adapted towards acceptance rate PCN_ACCEPT.  Returns the particles and their log-weights under
    N(0, I) (t/2, normalised: the particles are π-distributed)."""
    S = len(logb)
    tilt = lambda z: _tilt(phi(z @ B.T), phi_hat)  # noqa: E731

    Rinv = jnp.linalg.inv(R)

    def ell(z):
        u = z @ Rinv
        return 0.5 * (jnp.sum(u * u, 1) - jnp.sum(z * z, 1) - tilt(z))

    key, k = jax.random.split(key)
    cdf = jnp.cumsum(jax.nn.softmax(logb - 0.5 * tilt(z)))
    z = z[jnp.minimum(jnp.searchsorted(cdf, (jax.random.uniform(k) + jnp.arange(S)) / S), S - 1)]

    def step(carry, k):
        z, l, rho = carry
        k1, k2 = jax.random.split(k)
        new = jnp.sqrt(1 - rho**2) * z + rho * jax.random.normal(k1, z.shape) @ R
        l_new = ell(new)
        acc = jnp.log(jax.random.uniform(k2, (S,))) < jnp.where(jnp.isfinite(l_new), l_new - l, -jnp.inf)
        rate = jnp.mean(acc)
        rho = jnp.clip(rho * jnp.exp(rate - PCN_ACCEPT), 0.01, 0.99)
        return (jnp.where(acc[:, None], new, z), jnp.where(acc, l_new, l), rho), None

    z = jax.lax.scan(step, (z, ell(z), 0.5), jax.random.split(key, PCN_STEPS))[0][0]
    t = 0.5 * tilt(z)
    return z, t - jax.nn.logsumexp(t)


@partial(jax.jit, static_argnames=("phi",))
def _particles(phi, key, smp, x, phi_hat, R):
    """Layer 1's points replaced by particles of its tilted law at Φ̂¹ = ``phi_hat`` (:func:`_move`,
    h = Xw/√D), the old points frozen: the new anchor is the old anchor + Σ(w − r)φφᵀ at Φ̂¹ (so the
    estimate of Φ¹ at Φ̂¹ is unchanged).  Returns (samples, (frozen points, their weights w − r))."""
    f, _, dw, _ = _layer1(phi, x, smp, phi_hat)
    anchor = smp.anchor1 + (f * dw[:, None]).T @ f
    w, logb1 = _move(phi, key, smp.w, smp.logb1, x / np.sqrt(x.shape[1]), phi_hat, R)
    uniform = jnp.full(len(w), -np.log(len(w)))
    return smp._replace(w=w, logb1=logb1, logb1_0=uniform, logr1=uniform, anchor1=(anchor + anchor.T) / 2), (smp.w, dw)


def _no_frozen(D):
    """No frozen layer-1 points (points of Gaussian proposals estimate Φ¹ − V alone)."""
    return jnp.zeros((0, D)), jnp.zeros(0)


def _select(flags, a, b):
    """Per layer ℓ, the points of ``a`` where flags[ℓ − 1], else those of ``b``."""
    def pick(name, u, v):
        f = flags[0] if name in LAYER1_FIELDS else np.asarray(flags[1:])
        return jnp.where(np.reshape(f, np.shape(f) + (1,) * (u.ndim - np.ndim(f))), u, v)
    return _Samples(*(pick(n, u, v) for n, u, v in zip(_Samples._fields, a, b)))


@lru_cache(maxsize=8)
def _cached_samples(sampler, n, D, P, depth, seed):
    """The fixed normal points of one problem (common random numbers for every iteration and test batch);
    ``seed``: an integer or a tuple of them."""
    key = list(seed) if isinstance(seed, tuple) else [seed]
    w, logb1 = _normals(sampler, n, D, key + [0])
    layers = [_normals(sampler, n, P, key + [ell]) for ell in range(1, depth)]
    z = np.stack([a for a, _ in layers]) if layers else np.zeros((0, len(w), P))
    logb = np.stack([b for _, b in layers]) if layers else np.zeros((0, len(w)))
    if z.shape[1:2] != w.shape[:1]:
        raise DataError(f"gauss-hermite grids of dimension D = {D} and P = {P} have different sizes; use equal D and P")
    eye = (np.eye(D), np.broadcast_to(np.eye(P), (depth - 1, P, P)))
    return _Samples(*(jnp.asarray(a) for a in (w, logb1, z, logb, logb1, logb, logb1, np.zeros((P, P))) + eye))
