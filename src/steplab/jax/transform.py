"""A core optimizer's rule as an ``optax.GradientTransformation``.

The rule of ``steplab.optim`` is element-wise and written with arithmetic and an ``Ops``
table, so jax.numpy runs it as it is: :data:`JAX_OPS` supplies the table, the core's
``prepare_step`` computes the step values (1 − ρᵗ, …) and ``apply_rule`` runs the rule
(with its pieces: weight decay, and a fused chain's clipping, see
``steplab.optim.transforms.fuse``) — the same code as the NumPy step, traced by JAX.

The state is a pytree with the parameters' structure whose leaves are the core's typed
state (``AdamState(t, s, r, r_max)``, a NamedTuple): ``t`` is an int32 scalar per leaf, the
moments are arrays shaped like the leaf, switched-off moments are None. Moments are kept in
the parameter's dtype, except for bfloat16/float16 parameters, whose moments are float32
(the step is computed in float32 and the update is returned in float32, so
``optax.apply_updates`` rounds the new parameter once).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from steplab.optim import lookup
from steplab.optim.base import Optimizer, initial_value
from steplab.optim.ops import Ops, exact_pow

#: Parameter dtypes a transformation accepts (others raise TypeError naming these).
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_LOW_PRECISION = ("float16", "bfloat16")
_SCALAR = float  # per-step scalar state (Nadam's Πμ): float64 under x64, else float32


#: jax.numpy's functions for the rules (``pow``: the core's, C's ``pow`` on numbers as the
#: NumPy path, ``**`` — jax.numpy's power — on traced values).
JAX_OPS = Ops(
    sqrt=jnp.sqrt,
    maximum=jnp.maximum,
    sign=jnp.sign,
    abs=jnp.abs,
    where=jnp.where,
    pow=exact_pow,
)


def _is_traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _split_hyperparameters(
    cls: type[Optimizer], hyperparameters: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values the core validates now, traced values that only the step can see).

    A traced value is a hyperparameter inside ``jax.vmap``/``jax.jit`` (a vmap sweep);
    concrete JAX arrays become NumPy arrays and are validated like any other value."""
    fields = cls.hyperparameters()
    static, traced = {}, {}
    for name, value in hyperparameters.items():
        if name == "lr" and callable(value) and not isinstance(value, (np.ndarray, jax.Array)):
            static[name] = value  # a schedule (steplab's, checked by the core, or optax's)
        elif _is_traced(value):
            if name in fields and fields[name].metadata["interval"] == "bool":
                raise TypeError(
                    f"{cls.name}: {name} switches code on or off and must be a Python bool, "
                    "not a traced value (it cannot vary inside jit/vmap)"
                )
            traced[name] = value
        elif isinstance(value, jax.Array):
            static[name] = np.asarray(value)
        else:
            static[name] = value
    return static, traced


