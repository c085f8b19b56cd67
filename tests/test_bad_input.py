import importlib
import warnings

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


def test_series_beyond_its_bound_is_replaced_by_quadrature_without_warning(monkeypatch):
    """tanh at q = 1e3, ρ = 0.999: the series' own bound is far above 1e-10, so the checked call
    returns the nested quadrature's value (whose estimate is within 1e-10), silently; in chunks
    (here of 2 entries) the same values."""
    d = sn.derive("tanh(x)")
    args = (np.float64(1e3), np.float64(999.0), np.float64(1e3))
    V_series, _, bound, _ = (float(v) for v in d.module().dual_with_bound(*args))
    assert bound > 1e-6 * abs(V_series)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sn.PrecisionWarning)
        V, Vdot = d.jax()(*args)
    Vq, Vdq, err, err_dot = (float(v) for v in d.module().dual_by_quadrature(*args))
    # the same rule, jitted there and eager here: equal up to rounding in the last bits
    assert np.allclose((float(V), float(Vdot)), (Vq, Vdq), rtol=1e-14, atol=0)
    assert err <= 1e-10 * abs(Vq) and err_dot <= 1e-10 * abs(Vdq)
    c = np.linspace(0.999, 0.99999, 5) * 1e3
    whole = d.jax()(1e3, c, 1e3)
    monkeypatch.setattr(importlib.import_module("symntk.gaussian.derive"), "QUADRATURE_CHUNK", 2)
    np.testing.assert_array_equal(d.jax()(1e3, c, 1e3), whole)


def test_warns_when_even_quadrature_misses_the_tolerance(monkeypatch):
    """The warning path: with a tolerance below what float64 quadrature can estimate (1e-20)."""
    engine = importlib.import_module("symntk.gaussian.derive")
    monkeypatch.setattr(engine, "RELATIVE_TOLERANCE", 1e-20)
    with pytest.warns(sn.PrecisionWarning, match="nested quadrature"):
        sn.derive("tanh(x)").jax()(1000.0, 999.0, 1000.0)


@pytest.mark.parametrize("n_terms", [0, 321, 2.5])
def test_hermite_truncation_outside_what_the_rule_resolves_is_rejected(n_terms):
    with pytest.raises(sn.DerivationError, match="n_terms"):
        sn.derive("tanh(x)", n_terms=n_terms)
