"""The Neural Dynamical Kernel against every limit of theory/ndk.md (N10–N14) and against itself.

Tolerances: identities between kernels hold to rounding (1e-12 relative); predictor limits
carry the trapezoid error of the solver, O(h²), which each test either measures (by halving
the grid spacing) or bounds through the grid it chooses (stated where used).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symntk as sn
from symntk.errors import DataError
from symntk.ndk import LangevinMLP, two_scale_grid
from symntk.predict import nngp_posterior, ntk_gradient_flow
from symntk.solve import volterra

CLOSED = ["erf(x)", "relu(x)", "x", "gelu(x)"]


def points(seed, n, d=3):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x * np.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True) * np.random.default_rng(seed + 1).uniform(0.7, 1.3, (n, 1))


def labels(seed, n):
    return np.where(np.random.default_rng(seed + 2).random(n) < 0.5, -1.0, 1.0)


def rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


problems = st.fixed_dictionaries({
    "act": st.sampled_from(CLOSED), "depth": st.integers(1, 3), "seed": st.integers(0, 10**6),
    "sigma0_sq": st.floats(0.5, 3.0), "sigma_sq": st.floats(0.3, 2.0), "temperature": st.floats(0.02, 0.3)})


@settings(max_examples=5, deadline=None)
@given(problems)
def test_ndk_equals_ntk_and_prior_is_nngp_at_t0(p):
    """N10: K_d(0,0) = Θ/σ₀² and C(0,0) = K of the lazy MLP with σ_w² = σ₀², σ_b = 0 (NTK parameterisation)."""
    x = points(p["seed"], 5)
    net = LangevinMLP(p["act"], p["depth"], p["sigma0_sq"], p["sigma_sq"], p["temperature"])
    lazy = sn.MLP(p["act"], p["depth"], sigma_w=np.sqrt(p["sigma0_sq"]), sigma_b=0.0).kernel(x)
    C, Kd = net.kernels(0.0, 0.0, x)
    assert rel(Kd, lazy.ntk / p["sigma0_sq"]) < 1e-12
    assert rel(C, lazy.nngp) < 1e-12


@settings(max_examples=4, deadline=None)
@given(problems)
def test_predictor_starts_at_zero_with_the_prior_variance(p):
    """N10: f̄(·, 0) = 0 and Var f(x, 0) = σ₀² K^L(0,0,x,x) = C(0,0,x,x)."""
    x, y = points(p["seed"], 4), labels(p["seed"], 3)
    net = LangevinMLP(p["act"], p["depth"], p["sigma0_sq"], p["sigma_sq"], p["temperature"])
    sol = net.predict(x[:3], y, x[3:], times=[0.0, 1.0], n_times=20)
    assert np.all(sol.mean[0] == 0)
    assert rel(sol.covariance[0], net.prior_covariance(0.0, 0.0, x)) < 1e-12


@pytest.mark.parametrize("act", ["erf(x)", pytest.param("relu(x)", marks=pytest.mark.slow)])
def test_zero_temperature_is_the_ntk_gradient_flow(act):
    """N11: at T = 0 the mean is the NTK flow of Θ = K_d(0,0) (σ₀² only; σ² drops out), here
    to the solver's O(h²) error at 4× the default resolution (measured ≲ 1e-6)."""
    x, y = points(3, 7), labels(3, 5)
    times = [0.1, 0.5, 2.0, 10.0]
    means = []
    for sigma_sq in (0.5, 3.0):
        net = LangevinMLP(act, 2, 1.7, sigma_sq, 0.0)
        means.append(net.predict(x[:5], y, x[5:], times=times, n_times=800, covariance=False).mean)
    theta = net.ndk(0.0, 0.0, x)
    ref = ntk_gradient_flow(theta[:5, :5], theta[:, :5], y, t=times).mean
    assert np.max(np.abs(means[0] - ref)) < 1e-5
    assert np.max(np.abs(means[0] - means[1])) < 1e-12


