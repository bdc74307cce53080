"""mkdocs hooks (mkdocs.yml): the pages that are generated from the code at build time.

Nothing here is committed output: every build reads the optimizer classes, the problem
catalogue and the command line, and runs the demo, so the site cannot drift from the code.

- ``optimizers/*.md``: one page per optimizer: its update rule in the lecture's symbols
  (the class docstring), the module's background and references, the defaults and
  intervals (the dataclass fields), each preset's values (``PRESETS``) and a figure of a
  run on Rosenbrock, made now;
- ``gallery.md``: the figures of ``steplab demo``, made now (``STEPLAB_DOCS_QUICK=1``: the
  demo's ``--quick`` version, as the test suite builds it);
- ``catalogue.md``, ``cli.md``: the problem catalogue and every command's ``--help``;
- ``reference/*.md``: the API reference, rendered by mkdocstrings from the docstrings;
- in any page, ``<!-- repro: NAME -->`` becomes the tables and claims of the last full
  ``steplab reproduce NAME`` (``docs/data/repro-NAME.json``, written by that command and
  committed), and ``<!-- repro-seconds: NAME -->`` its wall time: measured numbers are
  never typed into a page.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # a source checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

#: Guides other branches are adding: listed in the nav once the file exists.
OPTIONAL_PAGES = {"jax.md", "adding-an-optimizer.md"}

#: The API reference: (module, title), one page each.
REFERENCE = [
    ("steplab", "steplab"),
    ("steplab.optim", "Optimizers (steplab.optim)"),
    ("steplab.optim.base", "The optimizer contract (steplab.optim.base)"),
    ("steplab.problems", "Problems (steplab.problems)"),
    ("steplab.run", "The loop and sweeps (steplab.run)"),
    ("steplab.fast", "Fast paths (steplab.fast)"),
    ("steplab.viz", "Figures (steplab.viz)"),
    ("steplab.experiments", "Experiments (steplab.experiments)"),
    ("steplab.reproductions", "Reproductions (steplab.reproductions)"),
    ("steplab.torch", "PyTorch (steplab.torch)"),
    ("steplab.jax", "JAX and optax (steplab.jax)"),
    ("steplab.web", "The web lab (steplab.web)"),
]

# The figure on each optimizer's page: Rosenbrock from its literature start point, the
# step size picked from this grid by the lowest loss after FIGURE_STEPS steps.
FIGURE_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
FIGURE_STEPS = 500


# --------------------------------------------------------------------------------------
# mkdocs events
# --------------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    config["nav"] = _expand_nav(config["nav"], docs)
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, content in _generated_files():
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return render_markers(markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """reST's "text::" (a literal block follows) is written "text:" on the page; the block
    itself already renders as code."""
    return re.sub(r"::(\s*</p>)", r":\1", html)


REPRO_DATA = ROOT / "docs" / "data"
_REPRO_MARKER = re.compile(r"<!-- repro: ([a-z0-9_]+) -->")
_SECONDS_MARKER = re.compile(r"<!-- repro-seconds: ([a-z0-9_]+) -->")


def render_markers(markdown: str) -> str:
    """Replace the reproduction markers by what the saved runs measured."""
    from steplab.reproductions._common import load

    def tables(match: re.Match) -> str:
        path = REPRO_DATA / f"repro-{match.group(1)}.json"
        if not path.exists():  # never typed instead: say which command fills it in
            return f"*(no saved run yet: `steplab reproduce {match.group(1)} --out docs/data`)*"
        return load(path).markdown()

    def seconds(match: re.Match) -> str:
        path = REPRO_DATA / f"repro-{match.group(1)}.json"
        value = load(path).seconds if path.exists() else None
        return "—" if value is None else f"{value:.0f} s"

    return _SECONDS_MARKER.sub(seconds, _REPRO_MARKER.sub(tables, markdown))


def _expand_nav(nav: list, docs: Path) -> list:
    import steplab as sl

    out: list = []
    for entry in nav:
        (title, value), *_ = entry.items() if isinstance(entry, dict) else [(None, entry)]
        if value == "optimizers/":
            value = [{"Overview": "optimizers/index.md"}] + [
                {cls.__name__: f"optimizers/{name}.md"} for name, cls in sl.OPTIMIZERS.items()
            ]
        elif value == "reference/":
            value = [{t: f"reference/{m}.md"} for m, t in REFERENCE]
        elif isinstance(value, list):
            value = _expand_nav(value, docs)
        elif value in OPTIONAL_PAGES and not (docs / value).exists():
            continue
        out.append({title: value} if title is not None else value)
    return out


def _generated_files() -> list[tuple[str, str | bytes]]:
    files: list[tuple[str, str | bytes]] = []
    files += _optimizer_pages()
    files += _reference_pages()
    files.append(("catalogue.md", _catalogue_page()))
    files.append(("cli.md", _cli_page()))
    files += _gallery()
    return files


# --------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------


def _optimizer_pages() -> list[tuple[str, str | bytes]]:
    import steplab as sl

    files: list[tuple[str, str | bytes]] = []
    rows = []
    for name, cls in sl.OPTIMIZERS.items():
        summary = inspect.getdoc(cls) or ""
        # the docstring's whole first paragraph: a rule may wrap (Adam's θ update is on
        # its second line), and its first line alone would cut it off
        first = " ".join(summary.split("\n\n")[0].split()) if summary else ""
        rows.append(f"| [`{name}`]({name}.md) | {first.replace('|', '∣')} |")
        figure, caption = _optimizer_figure(name)
        files.append((f"optimizers/{name}.png", figure))
        files.append((f"optimizers/{name}.md", _optimizer_page(name, cls, caption)))
    index = [
        "# Optimizers",
        "",
        "Every optimizer of `steplab.optim` (`sl.OPTIMIZERS`), in the order the lecture meets",
        "them. Each page is generated from the optimizer's class when the site is built: its",
        "update rule, defaults, presets and a run on Rosenbrock.",
        "",
        "| name | update rule |",
        "|---|---|",
        *rows,
        "",
    ]
    files.append(("optimizers/index.md", "\n".join(index)))
    return files


def _optimizer_page(name: str, cls: type, caption: str) -> str:
    module = sys.modules[cls.__module__]
    doc = inspect.getdoc(cls) or ""
    lines = [
        f"# {cls.__name__} (`{name}`)",
        "",
        f'`sl.{cls.__name__}()` · `sl.make("{name}")` · defined in `{cls.__module__}`',
        "",
        "## Update rule",
        "",
        _as_text_block(doc),
        "",
        "## Background and references",
        "",
        _as_text_block(inspect.getdoc(module) or ""),
        "",
        "## Hyperparameters and defaults",
        "",
        "The defaults are the lecture's (preset `seed`). Every hyperparameter is keyword-only,",
        "checked against its interval on construction, and may be an array of values along",
        "theta's leading axis (one configuration per row).",
        "",
        "| hyperparameter | default | allowed | meaning |",
        "|---|---|---|---|",
    ]
    fields = cls.hyperparameters()  # type: ignore[attr-defined]
    for field_name, f in fields.items():
        default = _fmt(f.default)
        lines.append(
            f"| `{field_name}` | {default} | `{f.metadata.get('interval', '')}` "
            f"| {f.metadata.get('doc', '')} |"
        )
    lines += ["", "## Presets", ""]
    presets = {"seed": {}, **cls.PRESETS}  # type: ignore[attr-defined]
    changed = [n for n in fields if any(n in p for p in presets.values())]
    if len(presets) == 1:
        lines.append("No framework presets: only the lecture's defaults.")
    else:
        lines += [
            f"`sl.{cls.__name__}.like(preset)` reproduces a framework's default algorithm; the",
            "table lists the hyperparameters a preset changes (the rest keep the defaults).",
            "`tests/optim/test_frameworks_*.py` compares each preset with the framework itself.",
            "",
            "| hyperparameter | " + " | ".join(f"`{p}`" for p in presets) + " |",
            "|---|" + "---|" * len(presets),
        ]
        for field_name in changed:
            values = [_fmt(p.get(field_name, fields[field_name].default)) for p in presets.values()]
            lines.append(f"| `{field_name}` | " + " | ".join(values) + " |")
    lines += [
        "",
        "## On Rosenbrock",
        "",
        f"![{cls.__name__} on Rosenbrock]({name}.png)",
        "",
        caption,
        "",
    ]
    return "\n".join(lines)


def _as_text_block(text: str) -> str:
    """A docstring as Markdown: its reST double backticks become code spans."""
    return text.replace("``", "`")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None or value is dataclasses.MISSING:
        return "—"
    return str(value)


def _optimizer_figure(name: str) -> tuple[bytes, str]:
    """A run of ``name`` on Rosenbrock at the best step size of FIGURE_GRID, as a PNG."""
    import numpy as np

    import steplab as sl
    from steplab.viz import Panel, contour_figure

    problem = sl.problems.get("rosenbrock")
    optimizer = sl.make(name, lr=np.array(FIGURE_GRID))
    runs = sl.minimize(problem, optimizer, steps=FIGURE_STEPS, record_every=1, record_dim=2)
    finals = np.array([r.final_loss if r.status != "diverged" else np.inf for r in runs])
    best = int(np.argmin(finals))
    path = runs[best].history["x"]
    lr = FIGURE_GRID[best]
    fig = contour_figure(
        lambda xy: problem.value(np.atleast_2d(xy)),
        {name: path},
        [Panel(f"{name}, α = {lr:g}", ((-2.0, 2.0), (-1.0, 3.0)), points=problem.minima)],
        log_levels=True,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    caption = (
        f"{FIGURE_STEPS} steps of `{name}` with its defaults on Rosenbrock from "
        f"{tuple(problem.x0.tolist())}; α = {lr:g} gave the lowest final loss "
        f"({finals[best]:.3g}) of α ∈ {{{', '.join(f'{v:g}' for v in FIGURE_GRID)}}}. "
        "Computed when this site was built."
    )
    return buffer.getvalue(), caption


# --------------------------------------------------------------------------------------
# Reference, catalogue, command line
# --------------------------------------------------------------------------------------


def _reference_pages() -> list[tuple[str, str | bytes]]:
    pages: list[tuple[str, str | bytes]] = []
    for module, title in REFERENCE:
        pages.append((f"reference/{module}.md", f"# {title}\n\n::: {module}\n"))
    return pages


def _catalogue_page() -> str:
    from steplab import problems

    lines = [
        "# Problem catalogue",
        "",
        "`sl.problems.get(name, **options)` builds each of these; `sl.problems.list_problems()`",
        "names them (generated from `steplab.problems.CATALOGUE`). ML problems need the `data`",
        'extra (`pip install "steplab[data]"`).',
        "",
        "| name | kind | description |",
        "|---|---|---|",
    ]
    for name, entry in problems.CATALOGUE.items():
        lines.append(f"| `{name}` | {entry.kind} | {entry.description} |")
    return "\n".join(lines) + "\n"


def _cli_page() -> str:
    import argparse

    from steplab.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: make it the same everywhere
    try:
        parser = build_parser()
        lines = [
            "# Command-line reference",
            "",
            "Every command's `--help`, generated from the parser when the site was built. The",
            "guide with examples: [Figures and the command line](figures.md).",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
        ]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, command in sub.choices.items():
            lines += [
                "",
                f"## steplab {name}",
                "",
                "```text",
                command.format_help().rstrip(),
                "```",
            ]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# The gallery: the demo, run now
# --------------------------------------------------------------------------------------


def _gallery() -> list[tuple[str, str | bytes]]:
    from steplab import experiments

    quick = os.environ.get("STEPLAB_DOCS_QUICK", "") not in ("", "0")
    # The demo's experiments in the demo's order (steplab.cli.demo_cmd).
    lessons = [n for n, e in experiments.EXPERIMENTS.items() if e.lesson]
    names = [n for n in experiments.LESSONS if n in lessons]
    names += [n for n in lessons if n not in names]
    files: list[tuple[str, str | bytes]] = []
    lines = [
        "# Gallery",
        "",
        "The figures of `steplab demo`, made when this site was built"
        + (" (its `--quick` version)" if quick else "")
        + ". Run `steplab demo` for the same figures as PDF/SVG, the animation as MP4,",
        "the data as CSV and a summary table.",
    ]
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        out = Path(tmp)
        for name in names:
            report = experiments.run(name, out, quick=quick)
            lines += ["", f"## {experiments.get(name).description}", ""]
            for entry in report.figures:
                uri = f"gallery/{Path(entry.path).name}"
                files.append((uri, (out / entry.path).read_bytes()))
                lines += [f"### {entry.title}", "", _embed(entry, uri), "", entry.caption, ""]
                if uri.endswith(".mp4"):  # the GIF beside it, for the fallback link
                    for also in entry.also:
                        files.append((f"gallery/{Path(also).name}", (out / also).read_bytes()))
            if report.claims:
                lines += ["Claims checked by the demo:", ""]
                lines += [f"- {'✓' if ok else '✗'} {text}" for text, ok in report.claims.items()]
    files.append(("gallery.md", "\n".join(lines) + "\n"))
    return files


def _embed(entry: Any, uri: str) -> str:
    """A figure as Markdown; a movie as a ``<video>`` (an MP4 is no image) with its GIF as
    the fallback. Raw HTML is not rewritten by mkdocs: its src is relative to the gallery
    page's own folder (``gallery/``), where the files lie."""
    if not uri.endswith(".mp4"):
        return f"![{entry.title}]({uri})"
    name = Path(uri).name
    gifs = [Path(a).name for a in entry.also if a.endswith(".gif")]
    fallback = f'<a href="{gifs[0]}">the animation as GIF</a>' if gifs else "the MP4"
    return (
        f'<video controls loop muted playsinline preload="metadata" width="100%" '
        f'src="{name}" aria-label="{entry.title}">{fallback}</video>'
    )