@dataclasses.dataclass(frozen=True)
class _Configured:
    """A core optimizer plus the hyperparameters that are traced (or an optax schedule)."""

    optimizer: Optimizer
    traced: dict[str, Any]
    lr_schedule: Callable[[Any], Any] | None  # an optax-style schedule of the update count

    def declared_for(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """The core's declared hyperparameters for a leaf of ``shape``, traced values
        substituted, in float64 like the core's (a traced switch such as ``weight_decay``
        counts as on)."""
        declared = dict(self.optimizer.declared_for(shape))
        declared.update({k: jnp.asarray(v, _SCALAR) for k, v in self.traced.items()})
        for name in self.optimizer.OFF_WHEN_ZERO:
            if name in self.traced:
                declared[f"{name}_on"] = True
        return declared


def _configure(cls: type[Optimizer], preset: str, hyperparameters: dict[str, Any]) -> _Configured:
    if "nonfinite" in hyperparameters or "impl" in hyperparameters:
        raise ValueError(
            f"steplab.jax.{cls.name} takes no nonfinite/impl option: a transformation always "
            "applies the step, like optax (wrap it in optax.apply_if_finite to skip non-finite "
            "updates)"
        )
    unknown = sorted(set(hyperparameters) - set(cls.hyperparameters()))
    if unknown:
        raise ValueError(
            f"steplab.jax.{cls.name} has no hyperparameter {', '.join(unknown)}; its "
            f"hyperparameters are: {', '.join(cls.hyperparameters())}"
        )
    static, traced = _split_hyperparameters(cls, hyperparameters)
    lr_schedule = None
    lr = static.get("lr")
    if callable(lr) and not hasattr(lr, "config"):  # an optax schedule, count = t − 1
        lr_schedule = static.pop("lr")
    optimizer = cls.like(preset, **static)  # ValueError naming the interval or the presets
    return _Configured(optimizer=optimizer, traced=traced, lr_schedule=lr_schedule)


def _work_dtype(dtype: Any) -> Any:
    return jnp.float32 if jnp.dtype(dtype).name in _LOW_PRECISION else jnp.dtype(dtype)


def _check_leaf(name: str, what: str, leaf: Any) -> None:
    if isinstance(leaf, jax.Array) or isinstance(leaf, np.ndarray) or _is_traced(leaf):
        dtype = jnp.dtype(leaf.dtype)
        if dtype.name not in FLOAT_DTYPES:
            raise TypeError(
                f"steplab.jax.{name}: {what} has dtype {dtype.name}; parameters and gradients "
                f"must be floating point: {', '.join(FLOAT_DTYPES)}"
            )
        return
    kind = type(leaf).__module__ + "." + type(leaf).__name__
    if "sparse" in kind.lower():
        raise TypeError(
            f"steplab.jax.{name}: {what} is a sparse array ({type(leaf).__name__}); only dense "
            "arrays are supported (densify it with .todense())"
        )
    raise TypeError(
        f"steplab.jax.{name}: {what} must be a JAX or NumPy array, got {type(leaf).__name__}"
    )


def transformation(
    cls: type[Optimizer], preset: str = "seed", **hyperparameters: Any
) -> optax.GradientTransformation:
    """``cls`` (a steplab.optim class) as an optax transformation; see :func:`make`."""
    config = _configure(cls, preset, hyperparameters)
    optimizer = config.optimizer
    name = optimizer.name
    if optimizer.KIND != "elementwise":
        raise ValueError(
            f"steplab.jax.{name}: its rule is {optimizer.KIND}; JAX runs element-wise rules"
        )

    def init_leaf(theta: Any) -> Any:
        _check_leaf(name, "a parameter", theta)
        work = _work_dtype(theta.dtype)
        declared = SimpleNamespace(**config.declared_for(theta.shape))
        moments = {
            m: jnp.asarray(
                jnp.broadcast_to(initial_value(optimizer, m, declared, theta), theta.shape),
                dtype=work,
            )  # a constant, or θ₀
            for m in optimizer.kept_moments(declared)
        }
        scalars = {k: jnp.asarray(v, dtype=_SCALAR) for k, v in optimizer.SCALAR_STATE.items()}
        fields: dict[str, Any] = dict.fromkeys(_state_fields(optimizer))
        fields.update(t=jnp.zeros((), jnp.int32), **scalars, **moments)
        return optimizer.state_type(**fields)

    def update_leaf(g: Any, state: Any, theta: Any, grad_norm: Any = None) -> tuple[Any, Any]:
        _check_leaf(name, "a gradient", g)
        if g.shape != theta.shape:
            raise ValueError(
                f"steplab.jax.{name}: a gradient has shape {g.shape} but its parameter "
                f"{theta.shape}"
            )
        work = _work_dtype(theta.dtype)
        x, g = jnp.asarray(theta, work), jnp.asarray(g, work)
        t = state.t + 1
        declared = config.declared_for(theta.shape)
        if config.lr_schedule is not None:  # optax counts the updates done: t − 1
            declared["lr"] = jnp.asarray(config.lr_schedule(state.t), _SCALAR)
        elif callable(declared.get("lr")):  # a steplab schedule of t: evaluated on the host
            declared["lr"] = _host_schedule(declared["lr"], t, jnp.result_type(_SCALAR))
        hp, scalars = optimizer.prepare_step(declared, t, state, JAX_OPS, grad_norm=grad_norm)
        hp = _in_work_dtype(hp, work)
        new_theta, moments = optimizer.apply_rule(JAX_OPS, hp, x, g, state)
        fields = {f: getattr(state, f) for f in _state_fields(optimizer)}
        fields.update(t=t, **{k: jnp.asarray(v, _SCALAR) for k, v in scalars.items()})
        for m, value in moments.items():
            if value is not None:
                fields[m] = value.astype(work)
        return new_theta - x, optimizer.state_type(**fields)

    def init_fn(params: Any) -> Any:
        return jax.tree.map(init_leaf, params)

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError(
                f"steplab.jax.{name} needs the parameters: tx.update(grads, state, params) "
                "(a rule may read θ, e.g. for weight decay)"
            )
        for leaf in jax.tree.leaves(updates, is_leaf=_is_sparse):
            if _is_sparse(leaf):
                raise TypeError(
                    f"steplab.jax.{name}: a gradient is a sparse array "
                    f"({type(leaf).__name__}); only dense arrays are supported (densify it "
                    "with .todense())"
                )
        # a chain that clips by global norm (steplab.optim.transforms.fuse): ‖ĝ‖ over every
        # leaf, one reduction, as optax.clip_by_global_norm takes it
        norm = None
        if optimizer.NEEDS_GRAD_NORM:
            norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(updates)))
        pairs = jax.tree.map(lambda g, s, p: update_leaf(g, s, p, norm), updates, state, params)
        # pairs has the parameters' structure with an (update, state) pair at each leaf
        new_updates = jax.tree.map(lambda _, pair: pair[0], params, pairs)
        new_state = jax.tree.map(lambda _, pair: pair[1], params, pairs)
        return new_updates, new_state

    return optax.GradientTransformation(init_fn, update_fn)


