"""Audit metrics for image (or any tensor) classifiers: UA/RA/TA, SVC MIA-Efficacy, Avg. Gap,
U-LiRA, the NeurIPS 2023 challenge score and relearn time.

Every formula is a pure function over arrays (logits, labels, per-model scores); thin wrappers
run a model over a ``Dataset`` once to produce those arrays. Accuracies are in percent
(0-100), as the OPTML-Group papers report them, so gaps are in percentage points.

Registered with modality ``"image"`` (the LLM audit only picks up ``"text"`` metrics); this
module is imported by ``obliviate.benchmarks.digits_bench``, not by ``obliviate.metrics``.

References: UA/RA/TA and MIA-Efficacy follow OPTML-Group/Unlearn-Sparse
(``evaluation/SVC_MIA.py``); the challenge score follows google-deepmind/unlearning_evaluation
(``metric.py``); U-LiRA follows Hayes et al., "Inexact Unlearning Needs More Careful Evaluations
to Avoid a False Sense of Privacy" (arXiv 2403.01218).
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset, Subset

from obliviate.metrics.base import MetricResult, MissingReferenceError, bootstrap_ci, paired_bootstrap_ci
from obliviate.registry import register

SPARSE = "https://github.com/OPTML-Group/Unlearn-Sparse"
CHALLENGE = "https://github.com/google-deepmind/unlearning_evaluation"
DELTA = 1e-5  # challenge: δ of the (ε, δ) estimate
EPSILON_CAP = 50.0  # challenge: ε is clipped to [0, 50]
NUM_THRESHOLDS_PER_UNIT = 100  # challenge: threshold grid density


# ---- running a model ------------------------------------------------------------------------
def _tensors(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    from obliviate.benchmarks.digits import dataset_tensors

    return dataset_tensors(ds)


@torch.no_grad()
def predict_logits(model: nn.Module, dataset: Dataset, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (N, C) float64, labels (N,) int64)`` of ``model`` on ``dataset`` in eval mode."""
    x, y = _tensors(dataset)
    was_training = model.training
    model.eval()
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = [model(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, len(y), batch_size)]
    model.train(was_training)
    logits = torch.cat(out).double().numpy() if out else np.zeros((0, 0))
    return logits, y.numpy().astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---- accuracy family ------------------------------------------------------------------------
def accuracy_from_logits(logits: np.ndarray, labels: np.ndarray, name: str = "accuracy",
                         direction: str = "higher") -> MetricResult:
    """Top-1 accuracy in percent with a bootstrap CI over examples."""
    correct = (np.asarray(logits).argmax(1) == np.asarray(labels)).astype(np.float64)
    ci = bootstrap_ci(100.0 * correct)
    value = float(100.0 * correct.mean()) if len(correct) else float("nan")
    return MetricResult(name, value, direction, n=len(correct), ci=ci)  # type: ignore[arg-type]


def accuracy(model: nn.Module, dataset: Dataset) -> MetricResult:
    """acc(D) in percent."""
    return accuracy_from_logits(*predict_logits(model, dataset))


def _flip(r: MetricResult, name: str, direction: str) -> MetricResult:
    ci = None if r.ci is None else (100.0 - r.ci[1], 100.0 - r.ci[0])
    return MetricResult(name, 100.0 - r.value, direction, n=r.n, ci=ci, compared_to="oracle")  # type: ignore[arg-type]


def unlearning_accuracy(model: nn.Module, forget_set: Dataset) -> MetricResult:
    """UA = 100 - acc(D_f); the target is the retrain oracle's UA (≈ its test error for random forgetting)."""
    return _flip(accuracy(model, forget_set), "unlearning_accuracy", "closer_to_reference")


def retain_accuracy(model: nn.Module, retain_set: Dataset) -> MetricResult:
    """RA = acc(D_r)."""
    r = accuracy(model, retain_set)
    return MetricResult("retain_accuracy", r.value, "higher", n=r.n, ci=r.ci)


def test_accuracy(model: nn.Module, test_set: Dataset) -> MetricResult:
    """TA = acc(D_t)."""
    r = accuracy(model, test_set)
    return MetricResult("test_accuracy", r.value, "higher", n=r.n, ci=r.ci)


