"""``derive(activation)`` → :class:`DualActivation`: V = E[φ(u)φ(v)], V̇ = E[φ'(u)φ'(v)].

Strategies, tried in order and recorded in ``method`` (theory/lazy.md L1–L5):

* ``closed-form`` — φ and φ' are polynomial × exp(quadratic) (or δ's): direct Gaussian integrals;
* ``price``       — Price's-theorem descent with exact boundary terms (see :mod:`.price`);
  both closed forms are then condensed (:mod:`.condense`: one fraction per transcendental factor),
  and where the result of an analytic φ still cancels at small variances, the generated code
  switches there to the Mehler series (``small_variance``, see :mod:`.small_variance`);
* ``hermite``     — Mehler series with a rigorous tail bound (see :mod:`.hermite`); where the
  bound exceeds 1e-10 relative (|ρ| → 1 with a steep or kinked φ), checked calls switch to
  nested graded quadrature with an error estimate (see :mod:`.quadrature`).
"""
from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp

from .. import codegen
from ..activation import Activation, activation as parse, x
from ..errors import CovarianceError, DerivationError, DivergentIntegralError, PrecisionWarning
from .condense import condense
from .hermite import DEFAULT_TERMS, MAX_TERMS
from .moments import c, q1, q2
from .price import price_descent
from .small_variance import N_TERMS, Q_MAX, Q_MIN, needs_branch
from .terms import Unsupported, decompose, diff_terms

ENGINE_VERSION = 7
RELATIVE_TOLERANCE = 1e-10
_FINGERPRINT = codegen.engine_fingerprint()


@dataclass
class DualActivation:
    """The dual activation of φ and the code that evaluates it.

    ``nngp_expr`` = V(q1, c, q2), ``ntk_expr`` = V̇(q1, c, q2) (SymPy, symbols q1, c, q2);
    ``conditions`` are expressions that must be > 0 for the integrals to exist.
    """

    activation: Activation
    method: str
    nngp_expr: sp.Expr
    ntk_expr: sp.Expr
    order: int
    steps: list = field(repr=False)
    conditions: list = field(default_factory=list, repr=False)
    n_terms: int = 0
    kinks: tuple = ()
    small_variance: bool = False
    key: str = ""

    # ------------------------------------------------------------------ code
    @property
    def source(self) -> str:
        """The generated JAX module (deterministic text)."""
        return _render(self)

    def module(self):
        return codegen.load_module(self.key, lambda: self.source)

    def emit(self, path) -> None:
        """Write the generated module to ``path``."""
        with open(path, "w") as f:
            f.write(self.source)

    def jax(self, checked: bool = True):
        """``f(q1, c, q2) -> (V, V̇)``, broadcasting, jit-able, dtype following the inputs.

        With ``checked=True`` concrete inputs are validated first (shapes, PSD-ness, the
        convergence domain), and for ``hermite`` the entries whose series bound exceeds 1e-10
        relative are recomputed by nested quadrature (:mod:`.quadrature`; a warning if even its
        error estimate exceeds 1e-10).  Inside ``jax.jit`` use ``checked=False``: the series alone.
        """
        mod = self.module()
        if not checked:
            return mod.dual
        return lambda a, b, d: _checked_call(self, mod, a, b, d)

    # ------------------------------------------------------------------ text
    def latex(self) -> str:
        """The derivation, step by step, as LaTeX (one equation per line, Markdown-friendly)."""
        phi = self.activation.expr
        out = [r"\varphi(x) = " + sp.latex(phi), r"\varphi'(x) = " + sp.latex(self.activation.derivative)]
        out.append(r"\text{method: " + self.method + "}")
        for title, e in self.steps:
            out.append(r"\text{" + title + r"}:\quad " + (e if isinstance(e, str) else sp.latex(e)))
        out.append(r"V_\varphi(q_1, c, q_2) = " + sp.latex(self.nngp_expr))
        out.append(r"\dot V_\varphi(q_1, c, q_2) = " + sp.latex(self.ntk_expr))
        for cond in self.conditions:
            out.append(r"\text{converges where } " + sp.latex(cond) + " > 0")
        return "\n".join(out)


