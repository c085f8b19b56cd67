"""The derived dual activation inside neural-tangents: ``stax.serial`` of Dense and
``neural_tangents_layer`` reproduces ``MLP.kernel`` (runs in the environment of
``make test-neural-tangents``; skipped where neural-tangents is absent)."""
import numpy as np
import pytest

import symntk as sn

stax = pytest.importorskip("neural_tangents.stax")

X = np.random.default_rng(0).normal(size=(6, 4))
Y = np.random.default_rng(1).normal(size=(3, 4))


@pytest.mark.parametrize("formula", ["relu(x)", "erf(x)", "x*erf(x)", "tanh(x)", "x*sigmoid(x)"])
@pytest.mark.parametrize("depth", [1, 3])
def test_stax_serial_reproduces_mlp_kernel(formula, depth):
    """Same dual activation, same recursion (NTK parameterisation): agreement to rounding of the
    depth-`depth` recursion (1e-12 relative), closed form or Hermite series alike."""
    layer = sn.interop.neural_tangents_layer(formula)
    dense = lambda: stax.Dense(1, W_std=1.4, b_std=0.1)  # noqa: E731
    _, _, kernel_fn = stax.serial(*[part for _ in range(depth) for part in (dense(), layer)], dense())
    mlp = sn.MLP(formula, depth=depth, sigma_w=1.4, sigma_b=0.1)
    for x2 in (None, Y):
        got = kernel_fn(X, x2, ("nngp", "ntk"))
        ref = mlp.kernel(X, x2)
        for which in ("nngp", "ntk"):
            np.testing.assert_allclose(np.asarray(getattr(got, which)), getattr(ref, which), rtol=1e-12,
                                       atol=1e-14 * np.abs(getattr(ref, which)).max())


def test_finite_layer_applies_the_activation():
    _, apply_fn, _ = sn.interop.neural_tangents_layer("x*erf(x)")
    z = np.linspace(-3, 3, 7)
    from scipy.special import erf
    np.testing.assert_allclose(np.asarray(apply_fn((), z)), z * erf(z), rtol=1e-15)
