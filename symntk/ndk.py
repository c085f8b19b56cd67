"""The Neural Dynamical Kernel: a wide bias-free MLP trained by Langevin dynamics (theory/ndk.md N1–N14).

The two-time layer step N4–N6 is the lazy NTK step of :mod:`symntk.kernels` (theory/lazy.md
L9–L11) of the standard parameterisation (α_w = 1, no bias) with the weight variance σ_w²
replaced by the weight autocorrelation m of N3: with Σ^ℓ = m K^{ℓ−1} and Θ^ℓ = G^{ℓ−1},

    Σ^{ℓ+1} = m V_φ(Σ^ℓ),    Θ^{ℓ+1} = V_φ(Σ^ℓ) + m V̇_φ(Σ^ℓ) Θ^ℓ,    Σ^1 = m x·x'/d,  Θ^1 = x·x'/d,

using m(t, t) for a point with itself and m(t, t') across times.  The last step gives
C = Σ^{L+1} (N5) and Θ^{L+1} = G^L (N6), so K_d = e^{−k|t−t'|} Θ^{L+1} (N7).  ``derivations/ndk.md`` has the derivation and the
normalisation checks.  Every time pair runs the jitted passes ``kernels._diagonal_pass`` and
``kernels._tile_pass`` of the generated dual activation, vmapped over time.

The mean predictor N8 is solved on the two-scale grid of :func:`time_grid`: by
:func:`symntk.solve.volterra.mean_low_rank` with K_d interpolated in (e^{−k(t−s)}, e^{−ks})
(``LangevinMLP._interpolant``), or by :func:`symntk.solve.volterra.mean` at every time pair; its
covariance N9 by :func:`symntk.solve.volterra.covariance`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from .errors import DataError
from .gaussian import derive
from .kernels import _check_x, _diagonal_pass, _dot, _tile_pass, can_lengthen, lengthened, series_bound, warn_truncation
from .solve import chebyshev, volterra

#: largest (time points) × (train + test points) for which ``predict`` forms the covariance N9 by default
COVARIANCE_SIZE = 3000
#: kernel entries per batch of time pairs in ``LangevinMLP.kernels`` (bounds its memory)
PAIR_ENTRIES = 2**21
#: default tolerance of the interpolated K_d in ``predict``, relative to max|K_d|
KERNEL_TOL = 1e-10
#: most bytes of the interpolated K_d's modes, or of its weights c_nm, in ``predict`` (beyond: every time pair)
INTERPOLATION_BYTES = 2**31
#: k·t beyond which K_d is not interpolated further (constant to e^{−30} of its scale)
SETTLED_KT = 30.0
#: cost of one interpolation node in time pairs of the every-pair solve: measured ~1 at P = 500 (12.5 against
#: 16 ms), ~30 at P = 20 (host round trips; both solves then take under a second); 4 keeps short grids exact
NODE_COST = 4


@dataclass(frozen=True)
class Phases:
    """Time scales of the two learning phases (theory/ndk.md, "Time scales").

    ``gradient`` = 1/λ_max and ``gradient_slowest`` = 1/λ_min of the NTK K_d(0,0,X,X) (set by σ₀²);
    ``diffusive`` = σ²/T, the relaxation time of the weights towards the prior (∞ at T = 0).
    """

    gradient: float
    gradient_slowest: float
    diffusive: float


@dataclass(frozen=True)
class NDKSolution:
    """Mean predictor N8 and its covariance N9 at ``times``.

    ``mean``: (n_t, P + P_test), training points first; ``covariance``: (n_t, P + P_test, P + P_test)
    equal-time covariance, or None when it was not formed; ``grid``: the solver's time grid
    (``times`` is a subset of it); ``phases``: :class:`Phases`; ``kernel_error``: the measured largest error of
    the interpolated K_d relative to max|K_d| (0 when K_d was evaluated at every time pair).
    """

    times: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray | None
    phases: Phases
    grid: np.ndarray
    n_train: int
    kernel_error: float = 0.0

    @property
    def variance(self) -> np.ndarray:
        """Var f(x, t), shape (n_t, P + P_test)."""
        if self.covariance is None:
            raise ValueError("the covariance was not formed (problem too large or covariance=False); "
                             "call predict(..., covariance=True) on fewer time or data points")
        return np.diagonal(self.covariance, axis1=1, axis2=2)


def _positive(name, value, allow_zero=False):
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise DataError(f"{name} must be {'≥' if allow_zero else '>'} 0 and finite, got {value}")
    return value


class LangevinMLP:
    """The bias-free MLP N1 (``depth`` hidden layers, all weights O(1)) trained by the Langevin
    dynamics N2: initial weight variance ``sigma0_sq`` (σ₀²), prior variance ``sigma_sq`` (σ²),
    temperature ``temperature`` (T, also the Bayesian noise variance); k = T/σ².  ``n_terms``: the
    Hermite truncation of a dual activation without closed form; by default N = 96, switched to
    N = 320 the first time a truncation bound exceeds 1e-10 (as ``MLP``)."""

    def __init__(self, activation, depth, sigma0_sq, sigma_sq, temperature, n_terms=None):
        if not (isinstance(depth, (int, np.integer)) and depth >= 0):
            raise DataError(f"depth counts hidden layers and must be an integer ≥ 0, got {depth!r}")
        self.sigma0_sq = _positive("sigma0_sq", sigma0_sq)
        self.sigma_sq = _positive("sigma_sq", sigma_sq)
        self.temperature = _positive("temperature", temperature, allow_zero=True)
        self.depth, self.rate = int(depth), self.temperature / self.sigma_sq
        self.dual = derive(activation) if n_terms is None else derive(activation, n_terms=n_terms)
        self.activation = self.dual.activation
        self._features, self._pair = _compiled(self.dual.module(), self.depth)
        self._lengthen = can_lengthen(self.dual, n_terms)

    def _lengthened(self, bound):
        """:func:`kernels.lengthened` (the longest Hermite series, once, when ``bound`` needs it, as
        ``MLP.kernel``), with this network's passes rebuilt; True when the caller must recompute."""
        if not lengthened(self, bound):
            return False
        self._features, self._pair = _compiled(self.dual.module(), self.depth)
        return True

    def __repr__(self):
        return (f"LangevinMLP({str(self.activation.expr)!r}, depth={self.depth}, sigma0_sq={self.sigma0_sq}, "
                f"sigma_sq={self.sigma_sq}, temperature={self.temperature})")

    @property
    def _params(self):
        return jnp.asarray([self.sigma0_sq, self.sigma_sq, self.rate])

    def recursion(self):
        """The symbolic two-time recursion N3–N7 for this network (``.latex()``)."""
        from .recursion.ndk import NdkRecursion
        return NdkRecursion(self.dual, self.depth)

    def autocorrelation(self, t, s):
        """N3: m(t, s) = σ² e^{−k|t−s|} + (σ₀² − σ²) e^{−k(t+s)}."""
        return weight_autocorrelation(t, s, self.sigma0_sq, self.sigma_sq, self.rate)

    def kernels(self, t, s, x1, x2=None):
        """(C, K_d) of N5 and N7 at the broadcast time pairs (t, s): each of shape
        broadcast(t, s).shape + (N1, N2).  K_d(t, s) for t < s is its mirror e^{−k(s−t)} G^L(t, s).
        Without ``x2``, entries with t = s and x = x' come from the exact diagonal (E[φ²], E[φ'²])."""
        t, s = (np.asarray(a, dtype=float) for a in np.broadcast_arrays(t, s))
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(s)) and np.all(t >= 0) and np.all(s >= 0)):
            raise DataError("times must be finite and ≥ 0")
        x1 = jnp.asarray(_check_x("x1", x1))
        x2 = x1 if x2 is None else jnp.asarray(_check_x("x2", x2))
        if x2.shape[1] != x1.shape[1]:
            raise DataError(f"x1 has {x1.shape[1]} features but x2 has {x2.shape[1]}")
        return self._kernels(t, s, x1, x2, x1.shape[0] if x2 is x1 else 0)

    def _kernels(self, t, s, x1, x2, same):
        """``kernels`` on checked inputs, where x2 = x1[:same] (entries with t = s and x = x' from the diagonal)."""
        nodes, index = np.unique(np.concatenate([t.ravel(), s.ravel()]), return_inverse=True)
        padded = np.resize(nodes, 1 << (len(nodes) - 1).bit_length())  # a power-of-two count: few compilations
        nodes, index = jnp.asarray(padded), index.reshape(2, -1)
        batch = max(1, min(t.size, PAIR_ENTRIES // (x1.shape[0] * x2.shape[0])))

        def evaluate():
            f1, diag = self._features(self._params, nodes, x1)
            f2 = f1 if x2 is x1 else self._features(self._params, nodes, x2)[0]
            return diag, *(np.array(a) for a in _pair_map(self._pair, batch, self._params, jnp.asarray(index),
                                                          nodes, _dot(x1, x2), f1, f2))

        diag, C, Kd, bound = evaluate()
        if self._lengthened(np.max(bound)):
            diag, C, Kd, bound = evaluate()
        warn_truncation(self.dual, np.max(bound), "LangevinMLP")
        if same:
            equal, i = np.flatnonzero(t.ravel() == s.ravel()), np.arange(same)
            for out, d in zip((C, Kd), diag):
                out[equal[:, None], i, i] = np.asarray(d)[index[0, equal]][:, :same]
        shape = t.shape + (x1.shape[0], x2.shape[0])
        return C.reshape(shape), Kd.reshape(shape)

    def ndk(self, t, s, x1, x2=None):
        """K_d(t, s, x, x') of N7, shape broadcast(t, s).shape + (N1, N2)."""
        return self.kernels(t, s, x1, x2)[1]

    def prior_covariance(self, t, s, x1, x2=None):
        """C(t, s, x, x') of N5 (the covariance of the untrained Langevin process), same shapes as ``ndk``."""
        return self.kernels(t, s, x1, x2)[0]

    def phases(self, x_train) -> Phases:
        """The gradient time scales of K_d(0,0,X,X) and the diffusive time σ²/T."""
        theta = self.ndk(0.0, 0.0, x_train)
        if not np.all(np.isfinite(theta)):
            raise DataError(f"the NTK K_d(0,0,X,X) of {self.activation.expr} is not finite: φ' has a jump (a Dirac "
                            "mass in φ'), so E[φ'(u)²] diverges; use a continuous activation")
        lam = np.linalg.eigvalsh(theta)
        inv = lambda v: 1 / v if v > 0 else np.inf  # noqa: E731
        return Phases(inv(lam[-1]), inv(lam[0] if lam[0] > 1e-12 * lam[-1] else 0.0), inv(self.rate))

    def time_grid(self, x_train, n_times=None, t_max=None, phases=None):
        """The solver's two-scale time grid (t_0 = 0), see :func:`two_scale_grid`: spacing
        0.05/λ_max(Θ) at the start, growing geometrically (×1.05 per step) up to 0.1 σ²/T, then
        uniform, to ``t_max`` (default 20 σ²/T, or 20/λ_min(Θ) at T = 0).  ``phases``: this
        network's :meth:`phases` on ``x_train``, when already computed."""
        ph = self.phases(x_train) if phases is None else phases
        if t_max is None:
            t_max = 20 * (ph.diffusive if self.temperature > 0 else ph.gradient_slowest)
            if not np.isfinite(t_max):
                raise DataError("at T = 0 with a singular NTK the dynamics never settle: pass t_max or times")
        return two_scale_grid(0.05 * ph.gradient, 0.1 * ph.diffusive, float(t_max), n_times)

    def predict(self, x_train, y_train, x_test=None, times=None, n_times=None, covariance=None,
                kernel_tol=KERNEL_TOL) -> NDKSolution:
        """Mean N8 and covariance N9 of f on the training points (first) and ``x_test``.

        ``times``: where to report (any non-negative times; the solver adds the points of its
        own two-scale grid below max(times), so both phases are resolved whatever is asked);
        default: the whole grid of :meth:`time_grid` with ``n_times`` points.  ``covariance``:
        form N9 (cost O((n_t·P_all)³)); default when n_t·(P + P_test) ≤ ``COVARIANCE_SIZE``.
        ``kernel_tol``: the mean uses K_d interpolated in time to this tolerance relative to
        max|K_d| (:meth:`_interpolant`) whenever that takes fewer than n_t(n_t + 1)/(2·``NODE_COST``)
        kernel evaluations (the every-pair solve evaluates all n_t(n_t + 1)/2 time pairs; hundreds
        against 45 150 at n_t = 300); the achieved error is ``kernel_error``.  None evaluates every pair.
        """
        if kernel_tol is not None and not 0 < kernel_tol < 1:
            raise DataError(f"kernel_tol must be in (0, 1), or None for every time pair, got {kernel_tol}")
        x_train = _check_x("x_train", x_train)
        y = np.asarray(y_train, dtype=float)
        if y.shape != (x_train.shape[0],) or not np.all(np.isfinite(y)):
            raise DataError(f"y_train must be a finite vector of shape ({x_train.shape[0]},), got shape {y.shape}")
        x_all = x_train
        if x_test is not None:
            x_test = _check_x("x_test", x_test)
            if x_test.shape[1] != x_train.shape[1]:
                raise DataError(f"x_train has {x_train.shape[1]} features but x_test has {x_test.shape[1]}")
            x_all = np.concatenate([x_train, x_test])
        phases = self.phases(x_train)
        if times is None:
            grid = self.time_grid(x_train, n_times, phases=phases)
            report = np.arange(len(grid))
        else:
            times = np.atleast_1d(np.asarray(times, dtype=float))
            if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(times < 0):
                raise DataError("times must be a 1-D list of finite times ≥ 0")
            grid = np.union1d(self.time_grid(x_train, n_times, max(times.max(), 1e-300), phases), times)
            report = np.searchsorted(grid, times)
        size = len(grid) * len(x_all)
        if covariance is None:
            covariance = size <= COVARIANCE_SIZE
        elif covariance and size > COVARIANCE_SIZE * 4:
            raise DataError(f"the covariance N9 needs ~{2 * 8 * size**2 / 2**30:.1f} GiB and O({size}³) work "
                            f"({len(grid)} times × {len(x_all)} points); use fewer, or covariance=False")
        budget = len(grid) * (len(grid) + 1) // (2 * NODE_COST)
        fitted = None
        if kernel_tol is not None and budget >= chebyshev.START**2:
            max_rank = INTERPOLATION_BYTES // (8 * max(len(x_all) * len(y), len(grid) ** 2))  # modes, or c_nm
            fitted = self._interpolant(x_all, len(y), grid[-1], kernel_tol, budget, max_rank)
        if fitted is None:
            mean, kernel_error = self._mean_exact(grid, x_all, y), 0.0
        else:
            mean, kernel_error = self._mean_interpolated(grid, fitted, len(x_all), y), fitted.error
        cov = None
        if covariance:
            C, Kd = self.kernels(grid[:, None], grid[None, :], x_all)
            cov = volterra.covariance(grid, Kd[..., :len(y)], C)[report]
        return NDKSolution(grid[report] if times is None else times, np.asarray(mean)[report], cov,
                           phases, grid, len(y), kernel_error)

    def _mean_exact(self, grid, x_all, y):
        """N8 with K_d evaluated at every time pair of the grid (:func:`volterra.mean`)."""
        dot = _dot(jnp.asarray(x_all), jnp.asarray(x_all[:len(y)]))

        def evaluate():
            features, (_, self_kernel) = self._features(self._params, jnp.asarray(grid), jnp.asarray(x_all))
            return volterra.mean(self._pair, self._params, grid, dot, features, self_kernel[:, :len(y)], jnp.asarray(y))

        mean, bound = evaluate()
        if self._lengthened(float(bound)):
            mean, bound = evaluate()
        warn_truncation(self.dual, float(bound), "LangevinMLP")
        return mean

    def _interpolant(self, x_all, n_train, t_max, tol, budget, max_rank):
        """K_d(t, s, x_all, x_train) for 0 ≤ s ≤ t ≤ t_max as Σ_r c_r(τ, β) U_r (:func:`chebyshev.fit`),
        or None when that needs more than ``budget`` kernel evaluations or ``max_rank`` modes.

        With β = e^{−ks} and α = e^{−k(t−s)}, N3 gives m(s, s) = σ² + (σ₀² − σ²)β²,
        m(t, t) = σ² + (σ₀² − σ²)α²β² and m(t, s) = α m(s, s), so K_d = α G^L is a function of
        (α, β) ∈ (0, 1]² alone: smooth in β and, in τ = (1 − α)^{1/2}, also across t = s, where a kinked φ
        makes it non-analytic in α (the arc-cosine angle θ ∝ (1 − α)^{1/2} at x = x').
        The box stops at k·t = ``SETTLED_KT``: beyond it K_d = α G^L (α < e^{−30}) and its change with β
        (∝ β² < e^{−60}) are below 1e-13 of its scale, and later times are evaluated at the box's edge.
        """
        k = self.rate
        kt = min(k * t_max, SETTLED_KT)
        box = (0.0, float(np.sqrt(-np.expm1(-kt))), float(np.exp(-kt)), 1.0)
        x1, x2 = jnp.asarray(x_all), jnp.asarray(x_all[:n_train])

        def evaluate(tau, beta):  # padded to chebyshev.POINTS time pairs, so that nothing recompiles
            s = -np.log(beta) / k if k > 0 else np.zeros_like(beta)
            t = s - np.log1p(-tau**2) / k if k > 0 else s
            t, s = (np.resize(a, chebyshev.POINTS) for a in (t, s))
            return self._kernels(t, s, x1, x2, n_train)[1][:len(tau)].reshape(len(tau), -1)

        return chebyshev.fit(evaluate, box, tol, budget, max_rank)

    def _mean_interpolated(self, grid, fitted, n_all, y):
        """N8 with K_d(t_n, t_m) = Σ_r c_r(τ_nm, β_m) U_r (:func:`volterra.mean_low_rank`)."""
        n, m = np.tril_indices(len(grid))
        c = np.zeros((len(grid), len(grid), fitted.modes.shape[0]))
        c[n, m] = fitted.weights(np.sqrt(-np.expm1(-self.rate * (grid[n] - grid[m]))), np.exp(-self.rate * grid[m]))
        modes = fitted.modes.reshape(-1, n_all, len(y))
        return volterra.mean_low_rank(grid, jnp.asarray(c), jnp.asarray(modes), jnp.asarray(y))


def weight_autocorrelation(t, s, sigma0_sq, sigma_sq, rate):
    """N3: m(t, s) = σ² e^{−k|t−s|} + (σ₀² − σ²) e^{−k(t+s)} (NumPy or JAX arrays)."""
    xp = jnp if isinstance(t, jax.Array) or isinstance(s, jax.Array) else np
    return sigma_sq * xp.exp(-rate * xp.abs(t - s)) + (sigma0_sq - sigma_sq) * xp.exp(-rate * (t + s))


@lru_cache(maxsize=None)
def _compiled(module, depth):
    """The jitted per-time features pass and the (unjitted) pair step of one activation and depth,
    shared by every LangevinMLP with them (parameters are traced, so nothing recompiles)."""
    features = jax.jit(jax.vmap(partial(_features, module.features, module.diagonal, depth), in_axes=(None, 0, None)))
    return features, partial(_pair, module.pair, series_bound(module), depth)


def _coefficients(depth, m):
    """Per weight layer (σ_w², σ_b², α_w, α_b) = (m, 0, 1, 0): the lazy step that is N4–N6 at autocorrelation m."""
    ones = jnp.ones(depth + 1, dtype=jnp.result_type(m))
    return m * ones, 0 * ones, ones, 0 * ones


def _features(features, diagonal, depth, params, t, x):
    """At one time t, for every row of x: the per-layer features of Σ^1..Σ^L(t, t, x, x) and the
    diagonals (C, K_d)(t, t, x, x)."""
    m = weight_autocorrelation(t, t, *params)
    return _diagonal_pass(features, diagonal, x, _coefficients(depth, m))


def _pair(pair, bound, depth, params, t, s, dot, f1, f2):
    """(C, K_d)(t, s) of N5, N7 between two point sets given ``dot`` = x·x'/d and their features at t and s,
    and the largest relative truncation bound of a Hermite series over the layers (0 for a closed form)."""
    m = weight_autocorrelation(t, s, *params)
    C, G, *worst = _tile_pass(pair, dot, f1, f2, _coefficients(depth, m), bound)
    return C, jnp.exp(-params[2] * jnp.abs(t - s)) * G, worst[0] if worst else jnp.zeros((), C.dtype)


@partial(jax.jit, static_argnums=(0, 1))
def _pair_map(pair, batch, params, index, nodes, dot, f1, f2):
    """``pair`` at the time pairs (nodes[index[0]], nodes[index[1]]), ``batch`` pairs at a time."""
    at = lambda tree, i: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
    return jax.lax.map(lambda ij: pair(params, nodes[ij[0]], nodes[ij[1]], dot, at(f1, ij[0]), at(f2, ij[1])),
                       index.T, batch_size=batch)


def two_scale_grid(h_start, h_cap, t_max, n_times=None):
    """Times 0 = t_0 < … < t_{n−1} = t_max as a smooth map of a uniform grid u_j = j/(n − 1):

        t(v) = (h_cap/a) log(1 + b (e^v − 1)/(1 + b)),   b = h_start/(h_cap − h_start),   v = v_max u

    whose spacing starts at ``h_start``, grows by a factor e^a = 1.05 per step and saturates at
    ``h_cap`` (∞: pure geometric growth).  Default ``n_times``: the natural count at those
    spacings.  Because t is smooth in u, the trapezoid rule on it converges as O(n⁻²), and the
    grids for n and 2n − 1 points are nested.
    """
    a = np.log(1.05)
    if not (h_start > 0 and t_max > 0):
        raise DataError(f"the time grid needs h_start > 0 and t_max > 0, got {h_start}, {t_max}")
    if np.isinf(h_cap):
        v_max = np.log1p(t_max * a / h_start)
        grid = lambda v: (h_start / a) * np.expm1(v)  # noqa: E731
    else:
        b = h_start / max(h_cap - h_start, 1e-12 * h_start)
        v_max = np.log1p(np.expm1(min(t_max * a / h_cap, 700.0)) * (1 + b) / b)
        grid = lambda v: (h_cap / a) * np.log1p(b * np.expm1(v) / (1 + b))  # noqa: E731
    n = int(np.ceil(v_max / a)) + 1 if n_times is None else int(n_times)
    if n < 2:
        raise DataError(f"n_times must be ≥ 2, got {n_times}")
    t = grid(v_max * np.arange(n) / (n - 1))
    t[-1] = t_max
    return t
