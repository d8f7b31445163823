"""Known-answer tests for the TOFU / MIA / memorisation formulas (hand-computed values)."""

import math

import numpy as np
import pytest

from obliviate import registry
from obliviate.metrics import memorization as mem
from obliviate.metrics import mia, tofu
from obliviate.metrics.base import MissingReferenceError
from obliviate.metrics.text import rouge_l
from obliviate.scoring.types import AuditView, ScoredSet


def test_truth_ratio_hand_worked():
    # paraphrase NLL 1.0, perturbed NLLs 2.0 and 3.0: R = exp(-2.5) / exp(-1.0) = exp(-1.5)
    r = tofu.truth_ratio_per_item(np.array([1.0]), np.array([[2.0, 3.0]]))
    assert r[0] == pytest.approx(math.exp(-1.5), rel=1e-8)
    assert tofu.truth_ratio_closer_to_1(r)[0] == pytest.approx(math.exp(-1.5))
    assert tofu.truth_ratio_closer_to_1(np.array([4.0]))[0] == pytest.approx(0.25)
    assert tofu.truth_ratio_true_better(np.array([0.25, 2.0])).tolist() == [0.75, 0.0]


def test_ks_identical_samples_give_p_one():
    x = np.array([0.1, 0.5, 0.7, 0.9])
    assert tofu.ks_forget_quality(x, x.copy()) == pytest.approx(1.0)
    assert tofu.ks_forget_quality(np.arange(20) / 100, np.arange(20) / 100 + 1) < 1e-9


def test_normalised_probability():
    # P_true = 0.5, perturbed 0.25 and 0.25 -> 0.5
    got = tofu.normalised_probability(np.array([math.log(2)]), np.array([[math.log(4), math.log(4)]]))
    assert got[0] == pytest.approx(0.5)


def test_harmonic_mean_with_zero_part_is_zero():
    assert tofu.harmonic_mean_utility({"a": 0.5, "b": 0.0}) == 0.0
    assert tofu.harmonic_mean_utility({"a": 0.5, "b": 1.0}) == pytest.approx(2 / (1 / 0.5 + 1))


def test_rouge_l_recall_hand_worked():
    # LCS("the cat sat on the mat", "the cat on a mat") = "the cat on mat" = 4 of 6 gold tokens
    assert rouge_l("the cat sat on the mat", "the cat on a mat", "recall", stem=False) == pytest.approx(4 / 6)
    assert rouge_l("a b", "a b", "f1") == 1.0


def test_auc_separable_reversed_and_identical():
    assert mia.mia_auc([0.1, 0.2], [0.8, 0.9]) == 1.0  # members have lower loss
    assert mia.mia_auc([0.8, 0.9], [0.1, 0.2]) == 0.0
    assert mia.mia_auc([0.5, 0.5], [0.5, 0.5]) == 0.5


def test_rank_auc_matches_sklearn_with_ties():
    # hand-worked: members {1, 2, 2}, non-members {2, 3}: pairs (m < n) = 1·2 + (0.5 + 1) + (0.5 + 1) = 5 of 6
    assert mia.rank_auc([1, 2, 2], [2, 3]) == pytest.approx(5 / 6)
    rng = np.random.default_rng(0)
    m, n = rng.integers(0, 5, 40).astype(float), rng.integers(1, 6, 30).astype(float)  # many ties
    assert mia.rank_auc(m, n) == pytest.approx(mia.mia_auc(m, n), abs=1e-12)
    assert mia.rank_auc([0.8, 0.9], [0.1, 0.2]) == 0.0


def test_min_k_drops_last_token_and_guards_length():
    lp = np.array([-1.0, -5.0, -2.0, -4.0, -9.0])  # last (-9, EOS) dropped
    # k=0.5 of 4 tokens -> 2 lowest: -5, -4 -> score 4.5
    assert mia.min_k_score(lp, 0.5) == pytest.approx(4.5)
    # k*L < 1 still uses one token
    assert mia.min_k_score(np.array([-3.0, -1.0]), 0.1) == pytest.approx(3.0)


def test_min_k_plus_plus_hand_worked():
    lp = np.array([-1.0, -3.0, 0.0])
    mu = np.array([-2.0, -2.0, 0.0])
    var = np.array([4.0, 1.0, 1.0])
    # z = [(−1+2)/2, (−3+2)/1] = [0.5, −1.0]; k=0.5 of 2 -> lowest −1 -> score 1.0
    assert mia.min_k_plus_plus_score(lp, mu, var, 0.5) == pytest.approx(1.0)


def test_zlib_and_privleak():
    import zlib

    assert mia.zlib_score(2.0, "abc") == pytest.approx(2.0 / len(zlib.compress(b"abc")))
    assert mia.privleak(0.9, 0.5) == pytest.approx(-80.0, rel=1e-6)
    assert mia.privleak(0.5, 0.5) == pytest.approx(0.0)
    assert mia.privleak_muse(0.4, 0.5) == pytest.approx(-20.0)


def test_extraction_strength_and_exact_memorization():
    # labels incl. EOS; EOS dropped -> [T, F, T, T]
    h = np.array([True, False, True, True, False])
    assert mem.exact_memorization(h) == pytest.approx(0.75)
    assert mem.extraction_strength(h) == pytest.approx(1 - 2 / 4)  # suffix from k=2 matches
    assert mem.extraction_strength(np.array([True, True, False, True])) == 0.0  # no suffix matches: 0, not 1/L
    assert mem.extraction_strength(np.array([True, True, True, False])) == 1.0


def _ss(nlls, n_tok=4, answers=None, gens=None):
    lps = [np.full(n_tok, -x) for x in nlls]
    return ScoredSet(lps, [np.ones(n_tok, bool)] * len(nlls), [np.full(n_tok, -1.0)] * len(nlls),
                     [np.ones(n_tok)] * len(nlls), answers=answers or ["a b c"] * len(nlls), generations=gens)


def _view(name, forget_nll, holdout_nll, para_nll, pert_nll):
    v = AuditView(name)
    v.sets = {"forget": _ss(forget_nll, gens=["a b c"] * len(forget_nll)), "holdout": _ss(holdout_nll),
              "forget_para": _ss(para_nll)}
    v.perturbed = {"forget": [_ss(col) for col in np.asarray(pert_nll).T]}
    return v


def test_registered_metrics_on_hand_views():
    target = _view("t", [0.1, 0.2, 0.1], [2.0, 2.5, 3.0], [0.1, 0.1, 0.2], [[2.0, 2.0], [3.0, 3.0], [2.5, 2.5]])
    oracle = _view("o", [2.0, 2.6, 2.9], [2.1, 2.4, 3.0], [2.0, 2.0, 2.0], [[2.0, 2.1], [2.0, 1.9], [2.0, 2.0]])
    get = lambda n: registry.get("metric", n).obj  # noqa: E731
    assert get("mia_loss")(target).value == 1.0
    assert get("forget_prob")(target).value == pytest.approx(np.exp(-np.array([0.1, 0.2, 0.1])).mean())
    assert get("forget_rouge")(target).value == 1.0
    assert get("forget_quality")(oracle, oracle).value == pytest.approx(1.0)
    assert get("forget_quality")(target, oracle).value < 0.2
    pl = get("privleak")(target, oracle)
    assert pl.compared_to == "oracle" and pl.value < 0
    with pytest.raises(MissingReferenceError):
        get("forget_quality")(target)
    with pytest.raises(MissingReferenceError, match="never falls back"):
        get("privleak")(target)
    with pytest.raises(KeyError, match="retain"):
        get("retain_prob")(target)
