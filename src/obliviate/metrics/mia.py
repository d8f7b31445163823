"""Membership-inference attacks on forget (members) vs holdout (non-members), and PrivLeak.

Convention (OpenUnlearning `mia/utils.py`): every per-example score is loss-like (higher = more
like a non-member); labels are forget = 0, holdout = 1; AUC = roc_auc_score(labels, scores) =
P(score_holdout > score_forget). AUC -> 1 while the forget set is still memorised, ≈ the oracle's
AUC after ideal unlearning (0.5 when forget and holdout are exchangeable for the oracle).
MUSE reports 1 - this AUC; `privleak_muse` follows MUSE.
Token slicing: LOSS and zlib use every answer token incl. EOS; Min-K% and Min-K%++ drop the final
token as OpenUnlearning does (PR #101).
"""

from __future__ import annotations

import zlib as _zlib
from typing import Callable

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from obliviate.metrics.base import MetricResult, MissingReferenceError, two_sample_bootstrap_ci
from obliviate.registry import register
from obliviate.scoring.types import AuditView, ScoredSet

OU = "https://github.com/locuslab/open-unlearning"


# ---- array functions ------------------------------------------------------------------------
def mia_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """ROC-AUC with members labelled 0 and non-members 1, scores loss-like."""
    m, n = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    labels = np.r_[np.zeros(len(m)), np.ones(len(n))]
    return float(roc_auc_score(labels, np.r_[m, n]))


def rank_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """The same AUC as :func:`mia_auc` by the Mann-Whitney rank sum (ties count one half), without
    scikit-learn's per-call input validation: the bootstrap calls it hundreds of times."""
    m, n = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    ranks = rankdata(np.r_[m, n])
    return float((ranks[len(m):].sum() - len(n) * (len(n) + 1) / 2) / (len(m) * len(n)))


def min_k_score(token_logprobs: np.ndarray, k: float = 0.4, drop_last: bool = True) -> float:
    """-mean of the lowest max(1, floor(k·L)) token log-probs (Shi et al., arXiv 2310.16789)."""
    lp = np.asarray(token_logprobs, float)
    if drop_last and lp.size > 1:
        lp = lp[:-1]
    n = max(1, int(np.floor(k * lp.size)))
    return float(-np.sort(lp)[:n].mean())


def min_k_plus_plus_score(token_logprobs: np.ndarray, mu: np.ndarray, var: np.ndarray, k: float = 0.4,
                          drop_last: bool = True) -> float:
    """Min-K%++ (Zhang et al., arXiv 2404.02936): z_t = (log p(y_t) - μ_t) / σ_t, σ² clamped at 1e-6;
    score = -mean of the lowest k fraction of z_t."""
    lp, mu, var = (np.asarray(a, float) for a in (token_logprobs, mu, var))
    if drop_last and lp.size > 1:
        lp, mu, var = lp[:-1], mu[:-1], var[:-1]
    z = (lp - mu) / np.sqrt(np.maximum(var, 1e-6))
    n = max(1, int(np.floor(k * z.size)))
    return float(-np.sort(z)[:n].mean())


def zlib_score(mean_nll: float, text: str) -> float:
    """Mean NLL divided by the zlib-compressed length of the text (Carlini et al. 2021)."""
    return float(mean_nll / len(_zlib.compress(text.encode("utf-8"))))


def privleak(auc_model: float, auc_ref: float) -> float:
    """OpenUnlearning: ((1 - AUC) - (1 - AUC_ref)) / ((1 - AUC_ref) + 1e-10) × 100.
    ≈ -100: forget still member-like; 0: like the oracle; ≫ 0: over-unlearned."""
    return ((1 - auc_model) - (1 - auc_ref)) / ((1 - auc_ref) + 1e-10) * 100


def privleak_ci(forget: np.ndarray, holdout: np.ndarray, auc_ref: float, ref_forget: np.ndarray | None = None,
               ref_holdout: np.ndarray | None = None, n_boot: int = 200, seed: int = 0,
               alpha: float = 0.05) -> tuple[float, float] | None:
    """Percentile-bootstrap CI of :func:`privleak` over the model's per-example MIA scores.

    What is resampled: forget indices and holdout indices, independently, each draw. The model's AUC
    is taken on the resampled items (with :func:`rank_auc`, the same Mann-Whitney AUC as the value's
    :func:`mia_auc` to 1e-12, several times faster: 200 draws of 400 + 400 items in a fraction of a second); when the oracle's scores
    are given with the same numbers of forget and holdout items, the oracle's AUC on the same resampled
    indices (paired), else the fixed ``auc_ref`` (an oracle AUC read from logs). Indices are drawn at
    once, forget then holdout, ``rng.integers(0, n, size=(n_boot, n))`` with
    ``rng = np.random.default_rng(seed)``. None when either side has fewer than two items.
    """
    f, h = np.asarray(forget, float), np.asarray(holdout, float)
    if f.size < 2 or h.size < 2:
        return None
    paired = (ref_forget is not None and ref_holdout is not None
              and len(ref_forget) == f.size and len(ref_holdout) == h.size)
    rf, rh = (np.asarray(ref_forget, float), np.asarray(ref_holdout, float)) if paired else (None, None)
    rng = np.random.default_rng(seed)
    i_f = rng.integers(0, f.size, size=(n_boot, f.size))
    i_h = rng.integers(0, h.size, size=(n_boot, h.size))
    stats = np.array([privleak(rank_auc(f[jf], h[jh]), rank_auc(rf[jf], rh[jh]) if paired else auc_ref)
                      for jf, jh in zip(i_f, i_h)])
    lo, hi = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def privleak_muse(auc_model_muse: float, auc_retrain_muse: float) -> float:
    """MUSE (`eval.py`): (AUC - AUC_retrain) / AUC_retrain × 100, AUCs in MUSE's convention (1 - ours)."""
    return (auc_model_muse - auc_retrain_muse) / auc_retrain_muse * 100


