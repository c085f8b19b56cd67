"""symntk kernels inside scikit-learn: the Kernel contract (gradients, symmetry, PSD, diag, clone,
pickle) and GP regression equal to symntk's own posterior."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import WhiteKernel

import symntk as sn
from symntk.errors import DataError
from symntk.interop import sklearn_kernel
from symntk.interop.sklearn import MLPKernel
from symntk.predict import nngp_posterior

X = np.random.default_rng(0).normal(size=(12, 5))
Y = np.random.default_rng(1).normal(size=(7, 5))
CASES = [("x*sigmoid(x)", "ntk", "ntk"), ("relu(x)", "nngp", "standard"), ("erf(x)", "ntk", "standard")]


def kernel(formula, which, parameterization, sigma_b=0.1):
    return sklearn_kernel(sn.MLP(formula, depth=3, sigma_w=1.4, sigma_b=sigma_b,
                                 parameterization=parameterization), which=which)


@pytest.mark.parametrize("formula, which, parameterization", CASES)
def test_gradient_matches_central_differences(formula, which, parameterization):
    """dK/dθ (θ = log σ) against the five-point central difference with h = 1e-3: truncation
    h⁴|K⁽⁵⁾|/30 ≈ 1e-13 and rounding ≈ 1e-13 |K|/h ≈ 1e-10 |K| (the deep Hermite path rounds at
    ~1e-13 relative), so 1e-8 of the kernel scale bounds the difference with a wide margin."""
    k = kernel(formula, which, parameterization)
    K, G = k(X, eval_gradient=True)
    assert G.shape == (12, 12, 2)
    h = 1e-3

    def at(j, step):
        theta = k.theta.copy()
        theta[j] += step
        return k.clone_with_theta(theta)(X)

    for j in range(2):
        fd = (at(j, -2 * h) - 8 * at(j, -h) + 8 * at(j, h) - at(j, 2 * h)) / (12 * h)
        assert np.max(np.abs(fd - G[:, :, j])) < 1e-8 * np.max(np.abs(K)), (j, k.hyperparameters[j].name)


@pytest.mark.parametrize("formula", ["tanh(x)", "elu(x)", "selu(x)"])
def test_a_zero_input_without_bias_has_finite_exact_gradients(formula):
    """A zero input row with σ_b = 0 has q = 0 in every layer: the Hermite series (tanh, ELU, SELU)
    differentiated √q at 0 there, and ∂K/∂log σ_w was NaN in that row (silently: scikit-learn's
    optimiser took it).  Now finite and equal to the five-point
    difference to 1e-8 of the kernel scale (as above)."""
    x = X.copy()
    x[0] = 0.0
    k = kernel(formula, "ntk", "ntk", sigma_b=0.0)
    K, G = k(x, eval_gradient=True)
    h, theta = 1e-3, k.theta
    at = lambda step: k.clone_with_theta(theta + step)(x)  # noqa: E731
    fd = (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h)
    assert np.all(np.isfinite(G)) and np.max(np.abs(fd - G[:, :, 0])) < 1e-8 * np.max(np.abs(K))


@pytest.mark.parametrize("formula, which, parameterization", CASES)
def test_kernel_is_the_mlp_kernel_symmetric_psd_with_consistent_diag(formula, which, parameterization):
    k = kernel(formula, which, parameterization)
    mlp = sn.MLP(formula, depth=3, sigma_w=1.4, sigma_b=0.1, parameterization=parameterization)
    K = k(X)
    np.testing.assert_allclose(K, getattr(mlp.kernel(X), which), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(k(X, Y), getattr(mlp.kernel(X, Y), which), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(K, K.T)
    assert np.linalg.eigvalsh(K)[0] > -1e-12 * np.max(K)
    np.testing.assert_allclose(k.diag(X), np.diag(K), rtol=1e-14)
    assert not k.is_stationary()


def test_clone_pickle_and_a_fixed_zero_bias():
    k = kernel("relu(x)", "nngp", "ntk", sigma_b=0.0)
    assert [h.name for h in k.hyperparameters if not h.fixed] == ["sigma_w"]
    assert k(X, eval_gradient=True)[1].shape == (12, 12, 1)
    c = clone(k)
    assert c.get_params() == k.get_params() and c is not k
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(k))(X), k(X))
    np.testing.assert_array_equal(MLPKernel(**k.get_params())(X), k(X))


def test_gp_posterior_mean_equals_symntk_nngp_posterior():
    """Fixed hyperparameters, noise 0.05: scikit-learn's GP mean and std are L12 (to solver rounding)."""
    k = kernel("erf(x)", "nngp", "ntk")
    y = np.sin(X[:, 0])
    gp = GaussianProcessRegressor(kernel=k, alpha=0.05, optimizer=None).fit(X, y)
    mean, std = gp.predict(Y, return_std=True)
    ref = nngp_posterior(k(X), k(Y, X), k(Y), y, noise=0.05)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(std**2, np.diag(ref.covariance), rtol=1e-8, atol=1e-12)


@pytest.mark.filterwarnings("ignore:The optimal value found:sklearn.exceptions.ConvergenceWarning")  # σ_b → its bound: no bias needed
def test_hyperparameters_are_fitted_by_marginal_likelihood():
    k = kernel("x*sigmoid(x)", "ntk", "ntk")
    y = np.sin(X[:, 0]) + 0.1 * np.random.default_rng(2).normal(size=len(X))  # noisy: the noise level stays inside its bounds
    gp = GaussianProcessRegressor(kernel=k + WhiteKernel(0.1), normalize_y=True, random_state=0).fit(X, y)
    start = gp.log_marginal_likelihood(gp.kernel.theta)
    assert gp.log_marginal_likelihood_value_ > start + 1e-3
    assert gp.kernel_.k1.sigma_w != k.sigma_w


def test_bad_input_is_rejected():
    k = kernel("relu(x)", "nngp", "ntk")
    with pytest.raises(ValueError, match="Y is None"):
        k(X, Y, eval_gradient=True)
    with pytest.raises(DataError, match="NaN"):
        k(np.full((2, 5), np.nan))
    with pytest.raises(DataError, match="one sigma_w"):
        sklearn_kernel(sn.MLP("relu(x)", depth=1, sigma_w=[1.0, 2.0]))
    with pytest.raises(DataError, match="which"):
        MLPKernel("relu(x)", which="nngpk")(X)


@pytest.mark.parametrize("name, library, advice", [("gpytorch_kernel", "gpytorch", r"symntk\[gpytorch\]"),
                                                   ("neural_tangents_layer", "neural_tangents",
                                                    "make test-neural-tangents")])
def test_a_missing_optional_library_names_how_to_install_it(monkeypatch, name, library, advice):
    import sys
    for key in [k for k in sys.modules if k == library or k.startswith(library + ".")] or [library]:
        monkeypatch.setitem(sys.modules, key, None)  # importing it (or a submodule) fails as if absent
    monkeypatch.delitem(sys.modules, f"symntk.interop.{library}", raising=False)
    with pytest.raises(ImportError, match=advice):
        getattr(sn.interop, name)
