"""Dual-activation speed, memory and accuracy vs a deg-25 Gauss–Hermite tensor grid (same run).

N×N covariance entries (N = 1000, float64) from random data; error is measured against the
exact 1-D mpmath value at the diagonal-free entries' subset via 200 QUADPACK references.
Each method runs in its own process (peak RSS is its own; the inputs alone are 3 × 8 MB).
Prints: method, seconds, ratio vs grid, peak RSS, max rel. error.
Also prints the time to derive every catalog activation cold and from cache.
"""
import os
import sys
import tempfile
import time

os.environ.setdefault("SYMNTK_CACHE", tempfile.mkdtemp())
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import symntk as sn  # noqa: E402
from reference import double_quad  # noqa: E402
from _isolated import report, run_isolated  # noqa: E402
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


PHI = {"erf(x)": jax.scipy.special.erf, "gelu(x)": lambda x: jax.nn.gelu(x, approximate=False),
       "tanh(x)": jnp.tanh, "silu(x)": jax.nn.silu}


def inputs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 20))
    K = X @ X.T / 20 + 0.1
    q = np.diag(K).copy()
    return q, K, rng.choice(N, size=(60, 2))


def run_case(formula, method):
    """Child process: time one method on the N×N entries; report V at the 60 reference entries."""
    q, K, idx = inputs()
    q1, c, q2 = jnp.asarray(q[:, None]), jnp.asarray(K), jnp.asarray(q[None, :])
    if method == "ours":
        fn = jax.jit(lambda a, b, e, f=sn.derive(formula).jax(checked=False): f(a, b, e)[0])
    else:
        fn = grid_dual(PHI[formula])
    t = timed(fn, q1, c, q2, reps=5 if method == "ours" else 2)
    V = np.asarray(fn(q1, c, q2))
    report(seconds=t, values=[float(V[i, j]) for i, j in idx])


def main():
    q, K, idx = inputs()
    print(f"device: {jax.devices()[0].platform}, N = {N}, entries = {N*N}, grid deg = {DEG}")
    print(f"{'activation':<12}{'method':<12}{'ours s':>9}{'grid s':>9}{'ratio':>8}{'ours GiB':>9}{'grid GiB':>9}"
          f"{'ours err':>10}{'grid err':>10}", flush=True)
    for formula in PHI:
        ours, grid = run_isolated(__file__, formula, "ours"), run_isolated(__file__, formula, "grid")
        act = sn.activation(formula)
        refs = [double_quad(act.expr, act.expr, q[i], K[i, j], q[j])[0] for i, j in idx]
        eo, eg = (max(abs(v - r) / abs(r) for v, r in zip(res["values"], refs)) for res in (ours, grid))
        print(f"{formula:<12}{sn.derive(formula).method:<12}{ours['seconds']:>9.3g}{grid['seconds']:>9.3g}"
              f"{grid['seconds'] / ours['seconds']:>8.1f}{ours['rss_gib']:>9.2f}{grid['rss_gib']:>9.2f}"
              f"{eo:>10.1e}{eg:>10.1e}", flush=True)
    print(f"\n{'catalog':<12}{'method':<12}{'cold s':>9}{'cache s':>9}")
    for name, formula in CATALOG.items():
        t = time.perf_counter()
        d = sn.derive(formula, refresh=True)
        t1 = time.perf_counter()
        sn.derive(formula)
        t2 = time.perf_counter()
        print(f"{name:<12}{d.method:<12}{t1-t:>9.3f}{t2-t1:>9.4f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        run_case(sys.argv[2], sys.argv[3])
    else:
        main()
