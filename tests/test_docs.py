"""The documentation site builds in strict mode, and its guides' examples run.

``mkdocs build --strict`` fails on a broken link, a missing page or an unresolved API
reference; the build also generates the optimizer pages and runs the demo for the gallery
(here its ``--quick`` version, to keep the suite fast).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ["index.md", "quickstart.md", "problems.md", "sweeps.md"]


def blocks(page: str, language: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("page", GUIDES)
def test_guide_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    namespace: dict = {"__name__": "docs_example"}
    for block in blocks(page, "python"):
        exec(compile(block, page, "exec"), namespace)


def test_quickstart_shows_the_readme_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme_commands = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[0]
    assert readme_commands in blocks("quickstart.md", "bash")


def test_every_extra_is_documented_in_the_quickstart():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[project.optional-dependencies]")[1].split("\n[")[0]
    extras = re.findall(r"^([a-z]+) = \[", section, flags=re.M)
    table = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    assert extras and all(f"`{extra}`" in table for extra in extras), extras


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "STEPLAB_DOCS_QUICK": "1", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for page in ("optimizers/adam/index.html", "gallery/index.html", "cli/index.html"):
        assert (tmp_path / page).is_file(), page
    assert (tmp_path / "optimizers" / "adam.png").stat().st_size > 1000
    assert (tmp_path / "gallery" / "saddle_animation.gif").is_file()
    adam = (tmp_path / "optimizers" / "adam" / "index.html").read_text(encoding="utf-8")
    assert "ρ₁" in adam and "keras" in adam  # the update rule and the presets
    check_links_and_assets(tmp_path)


_REFERENCE = re.compile(r'<(img|video|source|script|link|a)\b[^>]*?\b(src|href)="([^"]+)"')


def check_links_and_assets(site: Path) -> None:
    """Every local link, image, video, script and stylesheet of the built site exists (an
    image check and a link check), and no page loads anything from the internet (fonts,
    scripts, styles): the site works offline, in a lecture hall."""
    from urllib.parse import unquote, urlsplit

    broken, remote = [], []
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for tag, _, target in _REFERENCE.findall(html):
            url = urlsplit(target)
            if url.scheme in ("http", "https") or target.startswith("//"):
                if tag != "a":  # a link out is fine; a resource fetched from outside is not
                    remote.append(f"{page.relative_to(site)}: {target}")
                continue
            if url.scheme or not url.path:  # mailto:, data:, javascript:, "#anchor"
                continue
            base = site if url.path.startswith("/") else page.parent  # 404.html: absolute
            resolved = (base / unquote(url.path).lstrip("/")).resolve()
            if resolved.is_dir():
                resolved = resolved / "index.html"
            if not resolved.exists():
                broken.append(f"{page.relative_to(site)}: {tag} {target}")
    assert not broken, "broken links or images:\n" + "\n".join(sorted(set(broken))[:40])
    assert not remote, "resources loaded from the internet:\n" + "\n".join(sorted(set(remote))[:40])
    assert "fonts.googleapis" not in (site / "index.html").read_text(encoding="utf-8")


# Full runs not saved yet, with the reason: the mnist1d run with its new width-256 row did
# not finish on the shared machine before the branch's deadline. Remove the name once
# `steplab reproduce mnist1d --out DIR` has run and DIR/repro-mnist1d.json is in docs/data.
PENDING: set[str] = set()


def test_reproduction_markers_render_from_the_saved_runs():
    """The measured tables of docs/reproductions.md come from docs/data (the commands'
    own JSON); no marker is left unrendered and each names a saved run."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import docs_hooks
    finally:
        sys.path.remove(str(ROOT / "tools"))
    text = (ROOT / "docs" / "reproductions.md").read_text(encoding="utf-8")
    names = re.findall(r"<!-- repro: ([a-z0-9_]+) -->", text)
    from steplab import reproductions

    assert sorted(names) == sorted(reproductions.REPRODUCTIONS)
    rendered = docs_hooks.render_markers(text)
    assert "<!-- repro" not in rendered
    for name in names:
        path = ROOT / "docs" / "data" / f"repro-{name}.json"
        assert path.exists() != (name in PENDING), f"{name}: update PENDING"
        if name in PENDING:
            continue
        saved = json.loads(path.read_text("utf-8"))
        assert saved["quick"] is False and saved["ok"] is True, name
        for rows in saved["tables"].values():
            assert all(str(v) in rendered for v in rows[0].values() if v not in ("", None))


def test_gallery_embeds_a_movie_as_video_with_a_gif_fallback():
    """An MP4 is no image: ``![…](x.mp4)`` would show a broken image."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import docs_hooks
    finally:
        sys.path.remove(str(ROOT / "tools"))
    from steplab.viz.report import FigureEntry

    movie = FigureEntry("saddle.mp4", "Race", "c", also=["saddle.gif"])
    html = docs_hooks._embed(movie, "gallery/saddle.mp4")
    assert html.startswith("<video") and 'src="saddle.mp4"' in html and "controls" in html
    assert 'href="saddle.gif"' in html and "![" not in html
    still = FigureEntry("a.png", "A", "c")
    assert docs_hooks._embed(still, "gallery/a.png") == "![A](gallery/a.png)"
    assert docs_hooks.on_page_content("<p>Example::</p>", None, None, None) == "<p>Example:</p>"
