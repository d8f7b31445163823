"""Benchmarks; importing this package registers them."""

from obliviate.benchmarks import fictional_authors  # noqa: F401
from obliviate.benchmarks import digits  # noqa: F401
from obliviate.benchmarks import public  # noqa: F401
