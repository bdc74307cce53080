"""Suite-wide rules.

Under CI (the environment variable CI is set, as `.ci/run` does) a skipped test is a
failed test: CI installs every optional dependency (torch, numba, JAX/optax, Keras,
Chromium), so a skip there can only mean an install step went missing — it must not pass
quietly. Locally, tests whose optional dependency is absent skip as usual.
"""

from __future__ import annotations

import os

import pytest

STRICT = bool(os.environ.get("CI"))


def _fail_skip(report) -> None:
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where nothing may be skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())
