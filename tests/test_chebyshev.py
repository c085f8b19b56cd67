"""The adaptive low-rank Chebyshev interpolant behind the NDK mean predictor (symntk.solve.chebyshev)."""
import numpy as np

from symntk.solve import chebyshev

BOX = (0.0, 0.9, 0.2, 1.0)


def analytic(a, b):
    """An analytic R^40-valued function of (a, b), numerically of low rank: entries exp(ω a)/(1 + ν b²)."""
    omega, nu = np.linspace(-2, 2, 40), np.linspace(0.1, 1, 40)
    return np.exp(np.multiply.outer(a, omega)) / (1 + np.multiply.outer(b**2, nu))


def test_interpolant_meets_its_tolerance_off_the_grid():
    """At 200 random points the interpolant is within tol·max|F|: the tail criterion plus the two
    exact checks are an estimate, not a bound, so this is what certifies it on an analytic F."""
    fit = chebyshev.fit(analytic, BOX, 1e-10, np.inf, 10**4)
    rng = np.random.default_rng(5)
    a, b = rng.uniform(*BOX[:2], 200), rng.uniform(*BOX[2:], 200)
    error = np.max(np.abs(fit.weights(a, b) @ fit.modes - analytic(a, b))) / fit.scale
    assert error <= 1e-10
    assert fit.error <= 1e-10
    assert fit.coefficients.shape[:2] != (chebyshev.START, chebyshev.START)  # it did refine
    assert fit.evaluations == np.prod(fit.coefficients.shape[:2]) + 2


def test_low_rank_function_is_compressed_to_its_rank():
    """F = Σ_{r<3} f_r(a, b) U_r has rank 3: the compression keeps 3 modes and loses nothing."""
    U = np.random.default_rng(1).normal(size=(3, 500))

    def F(a, b):
        return np.stack([np.cos(a), a * b, np.exp(-b)], axis=-1) @ U

    fit = chebyshev.fit(F, BOX, 1e-12, np.inf, 10**4)
    assert fit.modes.shape == (3, 500)
    a, b = np.array([0.1, 0.5, 0.77]), np.array([0.3, 0.9, 0.5])
    np.testing.assert_allclose(fit.weights(a, b) @ fit.modes, F(a, b), rtol=0, atol=1e-12 * fit.scale)


def test_budget_and_constant_directions():
    """A fit that needs more evaluations than the budget, or more modes than ``max_rank`` (to 1e-10 the
    function needs 12), gives up (None); a direction whose interval is a point takes one node, and a
    function constant in b needs no refinement in b."""
    assert chebyshev.fit(analytic, BOX, 1e-10, 100, 10**4) is None
    assert chebyshev.fit(analytic, BOX, 1e-10, np.inf, 11) is None
    assert chebyshev.fit(analytic, BOX, 1e-10, np.inf, 12).modes.shape == (12, 40)
    fit = chebyshev.fit(lambda a, b: analytic(a, 0 * b), (0.0, 0.9, 0.5, 0.5), 1e-10, np.inf, 10**4)
    assert fit.coefficients.shape[1] == 1
    np.testing.assert_allclose(fit.weights(0.3, 0.5) @ fit.modes, analytic(np.array(0.3), np.array(0.0)),
                               rtol=0, atol=1e-10 * fit.scale)
    fit = chebyshev.fit(lambda a, b: analytic(a, 0 * b), BOX, 1e-10, np.inf, 10**4)
    assert fit.coefficients.shape[1] == chebyshev.START


def test_transform_inverts_the_lobatto_values():
    """D maps the values of Σ c_p T_p at the Lobatto points back to c (exact for degree < n)."""
    c = np.random.default_rng(2).normal(size=9)
    x = chebyshev.lobatto(9, -1.0, 1.0)
    values = chebyshev.basis(x, 9, -1.0, 1.0) @ c
    np.testing.assert_allclose(chebyshev.transform(9) @ values, c, atol=1e-14)
