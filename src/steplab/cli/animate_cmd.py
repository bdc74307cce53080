"""``steplab animate``: an animation of optimizers racing on a 2-D problem (GIF; MP4 too
when ffmpeg is installed).

    steplab animate sgd momentum adam:lr=0.05 --problem saddle --steps 150
"""

from __future__ import annotations

import numpy as np

from steplab.cli import common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "animate",
        help="animate trajectories on a 2-D problem (GIF, and MP4 with ffmpeg)",
        description=common.plain(__doc__),
        formatter_class=common.HelpFormatter,
    )
    common.add_spec_argument(parser)
    common.add_problem_options(parser, default_problem="saddle")
    common.add_run_options(parser, steps=150)
    parser.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    parser.add_argument("--fps", type=int, default=12, help="frames per second (default 12)")
    parser.add_argument("--no-mp4", action="store_true", help="write the GIF only")
    parser.set_defaults(func=main)


#: Memory per frame: two 760×700-pixel RGB panels (animate's defaults), held as an array
#: and again as an image while the GIF is written.
FRAME_BYTES = 2 * (2 * 760 * 700 * 3)


def early_view(view, early_paths, points) -> tuple:
    """The "after start" panel's box: every iterate of the first steps and each marked
    point (saddle, minimum) inside the full view, padded by 10 %; never smaller than a
    quarter of the full view, never larger than it. A saddle next to the start stays in
    the picture: what the runs are racing away from."""
    (x0, x1), (y0, y1) = view
    inside = [
        p
        for p in np.atleast_2d(np.asarray(points, dtype=float)).reshape(-1, 2)
        if x0 <= p[0] <= x1 and y0 <= p[1] <= y1
    ]
    xy = np.concatenate(
        [np.asarray(p, dtype=float) for p in early_paths] + [np.array(inside).reshape(-1, 2)]
    )
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    box = []
    for axis, (lo, hi) in enumerate(view):
        a, b = np.clip([xy[:, axis].min(), xy[:, axis].max()], lo, hi)
        pad = max(0.1 * (b - a), (hi - lo) / 8 - (b - a) / 2)  # at least a quarter wide
        box.append((max(lo, a - pad), min(hi, b + pad)))
    return tuple(box)


def main(args) -> int:
    from steplab.viz import AnimatedPanel, animate, ffmpeg_available
    from steplab.viz.report import FigureEntry

    specs = common.specs_from(args.optimizers)
    problem = common.problem_from(args)
    if problem.dim != 2:
        raise ValueError(
            f"animate needs a 2-D problem; {problem.name} has {problem.dim} "
            "parameters (try --problem saddle, rosenbrock, beale, himmelblau)"
        )
    if args.frames < 2:
        raise ValueError(f"--frames must be at least 2, got {args.frames}")
    if args.fps < 1:
        raise ValueError(f"--fps must be a positive integer, got {args.fps}")
    common.check_fits("--frames", args.frames * FRAME_BYTES, f"{args.frames:,} frames")
    out = common.prepare_out(args.out)
    runs = common.run_specs(problem, specs, args)
    common.write_histories(out, runs)
    histories = {label: run.history for label, run in runs.items()}
    view = common._view(problem, histories)
    if view is None:
        raise ValueError("every run diverged at once: no finite iterate to animate")
    early = max(1, args.steps // 5)
    points = list(problem.minima) + list(problem.stationary_points)
    zoom = early_view(view, [h["x"][: early + 1] for h in histories.values()], points)
    movie = animate(
        lambda xy: problem.value(np.atleast_2d(xy)),
        {k: h["x"] for k, h in histories.items()},
        [
            AnimatedPanel("After start", zoom, early / args.frames, points),
            AnimatedPanel("Later", view, args.steps / (args.frames - 1), points),
        ],
        out / "animation",
        n_frames=args.frames,
        fps=args.fps,
        mp4=(not args.no_mp4) and ffmpeg_available(),
        title=common.figure_title(problem),
    )
    names = [p.name for p in movie.paths]
    shown = names[::-1]  # the MP4 first (a player with pause and scrub), when there is one
    entries = [
        FigureEntry(
            shown[0],
            "Animation",
            f"{movie.n_frames} frames; left: the first "
            f"{early} steps around the start and the marked points in view, right: all "
            f"{args.steps} steps.",
            also=shown[1:],
        )
    ]
    entries += common.run_figures(out, problem, runs)
    rows = common.summary_rows(runs, common.tolerance(problem, args))
    config = {
        "command": "animate",
        "problem": problem.info(),
        "optimizers": [s.config() for s in specs],
        "steps": args.steps,
        "seed": args.seed,
        "frames": args.frames,
        "fps": args.fps,
        "files": names,
    }
    common.finish(out, f"steplab animate: {problem.name}", entries, rows, config)
    return 0
