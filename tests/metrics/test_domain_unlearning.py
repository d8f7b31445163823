"""Known-answer tests for the domain-unlearning metrics (Mem, For, H, per-domain accuracy, gap)."""

import numpy as np
import pytest

from obliviate.metrics import domain_unlearning as dm
from obliviate.metrics.base import MissingReferenceError

DOMAINS = ("real", "sketch")


def test_hand_computed_mem_for_h():
    # real: 3 of 4 right (Mem 75); sketch: 1 of 4 right (For = 75% error)
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    pred = np.array([0, 1, 2, 0, 0, 0, 0, 0])
    d = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    ms = dm.domain_metrics(pred, y, d, DOMAINS, ("sketch",))
    assert ms["domain_mem"].value == pytest.approx(75.0)
    assert ms["domain_for"].value == pytest.approx(75.0)
    assert ms["domain_h"].value == pytest.approx(75.0)
    assert ms["acc_real"].value == pytest.approx(75.0) and ms["acc_sketch"].value == pytest.approx(25.0)


def test_h_is_the_harmonic_mean_and_punishes_collapse():
    assert dm.harmonic_mean(80.0, 40.0) == pytest.approx(2 * 80 * 40 / 120)
    assert dm.harmonic_mean(0.0, 0.0) == 0.0
    # a collapsed model: everything wrong -> For 100 but Mem 0 -> H 0
    y = np.array([0, 1, 0, 1]); d = np.array([0, 0, 1, 1])
    ms = dm.domain_metrics(1 - y, y, d, DOMAINS, ("sketch",))
    assert ms["domain_for"].value == 100.0 and ms["domain_mem"].value == 0.0 and ms["domain_h"].value == 0.0


def test_gap_to_oracle_and_missing_oracle():
    y = np.array([0, 1, 0, 1]); d = np.array([0, 0, 1, 1])
    acc = dm.domain_accuracy(y, y, d, DOMAINS)  # 100, 100
    oracle = dm.domain_accuracy(np.array([0, 1, 1, 0]), y, d, DOMAINS)  # 100, 0
    gap = dm.domain_gap_to_oracle(acc, oracle)
    assert gap.value == pytest.approx(50.0) and gap.details == {"real": 0.0, "sketch": 100.0}
    with pytest.raises(MissingReferenceError, match="oracle"):
        dm.domain_gap_to_oracle(acc, None)


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="one entry per example"):
        dm.domain_mem([0, 1], [0], [0, 0], DOMAINS, ("sketch",))
    with pytest.raises(ValueError, match="not among"):
        dm.domain_for([0], [0], [0], DOMAINS, ("photo",))
    with pytest.raises(ValueError, match="at least one forget domain"):
        dm.domain_for([0], [0], [0], DOMAINS, ("sketch",))
