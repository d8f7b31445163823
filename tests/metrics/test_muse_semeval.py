"""Known-answer tests for the MUSE (VerbMem, KnowMem, PrivLeak) and SemEval-2025 Task 4 scores."""

import numpy as np
import pytest

from obliviate import registry
from obliviate.data.task import ForgetTask
from obliviate.metrics import muse, semeval
from obliviate.metrics.base import MissingReferenceError
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.types import AuditView, ScoredSet
from obliviate.scoring.views import build_view, verbmem_pairs

get = lambda n: registry.get("metric", n).obj  # noqa: E731


def _ss(nlls, answers=None, gens=None, ids=None, n_tok=4):
    n = len(nlls)
    return ScoredSet([np.full(n_tok, -x) for x in nlls], [np.ones(n_tok, bool)] * n, [np.full(n_tok, -1.0)] * n,
                     [np.ones(n_tok)] * n, answers=answers or ["a"] * n, ids=ids or [str(i) for i in range(n)],
                     generations=gens)


# ---- MUSE ---------------------------------------------------------------------------------------
def test_verbmem_rouge_l_f1_hand_worked():
    # LCS("the cat sat on the mat", "the cat on a mat") = 4: P = 4/5, R = 4/6, F1 = 8/11
    got = muse.verbmem_scores(["the cat sat on the mat", "x y"], ["the cat on a mat", "x y"])
    np.testing.assert_allclose(got, [8 / 11, 1.0])
    # MUSE does not stem: "cats running" vs "cat run" share nothing; OpenUnlearning's stemmed variant: 1
    assert muse.verbmem_scores(["cats running"], ["cat run"])[0] == 0.0
    assert muse.verbmem_scores(["cats running"], ["cat run"], stem=True)[0] == 1.0


def test_knowmem_cuts_at_muse_stop_strings():
    assert muse.cut_at_stop("Paris\n\nQuestion: what else?") == "Paris"
    assert muse.cut_at_stop("Paris is big\nQuestion: x") == "Paris is big"
    np.testing.assert_allclose(muse.knowmem_scores(["Paris", "in 1999"], ["Paris\n\nQuestion: more", "no idea"]),
                               [1.0, 0.0])


def test_registered_verbmem_and_knowmem():
    v = AuditView("m")
    v.sets["verbmem"] = _ss([1, 1], answers=["the cat sat on the mat", "x y"], gens=["the cat on a mat", "x y"])
    v.sets["forget"] = _ss([1, 1], answers=["Paris", "Rome"], gens=["Paris", "Berlin"])
    v.sets["retain"] = _ss([1], answers=["blue whale"], gens=["the blue whale"])  # P 2/3, R 1 -> F1 0.8
    r = get("verbmem_forget")(v)
    assert r.value == pytest.approx((8 / 11 + 1) / 2) and r.direction == "lower" and r.n == 2
    assert get("knowmem_forget")(v).value == pytest.approx(0.5)
    assert get("knowmem_retain")(v).value == pytest.approx(0.8)
    assert get("knowmem_retain")(v).direction == "higher"
    # a MUSE task's separate knowmem set wins over the training set
    v.sets["knowmem_forget"] = _ss([1], answers=["Oslo"], gens=["Oslo"])
    r = get("knowmem_forget")(v)
    assert r.value == 1.0 and r.details["set"] == "knowmem_forget"
    with pytest.raises(KeyError, match="verbmem"):
        get("verbmem_forget")(AuditView("empty"))


