"""Upstream-benchmark loaders on tiny fixtures with the exact upstream field names and file layout.

Every test reads a local path; the Hub tests run with HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set (conftest)
and check that the loader fails with instructions instead of touching the network.
"""

import os
from pathlib import Path

import pytest

from obliviate.data import loaders
from obliviate.data.io import DataError
from obliviate.data.loaders import DatasetUnavailableError

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def test_offline_environment():
    assert os.environ.get("HF_DATASETS_OFFLINE") == "1" and os.environ.get("HF_HUB_OFFLINE") == "1"


def test_tofu_forget01_from_local_dir():
    task = loaders.load_tofu("forget01", FIX / "tofu")
    assert task.name == "tofu_forget01"
    assert len(task.forget) == 3
    f0 = task.forget[0]
    assert f0.answer.startswith("The author born in Kuwait City")
    assert f0.paraphrased_answer.startswith("In other words:")
    assert len(f0.perturbed_answers) == 5 and f0.perturbed_answers[0].startswith("Wrong answer 0")
    assert f0.question_paraphrases == (f"Rephrased: {f0.question}",)
    assert f0.group == "author199"  # 3 items at the tail of the 4000-item `full` -> last author
    # retain99: the retain_perturbed items (questions 1 and 3) come first and carry their alternatives
    assert [it.question for it in task.retain] == ["Retain question 1?", "Retain question 3?", "Retain question 0?",
                                                   "Retain question 2?"]
    assert task.retain[0].paraphrased_answer == "Para 1." and len(task.retain[0].perturbed_answers) == 5
    assert task.retain[0].id == "tofu_retain99_1" and task.retain[2].paraphrased_answer is None
    assert task.metadata["n_retain_perturbed"] == 2 and task.metadata["retain_split"] == "retain99"
    assert [it.answer for it in task.holdout] == ["Holdout answer 0.", "Holdout answer 1."]
    assert task.eval_sets["world_facts"][0].answer == "Paris"
    assert task.eval_sets["world_facts"][0].perturbed_answers == ("London", "Rome", "Berlin")
    assert task.eval_sets["real_authors"][0].answer == "Jane Austen"


def test_tofu_bad_split_and_missing_local_file(tmp_path):
    with pytest.raises(DataError, match="forget01, forget05 or forget10"):
        loaders.load_tofu("forget02", FIX / "tofu")
    with pytest.raises(DatasetUnavailableError, match="huggingface-cli download locuslab/TOFU"):
        loaders.load_tofu("forget05", FIX / "tofu")  # the fixture has no forget05 files


def test_muse_news_from_local_dir():
    task = loaders.load_muse("news", FIX / "muse_news")
    assert task.name == "muse_news" and task.forget == [] and task.retain == []
    assert task.forget_texts[0].startswith("forget article 0")
    assert len(task.retain_texts) == 2 and task.retain_texts[0].startswith("retain1 article 0")
    assert len(task.holdout_texts) == 2
    assert task.eval_sets["knowmem_forget"][1].question == "forget_qa question 1?"
    assert task.eval_sets["knowmem_retain"][0].answer == "retain_qa answer 0"
    assert task.metadata["verbmem"] == [{"prompt": "The council met on Tuesday to discuss",
                                         "gt": " the new bridge over the river Wyre."}]
    assert set(task.metadata["privleak"]) == {"forget", "retain", "holdout"}
    assert task.metadata["privleak"]["holdout"][0].startswith("privleak holdout article 0")
    assert len(task.metadata["knowmem_icl"]["forget_qa_icl"]) == 2
    assert task.metadata["retain2_texts"][0].startswith("retain2 article 0")
    with pytest.raises(DataError, match="'news' or 'books'"):
        loaders.load_muse("movies", FIX / "muse_news")


def test_wmdp_from_local_dirs():
    task = loaders.load_wmdp(("bio", "cyber"), FIX / "wmdp", corpora_source=FIX / "wmdp")
    bio = task.eval_sets["wmdp_bio"]
    assert bio[0].question == ("Which organelle produces ATP?\nA. Nucleus\nB. Ribosome\nC. Mitochondrion\n"
                               "D. Golgi apparatus")
    assert bio[0].answer == "C" and bio[0].perturbed_answers == ("A", "B", "D")
    assert task.eval_sets["wmdp_cyber"][0].answer == "B"
    assert task.metadata["multiple_choice"]["bio"][1] == {"question": "Which molecule carries genetic information?",
                                                         "choices": ["DNA", "ATP", "Glucose", "Lipid"], "answer": 0}
    # bio forget corpus is gated and absent from the fixture: skipped and reported
    assert task.forget_texts == ["A forget document about exploits.", "Another forget document."]
    assert "bio-forget-corpus" in task.metadata["missing_corpora"]
    assert len(task.retain_texts) == 2
    with pytest.raises(DatasetUnavailableError, match="no forget corpus"):
        loaders.load_wmdp(("bio",), FIX / "wmdp", corpora_source=FIX / "wmdp")
    with pytest.raises(DataError, match="unknown WMDP subset"):
        loaders.load_wmdp(("physics",), FIX / "wmdp")


def test_semeval25_from_local_dir():
    task = loaders.load_semeval25(FIX / "semeval25")
    assert task.name == "semeval25_train"
    assert [it.group for it in task.forget] == ["Task1", "Task1", "Task2"]
    assert task.forget[0].id == "6adbf83c-5071-4979-bedb-e5184b15650bsc1"
    assert task.forget[0].question == "In the quiet town of Mirefield, Kaela"
    assert task.forget[0].answer == " discovered a hidden map."
    assert task.retain[1].answer == "the northern sea"
    val = loaders.load_semeval25(FIX / "semeval25", fold="validation")
    assert len(val.forget) == 1 and len(val.retain) == 1


def test_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="no such file or directory"):
        loaders.load_semeval25(tmp_path / "nowhere")


@pytest.mark.parametrize("call", [
    lambda: loaders.load_tofu("forget01"),
    lambda: loaders.load_semeval25(),
])
def test_hub_offline_raises_with_instructions(call):
    with pytest.raises(DatasetUnavailableError, match="huggingface-cli download .* --repo-type dataset"):
        call()


def test_muse_knowmem_questions_follow_their_in_context_examples(tiny_model, tiny_tokenizer):
    from obliviate.scoring.cache import ScoringCache
    from obliviate.scoring.views import build_view

    task = loaders.load_muse("news", FIX / "muse_news")
    cache = ScoringCache(tiny_tokenizer, max_new_tokens=4)
    seen = {}
    score_group = cache.score_group

    def recording(model, keys, prompts, answer_sets, *a, **k):
        for key in keys:
            seen[key] = list(prompts)
        return score_group(model, keys, prompts, answer_sets, *a, **k)

    cache.score_group = recording
    build_view(tiny_model, "m", task, cache)
    icl = task.metadata["knowmem_icl"]["forget_qa_icl"]
    first = seen["knowmem_forget:answer"][0]
    shots = "".join(f"Question: {ex['question']}\nAnswer: {ex['answer']}\n\n" for ex in icl)
    assert first == shots + "Question: forget_qa question 0?\nAnswer:"
    assert seen["knowmem_retain:answer"][0].startswith("Question: " + task.metadata["knowmem_icl"]["retain_qa_icl"][0]
                                                       ["question"])
