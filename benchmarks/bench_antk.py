"""The two-layer aNTK solver against a plain NumPy Euler loop of the same particle equations, to
the same T4 fixed-point residual, in the same run (each case in its own process for peak memory).

symntk runs its semi-implicit integrator (output modes implicit; ``integrator="semi-implicit"``).
Default: the issue's problem, ReLU on P = 1000 digits (0–4 against 5–9), 10⁴ particles, γ₀ = 1,
λ = 1e-2.  Its output modes are stiff (λ_max(K) grows from 190 to 2200, against λ = 1e-2), so the
Euler loop runs for ``budget`` seconds and symntk is then timed to the smallest residual the loop
reached (the ratio is the loop's time to that residual over symntk's); ``--t-max T`` instead runs
symntk alone to the issue's residual 1e-3 or time T.  ``--smooth``: digits 3 vs 8, P = 20,
x·erf(x), 2000 particles, γ₀ = 1, λ = 0.2, both to the residual 1e-3.
Usage: python benchmarks/bench_antk.py [--smooth] [--t-max T]
"""
import sys
import time

import numpy as np
from scipy.special import erf

from _digits import all_digits
from _isolated import report, run_isolated

SMOOTH = dict(activation="x*erf(x)", n_train=20, particles=2000, gamma0=1.0, lam=0.2, tol=1e-3, euler_fraction=0.5)
# λ_max(K) grows 12× along the ReLU flow, so the loop's step is 1/20 of Euler's bound 2/λ_max at t = 0
RELU = dict(activation="relu(x)", n_train=1000, particles=10_000, gamma0=1.0, lam=1e-2, tol=1e-3, euler_fraction=0.1,
            budget=240.0)
NUMPY_PHI = {"x*erf(x)": (lambda h: h * erf(h), lambda h: erf(h) + 2 * h * np.exp(-h * h) / np.sqrt(np.pi)),
             "relu(x)": (lambda h: np.maximum(h, 0), lambda h: (h > 0).astype(float))}


def problem(cfg):
    if cfg is RELU:
        return all_digits(cfg["n_train"])
    from symntk.data import digits
    d = digits(n_train=cfg["n_train"])
    return d.x_train, d.y_train


def case_symntk(cfg, tol, t_max):
    from symntk.antk import WeightDecayMLP
    x, y = problem(cfg)
    model = WeightDecayMLP(cfg["activation"], gamma0=cfg["gamma0"], lam=cfg["lam"], particles=cfg["particles"])
    t0 = time.perf_counter()
    model.solve(x, y, t_max=1e-2, throw=False, integrator="semi-implicit")  # compiles for these shapes
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol = model.solve(x, y, tol=tol, t_max=t_max, throw=False, integrator="semi-implicit")
    report(seconds=time.perf_counter() - t0, compile_s=compile_s, t_end=sol.t_final,
           residual=max(sol.residual), result=sol.result)


def case_numpy(cfg):
    """Explicit Euler on (h, z) in the data basis, dt = ``euler_fraction``/λ_max(K) at t = 0, residual
    checked every 20 steps; to the residual ``tol``, or for ``budget`` seconds (then: the smallest
    residual seen and the time it was first reached)."""
    x, y = problem(cfg)
    phi, dphi = NUMPY_PHI[cfg["activation"]]
    g0, lam, M = cfg["gamma0"], cfg["lam"], cfg["particles"]
    P, kx = len(y), x @ x.T / x.shape[1]
    ev, U = np.linalg.eigh(kx)
    rng = np.random.default_rng(0)
    h = rng.normal(size=(M // 2, P)) @ (U * np.sqrt(np.clip(ev, 0, None))).T
    z = rng.normal(size=M // 2)
    h, z = np.concatenate([h, h]), np.concatenate([z, -z])
    scale_h, scale_z = np.linalg.norm(h), np.linalg.norm(z)
    t0 = time.perf_counter()

    def fields(h, z):
        delta = y - phi(h).T @ z / (M * g0)
        return g0 * (z[:, None] * dphi(h) * delta) @ kx - lam * h, g0 * phi(h) @ delta - lam * z

    p, g = phi(h), z[:, None] * dphi(h)
    dt = cfg["euler_fraction"] / (np.linalg.eigvalsh(p.T @ p / M + (g.T @ g / M) * kx)[-1] + lam)
    t, steps, best = 0.0, 0, (np.inf, 0.0, 0.0, 0)
    while best[0] > cfg["tol"] and time.perf_counter() - t0 < cfg.get("budget", np.inf):
        fh, fz = fields(h, z)
        if steps % 20 == 0:
            residual = max(np.linalg.norm(fh) / (lam * scale_h), np.linalg.norm(fz) / (lam * scale_z))
            if residual < best[0]:
                best = (residual, time.perf_counter() - t0, t, steps)
        h, z, t, steps = h + dt * fh, z + dt * fz, t + dt, steps + 1
    report(residual=best[0], seconds=best[1], t_end=best[2], steps=best[3], dt=dt)


def main(cfg):
    print(f"# bench_antk, {time.strftime('%Y-%m-%d')}: {cfg}")
    base = run_isolated(__file__, "numpy", *sys.argv[1:])
    tol = max(cfg["tol"], base["residual"])
    ours = run_isolated(__file__, "symntk", *sys.argv[1:], "--tol", tol)
    print(f"NumPy explicit Euler (dt = {base['dt']:.3g}): residual {base['residual']:.3g} first reached after "
          f"{base['seconds']:.1f} s, {base['steps']} steps, t = {base['t_end']:.4g}; "
          f"peak RSS {base['rss_gib']:.2f} GiB")
    print(f"symntk (semi-implicit Euler, low-rank coordinates, jitted) to {tol:.3g}: {ours['seconds']:.1f} s "
          f"(+ {ours['compile_s']:.1f} s compile), t = {ours['t_end']:.4g}, residual {ours['residual']:.2g}, "
          f"{ours['result']}, peak RSS {ours['rss_gib']:.2f} GiB")
    print(f"ratio (NumPy / symntk, time to the same residual): {base['seconds'] / ours['seconds']:.1f}x")


def target(cfg, t_max):
    """symntk alone on the issue's problem, to the residual 1e-3 or time ``t_max``."""
    print(f"# bench_antk, {time.strftime('%Y-%m-%d')}: {cfg}, symntk alone to {cfg['tol']} or t = {t_max:g}")
    ours = run_isolated(__file__, "symntk", *sys.argv[1:], "--tol", cfg["tol"])
    print(f"symntk: {ours['seconds']:.1f} s (+ {ours['compile_s']:.1f} s compile), t = {ours['t_end']:.4g}, "
          f"residual {ours['residual']:.2g}, {ours['result']}, peak RSS {ours['rss_gib']:.2f} GiB")


def option(name, default):
    return float(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


if __name__ == "__main__":
    cfg = SMOOTH if "--smooth" in sys.argv else RELU
    t_max = option("--t-max", 1e6)
    if "--case" in sys.argv:
        case = sys.argv[sys.argv.index("--case") + 1]
        case_symntk(cfg, option("--tol", cfg["tol"]), t_max) if case == "symntk" else case_numpy(cfg)
    elif "--t-max" in sys.argv:
        target(cfg, t_max)
    else:
        main(cfg)
