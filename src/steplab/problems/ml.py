"""Machine-learning problems: empirical risk of a model over a dataset, in plain NumPy.

``L(θ) = (1/n) Σ_i loss(y_i, f(x_i | θ)) + ½·l2·‖W‖²`` (weights only, not biases).
A minibatch of m indices gives the seed's gradient estimate ``ĝ = (1/m) ∇_θ Σ_{i∈batch} …``.

All four models are one network: linear regression, logistic regression and softmax
regression are networks without hidden layers and with a squared-error, binary
cross-entropy or softmax cross-entropy head; the MLP adds hidden layers (ReLU or tanh),
optionally with residual connections ``A_i = A_{i−1} + act(Z_i)`` between hidden layers
of equal width (MNIST-1D's ``MLPBase``). One forward/backward pass, checked against
finite differences, serves them all.

Parameters are one flat vector per run: for each layer its weight matrix ``W`` (in × out,
row-major) then its bias ``b``. Every operation is batched over the leading K axis, with
numpy's ``matmul`` looping over rows, so row k never depends on the other rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from steplab.problems import datasets as ds
from steplab.problems.base import Problem, as_rows, from_rows

HEADS = ("mse", "binary", "softmax")
ACTIVATIONS = ("relu", "tanh")
INITS = ("auto", "torch")  # He/Glorot normal weights and zero biases, or torch.nn.Linear's


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic function


# kw_only: the fields below are required, yet follow Problem's defaulted ones
@dataclass(kw_only=True)
class Network(Problem):
    """Empirical risk of a fully connected network on ``dataset`` (see the module docstring)."""

    dataset: ds.Dataset = field(repr=False)
    layers: tuple[int, ...] = ()  # widths, input first, output last
    head: str = "softmax"
    activation: str = "relu"
    l2: float = 0.0
    init_seed: int = 0
    residual: bool = False  # hidden layers after the first add their input (equal widths)
    init: str = "auto"

    # -- parameters ----------------------------------------------------------------

    def _shapes(self):
        return [(a, b) for a, b in zip(self.layers[:-1], self.layers[1:], strict=True)]

    def unpack(self, theta: np.ndarray):
        """Views ``[(W (K, in, out), b (K, out)), ...]`` into parameter rows ``(K, d)``."""
        out, start = [], 0
        for a, b in self._shapes():
            W = theta[:, start : start + a * b].reshape(-1, a, b)
            start += a * b
            out.append((W, theta[:, start : start + b]))
            start += b
        return out

    def layout(self):
        """The shapes of the weights and biases inside θ, in θ's order: ``W1`` (in, out),
        ``b1`` (out,), …; the last weight has the role ``"output"`` (see
        :mod:`steplab.optim.matrix.layout`)."""
        from steplab.optim.matrix.layout import ParameterLayout

        shapes = self._shapes()
        entries = []
        for i, (a, b) in enumerate(shapes, start=1):
            entries.append((f"W{i}", (a, b), "output" if i == len(shapes) else "hidden"))
            entries.append((f"b{i}", (b,), "bias"))
        return ParameterLayout.of(entries)

    def initial_point(self, seed: int | None = None) -> np.ndarray:
        """The start drawn with ``seed`` (default ``init_seed``).

        ``init="auto"``: zeros for models without hidden layers; else He (ReLU) or Glorot
        (tanh) normal weights and zero biases. ``init="torch"``: what ``torch.nn.Linear``
        draws by default, weights and biases ~ U(−1/√fan_in, 1/√fan_in) (drawn by NumPy,
        so the same distribution as PyTorch's, not the same numbers).
        """
        theta = np.zeros((1, self.dim))
        rng = np.random.default_rng(self.init_seed if seed is None else seed)
        if self.init == "torch":
            for W, b in self.unpack(theta):
                bound = 1.0 / np.sqrt(W.shape[1])
                W[...] = rng.uniform(-bound, bound, size=W.shape)
                b[...] = rng.uniform(-bound, bound, size=b.shape)
        elif len(self.layers) > 2:
            for W, _ in self.unpack(theta):
                fan_in, fan_out = W.shape[1:]
                var = 2.0 / fan_in if self.activation == "relu" else 2.0 / (fan_in + fan_out)
                W[...] = rng.normal(0.0, np.sqrt(var), size=W.shape)
        return theta[0]

    def _skips(self, i: int) -> bool:
        """Whether layer ``i`` adds its input to its activation (a residual hidden layer)."""
        return self.residual and 0 < i < len(self.layers) - 2

    # -- forward and backward ------------------------------------------------------

    def _act(self, Z):
        return np.maximum(Z, 0.0) if self.activation == "relu" else np.tanh(Z)

    def _act_grad(self, Z, A):
        return (Z > 0).astype(Z.dtype) if self.activation == "relu" else 1.0 - A**2

    def outputs(self, theta, X):
        """Network outputs ``(K, m, out)`` for inputs ``X`` of shape ``(K or 1, m, in)``."""
        A = X
        params = self.unpack(theta)
        for i, (W, b) in enumerate(params):
            Z = np.matmul(A, W) + b[:, None, :]
            if i == len(params) - 1:
                return Z
            A = A + self._act(Z) if self._skips(i) else self._act(Z)
        return A

    def _head(self, O, y):
        """Per-row mean loss and its gradient with respect to the outputs ``O``."""
        m = O.shape[1]
        if self.head == "mse":
            r = O[..., 0] - y
            return np.mean(r**2, axis=1), (2.0 / m) * r[..., None]
        if self.head == "binary":
            z = O[..., 0]
            loss = np.mean(np.logaddexp(0.0, z) - y * z, axis=1)
            return loss, ((_sigmoid(z) - y) / m)[..., None]
        shifted = O - O.max(axis=2, keepdims=True)  # softmax cross-entropy, stably
        log_z = np.log(np.sum(np.exp(shifted), axis=2, keepdims=True))
        log_p = shifted - log_z
        yi = y.astype(np.intp)[..., None]
        loss = -np.mean(np.take_along_axis(log_p, yi, axis=2)[..., 0], axis=1)
        dO = np.exp(log_p)
        np.put_along_axis(dO, yi, np.take_along_axis(dO, yi, axis=2) - 1.0, axis=2)
        return loss, dO / m

    def _loss_and_grad(self, theta, X, y):
        """Loss ``(K,)`` and gradient ``(K, d)`` on inputs ``X (K|1, m, in)``, targets ``y``."""
        params = self.unpack(theta)
        activations, pre, acts = [X], [], []  # layer inputs, pre-activations, act(Z)
        for i, (W, b) in enumerate(params):
            Z = np.matmul(activations[-1], W) + b[:, None, :]
            pre.append(Z)
            if i == len(params) - 1:
                activations.append(Z)
                break
            acts.append(self._act(Z))
            activations.append(activations[-1] + acts[-1] if self._skips(i) else acts[-1])
        loss, delta = self._head(activations[-1], y)  # delta = ∂L/∂Z of the current layer
        grad = np.zeros_like(theta)
        grads = self.unpack(grad)
        skip = None  # ∂L/∂(output of a residual layer), passed straight on to its input
        for i in reversed(range(len(params))):  # backpropagation, layer by layer
            W = params[i][0]
            gW, gb = grads[i]
            A_in = np.broadcast_to(activations[i], (theta.shape[0], *activations[i].shape[1:]))
            gW[...] = np.matmul(np.swapaxes(A_in, 1, 2), delta)
            gb[...] = delta.sum(axis=1)
            if i > 0:
                # ∂L/∂(input of layer i); Wᵀ copied: numpy's matmul takes a slow non-BLAS
                # path for the transposed view into θ (about 5× slower for 100×100)
                d_out = np.matmul(delta, np.ascontiguousarray(np.swapaxes(W, 1, 2)))
                if skip is not None:
                    d_out = d_out + skip
                skip = d_out if self._skips(i - 1) else None
                delta = d_out * self._act_grad(pre[i - 1], acts[i - 1])
        if self.l2 > 0:
            for (W, _), (gW, _) in zip(params, grads, strict=True):
                loss = loss + 0.5 * self.l2 * np.sum(W**2, axis=(1, 2))
                gW += self.l2 * W
        return loss, grad

    def _value_and_grad_rows(self, X, batch, rngs):
        data = self.dataset
        if batch is None:  # the full training set, one row at a time to bound memory
            pairs = [
                self._loss_and_grad(
                    X[k : k + 1], data.X_train[None].astype(X.dtype), data.y_train[None]
                )
                for k in range(X.shape[0])
            ]
            return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
        return self._loss_and_grad(X, data.X_train[batch].astype(X.dtype), data.y_train[batch])

    # -- evaluation ----------------------------------------------------------------

    def metrics(self, x, split: str = "val") -> dict:
        """Loss (with the L2 term) and accuracy (classification) or R² (regression) on a split."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        X_all = getattr(self.dataset, f"X_{split}")
        y_all = getattr(self.dataset, f"y_{split}")
        rows, single = as_rows(x)
        if len(y_all) == 0:
            nan = np.full(rows.shape[0], np.nan)
            return {"loss": from_rows(nan, single), self._score_name(): from_rows(nan, single)}
        losses, scores = [], []
        with np.errstate(all="ignore"):
            for k in range(rows.shape[0]):
                theta = rows[k : k + 1]
                loss, _ = self._loss_and_grad(theta, X_all[None].astype(theta.dtype), y_all[None])
                O = self.outputs(theta, X_all[None].astype(theta.dtype))[0]
                losses.append(loss[0])
                scores.append(self._score(O, y_all))
        return {
            "loss": from_rows(np.array(losses), single),
            self._score_name(): from_rows(np.array(scores), single),
        }

    def _score_name(self) -> str:
        return "r2" if self.head == "mse" else "accuracy"

    def _score(self, O, y) -> float:
        if self.head == "mse":
            residual = np.sum((O[:, 0] - y) ** 2)
            return float(1.0 - residual / max(np.sum((y - y.mean()) ** 2), 1e-300))
        if self.head == "binary":
            return float(np.mean((O[:, 0] > 0) == (y > 0.5)))
        return float(np.mean(np.argmax(O, axis=1) == y))

    def evaluate(self, x) -> dict:
        """``train_loss``, ``val_loss``, ``val_accuracy`` (or ``val_r2``), ``test_…``."""
        out = {}
        for split in ("train", "val", "test"):
            for key, value in self.metrics(x, split).items():
                out[f"{split}_{key}"] = value
        out["loss"] = out["train_loss"]
        return out

    def info(self) -> dict:
        info = super().info()
        info.update(
            dataset=self.dataset.info(),
            layers=list(self.layers),
            head=self.head,
            activation=self.activation,
            l2=self.l2,
            residual=self.residual,
            init=self.init,
        )
        return info


# --------------------------------------------------------------------------------------
# Constructors
# --------------------------------------------------------------------------------------


def _dataset(data, **options) -> ds.Dataset:
    if isinstance(data, ds.Dataset):
        if options:
            raise ValueError(f"options {sorted(options)} only apply to a dataset given by name")
        return data
    return ds.load(data, **options)


def _check_l2(l2) -> float:
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    return float(l2)


def _network(
    name, data, hidden, head, activation, l2, init_seed, description, residual=False, init="auto"
) -> Network:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    hidden = tuple(hidden)
    if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
        raise ValueError(f"hidden must be a sequence of positive integers, got {hidden!r}")
    if residual and len(set(hidden)) > 1:
        raise ValueError(f"residual=True needs hidden layers of equal width, got {hidden!r}")
    out = data.n_classes if head == "softmax" else 1
    layers = (data.n_features, *map(int, hidden), out)
    dim = sum(a * b + b for a, b in zip(layers[:-1], layers[1:], strict=True))
    net = Network(
        name=f"{name}:{data.name}",
        dim=dim,
        x0=np.zeros(dim),
        description=description,
        n_train=len(data.y_train),
        dataset=data,
        layers=layers,
        head=head,
        activation=activation,
        l2=_check_l2(l2),
        init_seed=init_seed,
        residual=bool(residual),
        init=init,
    )
    net.x0 = net.initial_point()
    return net


def linear_regression(data="synthetic_linear", *, l2: float = 0.0, **options) -> Network:
    """Least squares ``mean (xᵀw + b − y)²`` on a regression dataset (name or :class:`Dataset`)."""
    data = _dataset(data, **options)
    if data.task != "regression":
        raise ValueError(
            f"linear_regression needs a regression dataset; {data.name} is {data.task}"
        )
    return _network(
        "linear_regression",
        data,
        (),
        "mse",
        "relu",
        l2,
        0,
        f"linear regression (mean squared error) on {data.name}",
    )


def logistic_regression(data="breast_cancer", *, l2: float = 0.0, **options) -> Network:
    """Binary logistic regression (mean cross-entropy) on a two-class dataset."""
    data = _dataset(data, **options)
    if data.task != "classification" or data.n_classes != 2:
        raise ValueError(
            f"logistic_regression needs a two-class dataset; {data.name} has "
            f"{data.n_classes or 'no'} classes (use softmax_regression)"
        )
    return _network(
        "logistic_regression",
        data,
        (),
        "binary",
        "relu",
        l2,
        0,
        f"logistic regression on {data.name}",
    )


def softmax_regression(data="digits", *, l2: float = 0.0, **options) -> Network:
    """Multinomial logistic (softmax) regression on a classification dataset."""
    data = _dataset(data, **options)
    if data.task != "classification":
        raise ValueError(
            f"softmax_regression needs a classification dataset; {data.name} is regression"
        )
    return _network(
        "softmax_regression",
        data,
        (),
        "softmax",
        "relu",
        l2,
        0,
        f"softmax regression on {data.name} ({data.n_classes} classes)",
    )


def mlp(
    data="digits",
    *,
    hidden=(100,),
    activation: str = "relu",
    l2: float = 0.0,
    init_seed: int = 0,
    residual: bool = False,
    init: str = "auto",
    **options,
) -> Network:
    """A multilayer perceptron: softmax head for classification, squared error for regression.

    ``hidden``: widths of the hidden layers; ``activation``: ``"relu"`` or ``"tanh"``. Each
    run's seed draws its own initial weights (``initial_point(seed)``). ``residual=True``
    adds each hidden layer's input to its activation after the first (widths must be
    equal); ``init="torch"`` draws the start as ``torch.nn.Linear`` does. MNIST-1D's
    ``MLPBase`` is ``mlp(data, hidden=(100, 100), residual=True, init="torch")``.
    """
    data = _dataset(data, **options)
    head = "softmax" if data.task == "classification" else "mse"
    kind = "residual MLP" if residual else "MLP"
    return _network(
        "mlp",
        data,
        hidden,
        head,
        activation,
        l2,
        init_seed,
        f"{kind} {list(hidden)} ({activation}) on {data.name}",
        residual,
        init,
    )
