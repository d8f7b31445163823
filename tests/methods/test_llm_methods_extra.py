"""Contract and behaviour tests for DPO, UNDIAL, WGA, SatImp, CE-U, RMU, FLAT and SURE."""

import copy
import math
import re

import pytest
import torch

from obliviate import registry
from obliviate.api import unlearn
from obliviate.data.formatting import PromptFormat, collate
from obliviate.methods import losses
from obliviate.methods.base import StepContext, forward_logits
from obliviate.methods.llm import ceu, dpo, flat, rmu, satimp, sure, undial, wga  # noqa: F401  (registers)
from obliviate.train.loop import encode_items

NAMES = ["ceu", "dpo", "flat", "rmu", "satimp", "sure", "undial", "wga"]
TRAIN = {"max_steps": 3, "batch_size": 4, "grad_accum": 1, "lr": 1e-3, "progress": False}


def _changed(before: dict, model: torch.nn.Module) -> set[str]:
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def _batch(items, tokenizer, answer="answer"):
    return collate(encode_items(items, tokenizer, PromptFormat(), 64, answer=answer), tokenizer.pad_token_id)


def _expected_trainable(name: str, model: torch.nn.Module, tokenizer, task) -> set[str] | None:
    """Parameter names a method may change (None: any)."""
    if name == "rmu":
        # 2-layer model: ℓ = round(7/32 · 2) = 0, so only layer 0's MLP down-projection trains
        assert rmu.rmu_layer(rmu.RMUConfig(), model) == 0
        pattern = rmu.rmu_params_regex(rmu.RMUConfig(), model)
        return {n for n, _ in model.named_parameters() if re.search(pattern, n)}
    if name == "sure":
        probe = copy.deepcopy(model)
        groups = sure.sure_prepare(sure.SUREConfig(), probe, task, tokenizer, PromptFormat())
        assert len(groups) == 1  # default: non-salient modules are frozen, not given a group
        ids = {id(p) for p in groups[0]["params"]}
        return {n for n, p in probe.named_parameters() if id(p) in ids}
    return None


@pytest.mark.parametrize("name", NAMES)
def test_method_runs_and_changes_weights(name, tiny_model, tiny_tokenizer, tiny_task):
    info = registry.get("method", name)
    assert info.paper and info.arxiv and info.code, "provenance metadata is required"
    allowed = _expected_trainable(name, tiny_model, tiny_tokenizer, tiny_task)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    res = unlearn(tiny_model, tiny_tokenizer, tiny_task, method=name, train=TRAIN)
    assert res.log.steps == 3
    assert all(math.isfinite(h["loss"]) for h in res.log.history)
    changed = _changed(before, res.model)
    assert changed, f"{name} did not change any weight"
    if allowed is not None:
        assert changed <= allowed, f"{name} changed {sorted(changed - allowed)}"
    if name == "rmu":
        assert changed == {"model.layers.0.mlp.down_proj.weight"}
    assert not _changed(before, tiny_model), "unlearn must copy the model"


@pytest.mark.parametrize("cfg", [flat.FLATConfig(), flat.FLATConfig(divergence="neyman", code_compat=True),
                                 flat.FLATConfig(divergence="js")])
def test_flat_variants_give_finite_loss_and_gradients(cfg, tiny_model, tiny_tokenizer, tiny_task):
    batch = {"forget": _batch(tiny_task.forget[:4], tiny_tokenizer),
             "forget_alt": _batch(tiny_task.forget[:4], tiny_tokenizer, answer="alt")}
    out = flat.flat_loss(cfg, tiny_model, batch, StepContext())
    out.loss.backward()
    assert math.isfinite(out.loss.item()) and 0 < out.parts["p_forget"] < 1
    assert tiny_model.lm_head.weight.grad.abs().sum() > 0


