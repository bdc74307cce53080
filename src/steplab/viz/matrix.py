"""Figures for the per-tensor optimizers (Muon, Adafactor, Shampoo), drawn from the arrays
that :mod:`steplab.experiments.matrix` computes."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from steplab.viz.base import styled, subplots
from steplab.viz.palette import color, pretty

#: Colors of the per-tensor optimizers (the palette knows the element-wise ones).
MATRIX_COLORS = {"muon": "#7b3294", "adafactor": "#1b7837", "shampoo": "#0571b0", "soap": "#ca0020"}
NAMES = {"muon": "Muon", "adafactor": "Adafactor", "shampoo": "Shampoo", "soap": "SOAP"}


def _color(name: str) -> str:
    return MATRIX_COLORS.get(name) or color(name)


def _name(name: str) -> str:
    return NAMES.get(name) or pretty(name)


@styled
def muon_singular_values_figure(before: np.ndarray, after: np.ndarray) -> Figure:
    """Singular values of the momentum M (scaled by the largest) and of NewtonSchulz₅(M)."""
    fig, axes = subplots(1, 1, width=7.0, height=4.2, layout="constrained")
    ax = axes[0, 0]
    k = np.arange(1, len(before) + 1)
    ax.semilogy(k, before / before.max(), "o-", ms=4, color="0.45", label="momentum M (÷ σ₁)")
    ax.semilogy(k, after, "o-", ms=4, color=_color("muon"), label="NewtonSchulz₅(M)")
    ax.axhspan(0.5, 1.5, color=_color("muon"), alpha=0.08, lw=0)
    ax.set_xlabel("singular value index i")
    ax.set_ylabel("σᵢ")
    ax.set_title("Muon: orthogonalization lifts every direction to ≈ 1")
    ax.legend(loc="lower left")
    return fig


@styled
def adafactor_moment_figure(full: np.ndarray, factored: np.ndarray, numbers: dict) -> Figure:
    """Adam's full second moment, Adafactor's rank-one factored one, and how many numbers each
    keeps."""
    fig, axes = subplots(1, 3, width=4.2, height=3.8, layout="constrained")
    low, high = np.log10(min(full.min(), factored.min())), np.log10(max(full.max(), factored.max()))
    for ax, values, title in ((axes[0, 0], full, "Adam: full r"),
                              (axes[0, 1], factored, "Adafactor: R·C / mean(R)")):  # fmt: skip
        image = ax.imshow(np.log10(values), vmin=low, vmax=high, cmap="viridis", aspect="auto")
        ax.set_title(title)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.grid(False)
    fig.colorbar(image, ax=axes[0, :2], label="log₁₀ second moment", shrink=0.9)
    ax = axes[0, 2]
    names = list(numbers)
    ax.bar(names, [numbers[n] for n in names], color=[color("adam"), _color("adafactor")])
    for i, n in enumerate(names):
        ax.text(i, numbers[n], f"{numbers[n]:,}", ha="center", va="bottom")
    ax.set_ylabel("numbers kept")
    ax.set_title("state of one weight matrix")
    return fig


@styled
def preconditioned_race_figure(curves: dict[str, np.ndarray], lr: dict[str, float],
                               raw: np.ndarray, preconditioned: np.ndarray) -> Figure:  # fmt: skip
    """Loss against step on ½‖AWB − C‖² (ill-conditioned), and the singular values of the raw
    gradient against those of Shampoo's preconditioned step."""
    fig, axes = subplots(1, 2, width=6.0, height=4.2, layout="constrained")
    ax = axes[0, 0]
    for name, losses in curves.items():
        ax.semilogy(losses, color=_color(name), label=f"{_name(name)} (lr={lr[name]:g})")
    ax.set_xlabel("step t")
    ax.set_ylabel("f(W)")
    ax.set_title("½‖A·W·B − C‖², cond(A) = cond(B) = 10\n(best lr of a grid each)")
    ax.legend()
    ax = axes[0, 1]
    k = np.arange(1, len(raw) + 1)
    ax.semilogy(k, raw / raw.max(), "o-", ms=4, color="0.45", label="gradient G")
    ax.semilogy(k, preconditioned / preconditioned.max(), "o-", ms=4, color=_color("shampoo"),
                label="Shampoo L^(−¼)·G·R^(−¼)")  # fmt: skip
    ax.set_xlabel("singular value index i")
    ax.set_ylabel("σᵢ / σ₁")
    ax.set_title("first step: Shampoo's is ≈ U·Vᵀ")
    ax.legend()
    return fig


def all_figures(data: dict[str, Any]) -> dict[str, Figure]:
    """The three figures from :mod:`steplab.experiments.matrix`'s results, by file stem."""
    return {
        "matrix_muon_singular_values": muon_singular_values_figure(**data["muon"]),
        "matrix_adafactor_moments": adafactor_moment_figure(**data["adafactor"]),
        "matrix_preconditioned_steps": preconditioned_race_figure(**data["race"]),
    }
