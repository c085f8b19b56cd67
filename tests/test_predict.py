"""Predictors L12/L13 against direct dense linear algebra (scipy expm / solve) and their limits."""
import numpy as np
import pytest
import scipy.linalg as sla

import symntk as sn
from symntk.predict import nngp_posterior, ntk_gradient_flow

RNG = np.random.default_rng(1)
X = RNG.normal(size=(30, 5))
Y = np.sin(X[:20, 0]) + 0.3 * X[:20, 1]
MLP = sn.MLP("erf(x)", depth=2, sigma_w=1.4, sigma_b=0.2)
K = MLP.kernel(X)
TR, TE = slice(0, 20), slice(20, None)


def sub(a, b):
    return sn.Kernel(K.nngp[a, b], K.ntk[a, b])


def test_nngp_posterior_matches_dense_solve():
    post = nngp_posterior(sub(TR, TR), sub(TE, TR), sub(TE, TE), Y, noise=1e-3)
    A = K.nngp[TR, TR] + 1e-3 * np.eye(20)
    np.testing.assert_allclose(post.mean, K.nngp[TE, TR] @ np.linalg.solve(A, Y), rtol=1e-10)
    cov = K.nngp[TE, TE] - K.nngp[TE, TR] @ np.linalg.solve(A, K.nngp[TR, TE])
    np.testing.assert_allclose(post.covariance, cov, rtol=1e-8, atol=1e-12)
    diag = nngp_posterior(sub(TR, TR), sub(TE, TR), np.diag(K.nngp[TE, TE]), Y, noise=1e-3)
    np.testing.assert_allclose(diag.covariance, np.diag(cov), rtol=1e-8, atol=1e-12)


def test_ntk_flow_matches_matrix_exponential_at_finite_time():
    """μ_t = Θ_xX Θ⁻¹ (I − e^{−ηΘt}) y, covariance from Lee et al. 2019, with scipy.linalg.expm."""
    eta, t = 0.7, 0.9
    flow = ntk_gradient_flow(sub(TR, TR), sub(TE, TR), Y, t=[t], learning_rate=eta, k_test_test=sub(TE, TE))
    Th = K.ntk[TR, TR]
    A = K.ntk[TE, TR] @ np.linalg.solve(Th, np.eye(20) - sla.expm(-eta * t * Th))
    np.testing.assert_allclose(flow.mean[0], A @ Y, rtol=1e-8, atol=1e-10)
    cov = K.nngp[TE, TE] - A @ K.nngp[TR, TE] - K.nngp[TE, TR] @ A.T + A @ K.nngp[TR, TR] @ A.T
    np.testing.assert_allclose(flow.covariance[0], cov, rtol=1e-7, atol=1e-9)


def test_ntk_flow_limits():
    """t = 0: zero mean and the prior covariance K; t = ∞: kernel regression Θ_xX Θ⁻¹ y."""
    flow = ntk_gradient_flow(sub(TR, TR), sub(TE, TR), Y, t=[0.0, 1e6, None], k_test_test=sub(TE, TE))
    assert np.all(flow.mean[0] == 0)
    np.testing.assert_allclose(flow.covariance[0], K.nngp[TE, TE], rtol=1e-13)
    reg = K.ntk[TE, TR] @ np.linalg.solve(K.ntk[TR, TR], Y)
    np.testing.assert_allclose(flow.mean[2], reg, rtol=1e-8)
    np.testing.assert_allclose(flow.mean[1], flow.mean[2], rtol=1e-6)
    assert flow.t[-1] == np.inf


def test_ridge_replaces_theta_by_theta_plus_ridge():
    flow = ntk_gradient_flow(sub(TR, TR), sub(TE, TR), Y, t=None, ridge=0.1)
    np.testing.assert_allclose(flow.mean[0], K.ntk[TE, TR] @ np.linalg.solve(K.ntk[TR, TR] + 0.1 * np.eye(20), Y), rtol=1e-10)


def test_multi_output_targets_keep_their_shape():
    Y2 = np.stack([Y, -Y], 1)
    flow = ntk_gradient_flow(sub(TR, TR), sub(TE, TR), Y2, t=[1.0, None])
    assert flow.mean.shape == (2, 10, 2)
    np.testing.assert_allclose(flow.mean[..., 1], -flow.mean[..., 0])
    assert nngp_posterior(sub(TR, TR), sub(TE, TR), None, Y2, noise=1e-3).mean.shape == (10, 2)


def test_singular_kernels_raise_with_a_suggested_ridge():
    dup = np.concatenate([X[:5], X[:5]])
    k = sn.MLP("relu(x)", depth=1).kernel(dup)
    with pytest.raises(sn.SingularKernelError, match="noise"):
        nngp_posterior(k, k, None, np.ones(10))
    with pytest.raises(sn.SingularKernelError, match="ridge"):
        ntk_gradient_flow(k, k, np.ones(10), t=None)
    finite = ntk_gradient_flow(k, k, np.ones(10), t=[5.0])  # finite t needs no inverse
    assert np.all(np.isfinite(finite.mean))


def test_mismatched_inputs_are_rejected():
    with pytest.raises(sn.DataError, match="k_test_train"):
        nngp_posterior(sub(TR, TR), sub(TE, TE), None, Y)
    with pytest.raises(sn.DataError, match="y_train"):
        ntk_gradient_flow(sub(TR, TR), sub(TE, TR), Y[:5])
    with pytest.raises(sn.DataError, match="times"):
        ntk_gradient_flow(sub(TR, TR), sub(TE, TR), Y, t=[-1.0])
