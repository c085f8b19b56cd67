"""MLP kernels (theory/lazy.md L9–L11): exact special cases, tiling, symmetry/PSD, robustness, bad input."""
import warnings
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import symntk as sn

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 7))


def test_linear_activation_gives_the_affine_kernel_composed_depth_times():
    """φ(x) = x: Σ^{ℓ+1} = σ_w² Σ^ℓ + σ_b², Θ^{ℓ+1} = Σ^{ℓ+1} + σ_w² Θ^ℓ (rounding only: 1e-13)."""
    sw, sb, depth = [1.2, 0.8, 1.1, 0.9], [0.3, 0.1, 0.0, 0.2], 3
    k = sn.MLP("x", depth=depth, sigma_w=sw, sigma_b=sb).kernel(X)
    S = sw[0] ** 2 * X @ X.T / X.shape[1] + sb[0] ** 2
    T = S.copy()
    for ell in range(1, depth + 1):
        S = sw[ell] ** 2 * S + sb[ell] ** 2
        T = S + sw[ell] ** 2 * T
    np.testing.assert_allclose(k.nngp, S, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(k.ntk, T, rtol=1e-13, atol=1e-13)


def test_relu_matches_hand_written_arccosine_recursion():
    """L6 composed three times in NumPy with the stable angle arctan2(√(q1q2 − c²), c), and θ = 0
    exactly on the diagonal (there √(q1q2 − c²) is pure rounding, ~1e-8 q, which V̇ would feel)."""
    sw, sb = 1.5, 0.1
    k = sn.MLP("relu(x)", depth=3, sigma_w=sw, sigma_b=sb).kernel(X)
    S = sw**2 * X @ X.T / X.shape[1] + sb**2
    T = S.copy()
    for _ in range(3):
        s = np.sqrt(np.outer(np.diag(S), np.diag(S)))
        th = np.arctan2(np.sqrt(np.maximum(s**2 - S**2, 0)), S)
        np.fill_diagonal(th, 0.0)
        Sn = sw**2 * s / (2 * np.pi) * (np.sin(th) + (np.pi - th) * np.cos(th)) + sb**2
        T = Sn + sw**2 * (np.pi - th) / (2 * np.pi) * T
        S = Sn
    np.testing.assert_allclose(k.nngp, S, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, T, rtol=1e-12)


def test_deep_relu_at_criticality_preserves_the_diagonal():
    """σ_w² = 2, σ_b = 0: E[relu(u)²] = q/2, so Σ^ℓ(x, x) = 2‖x‖²/d at every depth (here 60)."""
    k = sn.MLP("relu(x)", depth=60, sigma_w=np.sqrt(2), sigma_b=0.0).kernel(X[:10])
    np.testing.assert_allclose(np.diag(k.nngp), 2 * np.sum(X[:10] ** 2, 1) / 7, rtol=1e-12)
    assert np.all(np.isfinite(k.ntk))


@pytest.mark.parametrize("formula", ["erf(x)", "tanh(x)"])
def test_tiles_and_blocks_agree_with_one_shot(formula):
    mlp = sn.MLP(formula, depth=2, sigma_w=1.3, sigma_b=0.2)
    full = mlp.kernel(X)
    tiled = mlp.kernel(X, tile=16)
    block = mlp.kernel(X[:13], X[20:37], tile=8)
    diag = mlp.kernel(X, diagonal=True)
    for a, b in ((full.nngp, tiled.nngp), (full.ntk, tiled.ntk)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
    # different tile shapes compile to differently ordered sums: rounding relative to the kernel's
    # scale (entries near 0 are sums of O(1) terms), not to each entry
    for a, b in ((block.nngp, full.nngp), (block.ntk, full.ntk)):
        np.testing.assert_allclose(a, b[:13, 20:37], rtol=1e-13, atol=1e-15 * np.max(np.abs(b)))
    np.testing.assert_array_equal(diag.nngp, np.diag(full.nngp))
    np.testing.assert_array_equal(diag.ntk, np.diag(full.ntk))


def test_standard_parameterisation_shares_the_nngp_and_rescales_the_ntk():
    """SP: same Σ; Θ^{ℓ+1} = V + 1 + Σ̇ Θ^ℓ. For φ(x) = x with σ's constant this is closed form."""
    sw, sb = 1.3, 0.4
    ntk = sn.MLP("x", depth=2, sigma_w=sw, sigma_b=sb).kernel(X)
    sp_ = sn.MLP("x", depth=2, sigma_w=sw, sigma_b=sb, parameterization="standard").kernel(X)
    np.testing.assert_allclose(sp_.nngp, ntk.nngp, rtol=1e-14)
    D = X @ X.T / 7
    S1 = sw**2 * D + sb**2
    T = D + 1
    T = S1 + 1 + sw**2 * T
    T = (sw**2 * S1 + sb**2) + 1 + sw**2 * T
    # rounding relative to the matrix's scale (entries near 0 cancel; GPU matmuls round differently)
    np.testing.assert_allclose(sp_.ntk, T, rtol=1e-13, atol=1e-14 * np.abs(T).max())


U = np.finfo(np.float64).eps / 2
ULPS_PER_LAYER = 16  # rounding of one layer's V, V̇: a few elementary functions of a few ulp each


def rounding_bound(mlp, x):
    """Bound on |computed − exact| entrywise for (K, Θ), from the rounding of every layer's inputs
    (q₁, c, q₂, Θ): layer 1 by the dot-product bound δ = (d + 3)·u·Σ|x||x'|/d, later layers by
    ULPS_PER_LAYER·u relative; each input's share is the change of the output when that input
    moves by ±δ (secants, not derivatives: V̇ of ReLU has a √(1 − ρ) kink at ρ = 1, where a
    rounding δ costs √δ).  Entry (i, j) depends only on the (i, j) entries of the layers below, so
    one shifted evaluation per input, layer and sign covers every entry; near-parallel points make
    the shares large (the Gram determinant q₁q₂ − c² cancels)."""
    d = x.shape[1]
    return _bound_function(mlp.activation.source, mlp.depth, tuple(map(tuple, np.asarray(mlp.coefficients))))(
        x @ x.T / d, np.abs(x) @ np.abs(x).T / d, d)


@lru_cache(maxsize=None)
def _bound_function(formula, L, coefficients):
    mod = sn.derive(sn.activation(formula)).module()
    sw2, sb2, aw, ab = (np.asarray(a) for a in coefficients)
    rows, cols = (lambda t: jax.tree.map(lambda a: a[:, None], t)), (lambda t: jax.tree.map(lambda a: a[None, :], t))

    def layers(G, pert):
        """Every layer's inputs (q of the rows, c, q of the columns, Θ), each shifted by ``pert``,
        and the output (K, Θ); the variances are per point, so the series' features are too."""
        S = sw2[0] * G + sb2[0]
        state, inputs = (jnp.diag(S), S, jnp.diag(S), aw[0] * G + ab[0]), []
        for ell in range(L):
            q1, c, q2, th = state = tuple(a + b for a, b in zip(state, pert[ell]))
            inputs.append(state)
            f1, f2 = mod.features(q1), mod.features(q2)
            V, Vdot = mod.pair(rows(f1), c, cols(f2))
            state = (*(sw2[ell + 1] * v + sb2[ell + 1] for v in (mod.diagonal(f1)[0], V, mod.diagonal(f2)[0])),
                     aw[ell + 1] * V + ab[ell + 1] + sw2[ell + 1] * Vdot * th)
        return (state[1], state[3]), inputs

    @partial(jax.jit, static_argnums=2)
    def bound(G, absG, d):
        zero = [[jnp.zeros(G.shape[0]), jnp.zeros_like(G)] * 2 for _ in range(L)]
        (K, T), inputs = layers(G, zero)
        scale = [[ULPS_PER_LAYER * U * jnp.abs(v) for v in layer] for layer in inputs]
        absS = sw2[0] * absG + sb2[0]
        scale[0] = [(d + 3) * U * v for v in (jnp.diag(absS), absS, jnp.diag(absS), aw[0] * absG + ab[0])]
        # one shifted evaluation per (layer, input, sign), stacked and vmapped (one compiled recursion)
        cases = [(ell, k, sign) for ell in range(L) for k in range(4) for sign in (1, -1)]
        shifts = [[jnp.stack([sign * scale[ell][k] if (ell, k) == (e, j) else 0 * scale[e][j]
                              for ell, k, sign in cases]) for j in range(4)] for e in range(L)]
        Ks, Ts = jax.vmap(lambda p: layers(G, p)[0])(shifts)
        return [ULPS_PER_LAYER * U * jnp.abs(v) + jnp.sum(jnp.abs(vs - v), axis=0) / 2 for v, vs in ((K, Ks), (T, Ts))]

    return bound


@settings(max_examples=15, deadline=None)
@given(arrays(np.float64, (12, 3), elements=st.floats(-1e3, 1e3)), st.sampled_from(["relu(x)", "erf(x)", "tanh(x)"]),
       st.integers(1, 4))
def test_kernels_are_symmetric_and_psd(x, formula, depth):
    """The exact kernels are PSD, so λ_min of the computed ones ≥ −‖E‖₂ (Weyl; E ≥ |error| entrywise,
    the rounding bound above) minus eigvalsh's own backward error 10·N·u·‖M‖₂."""
    mlp = sn.MLP(formula, depth=depth, sigma_w=1.4, sigma_b=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sn.PrecisionWarning)  # large q: the tanh series' own bound, not rounding
        k = mlp.kernel(x)
    for M, E in zip((k.nngp, k.ntk), map(np.asarray, rounding_bound(mlp, x))):
        assert np.all(np.isfinite(M))
        np.testing.assert_array_equal(M, M.T)
        lam = np.linalg.eigvalsh(M)
        assert lam[0] >= -np.linalg.norm(E, 2) - 10 * len(M) * U * np.abs(lam).max()


@pytest.mark.parametrize("formula", ["relu(x)", "erf(x)", "tanh(x)"])
def test_float32_stays_finite_at_depth_50(formula):
    x32 = X[:16].astype(np.float32)
    k = sn.MLP(formula, depth=50, sigma_w=1.4, sigma_b=0.1).kernel(x32)
    assert k.nngp.dtype == np.float32 and k.ntk.dtype == np.float32
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    k64 = sn.MLP(formula, depth=50, sigma_w=1.4, sigma_b=0.1).kernel(X[:16])
    # float32 tolerance: ~ eps32 · depth amplification; stated as 1e-3 relative to the kernel scale
    assert np.max(np.abs(k.nngp - k64.nngp)) <= 1e-3 * np.max(np.abs(k64.nngp))


def test_tiny_and_huge_inputs_stay_finite():
    for scale in (1e-6, 1e4):
        for formula in ("relu(x)", "erf(x)", "tanh(x)"):
            k = sn.MLP(formula, depth=3, sigma_w=1.0, sigma_b=0.0).kernel(scale * X[:8])
            assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk)), (formula, scale)