# ---- per-set scorers ------------------------------------------------------------------------
def scores_loss(ss: ScoredSet) -> np.ndarray:
    return ss.mean_nll()


def scores_zlib(ss: ScoredSet) -> np.ndarray:
    return np.array([zlib_score(n, t) for n, t in zip(ss.mean_nll(), ss.answers)])


def scores_min_k(ss: ScoredSet, k: float = 0.4) -> np.ndarray:
    return np.array([min_k_score(lp, k) for lp in ss.token_logprobs])


def scores_min_k_pp(ss: ScoredSet, k: float = 0.4) -> np.ndarray:
    return np.array([min_k_plus_plus_score(lp, m, v, k) for lp, m, v in
                     zip(ss.token_logprobs, ss.token_vocab_mean, ss.token_vocab_var)])


def _auc_result(name: str, member: np.ndarray, nonmember: np.ndarray, details: dict | None = None,
                compared_to: str | None = None) -> MetricResult:
    return MetricResult(name, mia_auc(member, nonmember), "closer_to_reference", n=len(member) + len(nonmember),
                        ci=two_sample_bootstrap_ci(member, nonmember, rank_auc, n_boot=200),
                        compared_to=compared_to,
                        details={"member": "forget (label 0)", "nonmember": "holdout (label 1)",
                                 "score": "loss-like, higher = non-member", **(details or {})})


def _make_mia(name: str, scorer: Callable[[ScoredSet], np.ndarray], summary: str):
    def metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
        return _auc_result(name, scorer(view.need("forget")), scorer(view.need("holdout")))

    metric.__doc__ = summary
    return metric


register("metric", "mia_loss", paper="Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting",
         arxiv="1709.01604", code=OU)(_make_mia("mia_loss", scores_loss, "AUC of the mean answer NLL."))
register("metric", "mia_zlib", paper="Extracting Training Data from Large Language Models", arxiv="2012.07805",
         code=OU)(_make_mia("mia_zlib", scores_zlib, "AUC of NLL / zlib length."))
register("metric", "mia_min_k", paper="Detecting Pretraining Data from Large Language Models", arxiv="2310.16789",
         code=OU)(_make_mia("mia_min_k", scores_min_k, "AUC of Min-K% (k = 0.4)."))
register("metric", "mia_min_k_plus_plus", paper="Min-K%++: Improved Baseline for Detecting Pre-Training Data",
         arxiv="2404.02936", code=OU)(_make_mia("mia_min_k_plus_plus", scores_min_k_pp, "AUC of Min-K%++ (k = 0.4)."))


@register("metric", "mia_reference",
          paper="Quantifying Privacy Risks of Masked Language Models Using Membership Inference Attacks",
          arxiv="2203.03929", code=OU)
def mia_reference(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """AUC of NLL_model - NLL_reference (the reference is the oracle)."""
    if ref is None:
        raise MissingReferenceError("mia_reference calibrates each loss by a reference model's; pass the oracle")
    m = view.need("forget").mean_nll() - ref.need("forget").mean_nll()
    n = view.need("holdout").mean_nll() - ref.need("holdout").mean_nll()
    return _auc_result("mia_reference", m, n, compared_to="oracle")


@register("metric", "mia_gradnorm",
          paper="OpenUnlearning: Accelerating LLM Unlearning via Unified Benchmarking of Methods and Metrics",
          arxiv="2506.12618", code=OU)
def mia_gradnorm(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """AUC of per-example gradient norms (mean of per-tensor L2 norms); members have smaller ones."""
    for key in ("gradnorm:forget", "gradnorm:holdout"):
        if key not in view.extra:
            raise KeyError(f"mia_gradnorm needs per-example gradient norms ({key}); audit with gradnorm=True")
    return _auc_result("mia_gradnorm", view.extra["gradnorm:forget"], view.extra["gradnorm:holdout"])


@register("metric", "privleak", paper="MUSE: Machine Unlearning Six-Way Evaluation for Language Models",
          arxiv="2407.06460", code=OU)
def privleak_metric(view: AuditView, ref: AuditView | None = None) -> MetricResult:
    """Relative gap of the Min-K% AUC to the oracle's, in % (OpenUnlearning formula; 0 is ideal).

    CI: percentile bootstrap (200 draws, seed 0) resampling forget and holdout indices
    (:func:`privleak_ci`); a scored oracle with as many items is re-evaluated on the same indices, an
    oracle AUC from logs (or an oracle with other item counts) is held fixed."""
    if ref is None:
        raise MissingReferenceError("privleak is relative to the retain-only oracle's Min-K% AUC; pass the oracle "
                                    "(obliviate never falls back to AUC 0.5)")
    f, h = scores_min_k(view.need("forget")), scores_min_k(view.need("holdout"))
    auc = mia_auc(f, h)
    # An oracle read from logs (an OpenUnlearning TOFU_EVAL.json) carries its AUC ("oracle:mia_min_k_auc").
    logged = ref.extra.get("oracle:mia_min_k_auc")
    if logged is not None:
        auc_ref, rf, rh = float(logged), None, None
    else:
        rf, rh = scores_min_k(ref.need("forget")), scores_min_k(ref.need("holdout"))
        auc_ref = mia_auc(rf, rh)
    return MetricResult("privleak", privleak(auc, auc_ref), "closer_to_zero", n=len(view.need("forget")),
                        ci=privleak_ci(f, h, auc_ref, rf, rh), compared_to="oracle",
                        details={"auc": auc, "auc_oracle": auc_ref})