def test_small_temperature_approaches_the_ntk_flow_linearly():
    """N11 as a limit: at fixed t the gap to the T = 0 flow is O(T) (halving T halves it)."""
    x, y = points(5, 6), labels(5, 4)
    times = [0.5, 2.0]
    gaps = []
    for T in (0.02, 0.01, 0.005):
        net = LangevinMLP("erf(x)", 1, 1.5, 0.5, T)
        gaps.append(np.max(np.abs(net.predict(x[:4], y, x[4:], times=times, n_times=120).mean
                                  - LangevinMLP("erf(x)", 1, 1.5, 0.5, 0.0).predict(
                                      x[:4], y, x[4:], times=times, n_times=120).mean)))
    assert 1.8 < gaps[0] / gaps[1] < 2.2 and 1.8 < gaps[1] / gaps[2] < 2.2, gaps


@pytest.mark.parametrize("act", ["erf(x)", pytest.param("relu(x)", marks=pytest.mark.slow)])
def test_long_time_is_the_nngp_posterior_whatever_sigma0(act):
    """N12: f̄(∞) = K_GP(K_GP + T)⁻¹Y, covariance → GP posterior, K_GP = σ²K^L_eq, for two σ₀².

    The error is the trapezoid's: O(h²) for erf (it must fall ~4× when the spacing halves), but
    O(h^{3/2}) for ReLU, whose K_d(t, s, x, x) has a √(t − s) cusp at s → t (derivations/ndk.md),
    so ~2.8×; at the finer grid (h k ≤ 0.05) the measured errors are 1e-3 (erf) and 3e-3 (ReLU)."""
    x, y = points(7, 4), labels(7, 3)
    T, sigma_sq = 0.1, 0.6
    lazy = sn.MLP(act, 2, sigma_w=np.sqrt(sigma_sq), sigma_b=0.0).kernel(x).nngp
    post = nngp_posterior(lazy[:3, :3], lazy[:, :3], lazy, y, noise=T)
    rate, tol = {"erf(x)": (3.5, 2e-3), "relu(x)": (2.5, 4e-3)}[act]
    for sigma0_sq, covariance in ((2.5, True), (0.4, False)):  # the covariance (O((n_t P)³)) once
        net = LangevinMLP(act, 2, sigma0_sq, sigma_sq, T)
        n = len(net.time_grid(x[:3]))
        err = []
        for n_times in (n, 2 * n - 1):
            sol = net.predict(x[:3], y, x[3:], n_times=n_times, covariance=covariance)
            err.append([np.max(np.abs(sol.mean[-1] - post.mean))]
                       + ([np.max(np.abs(sol.covariance[-1] - post.covariance))] if covariance else []))
        err = np.array(err)
        assert np.all(err[1] < tol) and np.all(err[1] < err[0] / rate), err


@pytest.mark.parametrize("act", CLOSED)
def test_equal_variances_make_kernels_time_translation_invariant(act):
    """σ₀ = σ: the weights start in equilibrium, so C and K_d depend on t − s only."""
    x = points(11, 4)
    net = LangevinMLP(act, 2, 0.8, 0.8, 0.2)
    t, s = np.array([0.3, 1.0, 4.0]), np.array([0.0, 0.7, 1.5])
    for a, b in zip(net.kernels(t, s, x), net.kernels(t + 2.5, s + 2.5, x)):
        assert rel(a, b) < 1e-12


