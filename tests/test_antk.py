"""Two-layer aNTK particle solver (theory/adaptive.md T1–T6): the solvable single-point example
(with the two forms of the T3 predictor), the homogeneity degree, and bad input.  Multi-point
problems do not yet converge to the T4 tolerance (see the issue-5 note)."""
import numpy as np
import pytest

from symntk.antk import WeightDecayMLP, homogeneity_degree
from symntk.errors import DataError

ONE_POINT = np.array([[1.0]]), np.array([1.0])


def centring_error(sol):
    """f(·, 0) = ⟨φ(h₀)z₀⟩/γ₀ over M particles: standard deviation √(E[φ²]/M)/γ₀ (E[φ²] = 1/2 for ReLU at q = 1)."""
    return np.sqrt(0.5 / len(sol.z)) / sol.model.gamma0


def test_single_point_above_threshold_is_the_t6_fixed_point():
    """γ₀y = 1 > λ = 0.3: Δ = λ/γ₀, f = y − λ/γ₀ (to the T4 tolerance), ⟨φ²⟩ = ⟨φz⟩ = γ₀(f + f₀)
    = γ₀y − λ up to the centring f₀ (4 of its standard errors), and no mass left at h < 0."""
    m = WeightDecayMLP("relu(x)", gamma0=1.0, lam=0.3, particles=2000)
    sol = m.solve(*ONE_POINT)
    assert sol.result == "successful" and max(sol.residual) < 1e-6
    assert sol.output[0] == pytest.approx(0.7, abs=1e-5)
    phi2, phiz = np.mean(np.maximum(sol.h[:, 0], 0) ** 2), np.mean(np.maximum(sol.h[:, 0], 0) * sol.z)
    assert phi2 == pytest.approx(phiz, rel=1e-5)
    assert abs(phi2 - 0.7) < 4 * centring_error(sol)
    assert np.min(sol.h[:, 0]) > -1e-5 * np.sqrt(np.mean(sol.h[:, 0] ** 2))
    assert sol.form_disagreement < 1e-10
    np.testing.assert_allclose(sol.predict(ONE_POINT[0]), sol.kernel_form, rtol=1e-5)  # h(x) rebuilt from T4


def test_single_point_below_threshold_collapses():
    """γ₀y = 1 < λ = 1.5: every particle decays, ⟨φ²⟩ → 0 and the centred output is −f₀."""
    sol = WeightDecayMLP("relu(x)", gamma0=1.0, lam=1.5, particles=2000).solve(*ONE_POINT)
    assert np.mean(np.maximum(sol.h, 0) ** 2) < 1e-10
    assert abs(sol.output[0]) < 4 * centring_error(sol)


@pytest.mark.parametrize("formula, k", [("relu(x)", 1), ("x", 1), ("x**2", 2), ("leaky_relu(x, 0.1)", 1),
                                        ("abs(x)", 1), ("tanh(x)", None), ("erf(x)", None)])
def test_homogeneity_degree_is_symbolic_and_holds_numerically(formula, k):
    """k from SymPy; then the two-layer output w·φ(Wx)/N scales as α^{1+k} under θ → αθ."""
    assert homogeneity_degree(formula) == k
    m = WeightDecayMLP(formula, gamma0=1.0, lam=0.1, particles=10)
    rng = np.random.default_rng(1)
    W, w, x = rng.normal(size=(50, 3)), rng.normal(size=50), rng.normal(size=3)
    out = lambda a: float(np.asarray(m._phi(a * W @ x)) @ (a * w))  # noqa: E731
    if k is None:
        assert m.kappa is None
    else:
        assert m.kappa == 1 + k and out(1.7) == pytest.approx(1.7 ** (1 + k) * out(1.0), rel=1e-12)


def test_bad_settings_are_rejected():
    with pytest.raises(NotImplementedError, match="deep DMFT"):
        WeightDecayMLP("relu(x)", depth=2)
    with pytest.raises(DataError, match="lam"):
        WeightDecayMLP("relu(x)", lam=0.0)
    with pytest.raises(DataError, match="y_train"):
        WeightDecayMLP("relu(x)", particles=10).solve(np.ones((3, 2)), np.ones(2))
