"""A small MLP (two weight matrices, two biases) whose gradients feed back through the iterates:
the stream on which each per-tensor optimizer is compared step for step with its references.

Weights are stored as torch does, (out, in); the loss is a mean squared error of a tanh
network on fixed data, so every step's gradient depends on every earlier step.
"""

from __future__ import annotations

import numpy as np

SHAPES = {"W1": (8, 5), "b1": (8,), "W2": (3, 8), "b2": (3,)}
STEPS = 100

_rng = np.random.default_rng(7)
X = _rng.standard_normal((16, 5))
Y = _rng.standard_normal((16, 3))


def start() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {k: rng.standard_normal(s) * 0.5 for k, s in SHAPES.items()}


def loss(P, lib):
    """The loss with array library ``lib`` (torch or jax.numpy)."""
    H = lib.tanh(X_of(lib) @ P["W1"].T + P["b1"])
    out = H @ P["W2"].T + P["b2"]
    return ((out - Y_of(lib)) ** 2).mean()


def X_of(lib):
    return lib.asarray(X) if hasattr(lib, "asarray") else X


def Y_of(lib):
    return lib.asarray(Y) if hasattr(lib, "asarray") else Y


def numpy_grads(P: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """∇loss at P (float64, by torch's autograd: a fixed function of P)."""
    import torch

    T = {k: torch.tensor(v, requires_grad=True) for k, v in P.items()}
    value = loss(T, torch)
    value.backward()
    return {k: T[k].grad.numpy() for k in P}


def run_numpy(optimizers: dict[str, tuple], steps: int = STEPS) -> dict[str, np.ndarray]:
    """``steps`` NumPy steps: ``optimizers`` maps each name to an object with init/step."""
    P = start()
    states = {k: optimizers[k].init(P[k]) for k in P}
    for _ in range(steps):
        G = numpy_grads(P)
        for k in P:
            optimizers[k].step(P[k], G[k], states[k])
    return P


def run_torch(make_optimizers, steps: int = STEPS) -> dict[str, np.ndarray]:
    """``steps`` torch steps; ``make_optimizers(params: dict name -> Parameter)`` returns a list."""
    import torch

    params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in start().items()}
    optimizers = make_optimizers(params)
    for _ in range(steps):
        for o in optimizers:
            o.zero_grad()
        loss(params, torch).backward()
        for o in optimizers:
            o.step()
    return {k: v.detach().numpy().copy() for k, v in params.items()}


def run_optax(tx, steps: int = STEPS) -> dict[str, np.ndarray]:
    """``steps`` optax steps of ``tx`` (under x64)."""
    import jax
    import jax.numpy as jnp
    import optax

    P = {k: jnp.asarray(v) for k, v in start().items()}
    state = tx.init(P)

    @jax.jit
    def one(P, state):
        G = jax.grad(lambda P: loss(P, jnp))(P)
        updates, state = tx.update(G, state, P)
        return optax.apply_updates(P, updates), state

    for _ in range(steps):
        P, state = one(P, state)
    return {k: np.asarray(v) for k, v in P.items()}


def max_difference(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