@pytest.mark.parametrize("act", ["erf(x)", "relu(x)", "gelu(x)"])
def test_fluctuation_dissipation_at_stationarity(act):
    """N13: T K_d(t,s) = ∂_s C(t,s) (central difference, step 1e-4/k: error ~1e-8 relative), and
    ∫_{−∞}^t K_d(t,s) ds = K_GP/T, integrated over s = t − τu² (τ = 30/k, truncation e^{−30}) by the
    trapezoid rule in u with 4000 steps; the substitution smooths ReLU's √(t − s) cusp, so the
    error is O(h²) ~ 1e-7."""
    x = points(13, 4)
    T, sigma_sq = 0.15, 0.7
    k = T / sigma_sq
    net = LangevinMLP(act, 2, sigma_sq, sigma_sq, T)
    t, s, h = 200.0, 198.5, 1e-4 / k
    dC = (net.prior_covariance(t, s + h, x) - net.prior_covariance(t, s - h, x)) / (2 * h)
    assert rel(T * net.ndk(t, s, x), dC) < 1e-6
    u = np.linspace(0, 1, 4001)
    tau = 30 / k
    integral = np.trapezoid(net.ndk(t, t - tau * u**2, x) * (2 * tau * u)[:, None, None], u, axis=0)
    assert rel(integral, net.prior_covariance(t, t, x) / T) < 1e-5


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_linear_activation_kernels_are_powers_of_m(depth):
    """N14: φ = x gives C = m^{L+1} K⁰ and K_d = (L+1) e^{−k(t−s)} m^L K⁰."""
    x = points(17, 4)
    net = LangevinMLP("x", depth, 1.3, 0.6, 0.2)
    t, s = np.array([0.0, 0.8, 3.0]), np.array([0.0, 0.2, 3.0])
    m = net.autocorrelation(t, s)[:, None, None]
    K0 = x @ x.T / x.shape[1]
    C, Kd = net.kernels(t, s, x)
    assert rel(C, m ** (depth + 1) * K0) < 1e-13
    assert rel(Kd, (depth + 1) * np.exp(-net.rate * (t - s))[:, None, None] * m**depth * K0) < 1e-13


def test_depth_zero_mean_converges_at_second_order_to_the_closed_form():
    """N14 (L = 0): f̄_X(t) = (K⁰ + kI)⁻¹K⁰[I − e^{−(K⁰+kI)t}]Y; halving the spacing of the
    two-scale grid (n → 2n − 1 nested points) divides the error by 4 (trapezoid, O(h²))."""
    x, y = points(19, 5, d=6), labels(19, 5)
    net = LangevinMLP("x", 0, 1.0, 0.5, 0.25)
    K0 = x @ x.T / x.shape[1]
    lam, U = np.linalg.eigh(K0 + net.rate * np.eye(5))
    grid0 = net.time_grid(x, n_times=41)
    exact = np.array([U @ np.diag(-np.expm1(-lam * t) / lam) @ U.T @ K0 @ y for t in grid0])
    errors = []
    for level in range(3):
        n = 40 * 2**level + 1
        sol = net.predict(x, y, n_times=n, covariance=False)
        assert np.allclose(sol.grid[::2**level], grid0, rtol=1e-13, atol=0)
        errors.append(np.max(np.abs(sol.mean[::2**level] - exact)))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 3.5) & (ratios < 4.5)), (errors, ratios)


def test_mean_is_linear_in_y_and_covariance_does_not_depend_on_y():
    x = points(23, 6)
    net = LangevinMLP("erf(x)", 2, 1.5, 0.5, 0.1)
    y1, y2 = labels(1, 4), np.random.default_rng(4).normal(size=4)
    s1, s2 = (net.predict(x[:4], y, x[4:], n_times=30) for y in (y1, y2))
    s12 = net.predict(x[:4], 2.0 * y1 - 0.5 * y2, x[4:], n_times=30)
    assert rel(s12.mean, 2.0 * s1.mean - 0.5 * s2.mean) < 1e-11
    assert np.array_equal(s1.covariance, s2.covariance)


@pytest.mark.parametrize("act", ["erf(x)", "relu(x)"])
def test_scan_solver_equals_the_dense_block_operator(act):
    """The jitted forward substitution and the dense (I + A_XX)⁻¹ solve of the same scheme agree
    to rounding: f̄ = A (I + A_XX)⁻¹ Ȳ (both with K_d(t, t, x, x) from the exact diagonal pass: through
    the pair formula at ρ = 1, ReLU's V̇ carries ~1e-9 of rounding from the arccos kink)."""
    x, y = points(29, 7), labels(29, 5)
    net = LangevinMLP(act, 2, 1.2, 0.9, 0.3)
    sol = net.predict(x[:5], y, x[5:], n_times=25, covariance=False)
    Kd = net.ndk(sol.grid[:, None], sol.grid[None, :], x)[..., :5]
    A = volterra.operator(sol.grid, Kd)
    rows = (np.arange(25)[:, None] * 7 + np.arange(5)).ravel()
    dense = A @ np.linalg.solve(np.eye(25 * 5) + A[rows], np.tile(y, 25))
    assert rel(sol.mean, dense.reshape(25, 7)) < 1e-11


