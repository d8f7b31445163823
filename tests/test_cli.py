import json
import subprocess
import sys

from obliviate import registry
from obliviate.cli import main


def test_ls_json_lists_every_plugin_with_paper(capsys):
    main(["ls", "--json"])
    records = json.loads(capsys.readouterr().out)
    names = {(r["kind"], r["name"]) for r in records}
    for p in registry.plugins():
        assert (p.kind, p.name) in names
    for r in records:
        assert set(r) >= {"kind", "name", "paper", "arxiv"}
        assert r["paper"]


def test_unknown_method_is_a_clear_cli_error(tmp_path):
    f = tmp_path / "f.jsonl"
    f.write_text('{"question": "q", "answer": "a"}\n')
    out = subprocess.run([sys.executable, "-m", "obliviate.cli", "unlearn", "--method", "npoo", "--model",
                          str(tmp_path / "missing"), "--forget", str(f)], capture_output=True, text=True)
    assert out.returncode != 0
    assert "npoo" in out.stderr


def test_unlearn_and_audit_through_the_cli(tmp_path, tiny_model, tiny_tokenizer, tiny_task):
    from obliviate.models.loading import save_model_atomic

    model_dir = save_model_atomic(tiny_model, tiny_tokenizer, tmp_path / "model")
    f, r = tmp_path / "forget.jsonl", tmp_path / "retain.jsonl"
    f.write_text("".join(json.dumps({"question": i.question, "answer": i.answer}) + "\n" for i in tiny_task.forget))
    r.write_text("".join(json.dumps({"question": i.question, "answer": i.answer}) + "\n" for i in tiny_task.retain))
    main(["unlearn", "--method", "graddiff", "--model", str(model_dir), "--forget", str(f), "--retain", str(r),
          "--out", str(tmp_path / "out"), "--set", "alpha=2", "--train", "max_steps=2", "--train", "batch_size=4",
          "--train", "progress=false"])
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["method_config"]["alpha"] == 2.0 and run["log"]["steps"] == 2
    assert (tmp_path / "out" / "model.safetensors").exists()
    # the model card: method and its paper, the data's fingerprints, the configs, how to audit it
    from obliviate import registry
    from obliviate.data.io import read_qa_file
    from obliviate.config import digest
    from obliviate.report.table import fmt_value

    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "unlearned with graddiff" in card
    assert registry.get("method", "graddiff").paper in card
    forget_items = read_qa_file(f)
    assert f"`{digest([i.__dict__ for i in forget_items])} ({len(forget_items)} records)`" in card
    assert "alpha: 2.0" in card and "max_steps: 2" in card
    assert f"obliviate audit --model unlearned={tmp_path / 'out'}" in card and "probe NLL, forget:" in card
    main(["audit", "--model", f"unlearned={tmp_path / 'out'}", "--reference", str(model_dir), "--forget", str(f),
          "--retain", str(r), "--out", str(tmp_path / "audit.json")])
    rep = json.loads((tmp_path / "audit.json").read_text())
    assert rep["schema_version"] == 2 and set(rep["models"]) == {"unlearned", "oracle"}
    # the HTML page and the Markdown beside the JSON, verdict first
    page = (tmp_path / "audit.html").read_text()
    assert page.index('id="verdict"') < page.index('id="headline-table"')
    assert (tmp_path / "audit.md").read_text().startswith("# obliviate audit report")
    # the run card: training curves, configs and citations, "not judged" until an audit
    run_page = (tmp_path / "out" / "run.html").read_text()
    assert "obliviate run report" in run_page and '<img alt="Training curves"' in run_page
    assert "not judged" in run_page and f"obliviate audit --model unlearned={tmp_path / 'out'}" in run_page
    assert registry.get("method", "graddiff").paper in run_page and "Forgetting vs utility" not in run_page
    # the audit rewrote the card's Audit section with its verdict and headline; the rest is as it was
    audited = (tmp_path / "out" / "README.md").read_text()
    assert "Not audited yet" not in audited and f"the full report: `{tmp_path / 'audit.json'}`" in audited
    verdict = rep["verdict"]["models"]["unlearned"]
    assert f"Verdict: **{verdict['status'].upper()}** ({verdict['summary']})." in audited
    rouge = rep["models"]["unlearned"]["metrics"]["forget_rouge"]["value"]
    oracle_rouge = rep["models"]["oracle"]["metrics"]["forget_rouge"]["value"]
    assert f"| forget_rouge ↓ | {fmt_value(rouge)} [" in audited and f"| {fmt_value(oracle_rouge)} |" in audited
    assert audited.split("## Audit")[0] == card.split("## Audit")[0]
    assert audited.split("## Configs")[1] == card.split("## Configs")[1]


def test_audit_applies_attacks_with_their_options(tmp_path, tiny_model, tiny_tokenizer, tiny_task):
    from obliviate.models.loading import save_model_atomic

    model_dir = save_model_atomic(tiny_model, tiny_tokenizer, tmp_path / "model")
    f = tmp_path / "forget.jsonl"
    f.write_text("".join(json.dumps({"question": i.question, "answer": i.answer}) + "\n" for i in tiny_task.forget))
    main(["audit", "--model", f"m={model_dir}", "--forget", str(f), "--metrics", "forget_prob",
          "--attacks", "quantize_int4", "--attack_set", "quantize_int4.group_size=0", "--out", str(tmp_path / "a.json")])
    rep = json.loads((tmp_path / "a.json").read_text())
    assert rep["models"]["m@quantize_int4"]["run"]["group_size"] == 0
    rows = rep["tables"]["attacks"]
    assert [(r["model"], r["attack"], r["metric"]) for r in rows] == [("m", "quantize_int4", "forget_prob")]


def test_attack_options_are_checked_before_any_model_loads(tmp_path, capsys):
    import pytest

    for opts, message in ((["quantize_int4.gs=3"], "no option 'gs'"), (["relearn.steps=2"], "add it with --attacks")):
        with pytest.raises(SystemExit) as e:
            main(["audit", "--model", str(tmp_path / "missing"), "--forget", "f.jsonl", "--attacks", "quantize_int4",
                  "--attack_set", *opts])
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_parser_accepts_every_documented_spelling_of_lists_and_booleans():
    """Repeated flags, several values, YAML lists and jsonargparse's --NAME+ all build one list;
    booleans take a bare flag, a value or --no_NAME. (The old hand-written argv rewriter is gone:
    jsonargparse sees every argument, --config included.)"""
    from obliviate.cli import parse

    base = ["unlearn", "--method", "npo", "--model", "m", "--forget", "f.jsonl"]
    for extra in (["--set", "a=1", "--set", "b=2"], ["--set", "a=1", "b=2"], ["--set", "[a=1, b=2]"],
                  ["--set+", "a=1", "--set+", "b=2"]):
        assert parse(base + extra)[1]["set"] == ["a=1", "b=2"], extra
    assert parse(base + ["--config", "run.yaml"])[1]["config"] == "run.yaml"
    for extra, want in ((["--seeds", "0", "1"], [0, 1]), (["--seeds", "[0,1,2]"], [0, 1, 2]), (["--seeds", "[]"], []),
                        ([], None)):
        assert parse(["bench", *extra])[1]["seeds"] == want, extra
    for extra, want in ((["--quick"], True), (["--quick", "true"], True), (["--quick=false"], False),
                        (["--no_quick"], False), ([], False)):
        assert parse(["demo", *extra, "--seed", "1"])[1]["quick"] is want, extra
    assert parse(["ls", "--json"])[1]["json"] is True and parse(["--debug", "ls"])[1]["debug"] is True
