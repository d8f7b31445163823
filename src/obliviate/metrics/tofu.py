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


def forget_quality_ci(tr_model: np.ndarray, tr_oracle: np.ndarray, n_boot: int = 200, seed: int = 0,
                      alpha: float = 0.05) -> tuple[float, float] | None:
    """Percentile-bootstrap CI of :func:`ks_forget_quality` (what is resampled: the forget items).

    When both arrays have the same length they are taken to be the same forget items in the same
    order, and each draw applies one row of item indices to both (paired: the uncertainty is which
    forget questions were asked); otherwise each side is resampled independently (all model rows,
    then all oracle rows). Indices are drawn at once, ``rng.integers(0, n, size=(n_boot, n))`` with
    ``rng = np.random.default_rng(seed)``. None when either side has fewer than two items.
    """
    a = np.asarray(tr_model, dtype=np.float64)
    b = np.asarray(tr_oracle, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return None
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = ia if a.size == b.size else rng.integers(0, b.size, size=(n_boot, b.size))
    stats = np.array([ks_forget_quality(x, y) for x, y in zip(a[ia], b[ib])])
    lo, hi = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def harmonic_mean_utility(parts: dict[str, float]) -> float:
    """Harmonic mean of the parts; any zero part gives zero (scipy.stats.hmean)."""
    vals = np.asarray(list(parts.values()), dtype=np.float64)
    if vals.size == 0:
        raise ValueError("model utility needs at least one part")
    if (vals <= 0).any():
        return 0.0
    return float(hmean(vals))


def model_utility_ci(items: dict[str, dict[str, np.ndarray]], n_boot: int = 200, seed: int = 0,
                     alpha: float = 0.05) -> tuple[float, float] | None:
    """Percentile-bootstrap CI of :func:`harmonic_mean_utility` over per-item part values.

    ``items`` maps each set to its parts' per-item arrays (``{"retain": {"retain_prob": ..., ...}}``,
    as ``_utility_parts(view)`` returns them). What is resampled: the items of each set,
    independently across sets; the parts of one set share that set's indices (they are the same
    questions). Per draw the part means and their harmonic mean are recomputed. Indices are drawn set
    by set in ``items`` order, ``rng.integers(0, n, size=(n_boot, n))`` with
    ``rng = np.random.default_rng(seed)``. None when a set has fewer than two items or its parts
    differ in length (nothing to pair).
    """
    rng = np.random.default_rng(seed)
    means: dict[str, np.ndarray] = {}  # part name -> (n_boot,) resampled means
    for per_set in items.values():
        arrs = {name: np.asarray(v, dtype=np.float64) for name, v in per_set.items()}
        sizes = {v.size for v in arrs.values()}
        if len(sizes) != 1 or min(sizes) < 2:
            return None
        n = sizes.pop()
        idx = rng.integers(0, n, size=(n_boot, n))
        for name, v in arrs.items():
            means[name] = v[idx].mean(axis=1)
    if not means:
        return None
    stats = np.array([harmonic_mean_utility({name: m[i] for name, m in means.items()}) for i in range(n_boot)])
    lo, hi = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


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


# Per-item values of the per-set statistics (the registered metrics and model utility share them).
def _prob_items(view: AuditView, base: str) -> np.ndarray:
    return answer_probability(view.need(base).mean_nll())


def _prob_normalised_items(view: AuditView, base: str) -> np.ndarray:
    pert = np.stack([s.mean_nll() for s in view.need_perturbed(base)], axis=1)
    return normalised_probability(view.need(base).mean_nll(), pert)


def _rouge_items(view: AuditView, base: str) -> np.ndarray:
    ss = view.need(base)
    if ss.generations is None:
        raise KeyError(f"{base}_rouge needs greedy generations of the {base} set; audit with generate=True")
    return rouge_l_scores(ss.answers, ss.generations, kind="recall", stem=True)


def _truth_ratio_items(view: AuditView, base: str) -> np.ndarray:
    r = truth_ratios(view, base)
    return truth_ratio_closer_to_1(r) if base == "forget" else truth_ratio_true_better(r)


def _make_prob(base: str, direction: str):
    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        return _result(f"{base}_prob", _prob_items(view, base), direction)

    metric.__doc__ = f"Mean answer probability exp(-mean NLL) on the {base} set."
    return metric


def _make_prob_normalised(base: str):
    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        return _result(f"{base}_prob_normalised", _prob_normalised_items(view, base), "higher")

    metric.__doc__ = f"P_true / (P_true + Σ P_perturbed) on the {base} set."
    return metric


def _make_rouge(base: str, direction: str):
    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        return _result(f"{base}_rouge", _rouge_items(view, base), direction)

    metric.__doc__ = f"ROUGE-L recall (stemmed) of greedy generations vs gold answers on the {base} set (TOFU)."
    return metric


def _make_truth_ratio(base: str):
    forget = base == "forget"

    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        direction = "closer_to_reference" if forget else "higher"
        return _result(f"{base}_truth_ratio", _truth_ratio_items(view, base), direction,
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
    """KS-test p-value of forget truth ratios vs the retain-only oracle's (1 = indistinguishable).

    CI: percentile bootstrap (200 draws, seed 0) over the forget items (:func:`forget_quality_ci`):
    paired, the same item indices applied to model and oracle, when both have the same number of items
    (scored, or logged for the same items); otherwise each side resampled independently."""
    if ref is None:
        raise MissingReferenceError("forget_quality compares forget truth ratios with the retain-only oracle's; "
                                    "pass the oracle (reference=...) to the audit")
    a = truth_ratios(view, "forget")
    # An oracle read from logs (an OpenUnlearning TOFU_EVAL.json) carries its per-item truth ratios, not scores.
    logged = ref.extra.get(ORACLE_TRUTH_RATIOS)
    b = np.asarray(logged, dtype=np.float64) if logged is not None else truth_ratios(ref, "forget")
    return MetricResult("forget_quality", ks_forget_quality(a, b), "higher", n=int(a.size),
                        ci=forget_quality_ci(a, b), compared_to="oracle",
                        details={"truth_ratios": a.tolist(), "oracle_truth_ratios": b.tolist(),
                                 "oracle_from": "logs" if logged is not None else "scored"})


# The nine TOFU utility statistics: (probability, ROUGE, truth ratio) on retain, real authors and
# world facts. Retain uses the raw probability, the other two the normalised one.
def _utility_parts(view: AuditView) -> tuple[dict[str, float], list[str], dict[str, dict[str, np.ndarray]]]:
    """``(parts, missing, items)``: each part's mean (the value its registered metric reports), the sets
    the view lacks, and the per-item arrays ``{set: {part name: array}}`` (what :func:`model_utility_ci`
    resamples)."""
    parts, missing, items = {}, [], {}
    for base in UTILITY_SETS:
        if base not in view.sets:
            missing.append(base)
            continue
        prob = ((f"{base}_prob", _prob_items) if base == "retain"
                else (f"{base}_prob_normalised", _prob_normalised_items))
        items[base] = {}
        for name, fn in (prob, (f"{base}_rouge", _rouge_items), (f"{base}_truth_ratio", _truth_ratio_items)):
            per = np.asarray(fn(view, base), dtype=np.float64)
            items[base][name] = per
            parts[name] = float(per.mean())
    return parts, missing, items


@register("metric", "model_utility", **TOFU)
def model_utility(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """Harmonic mean of the retain / real-author / world-fact probability, ROUGE and truth ratio
    (TOFU's nine statistics; sets the task lacks are listed in details).

    CI: percentile bootstrap (200 draws, seed 0) resampling each set's items independently, the three
    statistics of one set sharing that set's indices; the nine means and their harmonic mean are
    recomputed per draw (:func:`model_utility_ci`)."""
    parts, missing, items = _utility_parts(view)
    if not parts:
        raise KeyError("model_utility needs at least one of the retain, real_authors, world_facts sets")
    return MetricResult("model_utility", harmonic_mean_utility(parts), "higher", n=len(parts),
                        ci=model_utility_ci(items), details={"parts": parts, "missing_sets": missing})
