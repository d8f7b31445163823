"""Hardest examples: the top-k candidates by a per-example memorisation score the caller supplies.

Works for any modality because it never touches a model: the caller computes the score (for
example the negative loss under the target model — lowest loss = most memorised — or a
memorisation / influence estimate) and this selector ranks it. Same convention as the rest of the
package (see ``random_select``): exactly ``k`` distinct indices into the candidate pool,
hardest-first; ties are broken by the lower index so the result is deterministic.
"""

from __future__ import annotations

from typing import Sequence

import torch

from obliviate.methods.selection.random_select import check_k
from obliviate.registry import register


@register("selector", "hardest", paper="Top-k forget set by a per-example memorisation score",
          modalities=("text", "image"), needs=("per-example scores",),
          summary="Top-k candidates by a caller-given memorisation score (e.g. lowest loss).")
def select(scores: Sequence[float], k: int, *, higher_is_harder: bool = True) -> list[int]:
    """Indices of the ``k`` hardest candidates, hardest-first.

    ``higher_is_harder=False`` means a *lower* score is harder (pass raw losses that way: a
    low loss under the target model marks a well-memorised example).
    """
    s = torch.as_tensor(list(scores), dtype=torch.float64)
    check_k(k, s.numel(), "hardest selector")
    if torch.isnan(s).any():
        raise ValueError("hardest selector: scores contain NaN; drop or fill those candidates first.")
    order = torch.argsort(-s if higher_is_harder else s, stable=True)
    return order[:k].tolist()
