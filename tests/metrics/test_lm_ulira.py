"""U-LiRA for language models: the sequence score, the shadow protocol, and the audit hook."""

import numpy as np
import pytest

from obliviate.data.task import ForgetTask
from obliviate.metrics.base import MissingReferenceError
from obliviate.metrics.classification import balanced_in_mask
from obliviate.metrics.lm_ulira import lm_ulira, sequence_phi, train_lm_shadows


def test_sequence_phi_is_the_logit_of_the_geometric_mean_probability():
    # mean log-prob log(0.8): p = 0.8, logit = log(0.8 / 0.2) = log 4
    assert sequence_phi(np.array([np.log(0.8)]))[0] == pytest.approx(np.log(4.0))
    assert sequence_phi(np.array([np.log(0.5)]))[0] == pytest.approx(0.0)
    assert np.isfinite(sequence_phi(np.array([0.0]))[0])  # p = 1 is clipped, not infinite


def test_balanced_in_mask_gives_every_item_half_the_shadows():
    m = balanced_in_mask(8, 30, seed=3)
    assert m.shape == (8, 30) and (m.sum(0) == 4).all()
    assert not (m == m[:, :1]).all()  # items differ in which shadows hold them


def test_without_a_shadow_builder_the_reason_is_clear(tiny_task, tiny_model, tiny_tokenizer):
    with pytest.raises(MissingReferenceError, match="builders"):
        train_lm_shadows(ForgetTask("user", tiny_task.forget, tiny_task.retain), 4)
    with pytest.raises(MissingReferenceError, match="oracle"):
        lm_ulira(tiny_model, None, tiny_task, tiny_tokenizer)


@pytest.mark.slow
def test_target_is_exposed_and_the_oracle_is_not(quick_bench):
    from obliviate.api import audit

    tok, task = quick_bench.tokenizer(), quick_bench.task("forget10")
    target, oracle = quick_bench.load("target"), quick_bench.load("oracle", "forget10")
    rep = audit({"target": target, "oracle": oracle}, task, tok, reference="oracle", fmt=quick_bench.fmt,
                metrics=["forget_prob"], ulira_shadows=4)
    t, o = rep.models["target"].metrics["ulira"], rep.models["oracle"].metrics["ulira"]
    # (The oracle's own row compares it with itself, 50 by construction: nothing to assert there.)
    assert o["details"]["n_shadows"] == 4
    assert t["value"] > 75.0, t  # the target still holds the forget items: the attack separates it
    assert t["details"]["n_shadows"] == 4 and t["details"]["in_shadows"] == "trained"
    # shadows are cached: the second request trains nothing
    again = train_lm_shadows(task, 4)
    assert len(again.models) == 4