# ---- SVC MIA-Efficacy -----------------------------------------------------------------------
MIA_FEATURES = ("confidence", "entropy", "m_entropy", "prob", "correctness")


def mia_features(probs: np.ndarray, labels: np.ndarray, feature: str = "confidence") -> np.ndarray:
    """Per-example attack features ``(N, d)`` from softmax probabilities (Unlearn-Sparse ``SVC_MIA``).

    confidence: p_y; entropy: -Σ p log p; m_entropy (Song & Mittal 2021, from its definition, not the
    buggy upstream port): -(1 - p_y) log p_y - Σ_{k≠y} p_k log(1 - p_k); prob: the full vector;
    correctness: 1[argmax = y].
    """
    p = np.clip(np.asarray(probs, np.float64), 1e-30, 1.0)
    y = np.asarray(labels)
    idx = np.arange(len(y))
    py = p[idx, y]
    if feature == "confidence":
        return py[:, None]
    if feature == "entropy":
        return -(p * np.log(p)).sum(1, keepdims=True)
    if feature == "m_entropy":
        other = p.copy()
        other[idx, y] = 0.0
        term = -(other * np.log(np.clip(1.0 - other, 1e-30, 1.0))).sum(1)
        return (-(1.0 - py) * np.log(py) + term)[:, None]
    if feature == "prob":
        return p
    if feature == "correctness":
        return (p.argmax(1) == y).astype(np.float64)[:, None]
    raise ValueError(f"unknown MIA feature {feature!r}; choose from {', '.join(MIA_FEATURES)}")


def svc_mia_efficacy(retain_feats: np.ndarray, test_feats: np.ndarray, forget_feats: np.ndarray, *,
                     seed: int = 0) -> MetricResult:
    """MIA-Efficacy = 100·(1 - mean pred(D_f)) of an SVC(C=3, rbf, gamma="auto") fit on D_r (member, 1)
    vs D_t (non-member, 0).

    Balanced: the members are a seeded random draw of |D_t| retain rows (upstream takes the first
    rows). Higher = more of D_f looks unseen; the retrain oracle's value is the target.
    """
    from sklearn.svm import SVC

    r, t, f = (np.asarray(a, np.float64).reshape(len(a), -1) for a in (retain_feats, test_feats, forget_feats))
    n = min(len(r), len(t))
    if n == 0 or len(f) == 0:
        raise ValueError("mia_efficacy needs non-empty retain, test and forget sets")
    rng = np.random.default_rng(seed)
    r = r[rng.choice(len(r), size=n, replace=False)]
    t = t[rng.choice(len(t), size=n, replace=False)] if len(t) > n else t
    x = np.concatenate([r, t])
    lab = np.r_[np.ones(n), np.zeros(len(t))]
    if len(np.unique(x, axis=0)) < 2:
        pred = np.ones(len(f))  # all features identical: the attack cannot separate, upstream SVC would fail
    else:
        clf = SVC(C=3, kernel="rbf", gamma="auto").fit(x, lab)
        pred = clf.predict(f)
    non_member = 100.0 * (1.0 - pred)
    return MetricResult("mia_efficacy", float(non_member.mean()), "closer_to_reference", n=len(f),
                        ci=bootstrap_ci(non_member), compared_to="oracle", details={"n_shadow_per_class": n})


def mia_efficacy(model: nn.Module, forget_set: Dataset, retain_set: Dataset, test_set: Dataset, *,
                 feature: str = "confidence", seed: int = 0) -> MetricResult:
    """SVC MIA-Efficacy of ``model`` (spec §0; default feature p_y, as the papers report)."""
    feats = []
    for ds in (retain_set, test_set, forget_set):
        logits, y = predict_logits(model, ds)
        feats.append(mia_features(softmax(logits), y, feature))
    r = svc_mia_efficacy(*feats, seed=seed)
    r.details["feature"] = feature
    return r


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


def classification_metrics(model: nn.Module, task: Any, *, seed: int = 0, feature: str = "confidence"
                           ) -> dict[str, MetricResult]:
    """UA, RA, TA and MIA-Efficacy of ``model`` on a ClassificationTask."""
    return {
        "unlearning_accuracy": unlearning_accuracy(model, task.forget_set),
        "retain_accuracy": retain_accuracy(model, task.retain_set),
        "test_accuracy": test_accuracy(model, task.test_set),
        "mia_efficacy": mia_efficacy(model, task.forget_set, task.retain_set, task.test_set, feature=feature,
                                     seed=seed),
    }