# tanh (a Hermite-series dual, 50 s in CI) in make test-slow: the interpolation does not depend on how
# K_d is evaluated, and erf (smooth) and relu (ρ = 1 at x = x') cover its two cases in CI.
@pytest.mark.parametrize("act, depth", [("erf(x)", 2), ("relu(x)", 2),
                                        pytest.param("tanh(x)", 1, marks=pytest.mark.slow)])
def test_interpolated_kernel_gives_the_every_pair_mean(act, depth):
    """``predict`` interpolates K_d in time (few kernel evaluations) when that is cheaper than the
    n(n+1)/2 time pairs; its mean equals the every-pair solve to first order in the kernel error:
    |δf̄_n| ≤ tol·max|K_d| Σ_m W_nm ‖r_m‖₁, doubled for the feedback through the training residual
    (the resolvent of a positive kernel contracts).  ReLU checks t = s at x = x' (ρ = 1, where K_d is
    not analytic in e^{−k(t−s)}: the interpolation variable (1 − e^{−k(t−s)})^{1/2} makes it so); a short
    grid has fewer pairs than the interpolation needs and is solved pair by pair (error 0)."""
    x, y = points(41, 9), labels(41, 6)
    net = LangevinMLP(act, depth, 2.0, 0.5, 0.05)
    fast = net.predict(x[:6], y, x[6:], n_times=120, covariance=False)
    slow = net.predict(x[:6], y, x[6:], n_times=120, covariance=False, kernel_tol=None)
    assert 0 < fast.kernel_error <= 1e-10 and slow.kernel_error == 0
    scale = np.max(np.abs(net.ndk(fast.grid[:, None], fast.grid[None, :], x)))
    residual = np.abs(y - slow.mean[:, :6]).sum(axis=1)
    bound = 2 * 1e-10 * scale * np.max(volterra.weights(fast.grid) @ residual)
    assert np.max(np.abs(fast.mean - slow.mean)) <= bound
    assert net.predict(x[:6], y, x[6:], n_times=40, covariance=False).kernel_error == 0


def test_two_scale_grid_spacing():
    """Spacing starts at h_start (within the first step's 5% growth), grows by 1.05 per step at
    most and saturates towards h_cap (reached asymptotically: within 3% at the end here)."""
    t = two_scale_grid(1e-3, 0.5, 40.0)
    h = np.diff(t)
    assert t[0] == 0 and t[-1] == 40.0
    assert abs(h[0] / 1e-3 - 1) < 0.05 and abs(h[-1] / 0.5 - 1) < 0.03
    assert np.all(h[1:] / h[:-1] < 1.051) and np.all(h[1:] / h[:-1] > 1.0)


def test_phases_are_reported():
    x = points(31, 5)
    net = LangevinMLP("erf(x)", 1, 2.0, 0.5, 0.05)
    ph = net.predict(x[:4], labels(31, 4), x[4:], n_times=20).phases
    lam = np.linalg.eigvalsh(net.ndk(0.0, 0.0, x[:4]))
    assert ph.diffusive == pytest.approx(10.0) and ph.gradient == pytest.approx(1 / lam[-1])
    assert ph.gradient_slowest == pytest.approx(1 / lam[0])


def test_recursion_latex_has_the_autocorrelation_and_the_dual():
    text = LangevinMLP("erf(x)", 2, 2.0, 0.5, 0.05).recursion().latex()
    assert "m(t,t')" in text and r"G^\ell" in text and r"\operatorname{atan}_{2}" in text


