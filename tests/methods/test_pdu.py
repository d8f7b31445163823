"""PDU (primal-dual unlearning): known-answer tests of the logit-margin loss and the dual ascent, and
the dual variable's path through the real training loop."""

import math

import pytest
import torch

from obliviate.api import unlearn
from obliviate.data.formatting import IGNORE_INDEX
from obliviate.methods.base import StepContext
from obliviate.methods.llm.pdu import PDUConfig, dual_update, logit_margin_loss, pdu_loss
from obliviate.train.loop import collate, encode_items
from obliviate.data.formatting import PromptFormat


def test_logit_margin_known_values():
    # positions 0 and 1 predict answer tokens (labels[1], labels[2]); position 2 predicts nothing
    logits = torch.tensor([[[1.0, 2.0, 3.0],     # max 3, mean 2: margin 1, squared 1
                            [0.0, 0.0, 6.0],     # max 6, mean 2: margin 4, squared 16
                            [10.0, 0.0, 0.0]]])  # not an answer-predicting position: ignored
    labels = torch.tensor([[IGNORE_INDEX, 1, 2]])
    assert logit_margin_loss(logits, labels).item() == pytest.approx((1 + 16) / 2)
    # a flat distribution has zero margin, whatever its level
    assert logit_margin_loss(torch.full((1, 3, 5), 7.0), labels).item() == 0.0


def test_dual_update_known_values():
    assert dual_update(1.0, 0.5, 0.3, 5.0) == pytest.approx(2.0)  # 1 + 5·(0.5 - 0.3)
    assert dual_update(1.0, 0.2, 0.3, 5.0) == pytest.approx(0.5)  # 1 + 5·(0.2 - 0.3)
    assert dual_update(1.0, 0.0, 0.3, 5.0) == 0.0  # 1 - 1.5 projected onto λ ≥ 0


def _batch(tiny_tokenizer, tiny_task):
    fmt = PromptFormat()
    enc = lambda items: collate(encode_items(items, tiny_tokenizer, fmt, 64), tiny_tokenizer.pad_token_id)  # noqa: E731
    return {"forget": enc(tiny_task.forget[:4]), "retain": enc(tiny_task.retain[:4])}


def test_loss_is_the_lagrangian_and_the_multiplier_moves(tiny_model, tiny_tokenizer, tiny_task):
    from obliviate.methods import losses

    batch = _batch(tiny_tokenizer, tiny_task)
    with torch.no_grad():
        l_f = logit_margin_loss(tiny_model(input_ids=batch["forget"]["input_ids"],
                                           attention_mask=batch["forget"]["attention_mask"]).logits,
                                batch["forget"]["labels"]).item()
        l_r = losses.nll(tiny_model(input_ids=batch["retain"]["input_ids"],
                                    attention_mask=batch["retain"]["attention_mask"]).logits,
                         batch["retain"]["labels"]).item()
    cfg = PDUConfig(gamma=0.5, alpha=2.0, retain_eps=1.0, dual_step_size=0.25, dual_warmup_epochs=0)
    ctx = StepContext()
    first = pdu_loss(cfg, tiny_model, batch, ctx)
    assert first.loss.item() == pytest.approx(0.5 * l_f + 2.0 * (l_r - 1.0), rel=1e-5)
    lam1 = max(0.0, 2.0 + 0.25 * (l_r - 1.0))
    assert ctx.state["pdu_lambda"] == pytest.approx(lam1, rel=1e-6)
    # the next evaluation is weighted by the updated multiplier (it fails if the dual step is removed)
    second = pdu_loss(cfg, tiny_model, batch, ctx)
    assert second.parts["dual_lambda"] == pytest.approx(lam1, rel=1e-6)
    assert second.loss.item() - first.loss.item() == pytest.approx(0.25 * (l_r - 1.0) ** 2, rel=1e-4)
    assert abs(l_r - 1.0) > 0.1  # the tiny model's retain NLL is far from ε, so the two losses differ


def test_warmup_and_fixed_multiplier(tiny_model, tiny_tokenizer, tiny_task):
    batch = _batch(tiny_tokenizer, tiny_task)
    cfg = PDUConfig(alpha=1.0, retain_eps=0.0, dual_step_size=1.0, dual_warmup_epochs=2)
    ctx = StepContext(step=3, steps_per_epoch=2.0)  # 1.5 epochs done: still warming up
    pdu_loss(cfg, tiny_model, batch, ctx)
    assert "pdu_lambda" not in ctx.state
    ctx.step = 4  # two epochs done: the multiplier moves
    pdu_loss(cfg, tiny_model, batch, ctx)
    assert ctx.state["pdu_lambda"] > 1.0
    fixed = StepContext()
    pdu_loss(PDUConfig(primal_dual=False, dual_warmup_epochs=0), tiny_model, batch, fixed)
    assert "pdu_lambda" not in fixed.state
    with pytest.raises(ValueError, match="steps per epoch"):
        pdu_loss(cfg, tiny_model, batch, StepContext())


def test_dual_ascent_through_the_training_loop(tiny_model, tiny_tokenizer, tiny_task):
    # 8 forget items, batch 4, no accumulation: 2 optimizer steps per epoch; warm-up 1 epoch
    eps, eta = 0.5, 0.5
    res = unlearn(tiny_model, tiny_tokenizer, tiny_task, method="pdu", alpha=1.0, retain_eps=eps,
                  dual_step_size=eta, dual_warmup_epochs=1.0,
                  train={"max_steps": 6, "batch_size": 4, "grad_accum": 1, "lr": 1e-3, "progress": False,
                         "probe_every": 0})
    h = res.log.history
    lam = [row["dual_lambda"] for row in h]
    assert lam[0] == lam[1] == lam[2] == 1.0  # steps 0, 1 are the warm-up; the first update (at step 2) shows at step 3
    for k in range(2, len(h) - 1):  # λ_{k+1} = max(0, λ_k + η(L_r,k - ε))
        assert lam[k + 1] == pytest.approx(max(0.0, lam[k] + eta * (h[k]["retain_nll"] - eps)), rel=1e-6)
    assert lam[-1] > 1.0 and all(math.isfinite(x) for x in lam)  # the tiny model's retain NLL is above ε


def test_pdu_refuses_without_retain(tiny_model, tiny_tokenizer, tiny_task):
    batch = _batch(tiny_tokenizer, tiny_task)
    with pytest.raises(ValueError, match="retain"):
        pdu_loss(PDUConfig(dual_warmup_epochs=0), tiny_model, {"forget": batch["forget"]}, StepContext())
