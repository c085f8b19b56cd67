import pytest
import sympy as sp

import symntk as sn
from symntk.activation import x


@pytest.mark.parametrize("formula", ["__import__('os')", "x.__class__", "y+x", "relu(", "open('f')",
                                     "exec('1')", "(lambda: 1)()", "x if x else 0", "[x]", "x @ x",
                                     "relu(x, x, x)", "'x'", "True", "x.real", "eval('x')", ""])
def test_malicious_or_malformed_formula_is_rejected(formula):
    with pytest.raises(sn.ActivationError):
        sn.activation(formula)


def test_error_names_token_and_position():
    with pytest.raises(sn.ActivationError, match=r"'y' at position 4"):
        sn.activation("x + y")


def test_nothing_is_executed(tmp_path):
    target = tmp_path / "pwned"
    with pytest.raises(sn.ActivationError):
        sn.activation(f"__import__('pathlib').Path('{target}').touch()")
    assert not target.exists()


@pytest.mark.parametrize("formula, expected", [
    ("relu(x)", x * sp.Heaviside(x, sp.Rational(1, 2))),
    ("max(x, 0)", x * sp.Heaviside(x, sp.Rational(1, 2))),
    ("x", x),
    ("gelu(x)", x * (1 + sp.erf(x / sp.sqrt(2))) / 2),
    ("silu(x)", x / (1 + sp.exp(-x))),
    ("softplus(x)", sp.log(1 + sp.exp(x))),
    ("x^3", x**3),
])
def test_usual_definitions(formula, expected):
    assert sp.simplify(sn.activation(formula).expr - expected) == 0


def test_parameters_kept_symbolic_or_bound():
    act = sn.activation("leaky_relu(x, a)")
    assert [p.name for p in act.params] == ["a"]
    bound = act.bind(a=0.1)
    assert bound.params == ()
    assert bound.expr.subs(x, -2) == sp.Rational(-1, 5)
    assert sn.activation("leaky_relu(x, a)", a=0.25).expr.subs(x, -4) == -1


def test_elu_default_alpha_is_one():
    assert sn.activation("elu(x)").expr.subs(x, -1) == sp.exp(-1) - 1
