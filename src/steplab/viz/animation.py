"""Animated trajectories: GIF always (Pillow), MP4 too when ffmpeg is installed.

Each panel has its own view and its own pace: the lecture's saddle animation shows
"after start" (zoomed in, one step per frame) next to "later" (zoomed out, many steps
per frame). Frame ``k`` of a panel shows steps ``0 … k·steps_per_frame``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steplab._extras import requires
from steplab.viz.base import styled, subplots
from steplab.viz.palette import marker, styles
from steplab.viz.plots import Function2D, draw_contours, mark_points


@dataclass
class AnimatedPanel:
    """A panel of an animation: title, view, and how many optimizer steps one frame adds."""

    title: str
    bounds: Sequence[Sequence[float]]
    steps_per_frame: float = 1.0  # may be fractional: 0.5 = one step every two frames
    points: Sequence = ()


@dataclass
class Animation:
    """What :func:`animate` wrote: the files (GIF first) and the number of frames."""

    paths: list[Path]
    n_frames: int


def ffmpeg_available() -> bool:
    """Whether an ``ffmpeg`` executable is on the PATH (needed for MP4)."""
    return shutil.which("ffmpeg") is not None


@styled
def animate(
    f: Function2D,
    paths: Mapping[str, np.ndarray],
    panels: Sequence[AnimatedPanel],
    out,
    *,
    n_frames: int = 60,
    fps: int = 12,
    title: str = "",
    mp4: bool | None = None,
    dpi: int = 100,
    panel_size: tuple[float, float] = (7.6, 7.0),
) -> Animation:
    """Animate the trajectories ``paths`` (label → iterates ``(T, 2)``) over contours of ``f``.

    Writes ``out.gif`` and, if ``mp4`` (default: when ffmpeg is available), ``out.mp4``.
    Only the lines are redrawn per frame (blitting), so a 60-frame two-panel GIF takes
    about a second. The default size, 760 × 700 px per panel (1520 × 700 for two) with
    12-pt text, is meant for a projector.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}")
    mp4 = ffmpeg_available() if mp4 is None else mp4
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = subplots(
        1, len(panels), width=panel_size[0], height=panel_size[1], dpi=dpi, layout="constrained"
    )
    canvas = FigureCanvasAgg(fig)  # our own raster canvas: the user's backend is untouched
    style = styles(list(paths))
    arrays = {label: np.asarray(xy) for label, xy in paths.items()}
    from matplotlib import patheffects

    from steplab.viz.plots import _path_length

    cased = [patheffects.Stroke(linewidth=4.6, foreground="white"), patheffects.Normal()]
    moving = []  # (panel, line, head, iterates) for each drawn optimizer
    counters = []
    for ax, panel in zip(axes[0], panels, strict=True):
        draw_contours(ax, f, panel.bounds, levels=20)
        ax.grid(False)
        ax.set_title(panel.title, fontsize=15)
        ax.tick_params(labelsize=12)
        if panel.points:
            mark_points(ax, panel.points)
        # Shorter paths (within this panel's steps) are drawn last, on top, each line in a
        # white casing: SGD stays visible where Momentum runs over it.
        last = int((n_frames - 1) * panel.steps_per_frame) + 1
        order = sorted(arrays, key=lambda label: -_path_length(arrays[label][:last]))
        for label in order:
            xy = arrays[label]
            (line,) = ax.plot([], [], **style[label], lw=2.6, animated=True, path_effects=cased)
            (head,) = ax.plot(
                [],
                [],
                marker(label),
                color=style[label]["color"],
                ms=11,
                mec="white",
                animated=True,
            )
            moving.append((ax, panel, line, head, xy))
            # Legend handles must be drawn in the static background: plain proxies.
        start = next(iter(arrays.values()))[0]
        ax.plot(*start, marker="*", color="black", ms=14, ls="none", label="start")
        counters.append(
            ax.text(
                0.02,
                0.97,
                "",
                transform=ax.transAxes,
                va="top",
                fontsize=13,
                animated=True,
                bbox={"boxstyle": "round", "fc": "white", "ec": "none", "alpha": 0.8},
            )
        )
    _legend_proxies(fig, style, title)

    # Blitting: draw the contours once, then per frame only restore them and draw the
    # moving lines on top. Ten times faster than redrawing the whole figure.
    canvas.draw()
    fig.set_layout_engine("none")  # frozen: the background must not move between frames
    background = canvas.copy_from_bbox(fig.bbox)
    frames = []
    for frame in range(n_frames):
        canvas.restore_region(background)
        for ax, panel, line, head, xy in moving:
            upto = min(int(frame * panel.steps_per_frame), len(xy) - 1)
            line.set_data(xy[: upto + 1, 0], xy[: upto + 1, 1])
            head.set_data([xy[upto, 0]], [xy[upto, 1]])
            ax.draw_artist(line)
            ax.draw_artist(head)
        for text, panel, ax in zip(counters, panels, axes[0], strict=True):
            text.set_text(f"step {int(frame * panel.steps_per_frame)}")
            ax.draw_artist(text)
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())

    written = [out.with_suffix(".gif")]
    _write_gif(frames, written[0], fps, [s["color"] for s in style.values()])
    if mp4:
        written.append(out.with_suffix(".mp4"))
        _write_mp4(frames, written[1], fps)
    return Animation(paths=written, n_frames=n_frames)


