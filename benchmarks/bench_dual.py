"""Dual-activation speed, memory and accuracy vs a deg-25 Gauss–Hermite tensor grid (same run).

N×N covariance entries (N = 1000, float64) from random data; error is measured against the
exact 1-D mpmath value at the diagonal-free entries' subset via 200 QUADPACK references.
Prints: method, seconds, ratio vs grid, peak extra memory (XLA temp bytes), max rel. error.
Also prints the time to derive every catalog activation cold and from cache.
"""
import os
import sys
import tempfile
import time

os.environ.setdefault("SYMNTK_CACHE", tempfile.mkdtemp())
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import symntk as sn  # noqa: E402
from reference import double_quad  # noqa: E402
from symntk.catalog import CATALOG  # noqa: E402

N, DEG = int(os.environ.get("BENCH_N", 1000)), 25


def grid_dual(phi):
    """The generic method: 2-D Gauss–Hermite tensor grid on the Cholesky factor, per entry."""
    z, w = np.polynomial.hermite_e.hermegauss(DEG)
    z, w = jnp.asarray(z), jnp.asarray(w / np.sqrt(2 * np.pi))

    def f(q1, c, q2):
        a = c / jnp.sqrt(q1)
        b = jnp.sqrt(jnp.maximum(q2 - a**2, 0))
        u = jnp.sqrt(q1)[..., None, None] * z[:, None]
        v = a[..., None, None] * z[:, None] + b[..., None, None] * z[None, :]
        return jnp.sum(w[:, None] * w[None, :] * phi(u) * phi(v), axis=(-1, -2))
    return jax.jit(f)


def timed(fn, *args, reps=3):
    jax.block_until_ready(fn(*args))
    t = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - t) / reps


def temp_bytes(fn, *args):
    try:
        return fn.lower(*args).compile().memory_analysis().temp_size_in_bytes
    except Exception:  # memory analysis is backend-dependent
        return float("nan")


def main():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 20))
    K = X @ X.T / 20 + 0.1
    q = np.diag(K).copy()
    q1, c, q2 = jnp.asarray(q[:, None]), jnp.asarray(K), jnp.asarray(q[None, :])
    idx = rng.choice(N, size=(60, 2))
    print(f"device: {jax.devices()[0].platform}, N = {N}, entries = {N*N}, grid deg = {DEG}")
    print(f"{'activation':<12}{'method':<12}{'ours s':>9}{'grid s':>9}{'ratio':>8}{'ours MB':>9}{'grid MB':>9}"
          f"{'ours err':>10}{'grid err':>10}")
    for formula, phi in [("erf(x)", jax.scipy.special.erf), ("gelu(x)", jax.nn.gelu_exact if hasattr(jax.nn, "gelu_exact") else (lambda x: jax.nn.gelu(x, approximate=False))),
                         ("tanh(x)", jnp.tanh), ("silu(x)", jax.nn.silu)]:
        d = sn.derive(formula)
        ours = jax.jit(lambda a, b, e, f=d.jax(checked=False): f(a, b, e)[0])
        grid = grid_dual(phi)
        t_o, t_g = timed(ours, q1, c, q2), timed(grid, q1, c, q2, reps=1)
        m_o, m_g = temp_bytes(ours, q1, c, q2) / 2**20, temp_bytes(grid, q1, c, q2) / 2**20
        Vo, Vg = np.asarray(ours(q1, c, q2)), np.asarray(grid(q1, c, q2))
        act = sn.activation(formula)
        refs = [double_quad(act.expr, act.expr, q[i], K[i, j], q[j])[0] for i, j in idx]
        eo = max(abs(Vo[i, j] - r) / abs(r) for (i, j), r in zip(idx, refs))
        eg = max(abs(Vg[i, j] - r) / abs(r) for (i, j), r in zip(idx, refs))
        print(f"{formula:<12}{d.method:<12}{t_o:>9.3f}{t_g:>9.3f}{t_g/t_o:>8.1f}{m_o:>9.1f}{m_g:>9.1f}{eo:>10.1e}{eg:>10.1e}")
    print(f"\n{'catalog':<12}{'method':<12}{'cold s':>9}{'cache s':>9}")
    for name, formula in CATALOG.items():
        t = time.perf_counter()
        d = sn.derive(formula, refresh=True)
        t1 = time.perf_counter()
        sn.derive(formula)
        t2 = time.perf_counter()
        print(f"{name:<12}{d.method:<12}{t1-t:>9.3f}{t2-t1:>9.4f}")


if __name__ == "__main__":
    main()
