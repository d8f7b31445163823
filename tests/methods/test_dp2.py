"""DP2Unlearning: per-example loss, DP-SGD base training with a privacy account, and the procedure."""

import math

import pytest
import torch

from obliviate.data.formatting import PromptFormat
from obliviate.methods.llm.dp2 import per_example_nll, train_dp_base
from obliviate.train.loop import encode_items

pytest.importorskip("opacus")


def test_per_example_nll_hand_computed():
    # vocab 2; logits favour token 0 with log-odds ln 3 (p0 = 0.75) at every position
    logits = torch.log(torch.tensor([0.75, 0.25])).expand(2, 3, 2).clone()
    labels = torch.tensor([[-100, 0, 1], [-100, -100, 1]])  # ex 0 scores tokens 0,1; ex 1 scores token 1
    out = per_example_nll(logits, labels)
    assert out[0].item() == pytest.approx((-math.log(0.75) - math.log(0.25)) / 2)
    assert out[1].item() == pytest.approx(-math.log(0.25))


def test_dp_sgd_base_spends_at_most_the_target_epsilon(tiny_model, tiny_tokenizer, tiny_items):
    ex = encode_items(tiny_items, tiny_tokenizer, PromptFormat(), 64)
    before = [p.clone() for p in tiny_model.parameters()]
    info = train_dp_base(tiny_model, tiny_tokenizer, ex, epsilon=2.0, epochs=1, batch_size=8, lr=1e-3)
    assert info["epsilon"] <= 2.0 + 1e-6 and info["noise_multiplier"] > 0
    changed = [not torch.equal(a, b) for a, b in zip(before, tiny_model.parameters())]
    assert any(changed)
    # every parameter is trainable again and no Opacus per-sample state is left behind
    assert all(p.requires_grad and not hasattr(p, "grad_sample") for p in tiny_model.parameters())


def test_unlearning_fine_tunes_the_dp_base_on_all_non_forget_training_data(tiny_model, tiny_tokenizer, tiny_task,
                                                                          monkeypatch):
    import copy
    from dataclasses import replace

    import obliviate.methods.llm.dp2 as dp2_mod
    from obliviate.api import unlearn

    base = copy.deepcopy(tiny_model)
    extra = list(tiny_task.eval_sets["world_facts"])
    seen = {}

    def fake_sft(model, tok, items, fmt, train, **k):
        seen["model"], seen["items"] = model, list(items)
        return []

    monkeypatch.setattr(dp2_mod, "sft_on_items", fake_sft)
    task = replace(tiny_task, builders={"dp_base": lambda seed, eps: base,
                                        "retain_items": lambda: list(tiny_task.retain) + extra})
    res = unlearn(tiny_model, tiny_tokenizer, task, method="dp2", train={"progress": False})
    assert res.model is base and seen["model"] is base  # the deployed model is discarded
    assert seen["items"] == list(tiny_task.retain) + extra
    # without the builder the task's retain set is the data
    unlearn(tiny_model, tiny_tokenizer, replace(task, builders={"dp_base": lambda seed, eps: base}), method="dp2",
            train={"progress": False})
    assert seen["items"] == list(tiny_task.retain)
