"""The derived dual activation as a neural-tangents layer: ``stax.Elementwise(φ, V, V̇)``.

neural-tangents computes the layer's NNGP map with ``nngp_fn(cov12, var1, var2) = V(var1, cov12,
var2)`` and its NTK map with ``d_nngp_fn = V̇`` — the closed form the engine derived, or its
numerical strategy (Hermite series with its error bound) for activations with none.  Where
neural-tangents asks for a second moment (``var2`` is None, or the two points coincide) the exact
diagonal E[φ²], E[φ'²] is used, as :meth:`symntk.MLP.kernel` does.

neural-tangents pins old JAX releases, so it lives in its own environment:
``make test-neural-tangents`` builds one (``requirements/neural-tangents.txt``) and runs the
check that ``stax.serial`` of these layers reproduces ``MLP.kernel``.
"""
from __future__ import annotations

import jax.numpy as jnp

from ..activation import activation as parse
from ..errors import DataError
from ..gaussian import derive

try:
    from neural_tangents import stax
except ImportError as err:  # pragma: no cover - exercised with the package absent
    raise ImportError("symntk.interop.neural_tangents_layer needs neural-tangents, which pins an older JAX: "
                      "install it in its own environment (`make test-neural-tangents` builds one from "
                      "requirements/neural-tangents.txt)") from err


def neural_tangents_layer(activation):
    """``stax.Elementwise(fn, nngp_fn, d_nngp_fn)`` for ``activation`` (a formula or
    :class:`~symntk.Activation` with its parameters bound)."""
    act = parse(activation)
    if act.params:
        raise DataError(f"bind the activation's parameters {[p.name for p in act.params]} first")
    mod = derive(act).module()

    def moments(cov12, var1, var2):
        """(V, V̇) at (var1, cov12, var2), the exact second moments where the points coincide."""
        if var2 is None:
            return mod.diagonal(mod.features(var1))
        same = (var1 == var2) & (cov12 == var1)
        on_diagonal = mod.diagonal(mod.features(var1))
        off_diagonal = mod.dual(var1, cov12, var2)
        return tuple(jnp.where(same, d, o) for d, o in zip(on_diagonal, off_diagonal))

    def nngp_fn(cov12, var1, var2):
        return moments(cov12, var1, var2)[0]

    def d_nngp_fn(cov12, var1, var2):
        return moments(cov12, var1, var2)[1]

    return stax.Elementwise(mod.phi, nngp_fn, d_nngp_fn)
