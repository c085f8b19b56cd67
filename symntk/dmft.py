"""Deep aNTK: the dynamical mean-field theory of gradient flow with weight decay (theory/adaptive.md
T1–T5; derived in derivations/antk.md), solved by damped iteration on the two-time kernels.

Network A1 with L hidden layers, flow dθ/dt = −[γ₀²N∇𝓛 + λθ].  Every layer ℓ is a single-site
process on the time grid t_n and the P training + Q test points, driven by Gaussian sources
uˡ ~ GP(0, Φˡ⁻¹) and rˡ ~ GP(0, Gˡ⁺¹) (Φ⁰ = Kˣ, G^{L+1} = 1), drawn as W(0)φ(h)/√N is in the network:
uˡ = εφ(hˡ⁻¹)/√S' and rˡ = ε'gˡ⁺¹/√S' over S' = min(S, SOURCE_SAMPLES) samples of the neighbouring
layer (fixed ε, ε'):

    hˡ(t) = e^{−λt}[uˡ(t) + Σ_s A^{ℓ−1}(t, s) gˡ(s)] + γ₀ ∫₀ᵗ ds e^{−λ(t−s)} Φˡ⁻¹(t, s) Δ(s) gˡ(s)
    zˡ(t) = e^{−λt}[rˡ(t) + Σ_s Bˡ(t, s) φ(hˡ(s))] + γ₀ ∫₀ᵗ ds e^{−λ(t−s)} Gˡ⁺¹(t, s) Δ(s) φ(hˡ(s))
    gˡ = φ'(hˡ) zˡ,    f(t) = ⟨φ(hᴸ(t)) zᴸ(t)⟩/γ₀,    Δ = y − f  (training points; Σ_s and ∫ over them)

with the kernels Φˡ = ⟨φ(hˡ)φ(hˡ)ᵀ⟩, Gˡ = ⟨gˡgˡᵀ⟩ and the responses Aˡ(t, s) = ⟨∂φ(hˡ(t))/∂rˡ(s)⟩,
Bˡ(t, s) = ⟨∂gˡ⁺¹(t)/∂uˡ⁺¹(s)⟩ (exact per sample, by forward-mode autodiff of the discrete process).
The integrals are trapezoid sums on the grid; the implicit diagonal term is solved by Newton steps.
Averages are over ``samples`` fixed Monte-Carlo draws (common random numbers, antithetic in r so
that f(·, 0) = 0 exactly), so the iteration is a deterministic map; it stops when the kernels,
responses, samples and output change by less than ``tol`` in one step.  The map is causal (the
sources at t use the samples at t only), so the iteration marches: it converges on the first
``WINDOW`` times (Δ switched off after them), then extends the window — one damped iteration over a
long horizon of a stiff flow does not converge.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from .errors import ConvergenceError, DataError

SOURCE_SAMPLES = 2048  # at most this many of a layer's samples draw the next layer's sources (memory, cost ∝ S·this)
WINDOW = 4  # time points added to the converged window at a time (the iteration marches forward in t)
RESPONSE_EVERY = 4  # iterations between updates of the responses A, B (their forward-mode Jacobians dominate)
NEWTON_STEPS = 4  # Newton steps on the implicit diagonal term of the trapezoid rule (training coordinates)


@dataclass(frozen=True)
class DMFTSolution:
    """Deep aNTK on a time grid (training points first, then test points, in every point axis).

    ``times`` (n_t,); ``outputs`` (n_t, P + Q): f through time; ``train_loss``: ½ mean squared training
    error at ``times``; ``phi``, ``g``: the final equal-time kernels [Φ¹ … Φᴸ], [G¹ … Gᴸ];
    ``ntk``: K = Σ_ℓ Gˡ⁺¹ ⊙ Φˡ (T1); ``output``: final f; ``kernel_form``, ``ntk_form``: T3 in its two
    forms (``ntk_form`` None when φ is not homogeneous); ``residual``: the T4 residuals of (hˡ, zˡ)
    per layer at the final time; ``change``: the last iteration's change; ``iterations``; ``result``:
    "successful" or "max_steps_reached"; ``h``: per layer the samples (S, P + Q) of hˡ at the final
    time; ``equal_time``: per layer Φˡ(t, t) through time (n_t, P + Q, P + Q).
    """

    times: np.ndarray
    outputs: np.ndarray
    train_loss: np.ndarray
    phi: list
    g: list
    ntk: np.ndarray
    output: np.ndarray
    kernel_form: np.ndarray
    ntk_form: np.ndarray | None
    residual: tuple
    change: float
    iterations: int
    result: str
    h: list
    z: list
    equal_time: list
    x_train: np.ndarray
    y_train: np.ndarray
    kx: np.ndarray
    model: object

    @property
    def t_final(self) -> float:
        return float(self.times[-1])

    @property
    def form_disagreement(self) -> float:
        """max |kernel_form − ntk_form| (nan without a homogeneity degree)."""
        return np.nan if self.ntk_form is None else float(np.max(np.abs(self.kernel_form - self.ntk_form)))

    def kernels_at(self, t):
        """[Φ¹(t, t) … Φᴸ(t, t)] at a time ``t`` of the grid."""
        n = np.flatnonzero(np.isclose(self.times, t, rtol=1e-12, atol=0))
        if len(n) != 1:
            raise DataError(f"t = {t!r} is not a time of the solution's grid (sol.times)")
        return [k[n[0]] for k in self.equal_time]

    def preactivation_density(self, layer=1, point=0):
        """Samples of the single-site density of hˡ at data point ``point`` at the final time."""
        if not 1 <= layer <= len(self.h):
            raise DataError(f"layer must be in 1..{len(self.h)}, got {layer!r}")
        return self.h[layer - 1][:, point]

    def predict(self, x_new):
        """T3 at new inputs, with each sample's hˡ(x) rebuilt layer by layer from T4 (:func:`t4_predict`)."""
        x_new = np.asarray(x_new, dtype=float)
        if x_new.ndim != 2 or x_new.shape[1] != self.x_train.shape[1]:
            raise DataError(f"x_new must have shape (n, {self.x_train.shape[1]}), got {x_new.shape}")
        kx_cross = x_new @ self.x_train.T / x_new.shape[1]
        P = len(self.y_train)
        g = [zl[:, :P] * self.model._slopes(hl[:, :P]) for hl, zl in zip(self.h, self.z)]
        return t4_predict(self.model, self.h, g, kx_cross, self.y_train, self.output, self.phi[-1])