def test_muse_auc_is_one_minus_ours_and_privleak_known_answers():
    # memorised: forget min-k scores (losses) below holdout -> our AUC 1, MUSE's 0
    target = AuditView("t")
    target.sets = {"privleak_forget": _ss([0.1, 0.2]), "privleak_holdout": _ss([2.0, 2.5]),
                   "forget": _ss([5.0, 5.0]), "holdout": _ss([0.1, 0.1])}  # privleak sets take precedence
    oracle = AuditView("o")
    oracle.sets = {"privleak_forget": _ss([1.0, 2.0]), "privleak_holdout": _ss([1.0, 2.0])}  # AUC 0.5
    assert muse.muse_min_k_auc(target.sets["privleak_forget"], target.sets["privleak_holdout"]) == 0.0
    r = get("privleak_muse")(target, oracle)
    assert r.value == pytest.approx(-100.0) and r.compared_to == "oracle"
    assert r.details["sets"] == "privleak_forget vs privleak_holdout"
    assert get("privleak_muse")(oracle, oracle).value == pytest.approx(0.0)
    over = AuditView("over")
    over.sets = {"forget_text": _ss([3.0, 3.5]), "holdout_text": _ss([1.0, 2.0])}  # MUSE AUC 1
    assert get("privleak_muse")(over, oracle).value == pytest.approx(100.0)
    # MUSE News upper bound (AUC -> 1 vs retrain 0.4772): +109.6
    assert (1 - muse.MUSE_AUC_RETRAIN["news"]) / muse.MUSE_AUC_RETRAIN["news"] * 100 == pytest.approx(109.6, abs=0.05)
    # an oracle with MUSE AUC 0 leaves PrivLeak undefined: NaN, not a division error
    assert np.isnan(get("privleak_muse")(oracle, target).value)
    with pytest.raises(MissingReferenceError, match="MUSE_AUC_RETRAIN"):
        get("privleak_muse")(target)


def test_view_builds_verbmem_and_privleak_sets(tiny_model, tiny_tokenizer, tiny_items):
    cache = ScoringCache(tiny_tokenizer, batch_size=4, max_new_tokens=4)
    text = "Writer 1 was born in Arlen. Writer 2 was born in Bexley. Writer 3 was born in Corin."
    task = ForgetTask("raw", forget=[], retain=[], forget_texts=[text],
                      metadata={"privleak": {"forget": [text], "holdout": ["Writer 9 was born in Fallow."]}})
    pairs = verbmem_pairs(task, cache, prompt_tokens=5)
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert pairs[0][0] == tiny_tokenizer.decode(ids[:5], skip_special_tokens=True)
    assert pairs[0][1] == tiny_tokenizer.decode(ids[5:9], skip_special_tokens=True)  # cut to max_new_tokens
    task.metadata["verbmem"] = [{"prompt": "Writer 4 was", "gt": " born in Dunmore."}]
    assert verbmem_pairs(task, cache)[0][0] == "Writer 4 was"  # MUSE's own pairs win
    v = build_view(tiny_model, "m", task, cache)
    assert len(v.sets["verbmem"].generations) == 1 and "privleak_holdout" in v.sets
    assert 0.0 <= get("verbmem_forget")(v).value <= 1.0
    oracle = AuditView("o")
    oracle.sets = {"privleak_forget": _ss([1.0, 2.0]), "privleak_holdout": _ss([1.0, 2.0])}  # MUSE AUC 0.5
    r = get("privleak_muse")(v, oracle)  # one text each side: MUSE AUC 0 or 1 -> -100 or +100
    assert r.value == pytest.approx((r.details["auc_muse"] - 0.5) / 0.5 * 100) and abs(r.value) == pytest.approx(100)


# ---- SemEval-2025 Task 4 ------------------------------------------------------------------------
def test_item_kind_from_upstream_ids():
    assert semeval.item_kind("6adbf83c-5071-4979-bedb-e5184b15650bsc1") == "sc"
    assert semeval.item_kind("6adbf83c-5071-4979-bedb-e5184b15650bqa0") == "qa"
    assert semeval.item_kind("plain-id") is None


def test_regurgitation_knowledge_and_mia_score():
    # ROUGE-L recall: "into the sea" covers 3 of the 4 reference tokens
    assert semeval.regurgitation_score(["into the northern sea"], ["into the sea"]) == pytest.approx(0.75)
    assert semeval.knowledge_score([" Kaela ", "761-629-5087"], ["kaela", "761 629 5087"]) == 0.5
    assert semeval.mia_score(0.5) == 1.0 and semeval.mia_score(1.0) == 0.0 and semeval.mia_score(0.0) == 0.0
    assert semeval.mia_score(0.75) == pytest.approx(0.5)


