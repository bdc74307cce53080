"""Schedule-Free SGD and AdamW as optax transformations, with ``eval_params``.

The update is the NumPy core's rule (:mod:`steplab.optim.schedule_free`), run with
jax.numpy on every leaf. The parameters the training loop holds are y, the point the
gradients are taken at; evaluate at x = :func:`eval_params`::

    tx = schedule_free_adamw(lr=2.5e-3)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)   # params is required (it is y)
    params = optax.apply_updates(params, updates)
    loss_at_x = loss(eval_params(params, state))

jit-able; hyperparameters are concrete numbers, validated by the core.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from steplab.jax import JAX_OPS
from steplab.optim import schedule_free as core_sf


class ScheduleFreeState(NamedTuple):
    """t, the averaging weights' sum and the largest step size so far, β (for
    :func:`eval_params`), and the rule's moments: z (and r for AdamW), trees like params."""

    t: Any
    weight_sum: Any
    lr_max: Any
    rho: Any
    moments: dict[str, Any]


def transformation(core: core_sf.ScheduleFreeBase) -> optax.GradientTransformation:
    """The optax transformation of a Schedule-Free core optimizer (validated already)."""
    core.hyper_at(1, SimpleNamespace(**core.SCALAR_STATE))  # a bad lr raises here, now
    names = core.moment_names()

    def init(params: Any) -> ScheduleFreeState:
        moments = {"z": jax.tree.map(lambda p: jnp.array(p, copy=True), params)}
        for name in names[1:]:
            moments[name] = jax.tree.map(jnp.zeros_like, params)
        dtype = jnp.result_type(float)  # float64 under jax_enable_x64, else float32
        return ScheduleFreeState(
            t=jnp.zeros([], jnp.int32),
            weight_sum=jnp.zeros([], dtype),
            lr_max=jnp.zeros([], dtype),
            rho=jnp.asarray(core.momentum(), dtype),
            moments=moments,
        )

    def update(grads: Any, state: ScheduleFreeState, params: Any = None) -> tuple:
        if params is None:
            raise ValueError(f"{core.name}: update needs params (the point y) as well")
        t = state.t + 1
        before = SimpleNamespace(weight_sum=state.weight_sum, lr_max=state.lr_max)
        hp = core.hyper_at(t, before, JAX_OPS)  # the protocol's step values

        def leaf(y: Any, g: Any, *moments: Any) -> tuple:
            cast = type(hp)(*(v if isinstance(v, bool) else jnp.asarray(v, y.dtype)
                              for v in hp))  # fmt: skip
            held = SimpleNamespace(**dict(zip(names, moments, strict=True)))
            y_new, new = core.apply_rule(JAX_OPS, cast, y, g, held)  # decay + rule
            return (y_new - y, *(new[n] for n in names))

        flat, tree = jax.tree.flatten(params)
        columns = [jax.tree.leaves(grads)] + [jax.tree.leaves(state.moments[n]) for n in names]
        results = [leaf(y, *rest) for y, *rest in zip(flat, *columns, strict=True)]
        updates = jax.tree.unflatten(tree, [r[0] for r in results])
        moments = {
            n: jax.tree.unflatten(tree, [r[i + 1] for r in results]) for i, n in enumerate(names)
        }
        new_state = ScheduleFreeState(
            t=t,
            weight_sum=jnp.asarray(hp.weight_sum, state.weight_sum.dtype),
            lr_max=jnp.asarray(hp.lr_max, state.lr_max.dtype),
            rho=state.rho,
            moments=moments,
        )
        return updates, new_state

    return optax.GradientTransformation(init, update)


def schedule_free_sgd(**hyperparameters: Any) -> optax.GradientTransformation:
    """Schedule-Free SGD (names and intervals of :class:`steplab.optim.ScheduleFreeSGD`)."""
    return transformation(core_sf.ScheduleFreeSGD(**hyperparameters))


def schedule_free_adamw(**hyperparameters: Any) -> optax.GradientTransformation:
    """Schedule-Free AdamW (names and intervals of :class:`steplab.optim.ScheduleFreeAdamW`)."""
    return transformation(core_sf.ScheduleFreeAdamW(**hyperparameters))


def eval_params(params: Any, state: ScheduleFreeState) -> Any:
    """x, the averaged point to evaluate at, from params (= y) and the state."""
    if not isinstance(state, ScheduleFreeState):
        raise TypeError(
            "eval_params needs the state of steplab.jax's schedule_free_sgd/_adamw, "
            f"got {type(state).__name__}"
        )
    return jax.tree.map(lambda y, z: y + (1 - 1 / state.rho.astype(y.dtype)) * (z - y),
                        params, state.moments["z"])  # fmt: skip


__all__ = [
    "ScheduleFreeState",
    "eval_params",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "transformation",
]
