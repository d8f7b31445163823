"""Known-answer tests for the classifier audit metrics (hand-computed tiny inputs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from obliviate import registry
from obliviate.metrics import classification as cm
from obliviate.metrics.base import MissingReferenceError

torch.set_num_threads(1)


class Lookup(nn.Module):
    """A 'model' whose input row is its logits: accuracies are known by construction."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0 * self.dummy


def _ds(logits, labels) -> TensorDataset:
    return TensorDataset(torch.tensor(logits, dtype=torch.float32), torch.tensor(labels))


def test_accuracy_family_known_answers():
    eye = np.eye(3)
    ds = _ds(eye[[0, 1, 2, 0]], [0, 1, 2, 1])  # 3 of 4 correct
    m = Lookup()
    assert cm.accuracy(m, ds).value == pytest.approx(75.0)
    ua = cm.unlearning_accuracy(m, ds)
    assert ua.value == pytest.approx(25.0) and ua.direction == "closer_to_reference"
    assert cm.retain_accuracy(m, ds).value == pytest.approx(75.0)
    assert cm.test_accuracy(m, _ds(eye[[0, 1]], [0, 1])).value == pytest.approx(100.0)
    lo, hi = ua.ci
    assert 0.0 <= lo <= 25.0 <= hi <= 100.0


def test_mia_features_known_answers():
    p = np.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    y = np.array([0, 2])
    np.testing.assert_allclose(cm.mia_features(p, y, "confidence")[:, 0], [0.5, 1 / 3])
    np.testing.assert_allclose(cm.mia_features(p, y, "entropy")[1, 0], math.log(3))
    # m_entropy = -(1 - p_y) log p_y - sum_{k != y} p_k log(1 - p_k)
    want = -0.5 * math.log(0.5) - 2 * 0.25 * math.log(0.75)
    assert cm.mia_features(p, y, "m_entropy")[0, 0] == pytest.approx(want)
    np.testing.assert_allclose(cm.mia_features(p, y, "correctness")[:, 0], [1.0, 0.0])  # uniform: argmax 0 != 2
    assert cm.mia_features(p, y, "prob").shape == (2, 3)
    with pytest.raises(ValueError, match="unknown MIA feature"):
        cm.mia_features(p, y, "loss")


def test_svc_mia_efficacy_separable():
    rng = np.random.default_rng(0)
    members = 0.95 + 0.01 * rng.random((50, 1))
    non = 0.05 + 0.01 * rng.random((40, 1))
    # Forget examples that look like test points are all "non-members": efficacy 100.
    assert cm.svc_mia_efficacy(members, non, non[:10]).value == pytest.approx(100.0)
    # Forget examples that look like retain points are all "members": efficacy 0.
    r = cm.svc_mia_efficacy(members, non, members[:10])
    assert r.value == pytest.approx(0.0)
    assert r.details["n_shadow_per_class"] == 40  # balanced: |D_t| members drawn from D_r


def test_mia_efficacy_on_lookup_model():
    eye = np.eye(2) * 10
    retain = _ds(eye[[0, 1] * 20], [0, 1] * 20)  # confident and correct -> p_y ≈ 1
    test = _ds(eye[[1, 0] * 20], [0, 1] * 20)  # confident and wrong -> p_y ≈ 0
    forget = _ds(eye[[1, 0] * 5], [0, 1] * 5)
    assert cm.mia_efficacy(Lookup(), forget, retain, test).value == pytest.approx(100.0)


def test_avg_gap_known_answer():
    model = {"unlearning_accuracy": 10.0, "retain_accuracy": 90.0, "test_accuracy": 80.0, "mia_efficacy": 20.0}
    oracle = {"unlearning_accuracy": 5.0, "retain_accuracy": 100.0, "test_accuracy": 85.0, "mia_efficacy": 10.0}
    r = cm.avg_gap(model, oracle)
    assert r.value == pytest.approx(7.5) and r.direction == "lower"
    assert cm.avg_gap(oracle, oracle).value == 0.0
    with pytest.raises(MissingReferenceError):
        cm.avg_gap(model, None)


def test_logit_scaled_confidence_known_answer():
    logits = np.array([[0.0, 0.0], [math.log(3), 0.0], [0.0, 0.0]])
    phi = cm.logit_scaled_confidence(logits, np.array([0, 0, 1]))
    np.testing.assert_allclose(phi, [0.0, math.log(3), 0.0], atol=1e-12)


def test_ulira_scores_hand_computed():
    # One example: IN scores {1, 3} (mu 2, sd 1), OUT {-1, 1} (mu 0, sd 1).
    shadow = np.array([[1.0], [3.0], [-1.0], [1.0]])
    in_mask = np.array([[True], [True], [False], [False]])
    s, cov = cm.ulira_scores(shadow, in_mask, np.array([[1.0], [2.0]]))
    assert cov.all()
    np.testing.assert_allclose(s[:, 0], [0.0, 2.0], atol=1e-12)  # log N(2;2,1) - log N(2;0,1) = 0 - (-2)


