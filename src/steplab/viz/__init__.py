"""Figures and animations drawn from run histories; never runs an optimizer itself.

Inputs are plain arrays — iterates, losses, step sizes — so anything that produced them
(``steplab.run``, an experiment, a user's own loop) can be drawn the same way. Colors and
labels come from :mod:`steplab.viz.palette`, the same for an optimizer in every figure.
"""

from steplab.viz.animation import AnimatedPanel, Animation, animate, ffmpeg_available, gif_frames
from steplab.viz.base import save, styled, subplots
from steplab.viz.palette import COLORS, LABELS, MARKERS, base_name, color, marker, pretty, styles
from steplab.viz.plots import (
    CurvePanel,
    Panel,
    contour_figure,
    curves_figure,
    draw_contours,
    draw_paths,
    grid_values,
    heatmap_figure,
    log_norm_for,
    shared_legend,
    surface_figure,
    sweep_figure,
)
from steplab.viz.report import FigureEntry, write_index

__all__ = [
    "COLORS",
    "LABELS",
    "MARKERS",
    "AnimatedPanel",
    "Animation",
    "CurvePanel",
    "FigureEntry",
    "Panel",
    "animate",
    "base_name",
    "color",
    "contour_figure",
    "curves_figure",
    "draw_contours",
    "draw_paths",
    "ffmpeg_available",
    "gif_frames",
    "grid_values",
    "heatmap_figure",
    "log_norm_for",
    "marker",
    "pretty",
    "save",
    "shared_legend",
    "styled",
    "styles",
    "subplots",
    "surface_figure",
    "write_index",
]
