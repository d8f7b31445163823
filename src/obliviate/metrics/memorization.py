"""Teacher-forced memorisation on the forget set: exact memorisation and extraction strength.

OpenUnlearning `memorization.py` (Carlini et al. 2021; "extraction strength" from Carlini et al.
2023, arXiv 2202.07646). ŷ_t is the argmax next token at answer position t, y_t the label; the final
token (EOS) is excluded, as upstream does.
"""

from __future__ import annotations

import numpy as np

from obliviate.metrics.base import MetricResult, bootstrap_ci
from obliviate.registry import register
from obliviate.scoring.types import AuditView

OU = "https://github.com/locuslab/open-unlearning"


def exact_memorization(is_argmax: np.ndarray, drop_last: bool = True) -> float:
    """(1/L) Σ_t 1[ŷ_t = y_t]: teacher-forced token accuracy of one answer."""
    h = np.asarray(is_argmax, bool)
    if drop_last and h.size > 1:
        h = h[:-1]
    return float(h.mean()) if h.size else float("nan")


def extraction_strength(is_argmax: np.ndarray, drop_last: bool = True) -> float:
    """1 - k*/L, k* the smallest k whose predicted suffix ŷ_{k:} equals y_{k:}.

    When no suffix matches (not even the last token), k* = L and the value is 0. Upstream
    OpenUnlearning leaves k at L-1 in that case and so returns 1/L; obliviate returns the
    correct 0.
    """
    h = np.asarray(is_argmax, bool)
    if drop_last and h.size > 1:
        h = h[:-1]
    L = h.size
    if L == 0:
        return 0.0
    k = L
    for i in range(L - 1, -1, -1):  # walk back while the suffix still matches
        if not h[i]:
            break
        k = i
    return 1.0 - k / L


@register("metric", "exact_memorization", paper="Quantifying Memorization Across Neural Language Models",
          arxiv="2202.07646", code=OU)
def exact_memorization_metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """Mean teacher-forced token accuracy on the forget answers (EOS excluded)."""
    per = np.array([exact_memorization(h) for h in view.need("forget").token_is_argmax])
    return MetricResult("exact_memorization", float(np.nanmean(per)), "lower", n=int(per.size), ci=bootstrap_ci(per))


@register("metric", "extraction_strength", paper="Quantifying Memorization Across Neural Language Models",
          arxiv="2202.07646", code=OU)
def extraction_strength_metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """Mean extraction strength on the forget answers (EOS excluded; 0 when no suffix matches)."""
    per = np.array([extraction_strength(h) for h in view.need("forget").token_is_argmax])
    return MetricResult("extraction_strength", float(per.mean()), "lower", n=int(per.size), ci=bootstrap_ci(per))
