"""symntk.gaussian.condense: a closed form collected on its transcendental factors, each coefficient
one fraction — kept only where it is shorter and equal to the descent's result at probe covariances.
Its float64 accuracy is checked in test_dual_vs_reference.py (test_closed_forms_keep_1e12_in_float64)."""
import pickle

import pytest
import sympy as sp

import symntk as sn
from symntk.catalog import CATALOG
from symntk.gaussian import condense as condense_module
from symntk.gaussian.condense import condense
from symntk.gaussian.moments import c, q1, q2
from symntk.gaussian.price import price_descent
from symntk.gaussian.terms import decompose

A = sp.sqrt(sp.expand((1 + 2 * q1) * (1 + 2 * q2) - 4 * c**2))


def test_x_erf_condenses_to_two_terms_equal_to_the_descent():
    """Price's descent writes V of x·erf(x) as 15 terms of up to 1.3e7 at q = 1e3; condensed it is
    (2c/π) atan2(2c, A) plus one fraction, and the difference from the descent is 0 at 40 digits at
    points the probes do not use."""
    raw = price_descent(decompose(sn.activation("x*erf(x)").expr))[0]
    V = condense(raw)
    assert len(sp.Add.make_args(raw)) == 15 and len(sp.Add.make_args(V)) == 2
    assert sp.simplify(V.coeff(sp.atan2(2 * c, A)) - 2 * c / sp.pi) == 0
    for point in [(sp.Rational(3, 7), sp.Rational(-1, 5), sp.Rational(11, 3)), (sp.Rational(1, 10**4), 0, 1000)]:
        at = dict(zip((q1, c, q2), point))
        assert abs((V - raw).subs(at).evalf(50)) <= sp.Float(10) ** -40 * abs(raw.subs(at).evalf(50))


def test_a_wrong_or_longer_result_is_refused(monkeypatch):
    """The probes refuse a short but different expression, and a longer one is never taken."""
    raw = price_descent(decompose(sn.activation("relu(x)").expr))[0]
    monkeypatch.setattr(condense_module, "_condensed", lambda e: c / 4)
    assert condense(raw) == raw
    monkeypatch.setattr(condense_module, "_condensed", lambda e: e + sp.sin(q1) ** 2 + sp.cos(q1) ** 2 - 1)
    assert condense(raw) == raw


@pytest.mark.parametrize("name", [n for n, f in CATALOG.items() if sn.derive(f).method != "hermite"])
def test_condensed_forms_survive_a_pickle_round_trip(name):
    """derive() caches by pickling; an unevaluated node (9*(2c² + q1q2), which evaluates to
    18c² + 9q1q2) would make the cached result print differently from a fresh one (derivations/,
    generated code): the condensed V and V̇ must be identical, node for node, after a round trip."""
    d = sn.derive(CATALOG[name], cache=False)
    for e in (d.nngp_expr, d.ntk_expr):
        assert sp.srepr(pickle.loads(pickle.dumps(e))) == sp.srepr(e)


def test_symbolic_parameters_are_left_alone():
    """With a free parameter (leaky_relu(x, a) unbound) the probes cannot decide equality: unchanged."""
    raw = price_descent(decompose(sn.activation("leaky_relu(x, a)").expr))[0]
    assert condense(raw) == raw
