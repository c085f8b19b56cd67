"""The aNBK saddle-point solver against a plain implementation of paper Algorithm 1, in the same
run (each case in its own process, for its peak memory).

Problems: digits (0–4 against 5–9), two-layer ReLU (depth 1) and depth-2 tanh, β = 5, P = 200 and 1000.
symntk: `BayesianMLP(samples=2**13).solve(tol=1e-4)` — fixed QMC samples with control variates,
continuation in γ₀² with a Newton–Krylov corrector, fitted proposals (2¹³ samples per layer and
proposal); its ESS is reported on the solve's own points and on independent ones
(`Solution.ess_heldout`; below min_ess there the result is `sampling_degenerate`).
Plain Algorithm 1: simultaneous gradient ascent in Φ̂ (5 inner steps) and descent in Φ on the
action B2, every outer step with 2·10⁵ fresh Monte-Carlo samples per layer (self-normalised
importance weights, log-sum-exp), from the NNGP kernels, jitted, samples processed in chunks of
10⁴; it stops at the same stationarity residual (B4 and B5–B6, relative Frobenius, measured with
its current samples) or after ``--budget`` seconds.
Usage: python benchmarks/bench_anbk.py [--gamma0 G] [--sizes 200,1000] [--budget SECONDS] [--symntk-only]
(one outer step of the plain algorithm at P = 1000 costs several minutes on 2 CPU cores: 6·depth
importance averages over 2·10⁵ samples of dimension 1000).
"""
import sys
import time

import numpy as np

from _digits import all_digits
from _isolated import report, run_isolated

CASES = [("relu(x)", 1), ("tanh(x)", 2)]
TOL, BETA, SAMPLES, PLAIN_SAMPLES, CHUNK = 1e-4, 5.0, 2**13, 200_000, 10_000


def case_symntk(act, depth, P, gamma0):
    from symntk.anbk import BayesianMLP
    x, y = all_digits(P)
    m = BayesianMLP(act, depth=depth, gamma0=gamma0, beta=BETA, samples=SAMPLES)
    t0 = time.perf_counter()
    m.solve(x, y, max_steps=1, adapt=0, throw=False)  # compiles for these shapes
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol = m.solve(x, y, tol=TOL, throw=False)
    seconds = time.perf_counter() - t0
    report(seconds=seconds, compile_s=compile_s, result=sol.result, residual=sol.residual,
           ess=float(np.min(sol.ess)), ess_heldout=float(np.nanmin(sol.ess_heldout, initial=np.inf)), samples=SAMPLES)