def test_recursion_latex_names_the_activation_dual():
    text = sn.MLP("erf(x)", depth=2).recursion().latex()
    assert r"\Theta^{\ell+1}" in text and r"\operatorname{atan}_{2}" in text


@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=0), "depth"), (dict(depth=2, sigma_w=0.0), "sigma_w"), (dict(depth=2, sigma_b=-1.0), "sigma_b"),
    (dict(depth=2, sigma_w=[1.0, 1.0]), "depth \\+ 1"), (dict(depth=2, parameterization="mup"), "parameterization"),
])
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(sn.DataError, match=match):
        sn.MLP("relu(x)", **kwargs)


def test_bad_data_is_rejected():
    mlp = sn.MLP("relu(x)", depth=1)
    with pytest.raises(sn.DataError, match="features"):
        mlp.kernel(X, X[:, :3])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(sn.DataError, match="row 3"):
        mlp.kernel(bad)
    with pytest.raises(sn.DataError, match="2-D"):
        mlp.kernel(X[0])


def _near_duplicates(scale):
    """Six points of variance scale² (σ_w = 1) in pairs at correlation ≈ 0.9985 (where a short Hermite
    series is least accurate)."""
    base = np.random.default_rng(5).normal(size=(3, 7))
    x = np.concatenate([base, base + 0.03 * np.random.default_rng(6).normal(size=(3, 7))])
    return scale * x * np.sqrt(7) / np.linalg.norm(x, axis=1, keepdims=True)


