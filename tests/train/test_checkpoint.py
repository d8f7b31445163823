"""Resume is guarded: a checkpoint resumes only the run that wrote it, and a killed-and-resumed run
equals the uninterrupted one bitwise, guards included."""

import copy
import dataclasses
import json

import pytest
import torch

from obliviate import registry
from obliviate.errors import ResumeError
from obliviate.methods.base import MethodSpec
from obliviate.train.loop import TrainConfig, run_unlearning


class Killed(Exception):
    """Stands for the process dying (SIGKILL, OOM) right after a checkpoint was written."""


def _killed_at(spec: MethodSpec, step: int) -> MethodSpec:
    def loss(cfg, model, batch, ctx):
        if ctx.step == step:
            raise Killed
        return spec.loss(cfg, model, batch, ctx)

    return dataclasses.replace(spec, loss=loss)


def _run(model, tok, task, spec, cfg, **kw):
    return run_unlearning(copy.deepcopy(model), tok, task, spec, spec.make_config(), cfg, **kw)


def test_killed_and_resumed_run_equals_the_uninterrupted_one_bitwise(tiny_model, tiny_tokenizer, tiny_task,
                                                                     tmp_path):
    """GA at this lr collapses at step 10 (retain NLL past 1.5x its start), after the kill at step 3.
    Probes every 2 steps and checkpoints every 3 do not line up, so the last good weights (step 2)
    and the best-step weights travel in the checkpoint as snapshots; the collapse baseline is the
    step-0 probe of the first process, not the first probe after the resume."""
    spec = registry.get("method", "ga").obj
    cfg = TrainConfig(max_steps=40, batch_size=4, grad_accum=1, lr=1e-2, progress=False, probe_every=2,
                      collapse_factor=1.5, best_rule="max_forget_nll", checkpoint_every=3)
    full, full_log = _run(tiny_model, tiny_tokenizer, tiny_task, spec, cfg)
    assert full_log.stopped.startswith("utility collapse") and full_log.steps > 3, full_log.stopped

    out = tmp_path / "run"
    ckcfg = dataclasses.replace(cfg, output_dir=str(out))
    with pytest.raises(Killed):
        _run(tiny_model, tiny_tokenizer, tiny_task, _killed_at(spec, 3), ckcfg)
    meta = json.loads((out / "checkpoint" / "meta.json").read_text())
    assert meta["step"] == 3 and meta["run_state"]["good"] == {"step": 2, "source": "step2"}
    resumed, log = _run(tiny_model, tiny_tokenizer, tiny_task, spec, ckcfg)

    assert log.resumed_from == 3
    assert (log.steps, log.stopped, log.best_step) == (full_log.steps, full_log.stopped, full_log.best_step)
    assert log.history == full_log.history and log.probes == full_log.probes
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), f"{k} differs after the resume"


def test_a_checkpoint_of_another_run_is_refused_saying_what_differs(tiny_model, tiny_tokenizer, tiny_task, tmp_path):
    """Killed as NPO (lr 1e-5, seed 3), resumed as GA (lr 5e-4, seed 7): refused, nothing restored."""
    npo, ga = registry.get("method", "npo").obj, registry.get("method", "ga").obj
    out = tmp_path / "run"
    base = dict(max_steps=6, batch_size=4, grad_accum=1, probe_every=0, progress=False, checkpoint_every=2,
                output_dir=str(out))
    with pytest.raises(Killed):
        _run(tiny_model, tiny_tokenizer, tiny_task, _killed_at(npo, 2), TrainConfig(lr=1e-5, seed=3, **base),
             needs_reference=True)
    before = (out / "checkpoint" / "meta.json").read_text()
    with pytest.raises(ResumeError) as e:
        _run(tiny_model, tiny_tokenizer, tiny_task, ga, TrainConfig(lr=5e-4, seed=7, **base))
    msg = str(e.value)
    for words in ("method: 'npo' then, 'ga' now", "train_config.lr: 1e-05 then, 0.0005 now",
                  "train_config.seed: 3 then, 7 now", "To start fresh, delete"):
        assert words in msg, msg
    assert (out / "checkpoint" / "meta.json").read_text() == before, "a refused resume leaves the checkpoint alone"

    # Same method and settings, other data or another starting model: refused too.
    same = TrainConfig(lr=1e-5, seed=3, **base)
    other_task = dataclasses.replace(tiny_task, forget=tiny_task.forget[:4])
    with pytest.raises(ResumeError, match="the training data .* differ"):
        _run(tiny_model, tiny_tokenizer, other_task, npo, same, needs_reference=True)
    other_model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(other_model.parameters()).add_(0.01)
    with pytest.raises(ResumeError, match="the starting model's weights differ"):
        _run(other_model, tiny_tokenizer, tiny_task, npo, same, needs_reference=True)
    # Where and how it reports is not part of the run: a quieter or less often checkpointed resume is fine.
    _, log = _run(tiny_model, tiny_tokenizer, tiny_task, npo, dataclasses.replace(same, checkpoint_every=3),
                  needs_reference=True)
    assert log.resumed_from == 2 and log.steps == 6


def test_a_checkpoint_without_a_fingerprint_is_refused(tiny_model, tiny_tokenizer, tiny_task, tmp_path):
    spec = registry.get("method", "ga").obj
    out = tmp_path / "run"
    cfg = TrainConfig(max_steps=4, batch_size=4, grad_accum=1, probe_every=0, progress=False, checkpoint_every=2,
                      output_dir=str(out))
    _run(tiny_model, tiny_tokenizer, tiny_task, spec, cfg)
    meta = out / "checkpoint" / "meta.json"
    data = json.loads(meta.read_text())
    del data["fingerprint"]  # what an older obliviate wrote
    meta.write_text(json.dumps(data))
    with pytest.raises(ResumeError, match="records no run fingerprint"):
        _run(tiny_model, tiny_tokenizer, tiny_task, spec, cfg)


def test_a_resumed_pdu_run_goes_on_with_its_dual_variable(tiny_model, tiny_tokenizer, tiny_task, tmp_path):
    """PDU's λ moves every step (no warm-up, a retain budget below the retain loss); the checkpoint
    carries it, so the resumed run's λ path, losses and weights equal the uninterrupted run's."""
    spec = registry.get("method", "pdu").obj
    mcfg = spec.make_config({"dual_warmup_epochs": 0.0, "retain_eps": 0.0, "dual_step_size": 0.5})
    cfg = TrainConfig(max_steps=6, batch_size=4, grad_accum=1, lr=1e-3, progress=False, probe_every=0,
                      checkpoint_every=3)

    def run(s, c):
        return run_unlearning(copy.deepcopy(tiny_model), tiny_tokenizer, tiny_task, s, mcfg, c)

    full, full_log = run(spec, cfg)
    lams = [h["dual_lambda"] for h in full_log.history]
    assert len(set(lams)) == len(lams), lams  # λ really moves, so a restart at α would show
    ckcfg = dataclasses.replace(cfg, output_dir=str(tmp_path / "run"))
    with pytest.raises(Killed):
        run(_killed_at(spec, 3), ckcfg)
    resumed, log = run(spec, ckcfg)
    assert log.resumed_from == 3 and log.history == full_log.history
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), f"{k} differs after the resume"
