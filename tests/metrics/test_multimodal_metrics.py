"""Known answers for Forget-MI's metrics (macro AUC / F1, SVC membership, attack features)."""

import math

import numpy as np
import pytest

from obliviate import registry
from obliviate.metrics import multimodal as mm


def _logits(p0):
    p0 = np.asarray(p0, dtype=np.float64)
    return np.log(np.stack([p0, 1 - p0], axis=1))


def test_macro_auc_hand_computed():
    # class 0: positives p0 = .9, .4; negatives .6, .2 -> pairs won 3 of 4 = 0.75; class 1 mirrors it
    r = mm.macro_auc(_logits([0.9, 0.4, 0.6, 0.2]), np.array([0, 0, 1, 1]))
    assert r.value == pytest.approx(0.75)
    assert r.details["per_class"] == {0: pytest.approx(0.75), 1: pytest.approx(0.75)}
    assert r.n == 4


def test_macro_auc_skips_classes_without_positives():
    logits = np.log(np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]))
    r = mm.macro_auc(logits, np.array([0, 0, 1, 1]))  # class 2 never occurs: no AUC, left out
    assert set(r.details["per_class"]) == {0, 1}
    # class 0: pos .8,.7 vs neg .2,.6 -> 4/4; class 1: pos .7,.3 vs neg .1,.2 -> 4/4
    assert r.value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two classes"):
        mm.macro_auc(logits[:2], np.array([0, 0]))


def test_macro_f1_hand_computed():
    logits = np.eye(2)[[0, 1, 1, 1]]  # predictions 0, 1, 1, 1 for labels 0, 0, 1, 1
    # class 0: P 1, R 1/2 -> F1 2/3; class 1: P 2/3, R 1 -> F1 4/5; macro = (2/3 + 4/5) / 2
    assert mm.macro_f1(logits, np.array([0, 0, 1, 1])).value == pytest.approx((2 / 3 + 0.8) / 2)


def test_attack_features():
    z = np.zeros((2, 4))
    assert mm.mia_features(z, np.array([0, 1]), "entropy")[:, 0] == pytest.approx([math.log(4)] * 2, abs=1e-7)
    z = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    assert mm.mia_features(z, np.array([0, 2]), "loss")[:, 0] == pytest.approx([math.log(2), -math.log(0.8)])
    assert mm.mia_features(z, np.array([0, 2]), "logits").shape == (2, 3)
    with pytest.raises(ValueError, match="logits, entropy, loss"):
        mm.mia_features(z, np.array([0, 2]), "confidence")


def test_svc_membership_separable_and_degenerate():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.0, 0.05, size=(40, 1))  # low loss: trained on
    non = rng.uniform(2.0, 2.05, size=(40, 1))  # high loss: never seen
    assert mm.svc_membership(members, non, rng.uniform(0, 0.05, (10, 1))).value == 1.0
    assert mm.svc_membership(members, non, rng.uniform(2, 2.05, (10, 1))).value == 0.0
    half = np.concatenate([rng.uniform(0, 0.05, (5, 1)), rng.uniform(2, 2.05, (5, 1))])
    r = mm.svc_membership(members, non, half, feature="loss")
    assert r.value == 0.5 and r.name == "mia_svc_loss" and r.direction == "lower"
    same = np.ones((10, 1))
    assert mm.svc_membership(same, same, same).value == 1.0  # nothing to separate: all called member


def test_svc_membership_balances_members():
    r = mm.svc_membership(np.zeros((100, 1)) + np.arange(100)[:, None] * 1e-3, np.ones((30, 1)), np.zeros((5, 1)))
    assert r.details["n_member"] == 30 and r.details["n_nonmember"] == 30
    r = mm.svc_membership(np.zeros((100, 1)), np.ones((30, 1)), np.zeros((5, 1)), balance=False)
    assert r.details["n_member"] == 100


def test_multimodal_metrics_keys_and_registration():
    rng = np.random.default_rng(1)
    sets = [(rng.normal(size=(30, 3)), rng.integers(0, 3, 30)) for _ in range(3)]
    ms = mm.multimodal_metrics(*sets)
    assert set(ms) == {"forget_auc", "forget_f1", "test_auc", "test_f1", "mia_svc_logits", "mia_svc_entropy",
                       "mia_svc_loss"}
    assert ms["forget_auc"].direction == "lower" and ms["test_auc"].direction == "closer_to_reference"
    for name in ("macro_auc", "macro_f1", "mia_svc_membership"):
        info = registry.get("metric", name)
        assert info.arxiv == "2506.23145" and info.modalities == ("multimodal",)
