"""aNBK theory against finite-width Langevin networks at widths 512…4096 (issue 8's check; a GPU job).

Setting of ``tests/test_anbk.py::test_theory_matches_finite_width_langevin_networks``: depth 2,
the six points X6 (d = 4), β = 5; ReLU at γ₀ = 0.25 and tanh at γ₀ = 0.5.  Theory: the saddle
point with 2¹⁸ samples, twice (two seeds; their difference is the theory's own sampling error).
Networks: :func:`symntk.nets.bayesian.sample_kernels`, ``CHAINS`` chains per width in batches of
16 (memory: at N = 4096 a chain holds 16.8 M weights), t = 10 burn-in + 20 averaged, Δt = 0.01.

Printed per activation and width: the largest and the RMS kernel error over layers and entries,
the chains' standard error (RMS over entries), the bias estimate √(RMS² − SE² − theory²) (the
part of the error that is not sampling noise), the per-layer cosine similarity of the kernels
and of the feature-learning shifts Φ − Φ_lazy; then the fitted rate of the bias against N.
Usage: python benchmarks/anbk_widths.py [--out results.json] [--chains 64] [--widths 512,1024,2048,4096]
       [--acts relu,tanh]
"""
import json
import sys
import time

import numpy as np

import symntk  # noqa: F401  (float64)
from symntk import anbk
from symntk.nets.bayesian import sample_kernels

RNG = np.random.default_rng(3)
X6 = RNG.normal(size=(6, 4))
Y6 = np.sign(RNG.normal(size=6))
BETA, DEPTH, BATCH = 5.0, 2, 16
CASES = {"relu(x)": 0.25, "tanh(x)": 0.5}


def cosine(a, b):
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def network_kernels(act, gamma0, width, chains):
    """Per-chain time-averaged kernels, (chains, L, P, P), in batches of BATCH chains (seeds 0, 1, …)."""
    return np.concatenate([
        sample_kernels(X6, Y6, DEPTH, width, gamma0, BETA, activation=act, chains=BATCH, dt=0.01, t_end=20.0,
                       burn_in=10.0, noise="rademacher", seed=seed).phi
        for seed in range(chains // BATCH)])


def run(act, gamma0, widths, chains):
    t0 = time.perf_counter()
    theory = [anbk.BayesianMLP(act, DEPTH, gamma0, BETA, samples=2**18, seed=s).solve(X6, Y6).phi for s in (0, 1)]
    phi, theory_se = (theory[0] + theory[1]) / 2, np.sqrt(np.mean((theory[0] - theory[1]) ** 2)) / 2
    lazy = anbk.BayesianMLP(act, DEPTH, 0.0).solve(X6, Y6).phi
    rows = []
    for N in widths:
        k = network_kernels(act, gamma0, N, chains)
        mean, se = k.mean(0), k.std(0, ddof=1) / np.sqrt(len(k))
        err = mean - phi
        rms, rms_se = float(np.sqrt(np.mean(err**2))), float(np.sqrt(np.mean(se**2)))
        rows.append(dict(width=N, chains=len(k), max_error=float(np.max(np.abs(err))), rms_error=rms, rms_se=rms_se,
                         bias=float(np.sqrt(max(rms**2 - rms_se**2 - theory_se**2, 0.0))),
                         cosine=[cosine(a, b) for a, b in zip(mean, phi)],
                         shift_cosine=[cosine(a - c, b - c) for a, b, c in zip(mean, phi, lazy)]))
    fit = [r for r in rows if r["bias"] > 0]
    rate = float(np.polyfit(np.log([r["width"] for r in fit]), np.log([r["bias"] for r in fit]), 1)[0]) \
        if len(fit) >= 2 else None
    rate_rms = float(np.polyfit(np.log(widths), np.log([r["rms_error"] for r in rows]), 1)[0])
    return dict(activation=act, gamma0=gamma0, theory_se=float(theory_se), rows=rows, bias_rate=rate,
                rms_rate=rate_rms, seconds=time.perf_counter() - t0,
                shift_size=float(np.sqrt(np.mean((phi - lazy) ** 2))))


def main():
    import jax
    opt = lambda name, default: sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default  # noqa: E731
    widths = [int(w) for w in opt("--widths", "512,1024,2048,4096").split(",")]
    chains = int(opt("--chains", "64"))
    print(f"# anbk_widths: depth {DEPTH}, β = {BETA}, P = 6, {chains} chains; {jax.devices()[0].device_kind}, "
          f"{time.strftime('%Y-%m-%d')}", flush=True)
    results = []
    for act, gamma0 in CASES.items():
        if act.split("(")[0] not in opt("--acts", "relu,tanh").split(","):
            continue
        r = run(act, gamma0, widths, chains)
        results.append(r)
        print(f"{act} γ₀ = {gamma0}: RMS shift Φ − Φ_lazy {r['shift_size']:.4f}, theory SE {r['theory_se']:.1e}, "
              f"{r['seconds']:.0f} s")
        print(f"{'N':>5} {'max err':>8} {'RMS err':>8} {'RMS SE':>8} {'bias':>8} {'cos L1':>8} {'cos L2':>8} "
              f"{'shift cos L1':>12} {'shift cos L2':>12}")
        for w in r["rows"]:
            print(f"{w['width']:>5} {w['max_error']:>8.4f} {w['rms_error']:>8.4f} {w['rms_se']:>8.4f} {w['bias']:>8.4f} "
                  f"{w['cosine'][0]:>8.5f} {w['cosine'][1]:>8.5f} {w['shift_cosine'][0]:>12.3f} "
                  f"{w['shift_cosine'][1]:>12.3f}")
        print(f"fitted rate: bias ∝ N^{r['bias_rate']}, RMS error ∝ N^{r['rms_rate']:.2f}", flush=True)
    if "--out" in sys.argv:
        with open(opt("--out", ""), "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
