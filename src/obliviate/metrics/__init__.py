"""Metrics: pure functions over the scoring cache; importing this package registers them."""

from obliviate.metrics import memorization, mia, tofu  # noqa: F401
