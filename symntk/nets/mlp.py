"""The MLP of theory/lazy.md L0 at finite width, in either parameterisation.

One form covers both (layer ℓ = 0..L, φ(h⁰) := x, n₀ = d, widths n₁..n_L, scalar output):

    h^{ℓ+1} = (a_ℓ/√n_ℓ) φ(h^ℓ) ω_ℓ + β_ℓ b_ℓ,    ω_ℓ ~ N(0, s_ℓ²), b_ℓ ~ N(0, t_ℓ²)

* ``ntk``:      a = σ_w, s = 1,   β = σ_b, t = 1;
* ``standard``: a = 1,   s = σ_w, β = 1,   t = σ_b — gradient flow on (ω, b) with one rate is
  gradient flow on W = ω/√n with rate η/n (the width-scaled rates of symntk.recursion.lazy).

Trained parameters are (ω, b) with a single learning rate, so the empirical NTK is
Σ_θ ∂f/∂θ ∂f/∂θ over them, which converges to the recursion's Θ.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np



class FiniteMLP:
    """A width-``width`` copy of ``mlp`` (a :class:`symntk.MLP`): same φ, depth, σ's, parameterisation."""

    def __init__(self, mlp, width):
        self.mlp, self.width = mlp, int(width)
        self.phi = mlp.dual.module().phi
        sw, sb = np.sqrt(mlp.coefficients[0]), np.sqrt(mlp.coefficients[1])
        one = np.ones_like(sw)
        # (a, s, β, t) per layer
        self.scales = (sw, one, sb, one) if mlp.parameterization == "ntk" else (one, sw, one, sb)

    def init(self, key, d):
        """Parameters [(ω_ℓ, b_ℓ)] for inputs of dimension d."""
        widths = [d] + [self.width] * self.mlp.depth + [1]
        _, s, _, t = self.scales
        params = []
        for ell, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            key, kw, kb = jax.random.split(key, 3)
            params.append((s[ell] * jax.random.normal(kw, (n_in, n_out)), t[ell] * jax.random.normal(kb, (n_out,))))
        return params

    def init_ensemble(self, key, d, members):
        """``members`` independent initialisations, stacked on a leading axis (for ``jax.vmap``)."""
        return jax.vmap(lambda k: self.init(k, d))(jax.random.split(key, members))

    def _forward(self, params, x, shifts=None):
        """Pre-activations h¹..h^{L+1} and post-activations φ(h⁰)=x..φ(h^L); ``shifts`` are added to each h."""
        a, _, beta, _ = self.scales
        post, pre = [x], []
        for ell, (w, b) in enumerate(params):
            h = (a[ell] / np.sqrt(w.shape[0])) * post[-1] @ w + beta[ell] * b
            if shifts is not None:
                h = h + shifts[ell]
            pre.append(h)
            if ell < len(params) - 1:
                post.append(self.phi(h))
        return pre, post

    def apply(self, params, x):
        """Network output f(x), shape (N,)."""
        return self._forward(params, x)[0][-1][:, 0]

    def empirical_nngp(self, params, x1, x2):
        """Σ̂^{L+1}(x, x') = σ_w,L² φ(h^L)·φ(h^L')/n_L + σ_b,L²: the output covariance given the features."""
        a, s, beta, t = self.scales
        p1, p2 = self._forward(params, x1)[1][-1], self._forward(params, x2)[1][-1]
        return (a[-1] * s[-1]) ** 2 * p1 @ p2.T / p1.shape[1] + (beta[-1] * t[-1]) ** 2

    def _backward(self, params, x):
        """δ^{ℓ+1} = ∂f/∂h^{ℓ+1} for every layer, by reverse-mode autodiff (shape (N, n_{ℓ+1}) each)."""
        def output(shifts):
            pre, post = self._forward(params, x, shifts)
            return jnp.sum(pre[-1]), post

        zeros = [jnp.zeros(h.shape, h.dtype) for h in jax.eval_shape(lambda: self._forward(params, x)[0])]
        grads, post = jax.grad(output, has_aux=True)(zeros)
        return post, grads

    def empirical_ntk(self, params, x1, x2):
        """Θ̂(x, x') = Σ_θ ∂f(x)/∂θ ∂f(x')/∂θ, contracted layer by layer:
        ∂f/∂ω_ℓ = (a_ℓ/√n_ℓ) φ(h^ℓ) ⊗ δ^{ℓ+1}, ∂f/∂b_ℓ = β_ℓ δ^{ℓ+1}."""
        a, _, beta, _ = self.scales
        (post1, d1), (post2, d2) = self._backward(params, x1), self._backward(params, x2)
        theta = 0.0
        for ell in range(len(params)):
            dd = d1[ell] @ d2[ell].T
            theta = theta + (a[ell] ** 2 / post1[ell].shape[1]) * (post1[ell] @ post2[ell].T) * dd + beta[ell] ** 2 * dd
        return theta


@partial(jax.jit, static_argnames=("net", "steps", "record_every"))
def _train(net, params, x, y, x_test, learning_rate, steps, record_every):
    loss = lambda p: 0.5 * jnp.sum((net.apply(p, x) - y) ** 2)  # noqa: E731

    def block(p, _):
        p = jax.lax.fori_loop(0, record_every, lambda _, q: jax.tree.map(
            lambda w, g: w - learning_rate * g, q, jax.grad(loss)(q)), p)
        return p, net.apply(p, x_test)

    return jax.lax.scan(block, params, None, length=steps // record_every)


def train_gradient_descent(net, params, x, y, x_test, learning_rate, steps, record_every=1):
    """Full-batch gradient descent θ ← θ − η ∇_θ ½Σ(f(X) − y)² for an ensemble (params stacked on axis 0).

    Returns (final params, outputs on ``x_test`` at steps 0, r, 2r, … ``steps`` with r = ``record_every``),
    the outputs shaped (members, steps // r + 1, N_test).  Time t = η·step in the gradient-flow units of
    :func:`symntk.predict.ntk_gradient_flow` (learning_rate = 1 there).
    """
    if steps % record_every:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    f0 = jax.vmap(net.apply, in_axes=(0, None))(params, x_test)
    run = jax.vmap(lambda p: _train(net, p, x, y, x_test, learning_rate, steps, record_every))
    final, outs = run(params)
    return final, jnp.concatenate([f0[:, None], outs], axis=1)