def _in_work_dtype(hp: Any, work: Any) -> Any:
    """The step values with their JAX arrays rounded to the parameters' working dtype.

    The per-step scalars (1 − αλ, 1 − ρᵗ, …) are computed in float64 whatever dtype a
    schedule or a traced value has (under ``jax_enable_x64``; else JAX has float32 only),
    as the NumPy core computes them, and rounded once to the dtype the rule computes in:
    a no-op for float64 parameters, float32 for the others (the NumPy core's float32
    step does the same)."""
    return type(hp)(*(
        v.astype(work)
        if isinstance(v, jax.Array) and jnp.issubdtype(v.dtype, jnp.floating) and v.dtype != work
        else v
        for v in hp
    ))  # fmt: skip


def _state_fields(optimizer: Optimizer) -> tuple[str, ...]:
    return tuple(optimizer.state_type._fields)  # a NamedTuple


def _is_sparse(leaf: Any) -> bool:
    # jax.experimental.sparse is loaded if the user made a sparse array
    sparse = sys.modules.get("jax.experimental.sparse")
    return sparse is not None and isinstance(leaf, sparse.JAXSparse)


def _host_schedule(schedule: Callable[[int], float], t: Any, dtype: Any) -> Any:
    """A steplab schedule (plain Python, of t = 1, 2, …) evaluated on the host inside a
    traced step."""

    def value(step: Any) -> np.ndarray:
        return np.asarray(schedule(int(step)), dtype=dtype)

    shape = jax.ShapeDtypeStruct((), dtype)
    return jax.pure_callback(value, shape, t, vmap_method="broadcast_all")


def make(name: str, preset: str = "seed", **hyperparameters: Any) -> optax.GradientTransformation:
    """A steplab optimizer by name as an optax transformation, e.g.
    ``make("adam", lr=1e-3)`` (the seed's Adam) or ``make("rmsprop", preset="optax")``; a
    per-tensor one (``"muon"``, …) comes from :mod:`steplab.jax.matrix`."""
    cls = lookup(name)
    if cls.KIND == "per_tensor":
        from steplab.jax import matrix

        return matrix.make(name, preset, **hyperparameters)
    return transformation(cls, preset, **hyperparameters)
