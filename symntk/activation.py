"""Parse an activation formula in ``x`` with a whitelist parser; never ``eval``.

The formula is tokenised by :mod:`ast` (parsing only, nothing runs) and every node is
checked against a whitelist before a SymPy expression is built from it by hand.
Piecewise-linear pieces are written with Heaviside factors, so that the derivation
engine sees ``relu(x) = x·H(x)``, ``abs(x) = x·H(x) − x·H(−x)`` and so on.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

import sympy as sp

from .errors import ActivationError

x = sp.Symbol("x", real=True)

_SELU_ALPHA = sp.Float("1.6732632423543772848170429916717", 30)
_SELU_SCALE = sp.Float("1.0507009873554804934193349852946", 30)


def _H(z):
    return sp.Heaviside(z, sp.Rational(1, 2))


def _sigmoid(z):
    return 1 / (1 + sp.exp(-z))


def _softplus(z):
    return sp.log(1 + sp.exp(z))


def _elu(z, alpha=sp.Integer(1)):
    return z * _H(z) + alpha * (sp.exp(z) - 1) * _H(-z)


def _leaky_relu(z, a=sp.Rational(1, 100)):
    return z * _H(z) + a * z * _H(-z)


def _max(a, b):
    return a * _H(a - b) + b * _H(b - a)


def _min(a, b):
    return a * _H(b - a) + b * _H(a - b)


# name -> (builder, min #args, max #args); the first argument is the pre-activation.
FUNCTIONS = {
    "relu": (lambda z: z * _H(z), 1, 1),
    "abs": (lambda z: z * _H(z) - z * _H(-z), 1, 1),
    "sign": (lambda z: _H(z) - _H(-z), 1, 1),
    "step": (_H, 1, 1),
    "heaviside": (_H, 1, 1),
    "max": (_max, 2, 2),
    "min": (_min, 2, 2),
    "erf": (sp.erf, 1, 1),
    "erfc": (lambda z: 1 - sp.erf(z), 1, 1),
    "exp": (sp.exp, 1, 1),
    "log": (sp.log, 1, 1),
    "sqrt": (sp.sqrt, 1, 1),
    "tanh": (sp.tanh, 1, 1),
    "sigmoid": (_sigmoid, 1, 1),
    "softplus": (_softplus, 1, 1),
    "sin": (sp.sin, 1, 1),
    "cos": (sp.cos, 1, 1),
    "gelu": (lambda z: z * (1 + sp.erf(z / sp.sqrt(2))) / 2, 1, 1),
    "silu": (lambda z: z * _sigmoid(z), 1, 1),
    "swish": (lambda z: z * _sigmoid(z), 1, 1),
    "elu": (_elu, 1, 2),
    "selu": (lambda z: _SELU_SCALE * _elu(z, _SELU_ALPHA), 1, 1),
    "mish": (lambda z: z * sp.tanh(_softplus(z)), 1, 1),
    "leaky_relu": (_leaky_relu, 1, 2),
}
CONSTANTS = {"pi": sp.pi, "e": sp.E}
_BINOPS = {ast.Add: sp.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sp.Mul,
           ast.Div: lambda a, b: a / b, ast.Pow: sp.Pow}
_PARAM_POSITIONS = {"elu": 1, "leaky_relu": 1}


@dataclass(frozen=True)
class Activation:
    """A parsed activation φ(x): its SymPy expression, source text and free parameters.

    ``expr`` uses Heaviside factors for piecewise pieces.  ``params`` are the symbolic
    parameters still unbound; bind them with :meth:`bind`.
    """

    expr: sp.Expr
    source: str
    params: tuple = field(default=())

    @property
    def derivative(self) -> sp.Expr:
        """φ'(x) with Dirac terms dropped (pointwise derivative, for evaluation)."""
        d = sp.diff(self.expr, x)
        return d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))

    def bind(self, **values) -> "Activation":
        """Substitute numbers for named parameters, e.g. ``act.bind(a=0.1)``."""
        names = {p.name: p for p in self.params}
        unknown = set(values) - set(names)
        if unknown:
            raise ActivationError(f"cannot bind {sorted(unknown)}: the activation's parameters are {sorted(names)}")
        bad = [k for k, v in values.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
        if bad:
            raise ActivationError(f"parameters are bound to numbers; got {bad}")
        subs = {names[k]: sp.nsimplify(v, rational=True) for k, v in values.items()}
        expr = self.expr.subs(subs)
        return Activation(expr, self.source, tuple(p for p in self.params if p not in subs))

    def __str__(self):
        return self.source


class _Builder:
    def __init__(self, text, params):
        self.text = text
        self.params = dict(params)

    def fail(self, node, what):
        col = getattr(node, "col_offset", 0)
        token = ast.get_source_segment(self.text, node) if hasattr(node, "lineno") else None
        token = token or self.text[col:col + 1]
        raise ActivationError(f"{what}: {token!r} at position {col} in {self.text!r}")

    def build(self, node, param_position=False):
        if isinstance(node, ast.Expression):
            return self.build(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](self.build(node.left), self.build(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self.build(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                self.fail(node, "only numbers are allowed as constants")
            return sp.Integer(node.value) if isinstance(node.value, int) else sp.nsimplify(node.value, rational=True)
        if isinstance(node, ast.Name):
            name = node.id
            if name == "x":
                return x
            if name in CONSTANTS:
                return CONSTANTS[name]
            if name in self.params:
                return self.params[name]
            if param_position and name.isidentifier() and not name.startswith("_"):
                self.params[name] = sp.Symbol(name, real=True)
                return self.params[name]
            self.fail(node, "unknown symbol (the variable is x; declare parameters with params=)")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                self.fail(node.func, "unknown function (allowed: " + ", ".join(sorted(FUNCTIONS)) + ")")
            if node.keywords:
                self.fail(node.keywords[0].value, "keyword arguments are not allowed")
            fn, lo, hi = FUNCTIONS[node.func.id]
            if not lo <= len(node.args) <= hi:
                self.fail(node, f"{node.func.id} takes {lo}..{hi} arguments, got {len(node.args)}")
            ppos = _PARAM_POSITIONS.get(node.func.id)
            args = [self.build(a, param_position=(i == ppos)) for i, a in enumerate(node.args)]
            return fn(*args)
        self.fail(node, f"{type(node).__name__} is not allowed")


def activation(formula: str, params=None, **values) -> Activation:
    """Parse ``formula`` (a string in ``x``) into an :class:`Activation`.

    ``params`` names extra symbolic parameters; keyword values bind them, e.g.
    ``activation("leaky_relu(x, a)", a=0.1)``.  Parameters in the second argument of
    ``leaky_relu``/``elu`` are recognised without declaration.
    """
    if isinstance(formula, Activation):
        return formula
    if not isinstance(formula, str):
        raise ActivationError(f"an activation is a formula string in x, got {type(formula).__name__}")
    text = formula.strip().replace("^", "**")
    if not text:
        raise ActivationError("empty activation formula")
    if len(text) > 2000:
        raise ActivationError("activation formula longer than 2000 characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        pos = max((err.offset or 1) - 1, 0)
        raise ActivationError(f"syntax error at position {pos} in {text!r}: {err.msg}") from None
    declared = {p: sp.Symbol(p, real=True) for p in (params or ()) if p != "x"}
    declared.update({k: sp.Symbol(k, real=True) for k in values})
    b = _Builder(text, declared)
    expr = b.build(tree)
    act = Activation(sp.sympify(expr), text, tuple(sorted(b.params.values(), key=lambda s: s.name)))
    return act.bind(**values) if values else act