def case_plain(act, depth, P, gamma0, budget):
    import jax
    import jax.numpy as jnp

    from symntk.gaussian import derive
    x, y = all_digits(P)
    phi = derive(act).module().phi
    kx = jnp.asarray(x @ x.T / x.shape[1])
    y = jnp.asarray(y)

    def moments(key, cov, hat):
        """⟨φφᵀ⟩ and ⟨hhᵀ⟩ under N(0, cov) tilted by e^{−½φᵀΦ̂φ}: fresh samples, in chunks."""
        C = jnp.linalg.cholesky(cov + 1e-10 * jnp.trace(cov) / P * jnp.eye(P))

        def chunk(carry, k):
            h = jax.random.normal(k, (CHUNK, P)) @ C.T
            f = phi(h)
            logw = -0.5 * jnp.sum((f @ hat) * f, 1)
            m, s, ff, hh = carry
            m_new = jnp.maximum(m, jnp.max(logw))
            w = jnp.exp(logw - m_new)
            r = jnp.exp(m - m_new)
            return (m_new, s * r + jnp.sum(w), ff * r + (f * w[:, None]).T @ f, hh * r + (h * w[:, None]).T @ h), None

        init = (-jnp.inf, 0.0, jnp.zeros((P, P)), jnp.zeros((P, P)))
        (_, s, ff, hh), _ = jax.lax.scan(chunk, init, jax.random.split(key, PLAIN_SAMPLES // CHUNK))
        return ff / s, hh / s

    @jax.jit
    def outer(key, Phi, hat, lr):
        keys = jax.random.split(key, 6 * depth)

        def inner(i, hat):  # 5 ascent steps in Φ̂: ∂S/∂Φ̂ˡ = ½(⟨φφᵀ⟩ˡ − Φˡ)
            prev = jnp.concatenate([kx[None], Phi[:-1]])
            ff = jnp.stack([moments(keys[i * depth + l], prev[l], hat[l])[0] for l in range(depth)])
            return hat + lr * 0.5 * (ff - Phi)

        hat = jax.lax.fori_loop(0, 5, inner, hat)
        prev = jnp.concatenate([kx[None], Phi[:-1]])
        mom = [moments(keys[5 * depth + l], prev[l], hat[l]) for l in range(depth)]
        ff = jnp.stack([m[0] for m in mom])
        a = jnp.linalg.solve(Phi[-1] + jnp.eye(P) / BETA, y)
        target = [jnp.linalg.inv(Phi[l]) - jnp.linalg.solve(Phi[l], jnp.linalg.solve(Phi[l], mom[l + 1][1]).T)
                  for l in range(depth - 1)] + [-gamma0**2 * jnp.outer(a, a)]
        target = jnp.stack(target)
        grad_phi = 0.5 * (target - hat)  # ∂S/∂Φˡ
        res = jnp.maximum(jnp.linalg.norm(ff - Phi) / jnp.linalg.norm(Phi),
                          jnp.linalg.norm(target - hat) / jnp.maximum(jnp.linalg.norm(target), 1e-300))
        return Phi - lr * grad_phi, hat, res

    from symntk.anbk import BayesianMLP
    Phi = jnp.asarray(BayesianMLP(act, depth=depth, gamma0=0.0).nngp(x))
    hat = jnp.zeros_like(Phi)
    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    outer(key, Phi, hat, 0.5)[2].block_until_ready()
    compile_s, t0 = time.perf_counter() - t0, time.perf_counter()
    steps, res, best = 0, np.inf, np.inf
    while time.perf_counter() - t0 < budget and res > TOL:
        key, sub = jax.random.split(key)
        Phi, hat, res = outer(sub, Phi, hat, 0.5)
        res = float(res)
        steps += 1
        best = min(best, res) if np.isfinite(res) else best
        if not np.isfinite(res):
            break
    report(seconds=time.perf_counter() - t0, compile_s=compile_s, steps=steps, residual=res, best_residual=best,
           reached=bool(res <= TOL))


if __name__ == "__main__":
    if "--case" in sys.argv:
        side, act, depth, P, gamma0, budget = sys.argv[sys.argv.index("--case") + 1:]
        args = (act, int(depth), int(P), float(gamma0))
        case_symntk(*args) if side == "symntk" else case_plain(*args, float(budget))
        sys.exit()
    opt = lambda name, default: sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default  # noqa: E731
    gamma0, budget = float(opt("--gamma0", "0.1")), float(opt("--budget", "300"))
    sizes = [int(s) for s in opt("--sizes", "200,1000").split(",")]
    print(f"aNBK, digits, β = {BETA}, γ₀ = {gamma0}, stationarity residual {TOL:g}; plain budget {budget:.0f} s")
    for P in sizes:
        for act, depth in CASES:
            ours = run_isolated(__file__, "symntk", act, depth, P, gamma0, budget)
            if "--symntk-only" in sys.argv:
                print(f"P = {P}, {act}, depth {depth}: symntk {ours['seconds']:.1f} s (+{ours['compile_s']:.1f} s "
                      f"compile, {ours['result']}, residual {ours['residual']:.2g}, min ESS {ours['ess']:.0f}/"
                      f"{ours['samples']} (held out {ours['ess_heldout']:.0f}), {ours['rss_gib']:.2f} GiB)", flush=True)
                continue
            plain = run_isolated(__file__, "plain", act, depth, P, gamma0, budget)
            ratio = (f"{plain['seconds'] / ours['seconds']:.1f}×" if plain["reached"] else
                     f"≥ {plain['seconds'] / ours['seconds']:.1f}× (plain did not reach {TOL:g})")
            if ours["result"] != "successful":
                ratio = "symntk did not converge: no ratio"
            print(f"P = {P}, {act}, depth {depth}: symntk {ours['seconds']:.1f} s (+{ours['compile_s']:.1f} s compile, "
                  f"{ours['result']}, residual {ours['residual']:.2g}, min ESS {ours['ess']:.0f}/{ours['samples']} "
                  f"(held out {ours['ess_heldout']:.0f}), "
                  f"{ours['rss_gib']:.2f} GiB) | plain Algorithm 1 {plain['seconds']:.1f} s, {plain['steps']} steps, "
                  f"residual {plain['residual']:.2g} (best {plain['best_residual']:.2g}), {plain['rss_gib']:.2f} GiB "
                  f"| {ratio}", flush=True)