def _checked_call(dual, mod, a, b, d):
    import jax.numpy as jnp

    arrays = [np.asarray(v) for v in (a, b, d)]
    try:
        np.broadcast_shapes(*(v.shape for v in arrays))
    except ValueError:
        raise CovarianceError(f"q1, c, q2 shapes {[v.shape for v in arrays]} do not broadcast") from None
    for name, v in zip(("q1", "c", "q2"), arrays):
        if not np.all(np.isfinite(v)):
            raise CovarianceError(f"{name} contains NaN or inf")
    A, B, D = arrays
    if np.any(A < 0) or np.any(D < 0):
        raise CovarianceError("variances q1, q2 must be ≥ 0")
    excess = np.abs(B) - np.sqrt(A * D)
    if np.any(excess > 1e-6 * np.maximum(np.sqrt(A * D), 1e-300)):
        raise CovarianceError(f"|c| exceeds √(q1 q2) by up to {excess.max():.3g}: not a covariance")
    for cond in dual.conditions:
        val = np.asarray(sp.lambdify((q1, c, q2), cond, "numpy")(A, B, D))
        if np.any(val <= 0):
            bad = np.argwhere(np.broadcast_to(val <= 0, val.shape))[0]
            qa, qb = np.broadcast_to(A, val.shape)[tuple(bad)], np.broadcast_to(D, val.shape)[tuple(bad)]
            raise DivergentIntegralError(
                f"E[φ(u)φ(v)] for φ = {dual.activation.expr} diverges at q1 = {qa:g}, q2 = {qb:g}: "
                f"it converges only where {cond} > 0")
    if dual.method != "hermite":
        return mod.dual(jnp.asarray(a), jnp.asarray(b), jnp.asarray(d))
    V, Vdot, bound, bound_dot = (np.array(v) for v in mod.dual_with_bound(jnp.asarray(a), jnp.asarray(b), jnp.asarray(d)))
    far = (bound > RELATIVE_TOLERANCE * np.abs(V)) | (bound_dot > RELATIVE_TOLERANCE * np.abs(Vdot))
    if far.any():
        V[far], Vdot[far], bound[far], bound_dot[far] = _by_quadrature(mod, *(np.broadcast_to(v, V.shape)[far] for v in arrays))
    rel = max(float(np.max(e / np.maximum(np.abs(v), 1e-300), initial=0)) for e, v in ((bound, V), (bound_dot, Vdot)))
    if rel > RELATIVE_TOLERANCE:
        warnings.warn(f"dual activation of {dual.activation.expr}: error estimate {rel:.2g} relative exceeds "
                      f"{RELATIVE_TOLERANCE:g} even with nested quadrature near |ρ| = 1; rescale the inputs "
                      "towards variance ~1", PrecisionWarning, stacklevel=3)
    return jnp.asarray(V), jnp.asarray(Vdot)


@lru_cache(maxsize=None)
def _quadrature_fn(mod):
    import jax

    return jax.jit(mod.dual_by_quadrature)


QUADRATURE_CHUNK = 1024  # entries per jitted call (~10 s on a 2-core CPU); a progress bar beyond one


def _by_quadrature(mod, q1_, c_, q2_):
    """(V, V̇, err_V, err_V̇) of the generated nested quadrature at flat arrays of entries, in chunks
    of QUADRATURE_CHUNK, each padded to a power of two (≥ 8) so that ``jit`` compiles once per size class."""
    starts = range(0, q1_.size, QUADRATURE_CHUNK)
    if len(starts) > 1:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="nested quadrature near |ρ| = 1", unit="chunk")
    out = []
    for s in starts:
        args = [v[s:s + QUADRATURE_CHUNK] for v in (q1_, c_, q2_)]
        n = args[0].size
        size = max(8, 1 << (n - 1).bit_length())
        pad = lambda v: np.concatenate([v, np.repeat(v[-1:], size - n)])  # noqa: E731
        out.append([np.asarray(v)[:n] for v in _quadrature_fn(mod)(*map(pad, args))])
    return tuple(np.concatenate(parts) for parts in zip(*out))


