"""Run tracking: the loop hands accelerate's trackers the configs, every step's loss and parts,
and the probes; report_to is checked before any training."""

import pytest
from accelerate.tracking import GeneralTracker

from obliviate import registry
from obliviate.config import ConfigError
from obliviate.train import tracking
from obliviate.train.loop import TrainConfig, run_unlearning


class Recorder(GeneralTracker):
    """A tracker through accelerate's own GeneralTracker interface, recording what it receives."""

    name = "recorder"
    requires_logging_directory = False

    def __init__(self):
        super().__init__()
        self.config, self.logged, self.finished = None, [], False

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        self.config = dict(values)

    def log(self, values, step=None, **kwargs):
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished = True


def test_losses_probes_and_configs_reach_the_tracker(tiny_model, tiny_tokenizer, tiny_task, monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(tracking, "trackers_for", lambda report_to, logging_dir="": [rec])
    spec = registry.get("method", "graddiff").obj
    cfg = TrainConfig(max_steps=3, batch_size=4, probe_every=2, progress=False, report_to="recorder")
    _, log = run_unlearning(tiny_model, tiny_tokenizer, tiny_task, spec, spec.make_config(), cfg)
    assert rec.config["method"] == "graddiff" and rec.config["train.max_steps"] == 3
    assert rec.config["method.alpha"] == spec.make_config().alpha
    train = [(s, v) for s, v in rec.logged if any(k.startswith("train/") for k in v)]
    assert [s for s, _ in train] == [1, 2, 3]
    for (s, v), row in zip(train, log.history):
        assert v == {f"train/{k}": x for k, x in row.items() if k != "step"}
    probes = [(s, v) for s, v in rec.logged if "probe/retain_nll" in v]
    assert [s for s, _ in probes] == [p["step"] for p in log.probes] == [0, 2, 3]
    assert rec.finished


def test_report_to_is_checked_with_the_fix():
    assert tracking.trackers_for("none") == [] and tracking.trackers_for("auto", "") == []
    with pytest.raises(ConfigError, match="unknown tracker 'tensorbord'"):
        tracking.trackers_for("tensorbord", "logs")
    if not tracking._installed("wandb"):
        with pytest.raises(ImportError, match="pip install wandb"):
            tracking.trackers_for("wandb")
    if tracking._installed("tensorboard"):
        with pytest.raises(ConfigError, match="logging_dir"):
            tracking.trackers_for("tensorboard", "")
        assert tracking.trackers_for("auto", "logs") == ["tensorboard"]
    else:
        with pytest.raises(ImportError, match=r"obliviate\[tracking\]"):
            tracking.trackers_for("tensorboard", "logs")


def test_a_bad_report_to_fails_with_the_train_config():
    with pytest.raises(ConfigError, match="report_to"):
        TrainConfig(report_to="tensorbord")


def test_the_audit_headline_reaches_the_tracker(monkeypatch):
    """`log_audit`: every base model's headline values as audit/<model>/<metric> and its verdict as
    audit/<model>/verdict_pass, in one log call, then finish."""
    from obliviate.report.schema import ModelEntry, Report

    def m(v, d):
        return {"value": v, "direction": d, "n": 10, "ci": None}

    def metrics(fq, mu):
        return {"forget_quality": m(fq, "higher"), "model_utility": m(mu, "higher")}

    report = Report(kind="audit", task={"name": "t"}, reference="oracle", models={
        "target": ModelEntry("target", metrics(0.001, 0.70), role="target"),
        "oracle": ModelEntry("oracle", metrics(1.0, 0.71), role="oracle"),
        "npo": ModelEntry("npo", metrics(0.2, 0.69)),  # fq 0.2 >= 0.05 passes, mu 0.69 >= 0.9*0.70; 3 not judged
    })
    rec = Recorder()
    monkeypatch.setattr(tracking, "trackers_for", lambda report_to, logging_dir="", option="": [rec])
    assert tracking.log_audit(report, "recorder", step=7) == ["recorder"]
    assert rec.logged == [(7, {"audit/target/forget_quality": 0.001, "audit/target/model_utility": 0.70,
                               "audit/oracle/forget_quality": 1.0, "audit/oracle/model_utility": 0.71,
                               "audit/npo/forget_quality": 0.2, "audit/npo/model_utility": 0.69,
                               "audit/npo/verdict_pass": 0.0})]  # incomplete (privacy etc. not judged) is not a pass
    assert rec.finished
    monkeypatch.undo()
    assert tracking.log_audit(report, "none") == []
