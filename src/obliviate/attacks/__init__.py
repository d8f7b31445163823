"""Attacks that try to recover forgotten knowledge; importing this package registers them."""

from obliviate.attacks import paraphrase, quantize, relearn, restor  # noqa: F401
