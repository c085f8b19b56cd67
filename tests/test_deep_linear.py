"""Deep linear feature learning (theory/adaptive.md D1–D6): the scalar solutions against the full
saddle-point equations, the three asymptotes, and the lazy limit.  Identities hold to rounding
(relative 1e-12 unless said); the asymptote checks use the next-order term as the tolerance."""
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from symntk import deep_linear as dl
from symntk.errors import ConvergenceError, DataError

gammas = st.floats(-3, 3).map(lambda e: 10.0**e)
betas = st.one_of(st.floats(0, 6).map(lambda e: 10.0**e), st.just(np.inf))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 1000), gammas, betas)
def test_whitened_overlaps_solve_d2_and_conserve_chi(depth, gamma0, beta):
    """D4's root satisfies the layer recursions D2 and the boundary ĉ_L = −γ₀²/(c_L + β⁻¹)²; c_ℓĉ_ℓ = χ (D3)."""
    ov = dl.whitened_overlaps(depth, gamma0, beta)
    c, ch = ov.c, ov.c_hat
    assert np.all(np.isfinite(c)) and np.all(c >= 1) and np.all(np.diff(c) >= 0)
    prev = np.concatenate([[1.0], c[:-1]])
    assert np.allclose(c, prev / (1 + prev * ch), rtol=1e-12, atol=0)
    assert np.allclose(ch[:-1], ch[1:] / (1 + c[:-1] * ch[1:]), rtol=1e-10, atol=1e-300)
    assert ch[-1] == pytest.approx(-gamma0**2 / (c[-1] + 1 / beta) ** 2, rel=1e-12)
    assert np.allclose(c * ch, ov.chi, rtol=1e-12)
    assert np.allclose(c, c[-1] ** (np.arange(1, depth + 1) / depth), rtol=1e-12)


def test_last_overlap_is_monotone_in_gamma0_and_vectorised():
    g = np.logspace(-3, 3, 200)
    c = dl.last_overlap(np.array([1, 8, 1000])[:, None], g[None, :], 10.0)
    assert c.shape == (3, 200) and np.all(np.diff(c, axis=1) > 0)


def test_asymptotes_are_limits():
    """D5: ratios → 1.  Lazy: (c_L − 1)/(Lγ₀²/(1+β⁻¹)²) = 1 + O(Lγ₀²); rich (β = ∞): c_L/γ₀^{2L/(L+1)}
    = 1 + O(γ₀^{−2/(L+1)}); deep: c ln c = Lγ₀² up to O(γ₀²/c_L)."""
    for L in (1, 4, 16):
        lazy = dl.asymptotes(L, 1e-4, 20.0).lazy
        assert (dl.last_overlap(L, 1e-4, 20.0) - 1) / (lazy - 1) == pytest.approx(1, abs=1e-6)
        g = 1e6 if L == 1 else 1e12
        assert dl.last_overlap(L, g, np.inf) / dl.asymptotes(L, g, np.inf).rich == pytest.approx(1, abs=3 * g ** (-2 / (L + 1)))
    for L in (10**4, 10**6):
        c = dl.last_overlap(L, 1.0, np.inf)
        assert c / dl.asymptotes(L, 1.0, np.inf).deep == pytest.approx(1, abs=2 / c)


def random_problem(seed, P=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(P + 3, 4))
    k = x @ x.T / 4 + 0.05 * np.eye(P + 3)
    return k, rng.normal(size=P)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 40), gammas, st.floats(0, 4).map(lambda e: 10.0**e))
@example(899, 16, 10**-0.5, 1.0)  # κ'(s) not monotone here: the bracket must bound κ' for all s
def test_general_solution_is_stationary(seed, depth, gamma0, beta):
    """D6 solves D1 and B6 exactly: every residual < 1e-9 relative to the matrices in it."""
    k, y = random_problem(seed)
    sol = dl.solve(k[:6, :6], y, depth, gamma0, beta)
    assert sol.residual < 1e-9


def test_identity_kernel_reproduces_the_whitened_overlaps():
    y = np.random.default_rng(1).normal(size=7)
    y /= np.linalg.norm(y)
    sol = dl.solve(np.eye(7), y, 6, 2.5, 30.0)
    assert np.allclose([y @ p @ y for p in sol.phi], dl.whitened_overlaps(6, 2.5, 30.0).c, rtol=1e-12)


def test_lazy_limit_gives_the_input_kernel():
    """γ₀ → 0: Φ̂ → 0 and Φˡ → Kˣ at rate γ₀² (first order: Φˡ ≈ Kˣ + ℓγ₀² Kˣa₀a₀ᵀKˣ)."""
    k, y = random_problem(3)
    k = k[:6, :6]
    a0 = np.linalg.solve(k + np.eye(6) / 10.0, y)
    for g in (1e-3, 1e-4):
        sol = dl.solve(k, y, 3, g, 10.0)
        first = np.array([k + ell * g**2 * k @ np.outer(a0, a0) @ k for ell in (1, 2, 3)])
        assert np.max(np.abs(sol.phi - first)) < 10 * g**4 * np.max(np.abs(k)) * np.sum(a0**2) ** 2 * 50