def time_grid(t_max, n_times, growth=1.15):
    """0 = t_0 < … < t_{n−1} = t_max with steps t_max/n² · growthᵏ capped at a constant H (found by
    bisection so that the steps add up to t_max): fine steps for the fast gradient phase, then even
    ones, so that late steps stay short against the slow feature growth (≈ λ) near the fixed point."""
    if not (np.isfinite(t_max) and t_max > 0 and isinstance(n_times, (int, np.integer)) and n_times >= 3):
        raise DataError(f"need t_max > 0 and an integer n_times ≥ 3, got {t_max!r}, {n_times!r}")
    steps = lambda cap: np.minimum(t_max / n_times ** 2 * growth ** np.arange(n_times - 1), cap)  # noqa: E731
    lo, hi = 0.0, t_max
    for _ in range(200):
        lo, hi = (lo, (lo + hi) / 2) if steps((lo + hi) / 2).sum() >= t_max else ((lo + hi) / 2, hi)
    s = steps(hi)
    return np.concatenate([[0.0], np.cumsum(s * t_max / s.sum())])


def trapezoid_decay(times, lam):
    """D with ∫₀^{t_n} ds e^{−λ(t_n−s)} F(s) ≈ Σ_{m≤n} D[n, m] F(t_m): F linear on each step and the
    exponential integrated exactly (product trapezoid), so a constant F gets (1 − e^{−λt_n})/λ exactly —
    the fixed-point relations T4 hold on the grid as they do in continuous time.  On the step
    [t_k, t_{k+1}] of length h, x = λh, a = e^{−λ(t_n − t_{k+1})}: F_k gets a·h·p₂(x), F_{k+1} gets
    a·h·(p₁(x) − p₂(x)), p₁ = (1 − e^{−x})/x, p₂ = (1 − (1 + x)e^{−x})/x² (both → the trapezoid ½ as λ → 0)."""
    h = np.diff(times)
    x = lam * h
    p1 = np.where(x > 1e-4, -np.expm1(-x) / np.where(x > 1e-4, x, 1.0), 1 - x / 2 + x ** 2 / 6)
    p2 = np.where(x > 1e-3, (-np.expm1(-x) - x * np.exp(-x)) / np.where(x > 1e-3, x, 1.0) ** 2,
                  0.5 - x / 3 + x ** 2 / 8)
    n = len(times)
    D = np.zeros((n, n))
    for k in range(n - 1):  # the step [t_k, t_{k+1}] contributes to every t_n ≥ t_{k+1}
        a = np.exp(-lam * (times[k + 1:] - times[k + 1]))
        D[k + 1:, k] += a * h[k] * p2[k]
        D[k + 1:, k + 1] += a * h[k] * (p1[k] - p2[k])
    return D


