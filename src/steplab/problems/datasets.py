"""Datasets for the ML problems: scikit-learn's bundled sets, MNIST-1D, synthetic, CSV.

Every loader returns a :class:`Dataset` with train/validation/test splits. Features are
standardized with the *training* mean and standard deviation (the validation and test sets
never leak into them); regression targets are standardized the same way unless asked not to.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steplab._extras import requires

SKLEARN = {
    "digits": ("load_digits", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
NAMES = (*SKLEARN, "mnist1d", "synthetic_linear")


@dataclass
class Dataset:
    """Train/validation/test arrays plus what a model needs to know about them."""

    name: str
    task: str  # "classification" or "regression"
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None = None
    feature_names: list[str] = field(default_factory=list)
    classes: list = field(default_factory=list)  # original labels, for classification
    theta_star: np.ndarray | None = None  # the true parameters, for synthetic data

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    def info(self) -> dict:
        """Sizes and task, JSON-friendly."""
        return {
            "name": self.name,
            "task": self.task,
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.y_test),
            "n_features": self.n_features,
            "n_classes": self.n_classes,
        }


def cache_dir() -> Path:
    """Where generated data is cached: ``$STEPLAB_CACHE``, else ``$XDG_CACHE_HOME/steplab``,
    else ``~/.cache/steplab``."""
    if os.environ.get("STEPLAB_CACHE"):
        return Path(os.environ["STEPLAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "steplab"


# --------------------------------------------------------------------------------------
# Splitting and standardizing
# --------------------------------------------------------------------------------------


def _check_fraction(name: str, value: float) -> float:
    if not (0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def _split(X, y, fraction, seed, stratify):
    """Split off ``fraction`` of the rows (stratified by label for classification)."""
    if fraction == 0:
        return X, y, X[:0], y[:0]
    with requires("data", "splitting a dataset"):
        from sklearn.model_selection import train_test_split

    try:
        X_a, X_b, y_a, y_b = train_test_split(
            X, y, test_size=fraction, random_state=seed, stratify=y if stratify else None
        )
    except ValueError:  # too few examples of a class to stratify: plain random split
        X_a, X_b, y_a, y_b = train_test_split(X, y, test_size=fraction, random_state=seed)
    return X_a, y_a, X_b, y_b


def make_dataset(
    name,
    X,
    y,
    task,
    *,
    X_test=None,
    y_test=None,
    val_fraction=0.1,
    test_fraction=0.2,
    seed=0,
    standardize=True,
    standardize_target=None,
    feature_names=None,
) -> Dataset:
    """Split ``(X, y)`` into train/val/test and standardize; the common back end of all loaders.

    With ``X_test``/``y_test`` given, that is the test set and only the validation set is
    split off. Classification labels are mapped to 0..C−1 (``Dataset.classes`` keeps them).
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    classes: list = []
    if task == "classification":
        all_labels = y if y_test is None else np.concatenate([y, np.asarray(y_test)])
        unique = np.unique(all_labels)
        classes = unique.tolist()
        y = np.searchsorted(unique, y)
        if y_test is not None:
            y_test = np.searchsorted(unique, np.asarray(y_test))
    else:
        y = y.astype(np.float64)
    stratify = task == "classification"
    if X_test is None:
        X, y, X_test, y_test = _split(X, y, test_fraction, seed, stratify)
    X_train, y_train, X_val, y_val = _split(X, y, val_fraction, seed + 1, stratify)
    X_test = np.asarray(X_test, dtype=np.float64)
    y_test = np.asarray(y_test, dtype=np.float64 if task == "regression" else np.int64)

    if standardize:
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # constant features stay constant (at 0)
        X_train, X_val, X_test = ((A - mean) / std for A in (X_train, X_val, X_test))
    if standardize_target is None:
        standardize_target = standardize and task == "regression"
    if standardize_target:
        mean, std = y_train.mean(), y_train.std() or 1.0
        y_train, y_val, y_test = ((v - mean) / std for v in (y_train, y_val, y_test))
    return Dataset(
        name=name,
        task=task,
        X_train=np.ascontiguousarray(X_train),
        y_train=y_train,
        X_val=np.ascontiguousarray(X_val),
        y_val=y_val,
        X_test=np.ascontiguousarray(X_test),
        y_test=y_test,
        n_classes=len(classes) if task == "classification" else None,
        feature_names=[str(f) for f in feature_names] if feature_names is not None else [],
        classes=classes,
    )


# --------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------


def load(name: str, **options) -> Dataset:
    """Load a dataset by name: digits, breast_cancer, iris, wine, diabetes, mnist1d,
    synthetic_linear. ``options`` go to :func:`make_dataset` (``val_fraction``,
    ``test_fraction``, ``seed``, ``standardize``) or to the generator."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    if name in SKLEARN:
        return load_sklearn(name, **options)
    if name == "mnist1d":
        return load_mnist1d(**options)
    if name == "synthetic_linear":
        return synthetic_linear(**options)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(NAMES)} (or a CSV via from_csv)")


def load_sklearn(name: str, **options) -> Dataset:
    """One of scikit-learn's bundled datasets (no download needed)."""
    with requires("data", f"the {name} dataset"):
        import sklearn.datasets

    loader, task = SKLEARN[name]
    bunch = getattr(sklearn.datasets, loader)()
    return make_dataset(
        name, bunch.data, bunch.target, task, feature_names=list(bunch.feature_names), **options
    )


