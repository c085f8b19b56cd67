"""NNGP + NTK of a depth-3 MLP: symntk against hand-written baselines, in one run.

Each case runs in its own subprocess so that its peak resident memory (ru_maxrss) is its own.
Cases, on N points of 20 features, float64, σ_w = 1.5, σ_b = 0.1:
  baseline-relu  a plain jax.numpy ReLU recursion (arc-cosine L6), one jit over the N×N matrix —
                 the fastest reasonable hand-written code;
  symntk-<act>   sn.MLP(act, depth=3).kernel(x) for relu, erf, gelu, tanh;
  grid-tanh      the same recursion for tanh with a deg-25 Gauss–Hermite tensor grid per entry
                 (the generic method), accumulated node by node so memory stays O(N²).
Printed: first call (compile + run) and second call seconds, ratio of the second call to the
baseline's, peak RSS.  Usage: python benchmarks/bench_mlp.py [N ...]   (default 2000 10000;
the grid runs only where N ≤ 2000: at 10 000 it would take ~1 h on 2 cores).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _isolated import report, run_isolated  # noqa: E402

DEPTH, SW, SB, DEG = 3, 1.5, 0.1, 25


def baseline_relu():
    import jax
    import jax.numpy as jnp

    @jax.jit
    def kernel(x):
        S = SW**2 * x @ x.T / x.shape[1] + SB**2
        T, q = S, jnp.diag(S)
        for _ in range(DEPTH):
            s = jnp.sqrt(q[:, None] * q[None, :])
            th = jnp.arccos(jnp.clip(S / s, -1, 1))
            S_next = SW**2 * s / (2 * jnp.pi) * (jnp.sin(th) + (jnp.pi - th) * jnp.cos(th)) + SB**2
            T = S_next + SW**2 * (jnp.pi - th) / (2 * jnp.pi) * T
            S, q = S_next, SW**2 * q / 2 + SB**2
        return S, T
    return lambda x: jax.block_until_ready(kernel(x))


def grid_tanh():
    import jax
    import jax.numpy as jnp
    import numpy as np

    z, w = np.polynomial.hermite_e.hermegauss(DEG)
    w = w / np.sqrt(2 * np.pi)
    nodes = jnp.asarray([(a, b, wa * wb) for a, wa in zip(z, w) for b, wb in zip(z, w)])

    def dual(q1, c, q2):
        a = c / jnp.sqrt(q1)
        b = jnp.sqrt(jnp.maximum(q2 - a**2, 0))

        def add(i, acc):
            za, zb, wt = nodes[i]
            u, v = jnp.sqrt(q1) * za, a * za + b * zb
            return acc[0] + wt * jnp.tanh(u) * jnp.tanh(v), acc[1] + wt / jnp.cosh(u)**2 / jnp.cosh(v)**2
        zero = jnp.zeros(jnp.broadcast_shapes(q1.shape, c.shape, q2.shape))
        return jax.lax.fori_loop(0, len(nodes), add, (zero, zero))

    @jax.jit
    def kernel(x):
        S = SW**2 * x @ x.T / x.shape[1] + SB**2
        T = S
        for _ in range(DEPTH):
            q = jnp.diag(S)
            V, Vd = dual(q[:, None], S, q[None, :])
            S, T = SW**2 * V + SB**2, SW**2 * V + SB**2 + SW**2 * Vd * T
        return S, T
    return lambda x: jax.block_until_ready(kernel(x))


def symntk_case(formula):
    import symntk as sn

    mlp = sn.MLP(formula, depth=DEPTH, sigma_w=SW, sigma_b=SB)
    return lambda x: mlp.kernel(x, progress=False)


def run_case(case, n):
    import numpy as np
    import symntk  # noqa: F401  (x64)

    x = np.random.default_rng(0).normal(size=(n, 20))
    fn = {"baseline-relu": baseline_relu, "grid-tanh": grid_tanh}.get(case) or (lambda: symntk_case(case.split("-", 1)[1]))
    fn = fn()
    t0 = time.perf_counter()
    fn(x)
    t1 = time.perf_counter()
    fn(x)
    t2 = time.perf_counter()
    report(case=case, n=n, first=t1 - t0, second=t2 - t1)


def main(sizes):
    cases = ["baseline-relu", "symntk-relu(x)", "symntk-erf(x)", "symntk-gelu(x)", "symntk-tanh(x)", "grid-tanh"]
    print(f"{'N':>6} {'case':<16} {'first s':>9} {'second s':>9} {'÷ baseline':>10} {'peak RSS GiB':>12}")
    for n in sizes:
        base = None
        for case in cases:
            if case == "grid-tanh" and n > 2000:
                continue
            try:
                r = run_isolated(__file__, case, n)
            except RuntimeError as err:
                print(f"{n:>6} {case:<16} failed: {err}")
                continue
            base = r["second"] if case == "baseline-relu" else base
            print(f"{n:>6} {case:<16} {r['first']:>9.2f} {r['second']:>9.2f} {r['second'] / base:>10.2f} "
                  f"{r['rss_gib']:>12.2f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        run_case(sys.argv[2], int(sys.argv[3]))
    else:
        main([int(v) for v in sys.argv[1:]] or [2000, 10000])
