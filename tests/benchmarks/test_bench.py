"""`obliviate bench` on the small built-in benchmark: one table with the quantisation recovery
column, and a killed bench resumes from the methods it already finished."""

import json

import pytest

import obliviate.api as api

pytestmark = pytest.mark.slow


def test_bench_reports_every_method_with_int4_recovery_and_resumes(quick_bench, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    rep = api.bench("fictional_authors", ["ga"], "forget10", [0], ["quantize_int4"], out, quick=True)
    assert set(rep.models) >= {"target", "oracle", "ga"}
    for name in ("target", "oracle", "ga"):
        assert rep.models[name].metrics["forget_quality"]["value"] is not None
    rows = [r for r in rep.tables["attacks"] if r["model"] == "ga" and r["attack"] == "quantize_int4"]
    assert rows, rep.tables["attacks"][:3]
    saved = out / "models" / "seed0" / "ga"
    assert (saved / "model.safetensors").exists()
    assert json.loads((saved / "run.json").read_text())["steps"] > 0
    # the saved model's card names the method and carries the audit's verdict and headline
    card = (saved / "README.md").read_text()
    verdict = json.loads((out / "report.json").read_text())["verdict"]["models"]["ga"]
    assert "unlearned with ga" in card and f"Verdict: **{verdict['status'].upper()}**" in card
    assert "| forget_quality ↑ |" in card and str(out / "report.json") in card
    first = rep.models["ga"].metrics["forget_prob"]["value"]

    def must_not_run(*a, **k):
        raise AssertionError("a finished method was unlearned again")

    monkeypatch.setattr(api, "unlearn", must_not_run)
    again = api.bench("fictional_authors", ["ga"], "forget10", [0], ["quantize_int4"], out, quick=True)
    assert again.models["ga"].metrics["forget_prob"]["value"] == pytest.approx(first, rel=1e-5)
