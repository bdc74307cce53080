"""Train a small MLP in plain JAX with steplab's seed Adam, as an optax transformation.

The data are scikit-learn's bundled 8×8 handwritten digits (1797 images, nothing is
downloaded), split 1297 train / 500 test. The network is written with ``jax.numpy`` alone
(no neural-network library): 64 → 64 (tanh) → 10, softmax cross-entropy. The optimizer is
``steplab.jax.make("adam")``: the lecture's Adam (β = 1e-8 inside the root), built from the
same rule as ``steplab.optim.Adam``, used like any optax optimizer (``init``/``update`` and
``optax.apply_updates``) inside one ``jax.jit``-compiled training step.

    python examples/digits_jax.py                  # 2000 steps, about ten seconds on a CPU
    python examples/digits_jax.py --steps 300 --optimizer optax   # optax.adam, for comparison
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import steplab.jax as sj

Params = dict[str, jax.Array]


def load_data(test_size: int = 500, seed: int = 0) -> dict[str, jax.Array]:
    """The digits, pixels scaled to [0, 1], shuffled once with ``seed``."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    return {
        "x": jnp.asarray(x[test_size:], jnp.float32),
        "y": jnp.asarray(y[test_size:]),
        "x_test": jnp.asarray(x[:test_size], jnp.float32),
        "y_test": jnp.asarray(y[:test_size]),
    }


def init_params(key: jax.Array, hidden: int = 64) -> Params:
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, hidden)) / jnp.sqrt(64.0),
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k2, (hidden, 10)) / jnp.sqrt(hidden),
        "b2": jnp.zeros(10),
    }


def logits(params: Params, x: jax.Array) -> jax.Array:
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def loss(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def accuracy(params: Params, x: jax.Array, y: jax.Array) -> float:
    return float((logits(params, x).argmax(-1) == y).mean())


def train(
    optimizer: optax.GradientTransformation,
    data: dict[str, jax.Array],
    steps: int = 2000,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Minibatch training; returns the final parameters, accuracies and loss curve."""
    params = init_params(jax.random.PRNGKey(seed))
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    rng = np.random.default_rng(seed)
    n = data["x"].shape[0]
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        batch = rng.integers(0, n, size=batch_size)
        params, state, value = step(params, state, data["x"][batch], data["y"][batch])
        losses.append(float(value))
    return {
        "params": params,
        "losses": losses,
        "train_accuracy": accuracy(params, data["x"], data["y"]),
        "test_accuracy": accuracy(params, data["x_test"], data["y_test"]),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", choices=["steplab", "optax"], default="steplab")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.lr <= 0:
        parser.error("--steps must be >= 1 and --lr > 0")
    if args.optimizer == "steplab":
        optimizer = sj.make("adam", lr=args.lr)  # the lecture's Adam: eps_root = 1e-8
    else:
        optimizer = optax.adam(args.lr)
    result = train(optimizer, load_data(), steps=args.steps, seed=args.seed)
    print(
        f"{args.optimizer} Adam, {args.steps} steps: loss {result['losses'][-1]:.4f}, "
        f"train accuracy {result['train_accuracy']:.1%}, "
        f"test accuracy {result['test_accuracy']:.1%} ({result['seconds']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
