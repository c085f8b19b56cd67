"""Deep linear networks in the Bayesian feature-learning limit, exactly (theory/adaptive.md D1–D6).

For φ(h) = h the single-site integrals are Gaussian and the saddle point of the action B2 is
solved by one scalar equation:

* whitened data (Kˣ = I, |y| = 1), D4:  c_L = (1 + γ₀² c_L/(c_L + β⁻¹)²)^L, c_ℓ = c_L^{ℓ/L},
  χ = 1 − c_L^{1/L} (the conserved c_ℓ ĉ_ℓ of D3);
* general Kˣ, D6:  1 + s = (1 + κ'(s))^L with κ'(s) = γ₀²(1 + s) vᵀKˣv, v = ((1 + s)Kˣ + β⁻¹I)⁻¹y;
  Φˡ = Kˣ + ((1 + κ')^ℓ − 1) uuᵀ/m₀ (u = Kˣv, m₀ = vᵀKˣv) and Φ̂ˡ = −q_ℓ vvᵀ with
  q_ℓ = κ'/(m₀ (1 + κ')^ℓ) (Sherman–Morrison on D1; derivations/deep_linear.md).

Both are solved in a logarithmic variable on a bracket proven to hold the root (safeguarded
Newton for D4, bisection for D6), so
every γ₀ ≥ 0, β ∈ [1, ∞] and depth ≥ 1 converges without overflow.  ``solve`` reports the
residuals of D1 and B6 at its solution.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import lambertw

from .errors import DataError
from .recursion.deep_linear import saddle_equations  # noqa: F401  (the symbolic derivation, re-exported)

HALVINGS, NEWTON_STEPS = 16, 8  # D4: bisection to ≤ 0.25 in log c, then Newton (clipped to the bracket)
BISECTIONS = 200  # halvings of the D6 bracket (≤ 2e4 wide in log(1 + s)): far below float64 resolution


@dataclass(frozen=True)
class Overlaps:
    """Whitened overlaps: ``c`` = (c_1..c_L) = yᵀΦˡy, ``c_hat`` = (ĉ_1..ĉ_L), ``chi`` = c_ℓĉ_ℓ (D3);
    leading axes broadcast over γ₀ and β, the last is the layer."""

    c: np.ndarray
    c_hat: np.ndarray
    chi: np.ndarray


@dataclass(frozen=True)
class Asymptotes:
    """The three scalings of c_L (D5): lazy γ₀ → 0, rich γ₀ → ∞, deep L → ∞."""

    lazy: np.ndarray
    rich: np.ndarray
    deep: np.ndarray


def _check(depth, gamma0, beta):
    depth, gamma0, beta = (np.asarray(a, dtype=float) for a in (depth, gamma0, beta))
    if np.any(depth < 1) or np.any(depth != np.round(depth)):
        raise DataError(f"depth must be an integer ≥ 1, got {depth}")
    if np.any(~(gamma0 >= 0)) or np.any(~np.isfinite(gamma0)):
        raise DataError(f"gamma0 must be finite and ≥ 0, got {gamma0}")
    if np.any(~(beta > 0)):
        raise DataError(f"beta must be > 0 (np.inf for noiseless), got {beta}")
    return depth, gamma0, beta


@jax.jit
def _log_last_overlap(depth, gamma0, beta):
    """x = log c_L solving F(x) = L log(1 + g(x)) − x = 0, g = γ₀² e^{−x}/(1 + β⁻¹e^{−x})², on the
    bracket [0, L log(1 + γ₀²) + 1] (F(0) ≥ 0 > F(hi); F decreases for β ≥ 1): HALVINGS bisection
    steps shrink it to ≤ 1.4e4/2¹⁶ ≈ 0.2, then NEWTON_STEPS Newton steps (clipped to the bracket)
    reach rounding level — checked against 200 bisections over L ≤ 1000, γ₀ ∈ [1e-3, 1e3],
    β ∈ [1, ∞] (few ulp).  Vectorised over the broadcast inputs."""
    b = 1 / beta

    def F_dF(x):
        e = jnp.exp(-x)
        g = gamma0**2 * e / (1 + b * e) ** 2
        return depth * jnp.log1p(g) - x, depth * g * (2 * b * e / (1 + b * e) - 1) / (1 + g) - 1

    def halve(_, bracket):
        lo, hi = bracket
        mid = (lo + hi) / 2
        up = F_dF(mid)[0] > 0
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

    def newton(_, x):
        F, dF = F_dF(x)
        return jnp.clip(x - F / dF, lo, hi)

    lo = jnp.zeros(jnp.broadcast_shapes(jnp.shape(depth), jnp.shape(gamma0), jnp.shape(beta)))
    lo, hi = jax.lax.fori_loop(0, HALVINGS, halve, (lo, lo + depth * jnp.log1p(gamma0**2) + 1))
    return jax.lax.fori_loop(0, NEWTON_STEPS, newton, (lo + hi) / 2)


def last_overlap(depth, gamma0, beta):
    """c_L of D4 for broadcasting arrays of depth, γ₀ and β (vectorised; β = np.inf allowed)."""
    depth, gamma0, beta = _check(depth, gamma0, beta)
    return np.exp(np.asarray(_log_last_overlap(depth, gamma0, beta)))


def whitened_overlaps(depth, gamma0, beta) -> Overlaps:
    """D2–D4 for Kˣ = I, |y| = 1 at one depth, broadcasting over γ₀ and β."""
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise DataError(f"depth must be an integer ≥ 1, got {depth!r}")
    _, gamma0, beta = _check(depth, gamma0, beta)
    x = np.asarray(_log_last_overlap(float(depth), gamma0, beta))[..., None]
    ell = np.arange(1, depth + 1)
    c = np.exp(x * ell / depth)
    chi = -np.expm1(x[..., 0] / depth)
    return Overlaps(c, chi[..., None] / c, chi)


def asymptotes(depth, gamma0, beta) -> Asymptotes:
    """D5: lazy 1 + Lγ₀²/(1 + β⁻¹)²; rich γ₀^{2L/(L+1)}; deep Lγ₀²/W(Lγ₀²) (Lambert W)."""
    depth, gamma0, beta = _check(depth, gamma0, beta)
    z = depth * gamma0**2
    with np.errstate(divide="ignore", invalid="ignore"):
        deep = np.where(z > 0, z / np.real(lambertw(z)), 1.0)
    return Asymptotes(1 + z / (1 + 1 / beta) ** 2, gamma0 ** (2 * depth / (depth + 1)), deep)


@dataclass(frozen=True)
class DeepLinearSolution:
    """Saddle point of B2 for φ(h) = h on general data (D6).

    ``phi``: (L, P, P) kernels Φ¹..Φᴸ; ``phi_hat``: (L, P, P); ``s``: the scalar of D6;
    ``residual``: max relative residual of D1 and B6 (:func:`residuals`); ``predict(k_test_train)``: the
    predictor f(x) = Kˣ(x, X)(Kˣ + β⁻¹I/(1 + s))⁻¹ y.
    """

    phi: np.ndarray
    phi_hat: np.ndarray
    s: float
    residual: float
    kx: np.ndarray
    y: np.ndarray
    beta: float

    def predict(self, k_test_train):
        """f(x) from the input kernel rows Kˣ(x, X), shape (N_test, P)."""
        ridge = np.eye(len(self.y)) / (self.beta * (1 + self.s))
        return np.asarray(k_test_train) @ np.linalg.solve(self.kx + ridge, self.y)


def solve(kx, y, depth, gamma0, beta) -> DeepLinearSolution:
    """D6 for input kernel ``kx`` (P, P) and targets ``y`` (P,)."""
    kx, y = np.asarray(kx, dtype=float), np.asarray(y, dtype=float)
    P = len(y)
    if kx.shape != (P, P) or y.shape != (P,) or not (np.all(np.isfinite(kx)) and np.all(np.isfinite(y))):
        raise DataError(f"kx must be a finite (P, P) matrix and y a finite (P,) vector, got {kx.shape}, {y.shape}")
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise DataError(f"depth must be an integer ≥ 1, got {depth!r}")
    _check(depth, gamma0, beta)
    lam, U = np.linalg.eigh((kx + kx.T) / 2)
    if lam[0] < -1e-10 * lam[-1]:
        raise DataError(f"kx is not positive semi-definite (smallest eigenvalue {lam[0]:.3g})")
    lam = np.maximum(lam, 0.0)
    b = 1 / beta
    if b == 0 and lam[0] <= 1e-12 * lam[-1]:
        raise DataError("beta = inf needs a positive-definite kx (y may lie in its null space); use a finite beta")
    yt = U.T @ y

    def kappa(s):  # κ'(s) and m₀(s) in the eigenbasis of Kˣ
        m0 = np.sum(lam * yt**2 / ((1 + s) * lam + b) ** 2)
        return gamma0**2 * (1 + s) * m0, m0

    # bisection on z = log(1 + s) ∈ [0, L log(1 + κ_max) + 1] with κ'(s) ≤ κ_max for all s ≥ 0:
    # each term λ(1+s)/((1+s)λ + β⁻¹)² ≤ min(1/(4β⁻¹), 1/λ).  (κ' need not be monotone, so F(z) =
    # L log(1 + κ') − z may have several roots; bisection returns one, and the residuals confirm it.)
    with np.errstate(divide="ignore"):
        bound = np.minimum(np.inf if b == 0 else 1 / (4 * b), np.where(lam > 0, 1 / lam, np.inf))
    kappa_max = gamma0**2 * np.sum(yt**2 * np.where(yt != 0, bound, 0.0))
    lo, hi = 0.0, depth * np.log1p(kappa_max) + 1.0
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        if depth * np.log1p(kappa(np.expm1(mid))[0]) > mid:
            lo = mid
        else:
            hi = mid
    s = float(np.expm1((lo + hi) / 2))
    kp, m0 = kappa(s)
    v = U @ (yt / ((1 + s) * lam + b))
    u = kx @ v
    ell = np.arange(1, depth + 1)[:, None, None]
    phi = kx + (np.power(1 + kp, ell) - 1) * np.outer(u, u) / m0
    phi_hat = -kp / (m0 * np.power(1 + kp, ell)) * np.outer(v, v)
    res = residuals(kx, y, phi, phi_hat, gamma0, beta)
    return DeepLinearSolution(phi, phi_hat, s, res, kx, y, float(beta))


def residuals(kx, y, phi, phi_hat, gamma0, beta):
    """max over ℓ of the D1 and B6 residuals, each relative to its largest term, in inverse-free forms
    applied to two random probe vectors Z (matrix–vector products only, so O(L P²)):
    (Φˡ − Φˡ⁻¹ + Φˡ⁻¹Φ̂ˡΦˡ)Z (⇔ Φˡ = [(Φˡ⁻¹)⁻¹ + Φ̂ˡ]⁻¹), (Φ̂ˡ⁺¹ − Φ̂ˡ − Φ̂ˡΦˡΦ̂ˡ⁺¹)Z (⇔ Φ̂ˡ = [(Φ̂ˡ⁺¹)⁻¹ + Φˡ]⁻¹),
    and (M Φ̂ᴸ M + γ₀² yyᵀ)Z with M = Φᴸ + β⁻¹I (B6).  A nonzero residual matrix is missed with probability 0."""
    Z = np.random.default_rng(0).normal(size=(len(y), 2))
    rel = lambda total, *terms: np.max(np.abs(total)) / max(np.max(np.abs(t)) for t in terms)  # noqa: E731
    prev = np.concatenate([kx[None], phi[:-1]])
    r = []
    for i in range(len(phi)):
        a, b, t = phi[i] @ Z, prev[i] @ Z, prev[i] @ (phi_hat[i] @ (phi[i] @ Z))
        r.append(rel(a - b + t, a, b, t))
    for i in range(len(phi) - 1):
        a, b, t = phi_hat[i + 1] @ Z, phi_hat[i] @ Z, phi_hat[i] @ (phi[i] @ (phi_hat[i + 1] @ Z))
        r.append(rel(a - b - t, a, b, t))
    M = lambda v: phi[-1] @ v + v / beta  # noqa: E731
    t, g = M(phi_hat[-1] @ M(Z)), gamma0**2 * np.outer(y, y @ Z)
    r.append(rel(t + g, t, g))
    return float(max(r))


def action(phi, phi_hat, kx, y, gamma0, beta):
    """B2 for φ(h) = h: −½Σ Tr(ΦˡΦ̂ˡ) + ½Σ ln det(I + Φˡ⁻¹Φ̂ˡ) + (γ₀²/2) yᵀ(Φᴸ + β⁻¹I)⁻¹y (JAX)."""
    prev = jnp.concatenate([kx[None], phi[:-1]])
    eye = jnp.eye(len(y))
    logdet = jax.vmap(lambda a, h: jnp.linalg.slogdet(eye + a @ h)[1])(prev, phi_hat)
    return (-0.5 * jnp.sum(phi * phi_hat) + 0.5 * jnp.sum(logdet)
            + 0.5 * gamma0**2 * y @ jnp.linalg.solve(phi[-1] + eye / beta, y))


def minmax(kx, y, depth, gamma0, beta, tol=1e-10, max_steps=100):
    """The matrix saddle point of B2 found directly (an independent path to D6): damped Newton on
    ∇S(Φ, Φ̂) = 0 over symmetric Φˡ, Φ̂ˡ, from the lazy point (Φˡ = Kˣ, Φ̂ˡ = 0), with JAX gradients
    and Hessian; returns (phi, phi_hat, gradient norm).  Dense Hessian: small P and depth only."""
    kx, y = jnp.asarray(kx, float), jnp.asarray(y, float)
    P = len(y)
    iu = np.triu_indices(P)

    def unpack(z):
        m = jnp.zeros((2 * depth, P, P)).at[:, iu[0], iu[1]].set(z.reshape(2 * depth, -1))
        m = m + jnp.swapaxes(m, 1, 2) - jax.vmap(jnp.diag)(jax.vmap(jnp.diag)(m))
        return m[:depth], m[depth:]

    grad = jax.jit(jax.grad(lambda z: action(*unpack(z), kx, y, gamma0, beta)))
    hess = jax.jit(jax.jacfwd(grad))
    z = jnp.concatenate([jnp.tile(kx[iu], depth), jnp.zeros(depth * len(iu[0]))])
    norm = lambda z: float(jnp.max(jnp.abs(grad(z))))  # noqa: E731
    g = norm(z)
    for _ in range(max_steps):
        if g < tol:
            break
        step = jnp.linalg.solve(hess(z), grad(z))
        for scale in 0.5 ** np.arange(30):
            trial = z - scale * step
            gt = norm(trial)
            if np.isfinite(gt) and gt < g:
                z, g = trial, gt
                break
        else:
            break
    phi, phi_hat = unpack(z)
    return np.asarray(phi), np.asarray(phi_hat), g
