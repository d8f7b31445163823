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
# Limits from `benchmarks/behaviour_margins.py --seeds 0 1 2` (the numbers in benchmarks/README.md,
# "Behaviour-test margins"): per method, the worst over three training seeds and the margin to the
# limit are written beside it. The test itself runs seed 0; a machine whose CPU numerics differ moves
# the result by about as much as a seed does, so every margin is at least 0.06.
# Forget probability after / before must stay below this share.
FORGET_SHARE = {
    "ceu": 0.95,         # worst 0.874, margin 0.076
    "dp2": 0.3,          # worst 0.084, margin 0.216
    "dpo": 0.7,          # worst 0.604, margin 0.096
    "flat": 0.9,         # worst 0.812, margin 0.088
    "ga": 0.8,           # worst 0.715, margin 0.085
    "graddiff": 0.3,     # worst 0.044, margin 0.256
    "grin": 0.75,        # worst 0.668, margin 0.082
    "idk": 0.75,         # worst 0.678, margin 0.072
    "npo": 0.3,          # worst 0.005, margin 0.295
    "pdu": 0.3,          # worst 0.0002, margin 0.30
    "retrain": 0.3,      # worst 0.084, margin 0.216
    "rmu": 0.3,          # worst 0.049, margin 0.251
    "satimp": 0.3,       # worst 0.013, margin 0.287
    "simnpo": 0.4,       # worst 0.174, margin 0.226
    # SURE moves only the top 3 of the tiny model's 30 modules by forget-gradient norm, and which three
    # depends on the target model's training numerics: lm_head (2.544) just above layer 0's v_proj
    # (2.501) on the machine of 2026-12-02 (shares 0.573 / 0.597 / 0.586); the machine of 2026-12-01
    # measured 0.307 / 0.337 / 0.302 (its selection was not recorded). Limit over both: worst 0.597,
    # margin 0.103
    "sure": 0.7,
    "task_vector": 0.65,  # worst 0.532 (the same on every seed: no sampling in it), margin 0.118
    "undial": 0.5,       # worst 0.348, margin 0.152
    "wga": 0.5,          # worst 0.322, margin 0.178
    "whp": 0.7,          # worst 0.589, margin 0.111
    "whp_logit": 0.87,   # worst 0.797 (no training seed in it), margin 0.073
}
# Absolute drop allowed in mean retain-answer probability (target 0.904). Default: every method not
# listed drops at most 0.075 over the seeds (graddiff; most gain), margin >= 0.075. The listed ones
# touch shared answer templates (SURE's large-lr salient modules, task-vector negation, WHP's generic
# labels, RMU's steered layer).
RETAIN_TOLERANCE = {
    "default": 0.15,
    "rmu": 0.2,          # worst 0.125, margin 0.075
    "sure": 0.22,        # worst 0.154 (2026-12-01; 0.061 on 2026-12-02), margin 0.066
    "task_vector": 0.23,  # worst 0.165, margin 0.065
    "whp": 0.2,          # worst 0.127, margin 0.073
}


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
    share = FORGET_SHARE[name]  # every method has a measured limit
    assert f_after < share * f_before, (name, f_before, f_after)
    assert r_after > r_before - RETAIN_TOLERANCE.get(name, RETAIN_TOLERANCE["default"]), (name, r_before, r_after)
