"""MUSE metrics (Shi et al., "MUSE: Machine Unlearning Six-Way Evaluation for Language Models",
arXiv 2407.06460; reference code swj0419/muse_bench `eval.py`, `metrics/`).

Conventions (see specs/seed_llm_methods.md §8 and metric_conventions.md):
- VerbMem (C1): ROUGE-L **F1** of the greedy continuation of a forget-text prompt against the true
  continuation, the reference cut to as many tokens as were generated (MUSE: 128). The scored set is
  ``verbmem`` (built by `scoring.views` from MUSE's ``verbmem/forget`` pairs or from the forget texts).
- KnowMem (C2 forget, C4 retain): ROUGE-L **F1** of the greedy answer against the gold answer on the
  ``knowmem_forget`` / ``knowmem_retain`` QA sets (MUSE tasks), else the ``forget`` / ``retain`` QA
  sets. MUSE prompts with 10 in-context "Question/Answer" examples and cuts the output at "\\n\\n" /
  "\\nQuestion" / "Question:"; obliviate scores the cached generations of the audit's prompt format and
  applies the same stop strings (`cut_at_stop`).
- Stemming: original MUSE uses ``use_stemmer=False``; OpenUnlearning's MUSE uses stemming. Default
  here is MUSE's (no stemmer); the pure functions take ``stem=``. Scale: 0-1 (MUSE reports ×100).
- PrivLeak (C3): Min-K% (k = 0.4) AUC forget vs holdout in **MUSE's** convention (1 - obliviate's
  `mia_auc`), relative to the retrained oracle's: (AUC - AUC_retrain) / AUC_retrain × 100. ≈ -100:
  under-unlearning, 0: like the oracle, > 0: over-unlearning. MUSE's published retrain AUCs are in
  `MUSE_AUC_RETRAIN` for users without a retrained model; the registered metric needs the oracle view.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from obliviate.metrics.base import MetricResult, MissingReferenceError, bootstrap_ci
from obliviate.metrics.mia import mia_auc, scores_min_k
from obliviate.metrics.mia import privleak_muse as privleak_muse_formula
from obliviate.metrics.text import rouge_l_scores
from obliviate.registry import register
from obliviate.scoring.types import AuditView, ScoredSet

MUSE = dict(paper="MUSE: Machine Unlearning Six-Way Evaluation for Language Models", arxiv="2407.06460",
            code="https://github.com/swj0419/muse_bench")
# swj0419/muse_bench constants.py: AUC_RETRAIN["forget_holdout_Min-40%"] in MUSE's AUC convention.
MUSE_AUC_RETRAIN = {"news": 0.4772, "books": 0.5393}
# MUSE knowmem generation stop strings (eval.py / OpenUnlearning muse knowmem config).
KNOWMEM_STOPS = ("\n\n", "\nQuestion", "Question:")
MUSE_STEM = False  # original MUSE: RougeScorer(["rougeL"], use_stemmer=False)


# ---- array functions --------------------------------------------------------------------------
def cut_at_stop(text: str, stops: Sequence[str] = KNOWMEM_STOPS) -> str:
    """Cut a generation at the first stop string (MUSE knowmem post-processing)."""
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()


def verbmem_scores(references: Sequence[str], continuations: Sequence[str], stem: bool = MUSE_STEM) -> np.ndarray:
    """Per-item ROUGE-L F1 of greedy continuations against the true continuations."""
    return rouge_l_scores(references, continuations, kind="f1", stem=stem)


def knowmem_scores(answers: Sequence[str], generations: Sequence[str], stem: bool = MUSE_STEM,
                   stops: Sequence[str] = KNOWMEM_STOPS) -> np.ndarray:
    """Per-item ROUGE-L F1 of (stop-cut) generated answers against the gold answers."""
    return rouge_l_scores(answers, [cut_at_stop(g, stops) for g in generations], kind="f1", stem=stem)


def muse_min_k_auc(forget: ScoredSet, holdout: ScoredSet, k: float = 0.4) -> float:
    """Min-K% AUC in MUSE's convention: P(forget looks less member-like than holdout) = 1 - `mia_auc`.

    MUSE (`metrics/privleak.py`) labels forget 0, holdout 1 and ranks by -score, score = -mean of the
    lowest k token log-probs; that is 1 - roc_auc(labels, score), i.e. 1 - obliviate's `mia_auc`.
    """
    return 1.0 - mia_auc(scores_min_k(forget, k), scores_min_k(holdout, k))


# ---- registered metrics -----------------------------------------------------------------------
def _generations(ss: ScoredSet, name: str, set_name: str) -> list[str]:
    if ss.generations is None:
        raise KeyError(f"{name} needs greedy generations of the {set_name!r} set; audit with generate=True")
    return ss.generations


def _mean_result(name: str, per: np.ndarray, direction: str, details: dict) -> MetricResult:
    return MetricResult(name, float(per.mean()) if per.size else float("nan"), direction, n=int(per.size),
                        ci=bootstrap_ci(per), details=details)


@register("metric", "verbmem_forget", needs=("verbmem",), **MUSE)
def verbmem_forget(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """MUSE VerbMem on the forget set: ROUGE-L F1 (no stemmer) of greedy continuations (lower = forgotten)."""
    ss = view.need("verbmem")
    per = verbmem_scores(ss.answers, _generations(ss, "verbmem_forget", "verbmem"))
    return _mean_result("verbmem_forget", per, "lower", {"rouge": "rougeL F1, use_stemmer=False", "scale": "0-1"})


def _make_knowmem(base: str, direction: str):
    name = f"knowmem_{base}"

    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        # MUSE tasks (data.loaders.load_muse) keep the KnowMem QA apart from the training sets.
        key = name if name in view.sets else base
        ss = view.need(key)
        per = knowmem_scores(ss.answers, _generations(ss, name, key))
        return _mean_result(name, per, direction, {"rouge": "rougeL F1, use_stemmer=False", "scale": "0-1",
                                                   "stops": list(KNOWMEM_STOPS), "set": key})

    metric.__doc__ = (f"MUSE KnowMem on the {base} QA set: ROUGE-L F1 of greedy answers vs gold "
                      f"({'lower' if direction == 'lower' else 'higher'} is better).")
    metric.__name__ = name
    return metric


register("metric", "knowmem_forget", needs=("forget",), **MUSE)(_make_knowmem("forget", "lower"))
register("metric", "knowmem_retain", needs=("retain",), **MUSE)(_make_knowmem("retain", "higher"))


def _privleak_sets(view: AuditView) -> tuple[ScoredSet, ScoredSet, str]:
    """MUSE's privleak/forget vs privleak/holdout texts when present, else raw texts, else QA answers."""
    for f, h in (("privleak_forget", "privleak_holdout"), ("forget_text", "holdout_text")):
        if f in view.sets and h in view.sets:
            return view.sets[f], view.sets[h], f"{f} vs {h}"
    return view.need("forget"), view.need("holdout"), "forget vs holdout"