def test_rmu_layer_and_regex_resolution(tiny_model):
    cfg = registry.get("method", "rmu").obj.make_config({"layer": -1})
    assert rmu.rmu_layer(cfg, tiny_model) == 1
    assert rmu.rmu_params_regex(cfg, tiny_model) == r"layers\.(0|1)\.mlp\.down_proj\."
    with pytest.raises(ValueError, match="outside"):
        rmu.rmu_layer(rmu.RMUConfig(layer=5), tiny_model)
    with pytest.raises(ValueError, match="params_regex"):
        rmu.rmu_prepare(rmu.RMUConfig(params_regex="no_such_param"), tiny_model, None, None, None)


def test_rmu_forget_loss_pulls_hidden_states_to_the_control_vector(tiny_model, tiny_tokenizer, tiny_task):
    batch = _batch(tiny_task.forget[:4], tiny_tokenizer)
    ref = copy.deepcopy(tiny_model).eval()
    cfg = rmu.RMUConfig(alpha=0.0)
    ctx = StepContext(reference=ref)
    rmu.rmu_prepare(cfg, tiny_model, tiny_task, tiny_tokenizer, PromptFormat())
    opt = torch.optim.Adam([p for p in tiny_model.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(5):
        out = rmu.rmu_loss(cfg, tiny_model, {"forget": batch}, ctx)
        first = first if first is not None else out.loss.item()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.loss.item() < first


def test_sure_prepare_groups_give_salient_modules_the_larger_lr(tiny_model, tiny_tokenizer, tiny_task):
    cfg = sure.SUREConfig(non_salient_lr=1e-6)
    groups = sure.sure_prepare(cfg, tiny_model, tiny_task, tiny_tokenizer, PromptFormat())
    salient, rest = groups
    assert salient["name"] == "salient" and "lr" not in salient  # takes train.lr (1e-3 below)
    assert rest["lr"] == 1e-6 < TRAIN["lr"]
    opt = torch.optim.AdamW(groups, lr=TRAIN["lr"])
    assert opt.param_groups[0]["lr"] > opt.param_groups[1]["lr"]
    n_all = sum(1 for p in tiny_model.parameters())
    assert len(salient["params"]) + len(rest["params"]) == n_all
    assert 0 < len(salient["params"]) < n_all / 3  # the top 10% of modules (rounded up by ties)
    assert all(p.grad is None for p in tiny_model.parameters()), "the saliency pass must not leave gradients"


@pytest.mark.parametrize("base", ["ga", "graddiff", "npo"])
def test_sure_bases_compose_the_shared_losses(base, tiny_model, tiny_tokenizer, tiny_task):
    batch = {"forget": _batch(tiny_task.forget[:4], tiny_tokenizer),
             "retain": _batch(tiny_task.retain[:4], tiny_tokenizer)}
    ctx = StepContext(reference=copy.deepcopy(tiny_model).eval())
    out = sure.sure_loss(sure.SUREConfig(base=base), tiny_model, batch, ctx)
    assert ("retain_nll" in out.parts) == (base != "ga")
    if base == "npo":  # at θ = θ_ref the NPO term is (2/β)·log 2
        assert math.isclose(out.parts["npo_forget"], 2 / 0.1 * math.log(2), rel_tol=1e-4)


@pytest.mark.parametrize("name", ["wga", "ceu", "undial"])
def test_forget_losses_raise_forget_nll(name, tiny_model, tiny_tokenizer, tiny_task):
    """A few optimiser steps on one forget batch push its NLL up (the forget term alone)."""
    spec = registry.get("method", name).obj
    cfg = spec.make_config({"alpha": 0.0} if name == "wga" else {})
    batch = {"forget": _batch(tiny_task.forget[:4], tiny_tokenizer)}
    ctx = StepContext(reference=copy.deepcopy(tiny_model).eval())
    nll0 = losses.nll(forward_logits(tiny_model, batch["forget"]), batch["forget"]["labels"]).item()
    opt = torch.optim.Adam(tiny_model.parameters(), lr=3e-3)
    for _ in range(3):
        out = spec.loss(cfg, tiny_model, batch, ctx)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert losses.nll(forward_logits(tiny_model, batch["forget"]), batch["forget"]["labels"]).item() > nll0