def test_a_short_series_is_lengthened_where_its_bound_needs_it():
    """tanh at q = 3 with near-duplicate points: N = 96 is bounded by 3e-6 there (warns when fixed;
    the kernels differ by 5e-8 (NNGP) and 1.4e-6 (NTK) relative), so the default MLP recomputes with
    N = 320 (bound < 1e-10: silent) and returns exactly that kernel."""
    x = _near_duplicates(np.sqrt(3.0))
    with pytest.warns(sn.PrecisionWarning, match="n_terms"):
        short = sn.MLP("tanh(x)", depth=2, n_terms=96).kernel(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sn.PrecisionWarning)
        auto = sn.MLP("tanh(x)", depth=2).kernel(x)
        long = sn.MLP("tanh(x)", depth=2, n_terms=320).kernel(x)
    np.testing.assert_array_equal(auto.nngp, long.nngp)
    np.testing.assert_array_equal(auto.ntk, long.ntk)
    gap = np.max(np.abs(short.nngp - long.nngp)) / np.max(np.abs(long.nngp))
    assert 1e-12 < gap < 1e-5, gap


def test_a_series_too_short_at_any_length_warns():
    """tanh at q ≈ 100 near ρ = 1: even N = 320 is bounded by ~1e-2; the warning says so."""
    with pytest.warns(sn.PrecisionWarning, match="longest series"):
        sn.MLP("tanh(x)", depth=1).kernel(_near_duplicates(10.0))