def test_predictor_is_ridge_with_a_shrunk_ridge():
    """D6: B1 with the adapted kernel, f = Φᴸ(x,X)(Φᴸ + β⁻¹I)⁻¹y, test rows Φᴸ(x,X) = Kˣ(x,X) +
    ((1+κ')ᴸ − 1)(Kˣ(x,X)v)uᵀ/m₀, equals Kˣ(x,X)(Kˣ + β⁻¹I/(1+s))⁻¹y."""
    k, y = random_problem(5)
    beta = 7.0
    sol = dl.solve(k[:6, :6], y, 4, 1.3, beta)
    kxX = k[6:, :6]
    # α(Kˣ(x,X)v)uᵀ/m₀ = Kˣ(x,X)(Kˣ)⁻¹(Φᴸ − Kˣ) since u = Kˣv
    phi_test = kxX + kxX @ np.linalg.solve(k[:6, :6], sol.phi[-1] - k[:6, :6])
    b1 = phi_test @ np.linalg.solve(sol.phi[-1] + np.eye(6) / beta, y)
    assert np.allclose(b1, sol.predict(kxX), rtol=1e-10, atol=1e-12)
    ridgeless = dl.solve(k[:6, :6], y, 4, 1.3, np.inf)
    assert np.allclose(ridgeless.predict(kxX), kxX @ np.linalg.solve(k[:6, :6], y), rtol=1e-10)


def test_ill_conditioned_kernel_raises_instead_of_a_wrong_saddle_point():
    """Digits: 60 points in 64 pixels give a rank-deficient Kˣ; at β = 10⁶ the saddle point is not
    resolvable in float64 and solve must say so; at β = 1 the same data solves to rounding."""
    from symntk.data import digits

    d = digits()
    kx, y = d.x_train[:60] @ d.x_train[:60].T / 64, d.y_train[:60]
    with pytest.raises(ConvergenceError, match="ill-conditioned"):
        dl.solve(kx, y, 3, 20.0, 1e6)
    assert dl.solve(kx, y, 3, 20.0, 1.0).residual < 1e-9


def test_bad_input():
    with pytest.raises(DataError, match="depth"):
        dl.whitened_overlaps(0, 1.0, 1.0)
    with pytest.raises(DataError, match="gamma0"):
        dl.last_overlap(2, -1.0, 1.0)
    with pytest.raises(DataError, match="beta"):
        dl.last_overlap(2, 1.0, 0.0)
    with pytest.raises(DataError, match="positive semi-definite"):
        dl.solve(-np.eye(3), np.ones(3), 2, 1.0, 1.0)
    with pytest.raises(DataError, match="beta = inf"):
        dl.solve(np.diag([1.0, 0.0]), np.ones(2), 2, 1.0, np.inf)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_symbolic_saddle_equations_vanish_at_the_numerical_solution(depth):
    """The stationarity conditions SymPy derives from the action hold at whitened_overlaps' root,
    and the matrix form of D1 checks out entrywise."""
    from symntk.recursion.deep_linear import beta, gamma0, matrix_check
    eqs = dl.saddle_equations(depth)
    ov = dl.whitened_overlaps(depth, 1.7, 12.0)
    values = {gamma0: 1.7, beta: 12.0, **dict(zip(eqs.c, ov.c)), **dict(zip(eqs.c_hat, ov.c_hat))}
    for eq in eqs.stationarity:
        assert abs(float(eq.lhs.subs(values))) < 1e-12
    assert abs(float((eqs.scalar.lhs - eqs.scalar.rhs).subs(values))) < 1e-10 * ov.c[-1]
    assert "\\hat{c}" in eqs.latex()
    assert matrix_check()


@pytest.mark.parametrize("depth, gamma0, beta", [(1, 0.5, 10.0), (3, 1.5, 20.0), (2, 3.0, 5.0)])
def test_matrix_minmax_on_the_action_finds_the_d6_solution(depth, gamma0, beta):
    """Independent path: Newton on ∇B2 = 0 over all matrix entries from the lazy point reaches
    ‖∇S‖_∞ < 1e-9 and the D6 kernels (agreement 1e-8: the Newton solve's conditioning)."""
    k, y = random_problem(2, P=4)
    phi, phi_hat, gnorm = dl.minmax(k[:4, :4], y, depth, gamma0, beta)
    sol = dl.solve(k[:4, :4], y, depth, gamma0, beta)
    assert gnorm < 1e-9
    assert np.max(np.abs(phi - sol.phi)) < 1e-8 and np.max(np.abs(phi_hat - sol.phi_hat)) < 1e-8