# ---- logit-scaled confidence ----------------------------------------------------------------
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


def _call_unlearn(fn: Callable[..., nn.Module], model: nn.Module, task: Any, seed: int) -> nn.Module:
    """``fn(model, task)`` or ``fn(model, task, seed)``; the model is a private deep copy."""
    model = copy.deepcopy(model)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_seed = "seed" in params or len(params) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params.values())
    out = fn(model, task, seed) if takes_seed else fn(model, task)
    return (out if out is not None else model).eval()


def _subtask(task: Any, forget: Dataset, retain: Dataset) -> Any:
    from obliviate.methods.vision.base import ClassificationTask

    return ClassificationTask(name=f"{task.name}/shadow", forget_set=forget, retain_set=retain, test_set=task.test_set,
                              num_classes=task.num_classes, train_fn=task.train_fn, forget_class=task.forget_class,
                              metadata=dict(task.metadata, shadow=True))


# ---- U-LiRA ---------------------------------------------------------------------------------
def _gauss_logpdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)


def ulira_scores(shadow_phi: np.ndarray, in_mask: np.ndarray, target_phi: np.ndarray, *,
                 min_side: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per-example log-likelihood ratio log N(φ; μ_in, σ_in) - log N(φ; μ_out, σ_out).

    ``shadow_phi`` (K, n): φ of each example under K shadow models; ``in_mask`` (K, n): True where the
    shadow trained on then unlearned the example (IN), False where it never saw it (OUT);
    ``target_phi`` (..., n): φ under the audited model(s). A side with < 2 distinct values uses the
    pooled σ of all shadows (spec §9). Returns (scores, covered) where covered marks examples with
    ≥ ``min_side`` IN and OUT scores (others score NaN). Higher = more like "trained then unlearned".
    """
    phi = np.asarray(shadow_phi, np.float64)
    m = np.asarray(in_mask, bool)
    n_in, n_out = m.sum(0), (~m).sum(0)
    covered = (n_in >= min_side) & (n_out >= min_side)
    pooled = max(float(np.std(phi)), 1e-6)

    def stats(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cnt = np.maximum(mask.sum(0), 1)
        mu = np.where(mask, phi, 0.0).sum(0) / cnt
        var = np.where(mask, (phi - mu) ** 2, 0.0).sum(0) / cnt
        distinct = np.array([len(np.unique(phi[mask[:, j], j])) for j in range(phi.shape[1])])
        sd = np.where(distinct >= 2, np.sqrt(var), pooled)
        return mu, np.maximum(sd, 1e-6)

    mu_in, sd_in = stats(m)
    mu_out, sd_out = stats(~m)
    t = np.asarray(target_phi, np.float64)
    s = _gauss_logpdf(t, mu_in, sd_in) - _gauss_logpdf(t, mu_out, sd_out)
    return np.where(covered, s, np.nan), covered


def tpr_at_fpr(pos_scores: np.ndarray, neg_scores: np.ndarray, fpr: float) -> float:
    """Largest TPR with FPR ≤ ``fpr`` (positives = higher scores), from the ROC curve."""
    from sklearn.metrics import roc_curve

    y = np.r_[np.ones(len(pos_scores)), np.zeros(len(neg_scores))]
    f, t, _ = roc_curve(y, np.r_[pos_scores, neg_scores])
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def ulira_from_scores(unlearned_scores: np.ndarray, retrained_scores: np.ndarray, *, n_shadows: int = 0,
                      coverage: float = 1.0) -> MetricResult:
    """AUC (in %, 50 ideal) of likelihood-ratio scores: audited model's examples (positives) vs the same
    examples under the retrain oracle (negatives); TPR at 1% and 0.1% FPR in details, each with the
    number of negatives supporting it (FPR α needs ≥ 1/α negatives to mean anything)."""
    from sklearn.metrics import roc_auc_score

    from obliviate.metrics.mia import rank_auc

    pos = np.asarray(unlearned_scores, np.float64)
    neg = np.asarray(retrained_scores, np.float64)
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("ulira: no example has enough IN and OUT shadow scores; train more shadows")
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    auc = 100.0 * float(roc_auc_score(y, np.r_[pos, neg]))
    # rank_auc(members=b, non-members=a) = P(score_a > score_b): the same AUC without sklearn's overhead
    ci = paired_bootstrap_ci(pos, neg, lambda a, b: 100.0 * rank_auc(b, a), n_boot=200)
    details = {"n_pos": len(pos), "n_neg": len(neg), "n_shadows": n_shadows, "coverage": coverage}
    for alpha, key in ((0.01, "tpr_at_1pct_fpr"), (0.001, "tpr_at_0.1pct_fpr")):
        details[key] = 100.0 * tpr_at_fpr(pos, neg, alpha)
        details[key + "_supported"] = len(neg) * alpha >= 1.0  # at least one negative may be a false positive
    return MetricResult("ulira", auc, "closer_to_reference", n=len(pos) + len(neg), ci=ci, compared_to="oracle",
                        details=details)


@dataclass
class UliraShadows:
    """Shadow originals for U-LiRA on one task: ``in_mask[k, j]`` says whether shadow k trained on D_f[j]."""

    in_mask: np.ndarray  # (K, |D_f|) bool
    originals: list[nn.Module]
    seed: int = 0


def balanced_in_mask(n_shadows: int, n: int, seed: int = 0) -> np.ndarray:
    """(K, n) bool: shadow k trains on example j. Each example is IN for exactly ⌊K/2⌋ shadows, chosen
    by a per-example random ranking of the shadows (as in LiRA), so every example gets K/2 IN and
    K/2 OUT scores."""
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((n_shadows, n)), axis=0)
    return order < n_shadows // 2


def train_ulira_shadows(task: Any, n_shadows: int = 16, seed: int = 0) -> UliraShadows:
    """Train K shadow originals on D_r ∪ (a random half of D_f).

    Each forget example is IN for exactly ⌊K/2⌋ shadows (a per-example random permutation, as in
    LiRA), so every example gets K/2 IN and K/2 OUT scores. Training uses ``task.train_fn`` with
    seeds ``seed·1000 + k``. The originals can be shared by every method audited on the same task.
    """
    if task.train_fn is None:
        raise ValueError("ulira needs task.train_fn to train shadow models")
    if n_shadows < 2:
        raise ValueError("ulira needs at least 2 shadow models (16+ for a meaningful attack)")
    in_mask = balanced_in_mask(n_shadows, len(task.forget_set), seed)
    originals = []
    for k in range(n_shadows):
        data = ConcatDataset([task.retain_set, Subset(task.forget_set, np.flatnonzero(in_mask[k]).tolist())])
        originals.append(task.train_fn(data, seed * 1000 + k).eval())
    return UliraShadows(in_mask, originals, seed)


def ulira(model: nn.Module, oracle: nn.Module, task: Any, unlearn_fn: Callable[..., nn.Module], *,
          n_shadows: int = 16, seed: int = 0, shadows: UliraShadows | None = None, min_side: int | None = None
          ) -> MetricResult:
    """U-LiRA (Hayes et al., arXiv 2403.01218): a per-example likelihood-ratio attack on unlearning.

    Protocol (the paper's, scaled down): K shadow originals each train on D_r plus a random half of
    D_f; the method under audit, ``unlearn_fn(model, task[, seed])``, then unlearns that half in each
    shadow. For example x, IN = φ(x) under shadows that trained on then unlearned x, OUT = φ(x) under
    shadows that never saw x (they went through the same unlearning of other points); φ = log(p_y/(1-p_y)).
    Per-example Gaussians give Λ(φ) = N(φ; IN)/N(φ; OUT). The audited ``model`` (which trained on then
    unlearned all of D_f) gives the positives, the retrain ``oracle`` (never saw D_f) the negatives:
    AUC 50 means unlearning is indistinguishable from retraining. The value is the AUC in percent;
    TPR at 1%/0.1% FPR and their support are in ``details``. Examples with fewer than ``min_side``
    IN or OUT scores are skipped (``details["coverage"]``).
    """
    if oracle is None:
        raise MissingReferenceError("ulira compares the audited model with the retrain oracle; pass the oracle")
    shadows = shadows or train_ulira_shadows(task, n_shadows, seed)
    if min_side is None:  # spec §9: ≥ 8 IN and ≥ 8 OUT scores per example; fewer shadows get what they can
        min_side = max(1, min(8, len(shadows.originals) // 2))
    phis = []
    for k, orig in enumerate(shadows.originals):
        fidx = np.flatnonzero(shadows.in_mask[k]).tolist()
        # The shadow's retain set is D_r; the other half of D_f was never in its training data.
        sub = _subtask(task, Subset(task.forget_set, fidx), task.retain_set)
        unl = _call_unlearn(unlearn_fn, orig, sub, shadows.seed * 1000 + k)
        phis.append(logit_scaled_confidence(*predict_logits(unl, task.forget_set)))
    shadow_phi = np.stack(phis)
    target = np.stack([logit_scaled_confidence(*predict_logits(model, task.forget_set)),
                       logit_scaled_confidence(*predict_logits(oracle, task.forget_set))])
    scores, covered = ulira_scores(shadow_phi, shadows.in_mask, target, min_side=min_side)
    return ulira_from_scores(scores[0], scores[1], n_shadows=len(shadows.originals), coverage=float(covered.mean()))


# ---- NeurIPS 2023 challenge score -----------------------------------------------------------
def _rates_single(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR, FNR of "positive iff φ ≥ thr" over the challenge's threshold grid (pooled range, 100/unit)."""
    lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
    thr = np.linspace(lo, hi, int(np.ceil((hi - lo) * NUM_THRESHOLDS_PER_UNIT)))
    ps, ns = np.sort(pos), np.sort(neg)
    tpr = 1.0 - np.searchsorted(ps, thr, "left") / len(ps)
    fpr = 1.0 - np.searchsorted(ns, thr, "left") / len(ns)
    return fpr, 1.0 - tpr


def _rates_double(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR, FNR of "positive iff l ≤ φ ≤ r" where positive is the peakier sample (challenge double rule)."""
    pd, nd = pos.max() - pos.min(), neg.max() - neg.min()
    if pd >= nd:  # upstream: "positive" is the sample with the smaller range
        pos, neg = neg, pos
    width = min(pd, nd)
    buffer = 2.0
    lo, hi = pos.min() + width - buffer, pos.max() + buffer
    right = np.linspace(lo, hi, int(np.ceil((hi - lo) * NUM_THRESHOLDS_PER_UNIT)))
    n_left = int(np.ceil(2 * buffer * NUM_THRESHOLDS_PER_UNIT))
    left = (right[:, None] - width + np.linspace(-buffer, buffer, n_left)[None, :]).reshape(-1)
    right = np.repeat(right, n_left)
    ps, ns = np.sort(pos), np.sort(neg)

    def inside(s: np.ndarray) -> np.ndarray:
        return (np.searchsorted(s, right, "right") - np.searchsorted(s, left, "left")).clip(0) / len(s)

    tpr, fpr = inside(ps), inside(ns)
    return fpr, 1.0 - tpr


def epsilon_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float = DELTA) -> float:
    """ε = max over thresholds of max(log((1-δ-FPR)/FNR), log((1-δ-FNR)/FPR)), clipped to [0, 50].

    FPR = FNR = 0 at some threshold ⇒ ∞ (perfect separation, capped); thresholds where exactly one
    of them is 0 are discarded (too few samples to estimate the rate).
    """
    fpr, fnr = np.atleast_1d(np.asarray(fpr, np.float64)), np.atleast_1d(np.asarray(fnr, np.float64))
    if np.any((fpr == 0) & (fnr == 0)):
        return EPSILON_CAP
    ok = (fpr > 0) & (fnr > 0)
    if not ok.any():
        return 0.0
    f, n = fpr[ok], fnr[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.maximum(np.log(np.clip(1 - delta - f, 1e-300, None)) - np.log(n),
                       np.log(np.clip(1 - delta - n, 1e-300, None)) - np.log(f))
    return float(np.clip(np.nanmax(e), 0.0, EPSILON_CAP))


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """Per-example ε of the challenge from φ under N unlearned and N retrained models (``metric.py``)."""
    u, r = np.asarray(unlearned, np.float64), np.asarray(retrained, np.float64)
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)  # positive arm = larger median
    pd, nd = pos.max() - pos.min(), neg.max() - neg.min()
    largest, smallest = max(pd, nd), min(pd, nd)
    if largest == 0:  # both arms constant: identical ⇒ no evidence, different ⇒ perfectly separable
        return 0.0 if pos[0] == neg[0] else EPSILON_CAP
    if smallest / largest < 0.01:  # one arm is (almost) a point mass: upstream returns the cap
        return EPSILON_CAP
    f1, n1 = _rates_double(pos, neg)
    f2, n2 = _rates_single(pos, neg)
    return epsilon_from_rates(np.r_[f1, f2], np.r_[n1, n2], delta)


def epsilon_points(eps: np.ndarray | Sequence[float], n_models: int) -> np.ndarray:
    """Bucket points: [0, 0.5) -> 1, [0.5, 1) -> 1/2, ... up to ε_max = ⌈ln(N - 1)⌉; ε ≥ ε_max -> 0."""
    max_eps = math.ceil(math.log(n_models - 1)) if n_models > 2 else 0
    n_buckets = int(max_eps / 0.5)
    e = np.asarray(eps, np.float64)
    b = np.floor(e / 0.5).astype(int)
    return np.where(b < n_buckets, 0.5 ** b.clip(0, None), 0.0)


def forget_quality(unlearned_phi: np.ndarray, retrained_phi: np.ndarray, delta: float = DELTA
                   ) -> tuple[float, np.ndarray]:
    """Challenge forget quality F = mean over D_f of the bucket points of ε_x; arrays are (N models, n examples)."""
    u, r = np.asarray(unlearned_phi, np.float64), np.asarray(retrained_phi, np.float64)
    if u.shape != r.shape:
        raise ValueError(f"unlearned and retrained scores must have the same shape, got {u.shape} and {r.shape}")
    eps = np.array([example_epsilon(u[:, j], r[:, j], delta) for j in range(u.shape[1])])
    return float(epsilon_points(eps, u.shape[0]).mean()), eps


def challenge_score_from_arrays(unlearned_phi: np.ndarray, retrained_phi: np.ndarray, ra_unlearned: float,
                                ra_retrained: float, ta_unlearned: float, ta_retrained: float) -> MetricResult:
    """Final = F · (RA_u / RA_r) · (TA_u / TA_r) (NeurIPS 2023 Machine Unlearning challenge)."""
    f, eps = forget_quality(unlearned_phi, retrained_phi)
    ratio = (ra_unlearned / ra_retrained) * (ta_unlearned / ta_retrained)
    pts = epsilon_points(eps, np.shape(unlearned_phi)[0])
    return MetricResult("challenge_score", float(f * ratio), "higher", n=len(eps), ci=bootstrap_ci(pts * ratio),
                        compared_to="oracle",
                        details={"forget_quality": f, "n_models": int(np.shape(unlearned_phi)[0]),
                                 "epsilon_mean": float(np.mean(eps)), "ra_ratio": ra_unlearned / ra_retrained,
                                 "ta_ratio": ta_unlearned / ta_retrained})


@dataclass
class RetrainedArm:
    """φ on D_f and mean RA/TA of N models retrained on D_r (shared by every method on one task)."""

    phi: np.ndarray  # (N, |D_f|)
    ra: float
    ta: float


def train_retrained_arm(task: Any, n_models: int = 16, seed: int = 0) -> RetrainedArm:
    """N retrain-from-scratch models on D_r with seeds ``seed·1000 + 500 + i``."""
    if task.train_fn is None:
        raise ValueError("challenge_score needs task.train_fn to retrain models")
    phi, ra, ta = [], [], []
    for i in range(n_models):
        m = task.train_fn(task.retain_set, seed * 1000 + 500 + i).eval()
        phi.append(logit_scaled_confidence(*predict_logits(m, task.forget_set)))
        ra.append(accuracy(m, task.retain_set).value)
        ta.append(accuracy(m, task.test_set).value)
    return RetrainedArm(np.stack(phi), float(np.mean(ra)), float(np.mean(ta)))


def challenge_score(original: nn.Module, task: Any, unlearn_fn: Callable[..., nn.Module], *, n_models: int = 16,
                    seed: int = 0, retrained: RetrainedArm | None = None) -> MetricResult:
    """Challenge score of ``unlearn_fn`` applied N times (seeds differ) to ``original``, against N retrained
    models. N = 512 in the competition; small N gives a coarse scale (ε_max = ⌈ln(N-1)⌉)."""
    retrained = retrained or train_retrained_arm(task, n_models, seed)
    n = retrained.phi.shape[0]
    phi, ra, ta = [], [], []
    for i in range(n):
        m = _call_unlearn(unlearn_fn, original, task, seed * 1000 + 700 + i)
        phi.append(logit_scaled_confidence(*predict_logits(m, task.forget_set)))
        ra.append(accuracy(m, task.retain_set).value)
        ta.append(accuracy(m, task.test_set).value)
    return challenge_score_from_arrays(np.stack(phi), retrained.phi, float(np.mean(ra)), retrained.ra,
                                       float(np.mean(ta)), retrained.ta)


# ---- relearn time ---------------------------------------------------------------------------
def relearn_time(model: nn.Module, forget_set: Dataset, target_acc: float, *, lr: float = 1e-3, batch_size: int = 32,
                 max_steps: int = 200, seed: int = 0) -> MetricResult:
    """Adam steps of fine-tuning a copy of ``model`` on D_f until acc(D_f) ≥ ``target_acc`` (percent; usually
    the original model's). Capped at ``max_steps`` (``details["reached"]`` False). More steps = the
    knowledge is harder to recover; compare with the oracle's relearn time."""
    m = copy.deepcopy(model)
    x, y = _tensors(forget_set)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(m.parameters(), lr=lr)

    def acc() -> float:
        m.eval()
        with torch.no_grad():
            return 100.0 * float((m(x).argmax(1) == y).float().mean())

    steps = 0
    reached = acc() >= target_acc
    while not reached and steps < max_steps:
        m.train()
        b = torch.randint(0, len(y), (min(batch_size, len(y)),), generator=g)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(m(x[b]), y[b]).backward()
        opt.step()
        steps += 1
        reached = acc() >= target_acc
    return MetricResult("relearn_time", float(steps), "closer_to_reference", n=len(y), compared_to="oracle",
                        details={"reached": reached, "target_acc": target_acc, "max_steps": max_steps})


# ---- registration ---------------------------------------------------------------------------
_SPARSE_PAPER = dict(paper="Model Sparsity Can Simplify Machine Unlearning", arxiv="2304.04934", code=SPARSE,
                     modalities=("image",))
register("metric", "unlearning_accuracy", summary="UA = 100 - acc(D_f), in % (closer to Retrain is better)",
         **_SPARSE_PAPER)(unlearning_accuracy)
register("metric", "retain_accuracy", summary="RA = acc(D_r), in %", **_SPARSE_PAPER)(retain_accuracy)
register("metric", "test_accuracy", summary="TA = acc(D_t), in %", **_SPARSE_PAPER)(test_accuracy)
register("metric", "mia_efficacy", summary="SVC (confidence) MIA: % of D_f predicted non-member",
         **_SPARSE_PAPER)(mia_efficacy)
register("metric", "avg_gap", summary="Mean |gap| to Retrain over UA, RA, TA, MIA-Efficacy (points)",
         **_SPARSE_PAPER)(avg_gap)
register("metric", "ulira", paper="Inexact Unlearning Needs More Careful Evaluations to Avoid a False Sense of Privacy",
         arxiv="2403.01218", modalities=("image",), needs=("oracle", "train_fn"),
         summary="U-LiRA per-example likelihood-ratio attack: AUC unlearned vs retrained (50 ideal)")(ulira)
register("metric", "challenge_score", paper="NeurIPS 2023 Machine Unlearning Challenge (evaluation metric)",
         arxiv="2406.09073", code=CHALLENGE, modalities=("image",), needs=("train_fn",),
         summary="Forget quality from per-example ε (retrained vs unlearned models) × RA and TA ratios",
         )(challenge_score)
register("metric", "relearn_time", paper="Eight Methods to Evaluate Robust Unlearning in LLMs", arxiv="2402.16835",
         modalities=("image",), summary="Fine-tuning steps on D_f until its accuracy recovers")(relearn_time)