def test_identical_inputs_get_the_exact_moments_and_antipodal_ones_their_bound():
    """Two identical rows meet at ρ = 1 off the diagonal: their entry is E[φ²] (the diagonal's value,
    to rounding), not the series, whose error there is ~1e-2 at q ≈ 100 for tanh.  At ρ = −1 (x and
    −x) nothing exact replaces the series, so its bound is reported."""
    a, b = _near_duplicates(10.0)[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", sn.PrecisionWarning)
        k = sn.MLP("tanh(x)", depth=2, sigma_b=0.1).kernel(np.stack([a, a, b]))
    for M in (k.nngp, k.ntk):
        np.testing.assert_allclose(M[0, 1], M[0, 0], rtol=1e-14)
        np.testing.assert_allclose(M[1, 0], M[1, 1], rtol=1e-14)
    with pytest.warns(sn.PrecisionWarning, match="longest series"):
        sn.MLP("tanh(x)", depth=1).kernel(np.stack([a, -a]))


def test_a_zero_input_row_is_the_limit_of_small_ones():
    """x = 0 with σ_b = 0 gives q = 0 at every layer: tanh's series degenerates there (ρ = c/√(q1 q2)),
    and Stein's bₙ = √((n+1)/q)·aₙ₊₁ was 0·∞ (a NaN NTK and a false 'bound inf' warning).  The kernels
    must be finite, silent and continuous: a row of size 1e-7 moves them by O(1e-7)."""
    rest = X[:3] / 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", sn.PrecisionWarning)
        k0 = sn.MLP("tanh(x)", depth=2).kernel(np.vstack([np.zeros(7), rest]))
        k1 = sn.MLP("tanh(x)", depth=2).kernel(np.vstack([np.full(7, 1e-7), rest]))
    for a, b in ((k0.nngp, k1.nngp), (k0.ntk, k1.ntk)):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(b).max())
