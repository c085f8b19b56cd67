"""Deep linear solvers against plain SciPy loops over the same equations, measured in the same run.

1. Whitened D4 on a grid of 10⁶ (γ₀, β, L) points (γ₀ ∈ [1e-3, 1e3], β ∈ [1, 1e3], L = 1..100):
   symntk's vectorised JAX solve (bisection then Newton; second call, compilation reported apart)
   against ``scipy.optimize.brentq`` per point, timed on 2000 random points and scaled to 10⁶.
2. General-Kˣ D6 at P = 5000: ``symntk.deep_linear.solve`` (one eigendecomposition, then the scalar
   equation in the eigenbasis) against brentq on the same scalar equation with a dense linear solve
   per evaluation.
Usage: python benchmarks/bench_deep_linear.py [--p 5000]
"""
import sys
import time

import numpy as np
from scipy.optimize import brentq

from symntk import deep_linear as dl


def grid():
    d, g, b = np.meshgrid(np.arange(1, 101), np.logspace(-3, 3, 100), np.logspace(0, 3, 100), indexing="ij")
    return d.ravel().astype(float), g.ravel(), b.ravel()


def scipy_whitened(depth, gamma0, beta):
    f = lambda x: depth * np.log1p(gamma0**2 * np.exp(-x) / (1 + np.exp(-x) / beta) ** 2) - x  # noqa: E731
    return np.exp(brentq(f, 0.0, depth * np.log1p(gamma0**2) + 1, xtol=1e-14, rtol=1e-15))


def scipy_general(kx, y, depth, gamma0, beta):
    P = len(y)

    def f(z):
        s = np.expm1(z)
        v = np.linalg.solve((1 + s) * kx + np.eye(P) / beta, y)
        return depth * np.log1p(gamma0**2 * (1 + s) * (v @ kx @ v)) - z

    v0 = np.linalg.solve(kx + np.eye(P) / beta, y)
    return np.expm1(brentq(f, 0.0, depth * np.log1p(gamma0**2 * (v0 @ kx @ v0)) + 1, xtol=1e-13))


def main(P):
    print(f"# bench_deep_linear, {time.strftime('%Y-%m-%d')}")
    d, g, b = grid()
    t0 = time.perf_counter()
    dl.last_overlap(d, g, b)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = dl.last_overlap(d, g, b)
    t_jax = time.perf_counter() - t0
    pick = np.random.default_rng(0).choice(len(d), 2000, replace=False)
    t0 = time.perf_counter()
    ref = np.array([scipy_whitened(d[i], g[i], b[i]) for i in pick])
    t_loop = (time.perf_counter() - t0) * len(d) / len(pick)
    err = np.max(np.abs(c[pick] / ref - 1))
    print(f"whitened D4, 10^6 points: symntk {t_jax:.2f} s (first call, with compilation: {t_first:.2f} s), "
          f"SciPy loop {t_loop:.0f} s (2000 timed, scaled), "
          f"ratio {t_loop / t_jax:.0f}x, max rel. difference {err:.1e}")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(P, 64))
    kx, y = x @ x.T / 64 + 1e-3 * np.eye(P), rng.normal(size=P)
    t0 = time.perf_counter()
    sol_s = dl.solve(kx, y, 4, 1.5, 20.0).s  # includes Φ, Φ̂ for all layers and the residual check
    t_sym = time.perf_counter() - t0
    t0 = time.perf_counter()
    s_ref = scipy_general(kx, y, 4, 1.5, 20.0)
    t_ref = time.perf_counter() - t0
    print(f"general Kx D6, P = {P}: symntk {t_sym:.1f} s, SciPy brentq + dense solves {t_ref:.1f} s, "
          f"ratio {t_ref / t_sym:.1f}x, s = {sol_s:.10g} vs {s_ref:.10g}")


if __name__ == "__main__":
    main(int(sys.argv[sys.argv.index("--p") + 1]) if "--p" in sys.argv else 5000)
