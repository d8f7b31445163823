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


# ---- bootstrap CIs of the headline metrics (forget_quality, model_utility, privleak) ----------------
def _quantiles(stats):
    lo, hi = np.quantile(np.asarray(stats, float), [0.025, 0.975])
    return (float(lo), float(hi))


def test_forget_quality_ci_known_answers():
    x = np.random.default_rng(1).random(30)
    assert tofu.forget_quality_ci(x, x.copy()) == (1.0, 1.0)  # paired draws of identical samples: p = 1 each
    a, b = np.linspace(0.1, 0.2, 20), np.linspace(0.8, 0.9, 20)
    lo, hi = tofu.forget_quality_ci(a, b)
    assert 0 < lo <= hi < 0.05  # every draw fully separated
    assert tofu.forget_quality_ci(x[:1], x) is None and tofu.forget_quality_ci(x, x[:1]) is None


def test_forget_quality_ci_resampling_scheme():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(2)
    a, b = rng.random(11), rng.random(11) * 0.8 + 0.3  # odd sizes: a (5, n) draw differs from five draws of n
    # equal lengths: one index row per draw, applied to both arrays
    idx = np.random.default_rng(0).integers(0, 11, size=(5, 11))
    paired = _quantiles([ks_2samp(a[i], b[i]).pvalue for i in idx])
    assert tofu.forget_quality_ci(a, b, n_boot=5) == pytest.approx(paired, rel=1e-12)
    # unequal lengths: all model rows, then all oracle rows, independently
    b9 = b[:9]
    r0 = np.random.default_rng(0)
    ia, ib = r0.integers(0, 11, size=(5, 11)), r0.integers(0, 9, size=(5, 9))
    indep = _quantiles([ks_2samp(a[i], b9[j]).pvalue for i, j in zip(ia, ib)])
    assert tofu.forget_quality_ci(a, b9, n_boot=5) == pytest.approx(indep, rel=1e-12)
    # the two schemes give different intervals here, so the first check pins the pairing
    r0 = np.random.default_rng(0)
    ia, ib = r0.integers(0, 11, size=(5, 11)), r0.integers(0, 11, size=(5, 11))
    assert _quantiles([ks_2samp(a[i], b[j]).pvalue for i, j in zip(ia, ib)]) != pytest.approx(paired)


def test_forget_quality_metric_ci():
    oracle = _view("o", [2.0, 2.6, 2.9], [2.1, 2.4, 3.0], [2.0, 2.0, 2.0], [[2.0, 2.1], [2.0, 1.9], [2.0, 2.0]])
    target = _view("t", [0.1, 0.2, 0.1], [2.0, 2.5, 3.0], [0.1, 0.1, 0.2], [[2.0, 2.0], [3.0, 3.0], [2.5, 2.5]])
    get = lambda n: registry.get("metric", n).obj  # noqa: E731
    assert get("forget_quality")(oracle, oracle).ci == (1.0, 1.0)
    r = get("forget_quality")(target, oracle)
    assert r.ci == tofu.forget_quality_ci(tofu.truth_ratios(target, "forget"), tofu.truth_ratios(oracle, "forget"))
    logged = AuditView("logs", extra={tofu.ORACLE_TRUTH_RATIOS: [0.5, 0.6, 0.7, 0.8]})  # other items: unpaired
    r = get("forget_quality")(target, logged)
    assert r.ci == tofu.forget_quality_ci(tofu.truth_ratios(target, "forget"), np.array([0.5, 0.6, 0.7, 0.8]))


def _utility_view(n_items, retain_nll, para_nll, pert_nll, gens=None):
    """retain / real_authors / world_facts, every item of a set scored alike (per-item values constant)."""
    v = AuditView("u")
    for base in tofu.UTILITY_SETS:
        v.sets[base] = _ss([retain_nll] * n_items, gens=gens or ["a b c"] * n_items)
        v.perturbed[base] = [_ss([pert_nll] * n_items) for _ in range(2)]
    v.sets["retain_para"] = _ss([para_nll] * n_items)
    return v


def test_model_utility_value_and_constant_items_ci():
    get = lambda n: registry.get("metric", n).obj  # noqa: E731
    v = _utility_view(6, 0.5, 0.4, 2.0, gens=["a b"] * 6)
    r = get("model_utility")(v)
    names = ("retain_prob", "retain_rouge", "retain_truth_ratio", "real_authors_prob_normalised", "real_authors_rouge",
             "real_authors_truth_ratio", "world_facts_prob_normalised", "world_facts_rouge", "world_facts_truth_ratio")
    parts = {k: get(k)(v).value for k in names}
    assert r.details["parts"] == parts  # each part is its registered metric's value, in TOFU's order
    assert r.value == tofu.harmonic_mean_utility(parts) and 0 < r.value < 1
    assert r.ci == (r.value, r.value)  # nothing varies across items: every draw gives the value
    assert get("model_utility")(_utility_view(1, 0.5, 0.4, 2.0)).ci is None