@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=-1), "depth"), (dict(sigma0_sq=0.0), "sigma0_sq"), (dict(sigma_sq=-1.0), "sigma_sq"),
    (dict(temperature=-0.1), "temperature"), (dict(temperature=float("nan")), "temperature")])
def test_bad_settings_are_rejected(kwargs, match):
    settings_ = dict(activation="erf(x)", depth=1, sigma0_sq=1.0, sigma_sq=1.0, temperature=0.1) | kwargs
    with pytest.raises(DataError, match=match):
        LangevinMLP(**settings_)


def test_bad_data_is_rejected():
    x = points(37, 4)
    net = LangevinMLP("erf(x)", 1, 1.0, 1.0, 0.1)
    with pytest.raises(DataError, match="y_train"):
        net.predict(x, np.ones(3))
    with pytest.raises(DataError, match="times"):
        net.predict(x, np.ones(4), times=[-1.0, 1.0])
    with pytest.raises(DataError, match="features"):
        net.predict(x, np.ones(4), np.ones((2, 5)))
    with pytest.raises(DataError, match="singular"):
        LangevinMLP("x", 1, 1.0, 1.0, 0.0).predict(np.ones((3, 2)), np.ones(3))
    with pytest.raises(DataError, match="not finite"):
        LangevinMLP("sign(x)", 1, 1.0, 1.0, 0.1).predict(x, np.ones(4))
    with pytest.raises(ValueError, match="covariance"):
        net.predict(x, np.ones(4), n_times=10, covariance=False).variance


def _ensemble_bias(act, depth, widths, members, t_end, dt):
    """Theory f̄ vs the mean of ``members`` Langevin networks (antithetic pairs): bias and its
    standard error per width, at t = 0.5, 1, …, t_end on 4 training and 2 test points."""
    from symntk.nets.langevin import LangevinNet, pair_means, simulate
    import jax

    x, y = points(41, 6), labels(41, 4)
    model = LangevinMLP(act, depth, 1.5, 0.5, 0.1)  # gradient time ~0.3, diffusive time 5
    record = int(round(0.5 / dt))
    times = 0.5 * np.arange(1, int(round(t_end / 0.5)) + 1)
    theory = model.predict(x[:4], y, x[4:], times=times, n_times=600, covariance=False).mean
    out = []
    for width in widths:
        ts, f = simulate(LangevinNet(model, width), jax.random.PRNGKey(width), x[:4], y, x, t_end, dt, members, record)
        samples = pair_means(f)[:, 1:]
        out.append((samples.mean(0) - theory, samples.std(0, ddof=1) / np.sqrt(len(samples))))
    return out


@pytest.mark.parametrize("act", [pytest.param("erf(x)", marks=pytest.mark.slow), "relu(x)"])
def test_langevin_ensemble_bias_falls_as_one_over_width(act):
    """Depth 1, 1000 networks per width (500 antithetic pairs, so the standard error is ~3e-3):
    the RMS bias at widths 16, 32, 64 (≫ its standard error there) falls with slope −1 ± 0.35 in
    log–log, the O(1/N) finite-width correction.  Euler–Maruyama at Δt = 0.005 (Δt λ_max ≈ 0.02)
    and the theory grid (600 points) contribute < 5e-4."""
    res = _ensemble_bias(act, 1, (16, 32, 64), 1000, 2.0, 0.005)
    rms = [np.sqrt(np.mean(b**2) - np.mean(se**2)) for b, se in res]  # noise-corrected
    slope = np.polyfit(np.log([16, 32, 64]), np.log(rms), 1)[0]
    assert abs(slope + 1) < 0.35, (rms, slope)


