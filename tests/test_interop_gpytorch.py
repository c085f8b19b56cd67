"""symntk kernels inside GPyTorch (extra [gpytorch]): the kernel is MLP.kernel, its gradients are
exact, and an ExactGP trained on digits predicts symntk's own NNGP posterior mean."""
import numpy as np
import pytest

import symntk as sn
from symntk.data import digits
from symntk.errors import DataError
from symntk.predict import nngp_posterior

torch = pytest.importorskip("torch")
gpytorch = pytest.importorskip("gpytorch")

X = np.random.default_rng(0).normal(size=(12, 5))
Y = np.random.default_rng(1).normal(size=(7, 5))
CASES = [("x*sigmoid(x)", "ntk", "ntk"), ("relu(x)", "nngp", "standard"), ("erf(x)", "ntk", "standard")]


def mlp(formula, parameterization, sigma_w=1.4, sigma_b=0.1):
    return sn.MLP(formula, depth=3, sigma_w=sigma_w, sigma_b=sigma_b, parameterization=parameterization)


@pytest.mark.parametrize("formula, which, parameterization", CASES)
def test_kernel_diag_and_cross_are_the_mlp_kernel(formula, which, parameterization):
    m = mlp(formula, parameterization)
    k = sn.interop.gpytorch_kernel(m, which=which)
    x, y = torch.tensor(X), torch.tensor(Y)
    K = k(x).to_dense().detach().numpy()
    ref = getattr(m.kernel(X), which)
    np.testing.assert_allclose(K, ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(k(x, y).to_dense().detach().numpy(), getattr(m.kernel(X, Y), which),
                               rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(k(x, diag=True).detach().numpy(), np.diag(ref), rtol=1e-14)
    k32 = k(x.float()).to_dense()
    assert k32.dtype == torch.float32  # computed in float64, returned in the inputs' dtype
    np.testing.assert_allclose(k32.detach().numpy(), ref, rtol=1e-6)
    assert not k.is_stationary


@pytest.mark.parametrize("formula, which, parameterization", CASES[1:])  # closed forms: the VJP is JAX's either way
def test_gradients_in_sigmas_and_inputs_match_central_differences(formula, which, parameterization):
    """∂⟨W, K⟩ with respect to σ_w, σ_b and along a random input direction against the five-point
    central difference with h = 1e-3 (truncation ≈ h⁴|L⁽⁵⁾|/30 ≈ 1e-13, rounding ≈ 1e-16 |L|/h):
    1e-8 of the scale of |W|·|K| bounds the difference with a wide margin."""
    k = sn.interop.gpytorch_kernel(mlp(formula, parameterization), which=which)
    W = torch.tensor(np.random.default_rng(2).normal(size=(12, 12)))
    V = torch.tensor(np.random.default_rng(3).normal(size=X.shape))
    x = torch.tensor(X, requires_grad=True)
    loss = (k(x).to_dense() * W).sum()
    loss.backward()
    h = 1e-3

    def five_point(f):
        return (f(-2 * h) - 8 * f(-h) + 8 * f(h) - f(2 * h)) / (12 * h)

    with torch.no_grad():
        scale = float(W.abs().sum() * k(torch.tensor(X)).to_dense().abs().max())
        for name in ("sigma_w", "sigma_b"):
            s0 = float(getattr(k, name))

            def at(step, name=name, s0=s0):
                setattr(k, name, s0 + step)
                return float((k(torch.tensor(X)).to_dense() * W).sum())
            fd = five_point(at)
            setattr(k, name, s0)
            raw = getattr(k, "raw_" + name)
            exact = float(raw.grad) / float(torch.sigmoid(raw))  # ∂/∂σ = ∂/∂raw / softplus'(raw)
            assert abs(fd - exact) < 1e-8 * scale, (name, fd, exact)
        fd = five_point(lambda step: float((k(torch.tensor(X) + step * V).to_dense() * W).sum()))
        assert abs(fd - float((x.grad * V).sum())) < 1e-8 * scale


def test_exact_gp_on_digits_learns_sigmas_and_predicts_the_nngp_posterior():
    """Adam on the exact marginal likelihood moves σ_w, σ_b and the noise and raises the
    likelihood; the trained model's posterior mean is L12 with the fitted values (both Cholesky
    solves in float64, κ(K + σ²I) ≲ 1e4: agreement to 1e-9 relative)."""
    data = digits(n_train=80)
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    m = sn.MLP("relu(x)", depth=2, sigma_w=1.0, sigma_b=0.5)

    class GP(gpytorch.models.ExactGP):
        def __init__(self, likelihood):
            super().__init__(x, y, likelihood)
            self.mean_module = gpytorch.means.ZeroMean()
            self.covar_module = sn.interop.gpytorch_kernel(m, which="nngp")

        def forward(self, z):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(z), self.covar_module(z))

    likelihood = gpytorch.likelihoods.GaussianLikelihood().double()
    model = GP(likelihood).double()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train(), likelihood.train()
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = -mll(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1
    sw, sb, noise = (v.item() for v in (model.covar_module.sigma_w, model.covar_module.sigma_b, likelihood.noise))
    assert abs(sw - 1.0) > 1e-2 and abs(sb - 0.5) > 1e-2  # both σ's were trained

    model.eval(), likelihood.eval()
    with torch.no_grad():
        mean = model(torch.tensor(data.x_test)).mean.numpy()
    fitted = sn.MLP("relu(x)", depth=2, sigma_w=sw, sigma_b=sb)
    ref = nngp_posterior(fitted.kernel(data.x_train), fitted.kernel(data.x_test, data.x_train), None,
                         data.y_train, noise=noise)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-9, atol=1e-9 * np.abs(ref.mean).max())
    assert np.mean(np.sign(mean) == data.y_test) > 0.9


def test_bad_input_is_named():
    k = sn.interop.gpytorch_kernel(mlp("relu(x)", "ntk"))
    with pytest.raises(DataError, match="batch"):
        k(torch.zeros(2, 3, 4)).to_dense()
    with pytest.raises(DataError, match="NaN"):
        k(torch.tensor([[np.nan, 1.0]])).to_dense()
    with pytest.raises(DataError, match="sigma_w"):
        sn.interop.gpytorch_kernel(sn.MLP("relu(x)", depth=2, sigma_w=[1.0, 1.2, 1.3]))