def _render(dual: DualActivation) -> str:
    phi = dual.activation.expr
    doc = (f"Dual activation of phi(x) = {sp.sstr(phi)}.\n\n"
           f"Generated by symntk (engine {ENGINE_VERSION}), strategy: {dual.method}; key {dual.key}.\n"
           "V = E[phi(u) phi(v)], Vdot = E[phi'(u) phi'(v)], (u, v) ~ N(0, [[q1, c], [c, q2]]).\n"
           "features(q) is the per-point data pair() needs, so that a kernel matrix computes it once per point.\n"
           "Do not edit: regenerate with `symntk derive`.")
    dual_fn = ("def dual(q1, c, q2):\n    \"\"\"(V, Vdot) for broadcasting arrays q1, c, q2.\"\"\"\n"
               "    return pair(features(q1), c, features(q2))")
    pointwise = ["def phi(x):\n    \"\"\"The activation, elementwise.\"\"\"\n"
                 + "\n".join(codegen.print_block([("y", phi)])) + "\n    return y",
                 "def dphi(x):\n    \"\"\"Its derivative (Dirac masses dropped), elementwise.\"\"\"\n"
                 + "\n".join(codegen.print_block([("y", dual.activation.derivative)])) + "\n    return y"]
    if dual.method == "hermite" or dual.small_variance:
        at_zero = ("AT_ZERO = (" + ", ".join(repr(v) for v in _taylor_at_zero(dual.activation)) + ")  # phi, phi', "
                   "phi'', phi''' at x = 0 (one-sided means at a kink): the series' data at q = 0")
    if dual.method == "hermite":
        imports = ["from symntk.gaussian import hermite, quadrature"]
        fns = pointwise + [at_zero,
               f"def features(q):\n    \"\"\"Hermite coefficients of phi and phi' at variance q (Mehler series, N = {dual.n_terms}).\"\"\"\n"
               f"    return hermite.features(phi, dphi, q, AT_ZERO, n_terms={dual.n_terms}"
               + (f", kinks={dual.kinks!r})" if dual.kinks else ")"),
               "def pair(f1, c, f2):\n    \"\"\"(V, Vdot) for broadcasting per-point features f1, f2 and covariance c.\"\"\"\n"
               "    V, Vdot, _, _ = hermite.pair(f1, c, f2)\n    return V, Vdot",
               "def diagonal(f):\n    \"\"\"(V, Vdot) at q1 = q2 = c: the exact second moments.\"\"\"\n"
               "    return hermite.diagonal(f)",
               "def dual_with_bound(q1, c, q2):\n    \"\"\"(V, Vdot, bound_V, bound_Vdot): truncation error bounds of the series.\"\"\"\n"
               "    return hermite.pair(features(q1), c, features(q2))",
               "def dual_by_quadrature(q1, c, q2):\n    \"\"\"(V, Vdot, err_V, err_Vdot) by nested graded quadrature, for |rho| -> 1 where the series is slow.\"\"\"\n"
               "    return quadrature.dual(phi, dphi, q1, c, q2" + (f", kinks={dual.kinks!r})" if dual.kinks else ")"),
               dual_fn]
    elif dual.small_variance:
        dual_fn = ("@jax.jit  # compiled once: called eagerly, each lax.cond would compile again\n"
                   "def dual(q1, c, q2):\n    \"\"\"(V, Vdot) for broadcasting arrays q1, c, q2.\"\"\"\n"
                   "    return pair(small_variance.features(phi, dphi, closed_diagonal, q1, AT_ZERO, q2), c,\n"
                   "                small_variance.features(phi, dphi, closed_diagonal, q2, AT_ZERO, q1))")
        imports = ["import jax", "from symntk._numerics import arctan2, clip_cov, safe_sqrt, shaped",
                   "from symntk.gaussian import small_variance"]
        fns = pointwise + [at_zero] + _closed_fns(dual) + [
               "def features(q):\n    \"\"\"Per-point data: the variance, and where some variance is small the Mehler-series data.\"\"\"\n"
               "    return small_variance.features(phi, dphi, closed_diagonal, q, AT_ZERO)",
               "def pair(f1, c, f2):\n    \"\"\"(V, Vdot) for broadcasting per-point features f1, f2 and covariance c: the closed form,\n"
               "    and the Mehler series at small variances, where the closed form cancels.\"\"\"\n"
               "    return small_variance.blend(f1, c, f2, closed)",
               "def diagonal(f):\n    \"\"\"(V, Vdot) at q1 = q2 = c: the closed form, and the rule's moments at small variances.\"\"\"\n"
               "    return small_variance.diagonal(f, *closed_diagonal(f[0]))",
               dual_fn]
    else:
        imports = ["from symntk._numerics import arctan2, clip_cov, safe_sqrt, shaped"]
        fns = pointwise + _closed_fns(dual) + [
               "def features(q):\n    \"\"\"Per-point data: for a closed form, the variance itself.\"\"\"\n    return (q,)",
               "def pair(f1, c, f2):\n    \"\"\"(V, Vdot) for broadcasting per-point features f1, f2 and covariance c.\"\"\"\n"
               "    return closed(f1[0], c, f2[0])",
               "def diagonal(f):\n    \"\"\"(V, Vdot) at q1 = q2 = c.\"\"\"\n    return closed_diagonal(f[0])",
               dual_fn]
    return codegen.render_module(doc, imports, fns)


