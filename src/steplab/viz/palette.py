"""One color, one label and one line style per optimizer, the same in every figure.

A learner who has seen Adam in red on the saddle should find it in red on the quadratic,
in the step-size plot and in the sweep. Every figure asks this module, never picks its own.
Colors come from the Okabe–Ito / Tableau families, readable by color-blind viewers and
in print.
"""

from __future__ import annotations

import itertools

#: Base color of each optimizer family, by ``sl.OPTIMIZERS`` name. The seven of the
#: lecture's saddle race take the eight Okabe–Ito colors (distinct for the common forms of
#: color blindness; yellow left out, unreadable on white); the friends get darker tones.
COLORS: dict[str, str] = {
    "sgd": "#000000",  # plain gradient descent: black, the baseline
    "momentum": "#0072B2",  # blue
    "nesterov": "#CC79A7",  # reddish purple: not a second blue, or it reads as Momentum
    "adagrad": "#009E73",  # bluish green
    "rmsprop": "#E69F00",  # orange
    "adadelta": "#56B4E9",  # sky blue
    "adam": "#D55E00",  # vermillion: the lecture's destination
    "adamw": "#8c564b",  # brown
    "adamax": "#7b4173",  # plum
    "nadam": "#8c6d31",  # olive brown
    "radam": "#7f0000",  # dark red
    "lion": "#393b79",  # navy
    "adopt": "#17becf",  # cyan
    "ademamix": "#bcbd22",  # olive
    "schedule_free_sgd": "#6b6ecf",  # periwinkle
    "schedule_free_adamw": "#e377c2",  # pink
}

#: A marker shape and a dash pattern per family, so that two families stay apart where
#: their lines overlap or their colors are hard to tell (gray print, color blindness).
MARKERS: dict[str, str] = {
    "sgd": "o",
    "momentum": "s",
    "nesterov": "D",
    "adagrad": "^",
    "rmsprop": "v",
    "adadelta": "P",
    "adam": "X",
    "adamw": "p",
    "adamax": "h",
    "nadam": "<",
    "radam": ">",
    "lion": "*",
    "adopt": "d",
    "ademamix": "H",
    "schedule_free_sgd": "8",
    "schedule_free_adamw": "x",
}

#: How the lecture spells each name.
LABELS: dict[str, str] = {
    "sgd": "SGD",
    "momentum": "Momentum",
    "nesterov": "Nesterov",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSProp",
    "adadelta": "AdaDelta",
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "nadam": "Nadam",
    "radam": "RAdam",
    "lion": "Lion",
    "adopt": "ADOPT",
    "ademamix": "AdEMAMix",
    "schedule_free_sgd": "Schedule-Free SGD",
    "schedule_free_adamw": "Schedule-Free AdamW",
}

FALLBACK_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
LINESTYLES = ("-", "--", ":", "-.")


def base_name(label: str) -> str:
    """The optimizer family in a run label: ``"adam@torch:lr=0.1"`` → ``"adam"``."""
    return label.split(":", 1)[0].split("@", 1)[0].strip().lower()


def color(label: str) -> str:
    """The color of the optimizer named in ``label`` (unknown names get a stable fallback)."""
    name = base_name(label)
    if name in COLORS:
        return COLORS[name]
    return FALLBACK_COLORS[sum(map(ord, name)) % len(FALLBACK_COLORS)]


#: Marker shapes for a second, third, … run of one family (none is a family's own shape
#: where avoidable), so that ``adam:lr=0.05`` and ``adam:lr=cosine(0.05,500)`` differ in
#: color, line style *and* marker.
VARIANT_MARKERS = ("D", "P", "X", "v", "h", "<")


def marker(label: str, variant: int = 0) -> str:
    """The marker shape of the optimizer named in ``label`` (its end point in path plots);
    ``variant`` > 0 (see :func:`variants`) picks another shape for a further run of it."""
    own = MARKERS.get(base_name(label), "o")
    if variant == 0:
        return own
    others = [m for m in VARIANT_MARKERS if m != own]
    return others[(variant - 1) % len(others)]


def variants(labels: list[str]) -> dict[str, int]:
    """For each label, how many earlier labels name the same optimizer family (0, 1, …)."""
    seen: dict[str, itertools.count] = {}
    return {label: next(seen.setdefault(base_name(label), itertools.count())) for label in labels}


def shade(hex_color: str, variant: int) -> str:
    """The family's color for its ``variant``-th run: itself, then ever darker shades of
    the same hue (lighter ones vanish for a light hue such as RMSProp's)."""
    if variant == 0 or not hex_color.startswith("#") or len(hex_color) != 7:
        return hex_color
    rgb = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
    amount = min(0.8, 0.2 * variant)  # towards black: 20 %, 40 %, … of the way
    return "#" + "".join(f"{round(c * (1 - amount)):02x}" for c in rgb)


def pretty(label: str) -> str:
    """A legend entry: ``"adam:lr=0.1"`` → ``"Adam (lr=0.1)"``, ``"sgd"`` → ``"SGD"``."""
    name = base_name(label)
    rest = label.strip()[len(name) :].lstrip("@:")
    shown = LABELS.get(name, name)
    return f"{shown} ({rest.replace(':', ', ')})" if rest else shown


def styles(labels: list[str]) -> dict[str, dict]:
    """Line styles for several runs: each family keeps its hue; a second run of the same
    family (another learning rate, say) gets a darker shade and a dashed line, a third a
    darker one still and a dotted line (and :func:`marker` another shape)."""
    out = {}
    for label, n in variants(labels).items():
        out[label] = {
            "color": shade(color(label), n),
            "linestyle": LINESTYLES[n % len(LINESTYLES)],
            "label": pretty(label),
        }
    return out


#: Column and metric names as a figure shows them.
READABLE: dict[str, str] = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "test_accuracy": "test accuracy",
    "test_loss": "test loss",
    "train_loss": "training loss",
    "train_accuracy": "training accuracy",
    "grad_norm": "gradient norm",
    "lr": "step size α",
    "rho": "ρ",
    "rho1": "ρ₁",
    "rho2": "ρ₂",
}


def readable(name: str) -> str:
    """A problem, dataset or column name for a figure title:
    ``"logistic_regression:breast_cancer"`` → ``"Logistic regression, breast cancer"``,
    ``"val_accuracy"`` → ``"validation accuracy"``, ``"rosenbrock"`` → ``"Rosenbrock"``."""
    if name in READABLE:
        return READABLE[name]
    parts = [p.replace("_", " ").strip() for p in name.split(":")]
    parts = [p.replace("mnist1d", "MNIST-1D") for p in parts]
    head = parts[0][:1].upper() + parts[0][1:]
    return ", ".join([head, *parts[1:]])
