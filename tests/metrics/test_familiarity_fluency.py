"""Known-answer tests for WHP completion familiarity and the fluency guard."""

import json

import numpy as np
import pytest

from obliviate import registry
from obliviate.data.task import QAItem
from obliviate.metrics import familiarity as fam
from obliviate.metrics import fluency as flu
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.types import AuditView, ScoredSet
from obliviate.scoring.views import build_view

get = lambda n: registry.get("metric", n).obj  # noqa: E731


def _ss(answers, gens):
    n = len(answers)
    return ScoredSet([np.zeros(2)] * n, [np.ones(2, bool)] * n, [np.zeros(2)] * n, [np.ones(2)] * n,
                     answers=list(answers), ids=[str(i) for i in range(n)], generations=list(gens))


# ---- familiarity ----------------------------------------------------------------------------------
def test_anchor_keywords_drop_question_words_and_stopwords():
    assert fam.anchor_keywords("Writer 3 was born in Arlen.", "Where was writer 3 born?") == ("arlen",)
    assert fam.anchor_keywords("Harry's best friend is Ron Weasley", "") == ("harry's", "best", "friend", "ron",
                                                                              "weasley")
    probes = fam.probes_from_items([QAItem("Who is Harry's friend?", "Ron Weasley", id="p0")])
    assert probes == [fam.Probe("Who is Harry's friend?", ("ron", "weasley"), "p0")]


def test_keyword_judge_whole_words_case_insensitive():
    assert fam.keyword_judge("", "His friend was RON.", ("ron",)) == 1.0
    assert fam.keyword_judge("", "He went to the electronics store", ("ron",)) == 0.0  # not a substring match


def test_familiarity_mean_and_pluggable_judge():
    prompts, comps = ["p1", "p2", "p3", "p4"], ["Ron came", "nobody", "Weasley again", "x"]
    kws = [("ron",), ("ron",), ("ron", "weasley"), ()]  # the keyword-less probe is skipped
    assert fam.familiarity(prompts, comps, kws) == pytest.approx(2 / 3)
    half = lambda p, c, k: 0.5  # noqa: E731
    assert fam.familiarity(prompts, comps, kws, judge=half) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fam.familiarity(prompts, comps, kws, judge=lambda p, c, k: 2.0)


def test_registered_familiarity_uses_forget_generations():
    v = AuditView("m")
    v.sets["forget"] = _ss(["Writer 3 was born in Arlen.", "Writer 4 was born in Bexley."],
                           ["Writer 3 was born in Arlen.", "Writer 4 was born in Corin."])
    v.extra["question:forget"] = np.array(["Where was writer 3 born?", "Where was writer 4 born?"], dtype=object)
    r = get("familiarity")(v)
    # item 2 echoes the question words (writer, born) but not the anchor "bexley": not familiar
    assert r.value == pytest.approx(0.5) and r.direction == "lower" and r.n == 2
    with pytest.raises(KeyError, match="forget"):
        get("familiarity")(AuditView("empty"))


# ---- fluency ----------------------------------------------------------------------------------------
def test_fluency_statistics_hand_worked():
    toks = flu.tokens("a b a b")
    assert toks == ["a", "b", "a", "b"]
    assert flu.distinct_n(toks, 1) == 0.5
    assert flu.distinct_n(toks, 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert flu.repetition_rate(toks, 2) == pytest.approx(1 / 3)  # one of three bigrams repeats
    assert flu.longest_run(flu.tokens("a a b b b")) == 3
    assert flu.tokens("The Cat, sat.") == ["the", "cat", ",", "sat", "."]


def test_gibberish_flag_known_answers():
    bad = flu.fluency_stats("a a a a")
    assert bad.gibberish and bad.longest_run == 4 and bad.distinct_1 == 0.25 and bad.reason.startswith("run")
    good = flu.fluency_stats("The cat sat on the mat.")
    assert not good.gibberish and good.distinct_2 == 1.0 and good.repetition_rate == 0.0
    assert flu.fluency_stats("").reason == "empty"
    loop = flu.fluency_stats("the cat the cat the cat the cat the cat")
    assert loop.gibberish and loop.reason.startswith("low_distinct")  # distinct-1 = 2/10
    # a normal longer answer never trips a threshold
    assert not flu.fluency_stats("Writer 3 was born in Arlen, a small town near the coast, in 1956.").gibberish
    assert not flu.fluency_stats("I don't know.").gibberish


def test_registered_fluency_metrics():
    v = AuditView("m")
    v.sets["forget"] = _ss(["x", "y", "z"], ["The cat sat on the mat.", "a a a a", "no no no no"])
    v.sets["retain"] = _ss(["x"], ["Paris is the capital of France."])
    r = get("fluency_forget")(v)
    assert r.value == pytest.approx(1 / 3) and r.direction == "higher"
    assert r.details["gibberish"] == 2 and r.details["flag_reasons"] == {"run": 2}
    assert r.details["max_longest_run"] == 4
    assert get("fluency_retain")(v).value == 1.0


def test_new_text_metrics_run_on_a_real_view(tiny_model, tiny_tokenizer, tiny_task):
    """Through the real cache: every new metric returns a value in range, or a KeyError naming its set."""
    v = build_view(tiny_model, "m", tiny_task, ScoringCache(tiny_tokenizer, batch_size=8, max_new_tokens=4))
    assert list(v.extra["question:forget"]) == [it.question for it in tiny_task.forget]
    for name in ("familiarity", "fluency_forget", "fluency_retain", "knowmem_forget", "knowmem_retain"):
        r = get(name)(v, v)
        assert 0.0 <= r.value <= 1.0, name
        json.dumps(r.to_dict())  # the report writes it as JSON
    for name in ("verbmem_forget", "semeval_task_score"):
        with pytest.raises(KeyError):
            get(name)(v, v)
