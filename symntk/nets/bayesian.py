"""The mean-field network A1 (theory/adaptive.md) at finite width, sampled by the Langevin
dynamics A2 with λ = T = 1/β: the empirical side of the Bayesian theories — the deep-linear
saddle point D1–D6 (φ(h) = h, the default) and the aNBK B1–B6 (any activation).

    h¹ = W⁰x/√D,  hˡ⁺¹ = Wˡφ(hˡ)/√N,  f = w·φ(hᴸ)/(γ₀N),   all weights N(0, 1) at t = 0
    dθ = −η[γ₀²N ∇𝓛 + θ/β] dt + √(2η/β) dε,   𝓛 = ½ Σ_μ (f_μ − y_μ)²

With η = β time is measured in units of the prior's relaxation, dθ = −∇U dt + √2 dε with
U = (βγ₀²N/2) Σ_μ (f_μ − y_μ)² + ½|θ|², whose stationary law exp(−U) is the Bayesian posterior of
the theory.  Steps use the Leimkuhler–Matthews scheme

    θ_{n+1} = θ_n − Δt ∇U(θ_n) + √(Δt/2) (ξ_n + ξ_{n+1}),

one gradient per step like Euler–Maruyama, but its stationary law is exact for a Gaussian target
and has O(Δt²) error otherwise (Euler–Maruyama: O(Δt)).  ``noise="rademacher"`` draws ξ = ±1
instead of N(0, 1): the same mean and covariance, so the same limit SDE (a weak scheme, Kloeden &
Platen §14.1) and the same stationary covariance on Gaussian targets, from one random bit per
weight instead of a normal (~30× cheaper on CPU, where drawing N² normals per layer dominates
the step).  Measured: the layer kernels
Φˡ = φ(hˡ)·φ(hˡ)ᵀ/N (ℓ = 1..L) on the training points, averaged over the trajectory after ``burn_in``.
Chains are vmapped; the steps run in ``lax.fori_loop``/``lax.scan``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConvergenceError, DataError
from ..gaussian import derive

#: largest curvature × step accepted (Leimkuhler–Matthews is stable below 2)
MAX_STEP_CURVATURE = 0.6


@dataclass(frozen=True)
class LangevinKernels:
    """Per-chain time averages of the layer kernels: ``phi`` (chains, L, P(+Q), P(+Q)) over the
    training (then test) points; ``overlap`` (chains, L): yᵀΦˡy/|y|², the overlap c_ℓ of D2 on
    whitened data; ``samples``: kernels averaged per chain; ``preactivations`` (chains, L, N): hˡ at
    the first training point at the end of each chain (one sample of the single-site density per
    neuron); ``mean_output`` (chains, P(+Q)): the time-averaged output f, the posterior mean."""

    phi: np.ndarray
    overlap: np.ndarray
    samples: int
    preactivations: np.ndarray
    mean_output: np.ndarray

    @property
    def mean_overlap(self) -> np.ndarray:
        """c_ℓ averaged over chains, shape (L,)."""
        return self.overlap.mean(axis=0)

    @property
    def overlap_error(self) -> np.ndarray:
        """Standard error of ``mean_overlap`` from the spread between independent chains, shape (L,)."""
        return self.overlap.std(axis=0, ddof=1) / np.sqrt(len(self.overlap))


def _forward(phi, params, x):
    """Pre-activations h¹..hᴸ (each (P, N)) and the output γ₀N·f (P,)."""
    hs = [x @ params[0] / np.sqrt(x.shape[1])]
    for w in params[1:-1]:
        hs.append(phi(hs[-1]) @ w / np.sqrt(w.shape[0]))
    return hs, phi(hs[-1]) @ params[-1]


def _rademacher(key, shape):
    """±1 entries from the bits of ⌈n/32⌉ random 32-bit words."""
    n = int(np.prod(shape))
    words = jax.random.bits(key, (-(-n // 32),), jnp.uint32)
    bits = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)) & 1
    return (2.0 * bits.reshape(-1)[:n] - 1.0).reshape(shape)


NOISE = {"gaussian": jax.random.normal, "rademacher": _rademacher}


@partial(jax.jit, static_argnames=("phi", "width", "depth", "steps", "burn", "every", "noise"))
def _chain(phi, key, x, y, x_eval, gamma0, beta, dt, width, depth, steps, burn, every, noise):
    N = width
    shapes = [(x.shape[1], N)] + [(N, N)] * (depth - 1) + [(N,)]

    def normals(key):
        return [NOISE[noise](k, s) for k, s in zip(jax.random.split(key, len(shapes)), shapes)]

    def potential(p):
        _, f = _forward(phi, p, x)
        f = f / (gamma0 * N)
        return 0.5 * beta * gamma0**2 * N * jnp.sum((f - y) ** 2) + 0.5 * sum(jnp.sum(w**2) for w in p)

    grad = jax.grad(potential)
    scale = jnp.sqrt(dt / 2)

    def step(_, carry):
        p, xi, key = carry
        key, sub = jax.random.split(key)
        xi_new = normals(sub)
        p = [w - dt * g + scale * (a + b) for w, g, a, b in zip(p, grad(p), xi, xi_new)]
        return p, xi_new, key

    def kernels(p):
        hs, f = _forward(phi, p, x_eval)
        return jnp.stack([phi(h) @ phi(h).T / N for h in hs]), f / (gamma0 * N)

    def stiffness(p):
        """β γ₀²N J Jᵀ, J = ∂f/∂θ: the Gauss–Newton curvature of U is 1 + its largest eigenvalue (taken
        on the host: XLA's CPU eigensolver inside this vmapped loop deadlocked for P ≥ 40, jax 0.10.2)."""
        J = jax.jacrev(lambda p: _forward(phi, p, x)[1] / (gamma0 * N))(p)
        JJ = sum(jnp.tensordot(j, j, axes=(tuple(range(1, j.ndim)),) * 2) for j in J)
        return beta * gamma0**2 * N * JJ

    k_init, k_xi, key = jax.random.split(key, 3)
    carry = jax.lax.fori_loop(0, burn, step, (normals(k_init), normals(k_xi), key))
    stiff = stiffness(carry[0])

    def block(carry, _):
        carry = jax.lax.fori_loop(0, every, step, carry)
        return carry, kernels(carry[0])

    carry, (phis, fs) = jax.lax.scan(block, carry, None, length=steps // every)
    last = jnp.stack([h[0] for h in _forward(phi, carry[0], x)[0]])
    return phis.mean(axis=0), fs.mean(axis=0), jnp.stack([stiff, stiffness(carry[0])]), last


def sample_kernels(x, y, depth, width, gamma0, beta, *, activation="x", x_test=None, chains=8, dt=0.01, t_end=50.0,
                   burn_in=10.0, record_every=10, noise="gaussian", seed=0) -> LangevinKernels:
    """Run ``chains`` independent networks of ``activation`` (default linear) for ``burn_in`` +
    ``t_end`` time units (steps of ``dt``) and average Φˡ over the last ``t_end``, recorded every
    ``record_every`` steps; ``noise``: ``"gaussian"`` or ``"rademacher"`` increments (module docstring).
    With ``x_test`` the kernels and the time-averaged output cover the training then the test points.

    ``dt`` must resolve the stiffest direction of U, whose curvature k = 1 + β λ_max(γ₀²N J Jᵀ)
    (J = ∂f/∂θ) is measured after burn-in and at the end: k·dt > MAX_STEP_CURVATURE (the scheme is
    stable below 2; the margin covers k growing between the two checks) or a non-finite state
    raises :class:`~symntk.errors.ConvergenceError` naming the largest safe ``dt``.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 2 or y.shape != (len(x),) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError(f"x must be a finite (P, D) array and y a finite (P,) vector, got {x.shape}, {y.shape}")
    if not (isinstance(depth, (int, np.integer)) and depth >= 1 and isinstance(width, (int, np.integer)) and width >= 1):
        raise DataError(f"depth and width must be integers ≥ 1, got {depth!r}, {width!r}")
    if not (gamma0 > 0 and np.isfinite(gamma0) and beta > 0 and np.isfinite(beta)):
        raise DataError(f"gamma0 and beta must be finite and > 0 (the Langevin sampler needs a temperature 1/beta), "
                        f"got {gamma0}, {beta}")
    if noise not in NOISE:
        raise DataError(f"noise must be one of {sorted(NOISE)}, got {noise!r}")
    steps, burn = int(round(t_end / dt)), int(round(burn_in / dt))
    if steps < record_every or steps % record_every:
        raise DataError(f"t_end / dt = {steps} steps must be a positive multiple of record_every = {record_every}")
    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    x_eval = x if x_test is None else np.concatenate([x, np.asarray(x_test, dtype=float)])
    if x_eval.shape[1] != x.shape[1] or not np.all(np.isfinite(x_eval)):
        raise DataError(f"x_test must be a finite array with {x.shape[1]} columns")
    phi = derive(activation).module().phi
    run = jax.vmap(lambda k: _chain(phi, k, jnp.asarray(x), jnp.asarray(y), jnp.asarray(x_eval), gamma0, beta, dt,
                                    int(width), int(depth), steps, burn, record_every, noise))
    phi, mean_output, stiff, last = (np.asarray(a) for a in run(keys))
    k = 1 + np.max(np.linalg.eigvalsh(stiff)) if np.all(np.isfinite(stiff)) else np.nan
    if not (np.all(np.isfinite(phi)) and np.isfinite(k)) or k * dt > MAX_STEP_CURVATURE:
        raise ConvergenceError(f"dt = {dt} is too large for these Langevin chains: the stiffest direction has "
                               f"curvature {k:.3g}, so dt must be ≤ {MAX_STEP_CURVATURE}/{k:.3g} = "
                               f"{MAX_STEP_CURVATURE / k:.2g}; use a smaller dt")
    P = len(y)
    overlap = np.einsum("i,cLij,j->cL", y, phi[..., :P, :P], y) / (y @ y)
    return LangevinKernels(phi, overlap, steps // record_every, last, mean_output)
