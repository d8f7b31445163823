"""U-LiRA arithmetic: per-example Gaussian likelihood ratios and the attack's AUC / TPR at low FPR.

Hayes, Shumailov, Triantafillou, Khalifa, Papernot, "Inexact Unlearning Needs More Careful
Evaluations to Avoid a False Sense of Privacy", SaTML 2025 (arXiv 2403.01218). For a target
example x the attacker holds φ(x) = log(p_y/(1 − p_y)) under shadow models of two kinds:

- IN: trained with x, then unlearned (x in the shadow's forget set) by the audited method;
- OUT: trained without x (a retrained model: it never saw x and was never unlearned).

It fits one Gaussian to each side and scores a model by Λ(x) = log N(φ; μ_in, σ_in) −
log N(φ; μ_out, σ_out). A target is "unlearned with x" (positive) or "retrained without x"
(negative); AUC 50 means unlearning is indistinguishable from retraining.

Pure functions over score arrays; training the shadows lives in ``obliviate.auditing``.
"""

from __future__ import annotations

import math

import numpy as np

from obliviate.metrics.base import MetricResult, two_sample_bootstrap_ci


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """φ = log p_y - log Σ_{k≠y} p_k = log(p_y / (1 - p_y)), computed stably (LiRA / challenge code)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    idx = np.arange(len(z))
    y = np.asarray(labels)
    pc = p[idx, y].copy()
    p[idx, y] = 0.0
    return np.log(pc + 1e-45) - np.log(p.sum(1) + 1e-45)


def balanced_in_mask(n_shadows: int, n: int, seed: int = 0) -> np.ndarray:
    """(K, n) bool: shadow k trains on (then unlearns) example j. Each example is IN for exactly ⌊K/2⌋
    shadows, chosen by a per-example random ranking of the shadows (as in LiRA), so every example gets
    K/2 IN and K/2 OUT scores."""
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((n_shadows, n)), axis=0)
    return order < n_shadows // 2


def _gauss_logpdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)


def ulira_scores(shadow_phi: np.ndarray, in_mask: np.ndarray, target_phi: np.ndarray, *,
                 min_side: int = 2, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-example log-likelihood ratio log N(φ; μ_in, σ_in) - log N(φ; μ_out, σ_out).

    ``shadow_phi`` (K, n): φ of example j under shadow k's model *for that example*: the unlearned
    model where ``in_mask[k, j]`` (trained on, then unlearned, x_j: IN), the retrained model elsewhere
    (never saw x_j: OUT). ``target_phi`` (..., n): φ under the audited model(s). A side with < 2
    distinct values uses the pooled σ of all shadows (spec §9). Returns (scores, covered) where covered
    marks examples with ≥ ``min_side`` IN and OUT scores (others score NaN). Higher = more like
    "trained then unlearned". ``valid`` (K, n), default all True, drops entries that are neither IN nor
    OUT (a shadow that trained on x and kept it).
    """
    phi = np.asarray(shadow_phi, np.float64)
    m = np.asarray(in_mask, bool)
    ok = np.ones_like(m) if valid is None else np.asarray(valid, bool)
    out_m = ~m & ok
    m = m & ok
    n_in, n_out = m.sum(0), out_m.sum(0)
    covered = (n_in >= min_side) & (n_out >= min_side)
    pooled = max(float(np.std(phi[ok])), 1e-6) if ok.any() else 1.0

    def stats(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cnt = np.maximum(mask.sum(0), 1)
        mu = np.where(mask, phi, 0.0).sum(0) / cnt
        var = np.where(mask, (phi - mu) ** 2, 0.0).sum(0) / cnt
        distinct = np.array([len(np.unique(phi[mask[:, j], j])) for j in range(phi.shape[1])])
        sd = np.where(distinct >= 2, np.sqrt(var), pooled)
        return mu, np.maximum(sd, 1e-6)

    mu_in, sd_in = stats(m)
    mu_out, sd_out = stats(out_m)
    t = np.asarray(target_phi, np.float64)
    s = _gauss_logpdf(t, mu_in, sd_in) - _gauss_logpdf(t, mu_out, sd_out)
    return np.where(covered, s, np.nan), covered


def ulira_leave_one_out(shadow_phi: np.ndarray, in_mask: np.ndarray, *, min_side: int = 2,
                        valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every shadow in turn is the target model, attacked with Gaussians fit on the other K − 1.

    Row k of the returned (K, n) scores is Λ of shadow k's model for each example (its unlearned model
    where ``in_mask[k]``, its retrained one elsewhere), so the targets are K models of each kind per
    example, never used to fit their own Gaussians. ``covered`` (K, n) marks scores with ≥ ``min_side``
    IN and OUT shadows left.
    """
    phi = np.asarray(shadow_phi, np.float64)
    m = np.asarray(in_mask, bool)
    ok = np.ones_like(m) if valid is None else np.asarray(valid, bool)
    scores, covered = np.full(phi.shape, np.nan), np.zeros(phi.shape, bool)
    for k in range(phi.shape[0]):
        rest = np.arange(phi.shape[0]) != k
        scores[k], covered[k] = ulira_scores(phi[rest], m[rest], phi[k], min_side=min_side, valid=ok[rest])
    scores[~ok] = np.nan
    return scores, covered & ok


def tpr_at_fpr(pos_scores: np.ndarray, neg_scores: np.ndarray, fpr: float) -> float:
    """Largest TPR with FPR ≤ ``fpr`` (positives = higher scores), from the ROC curve."""
    from sklearn.metrics import roc_curve

    y = np.r_[np.ones(len(pos_scores)), np.zeros(len(neg_scores))]
    f, t, _ = roc_curve(y, np.r_[pos_scores, neg_scores])
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def ulira_from_scores(unlearned_scores: np.ndarray, retrained_scores: np.ndarray, *, n_shadows: int = 0,
                      coverage: float = 1.0) -> MetricResult:
    """AUC (in %, 50 ideal) of likelihood-ratio scores: positives (unlearned with x) vs negatives
    (retrained without x); TPR at 1% and 0.1% FPR in details, each with the number of negatives
    supporting it (FPR α needs ≥ 1/α negatives to mean anything)."""
    from sklearn.metrics import roc_auc_score

    from obliviate.metrics.mia import rank_auc

    pos = np.asarray(unlearned_scores, np.float64).ravel()
    neg = np.asarray(retrained_scores, np.float64).ravel()
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("ulira: no example has enough IN and OUT shadow scores; train more shadows")
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    auc = 100.0 * float(roc_auc_score(y, np.r_[pos, neg]))
    # rank_auc(members=b, non-members=a) = P(score_a > score_b): the same AUC without sklearn's overhead
    ci = two_sample_bootstrap_ci(pos, neg, lambda a, b: 100.0 * rank_auc(b, a), n_boot=200)
    # the paper's balanced accuracy of the likelihood-ratio test "IN iff Λ > 0"
    acc = 50.0 * (float((pos > 0).mean()) + float((neg <= 0).mean()))
    details = {"n_pos": len(pos), "n_neg": len(neg), "n_shadows": n_shadows, "coverage": coverage,
               "accuracy": acc}
    for alpha, key in ((0.01, "tpr_at_1pct_fpr"), (0.001, "tpr_at_0.1pct_fpr")):
        details[key] = 100.0 * tpr_at_fpr(pos, neg, alpha)
        details[key + "_supported"] = len(neg) * alpha >= 1.0  # at least one negative may be a false positive
    return MetricResult("ulira", auc, "closer_to_reference", n=len(pos) + len(neg), ci=ci, compared_to="oracle",
                        details=details)


def ulira_from_targets(target_scores: np.ndarray, target_in: np.ndarray) -> MetricResult:
    # NaN scores (not a target for that example, or too few shadows) are left out
    """U-LiRA over many target models: ``target_scores`` (T, n) is Λ of example j under target model t,
    which unlearned x_j where ``target_in[t, j]`` (positive) and never trained on it elsewhere (negative).

    The value is the AUC over all (target, example) pairs; ``details`` adds the per-example AUC
    spread (mean, std, 10/50/90th percentiles, share of examples above 60 and 75), the numbers of
    targets, examples and pairs, and TPR at 1% / 0.1% FPR with their support.
    """
    from obliviate.metrics.mia import rank_auc

    s = np.asarray(target_scores, np.float64)
    m = np.asarray(target_in, bool)
    if s.shape != m.shape:
        raise ValueError(f"target scores {s.shape} and membership {m.shape} must have the same shape")
    r = ulira_from_scores(s[m], s[~m], n_shadows=s.shape[0], coverage=float((~np.isnan(s)).mean()))
    per_example = []
    for j in range(s.shape[1]):
        pos, neg = s[m[:, j], j], s[~m[:, j], j]
        pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
        if len(pos) and len(neg):
            per_example.append(100.0 * rank_auc(neg, pos))  # P(Λ_pos > Λ_neg), ties count ½
    pe = np.asarray(per_example, np.float64)
    r.details.update({
        "n_targets": int(s.shape[0]), "n_examples": int(s.shape[1]), "n_examples_scored": int(len(pe)),
        "per_example_auc_mean": float(pe.mean()) if len(pe) else float("nan"),
        "per_example_auc_std": float(pe.std()) if len(pe) else float("nan"),
        **{f"per_example_auc_p{q}": float(np.percentile(pe, q)) if len(pe) else float("nan") for q in (10, 50, 90)},
        "share_examples_auc_above_60": float((pe > 60).mean()) if len(pe) else float("nan"),
        "share_examples_auc_above_75": float((pe > 75).mean()) if len(pe) else float("nan"),
    })
    return r
