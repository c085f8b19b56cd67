"""symntk.solve.krylov.gmres against dense solves, and its single matrix–vector product site."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.sparse.linalg import gmres as jax_gmres

from symntk.solve.krylov import gmres

RNG = np.random.default_rng(0)
A = 3 * np.eye(60) + RNG.normal(size=(60, 60)) / np.sqrt(60)  # nonsymmetric, eigenvalues in a disc of radius ~1 about 3
B = RNG.normal(size=(3, 20))


def counted(trace):
    def matvec(v):
        trace.append(v.shape)
        return (jnp.asarray(A) @ v.ravel()).reshape(v.shape)
    return matvec


@pytest.mark.parametrize("tol,restart,restarts", [(1e-12, 20, 10), (1e-10, 5, 100), (1e-3, 20, 3)])
def test_residual_meets_the_tolerance(tol, restart, restarts):
    """‖b − Ax‖ ≤ tol‖b‖, with one cycle or many restarts (m = 5); the solution's error against a dense
    solve is then at most cond(A)·tol (cond ≈ 2 here) relative."""
    x = np.asarray(jax.jit(lambda b: gmres(counted([]), b, tol, restart, restarts))(jnp.asarray(B))).ravel()
    assert np.linalg.norm(B.ravel() - A @ x) <= tol * np.linalg.norm(B)
    exact = np.linalg.solve(A, B.ravel())
    assert np.linalg.norm(x - exact) <= 2 * np.linalg.cond(A) * tol * np.linalg.norm(exact)


def test_restarts_bound_the_work():
    """With too few steps for the tolerance, it returns the best after ``restarts`` cycles, no NaN."""
    x = np.asarray(gmres(counted([]), jnp.asarray(B), 1e-14, 2, 2)).ravel()
    assert np.all(np.isfinite(x)) and np.linalg.norm(B.ravel() - A @ x) < np.linalg.norm(B)


def test_zero_right_hand_side_gives_zero():
    assert np.all(np.asarray(gmres(counted([]), jnp.zeros((3, 20)), 1e-8, 20, 3)) == 0)


def test_one_product_per_arnoldi_step():
    """A with 3 distinct eigenvalues: its Krylov space has dimension 3, so GMRES is exact after 3
    Arnoldi steps and makes exactly 3 products (none for the residual at x = 0, none to re-check it)."""
    d = jnp.asarray(np.repeat([1.0, 2.0, 5.0], 20))
    calls = []

    def matvec(v):
        jax.debug.callback(lambda: calls.append(1))
        return d.reshape(v.shape) * v

    b = jnp.asarray(B)
    x = np.asarray(jax.jit(lambda b: gmres(matvec, b, 1e-12, 20, 3))(b))
    assert len(calls) == 3, len(calls)
    assert np.linalg.norm(np.asarray(d).reshape(B.shape) * x - B) <= 1e-12 * np.linalg.norm(B)


def test_matvec_is_traced_once():
    """Every product with A is at one site (what it is for: A is compiled once); JAX's GMRES has more."""
    ours, theirs = [], []
    jax.jit(lambda b: gmres(counted(ours), b, 1e-3, 20, 3)).lower(jnp.asarray(B))
    jax.jit(lambda b: jax_gmres(counted(theirs), b, tol=1e-3, restart=20, maxiter=3)[0]).lower(jnp.asarray(B))
    assert len(ours) == 1 and len(theirs) >= 3, (len(ours), len(theirs))
