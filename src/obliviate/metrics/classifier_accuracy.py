"""Accuracy-family metrics of classifier unlearning: UA, RA, TA (in percent) and the Avg. Gap to Retrain.

OPTML-Group convention (Unlearn-Sparse, SalUn): UA = 100 − acc(D_f), RA = acc(D_r), TA = acc(D_t);
methods are compared by the gap to the retrain oracle on each metric. Pure functions of logits
and labels; ``obliviate.auditing.classifier`` runs the models.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from obliviate.metrics.base import MetricResult, MissingReferenceError, bootstrap_ci

SPARSE = "https://github.com/OPTML-Group/Unlearn-Sparse"


def accuracy_from_logits(logits: np.ndarray, labels: np.ndarray, name: str = "accuracy",
                         direction: str = "higher") -> MetricResult:
    """Top-1 accuracy in percent with a bootstrap CI over examples."""
    correct = (np.asarray(logits).argmax(1) == np.asarray(labels)).astype(np.float64)
    ci = bootstrap_ci(100.0 * correct)
    value = float(100.0 * correct.mean()) if len(correct) else float("nan")
    return MetricResult(name, value, direction, n=len(correct), ci=ci)  # type: ignore[arg-type]


def unlearning_accuracy_from_logits(logits: np.ndarray, labels: np.ndarray) -> MetricResult:
    """UA = 100 - acc(D_f); the target is the retrain oracle's UA (≈ its test error for random forgetting)."""
    r = accuracy_from_logits(logits, labels)
    ci = None if r.ci is None else (100.0 - r.ci[1], 100.0 - r.ci[0])
    return MetricResult("unlearning_accuracy", 100.0 - r.value, "closer_to_reference", n=r.n, ci=ci,
                        compared_to="oracle")


# ---- Avg. Gap -------------------------------------------------------------------------------
GAP_METRICS = ("unlearning_accuracy", "retain_accuracy", "test_accuracy", "mia_efficacy")


def _val(v: Any) -> float:
    if isinstance(v, MetricResult):
        return float(v.value)
    if isinstance(v, Mapping):
        return float(v["value"])
    return float(v)


def avg_gap(metrics_model: Mapping[str, Any], metrics_oracle: Mapping[str, Any] | None,
            keys: Sequence[str] = GAP_METRICS) -> MetricResult:
    """Mean |metric_model - metric_oracle| over UA, RA, TA, MIA-Efficacy (percentage points; 0 is ideal).

    Values may be MetricResults, their ``to_dict()`` or plain floats.
    """
    if metrics_oracle is None:
        raise MissingReferenceError("avg_gap is the gap to the retrain oracle; pass the oracle's metrics")
    missing = [k for k in keys if k not in metrics_model or k not in metrics_oracle]
    if missing:
        raise KeyError(f"avg_gap needs {', '.join(missing)} for both the model and the oracle")
    gaps = {k: abs(_val(metrics_model[k]) - _val(metrics_oracle[k])) for k in keys}
    return MetricResult("avg_gap", float(np.mean(list(gaps.values()))), "lower", n=len(keys), compared_to="oracle",
                        details={"gaps": gaps})
