"""NDK predictor N8: symntk's jitted Volterra solver against a straightforward per-time-pair loop.

Issue setting: P = 500 training and 200 test points (d = 64), depth 3, erf and tanh (Hermite).
The cost of both is (number of time pairs) × (per-pair kernel work): symntk is timed on a grid
of 60 points for erf and 24 for tanh (the issue's 300 points take ~20 min for erf on 2 CPU cores), the
baseline — a Python loop over time pairs evaluating the same generated equations eagerly with
NumPy arrays, then the same trapezoid solve — on its first 12 grid rows; both are reported per
time pair and extrapolated to 300 points (n(n+1)/2 pairs).  Each case runs in its own process
(peak RSS).  Usage: python benchmarks/bench_ndk.py [--scale 1.0] (multiplies the time points timed)
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _isolated import report, run_isolated  # noqa: E402

P, P_TEST, D, DEPTH = 500, 200, 64, 3
ACTS = {"erf(x)": 60, "tanh(x)": 24}  # activation: time points timed (the Hermite pair costs ~10× erf's)


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
    report(seconds=seconds, pairs=n_times * (n_times + 1) // 2, n_times=len(sol.grid))


def baseline_case(act, rows):
    """History rows n = 1..rows of the trapezoid scheme, one kernel call per time pair, eagerly."""
    import jax.numpy as jnp
    from symntk.ndk import weight_autocorrelation
    x, y = data()
    net = model(act)
    mod = net.dual.module()
    grid = net.time_grid(x[:P], n_times=60)[:rows + 1]
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


def main(scale):
    import platform
    print(f"# bench_ndk: P = {P}, P_test = {P_TEST}, d = {D}, depth {DEPTH}; {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}")
    full = 300 * 301 // 2
    print(f"{'activation':<10} {'symntk s':>9} {'pairs':>6} {'ms/pair':>8} {'loop ms/pair':>12} {'ratio':>6} "
          f"{'symntk 300 pts (extrap.) s':>27} {'RSS GiB':>8}")
    for act, n_times in ACTS.items():
        s = run_isolated(__file__, "symntk", act, max(4, int(scale * n_times)))
        b = run_isolated(__file__, "baseline", act, 12)
        ms, base = 1e3 * s["seconds"] / s["pairs"], 1e3 * b["seconds"] / b["pairs"]
        print(f"{act:<10} {s['seconds']:>9.1f} {s['pairs']:>6} {ms:>8.2f} {base:>12.1f} {base / ms:>6.1f} "
              f"{ms * full / 1e3:>27.0f} {s['rss_gib']:>8.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--case"]:
        kind, act, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        symntk_case(act, n) if kind == "symntk" else baseline_case(act, n)
    else:
        main(float(sys.argv[sys.argv.index("--scale") + 1]) if "--scale" in sys.argv else 1.0)
