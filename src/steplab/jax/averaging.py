"""EMA and Lookahead around any optax transformation, equal to the NumPy core's
(:mod:`steplab.optim.averaging`)::

    tx = ema(optax.adam(1e-3), decay=0.999)
    updates, state = tx.update(grads, state, params)      # params is required
    params = optax.apply_updates(params, updates)
    evaluate(averaged(state))                             # the EMA of the iterates

Lookahead is ``optax.lookahead`` itself (the core equals it: tests/optim/test_averaging.py);
:func:`lookahead` re-exports it under the core's names.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from steplab.optim import averaging as core


class EMAState(NamedTuple):
    inner: Any  # the wrapped transformation's state
    ema: Any  # θ̄, a tree like params
    count: Any  # steps seen
    decay: Any
    debias: bool


def ema(inner: optax.GradientTransformation, decay: float = 0.999,
        debias: bool = True) -> optax.GradientTransformation:  # fmt: skip
    """``inner`` unchanged, plus θ̄ ← ρθ̄ + (1 − ρ)θ of the new parameters."""
    checked = core.EMA(base=_ANY, decay=decay, debias=debias)

    def init(params: Any) -> EMAState:
        dtype = jnp.result_type(float)
        return EMAState(inner.init(params), jax.tree.map(jnp.zeros_like, params),
                        jnp.zeros([], jnp.int32), jnp.asarray(checked.decay, dtype),
                        checked.debias)  # fmt: skip

    def update(grads: Any, state: EMAState, params: Any = None) -> tuple:
        if params is None:
            raise ValueError("ema needs params (the iterates it averages)")
        updates, inner_state = inner.update(grads, state.inner, params)
        new_params = optax.apply_updates(params, updates)
        rho = state.decay
        average = jax.tree.map(lambda e, p: (rho * e + (1 - rho) * p).astype(e.dtype),
                               state.ema, new_params)  # fmt: skip
        return updates, state._replace(inner=inner_state, ema=average, count=state.count + 1)

    return optax.GradientTransformation(init, update)


def averaged(state: EMAState) -> Any:
    """The EMA of the iterates (divided by 1 − ρᵗ with debias)."""
    if not isinstance(state, EMAState):
        raise TypeError(
            f"averaged needs the state of steplab.jax's ema, got {type(state).__name__}"
        )
    if not state.debias:
        return state.ema
    correction = 1 - state.decay ** jnp.maximum(state.count, 1)
    return jax.tree.map(lambda e: e / correction.astype(e.dtype), state.ema)


def lookahead(inner: optax.GradientTransformation, sync_period: int = 5,
              slow_step_size: float = 0.5) -> optax.GradientTransformation:  # fmt: skip
    """``optax.lookahead`` with the settings checked as the core checks them."""
    core.Lookahead(base=_ANY, sync_period=sync_period, slow_step_size=slow_step_size)
    return optax.lookahead(inner, int(sync_period), slow_step_size)


class _Any:
    name = "optax"

    def init(self, theta: Any) -> None:  # pragma: no cover - never called
        raise NotImplementedError

    step = init


_ANY = _Any()

__all__ = ["EMAState", "averaged", "ema", "lookahead"]
