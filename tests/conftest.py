"""Shared fixtures. No test touches the internet."""

import os

from tests.support.ci_skips import pytest_runtest_makereport  # noqa: F401  (the hook, registered here)

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