@pytest.mark.parametrize("act", ["erf(x)", pytest.param("relu(x)", marks=pytest.mark.slow)])
def test_langevin_ensemble_agrees_with_the_theory_at_width_256(act):
    """Depth 1, 400 networks: at width 256 the mean agrees with N8 within 4.5 standard errors plus
    the O(1/N) allowance measured by doubling the width, |f̄_256 − f̄_512| (≈ the bias at 512)."""
    (b1, se1), (b2, se2) = _ensemble_bias(act, 1, (256, 512), 400, 2.0, 0.005)
    allowance = np.abs(b1 - b2)
    assert np.all(np.abs(b2) <= 4.5 * np.hypot(se1, se2) + allowance), (b2, se2, allowance)
    assert np.all(np.abs(b1) <= 4.5 * se1 + 2 * allowance + 4.5 * se2), (b1, se1)


@pytest.mark.slow
@pytest.mark.parametrize("act", ["erf(x)", pytest.param("relu(x)", marks=pytest.mark.slow)])
def test_langevin_ensemble_agrees_with_the_theory_at_depth_two(act):
    """Depth 2 (N × N hidden weights: ~10 min per width on 2 CPU cores), 200 networks."""
    (b1, se1), (b2, se2) = _ensemble_bias(act, 2, (256, 512), 200, 1.5, 0.005)
    assert np.all(np.abs(b2) <= 4.5 * np.hypot(se1, se2) + np.abs(b1 - b2)), (b2, se2)


def test_hermite_truncation_bound_is_reported():
    """A Hermite-series activation at large variance (tanh, q ≈ 30: even the longest series, N = 320,
    to which the network switches by itself, is bounded by ~2e-7) warns from kernels() and predict();
    at q ≈ 0.5 (bound < 1e-10) and for a closed form it is silent."""
    import warnings
    x, y = points(3, 6), labels(3, 4)
    big = LangevinMLP("tanh(x)", 1, 30.0, 30.0, 0.1)
    with pytest.warns(sn.PrecisionWarning, match="longest series"):
        big.kernels(0.0, 0.0, x)
    with pytest.warns(sn.PrecisionWarning, match="longest series"):
        big.predict(x[:4], y, x[4:], n_times=8, covariance=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sn.PrecisionWarning)
        for net in (LangevinMLP("tanh(x)", 1, 0.5, 0.5, 0.1), LangevinMLP("erf(x)", 1, 30.0, 30.0, 0.1)):
            net.kernels(0.0, 0.0, x)
            net.predict(x[:4], y, x[4:], n_times=8, covariance=False)


def test_a_short_series_is_lengthened_where_its_bound_needs_it():
    """As ``MLP.kernel`` does (tests/test_kernels.py): tanh at q = 3 with pairs of near-duplicate
    points (ρ ≈ 0.9985), where N = 96 is bounded by ~3e-6.  A fixed ``n_terms=96`` warns; the default
    LangevinMLP recomputes with N = 320 (bound < 1e-10: silent) and returns exactly that network's
    kernels and mean."""
    import warnings
    base = np.random.default_rng(5).normal(size=(3, 7))
    x = np.concatenate([base, base + 0.03 * np.random.default_rng(6).normal(size=(3, 7))])
    x *= np.sqrt(3.0 * 7) / np.linalg.norm(x, axis=1, keepdims=True)
    y = labels(3, 4)
    with pytest.warns(sn.PrecisionWarning, match="n_terms"):
        LangevinMLP("tanh(x)", 2, 1.0, 1.0, 0.1, n_terms=96).kernels(0.0, 0.0, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sn.PrecisionWarning)
        auto, long = (LangevinMLP("tanh(x)", 2, 1.0, 1.0, 0.1, n_terms=n) for n in (None, 320))
        for a, b in zip(auto.kernels([0.0, 1.0], [0.0, 0.5], x), long.kernels([0.0, 1.0], [0.0, 0.5], x)):
            np.testing.assert_array_equal(a, b)
        auto = LangevinMLP("tanh(x)", 2, 1.0, 1.0, 0.1)  # afresh, so that predict is the call that lengthens
        np.testing.assert_array_equal(auto.predict(x[:4], y, x[4:], n_times=6, covariance=False).mean,
                                      long.predict(x[:4], y, x[4:], n_times=6, covariance=False).mean)
