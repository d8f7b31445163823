"""Text similarity used by the generation metrics (ROUGE via the `rouge-score` package)."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from rouge_score import rouge_scorer


@lru_cache(maxsize=4)
def _scorer(stem: bool) -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)


def rouge_l(gold: str, generation: str, kind: str = "recall", stem: bool = True) -> float:
    """ROUGE-L of ``generation`` against ``gold``: ``recall`` (TOFU) or ``f1`` (MUSE)."""
    s = _scorer(stem).score(gold, generation)["rougeL"]
    if kind == "recall":
        return float(s.recall)
    if kind == "f1":
        return float(s.fmeasure)
    raise ValueError(f"kind must be 'recall' or 'f1', got {kind!r}")


def rouge_l_scores(golds: Sequence[str], generations: Sequence[str], kind: str = "recall",
                   stem: bool = True) -> np.ndarray:
    return np.array([rouge_l(g, h, kind, stem) for g, h in zip(golds, generations)])