def test_model_utility_ci_resampling_scheme():
    items = {"retain": {"retain_prob": np.array([0.9, 0.5, 0.7, 0.2]), "retain_rouge": np.array([1.0, 0.0, 0.5, 0.25]),
                        "retain_truth_ratio": np.array([0.6, 0.7, 0.1, 0.9])},
             "world_facts": {"world_facts_prob_normalised": np.array([0.3, 0.8, 0.4]),
                             "world_facts_rouge": np.array([0.2, 1.0, 0.6]),
                             "world_facts_truth_ratio": np.array([0.5, 0.4, 0.9])}}
    r0 = np.random.default_rng(0)
    idx = {base: r0.integers(0, len(next(iter(p.values()))), size=(5, len(next(iter(p.values())))))
           for base, p in items.items()}  # drawn set by set, in order
    stats = []
    for k in range(5):
        parts = {name: arr[idx[base][k]].mean() for base, p in items.items() for name, arr in p.items()}
        stats.append(len(parts) / sum(1 / x for x in parts.values()))  # harmonic mean, no zero part here
    assert tofu.model_utility_ci(items, n_boot=5) == pytest.approx(_quantiles(stats), rel=1e-12)
    assert tofu.model_utility_ci({"retain": {"retain_prob": np.array([0.5])}}) is None


def test_privleak_ci_resampling_scheme():
    rng = np.random.default_rng(3)
    f, h, rf, rh = rng.random(7), rng.random(5) + 0.3, rng.random(7), rng.random(5) + 0.1
    r0 = np.random.default_rng(0)
    i_f, i_h = r0.integers(0, 7, size=(5, 7)), r0.integers(0, 5, size=(5, 5))
    paired = _quantiles([mia.privleak(mia.mia_auc(f[i], h[j]), mia.mia_auc(rf[i], rh[j])) for i, j in zip(i_f, i_h)])
    fixed = _quantiles([mia.privleak(mia.mia_auc(f[i], h[j]), 0.6) for i, j in zip(i_f, i_h)])
    assert paired != pytest.approx(fixed)
    assert mia.privleak_ci(f, h, 0.6, rf, rh, n_boot=5) == pytest.approx(paired, rel=1e-12)
    assert mia.privleak_ci(f, h, 0.6, n_boot=5) == pytest.approx(fixed, rel=1e-12)  # logged oracle AUC
    assert mia.privleak_ci(f, h, 0.6, rf[:4], rh, n_boot=5) == pytest.approx(fixed, rel=1e-12)  # other items
    assert mia.privleak_ci(f[:1], h, 0.6) is None


def test_privleak_metric_ci():
    # forget and holdout overlap (AUC 14/25 = 0.56), so resampled AUCs vary and only a paired oracle gives 0 every draw
    m = _view("m", [0.5, 1.0, 2.0, 1.5, 0.7], [1.2, 0.8, 2.5, 1.1, 0.6], [1.0] * 5, [[2.0, 2.0]] * 5)
    get = lambda n: registry.get("metric", n).obj  # noqa: E731
    assert get("privleak")(m, m).ci == (0.0, 0.0)  # model == oracle: every draw gives 0
    logged = AuditView("logs", extra={"oracle:mia_min_k_auc": 0.56})
    r = get("privleak")(m, logged)
    assert r.details["auc"] == pytest.approx(0.56) and r.value == pytest.approx(0.0, abs=1e-6)
    f, h = mia.scores_min_k(m.need("forget")), mia.scores_min_k(m.need("holdout"))
    assert r.ci == mia.privleak_ci(f, h, 0.56) and r.ci[0] < 0 < r.ci[1]  # fixed logged AUC: the model's AUC varies


def test_two_sample_bootstrap_ci_resamples_each_side_on_its_own():
    from obliviate.metrics.base import two_sample_bootstrap_ci

    rng = np.random.default_rng(0)
    a, b = rng.random(7), rng.random(11)  # different sizes: the two sides cannot be paired
    seen = []

    def stat(x, y):
        seen.append((len(x), len(y)))
        return float(np.mean(x) - np.mean(y))

    ci = two_sample_bootstrap_ci(a, b, stat, n_boot=50, seed=3)
    assert set(seen) == {(7, 11)} and len(seen) == 50
    # the same draws by hand: side a first, then side b, from one generator
    g, want = np.random.default_rng(3), []
    for _ in range(50):
        x = a[g.integers(0, 7, 7)]
        want.append(float(np.mean(x) - np.mean(b[g.integers(0, 11, 11)])))
    assert ci == _quantiles(want)
    assert two_sample_bootstrap_ci(a[:1], b, stat) is None
