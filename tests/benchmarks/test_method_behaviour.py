"""Every language-model method, at its fictional_authors preset, really forgets on the small
built-in benchmark under a fixed seed: forget-answer probability falls clearly while retain-answer
probability holds within a stated tolerance (slow)."""

import numpy as np
import pytest

from obliviate import registry
from obliviate.api import unlearn
from obliviate.scoring.cache import ScoringCache

pytestmark = pytest.mark.slow
SPLIT = "forget10"
# ECO is an inference-time wrapper; it has its own behaviour test next to its known-answer tests.
# Fine-tuning on retain is the baseline that does not forget on this benchmark at a setting that
# keeps world-fact utility (forget probability 0.90 -> 0.89 here); it is measured in the bench only.
METHODS = [m for m in registry.names("method", "text") if m not in ("eco", "finetune")]
# Forget probability must fall below this share of the target's. Measured on the small recipe, seed 0:
# most methods at their presets cut it by 40%+; the ones below move less at settings that keep retain
# (refusal-based, forget-data-only, representation-level and inference-time methods).
FORGET_SHARE = {"default": 0.6, "idk": 0.8, "dpo": 0.8, "ga": 0.85, "grin": 0.7, "whp_logit": 0.85, "flat": 0.9,
                "ceu": 0.97, "rmu": 0.97}
# Absolute drop allowed in mean retain-answer probability (SURE's large-lr salient modules and task
# vector negation touch shared answer templates).
RETAIN_TOLERANCE = {"default": 0.15, "sure": 0.2, "task_vector": 0.2}


def _prob(model, bench, items):
    cache = ScoringCache(bench.tokenizer(), bench.fmt)
    prompts = [bench.fmt.prompt(it.question) for it in items]
    ss = cache.score(model, "k", prompts, [bench.fmt.answer(it.answer) for it in items])
    return float(np.exp(-ss.mean_nll()).mean())


@pytest.fixture(scope="module")
def setting(quick_bench):
    task = quick_bench.task(SPLIT)
    target = quick_bench.load("target")
    before = (_prob(target, quick_bench, task.forget), _prob(target, quick_bench, task.retain[:100]))
    return task, target, before


@pytest.mark.parametrize("name", METHODS)
def test_method_forgets_and_keeps_retain(name, quick_bench, setting):
    task, target, (f_before, r_before) = setting
    res = unlearn(target, quick_bench.tokenizer(), task, method=name, benchmark="fictional_authors",
                  fmt=quick_bench.fmt, train={"seed": 0, "progress": False})
    f_after = _prob(res.model, quick_bench, task.forget)
    r_after = _prob(res.model, quick_bench, task.retain[:100])
    share = FORGET_SHARE.get(name, FORGET_SHARE["default"])
    assert f_after < share * f_before, (name, f_before, f_after)
    assert r_after > r_before - RETAIN_TOLERANCE.get(name, RETAIN_TOLERANCE["default"]), (name, r_before, r_after)
