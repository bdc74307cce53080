"""Whole-array rules on the JAX path: the cautious mask (:class:`steplab.optim.Cautious`),
MARS (:class:`steplab.optim.MARS`, the core's own :func:`~steplab.optim.modifiers.mars_rule`
traced by JAX) and Prodigy (:class:`steplab.optim.Prodigy`, where ``optax.contrib.prodigy``
is the same rule). The cautious mask::

    tx = cautious(Cautious(base=AdamW(lr=1e-3, weight_decay=0.1)))   # or cautious(AdamW(...))
    updates, state = tx.update(grads, state, params)                  # params is required

The base's rule runs through :func:`steplab.jax.transformation`; its step Δθ is masked
where −Δθ and ĝ disagree in sign, the rest scaled by n/(Σmask + 1), n and Σmask over every
leaf (θ is the parameters concatenated, as in the NumPy core). Decoupled weight decay is
applied first and not masked. jit-able; ``lr`` must be a number.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from steplab.jax.transform import JAX_OPS
from steplab.jax.transforms import from_optimizer
from steplab.optim.base import Optimizer
from steplab.optim.modifiers import MARS, Cautious, Prodigy, Reductions, mars_rule

#: The reductions as traced values: jit-able (MARS' clip is a division by max(‖c‖, 1)).
JAX_REDUCTIONS = Reductions(dot=jnp.vdot, sqrt=jnp.sqrt, maximum=jnp.maximum)


def cautious(optimizer: Cautious | Optimizer) -> optax.GradientTransformation:
    """``optimizer`` (a core :class:`Cautious`, or the optimizer it wraps) with the mask."""
    base = optimizer.base if isinstance(optimizer, Cautious) else Cautious(base=optimizer).base
    if callable(getattr(base, "lr", None)):
        raise ValueError(f"{base.name}+cautious on JAX: lr must be a number, not a schedule")
    decay = float(base.weight_decay) if base.DECOUPLED_WEIGHT_DECAY else 0.0
    # the base's step without its decoupled decay (the mask leaves the decay alone)
    inner = from_optimizer(base.replace(weight_decay=0.0) if decay else base)
    lr = float(getattr(base, "lr", 0.0))

    def update(grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError(f"{base.name}+cautious needs params")
        steps, state = inner.update(grads, state, params)
        masks = jax.tree.map(lambda u, g: (-u * g > 0).astype(u.dtype), steps, grads)
        leaves = jax.tree.leaves(masks)
        n = sum(m.size for m in leaves)
        scale = n / (sum(jnp.sum(m) for m in leaves) + 1)  # one reduction over θ

        def masked(p: Any, u: Any, m: Any) -> Any:
            start = p * (1 - lr * decay) if decay else p  # decay first, not masked
            return (start - p) + u * (m * scale)

        return jax.tree.map(masked, params, steps, masks), state

    return optax.GradientTransformation(inner.init, update)


class MARSState(NamedTuple):
    """MARS' state on JAX: the step count and the moments, each a pytree like the params."""

    t: Any  # steps taken (an int32 scalar)
    m: Any  # first moment of the corrected gradient
    v: Any  # second moment of the corrected gradient
    g_prev: Any  # the previous step's gradient (0 before the first step)


def mars(optimizer: MARS) -> optax.GradientTransformation:
    """The core's MARS on a pytree: θ, ĝ and the moments of every leaf concatenated into
    one array (θ is the parameters concatenated, as in the core), so ‖c‖ is clipped over
    every leaf together; :func:`~steplab.optim.modifiers.mars_rule` runs on it with
    :data:`~steplab.jax.transform.JAX_OPS`. jit-able; ``update`` needs ``params``
    (decoupled weight decay reads θ). Moments are kept in each leaf's dtype."""
    if not isinstance(optimizer, MARS):
        raise TypeError(f"mars needs a steplab.optim.MARS, got {optimizer!r}")

    def init(params: Any) -> MARSState:
        _check_float_leaves(params)
        zeros = jax.tree.map(jnp.zeros_like, params)
        return MARSState(jnp.zeros([], jnp.int32), zeros, zeros, zeros)

    def update(grads: Any, state: MARSState, params: Any = None) -> tuple[Any, MARSState]:
        if params is None:
            raise ValueError("mars needs params (its decoupled weight decay reads θ)")
        if not isinstance(state, MARSState):
            raise ValueError(f"mars: this state was not made by mars's init: {type(state)}")
        t = state.t + 1
        leaves, treedef = jax.tree.flatten(params)
        flat = [_concatenated(tree, treedef) for tree in (params, grads, *state[1:])]
        theta, *moments = mars_rule(JAX_OPS, JAX_REDUCTIONS, optimizer, t, *flat)
        split = [_split(x, leaves, treedef) for x in (theta, *moments)]
        updates = jax.tree.map(lambda new, p: (new - p).astype(p.dtype), split[0], params)
        return updates, MARSState(t, *split[1:])

    return optax.GradientTransformation(init, update)


def _check_float_leaves(params: Any) -> None:
    for leaf in jax.tree.leaves(params):
        if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
            raise TypeError(f"mars needs floating-point params, got a {leaf.dtype} leaf")


def _concatenated(tree: Any, treedef: Any) -> Any:
    """The leaves of ``tree`` (structured as ``treedef``) as one flat array."""
    leaves = treedef.flatten_up_to(tree)
    return jnp.concatenate([jnp.ravel(leaf) for leaf in leaves])


def _split(flat: Any, like: list[Any], treedef: Any) -> Any:
    """``flat`` cut back into leaves shaped (and typed) like ``like``."""
    parts, start = [], 0
    for leaf in like:
        parts.append(flat[start : start + leaf.size].reshape(leaf.shape).astype(leaf.dtype))
        start += leaf.size
    return jax.tree.unflatten(treedef, parts)


def prodigy(optimizer: Prodigy) -> optax.GradientTransformation:
    """``optax.contrib.prodigy`` with ``optimizer``'s settings: the same rule as the core's
    Prodigy with ``bias_correction=True`` (its global sums run over every leaf, as the
    core's over the concatenated θ). optax always corrects the bias, so the core's default
    (no correction, the authors') is refused."""
    if not isinstance(optimizer, Prodigy):
        raise TypeError(f"prodigy needs a steplab.optim.Prodigy, got {optimizer!r}")
    if not optimizer.bias_correction:
        raise ValueError(
            "prodigy on JAX is optax.contrib.prodigy, which corrects the bias: use "
            "Prodigy(bias_correction=True)"
        )
    from optax import contrib

    return contrib.prodigy(
        optimizer.lr, betas=(optimizer.rho1, optimizer.rho2), beta3=optimizer.rho3,
        eps=optimizer.eps, estim_lr0=optimizer.d0, estim_lr_coef=optimizer.d_coef,
        weight_decay=optimizer.weight_decay,
    )  # fmt: skip


__all__ = ["JAX_REDUCTIONS", "MARSState", "cautious", "mars", "prodigy"]
