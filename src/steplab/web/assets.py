"""Static files of the web lab that are generated from Python, so they cannot drift.

``static/palette.js`` is :mod:`steplab.viz.palette` (each optimizer's color, marker and
name as the lecture spells it) for the page, which has no Python. Regenerate it after
changing the palette::

    python -m steplab.web.assets

``tests/web/test_classroom.py`` fails while the file and the palette disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

from steplab import optim
from steplab.viz import palette

STATIC = Path(__file__).parent / "static"
PALETTE_JS = STATIC / "palette.js"


def palette_script() -> str:
    """The text of ``static/palette.js``: ``window.STEPLAB_PALETTE = {name: {color, marker,
    label}}`` for every optimizer of ``sl.OPTIMIZERS`` (markers in matplotlib's letters)."""
    table = {
        name: {
            "color": palette.color(name),
            "marker": palette.marker(name),
            "label": palette.pretty(name),
        }
        for name in optim.OPTIMIZERS
    }
    body = json.dumps(table, indent=1, ensure_ascii=False)
    return (
        "// Generated from steplab.viz.palette by `python -m steplab.web.assets`; do not edit.\n"
        "// The same color and marker per optimizer as in every steplab figure.\n"
        f'"use strict";\nwindow.STEPLAB_PALETTE = {body};\n'
    )


def write() -> Path:
    """Write ``static/palette.js``; returns its path."""
    PALETTE_JS.write_text(palette_script(), encoding="utf-8")
    return PALETTE_JS


if __name__ == "__main__":
    print(write())
