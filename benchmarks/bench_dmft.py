"""The deep DMFT (symntk.dmft) with its responses recomputed every RESPONSE_EVERY-th iteration
against the same solver recomputing them on every iteration (the baseline), in the same run and on
the same problem, each case in its own process (peak memory; the module constant is read when the
solver is traced).  Problem: depth-2 tanh, three training points and one test point (D = 5),
γ₀ = 1, λ = 0.3, 500 samples, 256 response samples (the default), n_t = 30, tol 1e-6.
Usage: python benchmarks/bench_dmft.py
"""
import sys
import time

import numpy as np

from _isolated import report, run_isolated


def case(every):
    from symntk import dmft
    from symntk.antk import WeightDecayMLP
    dmft.RESPONSE_EVERY = int(every)
    x = np.random.default_rng(0).normal(size=(4, 5))
    x *= np.sqrt(5) / np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array([1.0, -0.5, 0.8])
    model = WeightDecayMLP("tanh(x)", depth=2, gamma0=1.0, lam=0.3, particles=500)
    t0 = time.perf_counter()
    sol = model.solve(x[:3], y, x_test=x[3:], n_times=30, tol=1e-6)
    report(seconds=time.perf_counter() - t0, iterations=sol.iterations, result=sol.result,
           output=np.asarray(sol.output).tolist())


def main():
    from symntk.dmft import RESPONSE_EVERY
    print(f"# bench_dmft, {time.strftime('%Y-%m-%d')}: depth-2 tanh, 500 samples, 256 response samples, n_t = 30")
    base = run_isolated(__file__, 1)
    ours = run_isolated(__file__, RESPONSE_EVERY)
    for name, r in (("responses every iteration (baseline)", base), (f"every {RESPONSE_EVERY}th (symntk)", ours)):
        print(f"{name}: {r['seconds']:.1f} s including compilation, {r['iterations']} iterations, {r['result']}, "
              f"peak RSS {r['rss_gib']:.2f} GiB")
    print(f"largest output difference: {np.max(np.abs(np.subtract(base['output'], ours['output']))):.1e}")
    print(f"ratio (baseline / symntk): {base['seconds'] / ours['seconds']:.1f}x")


if __name__ == "__main__":
    if "--case" in sys.argv:
        case(sys.argv[sys.argv.index("--case") + 1])
    else:
        main()
