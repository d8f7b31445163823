"""NeurIPS 2023 Machine Unlearning Challenge score: per-example ε from unlearned vs retrained models.

Follows google-deepmind/unlearning_evaluation (``metric.py``): for each forget example, φ under N
unlearned and N retrained models gives an (ε, δ) estimate from the best threshold rule; ε is
bucketed into points and averaged (forget quality F), then scaled by the RA and TA ratios.
Pure functions over score arrays; the model arms are built in ``obliviate.auditing.shadows``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from obliviate.metrics.base import MetricResult, bootstrap_ci

CHALLENGE = "https://github.com/google-deepmind/unlearning_evaluation"
DELTA = 1e-5  # challenge: δ of the (ε, δ) estimate
EPSILON_CAP = 50.0  # challenge: ε is clipped to [0, 50]
NUM_THRESHOLDS_PER_UNIT = 100  # challenge: threshold grid density


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
