"""Metrics: pure functions over the scoring cache; importing this package registers them."""

from obliviate.metrics import familiarity, fluency, memorization, mia, muse, semeval, tofu, wmdp  # noqa: F401