def mnist1d_arrays(num_samples: int = 5000, seed: int = 42) -> dict[str, np.ndarray]:
    """MNIST-1D generated locally with ``mnist1d.data.make_dataset`` (never downloaded).

    The arrays are cached in :func:`cache_dir` (keyed by the generator's arguments), so
    only the first call pays the few seconds of generation.
    """
    with requires("data", "MNIST-1D"):
        from mnist1d.data import get_dataset_args
        from mnist1d.data import make_dataset as generate

    args = get_dataset_args(as_dict=True)
    args.update(num_samples=int(num_samples), seed=int(seed))
    args.pop("url", None)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                return {k: data[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file: regenerate it
    from mnist1d.utils import ObjectView

    # mnist1d seeds NumPy's global generator; put it back as we found it
    global_state = np.random.get_state()  # noqa: NPY002
    try:
        data = generate(ObjectView(args))
    finally:
        np.random.set_state(global_state)  # noqa: NPY002
    arrays = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(
            tmp, x=arrays["x"], y=arrays["y"], x_test=arrays["x_test"], y_test=arrays["y_test"]
        )
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # a read-only home is no reason to fail; we just regenerate next time
    return arrays


def load_mnist1d(*, num_samples: int = 5000, data_seed: int = 42, **options) -> Dataset:
    """MNIST-1D (Greydanus 2020): 40-sample 1-D signals of 10 digit classes.

    Its own train/test split (4000/1000 by default) is kept; ``val_fraction`` (default 0.1)
    of the training set is held out for validation.
    """
    options.pop("test_fraction", None)
    a = mnist1d_arrays(num_samples, data_seed)
    return make_dataset(
        "mnist1d",
        a["x"],
        a["y"],
        "classification",
        X_test=a["x_test"],
        y_test=a["y_test"],
        **options,
    )


def synthetic_linear(
    *,
    n: int = 500,
    p: int = 11,
    correlated: bool = False,
    rho: float = 0.99,
    noise: float = 1.0,
    data_seed: int = 0,
    standardize: bool = False,
    **options,
) -> Dataset:
    """The lecture's synthetic linear regression: ``y = Xθ* + ε`` with n = 500, p = 11.

    Features are Gaussian with covariance ``rho^|i−j|`` if ``correlated`` (ρ = 0.99 makes
    the problem badly conditioned) and independent otherwise; θ* has alternating signs and
    magnitudes falling linearly from 1 to 0.1, so coordinates matter differently; ε ~ N(0, noise²).
    Not standardized by default, so θ* stays the true parameter.
    """
    if n < 2 or p < 1:
        raise ValueError(f"need n >= 2 and p >= 1, got n={n!r}, p={p!r}")
    rng = np.random.default_rng(data_seed)
    index = np.arange(p)
    cov = rho ** np.abs(index[:, None] - index[None, :]) if correlated else np.eye(p)
    X = rng.multivariate_normal(np.zeros(p), cov, size=int(n))
    theta_star = np.where(index % 2 == 0, 1.0, -1.0) * np.linspace(1.0, 0.1, p)
    y = X @ theta_star + noise * rng.standard_normal(int(n))
    name = "synthetic_linear" + ("_correlated" if correlated else "")
    options.setdefault("standardize_target", False)
    data = make_dataset(name, X, y, "regression", standardize=standardize, **options)
    data.theta_star = theta_star  # the ground truth, for plots and tests
    return data


def from_csv(path, target: str, *, task: str = "auto", **options) -> Dataset:
    """A user's CSV file with a header row; ``target`` names the column to predict.

    All other columns must be numeric. ``task="auto"`` picks classification when the
    target is non-numeric or takes at most 20 distinct integer values, regression otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CSV file not found: {path}")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 3:
        raise ValueError(f"{path}: need a header row and at least 2 data rows")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise ValueError(f"{path}: no column {target!r}; columns are {', '.join(header)}")
    t = header.index(target)
    features, labels = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line_no}: {len(row)} fields, header has {len(header)}")
        values = []
        for j, cell in enumerate(row):
            if j == t:
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise ValueError(
                    f"{path}, line {line_no}, column {header[j]!r}: {cell!r} is not a number "
                    "(feature columns must be numeric)"
                ) from None
        features.append(values)
        labels.append(row[t].strip())
    X = np.array(features, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: feature columns contain NaN or inf")
    try:
        y = np.array([float(v) for v in labels])
        numeric = bool(np.all(np.isfinite(y)))
    except ValueError:
        y, numeric = np.array(labels), False
    if task == "auto":
        few_integers = numeric and np.all(y == np.round(y)) and len(np.unique(y)) <= 20
        task = "classification" if (not numeric or few_integers) else "regression"
    if task == "regression" and not numeric:
        raise ValueError(
            f"{path}: target column {target!r} is not numeric; use task='classification'"
        )
    names = [h for j, h in enumerate(header) if j != t]
    return make_dataset(path.stem, X, y, task, feature_names=names, **options)