def test_ulira_scores_coverage_and_pooled_sigma():
    shadow = np.array([[1.0, 5.0], [1.0, 5.0], [0.0, 4.0]])
    in_mask = np.array([[True, True], [True, True], [False, False]])
    s, cov = cm.ulira_scores(shadow, in_mask, np.array([1.0, 5.0]), min_side=1)
    assert cov.all() and np.isfinite(s).all()  # constant sides fall back to the pooled sigma
    s, cov = cm.ulira_scores(shadow, in_mask, np.array([1.0, 5.0]), min_side=2)
    assert not cov.any() and np.isnan(s).all()  # one OUT score only: not covered


def _synthetic_ulira(mu_in: float, mu_out: float, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    k, n = 32, 400
    in_mask = np.argsort(rng.random((k, n)), axis=0) < k // 2
    shadow = np.where(in_mask, rng.normal(mu_in, 1, (k, n)), rng.normal(mu_out, 1, (k, n)))
    target = np.stack([rng.normal(mu_in, 1, n), rng.normal(mu_out, 1, n)])
    s, _ = cm.ulira_scores(shadow, in_mask, target)
    return cm.ulira_from_scores(s[0], s[1]).value


def test_ulira_identical_distributions_auc_half():
    assert _synthetic_ulira(0.0, 0.0) == pytest.approx(50.0, abs=6.0)


def test_ulira_separated_distributions_auc_one():
    assert _synthetic_ulira(6.0, 0.0) > 99.0


def test_tpr_at_fpr_and_support():
    assert cm.tpr_at_fpr(np.array([3.0, 4, 5]), np.array([0.0, 1, 2]), 0.01) == 1.0
    assert cm.tpr_at_fpr(np.array([0.0, 1, 2]), np.array([3.0, 4, 5]), 0.01) == 0.0
    r = cm.ulira_from_scores(np.arange(5.0) + 1000, np.arange(200.0))
    assert r.value == pytest.approx(100.0)
    assert r.details["tpr_at_1pct_fpr"] == 100.0 and r.details["tpr_at_1pct_fpr_supported"]
    assert not r.details["tpr_at_0.1pct_fpr_supported"]  # 200 negatives cannot resolve FPR 0.1%


def test_epsilon_from_rates_known_answer():
    d = 1e-5
    want = max(math.log((1 - d - 0.1) / 0.2), math.log((1 - d - 0.2) / 0.1))  # = log(7.9999)
    assert cm.epsilon_from_rates([0.1], [0.2]) == pytest.approx(want)
    assert cm.epsilon_from_rates([0.0, 0.1], [0.0, 0.2]) == 50.0  # perfect separation: capped
    assert cm.epsilon_from_rates([0.0, 0.1], [0.5, 0.2]) == pytest.approx(want)  # one-zero row discarded
    assert cm.epsilon_from_rates([0.5], [0.5]) == 0.0  # chance: log(0.49999/0.5) < 0 clipped to 0


def test_epsilon_points_buckets():
    # N = 16: eps_max = ceil(ln 15) = 3 -> buckets [0,.5) [.5,1) ... [2.5,3) worth 1, 1/2, ..., 1/32.
    pts = cm.epsilon_points([0.2, 0.7, 1.2, 2.9, 3.0, 50.0], 16)
    np.testing.assert_allclose(pts, [1.0, 0.5, 0.25, 1 / 32, 0.0, 0.0])
    assert cm.epsilon_points([0.0], 2).tolist() == [0.0]  # N = 2: ln 1 = 0, no bucket


def test_example_epsilon_cases():
    r = np.linspace(0, 1, 16)
    assert cm.example_epsilon(np.full(16, 0.5), r) == 50.0  # peaky unlearned arm
    assert cm.example_epsilon(r + 10, r) == 50.0  # disjoint arms
    assert cm.example_epsilon(r.copy(), r) == 0.0  # identical arms: no evidence


def test_challenge_score_hand_computed():
    r = np.linspace(0, 1, 16)
    retrained = np.stack([r, r], axis=1)  # (N models, 2 examples)
    unlearned = np.stack([r + 10, r], axis=1)  # example 0 disjoint (0 points), example 1 identical (1 point)
    res = cm.challenge_score_from_arrays(unlearned, retrained, 90.0, 100.0, 80.0, 100.0)
    assert res.details["forget_quality"] == pytest.approx(0.5)
    assert res.value == pytest.approx(0.5 * 0.9 * 0.8)


def test_relearn_time():
    eye = np.eye(2) * 5
    forget = _ds(eye[[0, 1]], [0, 1])
    assert cm.relearn_time(Lookup(), forget, 100.0).value == 0.0  # already at the target
    torch.manual_seed(0)
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # predicts the wrong class
        lin.bias.zero_()
    r = cm.relearn_time(lin, forget, 100.0, lr=0.1, max_steps=100)
    assert 0 < r.value < 100 and r.details["reached"]
    capped = cm.relearn_time(lin, forget, 101.0, max_steps=5)
    assert capped.value == 5 and not capped.details["reached"]
    assert lin.weight[0, 1].item() == 1.0  # the audited model is never modified


def test_registered_as_image_metrics():
    for name in ("unlearning_accuracy", "retain_accuracy", "test_accuracy", "mia_efficacy", "avg_gap", "ulira",
                 "challenge_score", "relearn_time"):
        info = registry.get("metric", name)
        assert info.modalities == ("image",), name
        assert name not in registry.names("metric", "text")
