"""NDK predictor N8: symntk's Volterra solver against a straightforward per-time-pair loop.

Issue setting: P = 500 training and 200 test points (d = 64), depth 3, 300 time points, erf and
tanh (Hermite).  symntk runs the whole problem: ``predict`` interpolates K_d in time (a few hundred
to a thousand kernel evaluations instead of the 45 150 time pairs, to 1e-10 of max|K_d|) and solves
the trapezoid scheme on the low-rank form.  The baseline — a Python loop over time pairs evaluating
the same generated equations eagerly with NumPy arrays, then the same trapezoid solve — runs its
first 12 grid rows and is extrapolated to the 45 150 pairs at its measured cost per pair.  Each case
runs in its own process (peak RSS).  A third case checks the interpolated mean against the every-pair
solve (``kernel_tol=None``) with P = 100, 50 test points and 120 time points (7 260 pairs), where the
every-pair solve takes under a minute on 2 cores.
Usage: python benchmarks/bench_ndk.py [--times 300]
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _isolated import report, run_isolated  # noqa: E402

P, P_TEST, D, DEPTH = 500, 200, 64, 3
ACTS = ["erf(x)", "tanh(x)"]


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(P + P_TEST, D))
    return x * np.sqrt(D) / np.linalg.norm(x, axis=1, keepdims=True), np.sign(rng.normal(size=P))


def model(act):
    from symntk.ndk import LangevinMLP
    return LangevinMLP(act, DEPTH, sigma0_sq=2.0, sigma_sq=0.5, temperature=0.05)


def symntk_case(act, n_times):
    x, y = data()
    net = model(act)
    net.predict(x[:P], y, x[P:P + 10], n_times=4, covariance=False)  # compile
    t0 = time.perf_counter()
    sol = net.predict(x[:P], y, x[P:], n_times=n_times, covariance=False)
    seconds = time.perf_counter() - t0
    report(seconds=seconds, n_times=len(sol.grid), kernel_error=sol.kernel_error)


def baseline_case(act, rows):
    """History rows n = 1..rows of the trapezoid scheme, one kernel call per time pair, eagerly."""
    import jax.numpy as jnp
    from symntk.ndk import weight_autocorrelation
    x, y = data()
    net = model(act)
    mod = net.dual.module()
    grid = net.time_grid(x[:P], n_times=300)[:rows + 1]
    w = np.diff(grid)
    K0 = x @ x[:P].T / D
    sq = np.sum(x * x, axis=1) / D
    params = (net.sigma0_sq, net.sigma_sq, net.rate)

    def kd(t, s):
        m_ts, m_tt, m_ss = (float(weight_autocorrelation(a, b, *params)) for a, b in ((t, s), (t, t), (s, s)))
        q1, q2, K, G = m_tt * sq, m_ss * sq[:P], K0, K0
        for _ in range(DEPTH):
            V, Vd = (np.asarray(v) for v in mod.pair(mod.features(jnp.asarray(q1[:, None])), jnp.asarray(m_ts * K),
                                                      mod.features(jnp.asarray(q2[None, :]))))
            G, K = V + m_ts * Vd * G, V
            q1 = m_tt * np.asarray(mod.diagonal(mod.features(jnp.asarray(q1)))[0])
            q2 = m_ss * np.asarray(mod.diagonal(mod.features(jnp.asarray(q2)))[0])
        return np.exp(-params[2] * (t - s)) * G

    t0 = time.perf_counter()
    R, pairs = [y.copy()], 0
    for n in range(1, rows + 1):
        acc = 0.0
        for m in range(n):
            wm = ((w[m - 1] if m else 0.0) + w[m]) / 2
            acc = acc + wm * kd(grid[n], grid[m]) @ R[m]
            pairs += 1
        K = kd(grid[n], grid[n])
        half = w[n - 1] / 2
        f = np.linalg.solve(np.eye(P) + half * K[:P], acc[:P] + half * K[:P] @ y)
        R.append(y - f)
        pairs += 1
    report(seconds=time.perf_counter() - t0, pairs=pairs)


def check_case(act, n_times):
    """The interpolated mean against the every-pair solve (kernel_tol=None) on a grid small enough for both."""
    x, y = data()
    net = model(act)
    fast, slow = (net.predict(x[:100], y[:100], x[P:P + 50], n_times=n_times, covariance=False, kernel_tol=tol)
                  for tol in (1e-10, None))
    report(difference=float(np.max(np.abs(fast.mean - slow.mean)) / np.max(np.abs(slow.mean))))


def main(n_times):
    import platform
    print(f"# bench_ndk: P = {P}, P_test = {P_TEST}, d = {D}, depth {DEPTH}, {n_times} time points; "
          f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}")
    pairs = n_times * (n_times + 1) // 2
    print(f"{'activation':<10} {'symntk s':>9} {'kernel err':>10} {'loop ms/pair':>12} {'loop s (extrap.)':>16} "
          f"{'ratio':>7} {'RSS GiB':>8} {'vs every pair':>14}")
    for act in ACTS:
        s = run_isolated(__file__, "symntk", act, n_times)
        b = run_isolated(__file__, "baseline", act, 12)
        c = run_isolated(__file__, "check", act, 120)
        loop = b["seconds"] / b["pairs"] * pairs
        print(f"{act:<10} {s['seconds']:>9.1f} {s['kernel_error']:>10.1e} {1e3 * b['seconds'] / b['pairs']:>12.1f} "
              f"{loop:>16.0f} {loop / s['seconds']:>7.0f} {s['rss_gib']:>8.2f} {c['difference']:>14.1e}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--case"]:
        kind, act, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        {"symntk": symntk_case, "baseline": baseline_case, "check": check_case}[kind](act, n)
    else:
        main(int(sys.argv[sys.argv.index("--times") + 1]) if "--times" in sys.argv else 300)
