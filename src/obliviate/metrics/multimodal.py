"""Forget-MI's audit metrics as pure functions over a model's outputs (logits and labels).

Hardan et al., MICCAI 2025 (arXiv 2506.23145), BioMedIA-MBZUAI/Forget-MI (`evaluation/mia_score.py`,
`evaluation/eval_unlearning.py`); spec §7:

- **macro AUC** and **macro F1** on the forget set D_f (lower = more forgotten) and on the test set
  D_t (should match the retrained model);
- **SVC membership attack**: ``sklearn.svm.SVC(C=3, kernel="rbf", gamma="auto")`` fit on D_r
  (member, 1) vs D_t (non-member, 0), then the fraction of D_f records predicted *member* (lower =
  less membership evidence; Retrain is the target, not 0). ``mia_score.py`` fits it on raw logits
  and on prediction entropy, the newer ``eval_unlearning.py`` on the per-sample loss: the feature
  is a parameter (``logits`` | ``entropy`` | ``loss``).

Nothing here runs a model; the bench (`obliviate.benchmarks.multimodal_bench`) scores once and
hands the arrays over.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from obliviate.metrics.base import MetricResult, bootstrap_ci
from obliviate.registry import register

Feature = Literal["logits", "entropy", "loss"]
FEATURES: tuple[str, ...] = ("logits", "entropy", "loss")
_PAPER = dict(paper="Forget-MI: Machine Unlearning for Forgetting Multimodal Information in Healthcare Settings",
              arxiv="2506.23145", code="https://github.com/BioMedIA-MBZUAI/Forget-MI", modalities=("multimodal",))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def macro_auc(logits: np.ndarray, labels: np.ndarray, name: str = "macro_auc",
              direction: str = "closer_to_reference") -> MetricResult:
    """Mean over classes of the one-vs-rest ROC AUC of p_c(x) (sklearn ``roc_auc_score``).

    Classes with no positive or no negative record in ``labels`` have no AUC and are left out of the
    mean (a small forget set rarely holds every class); ``details`` lists the classes used."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels)
    p = softmax(logits)
    used = [c for c in range(p.shape[1]) if 0 < int((y == c).sum()) < len(y)]
    if not used:
        raise ValueError(f"{name}: no class has both positive and negative records among {len(y)} labels; "
                         "macro AUC needs at least two classes")
    per_class = {c: float(roc_auc_score(y == c, p[:, c])) for c in used}
    return MetricResult(name, float(np.mean(list(per_class.values()))), direction, n=len(y),  # type: ignore[arg-type]
                        details={"per_class": per_class})


def macro_f1(logits: np.ndarray, labels: np.ndarray, name: str = "macro_f1",
             direction: str = "closer_to_reference") -> MetricResult:
    """Unweighted mean F1 over the classes present in the labels or the predictions (sklearn
    ``f1_score(average="macro")``, argmax predictions; an undefined F1 counts 0)."""
    from sklearn.metrics import f1_score

    y = np.asarray(labels)
    pred = np.asarray(logits).argmax(axis=1)
    return MetricResult(name, float(f1_score(y, pred, average="macro", zero_division=0)), direction,  # type: ignore[arg-type]
                        n=len(y))


def mia_features(logits: np.ndarray, labels: np.ndarray, feature: Feature = "logits") -> np.ndarray:
    """Attack features ``(N, d)``: raw logits (d = C), prediction entropy −Σ p log p (d = 1, upstream
    adds 1e-9 inside the log), or per-sample cross-entropy −log p_y (d = 1)."""
    z = np.asarray(logits, dtype=np.float64)
    if feature == "logits":
        return z
    p = softmax(z)
    if feature == "entropy":
        return -(p * np.log(p + 1e-9)).sum(axis=1, keepdims=True)
    if feature == "loss":
        y = np.asarray(labels, dtype=np.int64)
        logp = z - z.max(axis=1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
        return -logp[np.arange(len(y)), y][:, None]
    raise ValueError(f"unknown membership feature {feature!r}; use one of {', '.join(FEATURES)}")


def svc_membership(retain_feats: np.ndarray, test_feats: np.ndarray, forget_feats: np.ndarray, *,
                   balance: bool = True, seed: int = 0, feature: str = "") -> MetricResult:
    """Fraction of D_f predicted member by ``SVC(C=3, rbf, gamma="auto")`` fit on D_r (1) vs D_t (0).

    ``balance``: fit on a seeded random D_r subset of |D_t| records (upstream fits on all of D_r;
    with D_r several times D_t the SVC then calls most records members by base rate, for every
    model alike). If all training features are identical the attack cannot separate anything and
    every record is called a member (upstream SVC would raise)."""
    from sklearn.svm import SVC

    r = np.asarray(retain_feats, dtype=np.float64).reshape(len(retain_feats), -1)
    t = np.asarray(test_feats, dtype=np.float64).reshape(len(test_feats), -1)
    f = np.asarray(forget_feats, dtype=np.float64).reshape(len(forget_feats), -1)
    if len(r) == 0 or len(t) == 0 or len(f) == 0:
        raise ValueError("svc_membership needs retain (member), test (non-member) and forget features; one is empty")
    if balance and len(r) > len(t):
        r = r[np.sort(np.random.default_rng(seed).choice(len(r), size=len(t), replace=False))]
    x = np.concatenate([r, t])
    lab = np.concatenate([np.ones(len(r)), np.zeros(len(t))])
    if np.all(x == x[0]):
        pred = np.ones(len(f))
    else:
        pred = SVC(C=3, kernel="rbf", gamma="auto").fit(x, lab).predict(f)
    name = f"mia_svc_{feature}" if feature else "mia_svc"
    return MetricResult(name, float(pred.mean()), "lower", n=len(f), ci=bootstrap_ci(pred, seed=seed),
                        compared_to="retrain", details={"feature": feature, "n_member": len(r), "n_nonmember": len(t),
                                                        "balanced": balance})


def multimodal_metrics(forget: tuple[np.ndarray, np.ndarray], retain: tuple[np.ndarray, np.ndarray],
                       test: tuple[np.ndarray, np.ndarray], *, features: Sequence[str] = FEATURES,
                       seed: int = 0, balance: bool = True) -> dict[str, MetricResult]:
    """Every Forget-MI metric from ``(logits, labels)`` of D_f, D_r and D_t: forget/test macro AUC
    and F1, and one SVC membership score per feature (``mia_svc_<feature>``)."""
    out = {
        "forget_auc": macro_auc(*forget, name="forget_auc", direction="lower"),
        "forget_f1": macro_f1(*forget, name="forget_f1", direction="lower"),
        "test_auc": macro_auc(*test, name="test_auc"),
        "test_f1": macro_f1(*test, name="test_f1"),
    }
    for feat in features:
        out[f"mia_svc_{feat}"] = svc_membership(mia_features(*retain, feat), mia_features(*test, feat),  # type: ignore[arg-type]
                                                mia_features(*forget, feat), balance=balance, seed=seed, feature=feat)
    return out


register("metric", "macro_auc", summary="Mean one-vs-rest ROC AUC over classes (Forget-MI: on D_f lower, on D_t "
         "near Retrain)", **_PAPER)(macro_auc)
register("metric", "macro_f1", summary="Macro F1 of argmax predictions (Forget-MI: on D_f lower, on D_t near "
         "Retrain)", **_PAPER)(macro_f1)
register("metric", "mia_svc_membership", summary="SVC(C=3, rbf) fit on D_r vs D_t: share of D_f predicted member "
         "(feature: logits, entropy or loss)", **_PAPER)(svc_membership)
