"""Figures and animations drawn from run histories; never runs an optimizer itself.

Inputs are plain arrays — iterates, losses, step sizes — so anything that produced them
(``steplab.run``, an experiment, a user's own loop) can be drawn the same way. Colors and
labels come from :mod:`steplab.viz.palette`, the same for an optimizer in every figure.
"""

from steplab.viz.animation import AnimatedPanel, Animation, animate, ffmpeg_available, gif_frames
from steplab.viz.base import pyplot, save, subplots
from steplab.viz.palette import COLORS, LABELS, base_name, color, pretty, styles
from steplab.viz.plots import (
    CurvePanel,
    Panel,
    contour_figure,
    curves_figure,
    draw_contours,
    draw_paths,
    grid_values,
    heatmap_figure,
    surface_figure,
    sweep_figure,
)
from steplab.viz.report import FigureEntry, write_index

__all__ = [
    "COLORS",
    "LABELS",
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
    "pretty",
    "pyplot",
    "save",
    "styles",
    "subplots",
    "surface_figure",
    "write_index",
]
