"""Finite-width two-layer networks under gradient flow with weight decay (symntk.nets.weight_decay)
against the aNTK particle theory (symntk.antk): the T6 fixed point at any width, and the ReLU
trajectory on several points converging to the theory as the width grows."""
import numpy as np
import pytest
from scipy.special import erf

from symntk.antk import WeightDecayMLP, linear_fixed_point
from symntk.errors import DataError
from symntk.nets.weight_decay import train

X = np.random.default_rng(0).normal(size=(4, 5))
X *= np.sqrt(5) / np.linalg.norm(X, axis=1, keepdims=True)
Y = np.array([1.0, -0.5, 0.8])


def test_single_point_network_reaches_the_t6_fixed_point():
    """One whitened point, γ₀y = 1 > λ = 0.3: the stationarity of w and of the active units gives
    Δ = λ/γ₀ exactly at any width (only ⟨φ²⟩ = γ₀(f + f₀) carries the O(1/√N) initial output), and
    the pre-activations left at h < 0 have decayed (e^{−λt} at t = 100: 1e-13)."""
    run = train("relu(x)", np.array([[1.0]]), np.array([1.0]), width=512, gamma0=1.0, lam=0.3,
                times=[50.0, 100.0], seeds=4, dt=0.05)
    np.testing.assert_allclose(run.outputs[:, -1, 0], 0.7, atol=1e-9)
    assert run.h.min() > -1e-10


def test_relu_network_trajectory_approaches_the_particle_theory_with_width():
    """Three training points and one test point, fixed steps dt = 0.05 (theory: the sliding scheme;
    networks: Tsit5 — at dt = 0.01 for both the departures below agree to 3 digits, so the steps
    are not what is measured), t ≤ 20.  A width-N network's output departs from the N → ∞ theory
    (40000 particles) by O(1/√N) per seed: over N = 512 … 4096 the seed-averaged worst departure
    must fall with a fitted log-log slope below −0.3 (expected −½; measured −0.44, departures
    0.036 → 0.014, standard errors ≈ 14 %)."""
    theory = WeightDecayMLP("relu(x)", gamma0=1.0, lam=0.1, particles=40000).solve(
        X[:3], Y, x_test=X[3:], t_max=20.0, dt=0.05, throw=False)
    widths, departure = [512, 1024, 2048, 4096], []
    for width in widths:
        run = train("relu(x)", X[:3], Y, x_test=X[3:], width=width, gamma0=1.0, lam=0.1, times=theory.times[1:],
                    seeds=8, dt=0.05)
        # centred output: at t = 0, f(θ₀) − f(θ₀), two evaluations of a sum of N terms w_i φ_i/(γ₀N)
        # (Σ|terms| ≲ 1 here) that XLA may compile with different summation orders (an H100 gave
        # 1.7e-17, CPUs 0): within Higham's (N − 1)·eps·Σ|terms|; uncentred, max |f(θ₀)| is 0.02 at N = 4096
        assert np.abs(run.outputs[:, 0]).max() <= width * np.finfo(float).eps
        departure.append(np.abs(run.outputs - theory.outputs[None]).max(axis=(1, 2)).mean())
    slope = np.polyfit(np.log(widths), np.log(departure), 1)[0]
    assert slope < -0.3, (slope, departure)


def test_bad_input_is_rejected():
    with pytest.raises(DataError, match="y_train"):
        train("relu(x)", X, Y)
    with pytest.raises(DataError, match="times"):
        train("relu(x)", X[:3], Y, times=[2.0, 1.0])
    with pytest.raises(DataError, match="gamma0"):
        train("relu(x)", X[:3], Y, gamma0=0.0)


def test_final_kernel_and_preactivations_have_the_documented_shapes():
    """h (seeds, N, P + Q) are the hidden pre-activations W x/√D, Φ¹ = φ(h)ᵀφ(h)/N (P + Q square)."""
    run = train("x*erf(x)", X[:3], Y, x_test=X[3:], width=64, gamma0=1.0, lam=0.1, times=[1.0], seeds=2)
    assert run.h.shape == (2, 64, 4) and run.phi.shape == (2, 4, 4)
    phi_h = run.h * erf(run.h)
    np.testing.assert_allclose(run.phi, np.einsum("snp,snq->spq", phi_h, phi_h) / 64, rtol=1e-12)


def test_weight_decay_forgets_the_initialisation_and_no_weight_decay_does_not():
    """Raw outputs (centred=False) of six width-64 linear networks, D = 5 > P = 3.  With λ > 0 the
    stationary point minimises a convex function of the predictor (derivations/antk.md), so every
    seed reaches the closed form, at any width; what is left is the integration error (rtol 1e-6;
    e^{−λt} = 1e-13 at t = 100).  With λ = 0 every seed interpolates the labels, but the test point
    keeps the seed's untouched W(0) directions: O(1/(γ₀√N)) ≈ 0.08 apart, which must not vanish."""
    kx = X @ X.T / 5
    closed = linear_fixed_point(kx[3:, :3], kx[:3, :3], Y, gamma0=1.5, lam=0.3, depth=1)
    decay, none = (train("x", X[:3], Y, x_test=X[3:], width=64, gamma0=1.5, lam=lam, times=[100.0], seeds=6,
                         centred=False).outputs[:, -1] for lam in (0.3, 0.0))
    np.testing.assert_allclose(decay[:, 3], closed[0], atol=1e-5)
    np.testing.assert_allclose(none[:, :3], np.broadcast_to(Y, (6, 3)), atol=1e-5)
    assert np.ptp(none[:, 3]) > 0.05, none[:, 3]


def test_raw_output_with_weight_decay_is_its_own_t3_kernel_form_at_finite_width():
    """λw = γ₀φ(X)ᵀΔ at the stationary point makes f(x) = Φ¹(x, X)[Φ¹ + λI]⁻¹y exactly with the
    network's own final kernel, for any φ and width (derivations/antk.md); x·erf(x), width 256,
    t = 300 (e^{−λt} = 1e-13); measured 2e-6: the integration error at rtol 1e-6."""
    run = train("x*erf(x)", X[:3], Y, x_test=X[3:], width=256, gamma0=1.0, lam=0.1, times=[300.0], seeds=2,
                centred=False)
    kernel_form = [K[3, :3] @ np.linalg.solve(K[:3, :3] + 0.1 * np.eye(3), Y) for K in run.phi]
    np.testing.assert_allclose(run.outputs[:, -1, 3], kernel_form, atol=2e-5)