def solve(model, xtr, y, xall, times, samples, response_samples, tol, max_iter, damping, seed, throw):
    """The DMFT of ``model`` (a WeightDecayMLP: activation, depth, γ₀, λ, κ) on the grid ``times``,
    training on (xtr, y), with the test points after them in ``xall``."""
    P, M, L, nt = len(y), len(xall), model.depth, len(times)
    kx = xall @ xall.T / xall.shape[1]
    if not (isinstance(samples, (int, np.integer)) and samples >= max(2, M) and samples % 2 == 0):
        raise DataError(f"samples must be an even integer ≥ 2 (antithetic pairs) and ≥ the {M} points, "
                        f"got {samples!r}")
    if M > SOURCE_SAMPLES:
        raise DataError(f"{M} points: the DMFT's cost grows as (P·n_t)³ and it is meant for tens of points")
    if model.kinked:
        raise NotImplementedError(
            f"φ = {model.activation.expr}: φ' jumps, and the DMFT's implicit diagonal (Newton steps on φ') and its "
            "responses (derivatives of φ') assume a smooth φ; relu at depth 2 on three points did not converge "
            "in 2000 iterations (derivations/antk.md). Use a smooth activation (gelu(x), softplus(x), x*erf(x)), "
            "or depth 1, whose particle solver steps relu, leaky_relu and abs along their kink")
    if not (0 < damping <= 1 and tol > 0 and max_iter >= 1 and response_samples >= 1):
        raise DataError(f"need 0 < damping ≤ 1, tol > 0, max_iter ≥ 1 and response_samples ≥ 1, got "
                        f"{damping!r}, {tol!r}, {max_iter!r}, {response_samples!r}")
    run = _compiled(model._phi, model._dphi, L, P, M, nt, int(samples), min(int(response_samples), samples))
    eps_u, eps_r = jax.random.normal(jax.random.PRNGKey(seed), (2, L, samples // 2, min(samples, SOURCE_SAMPLES)))
    eps_u, eps_r = jnp.concatenate([eps_u, eps_u], axis=1), jnp.concatenate([eps_r, -eps_r], axis=1)
    out = run(jnp.asarray(kx), jnp.asarray(y), model.gamma0, model.lam, jnp.asarray(times),
              jnp.asarray(trapezoid_decay(times, model.lam)), eps_u, eps_r, tol, int(max_iter), damping)
    outputs, equal_time, Phi, G, h, z, h0, z0 = jax.tree_util.tree_map(np.asarray, out[:8])
    change, iterations = float(out[8]), int(out[9])
    if not (np.all(np.isfinite(outputs)) and np.isfinite(change)):
        raise ConvergenceError("the DMFT iteration diverged (non-finite kernels); lower damping or refine the "
                               "time grid (n_times)")
    result = check_converged(change, iterations, tol, max_iter, throw)
    delta = y - outputs[-1, :P]
    residual = []
    for l in range(L):  # T4 at the final time, relative to the initial scale (as in the two-layer solver)
        Kin, Gout = kx if l == 0 else Phi[l - 1], 1.0 if l == L - 1 else G[l + 1]
        g = z[l][:, :P] * np.asarray(model._dphi(h[l][:, :P]))
        f = np.asarray(model._phi(h[l][:, :P]))
        res_h = model.lam * h[l][:, :P] - model.gamma0 * (g * delta) @ np.broadcast_to(Kin, (M, M))[:P, :P].T
        res_z = model.lam * z[l][:, :P] - model.gamma0 * (f * delta) @ np.broadcast_to(Gout, (M, M))[:P, :P].T
        residual.append((float(np.linalg.norm(res_h) / (model.lam * np.linalg.norm(h0[l][:, :P]))),
                         float(np.linalg.norm(res_z) / (model.lam * np.linalg.norm(z0[l][:, :P])))))
    ntk = t1_ntk(Phi, G, kx)
    kernel_form, ntk_form = t3_forms(Phi[-1], ntk, y, model.lam, model.kappa)
    train_loss = 0.5 * np.mean((outputs[:, :P] - y) ** 2, axis=1)
    return DMFTSolution(times, outputs, train_loss, Phi, G, ntk, outputs[-1], kernel_form, ntk_form,
                        tuple(residual), change, iterations, result, h, z, equal_time, xtr, y, kx, model)


def t4_predict(model, h, g, kx_cross, y, output, phi):
    """T3 at new inputs x from the fixed point's samples h = [h¹ … hᴸ] (each (S, ≥ P), training columns
    first) and gradient fields g = [g¹ … gᴸ] on the training points (each (S, P), gˡ = φ'(hˡ)zˡ),
    rebuilding each sample's hˡ(x) layer by layer from T4: hˡ(x) = (γ₀/λ) Φˡ⁻¹(x, X)(Δ ⊙ gˡ),
    Φ⁰(x, X) = ``kx_cross``; then Φᴸ(x, X)[Φᴸ + λI]⁻¹y with the final Φᴸ = ``phi`` and
    Δ = y − ``output`` on the training points."""
    P = len(y)
    delta = y - output[:P]
    cross = kx_cross
    for hl, gl in zip(h, g):
        h_new = (model.gamma0 / model.lam) * (gl * delta) @ cross.T  # (S, n)
        cross = np.asarray(model._phi(h_new)).T @ np.asarray(model._phi(hl[:, :P])) / len(hl)
    return cross @ np.linalg.solve(phi[:P, :P] + model.lam * np.eye(P), y)


def t1_ntk(Phi, G, kx):
    """K = Σ_{ℓ=0..L} Gˡ⁺¹ ⊙ Φˡ (T1) from [Φ¹ … Φᴸ], [G¹ … Gᴸ], Φ⁰ = Kˣ and G^{L+1} = 1 (equal-time
    matrices or two-time arrays alike)."""
    return G[0] * kx + sum(Gl * Pl for Gl, Pl in zip(G[1:], Phi[:-1])) + Phi[-1]


def t3_forms(phi, ntk, y, lam, kappa):
    """The T3 predictor on all points from the last layer's Φᴸ and the NTK K (training points first):
    Φᴸ(·, X)[Φᴸ + λI]⁻¹y and K(·, X)[K + κλI]⁻¹y (None when κ is None)."""
    P = len(y)
    eye = np.eye(P)
    kernel_form = phi[:, :P] @ np.linalg.solve(phi[:P, :P] + lam * eye, y)
    ntk_form = None if kappa is None else ntk[:, :P] @ np.linalg.solve(ntk[:P, :P] + kappa * lam * eye, y)
    return kernel_form, ntk_form


def _sqrt_psd(k):
    """The principal square root of a symmetric PSD matrix (here Kˣ, the first layer's static source
    covariance); eigenvalues below 1e-12 of the largest are rounding and set to 0."""
    ev, U = jnp.linalg.eigh(0.5 * (k + k.T))
    return (U * jnp.sqrt(jnp.where(ev > 1e-12 * ev[-1], ev, 0.0))) @ U.T


def _newton(f, guess):
    """NEWTON_STEPS Newton steps on f(x) = 0 from ``guess`` (the implicit diagonal of a time step; its
    derivatives come from the implicit function theorem through ``lax.custom_root``, not from
    differentiating the steps — the responses' forward-mode tangents would otherwise carry second
    derivatives of φ through every step)."""
    return jax.lax.fori_loop(0, NEWTON_STEPS, lambda _, x: x - jnp.linalg.solve(jax.jacfwd(f)(x), f(x)), guess)


@lru_cache(maxsize=None)
def _compiled(phi, dphi, L, P, M, nt, S, S_resp):
    """The jitted DMFT iteration for one activation and problem size."""

    def path(u, r, Ah, Az, decay):
        """One sample's (h, z) (nt, M) from sources u, r: h = e^{−λt}u + Σ_m Ah[·, m] g_m,
        z = e^{−λt}r + Σ_m Az[·, m] φ(h_m) (training columns of g, φ), causal with an implicit diagonal."""

        def step(carry, n):
            g_hist, f_hist = carry
            h_ex = decay[n] * u[n] + jnp.einsum("imp,mp->i", Ah[n], g_hist)
            z_ex = decay[n] * r[n] + jnp.einsum("imp,mp->i", Az[n], f_hist)
            a_h, a_z = Ah[n, :, n], Az[n, :, n]

            def implicit(hz):  # the training coordinates' diagonal equations, hz = (h, z)[:P]
                h, z = hz[:P], hz[P:]
                return hz - jnp.concatenate([h_ex[:P] + a_h[:P] @ (dphi(h) * z), z_ex[:P] + a_z[:P] @ phi(h)])

            hz = jax.lax.custom_root(implicit, jnp.concatenate([h_ex[:P], z_ex[:P]]), _newton,
                                     lambda lin, b: jnp.linalg.solve(jax.jacfwd(lin)(b), b))
            h = h_ex + a_h @ (dphi(hz[:P]) * hz[P:])
            z = z_ex + a_z @ phi(hz[:P])
            carry = g_hist.at[n].set(dphi(h[:P]) * z[:P]), f_hist.at[n].set(phi(h[:P]))
            return carry, (h, z)

        zeros = jnp.zeros((nt, P))
        return jax.lax.scan(step, (zeros, zeros), jnp.arange(nt))[1]

    def layer(Kin, Gout, A_in, B_out, delta, u, r, gamma0, decay, decay_op, need_A, need_B):
        """Samples of layer ℓ's process from its sources (u, r) and its averages (Φ, G, responses, ⟨φz⟩)."""
        Ah = decay[:, None, None, None] * A_in + gamma0 * decay_op[:, None, :, None] * Kin[..., :P] * delta
        Az = decay[:, None, None, None] * B_out + gamma0 * decay_op[:, None, :, None] * Gout[..., :P] * delta
        h, z = jax.vmap(path, in_axes=(0, 0, None, None, None))(u, r, Ah, Az, decay)
        f, g = phi(h), dphi(h) * z
        Phi = jnp.einsum("sai,sbj->aibj", f, f) / S
        G = jnp.einsum("sai,sbj->aibj", g, g) / S

        def jac(i, which):  # ∂φ(h)/∂r or ∂g/∂u of sample i, training source columns: (nt, M, nt, P)
            def fn(src):
                uu = u[i].at[:, :P].set(src) if which == "u" else u[i]
                rr = r[i].at[:, :P].set(src) if which == "r" else r[i]
                hh, zz = path(uu, rr, Ah, Az, decay)
                return phi(hh) if which == "r" else dphi(hh) * zz
            return jax.jacfwd(fn)((u if which == "u" else r)[i, :, :P])

        def mean_jac(which):
            return jax.lax.fori_loop(0, S_resp, lambda i, acc: acc + jac(i, which), jnp.zeros((nt, M, nt, P))) / S_resp

        A = mean_jac("r") if need_A else None
        B = mean_jac("u") if need_B else None
        return h, z, Phi, G, A, B, jnp.mean(f * z, axis=0), f, g

    def sources(features, eps):
        """Gaussian sources with covariance ⟨FFᵀ⟩ over the first S' samples of F (S, nt, M): eps F/√S'
        with eps (S, S') i.i.d. N(0, 1) — as W(0)φ(h)/√N in the network: causal in t and smooth in F."""
        n = eps.shape[1]
        return (eps @ features[:n].reshape(n, nt * M) / jnp.sqrt(n)).reshape(S, nt, M)

    def sweep(state, consts, active, responses=True):
        """One Jacobi pass over the layers: new kernels, responses (if ``responses``; else the current
        ones kept), samples and output from the current ones, with the training error Δ held at its
        value at the time index ``active`` over the next window (the guess the window grows into) and
        switched off after it."""
        Phi, G, A, B, Fh, Fg, fout = state
        kx_t, ones, y, gamma0, decay, decay_op, u_in, r_out, eps_u, eps_r = consts
        n = jnp.arange(nt)
        delta = (y - fout[jnp.minimum(n, active), :P]) * (n <= active + WINDOW)[:, None]
        delta = delta[None, None]
        zero = jnp.zeros((nt, M, nt, P))
        new = []
        for l in range(L):  # layer ℓ = l + 1
            Kin = kx_t if l == 0 else Phi[l - 1]
            Gout = ones if l == L - 1 else G[l + 1]
            A_in = zero if l == 0 else A[l - 1]
            B_out = zero if l == L - 1 else B[l]
            u = u_in if l == 0 else sources(Fh[l - 1], eps_u[l])
            r = r_out if l == L - 1 else sources(Fg[l + 1], eps_r[l])
            new.append(layer(Kin, Gout, A_in, B_out, delta, u, r, gamma0, decay, decay_op,
                             responses and l < L - 1, responses and l > 0))
        A_n = [new[l][4] if responses else A[l] for l in range(L - 1)]  # ∂φ(hˡ)/∂rˡ, ℓ = 1 … L−1
        B_n = [new[l + 1][5] if responses else B[l] for l in range(L - 1)]  # ∂g^{ℓ+1}/∂u^{ℓ+1}
        state = ([n[2] for n in new], [n[3] for n in new], A_n, B_n, [n[7] for n in new], [n[8] for n in new],
                 new[-1][6] / gamma0)
        return state, [(n[0][:, -1], n[1][:, -1], n[0][:, 0], n[1][:, 0]) for n in new]

    @jax.jit
    def run(kx, y, gamma0, lam, times, decay_op, eps_u, eps_r, tol, max_iter, damping):
        decay = jnp.exp(-lam * times)
        kx_t = jnp.broadcast_to(kx[None, :, None, :], (nt, M, nt, M))
        ones = jnp.ones((nt, M, nt, M))
        # the static sources: u¹ ~ N(0, Kˣ) for all t; r^L = w(0) ~ N(0, 1) for all t and points
        u_in = jnp.broadcast_to((eps_u[0][:, :M] @ _sqrt_psd(kx))[:, None, :], (S, nt, M))
        r_out = jnp.broadcast_to(eps_r[-1][:, :1, None], (S, nt, M))
        consts = (kx_t, ones, y, gamma0, decay, decay_op, u_in, r_out, eps_u, eps_r)
        zero_k, zero_s = jnp.zeros((nt, M, nt, M)), jnp.zeros((S, nt, M))
        zero_r = [jnp.zeros((nt, M, nt, P)) for _ in range(L - 1)]
        state = ([zero_k] * L, [ones] * L, zero_r, zero_r, [zero_s] * L, [zero_s] * L, jnp.zeros((nt, M)))
        # lazy start: the static process (Δ = 0), forward then backward through the layers
        static = (kx_t, ones, jnp.zeros_like(y), *consts[3:])
        for _ in range(2 * L):
            state = sweep(state, static, nt, responses=False)[0]

        def change(old, new, active):
            """Largest change, relative to each array's scale, over the times ≤ ``active``."""
            on = jnp.arange(nt) <= active
            masks = {2: on[:, None], 3: on[None, :, None], 4: on[:, None, None, None] & on[None, None, :, None]}
            out = []
            for a, b in zip(jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(new)):
                mask = masks[a.ndim]
                out.append(jnp.max(jnp.where(mask, jnp.abs(a - b), 0.0)) / (jnp.max(jnp.abs(jnp.where(mask, b, 0.0)))
                                                                           + 1e-300))
            return jnp.max(jnp.stack(out))

        def newton_output(state, f_new, active):
            """f + (I + J)⁻¹(F(f) − f) on the training points, J = ∂F/∂Δ ≈ D ⊙ K(t, s) (the
            two-time NTK of T1 over the window: the stiff part of the output's response to Δ)."""
            K = t1_ntk(state[0], state[1], kx_t)
            on = jnp.arange(nt) <= active
            J = (decay_op * on[None, :])[:, None, :, None] * K[:, :P, :, :P]
            step = jnp.linalg.solve(jnp.eye(nt * P) + J.reshape(nt * P, nt * P),
                                    (f_new - state[-1])[:, :P].reshape(nt * P))
            return f_new.at[:, :P].set(state[-1][:, :P] + step.reshape(nt, P))

        def body(carry):
            state, _, _, it, active = carry
            fresh = it % RESPONSE_EVERY == 0  # the responses are updated on these iterations only
            new = jax.lax.cond(fresh, lambda s: sweep(s, consts, active)[0],
                               lambda s: sweep(s, consts, active, responses=False)[0], state)
            mixed = jax.tree_util.tree_map(lambda a, b: a + damping * (b - a), state[:-1], new[:-1])
            mixed = (*mixed, newton_output(state, new[-1], active))
            moved = change(state, new, active)
            done = (moved <= tol) & (active == nt - 1) & fresh  # converged, the responses included
            grow = (moved <= tol) & (active < nt - 1)  # converged so far: extend the window
            active = jnp.where(grow, jnp.minimum(active + WINDOW, nt - 1), active)
            return mixed, moved, done, it + 1, active

        state, delta, _, it, _ = jax.lax.while_loop(lambda c: ~c[2] & (c[3] < max_iter), body,
                                                    (state, jnp.inf, False, 0, jnp.minimum(WINDOW, nt - 1)))
        final = sweep(state, consts, nt, responses=False)[1]
        Phi, G, fout = state[0], state[1], state[-1]
        eq = [jnp.einsum("aiaj->aij", k) for k in Phi]
        return (fout, eq, [k[-1, :, -1] for k in Phi], [k[-1, :, -1] for k in G],
                *([s[i] for s in final] for i in range(4)), delta, it)

    return run


def check_converged(change, iterations, tol, max_iter, throw):
    """The result code of the iteration; raise on failure when ``throw``."""
    if change <= tol:
        return "successful"
    if throw:
        raise ConvergenceError(f"the DMFT iteration did not converge: change {change:.2g} > tol = {tol:g} after "
                               f"{iterations} of max_iter = {max_iter} iterations; lower damping, raise max_iter, "
                               "or pass throw=False")
    return "max_steps_reached"
