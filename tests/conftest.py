"""Shared fixtures. No test touches the internet."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
