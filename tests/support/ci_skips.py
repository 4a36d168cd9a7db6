"""A pytest hook: under CI=true, a skipped test that carries the `flink` marker fails.

The flink tests skip, saying why, where Java or the Flink job server cannot be had. On a developer's
machine that is a fair answer; in CI it would let the Flink tier go silently unrun, so there the
skip becomes a failure that keeps its reason."""

from __future__ import annotations

import os

import pytest

STRICT_MARKERS = ("flink",)


def strict_here() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and strict_here()):
        return
    if not any(item.get_closest_marker(name) for name in STRICT_MARKERS):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"CI=true: a skipped {'/'.join(STRICT_MARKERS)} test is a failure. It skipped because: {reason}"
