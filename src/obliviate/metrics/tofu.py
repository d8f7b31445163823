"""TOFU metrics (Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv 2401.06121),
following OpenUnlearning's definitions (locuslab/open-unlearning d3d7cf9, `src/evals/metrics/`).

Conventions (stated because upstream implementations differ):
- answer probability = exp(-mean answer-token NLL), EOS included, averaged over items;
- truth ratio R = P_wrong / P_correct with P_wrong = exp(-mean over perturbed answers of their
  mean NLL) (the geometric mean) and P_correct the paraphrased answer (forget, retain) or the
  original answer (world facts, real authors); forget aggregate mean min(R, 1/R), others mean
  max(0, 1 - R);
- ROUGE-L **recall** with stemming of the greedy generation against the gold answer;
- forget quality = KS two-sample p-value of per-item forget truth ratios vs the oracle's;
- model utility = harmonic mean of the nine retain / real-author / world-fact statistics.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import hmean, ks_2samp

from obliviate.metrics.base import MetricResult, MissingReferenceError, bootstrap_ci
from obliviate.metrics.text import rouge_l_scores
from obliviate.registry import register
from obliviate.scoring.types import AuditView

TOFU = dict(paper="TOFU: A Task of Fictitious Unlearning for LLMs", arxiv="2401.06121",
            code="https://github.com/locuslab/open-unlearning")
UTILITY_SETS = ("retain", "real_authors", "world_facts")
# Keys of an oracle view read from logs (obliviate.benchmarks.reference_logs): the oracle's per-item forget
# truth ratios R and its Min-K% (k = 0.4) AUC, forget vs holdout, in `mia_auc`'s convention.
ORACLE_TRUTH_RATIOS = "oracle:forget_truth_ratios"
ORACLE_MIN_K_AUC = "oracle:mia_min_k_auc"


# ---- array functions (pinned by known-answer tests) ---------------------------------------
def answer_probability(mean_nll: np.ndarray) -> np.ndarray:
    """Per-item exp(-mean NLL): the geometric-mean token probability of the answer."""
    return np.exp(-np.asarray(mean_nll, dtype=np.float64))


def normalised_probability(true_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """P_true / (P_true + Σ_k P_pert,k) per item; ``perturbed_nll`` is (n, k)."""
    pt = answer_probability(true_nll)
    pp = answer_probability(perturbed_nll).sum(axis=1)
    return pt / (pt + pp)


def truth_ratio_per_item(correct_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """R_i = exp(-mean_k NLL_pert,k) / (exp(-NLL_correct) + 1e-10), as OpenUnlearning `truth_ratio`."""
    p_wrong = np.exp(-np.asarray(perturbed_nll, dtype=np.float64).mean(axis=1))
    return p_wrong / (np.exp(-np.asarray(correct_nll, dtype=np.float64)) + 1e-10)


def truth_ratio_closer_to_1(r: np.ndarray) -> np.ndarray:
    """Forget-set aggregation: min(R, 1/R) per item (1 = indifferent between true and wrong)."""
    r = np.asarray(r, dtype=np.float64)
    return np.minimum(r, 1.0 / np.maximum(r, 1e-300))


def truth_ratio_true_better(r: np.ndarray) -> np.ndarray:
    """Retain / utility aggregation: max(0, 1 - R) per item (1 = always prefers the truth)."""
    return np.maximum(0.0, 1.0 - np.asarray(r, dtype=np.float64))


def ks_forget_quality(tr_model: np.ndarray, tr_oracle: np.ndarray) -> float:
    """p-value of the two-sample KS test between per-item truth ratios (scipy.stats.ks_2samp)."""
    return float(ks_2samp(np.asarray(tr_model), np.asarray(tr_oracle)).pvalue)


def harmonic_mean_utility(parts: dict[str, float]) -> float:
    """Harmonic mean of the parts; any zero part gives zero (scipy.stats.hmean)."""
    vals = np.asarray(list(parts.values()), dtype=np.float64)
    if vals.size == 0:
        raise ValueError("model utility needs at least one part")
    if (vals <= 0).any():
        return 0.0
    return float(hmean(vals))


# ---- registered metrics ---------------------------------------------------------------------
def _result(name: str, per_item: np.ndarray, direction: str, details: dict | None = None,
            compared_to: str | None = None) -> MetricResult:
    per_item = np.asarray(per_item, dtype=np.float64)
    return MetricResult(name, float(per_item.mean()), direction, n=int(per_item.size), ci=bootstrap_ci(per_item),
                        compared_to=compared_to, details=details or {})


def _correct_key(base: str) -> str:
    # TOFU scores forget/retain truth ratios against the paraphrased answer; ra/wf against the answer.
    return f"{base}_para" if base in ("forget", "retain") else base


def truth_ratios(view: AuditView, base: str) -> np.ndarray:
    correct = view.need(_correct_key(base)).mean_nll()
    pert = np.stack([s.mean_nll() for s in view.need_perturbed(base)], axis=1)
    return truth_ratio_per_item(correct, pert)


def _make_prob(base: str, direction: str):
    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        return _result(f"{base}_prob", answer_probability(view.need(base).mean_nll()), direction)

    metric.__doc__ = f"Mean answer probability exp(-mean NLL) on the {base} set."
    return metric


def _make_prob_normalised(base: str):
    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        pert = np.stack([s.mean_nll() for s in view.need_perturbed(base)], axis=1)
        return _result(f"{base}_prob_normalised", normalised_probability(view.need(base).mean_nll(), pert), "higher")

    metric.__doc__ = f"P_true / (P_true + Σ P_perturbed) on the {base} set."
    return metric


def _make_rouge(base: str, direction: str):
    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        ss = view.need(base)
        if ss.generations is None:
            raise KeyError(f"{base}_rouge needs greedy generations of the {base} set; audit with generate=True")
        scores = rouge_l_scores(ss.answers, ss.generations, kind="recall", stem=True)
        return _result(f"{base}_rouge", scores, direction)

    metric.__doc__ = f"ROUGE-L recall (stemmed) of greedy generations vs gold answers on the {base} set (TOFU)."
    return metric


def _make_truth_ratio(base: str):
    forget = base == "forget"

    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        r = truth_ratios(view, base)
        per = truth_ratio_closer_to_1(r) if forget else truth_ratio_true_better(r)
        return _result(f"{base}_truth_ratio", per, "closer_to_reference" if forget else "higher",
                       {"aggregation": "mean min(R, 1/R)" if forget else "mean max(0, 1 - R)"})

    metric.__doc__ = f"Truth ratio on the {base} set ({'closer to 1' if forget else 'true better'} aggregation)."
    return metric


for _base, _dir in (("forget", "lower"), ("retain", "higher"), ("world_facts", "higher"), ("real_authors", "higher")):
    register("metric", f"{_base}_prob", **TOFU)(_make_prob(_base, _dir))
    register("metric", f"{_base}_rouge", **TOFU)(_make_rouge(_base, _dir))
    register("metric", f"{_base}_truth_ratio", **TOFU)(_make_truth_ratio(_base))
    register("metric", f"{_base}_prob_normalised", **TOFU)(_make_prob_normalised(_base))


@register("metric", "forget_quality", **TOFU)
def forget_quality(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """KS-test p-value of forget truth ratios vs the retain-only oracle's (1 = indistinguishable)."""
    if ref is None:
        raise MissingReferenceError("forget_quality compares forget truth ratios with the retain-only oracle's; "
                                    "pass the oracle (reference=...) to the audit")
    a = truth_ratios(view, "forget")
    # An oracle read from logs (an OpenUnlearning TOFU_EVAL.json) carries its per-item truth ratios, not scores.
    logged = ref.extra.get(ORACLE_TRUTH_RATIOS)
    b = np.asarray(logged, dtype=np.float64) if logged is not None else truth_ratios(ref, "forget")
    return MetricResult("forget_quality", ks_forget_quality(a, b), "higher", n=int(a.size), compared_to="oracle",
                        details={"truth_ratios": a.tolist(), "oracle_truth_ratios": b.tolist(),
                                 "oracle_from": "logs" if logged is not None else "scored"})


# The nine TOFU utility statistics: (probability, ROUGE, truth ratio) on retain, real authors and
# world facts. Retain uses the raw probability, the other two the normalised one.
def _utility_parts(view: AuditView) -> tuple[dict[str, float], list[str]]:
    parts, missing = {}, []
    for base in UTILITY_SETS:
        if base not in view.sets:
            missing.append(base)
            continue
        prob = _make_prob(base, "higher") if base == "retain" else _make_prob_normalised(base)
        for fn in (prob, _make_rouge(base, "higher"), _make_truth_ratio(base)):
            r = fn(view)
            parts[r.name] = r.value
    return parts, missing


@register("metric", "model_utility", **TOFU)
def model_utility(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """Harmonic mean of the retain / real-author / world-fact probability, ROUGE and truth ratio
    (TOFU's nine statistics; sets the task lacks are listed in details)."""
    parts, missing = _utility_parts(view)
    if not parts:
        raise KeyError("model_utility needs at least one of the retain, real_authors, world_facts sets")
    return MetricResult("model_utility", harmonic_mean_utility(parts), "higher", n=len(parts),
                        details={"parts": parts, "missing_sets": missing})
