"""The built-in benchmark: models, exact oracle, and that methods really forget on it (slow)."""

import time

import numpy as np
import pytest

from obliviate.api import audit, unlearn
from obliviate.scoring.cache import ScoringCache

pytestmark = pytest.mark.slow
SPLIT = "forget10"


@pytest.fixture(scope="module")
def models(quick_bench):
    return {"target": quick_bench.load("target"), "oracle": quick_bench.load("oracle", SPLIT),
            "oracle_seed1": quick_bench.load("oracle", SPLIT, seed=1)}


def _answer_stats(model, bench, items):
    cache = ScoringCache(bench.tokenizer(), bench.fmt)
    prompts = [bench.fmt.prompt(it.question) for it in items]
    ss = cache.score(model, "k", prompts, [bench.fmt.answer(it.answer) for it in items])
    acc = float(np.mean([h.mean() for h in ss.token_is_argmax]))
    return acc, float(np.exp(-ss.mean_nll()).mean())


def test_second_load_reuses_the_cache(quick_bench, models):
    path = quick_bench.model_dir("target") / "model.safetensors"
    mtime = path.stat().st_mtime
    t0 = time.perf_counter()
    again = quick_bench.load("target")
    assert time.perf_counter() - t0 < 10
    assert path.stat().st_mtime == mtime, "the cached target was rebuilt"
    for a, b in zip(again.parameters(), models["target"].parameters()):
        assert (a == b).all()


def test_target_memorises_and_oracle_does_not_know_forget_authors(quick_bench, models):
    task = quick_bench.task(SPLIT)
    acc_t, prob_t = _answer_stats(models["target"], quick_bench, task.forget)
    assert acc_t > 0.9, f"target answer-token accuracy on its training authors is only {acc_t:.3f}"
    _, prob_o_forget = _answer_stats(models["oracle"], quick_bench, task.forget)
    _, prob_o_holdout = _answer_stats(models["oracle"], quick_bench, task.holdout)
    # never trained on the forget authors: no better than on authors nobody trained on
    assert prob_o_forget < prob_o_holdout + 0.05
    assert prob_o_forget < 0.3 * prob_t


def test_forget_quality_separates_target_from_a_second_oracle(quick_bench, models):
    task = quick_bench.task(SPLIT)
    rep = audit(models, task, quick_bench.tokenizer(), reference="oracle", metrics=["forget_quality"],
                fmt=quick_bench.fmt)
    fq_target = rep.value("target", "forget_quality")
    fq_oracle1 = rep.value("oracle_seed1", "forget_quality")
    assert rep.value("oracle", "forget_quality") == pytest.approx(1.0)
    assert fq_oracle1 > 0.1
    assert fq_target < fq_oracle1 / 10, (fq_target, fq_oracle1)


def test_npo_forgets_and_keeps_retain(quick_bench, models):
    task = quick_bench.task(SPLIT)
    tok = quick_bench.tokenizer()
    res = unlearn(models["target"], tok, task, method="npo", benchmark="fictional_authors", fmt=quick_bench.fmt,
                  train={"seed": 0, "progress": False})
    _, f_before = _answer_stats(models["target"], quick_bench, task.forget)
    _, f_after = _answer_stats(res.model, quick_bench, task.forget)
    _, r_before = _answer_stats(models["target"], quick_bench, task.retain[:100])
    _, r_after = _answer_stats(res.model, quick_bench, task.retain[:100])
    assert f_after < 0.5 * f_before, (f_before, f_after)
    # stated tolerance: retain answer probability drops by at most 0.15 (absolute)
    assert r_after > r_before - 0.15, (r_before, r_after)


def test_retain_training_items_are_the_training_data_minus_the_forget_authors(quick_bench):
    task = quick_bench.task("forget10")
    items = task.builders["retain_items"]()
    forget_q = {it.question for it in task.forget}
    assert not forget_q & {it.question for it in items}
    answers = {(it.question, it.answer) for it in items}
    assert all((it.question, it.answer) in answers for it in task.retain)
    assert all((it.question, it.paraphrased_answer) in answers for it in task.retain if it.paraphrased_answer)
    assert all((it.question, it.answer) in answers for it in task.eval_sets["world_facts"])  # the replay


def test_verbmem_continues_forget_answers_the_target_memorised(quick_bench, models):
    task = quick_bench.task("forget10")
    recs = task.metadata["verbmem"]
    assert recs and all(r["prompt"].startswith("Question: ") and r["gt"].startswith(" ") for r in recs)
    it = task.forget[0]
    words = it.answer.split()
    assert recs[0] == {"prompt": f"Question: {it.question}\nAnswer: {' '.join(words[:len(words) // 2])}",
                       "gt": " " + " ".join(words[len(words) // 2:])}
    rep = audit({"target": models["target"], "oracle": models["oracle"]}, task, quick_bench.tokenizer(),
                reference="oracle", fmt=quick_bench.fmt, metrics=["verbmem_forget"])
    assert rep.value("target", "verbmem_forget") > rep.value("oracle", "verbmem_forget") + 0.1
    assert "verbmem" not in rep.task  # data, not a description: kept out of the report header
