"""What an audit hands the report beyond the metrics: per-example MIA scores for the histograms and
ROC curves, and the data and model fingerprints for the provenance. Called by `obliviate.api.audit`
with the scored views it already built (no model runs here)."""

from __future__ import annotations

from typing import Any

import numpy as np

from obliviate.config import digest
from obliviate.report.schema import Report

# Scores are rounded for the JSON: 4 decimals draw the same histogram and keep the file small.
DECIMALS = 4


def mia_scores(views: dict[str, Any]) -> dict[str, dict]:
    """{model: {"member": forget scores, "nonmember": held-out scores, "score": what they are}} of the
    loss MIA (mean answer NLL, `obliviate.metrics.mia.scores_loss`), for models whose view scored both
    sets; others are left out."""
    from obliviate.metrics.mia import scores_loss

    out = {}
    for name, view in views.items():
        sets = getattr(view, "sets", {})
        if "forget" not in sets or "holdout" not in sets:
            continue
        mem, non = scores_loss(sets["forget"]), scores_loss(sets["holdout"])
        out[name] = {"score": "mean answer NLL (loss MIA)",
                     "member": np.round(np.asarray(mem, dtype=float), DECIMALS).tolist(),
                     "nonmember": np.round(np.asarray(non, dtype=float), DECIMALS).tolist()}
    return out


def task_fingerprint(task: Any) -> dict[str, str]:
    """A short hash of each set the task holds (its records as JSON), so two reports can be checked to
    audit the same data."""
    out = {}
    for name in ("forget", "retain", "holdout", "forget_texts", "retain_texts"):
        items = getattr(task, name, None)
        if items:
            out[f"data {name}"] = f"{digest([getattr(i, '__dict__', i) for i in items])} ({len(items)} records)"
    return out


def add_audit_extras(report: Report, views: dict[str, Any], task: Any, fingerprint: Any = None) -> None:
    """Store the MIA scores (``tables["mia_scores"]``) and the fingerprints
    (``provenance["fingerprints"]``: each set's data hash, each model's weight hash from
    ``fingerprint(name)``) in ``report``."""
    scores = mia_scores(views)
    if scores:
        report.tables["mia_scores"] = scores
    fps = task_fingerprint(task)
    if fingerprint is not None:
        for name in views:
            try:
                fps[f"model {name}"] = fingerprint(name)
            except (AttributeError, RuntimeError, TypeError):  # an inference-time wrapper without a state_dict
                continue
    report.provenance.setdefault("fingerprints", {}).update(fps)