@register("metric", "privleak_muse", **MUSE)
def privleak_muse(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """MUSE PrivLeak in %: (AUC - AUC_oracle) / AUC_oracle × 100, Min-40% AUC in MUSE's convention (0 is ideal)."""
    if ref is None:
        raise MissingReferenceError(
            "privleak_muse is relative to the retrained oracle's Min-K% AUC; pass the oracle (reference=...). "
            f"MUSE's published retrain AUCs are obliviate.metrics.muse.MUSE_AUC_RETRAIN = {MUSE_AUC_RETRAIN}.")
    f, h, which = _privleak_sets(view)
    rf, rh, _ = _privleak_sets(ref)
    auc, auc_ref = muse_min_k_auc(f, h), muse_min_k_auc(rf, rh)
    # MUSE divides by the oracle's AUC; an oracle whose forget set is perfectly member-like (AUC 0) leaves
    # PrivLeak undefined, so report NaN rather than MUSE's division error or OpenUnlearning's 1e-10 blow-up.
    value = privleak_muse_formula(auc, auc_ref) if auc_ref > 0 else float("nan")
    return MetricResult("privleak_muse", value, "closer_to_zero",
                        n=len(f) + len(h), compared_to="oracle",
                        details={"auc_muse": auc, "auc_oracle_muse": auc_ref, "sets": which, "k": 0.4,
                                 "convention": "MUSE: AUC = 1 - obliviate mia_auc; forget label 0"})