def _legend_proxies(fig, style, title: str = ""):
    """The title and one legend line above the panels, where a video player's controls
    (along the bottom) never cover them. Legend handles must be static: plain proxies."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], **s, lw=2.6, marker=marker(label), ms=9, mec="white")
        for label, s in style.items()
    ]
    handles.append(Line2D([], [], marker="*", color="black", ms=13, ls="none", label="start"))
    fig.legend(
        handles=handles,
        loc="outside upper center",
        title=title or None,
        title_fontsize=16,
        ncol=len(handles),
        frameon=False,
        fontsize=13,
        handlelength=1.5,
        columnspacing=1.0,
        handletextpad=0.4,
    )


def _write_gif(frames, path, fps, line_colors):
    """GIF via Pillow with one shared palette (small files, no flicker).

    The palette is fitted to the last frame plus a large swatch of every line color:
    fitted to the frame alone, the thin lines lose to the background's many shades and
    come out gray.
    """
    from matplotlib.colors import to_rgb

    with requires("viz", "GIF animations"):
        from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    width = frames[-1].shape[1]
    swatch = np.concatenate(
        [np.broadcast_to(np.array(to_rgb(c)) * 255, (60, width, 3)) for c in line_colors]
    ).astype(np.uint8)
    sample = Image.fromarray(np.concatenate([frames[-1], swatch]))
    palette = sample.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    quantized = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    from steplab._io import atomic_write

    with atomic_write(path) as stream:  # never a truncated GIF under its final name
        quantized[0].save(
            stream,
            format="GIF",
            save_all=True,
            append_images=quantized[1:],
            duration=int(1000 / fps),
            loop=0,
            optimize=False,
        )


def _write_mp4(frames, path, fps):
    """MP4 (H.264) by piping raw frames to ffmpeg."""
    import subprocess

    height, width, _ = frames[0].shape
    command = [
        "ffmpeg",
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-vf",
        "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        str(path),
    ]
    data = b"".join(np.ascontiguousarray(frame).tobytes() for frame in frames)
    result = subprocess.run(command, input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}: {result.stderr.decode()[-500:]}")


def gif_frames(path) -> int:
    """How many frames a GIF file holds (for tests and reports)."""
    with requires("viz", "reading GIFs"):
        from PIL import Image

    with Image.open(path) as image:
        return int(getattr(image, "n_frames", 1))  # a still image has one frame
