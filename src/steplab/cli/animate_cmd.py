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
        description=__doc__.split("\n\n", 1)[0],
    )
    common.add_spec_argument(parser)
    common.add_problem_options(parser, default_problem="saddle")
    common.add_run_options(parser, steps=150)
    parser.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    parser.add_argument("--fps", type=int, default=12, help="frames per second (default 12)")
    parser.add_argument("--no-mp4", action="store_true", help="write the GIF only")
    parser.set_defaults(func=main)


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
    out = common.prepare_out(args.out)
    runs = common.run_specs(problem, specs, args)
    common.write_histories(out, runs)
    histories = {label: run.history for label, run in runs.items()}
    view = common._view(problem, histories)
    early = max(1, args.steps // 5)
    start = np.asarray(next(iter(histories.values()))["x"][0])
    span = np.array([hi - lo for lo, hi in view]) / 4
    zoom = tuple((c - s, c + s) for c, s in zip(start, span, strict=True))
    points = list(problem.minima) + list(problem.stationary_points)
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
        title=problem.name,
    )
    names = [p.name for p in movie.paths]
    entries = [
        FigureEntry(
            names[0],
            "Animation",
            f"{movie.n_frames} frames; left: the first "
            f"{early} steps around the start, right: all {args.steps} steps.",
            also=names[1:],
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
