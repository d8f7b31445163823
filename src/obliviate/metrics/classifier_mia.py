"""SVC membership-inference metrics of classifier unlearning (MIA-Efficacy, spec §0).

OPTML-Group/Unlearn-Sparse ``evaluation/SVC_MIA.py``: an SVC(C=3, rbf, gamma="auto") on one feature
per example (default the confidence p_y), fit on D_r (member) vs D_t (non-member), applied to D_f.
Pure functions of probabilities / features; ``obliviate.auditing.classifier`` runs the models.
"""

from __future__ import annotations

import numpy as np

from obliviate.metrics.base import MetricResult, bootstrap_ci


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


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
