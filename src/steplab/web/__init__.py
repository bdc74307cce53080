"""The interactive web lab: ``steplab serve`` (or ``create_app()`` under any ASGI server).

:mod:`~steplab.web.engine` computes (grids, trajectories, sweeps), :mod:`~steplab.web.models`
validates requests and bounds their work, :mod:`~steplab.web.app` serves the JSON API and
the static page in ``static/`` (plain HTML, CSS and JavaScript; no build step, no CDN).
"""

from steplab.web.app import create_app

__all__ = ["create_app"]