def test_generated_scalar_equations_are_deterministic_and_match_sympy():
    """The solvers' generated residuals equal the SymPy expressions of root_equations (mpmath, 30 digits)."""
    import sympy as sp
    from symntk.recursion.deep_linear import root_equations

    assert dl.generated_source() == dl.generated_source()
    mod, eq = dl._generated(), root_equations()
    F, dF = eq["whitened"]
    for x, L, g, b in [(0.3, 4.0, 1.5, 0.05), (40.0, 1000.0, 1e3, 0.0), (1e-6, 1.0, 1e-3, 1.0)]:
        subs = {sp.Symbol("x", real=True): x, sp.Symbol("L", real=True): L, sp.Symbol("gamma_0", positive=True): g,
                sp.Symbol("b", real=True): b}
        got = [float(v) for v in mod.whitened(x, L, g, b)]
        assert got == pytest.approx([float(F.evalf(30, subs=subs)), float(dF.evalf(30, subs=subs))], rel=1e-13, abs=1e-15)
    z, lam, y2, b = sp.symbols("z lam yhat2 b")
    mode = eq["general_mode"].subs({s: sp.Symbol(s.name) for s in eq["general_mode"].free_symbols})
    for point in [(0.5, 2.0, 0.3, 0.1), (300.0, 1e-8, 1.0, 0.0)]:
        ref = float(mode.evalf(30, subs=dict(zip((z, lam, y2, b), point))))
        assert float(mod.general_mode(*point)) == pytest.approx(ref, rel=1e-13)


def whitened_data(P=4, seed=0):
    """Kˣ = xxᵀ/D = I exactly (x = √P × an orthogonal matrix) and a unit label vector."""
    x = np.sqrt(P) * np.linalg.qr(np.random.default_rng(seed).normal(size=(P, P)))[0]
    return x, np.resize([1.0, -1.0], P) / np.sqrt(P)


@pytest.mark.slow  # 45 s; the deep-linear notebook runs the sampler against D4 in CI
def test_langevin_overlaps_match_theory_within_an_error_that_shrinks_with_width():
    """Two-layer linear net (L = 1), γ₀ = 2, β = 10, whitened P = 4: the chain-averaged overlap
    c_1 = yᵀΦ¹y of the finite-width Langevin posterior agrees with D4 within 4 standard errors
    (16 independent chains: Student t with 15 dof, two-sided tail 0.1 %), at N = 256 and 2048,
    and the standard error shrinks with width (N^{-1/2} gives a ratio 0.35; each error is itself
    uncertain by ~18 %, so < 0.7 is required); the same with Rademacher increments at N = 2048.  The lazy value 1 + γ₀²/(1 + β⁻¹)² = 4.3 and the prior
    value 1 are both > 100 standard errors away."""
    from symntk.nets.bayesian import sample_kernels

    x, y = whitened_data()
    theory = dl.whitened_overlaps(1, 2.0, 10.0).c
    errors = []
    for N in (256, 2048):
        r = sample_kernels(x, y, 1, N, 2.0, 10.0, chains=16, dt=0.01, t_end=15.0, burn_in=10.0)
        assert abs(r.mean_overlap - theory)[0] < 4 * r.overlap_error[0], (N, r.mean_overlap, r.overlap_error)
        errors.append(r.overlap_error[0])
    assert errors[1] / errors[0] < 0.7, errors
    r = sample_kernels(x, y, 1, 2048, 2.0, 10.0, chains=16, dt=0.01, t_end=15.0, burn_in=10.0, noise="rademacher")
    assert abs(r.mean_overlap - theory)[0] < 4 * r.overlap_error[0], (r.mean_overlap, r.overlap_error)


def test_langevin_rejects_a_step_too_large_for_its_stiffest_direction():
    from symntk.nets.bayesian import sample_kernels

    x, y = whitened_data()
    with pytest.raises(ConvergenceError, match="smaller dt"):
        sample_kernels(x, y, 1, 64, 2.0, 10.0, chains=2, dt=0.05, t_end=5.0, burn_in=1.0)
    with pytest.raises(DataError, match="gamma0"):
        sample_kernels(x, y, 1, 64, 0.0, 10.0)


@pytest.mark.slow
@pytest.mark.parametrize("depth, gamma0", [(2, 1.0)])
def test_langevin_layer_overlaps_approach_the_theory_as_width_doubles(depth, gamma0):
    """A deeper net (Rademacher increments, which keep N = 512 affordable), β = 5: at each of N = 128, 256, 512 every layer's overlap is within 4 standard
    errors plus the measured finite-width allowance |c(N) − c(2N)| (≈ the 1/N bias; half the
    previous one at N = 512), and the standard error shrinks with width (N^{-1/2}: ratio 0.5 from
    N = 128 to 512; < 0.75 required, each error being uncertain by ~18 %)."""
    from symntk.nets.bayesian import sample_kernels

    x, y = whitened_data()
    theory = dl.whitened_overlaps(depth, gamma0, 5.0).c
    runs = [sample_kernels(x, y, depth, N, gamma0, 5.0, chains=16, dt=0.01, t_end=20.0, burn_in=20.0,
                           noise="rademacher") for N in (128, 256, 512)]
    steps = [np.abs(a.mean_overlap - b.mean_overlap) for a, b in zip(runs, runs[1:])]
    for r, allowance in zip(runs, steps + [steps[-1] / 2]):
        assert np.all(np.abs(r.mean_overlap - theory) < 4 * r.overlap_error + allowance), (r.mean_overlap, theory)
    assert np.all(runs[2].overlap_error < 0.75 * runs[0].overlap_error), [r.overlap_error for r in runs]
