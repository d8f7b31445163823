import pytest
import torch

from obliviate import registry
from obliviate.methods.base import LossOutput, MethodSpec
from obliviate.train.loop import TrainConfig, run_unlearning


def _cfg(**kw):
    base = dict(max_steps=4, batch_size=4, grad_accum=1, lr=1e-3, progress=False, probe_every=1)
    return TrainConfig(**{**base, **kw})


def _spec(name):
    info = registry.get("method", name)
    return info.obj


def test_killed_run_resumes_to_the_same_weights(tiny_model, tiny_tokenizer, tiny_task, tmp_path):
    import copy

    spec = _spec("graddiff")
    cfg = _cfg(max_steps=6, probe_every=0)
    full, _ = run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task, spec, spec.make_config(), cfg)

    def killed_at_3(c, model, batch, ctx):
        if ctx.step == 3:
            raise KeyboardInterrupt  # the process dies after the step-3 checkpoint was written
        return spec.loss(c, model, batch, ctx)

    out = tmp_path / "run"
    ckcfg = _cfg(max_steps=6, probe_every=0, checkpoint_every=3, output_dir=str(out))
    with pytest.raises(KeyboardInterrupt):
        run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task,
                       MethodSpec("graddiff", spec.config_cls, loss=killed_at_3, streams=spec.streams),
                       spec.make_config(), ckcfg)
    assert '"step": 3' in (out / "checkpoint" / "meta.json").read_text()
    resumed, log = run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task, spec, spec.make_config(), ckcfg)
    assert log.resumed_from == 3 and log.steps == 6
    for k, v in full.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-5), f"{k} differs after resume"


def test_a_finished_shorter_run_is_not_resumed_under_a_longer_plan(tiny_model, tiny_tokenizer, tiny_task, tmp_path):
    """The step-3 checkpoint of a 3-step run has a finished LR schedule: continuing it as a 6-step run
    would be neither run. It is refused, naming the setting that differs (see test_checkpoint.py)."""
    import copy

    from obliviate.errors import ResumeError

    spec = _spec("npo")
    out = tmp_path / "run"
    run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task, spec, spec.make_config(),
                   _cfg(max_steps=3, probe_every=0, checkpoint_every=3, output_dir=str(out)), needs_reference=True)
    with pytest.raises(ResumeError, match=r"train_config.max_steps: 3 then, 6 now.*To start fresh, delete"):
        run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task, spec, spec.make_config(),
                       _cfg(max_steps=6, probe_every=0, checkpoint_every=3, output_dir=str(out)), needs_reference=True)


def test_nan_loss_stops_and_restores_last_good(tiny_model, tiny_tokenizer, tiny_task):
    calls = {"n": 0}

    def bad_loss(cfg, model, batch, ctx):
        calls["n"] += 1
        f = batch["forget"]
        out = model(input_ids=f["input_ids"], attention_mask=f["attention_mask"]).logits.mean()
        if ctx.step >= 2:
            out = out * float("nan")
        return LossOutput(out)

    spec = MethodSpec("bad", config_cls=object, loss=bad_loss)
    import copy

    model, log = run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task, spec, None, _cfg(max_steps=5))
    assert "loss became nan at step 2" in log.stopped
    assert log.steps == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_collapse_guard_stops_gradient_ascent(tiny_model, tiny_tokenizer, tiny_task):
    spec = _spec("ga")
    model, log = run_unlearning(tiny_model, tiny_tokenizer, tiny_task, spec, spec.make_config(),
                                _cfg(max_steps=60, lr=3e-2, collapse_factor=1.5))
    assert log.stopped.startswith("utility collapse"), log.stopped
    assert log.steps < 60


def test_best_rule_returns_probed_step(tiny_model, tiny_tokenizer, tiny_task):
    spec = _spec("graddiff")
    _, log = run_unlearning(tiny_model, tiny_tokenizer, tiny_task, spec, spec.make_config(),
                            _cfg(max_steps=4, best_rule="max_gap", collapse_factor=0))
    scores = {p["step"]: p["forget_nll"] - p["retain_nll"] for p in log.probes if p["step"] > 0}
    assert log.best_step == max(scores, key=scores.get)


def test_lora_trains_adapters_and_merges(tiny_model, tiny_tokenizer, tiny_task):
    spec = _spec("npo")
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    model, log = run_unlearning(tiny_model, tiny_tokenizer, tiny_task, spec, spec.make_config(),
                                _cfg(max_steps=3, lora=True, lora_r=4, lr=1e-2), needs_reference=True)
    assert log.steps == 3
    sd = model.state_dict()
    assert set(sd) == set(before), "merged LoRA model has the original parameter names"
    changed = [k for k in sd if not torch.equal(sd[k], before[k])]
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)


def test_bad_best_rule():
    spec = _spec("ga")
    with pytest.raises(ValueError, match="best_rule"):
        run_unlearning(None, None, None, spec, None, _cfg(best_rule="best"))


def test_raw_text_tasks_unlearn_through_the_same_loop(tiny_model, tiny_tokenizer):
    """MUSE/WMDP-style tasks carry raw documents: they are chunked into max_length windows and the
    forget loss rises on them, while a method that needs alternative answers says why it cannot run."""
    import copy
    from pathlib import Path

    from obliviate.data import loaders
    from obliviate.data.formatting import collate
    from obliviate.train.loop import encode_texts

    task = loaders.load_muse("news", Path(__file__).parents[1] / "fixtures" / "muse_news")
    assert task.forget_texts and not task.forget
    chunks = encode_texts(["alpha beta gamma " * 40], tiny_tokenizer, max_length=16)
    assert len(chunks) > 1 and all(len(c.input_ids) <= 16 for c in chunks)
    assert all(c.input_ids[0] == tiny_tokenizer.bos_token_id and c.n_prompt == 1 for c in chunks)

    def forget_nll(model):
        b = collate(encode_texts(task.forget_texts, tiny_tokenizer, 64), tiny_tokenizer.pad_token_id)
        with torch.no_grad():
            return float(model(**b).loss)

    spec = _spec("graddiff")
    before = forget_nll(tiny_model)
    out, log = run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, task, spec, spec.make_config(),
                              _cfg(max_steps=8, lr=5e-3, max_length=64))
    assert log.steps == 8 and forget_nll(out) > before + 0.1
    idk = _spec("idk")
    with pytest.raises(ValueError, match="raw forget texts"):
        run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, task, idk, idk.make_config(), _cfg())
