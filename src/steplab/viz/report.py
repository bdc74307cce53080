"""The index page: one HTML file that shows every figure of an output folder with its caption."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from steplab._io import write_text


@dataclass
class FigureEntry:
    """A figure on the index page: the file (relative to the page), a title, a caption,
    and other formats of the same figure (SVG, PDF, MP4) to link."""

    path: str
    title: str
    caption: str
    section: str = ""
    also: list[str] = field(default_factory=list)


def write_index(
    out, entries: list[FigureEntry], *, title: str, intro: str = "", table_html: str = ""
) -> Path:
    """Write ``out/index.html`` embedding each figure (images inline, videos as players)."""
    out = Path(out)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}figure{margin:2em 0;border-bottom:1px solid #ddd;"
        "padding-bottom:1em}img,video{max-width:100%}figcaption{margin-top:.5em;"
        "line-height:1.45}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.2em .6em;text-align:right;white-space:nowrap}th{background:#f4f4f4}"
        "td:first-child,td:nth-child(2){text-align:left}td:first-child{white-space:normal;"
        "min-width:14em}.wide{overflow-x:auto}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    if table_html:
        parts.append('<p><a href="#summary">Summary table</a> at the end.</p>')
    section = None
    for entry in entries:
        if entry.section and entry.section != section:
            section = entry.section
            parts.append(f"<h2>{html.escape(section)}</h2>")
        src = html.escape(entry.path)
        if entry.path.endswith(".mp4"):
            media = f'<video src="{src}" controls loop muted></video>'
        else:
            media = f'<img src="{src}" alt="{html.escape(entry.title)}">'
        links = " ".join(
            f'<a href="{html.escape(a)}">{html.escape(Path(a).suffix[1:].upper())}</a>'
            for a in entry.also
        )
        parts.append(
            f"<figure>{media}<figcaption><b>{html.escape(entry.title)}.</b> "
            f"{html.escape(entry.caption)} {links}</figcaption></figure>"
        )
    if table_html:  # after the figures: the page is read top-down like the lecture
        # a wide table scrolls inside its box: the page itself stays as wide as the window
        parts += ['<h2 id="summary">Summary</h2>', f'<div class="wide">{table_html}</div>']
    parts.append("</body></html>")
    path = out / "index.html"
    write_text(path, "\n".join(parts))  # atomically, like every file steplab writes
    return path
