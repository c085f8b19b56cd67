"""Kernel predictors of the infinite-width network (theory/lazy.md L12, L13).

Kernels may be given as :class:`symntk.Kernel` values (the NNGP part ``.nngp`` and the NTK
part ``.ntk`` are picked as each formula needs) or, where only one kernel enters, as arrays.
Targets ``y_train`` have shape (P,) or (P, outputs); results keep that trailing shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from .errors import DataError, SingularKernelError


@dataclass(frozen=True)
class Posterior:
    """NNGP posterior: ``mean`` (N_test[, outputs]); ``covariance`` (N_test, N_test) or the
    variances (N_test,) when a diagonal test kernel was given."""

    mean: np.ndarray
    covariance: np.ndarray


@dataclass(frozen=True)
class GradientFlow:
    """NTK gradient flow of the infinite ensemble at times ``t`` (∞ as ``np.inf``):
    ``mean`` (n_t, N_test[, outputs]); ``covariance`` (n_t, N_test, N_test) or (n_t, N_test)
    variances, or None when no test–test kernel was given."""

    t: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray | None


def _part(k, which):
    return np.asarray(getattr(k, which) if hasattr(k, which) else k, dtype=float)


def _check(k_tt, k_st, y):
    y = np.asarray(y, dtype=float)
    p = k_tt.shape[0]
    if k_tt.shape != (p, p):
        raise DataError(f"k_train_train must be square, got shape {k_tt.shape}")
    if k_st.ndim != 2 or k_st.shape[1] != p:
        raise DataError(f"k_test_train must have shape (N_test, {p}), got {k_st.shape}")
    if y.shape[0] != p or y.ndim > 2:
        raise DataError(f"y_train must have shape ({p},) or ({p}, outputs), got {y.shape}")
    for name, a in (("k_train_train", k_tt), ("k_test_train", k_st), ("y_train", y)):
        if not np.all(np.isfinite(a)):
            raise DataError(f"{name} contains NaN or inf")
    scale = np.max(np.abs(k_tt))
    if np.max(np.abs(k_tt - k_tt.T)) > 1e-10 * scale:
        raise DataError("k_train_train is not symmetric: pass the kernel of the training set with itself")
    return y


def _test_test(k, n):
    if k is None:
        return None
    if k.shape not in ((n,), (n, n)):
        raise DataError(f"k_test_test must have shape ({n},) or ({n}, {n}), got {k.shape}")
    return k


def _quad(A, M, B, full):
    """A M Bᵀ (full) or its diagonal."""
    return A @ M @ B.T if full else np.einsum("ij,jk,ik->i", A, M, B)


def nngp_posterior(k_train_train, k_test_train, k_test_test, y_train, noise=0.0) -> Posterior:
    """L12: mean K_xX (K_XX + σ_ε² I)⁻¹ y, covariance K_xx' − K_xX (K_XX + σ_ε² I)⁻¹ K_Xx'.

    Cholesky solve; a kernel that is not positive definite (with ``noise`` added) raises
    :class:`SingularKernelError` with a suggested ``noise``.
    """
    k_tt, k_st = _part(k_train_train, "nngp"), _part(k_test_train, "nngp")
    y = _check(k_tt, k_st, y_train)
    k_ss = _test_test(None if k_test_test is None else _part(k_test_test, "nngp"), k_st.shape[0])
    if noise < 0:
        raise DataError(f"noise is a variance and must be ≥ 0, got {noise}")
    A = k_tt + noise * np.eye(len(k_tt))
    try:
        cho = sla.cho_factor(A, lower=True)
    except np.linalg.LinAlgError:
        lam = np.linalg.eigvalsh(k_tt)
        raise SingularKernelError(
            f"K_XX + noise·I is not positive definite (smallest eigenvalue of K_XX {lam[0]:.3g}, largest {lam[-1]:.3g}); "
            f"pass noise ≥ {max(1e-12 * lam[-1], -2 * lam[0], 1e-300):.2g}") from None
    mean = k_st @ sla.cho_solve(cho, y)
    if k_ss is None:
        return Posterior(mean, None)
    W = sla.cho_solve(cho, k_st.T)  # (K_XX + σ_ε² I)⁻¹ K_Xx, without forming the inverse
    cov = k_ss - (k_st @ W if k_ss.ndim == 2 else np.sum(k_st * W.T, axis=1))
    return Posterior(mean, cov)


def ntk_gradient_flow(k_train_train, k_test_train, y_train, t=(np.inf,), learning_rate=1.0, ridge=0.0,
                      k_test_test=None) -> GradientFlow:
    """L13: the infinite ensemble trained by gradient flow on ½Σ(f − y)², ḟ = −η Θ (f − y).

    With Θ = Θ_XX + ridge·I, E_t = I − e^{−ηΘt} and A_t(x) = Θ_xX Θ⁻¹ E_t (Lee et al. 2019):

        mean        μ_t(x)      = A_t(x) y
        covariance  Σ_t(x, x')  = K_xx' − A_t(x) K_Xx' − K_xX A_t(x')ᵀ + A_t(x) K_XX A_t(x')ᵀ

    (K the NNGP, the law of f at initialisation).  ``t`` is a list of times, ``None`` or
    ``np.inf`` for t = ∞ (kernel regression).  Θ⁻¹E_t is formed in the eigenbasis of Θ as
    −expm1(−ηλt)/λ, finite for any t < ∞ even when Θ is singular; t = ∞ needs Θ positive
    definite, else :class:`SingularKernelError` suggests a ridge.  The covariance needs
    Kernel values (NNGP and NTK) and ``k_test_test``.
    """
    th_tt, th_st = _part(k_train_train, "ntk"), _part(k_test_train, "ntk")
    y = _check(th_tt, th_st, y_train)
    times = np.array([np.inf if s is None else s for s in np.atleast_1d(np.asarray(t, dtype=object))], dtype=float)
    if np.any(np.isnan(times)) or np.any(times < 0):
        raise DataError(f"times must be ≥ 0 (None or inf for t = ∞), got {list(times)}")
    if learning_rate <= 0 or ridge < 0:
        raise DataError(f"learning_rate must be > 0 and ridge ≥ 0, got {learning_rate}, {ridge}")
    lam, U = np.linalg.eigh(th_tt + ridge * np.eye(len(th_tt)))
    top = max(lam[-1], 1e-300)
    if np.isinf(times).any() and lam[0] <= 1e-13 * top * len(lam):
        raise SingularKernelError(
            f"Θ_XX + ridge·I is (numerically) singular: smallest eigenvalue {lam[0]:.3g} of largest {top:.3g}; "
            f"t = ∞ needs ridge ≥ {max(1e-10 * top, -2 * lam[0]):.2g} (or use a finite t)")
    pos = np.maximum(lam, 1e-300)
    with np.errstate(over="ignore", invalid="ignore"):
        g = np.where(np.isinf(times)[:, None], 1 / pos,
                     np.where(lam > 0, -np.expm1(-learning_rate * np.outer(times, lam)) / pos, learning_rate * times[:, None]))
    A = np.einsum("sj,tj,kj->tsk", th_st @ U, g, U)  # A_t = Θ_xX U diag(g_t) Uᵀ
    mean = np.einsum("tsk,k...->ts...", A, y)
    if k_test_test is None:
        return GradientFlow(times, mean, None)
    k_tt, k_st = _part(k_train_train, "nngp"), _part(k_test_train, "nngp")
    k_ss = _test_test(_part(k_test_test, "nngp"), th_st.shape[0])
    full = k_ss.ndim == 2
    cov = []
    for At in A:
        cross = At @ k_st.T if full else np.sum(At * k_st, axis=1)  # the term A_t(x) K_Xx' 
        cov.append(k_ss - cross - (cross.T if full else cross) + _quad(At, k_tt, At, full))
    return GradientFlow(times, mean, np.array(cov))
