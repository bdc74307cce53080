"""Whole-array rules on the JAX path: the cautious mask (:class:`steplab.optim.Cautious`)
and Prodigy (:class:`steplab.optim.Prodigy`, where ``optax.contrib.prodigy`` is the same
rule). The cautious mask::

    tx = cautious(Cautious(base=AdamW(lr=1e-3, weight_decay=0.1)))   # or cautious(AdamW(...))
    updates, state = tx.update(grads, state, params)                  # params is required

The base's rule runs through :func:`steplab.jax.transformation`; its step Δθ is masked
where −Δθ and ĝ disagree in sign, the rest scaled by n/(Σmask + 1), n and Σmask over every
leaf (θ is the parameters concatenated, as in the NumPy core). Decoupled weight decay is
applied first and not masked. jit-able; ``lr`` must be a number.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from steplab.jax.transforms import from_optimizer
from steplab.optim.base import Optimizer
from steplab.optim.modifiers import Cautious, Prodigy


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


__all__ = ["cautious", "prodigy"]
