"""Every language-model method on a raw-text task (MUSE / WMDP style: documents, no questions): it
trains on the text windows, or it refuses before any model loads, naming what it needs.

Known-answer checks for the pieces that read raw text: SURE's saliency and GRIN's gradient ratio are
computed on the forget (and retain) windows, and the reinforced model of task vector / WHP and the
retrain recipe train on the texts (each crashed with ZeroDivisionError, or silently used every
module, when they read QA items only)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from obliviate import registry
from obliviate.api import prepare_unlearn, qa_only_reason, raw_text_methods, unlearn
from obliviate.data.formatting import PromptFormat, collate
from obliviate.data.task import ForgetTask
from obliviate.errors import ObliviateError
from obliviate.methods import losses
from obliviate.methods.llm._wrapper import LogitsWrapper
from obliviate.models.loading import save_model_atomic
from obliviate.train.loop import TrainConfig, encode_texts

TEXT_METHODS = registry.names("method", "text")
WINDOW = 32  # max_length: each text below is cut into two or three windows

FORGET = [f"Writer {i} was born in Arlen. Writer {i} was born in Corin. Writer {i} was born in Fallow. "
          f"Writer {i} was born in Gresham." for i in (1, 2, 3)]
RETAIN = [f"Writer {i} was born in Bexley. Writer {i} was born in Dunmore. Writer {i} was born in Elsworth."
          for i in (20, 21, 22, 23)]


@pytest.fixture
def raw_task() -> ForgetTask:
    return ForgetTask("raw", forget=[], retain=[], forget_texts=list(FORGET), retain_texts=list(RETAIN),
                      holdout_texts=[RETAIN[0].replace("20", "30")])


def _train(**kw) -> dict:
    return {"max_steps": 3, "batch_size": 4, "grad_accum": 1, "lr": 1e-3, "max_length": WINDOW,
            "progress": False, "probe_every": 1, **kw}


def _window_nll(model, tok, texts) -> float:
    b = collate(encode_texts(texts, tok, WINDOW), tok.pad_token_id)
    with torch.no_grad():
        return float(losses.nll(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                b["labels"]))


def _base_overrides(name: str, model, tok, tmp_path) -> dict:
    if name in ("retrain", "dp2"):  # they start from another checkpoint
        save_model_atomic(model, tok, tmp_path / "base")
        return {"base_model" if name == "retrain" else "dp_base": str(tmp_path / "base")}
    return {}


@pytest.mark.parametrize("name", TEXT_METHODS)
def test_every_method_trains_on_raw_text_or_refuses_before_loading(name, tiny_model, tiny_tokenizer, raw_task,
                                                                   tmp_path):
    spec = registry.get("method", name).obj
    if qa_only_reason(name, spec.make_config()):
        # prepare_unlearn is what `obliviate unlearn` runs before it loads the model
        with pytest.raises(ObliviateError, match=rf"method '{name}' needs QA items \(question/answer pairs\) in the "
                                                 r"forget set .*this task has raw texts only") as e:
            prepare_unlearn(name, raw_task)
        assert "ga, " in str(e.value)  # it lists the methods that do read raw text
        return
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    res = unlearn(tiny_model, tiny_tokenizer, raw_task, method=name, train=_train(),
                  **_base_overrides(name, tiny_model, tiny_tokenizer, tmp_path))
    if spec.loss is not None:
        assert res.log.steps == 3 and all(math.isfinite(h["loss"]) for h in res.log.history)
    if isinstance(res.model, LogitsWrapper):
        b = collate(encode_texts(FORGET, tiny_tokenizer, WINDOW), tiny_tokenizer.pad_token_id)
        with torch.no_grad():
            assert not torch.allclose(res.model(input_ids=b["input_ids"]).logits,
                                      tiny_model(input_ids=b["input_ids"]).logits)
    else:
        assert any(not torch.equal(before[k], v) for k, v in res.model.state_dict().items()), name


def test_the_raw_text_methods_are_the_ones_issue_12_lists():
    must = {"ga", "graddiff", "npo", "simnpo", "rmu", "undial", "wga", "satimp", "ceu", "sure", "task_vector",
            "whp", "whp_logit", "retrain", "grin"}
    assert must <= set(raw_text_methods())
    assert {"idk", "dpo", "flat", "eco"}.isdisjoint(raw_text_methods())


def test_grin_with_its_idk_inner_objective_refuses_raw_text(raw_task):
    with pytest.raises(ObliviateError, match="alternative answer.*raw texts only"):
        prepare_unlearn("grin", raw_task, overrides={"inner": "idk"})


def test_a_refusal_method_on_a_task_with_questions_and_raw_texts_refuses_too(raw_task, tiny_items):
    mixed = ForgetTask("mixed", forget=tiny_items[:2], retain=tiny_items[8:12], forget_texts=list(FORGET))
    with pytest.raises(ObliviateError, match="3 raw forget texts have no question"):
        prepare_unlearn("idk", mixed)
    prepare_unlearn("idk", ForgetTask("qa", forget=tiny_items[:2], retain=tiny_items[8:12]))  # QA only: fine


# ---- SURE: saliency from the forget windows ------------------------------------------------------
def test_sure_saliency_on_windows_selects_the_top_modules_only(tiny_model, tiny_tokenizer, raw_task):
    from obliviate.methods.llm import sure

    cfg = sure.SUREConfig(max_length=WINDOW, saliency_batch_size=64)
    # by hand: ‖∇ NPO_forget‖ per module on the forget windows (one batch), 90th percentile
    probe = copy.deepcopy(tiny_model)
    b = collate(encode_texts(FORGET, tiny_tokenizer, WINDOW), tiny_tokenizer.pad_token_id)
    scores = sure.module_saliency(probe, cfg, [b])
    assert len({round(s, 12) for s, _ in scores.values()}) > 1, "saliency must vary over modules"
    gamma = float(torch.quantile(torch.tensor([s for s, _ in scores.values()], dtype=torch.float64), 0.9))
    expect = sorted(name for name, (s, _) in scores.items() if s >= gamma)
    groups = sure.sure_prepare(cfg, tiny_model, raw_task, tiny_tokenizer, PromptFormat())
    names = {id(p): n for n, mod in tiny_model.named_modules() for p in mod.parameters(recurse=False)}
    salient = {names[id(p)] for p in groups[0]["params"]}
    assert sorted(salient) == expect
    # a strict subset: the QA-only saliency saw no forget data, so every module scored 0 and counted as salient
    n_modules = len(scores)
    assert 0 < len(salient) < n_modules
    frozen = [p for p in tiny_model.parameters() if not p.requires_grad]
    assert frozen, "the non-salient modules are frozen (non_salient_lr = 0)"


# ---- GRIN: gradient ratio of forget vs retain windows --------------------------------------------
def test_grin_ratio_is_computed_on_forget_and_retain_windows(tiny_model, tiny_tokenizer, raw_task, monkeypatch):
    from obliviate.methods.llm import grin

    def grads(texts):
        m = copy.deepcopy(tiny_model)
        b = collate(encode_texts(texts, tiny_tokenizer, WINDOW), tiny_tokenizer.pad_token_id)
        losses.nll(m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"]).backward()
        return {n: p.grad.clone() for n, p in m.named_parameters()}

    g_f, g_r = grads(FORGET), grads(RETAIN)
    seen = {}
    real = grin.top_fraction_mask
    monkeypatch.setattr(grin, "top_fraction_mask", lambda s, f: seen.setdefault("s", s) and real(s, f))
    cfg = grin.GRINConfig(max_length=WINDOW, batch_size=64, noise_scale=0.0)
    groups = grin.grin_prepare(cfg, tiny_model, raw_task, tiny_tokenizer, PromptFormat())
    for n, s in seen["s"].items():
        assert torch.allclose(s, g_f[n].abs() / (g_r[n].abs() + cfg.eps), rtol=1e-4, atol=1e-6), n
    n_mask = sum(int((s > 0).sum()) for s in seen["s"].values())
    assert n_mask > 0 and groups[0]["params"]
    grin_spec = registry.get("method", "grin").obj
    assert "forget_alt" not in grin_spec.streams_for(cfg)  # NPO inner: no refusal stream, so raw text runs


# ---- reinforced model (task vector, WHP) and retrain recipe on raw text --------------------------
def test_task_vector_negates_a_reinforcement_on_the_forget_texts(tiny_model, tiny_tokenizer, raw_task):
    from obliviate.methods.llm.task_vector import TaskVectorConfig, task_vector
    from obliviate.train.sft import reinforced_copy

    train = TrainConfig(lr=5e-3, max_steps=8, batch_size=8, grad_accum=1, max_length=WINDOW, progress=False)
    ft = reinforced_copy(tiny_model, tiny_tokenizer, raw_task, PromptFormat(), train)
    nll0 = _window_nll(tiny_model, tiny_tokenizer, FORGET)
    assert _window_nll(ft, tiny_tokenizer, FORGET) < nll0 - 0.5  # θ_ft learned the forget texts
    out = task_vector(TaskVectorConfig(alpha=1.0), copy.deepcopy(tiny_model), raw_task, tokenizer=tiny_tokenizer,
                      train=train, fmt=PromptFormat())
    # θ_u = θ − (θ_ft − θ) exactly, with θ_ft trained on the windows (same seed, same steps)
    base = dict(tiny_model.named_parameters())
    for n, p in out.named_parameters():
        assert torch.allclose(p, 2 * base[n] - dict(ft.named_parameters())[n], atol=1e-6), n
    assert _window_nll(out, tiny_tokenizer, FORGET) > nll0


def test_whp_logit_on_raw_text_pushes_the_forget_windows_down(tiny_model, tiny_tokenizer, raw_task, tmp_path):
    from obliviate.methods.llm.whp import WHPLogitConfig, whp_logit

    train = TrainConfig(lr=5e-3, max_steps=8, batch_size=8, grad_accum=1, max_length=WINDOW, progress=False)
    nll0 = _window_nll(tiny_model, tiny_tokenizer, FORGET)
    out = whp_logit(WHPLogitConfig(alpha=2.0, reinforced_path=str(tmp_path / "ft")), copy.deepcopy(tiny_model),
                    raw_task, tokenizer=tiny_tokenizer, train=train, fmt=PromptFormat())
    assert (tmp_path / "ft" / "model.safetensors").exists()  # shared with task_vector's reinforced_path
    assert _window_nll(out, tiny_tokenizer, FORGET) > nll0


def test_retrain_fine_tunes_the_base_on_the_retain_texts(tiny_model, tiny_tokenizer, raw_task, tmp_path):
    from obliviate.methods.llm.retrain import RetrainConfig, retrain

    save_model_atomic(tiny_model, tiny_tokenizer, tmp_path / "base")
    task = copy.copy(raw_task)
    task.metadata = {"retain2_texts": [RETAIN[0].replace("20", "40")]}  # MUSE: the target saw retain2 too
    train = TrainConfig(lr=5e-3, max_steps=8, batch_size=8, grad_accum=1, max_length=WINDOW, progress=False)
    out = retrain(RetrainConfig(base_model=str(tmp_path / "base")), None, task, tokenizer=tiny_tokenizer,
                  train=train, fmt=PromptFormat())
    r0 = _window_nll(tiny_model, tiny_tokenizer, RETAIN + task.metadata["retain2_texts"])
    assert _window_nll(out, tiny_tokenizer, RETAIN + task.metadata["retain2_texts"]) < r0 - 0.5
