"""Networks trained by gradient flow with weight decay (theory/adaptive.md A1–A2, the aNTK
setting): the empirical side of :mod:`symntk.antk` and :mod:`symntk.dmft`.

    h¹ = W⁰x/√D,  hˡ⁺¹ = Wˡφ(hˡ)/√N,  f(x; θ) = w·φ(hᴸ)/(γ₀N),  all weights N(0, 1) at t = 0
    dθ/dt = −[γ₀²N ∇_θ 𝓛 + λθ],   𝓛 = ½ Σ_μ (f(x_μ; θ) − f(x_μ; θ₀) − y_μ)²   (centred output)

or, with ``centred=False``, the raw output f(x; θ) in 𝓛 and in what is recorded.

The gradient is JAX autodiff of this network — not the particle equations of ``symntk.antk`` —
integrated with diffrax (Tsit5; adaptive steps, or fixed ones of size ``dt`` for kinked φ such as
ReLU, where adaptive steps crawl), for all ``seeds`` at once (vmap).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConvergenceError, DataError
from ..gaussian import derive


@dataclass(frozen=True)
class WeightDecayRun:
    """``times`` (n_t,); ``outputs`` (seeds, n_t, P + Q): the (centred, unless asked otherwise) output
    on the training then test points; ``phi`` (seeds, P + Q, P + Q): the final Φᴸ = φ(hᴸ)φ(hᴸ)ᵀ/N of
    the last hidden layer; ``h`` (seeds, N, P + Q): its final pre-activations (the single-site
    density's samples)."""

    times: np.ndarray
    outputs: np.ndarray
    phi: np.ndarray
    h: np.ndarray

    @property
    def mean_output(self) -> np.ndarray:
        """Seed average of ``outputs``, (n_t, P + Q)."""
        return self.outputs.mean(axis=0)


def train(activation, x_train, y_train, x_test=None, width=1024, gamma0=1.0, lam=1e-2, times=(10.0,), seeds=4,
          dt=None, rtol=1e-6, max_steps=100_000, seed=0, depth=1, centred=True) -> WeightDecayRun:
    """Train ``seeds`` independent width-``width`` networks of ``activation`` with ``depth`` hidden
    layers on (x_train, y_train) by the flow above, recording the output (centred: f(·; θ) − f(·; θ₀);
    raw with ``centred=False``) at ``times`` (increasing, > 0; t = 0 is prepended)."""
    x_train = np.asarray(x_train, dtype=float)
    y = np.asarray(y_train, dtype=float)
    if x_train.ndim != 2 or y.shape != (len(x_train),):
        raise DataError(f"x_train must be (P, D) and y_train (P,), got {x_train.shape} and {y.shape}")
    x = x_train if x_test is None else np.concatenate([x_train, np.asarray(x_test, dtype=float)])
    times = np.concatenate([[0.0], np.asarray(times, dtype=float)])
    if not (np.all(np.diff(times) > 0) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError("times must increase from a value > 0, and the data must be finite")
    if not (gamma0 > 0 and lam >= 0 and width >= 1 and seeds >= 1 and depth >= 1):
        raise DataError(f"need gamma0 > 0, lam ≥ 0, width ≥ 1, seeds ≥ 1 and depth ≥ 1, got {gamma0}, {lam}, "
                        f"{width}, {seeds}, {depth}")
    mod = derive(activation).module()
    run = _compiled(mod.phi, len(x_train), int(width), int(depth), max_steps, dt is not None, bool(centred))
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    outputs, phi, h, ok = (np.asarray(a) for a in jax.vmap(run, in_axes=(0,) + (None,) * 7)(
        keys, jnp.asarray(x), jnp.asarray(y), gamma0, lam, jnp.asarray(times), rtol, 1.0 if dt is None else dt))
    if not ok.all():
        raise ConvergenceError(f"the gradient flow of {int((~ok).sum())} of {seeds} networks stopped before "
                               f"t = {times[-1]:g} (max_steps = {max_steps}); raise max_steps or pass dt")
    return WeightDecayRun(times, outputs, phi, h)


@lru_cache(maxsize=None)
def _compiled(phi, P, width, depth, max_steps, fixed_step, centred):
    """One network's flow from its key (jitted; vmapped over keys by the caller)."""

    def hidden(Ws, x):
        """hᴸ (N, P + Q) from θ's hidden weights [W⁰, …, Wᴸ⁻¹]."""
        h = Ws[0] @ x.T / jnp.sqrt(x.shape[1])
        for W in Ws[1:]:
            h = W @ phi(h) / jnp.sqrt(width)
        return h

    def output(theta, x, gamma0):
        Ws, w = theta
        return w @ phi(hidden(Ws, x)) / (gamma0 * width)

    @jax.jit
    def run(key, x, y, gamma0, lam, times, rtol, dt):
        keys = jax.random.split(key, depth + 1)
        Ws = [jax.random.normal(keys[0], (width, x.shape[1]))]
        Ws += [jax.random.normal(k, (width, width)) for k in keys[1:depth]]
        theta0 = (Ws, jax.random.normal(keys[depth], (width,)))
        f0 = output(theta0, x, gamma0) if centred else jnp.zeros(x.shape[0])

        def loss(theta):
            return 0.5 * jnp.sum((output(theta, x[:P], gamma0) - f0[:P] - y) ** 2)

        def field(t, theta, args):
            grad = jax.grad(loss)(theta)
            return jax.tree_util.tree_map(lambda g, p: -(gamma0 ** 2 * width * g + lam * p), grad, theta)

        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=times, fn=lambda t, theta, a: output(theta, x, gamma0) - f0),
                                      diffrax.SubSaveAt(t1=True)])
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, times[-1], dt if fixed_step else 1e-3, theta0,
            saveat=saveat, max_steps=max_steps, throw=False,
            stepsize_controller=(diffrax.ConstantStepSize() if fixed_step
                                 else diffrax.PIDController(rtol=rtol, atol=1e-3 * rtol)))
        outputs, (Ws, _) = sol.ys
        h = hidden([W[-1] for W in Ws], x)
        phi_h = phi(h)
        return outputs, phi_h.T @ phi_h / width, h, sol.result == diffrax.RESULTS.successful

    return run