def _taylor_at_zero(act):
    """(φ(0), φ'(0), φ''(0), φ'''(0)) as floats, each the mean of its one-sided limits at 0, Dirac
    masses dropped: the data of the series' features at q = 0 (:func:`hermite._at_zero`)."""
    side = sp.Rational(1, 10**30)  # sp.limit would be exact but hangs on nested Heavisides (relu6)
    out = []
    for k in range(4):
        d = sp.diff(act.expr, x, k).replace(sp.DiracDelta, lambda *args: sp.S.Zero)
        mean = float(((d.xreplace({x: side}) + d.xreplace({x: -side})) / 2).evalf(30))
        out.append(mean if abs(mean) > 1e-20 else 0.0)  # off the limit by O(1e-30)·|φ^(k+1)|: below 1e-20 it is 0
    return out


def _closed_fns(dual):
    """``closed(q1, c, q2)`` and ``closed_diagonal(q1)`` of a closed-form module (the latter simplified
    symbolically, so no rounding gap q1 q2 − c² is left on the diagonal)."""
    return ["def closed(q1, c, q2):\n    \"\"\"(V, Vdot) by the closed form.\"\"\"\n    c = clip_cov(q1, c, q2)\n"
            + "\n".join(codegen.print_block([("V", dual.nngp_expr), ("Vdot", dual.ntk_expr)]))
            + "\n    return shaped((V, Vdot), q1, c, q2)",
            "def closed_diagonal(q1):\n    \"\"\"(V, Vdot) at q1 = q2 = c, simplified symbolically (no rounding gap q1 q2 - c^2).\"\"\"\n"
            + "\n".join(codegen.print_block(_diagonal_exprs(dual))) + "\n    return shaped((V, Vdot), q1)"]


def _diagonal_exprs(dual):
    """V(q, q, q) and V̇(q, q, q) in the symbol q1; a V̇ with a Dirac mass (sign, step) is +∞ there."""
    out = []
    for name, e in (("V", dual.nngp_expr), ("Vdot", dual.ntk_expr)):
        d = e.xreplace({q2: q1, c: q1})
        out.append((name, sp.oo if d.has(sp.zoo, sp.nan, sp.oo) else d))
    return out


def _closed_form(phi):
    terms = decompose(phi)
    V, k, steps, conds = price_descent(terms)
    Vd, kd, steps_d, conds_d = price_descent(diff_terms(terms))
    steps = [("V: " + t, e) for t, e in steps] + [("Vdot: " + t, e) for t, e in steps_d]
    condensed = condense(V), condense(Vd)
    if condensed != (V, Vd):
        steps.append(("condensed (symntk.gaussian.condense)", r"\text{collected on the transcendental factors, each "
                      r"coefficient one fraction; equal to 40 digits at probe covariances}"))
    V, Vd = condensed
    return V, Vd, k, steps, conds + conds_d, "closed-form" if k == 0 and kd == 0 else "price"


def _growth_check(act):
    f = sp.lambdify(x, act.expr, "mpmath")
    import mpmath

    for pt in (-1.0, 0.5, 2.0, -40.0, 40.0):
        try:
            v = complex(f(mpmath.mpf(pt)))
        except (ValueError, ZeroDivisionError, TypeError, OverflowError):
            v = complex("nan")
        if not np.isfinite(v) or abs(v.imag) > 0:
            raise DerivationError(f"φ = {act.expr} is not real and finite on all of R (at x = {pt}); "
                                  "a Gaussian expectation needs φ defined everywhere")
    for pt in (-60.0, 60.0):
        v = abs(complex(f(mpmath.mpf(pt))))
        if v > 0 and float(mpmath.log(v)) / pt**2 > 1e-2:
            raise DivergentIntegralError(f"φ = {act.expr} grows like exp(a·x²) or faster (at x = {pt}); "
                                         "E[φ(u)φ(v)] diverges for large q and no closed form was found")


KINK_RANGE = 10 * np.sqrt(1e3)  # z = x/√q reaches the rule's range [−10, 10] for q ≤ 1e3


