"""steplab's optimizers as optax transformations (``pip install 'steplab[jax]'``).

Every optimizer and preset of the NumPy core, built from the same element-wise rule::

    import optax
    import steplab.jax as sj

    tx = sj.make("adam", lr=1e-3)                    # the seed's Adam (β inside the root)
    tx = sj.make("rmsprop", preset="optax")          # equal to optax.rmsprop(1e-3)
    state = tx.init(params)                          # params: any pytree of float arrays
    updates, state = tx.update(grads, state, params) # jit- and vmap-able
    params = optax.apply_updates(params, updates)

Hyperparameters are the core's names and intervals (checked when concrete); inside
``jax.vmap``/``jax.jit`` a number may be a traced value, so ``jax.vmap`` sweeps over ``lr``,
``rho1``, … work. ``lr`` may also be a schedule: a steplab schedule (of t = 1, 2, …) or an
optax schedule (of the update count t − 1). See docs/jax.md.
"""

from __future__ import annotations

try:
    import jax  # noqa: F401
    import optax  # noqa: F401
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("steplab.jax needs JAX and optax: pip install 'steplab[jax]'") from exc

from steplab.jax.transform import FLOAT_DTYPES, JAX_OPS, make, transformation

__all__ = ["FLOAT_DTYPES", "JAX_OPS", "make", "transformation"]