def test_task_aggregate_hand_worked():
    forget = {"Task1": {"regurgitation": 0.5, "knowledge": 0.0}}  # inverted: 0.5, 1.0
    retain = {"Task3": {"regurgitation": 1.0, "knowledge": 0.5}}
    assert semeval.aggregated_terms(forget, retain) == [0.5, 1.0, 1.0, 0.5]
    assert semeval.task_aggregate(forget, retain) == pytest.approx(4 / (2 + 1 + 1 + 2))
    # any zero term (a forget item regurgitated verbatim) gives 0, as statistics.harmonic_mean does
    assert semeval.task_aggregate({"Task1": {"regurgitation": 1.0}}, retain) == 0.0


def test_final_score_matches_the_leaderboard():
    # 7B leaderboard rows (task aggregate, MIA, MMLU) -> final
    ails = semeval.semeval_final_score(0.827, 0.847, 0.443)
    assert ails.final == pytest.approx(0.706, abs=5e-4) and ails.eligible
    sha = semeval.semeval_final_score(0.964, 0.894, 0.275)  # honorary mention: MMLU < 0.371
    assert sha.final == pytest.approx(0.711, abs=5e-4) and not sha.eligible
    assert semeval.semeval_final_score(0.964, 0.894, 0.275, zero_if_ineligible=True).final == 0.0
    cyber = semeval.semeval_final_score(0.0, 0.999, 0.229)
    assert cyber.final == pytest.approx(0.409, abs=5e-4)
    assert semeval.semeval_final_score(0.964, 0.857, 0.242, mmlu_threshold=0.0).eligible  # 1B track


def test_registered_semeval_task_score():
    v = AuditView("m")
    v.sets["forget"] = _ss([1, 1], answers=[" a hidden map", "Kaela"], gens=["a hidden door", "Someone"],
                           ids=["xsc1", "xqa0"])  # regurgitation 2/3, knowledge 0 -> terms 1/3, 1
    v.sets["retain"] = _ss([1, 1], answers=["into the northern sea", "the northern sea"],
                           gens=["into the sea", "The Northern Sea "], ids=["ysc0", "yqa0"])  # 0.75, 1
    v.extra["group:forget"] = np.array(["Task1", "Task1"], dtype=object)
    v.extra["group:retain"] = np.array(["Task3", "Task3"], dtype=object)
    v.sets["holdout"] = _ss([2.0, 3.0])
    r = get("semeval_task_score")(v)
    terms = [1 / 3, 1.0, 0.75, 1.0]
    assert r.details["terms"] == pytest.approx(terms)
    assert r.value == pytest.approx(4 / sum(1 / t for t in terms))
    assert r.details["mia_score"] == 0.0  # forget losses 1 < holdout 2, 3: separable
    del v.extra["group:retain"]
    with pytest.raises(KeyError, match="sub-task"):
        get("semeval_task_score")(v)


def test_loaded_muse_and_semeval_tasks_audit_end_to_end(tiny_model, tiny_tokenizer):
    """Fixture data -> loader -> real cache -> the registered metrics (tiny model, seconds)."""
    from pathlib import Path

    from obliviate.data.loaders import load_muse, load_semeval25

    fix = Path(__file__).resolve().parents[1] / "fixtures"
    cache = ScoringCache(tiny_tokenizer, batch_size=8, max_new_tokens=4)
    v = build_view(tiny_model, "m", load_muse("news", fix / "muse_news"), cache)
    assert {"verbmem", "knowmem_forget", "knowmem_retain", "privleak_forget", "privleak_holdout"} <= set(v.sets)
    for name in ("verbmem_forget", "knowmem_forget", "knowmem_retain", "familiarity", "fluency_forget"):
        assert 0.0 <= get(name)(v).value <= 1.0, name
    assert get("knowmem_forget")(v).details["set"] == "knowmem_forget"
    assert get("privleak_muse")(v, v).details["sets"] == "privleak_forget vs privleak_holdout"
    s = build_view(tiny_model, "m", load_semeval25(fix / "semeval25"), cache)
    r = get("semeval_task_score")(s)
    assert 0.0 <= r.value <= 1.0 and set(r.details["forget"]) == {"Task1", "Task2"}
    assert set(r.details["forget"]["Task1"]) == {"regurgitation", "knowledge"}
