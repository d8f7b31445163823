"""Contract: every registered language-model method runs a few steps on a tiny model."""

import math

import pytest
import torch

from obliviate import registry
from obliviate.api import unlearn

TEXT_METHODS = registry.names("method", "text")


@pytest.mark.parametrize("name", TEXT_METHODS)
def test_method_runs_and_changes_weights(name, tiny_model, tiny_tokenizer, tiny_task):
    info = registry.get("method", name)
    assert info.paper and info.arxiv, "provenance metadata is required"
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    res = unlearn(tiny_model, tiny_tokenizer, tiny_task, method=name,
                  train={"max_steps": 3, "batch_size": 4, "grad_accum": 1, "lr": 1e-3, "progress": False,
                         "probe_every": 1})
    assert res.log.steps >= 1
    assert all(math.isfinite(h["loss"]) for h in res.log.history)
    changed = any(not torch.equal(before[k], v) for k, v in res.model.state_dict().items())
    assert changed, f"{name} did not change any weight"
    # the original is untouched (unlearn copies by default)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
