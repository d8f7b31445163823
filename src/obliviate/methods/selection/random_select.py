"""Random forget set: a seeded uniform sample of k candidates (the usual "random forgetting" baseline).

Selector convention (shared by every module in this package): ``select(pool, ..., k, *, ...)``
returns exactly ``k`` distinct indices into the candidate pool, as a ``list[int]``. ``pool``
describes the candidates — here their number or any sized collection (a Dataset, a list of
examples). Selectors that rank candidates return them hardest-first; ``random`` returns them in
draw order. ``k`` outside ``[0, len(pool)]`` raises ``ValueError``.
"""

from __future__ import annotations

from typing import Sized

import torch

from obliviate.registry import register


def check_k(k: int, n: int, who: str) -> None:
    """Raise a clear error unless 0 ≤ k ≤ n."""
    if not 0 <= k <= n:
        raise ValueError(f"{who}: cannot select k={k} of {n} candidates; choose 0 <= k <= {n}.")


@register("selector", "random", paper="Uniform random forget set (standard random-forgetting protocol)",
          modalities=("text", "image"), needs=(),
          summary="Seeded uniform sample of k candidate indices.")
def select(pool: int | Sized, k: int, *, seed: int = 0) -> list[int]:
    """``k`` distinct indices drawn uniformly from ``range(n)`` (n = ``pool`` or ``len(pool)``), seeded."""
    n = pool if isinstance(pool, int) else len(pool)
    check_k(k, n, "random selector")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist()