def _kinks(expr):
    """The points x ≠ 0 where a Heaviside factor of φ switches (φ or φ' has a kink or a jump there),
    sorted: sign changes of each Heaviside argument on a grid of spacing 0.005 over |x| ≤ KINK_RANGE,
    refined by bisection to machine precision.  The Hermite rule puts panel edges at their images."""
    from scipy.optimize import brentq

    grid = np.linspace(-KINK_RANGE, KINK_RANGE, 2**17 + 1)
    found = set()
    for h in expr.atoms(sp.Heaviside):
        f = sp.lambdify(x, h.args[0], modules=[{"Heaviside": lambda v, h0=0.5: np.heaviside(v, h0)}, "numpy"])
        s = np.sign(np.broadcast_to(np.asarray(f(grid), dtype=float), grid.shape))
        found.update(grid[s == 0])
        found.update(brentq(f, grid[i], grid[i + 1], xtol=1e-300) for i in np.nonzero(s[:-1] * s[1:] < 0)[0])
    return tuple(sorted({float(np.float64(r)) for r in found if abs(r) > 1e-12}))


def derive(act, n_terms: int = DEFAULT_TERMS, cache: bool = True, refresh: bool = False) -> DualActivation:
    """Derive the dual activation of ``act`` (an :class:`Activation` or a formula string).

    Results are cached on disk (``cache=False`` neither reads nor writes; ``refresh=True``
    re-derives and overwrites).  ``n_terms`` is the Hermite truncation N of the numerical
    strategy.
    """
    act = parse(act)
    if not (isinstance(n_terms, (int, np.integer)) and 1 <= n_terms <= MAX_TERMS):
        raise DerivationError(f"n_terms = {n_terms!r}: the Hermite truncation must be an integer in 1 … {MAX_TERMS} "
                              f"(the quadrature rule of its coefficients resolves hₙ up to n = {MAX_TERMS})")
    key = codegen.expression_key(ENGINE_VERSION, _FINGERPRINT, act.expr, n_terms)
    path = codegen.cache_dir() / f"dual_{key}.pkl"
    if cache and not refresh and path.exists():
        with open(path, "rb") as f:
            d = pickle.load(f)
        return DualActivation(act, **d)
    small = False
    try:
        V, Vd, k, steps, conds, method = _closed_form(act.expr)
        n, kinks = 0, ()
        small = needs_branch(act.expr, V, Vd)
        if small:
            steps.append((f"at small variances (min(q1, q2) <= {Q_MIN:g} or max(q1, q2) <= {Q_MAX:g}) the formula "
                          "cancels in float64: there the Mehler series with per-point coefficients",
                          r"V = \sum_{n<N} a_n(q_1) a_n(q_2) \rho^n,\ N = " + str(N_TERMS)))
    except Unsupported as why:
        if act.params:
            raise DerivationError(f"no closed form for {act.expr} ({why}); bind the parameters "
                                  f"{[p.name for p in act.params]} to numbers for the numerical strategy") from None
        _growth_check(act)
        n, k, conds, method, kinks = n_terms, 0, [], "hermite", _kinks(act.expr)
        a = sp.Function("a")
        nn = sp.Symbol("n", integer=True)
        rho = c / sp.sqrt(q1 * q2)
        V = sp.Sum(a(nn, q1) * a(nn, q2) * rho**nn, (nn, 0, n - 1))
        Vd = sp.Sum((nn + 1) * a(nn + 1, q1) * a(nn + 1, q2) * rho**nn / sp.sqrt(q1 * q2), (nn, 0, n - 2))
        steps = [("no closed form", str(why)),
                 ("Hermite coefficients", r"a_n(q) = \mathbb{E}[\varphi(\sqrt{q} z)\, He_n(z)]/\sqrt{n!}"),
                 ("truncation bound", r"|\rho|^{N}\sqrt{T(q_1)T(q_2)},\ T(q)=\mathbb{E}[\varphi(\sqrt q z)^2]-\sum_{n<N} a_n(q)^2"),
                 ("where the bound exceeds 1e-10 relative: nested graded quadrature",
                  r"V = \int Dz\, \varphi(\sqrt{q_1} z) \int Dw\, \varphi\big(\tfrac{c}{\sqrt{q_1}} z + \sqrt{q_2 - c^2/q_1}\, w\big)")]
        if kinks:
            steps.append(("kinks away from 0, panel edges at their images", r"z = x_k/\sqrt{q},\ x_k \in \{"
                          + ", ".join(f"{k:.17g}" for k in kinks) + r"\}"))
    conds = list(dict.fromkeys(sp.factor(cd) for cd in conds if not (cd.is_number and cd > 0)))
    d = dict(method=method, nngp_expr=V, ntk_expr=Vd, order=k, steps=steps, conditions=conds, n_terms=n,
             kinks=kinks, small_variance=small, key=key)
    if cache:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(d, f)
        tmp.replace(path)
    return DualActivation(act, **d)
