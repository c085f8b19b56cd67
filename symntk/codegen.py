"""SymPy expressions → a readable, deterministic, cached JAX module.

Printing goes through a :class:`JaxPrinter` subclass after ``sympy.cse``; stable forms are
chosen by the printer: ``safe_sqrt`` (finite gradient at 0) for every non-constant square
root, ``arctan2`` (the vectorised one of :mod:`symntk._numerics`) for angles, ``logaddexp(0, u)`` for log(1 + eᵘ), ``log1p``/``expm1``
via :mod:`sympy.codegen.rewriting`.  Irrational constants become float literals, so the
output dtype follows the input dtype (float64 under JAX x64, float32 on request).
The module text depends only on the expressions and options, so identical inputs give
byte-identical files; files are cached on disk under a SHA-256 key of those inputs.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.codegen.rewriting import expm1_opt, log1p_opt, optimize
from sympy.printing.numpy import JaxPrinter

__all__ = ["cache_dir", "expression_key", "render_module", "load_module", "JaxCodePrinter"]


def cache_dir() -> Path:
    """$SYMNTK_CACHE, else ~/.cache/symntk; created on first use."""
    d = Path(os.environ.get("SYMNTK_CACHE") or Path.home() / ".cache" / "symntk")
    d.mkdir(parents=True, exist_ok=True)
    return d


def expression_key(*parts) -> str:
    """SHA-256 of the canonical text of the inputs (``srepr`` for SymPy objects)."""
    h = hashlib.sha256()
    for p in parts:
        h.update((sp.srepr(p) if isinstance(p, sp.Basic) else repr(p)).encode())
        h.update(b"\x00")
    return h.hexdigest()[:24]


class JaxCodePrinter(JaxPrinter):
    """JAX printer with stable primitives and ``jnp``/``jsp`` short names."""

    def _module_format(self, fqn, register=True):
        return super()._module_format(fqn, register).replace("jax.numpy.", "jnp.")

    def _print_erf(self, e):
        return f"jsp.erf({self._print(e.args[0])})"

    def _print_erfc(self, e):
        return f"jsp.erfc({self._print(e.args[0])})"

    def _print_Heaviside(self, e):
        return f"jnp.heaviside({self._print(e.args[0])}, 0.5)"

    def _print_atan2(self, e):
        return f"arctan2({self._print(e.args[0])}, {self._print(e.args[1])})"

    def _print_log(self, e):
        arg = e.args[0]
        if isinstance(arg, sp.Add) and len(arg.args) == 2 and sp.Integer(1) in arg.args:
            other = arg.args[0] if arg.args[1] == 1 else arg.args[1]
            if isinstance(other, sp.exp):
                return f"jnp.logaddexp(0.0, {self._print(other.args[0])})"
        return f"jnp.log({self._print(arg)})"

    def _print_log1p(self, e):
        arg = e.args[0]
        if isinstance(arg, sp.exp):
            return f"jnp.logaddexp(0.0, {self._print(arg.args[0])})"
        return f"jnp.log1p({self._print(arg)})"

    def _print_Pow(self, e, rational=False):
        b, ex = e.base, e.exp
        if not b.is_number and ex.is_Rational and ex.q == 2:
            root = f"safe_sqrt({self._print(b)})"
            return root if ex.p == 1 else f"{root}**{ex.p}" if ex.p > 0 else f"1/{root}**{-ex.p}" if ex.p != -1 else f"1/{root}"
        if ex.is_Integer and not b.is_number:
            return f"{self.parenthesize(b, 60)}**{int(ex)}"
        return super()._print_Pow(e, rational)

    def _print_Float(self, e):
        return repr(float(e))

    def _print_Rational(self, e):
        return repr(float(e)) if e.q != 1 else str(e.p)


def _floatify(expr):
    """Irrational numeric sub-expressions (π, √2, …) → 17-digit floats (weakly typed in JAX)."""
    return expr.replace(lambda e: e.is_number and not e.is_Rational and not e.is_Atom or e in (sp.pi, sp.E),
                        lambda e: sp.Float(sp.N(e, 17), 17))


def _stable(expr):
    """log1p/expm1 rewrites where they apply.  Where none does, the expression is kept as it was:
    the rewriting pass also factors sums of exponentials, e^{c−(q1+q2)/2} + … → (e^c + …)e^{−q1/2}e^{−q2/2},
    which overflows to ∞·0 at large variances (cos, sin at q = 1e3)."""
    out = optimize(expr, [log1p_opt, expm1_opt])
    return out if out.has(expm1, log1p) else expr


def print_block(names_exprs, indent="    "):
    """cse + print: returns the lines assigning each name."""
    names = [n for n, _ in names_exprs]
    exprs = [_floatify(_stable(e)) for _, e in names_exprs]
    subs, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t"), optimizations="basic")
    pr = JaxCodePrinter({"fully_qualified_modules": True})
    lines = [f"{indent}{sym} = {pr.doprint(val)}" for sym, val in subs]
    lines += [f"{indent}{n} = {pr.doprint(v)}" for n, v in zip(names, reduced)]
    return lines


def render_module(docstring: str, imports: list[str], functions: list[str]) -> str:
    head = ['"""' + docstring.strip() + '\n"""', "import jax.numpy as jnp", "import jax.scipy.special as jsp", *imports]
    return "\n".join(head) + "\n\n\n" + "\n\n\n".join(f.rstrip() for f in functions) + "\n"


def load_module(key: str, render, prefix: str = "dual"):
    """Import the cached module ``<prefix>_<key>.py``; ``render()`` gives its text when it is not cached yet.

    The key is a hash of every input of the text (expressions, options and the engine's own
    source, see :func:`engine_fingerprint`), so a cached file is never stale and is not re-rendered.
    """
    path = cache_dir() / f"{prefix}_{key}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(render())
        tmp.replace(path)
    name = f"symntk_generated.{prefix}_{key}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod


def engine_fingerprint() -> str:
    """SHA-256 of the source of the derivation engine and this code generator (part of every cache key)."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for f in sorted([root / "codegen.py", root / "activation.py", *(root / "gaussian").glob("*.py")]):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
