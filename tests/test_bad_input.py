import numpy as np
import pytest

import symntk as sn


def test_divergent_integral_names_the_variance():
    f = sn.derive("exp(x**2)").jax()
    V, _ = f(0.1, 0.05, 0.1)
    assert np.isfinite(V)
    with pytest.raises(sn.DivergentIntegralError, match="q1 = 1"):
        f(1.0, 0.5, 1.0)


def test_superexponential_growth_is_rejected():
    with pytest.raises(sn.DerivationError):
        sn.derive("exp(x**3)")


def test_not_real_everywhere_is_rejected():
    with pytest.raises(sn.DerivationError, match="real and finite"):
        sn.derive("log(x)")


@pytest.mark.parametrize("args", [(1.0, 2.0, 1.0), (-1.0, 0.0, 1.0), (np.nan, 0.0, 1.0),
                                  (np.ones(3), np.zeros(2), np.ones(3))])
def test_invalid_covariance_raises(args):
    with pytest.raises(sn.CovarianceError):
        sn.derive("relu(x)").jax()(*args)


def test_unbound_parameter_without_closed_form():
    with pytest.raises(sn.DerivationError, match="bind"):
        sn.derive(sn.activation("elu(x, a)"))


def test_symbolic_parameter_with_closed_form():
    d = sn.derive(sn.activation("leaky_relu(x, a)"))
    assert d.nngp_expr.has(sn.activation("leaky_relu(x, a)").params[0])


def test_hermite_warns_when_bound_exceeds_tolerance():
    with pytest.warns(sn.PrecisionWarning, match="n_terms"):
        sn.derive("tanh(x)").jax()(1000.0, 1000.0, 1000.0)


@pytest.mark.parametrize("n_terms", [0, 321, 2.5])
def test_hermite_truncation_outside_what_the_rule_resolves_is_rejected(n_terms):
    with pytest.raises(sn.DerivationError, match="n_terms"):
        sn.derive("tanh(x)", n_terms=n_terms)
