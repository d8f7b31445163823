"""Bad input, as a new user gives it: every case gets one clear message (naming the file, field or
option and the fix), the documented exit code, and leaves every file as it was.

The CLI cases call `obliviate.cli.main` in-process (a subprocess costs seconds); each snapshots the
working folder and the input files before and after. Most fail before any model loads; the few
that need the model (tokenizer checks, max_length against the prompt) load a tiny one in well
under a second. The last part checks the right behaviour next to each refusal (an obliviate
output is replaced, --overwrite, resume, notices, strict JSON, umask).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from obliviate.cli import main
from obliviate.models.loading import save_model_atomic
from obliviate.models.tiny import TinyLlamaConfig, build_tiny_llama, train_tokenizer
from obliviate.outputs import MARKER

TINY = TinyLlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _jsonl(items) -> str:
    return "".join(json.dumps({"question": i.question, "answer": i.answer}) + "\n" for i in items)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, _tiny_model_master, tiny_tokenizer, tiny_task) -> Path:
    """One folder of inputs, good and bad, shared by every case (no case may change it)."""
    d = tmp_path_factory.mktemp("inputs")
    save_model_atomic(_tiny_model_master, tiny_tokenizer, d / "model")
    small = build_tiny_llama(100, TINY, seed=0, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    save_model_atomic(small, tiny_tokenizer, d / "mismatch")  # 300-token tokenizer, 100 embedding rows
    other_tok = train_tokenizer(["completely different words here", "nothing alike at all"] * 20, vocab_size=280)
    save_model_atomic(build_tiny_llama(len(other_tok), TINY, seed=1, pad_token_id=other_tok.pad_token_id,
                                       bos_token_id=other_tok.bos_token_id, eos_token_id=other_tok.eos_token_id),
                      other_tok, d / "other_tok")
    (d / "no_weights").mkdir()
    (d / "no_weights" / "config.json").write_text("{}")
    (d / "forget.jsonl").write_text(_jsonl(tiny_task.forget))
    (d / "retain.jsonl").write_text(_jsonl(tiny_task.retain))
    (d / "overlap.jsonl").write_text(_jsonl(tiny_task.retain + tiny_task.forget[:1]))
    (d / "empty.jsonl").write_text("\n")
    (d / "empty_answer.jsonl").write_text('{"question": "q1", "answer": "a1"}\n{"question": "q2", "answer": "  "}\n')
    (d / "bad_json.jsonl").write_text('{"question": "q1", "answer": "a1"}\n{"question": "q2", answer}\n')
    (d / "latin1.jsonl").write_bytes('{"question": "q", "answer": "a"}\n{"question": "Zoë", "answer": "é"}\n'
                                     .encode("latin-1"))
    (d / "dupes.csv").write_text("question,answer,answer\nq1,a1,b1\n")
    (d / "empty_question.csv").write_text("question,answer\nq1,a1\n,a2\n")
    (d / "notes.txt").write_text("forget these\n")
    (d / "bad.yaml").write_text("method: {beta: 0.1\ntrain: [\n")
    (d / "trian.yaml").write_text("trian:\n  lr: 1.0e-5\n")
    (d / "bta.yaml").write_text("method:\n  bta: 0.2\n")
    (d / "lr_text.yaml").write_text("train:\n  lr: fast\n")
    (d / "method_scalar.yaml").write_text("method: 3\n")
    (d / "list.yaml").write_text("- method\n- train\n")
    (d / "latin1.yaml").write_bytes("notes: Zoë\n".encode("latin-1"))
    (d / "good.yaml").write_text("method:\n  beta: 0.25\n  gamma: 0.5\ntrain:\n  lr: 3.0e-5\n  max_steps: 2\n")
    return d


def _snapshot(*roots: Path) -> dict:
    """Every file and folder under ``roots`` (hidden ones too): files with size, mtime and mode,
    folders with their mode (not their mtime, which the write probe, a temporary folder made and
    removed again, touches)."""
    out = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            st = p.lstat()
            is_dir = stat.S_ISDIR(st.st_mode)
            out[str(p)] = (is_dir, st.st_mode) if is_dir else (False, st.st_size, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The working folder each case runs in (where relative outputs would go)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


def check_refused(argv: list[str], code: int, words: list[str], inputs: Path, work: Path, capsys) -> str:
    """Run the CLI; assert the exit code, the message's key words and that nothing changed on disk."""
    before = _snapshot(inputs, work)
    got = run_cli(argv)
    err = capsys.readouterr().err
    assert got == code, f"exit {got}, wanted {code}: {err}"
    low = " ".join(err.split()).lower()
    for w in words:
        assert w.lower() in low, f"{w!r} not in: {err}"
    assert "Traceback" not in err
    assert _snapshot(inputs, work) == before, "a refused command changed files"
    return err


FAST = ("max_steps=2", "batch_size=2", "grad_accum=1")  # for the cases that do run: a few tiny steps


def _unlearn(inputs: Path, *extra: str, method: str = "npo", retain: bool = True, model: str = "model",
             train: tuple[str, ...] = ("max_steps=2",)) -> list[str]:
    argv = ["unlearn", "--method", method, "--model", str(inputs / model), "--forget", str(inputs / "forget.jsonl")]
    if retain:
        argv += ["--retain", str(inputs / "retain.jsonl")]
    return argv + ["--train", "progress=false", *train, *extra]


# ---- the CLI: (case id, argv builder, exit code, key words of the message) ---------------------------
def _foreign_out(inputs: Path, work: Path) -> list[str]:
    (work / "out").mkdir()
    (work / "out" / "notes.txt").write_text("mine")
    return _unlearn(inputs, "--out", str(work / "out"))


def _file_out(inputs: Path, work: Path) -> list[str]:
    (work / "out").write_text("a file")
    return _unlearn(inputs, "--out", str(work / "out"))


def _under_a_file(inputs: Path, work: Path) -> list[str]:
    (work / "report").write_text("a file")
    return _unlearn(inputs, "--out", str(work / "report" / "model"))


def _unwritable(inputs: Path, work: Path) -> list[str]:
    if os.geteuid() != 0:
        ro = work / "ro"
        ro.mkdir(mode=0o500)
        return _unlearn(inputs, "--out", str(ro / "out"))
    if not Path("/sys/kernel").is_dir():
        pytest.skip("needs a folder root cannot write to (/sys)")
    return _unlearn(inputs, "--out", "/sys/obliviate-test-out")


CLI_CASES = [
    # outputs are never destructive, and unusable ones are refused before the model loads
    ("out_foreign_dir", _foreign_out, 2, ["holds files obliviate did not write", "notes.txt", "--overwrite"]),
    ("out_is_a_file", _file_out, 2, ["is a file", "choose a new folder path"]),
    ("out_under_a_file", _under_a_file, 2, ["is a file, so no folder can be made"]),
    ("out_unwritable", _unwritable, 2, ["--out", "cannot write"]),
    ("config_missing", lambda i, w: _unlearn(i, "--config", str(i / "missing.yaml")), 2,
     ["missing.yaml", "does not exist"]),
    # configs are read or refused, naming the file and key
    ("config_invalid_yaml", lambda i, w: _unlearn(i, "--config", str(i / "bad.yaml")), 2,
     ["bad.yaml", "not valid yaml"]),
    ("config_unknown_section", lambda i, w: _unlearn(i, "--config", str(i / "trian.yaml")), 2,
     ["trian.yaml", "unknown top-level key 'trian'", "did you mean 'train'"]),
    ("config_unknown_method_key", lambda i, w: _unlearn(i, "--config", str(i / "bta.yaml")), 2,
     ["bta.yaml", "unknown key 'bta'", "did you mean beta"]),
    ("config_wrong_type", lambda i, w: _unlearn(i, "--config", str(i / "lr_text.yaml")), 2,
     ["lr_text.yaml", "lr expects a number"]),
    ("config_section_not_mapping", lambda i, w: _unlearn(i, "--config", str(i / "method_scalar.yaml")), 2,
     ["method_scalar.yaml", "method: must be a mapping"]),
    ("config_not_a_mapping", lambda i, w: _unlearn(i, "--config", str(i / "list.yaml")), 2,
     ["list.yaml", "expected a mapping"]),
    ("config_not_utf8", lambda i, w: _unlearn(i, "--config", str(i / "latin1.yaml")), 2, ["latin1.yaml", "not utf-8"]),
    # numeric options are range-checked before a model loads
    ("epochs_0", lambda i, w: _unlearn(i, train=("epochs=0",)), 2, ["epochs=0", "must be above 0"]),
    ("batch_size_0", lambda i, w: _unlearn(i, "--train", "batch_size=0"), 2, ["batch_size=0", "at least 1"]),
    ("grad_accum_0", lambda i, w: _unlearn(i, "--train", "grad_accum=0"), 2, ["grad_accum=0", "at least 1"]),
    ("lr_negative", lambda i, w: _unlearn(i, "--train", "lr=-1e-5"), 2, ["lr=-1e-05", "positive"]),
    ("report_to_unknown", lambda i, w: _unlearn(i, "--train", "report_to=tensorbord"), 2,
     ["report_to='tensorbord'", "unknown tracker", "tensorboard"]),
    ("collapse_factor_negative", lambda i, w: _unlearn(i, "--train", "collapse_factor=-1"), 2,
     ["collapse_factor=-1", "above 1", "0 to disable"]),
    ("collapse_factor_below_1", lambda i, w: _unlearn(i, "--train", "collapse_factor=0.5"), 2, ["collapse_factor=0.5"]),
    ("max_length_1", lambda i, w: _unlearn(i, "--train", "max_length=1"), 2, ["max_length=1", "at least 2"]),
    ("max_length_under_prompt", lambda i, w: _unlearn(i, "--train", "max_length=4"), 2,
     ["max_length=4", "not above the prompt", "forget item 0"]),
    ("train_unknown_key", lambda i, w: _unlearn(i, "--train", "lrr=1e-5"), 2, ["unknown key 'lrr'", "did you mean lr"]),
    ("train_not_key_value", lambda i, w: _unlearn(i, "--train", "lr"), 2, ["--train expects key=value", "'lr'"]),
    ("train_key_twice", lambda i, w: _unlearn(i, "--train", "lr=1e-5", "--train", "lr=2e-5"), 2, ["lr is given twice"]),
    ("set_unknown_key", lambda i, w: _unlearn(i, "--set", "bta=0.2"), 2, ["method 'npo'", "unknown key 'bta'"]),
    ("set_wrong_type", lambda i, w: _unlearn(i, "--set", "beta=abc"), 2, ["beta expects a number"]),
    ("best_rule_unknown", lambda i, w: _unlearn(i, "--train", "best_rule=best"), 2, ["best_rule='best'", "max_gap"]),
    ("best_rule_needs_retain", lambda i, w: _unlearn(i, "--train", "best_rule=max_gap", retain=False, method="ga"), 2,
     ["best_rule='max_gap'", "no retain data"]),
    # methods and presets
    ("unknown_method", lambda i, w: _unlearn(i, method="npoo"), 2, ["unknown method 'npoo'", "did you mean"]),
    ("image_method_on_lm", lambda i, w: _unlearn(i, method="salun"), 2,
     ["'salun' unlearns image classifiers", "bench --benchmark digits"]),
    ("needs_retain", lambda i, w: _unlearn(i, method="graddiff", retain=False), 2,
     ["'graddiff' needs retain data", "--retain", "alpha=0"]),
    ("eco_not_saveable", lambda i, w: _unlearn(i, method="eco"), 2, ["'eco'", "inference-time wrapper"]),
    ("whp_logit_not_saveable", lambda i, w: _unlearn(i, method="whp_logit"), 2, ["'whp_logit'", "cannot be saved"]),
    ("unknown_benchmark_preset", lambda i, w: _unlearn(i, "--benchmark", "tofuu"), 2,
     ["unknown benchmark preset 'tofuu'", "fictional_authors, muse, tofu"]),
    # data files
    ("forget_missing", lambda i, w: _unlearn(i)[:6] + [str(i / "nope.jsonl")], 2, ["nope.jsonl", "file not found"]),
    ("forget_empty", lambda i, w: [*_unlearn(i), "--forget", str(i / "empty.jsonl")], 2,
     ["empty.jsonl", "holds no records"]),
    ("empty_answer", lambda i, w: [*_unlearn(i), "--forget", str(i / "empty_answer.jsonl")], 2,
     ["empty_answer.jsonl:2", "answer is empty"]),
    ("empty_question_csv", lambda i, w: [*_unlearn(i), "--forget", str(i / "empty_question.csv")], 2,
     ["empty_question.csv:3", "question is empty"]),
    ("duplicate_csv_columns", lambda i, w: [*_unlearn(i), "--forget", str(i / "dupes.csv")], 2,
     ["dupes.csv:1", "'answer' appear more than once"]),
    ("data_not_utf8", lambda i, w: [*_unlearn(i), "--forget", str(i / "latin1.jsonl")], 2,
     ["latin1.jsonl:2", "not utf-8"]),
    ("data_bad_json_line", lambda i, w: [*_unlearn(i), "--forget", str(i / "bad_json.jsonl")], 2,
     ["bad_json.jsonl:2", "not valid json"]),
    ("data_unsupported_type", lambda i, w: [*_unlearn(i), "--forget", str(i / "notes.txt")], 2,
     ["notes.txt", "unsupported file type"]),
    ("forget_retain_overlap", lambda i, w: [*_unlearn(i), "--retain", str(i / "overlap.jsonl")], 2,
     ["also appear in the forget set"]),
    # models
    ("model_missing", lambda i, w: _unlearn(i, model="nowhere"), 2, ["nowhere", "no such file or folder"]),
    ("model_without_weights", lambda i, w: _unlearn(i, model="no_weights"), 2, ["no *.safetensors"]),
    ("model_is_a_file", lambda i, w: _unlearn(i, model="notes.txt"), 2, ["notes.txt", "is a file"]),
    ("tokenizer_vocab_mismatch", lambda i, w: _unlearn(i, model="mismatch"), 2,
     ["tokenizer has 300 tokens", "embeds only 100"]),
    # audit
    ("audit_out_is_a_folder", lambda i, w: ["audit", "--model", str(i / "model"), "--forget", str(i / "forget.jsonl"),
                                            "--out", str(i)], 2, ["--out", "is a folder"]),
    ("audit_needs_forget", lambda i, w: ["audit", "--model", str(i / "model")], 2, ["audit needs --forget"]),
    ("audit_duplicate_names", lambda i, w: ["audit", "--model", f"a={i / 'model'}", f"a={i / 'model'}", "--forget",
                                            str(i / "forget.jsonl")], 2, ["distinct name"]),
    ("audit_unknown_metric", lambda i, w: ["audit", "--model", str(i / "model"), "--forget", str(i / "forget.jsonl"),
                                           "--metrics", "forget_qualty"], 2, ["unknown metric 'forget_qualty'"]),
    ("audit_report_to_unknown", lambda i, w: ["audit", "--model", str(i / "model"), "--forget",
                                               str(i / "forget.jsonl"), "--report_to", "tensorbord"], 2,
     ["--report_to='tensorbord'", "unknown tracker", "tensorboard"]),
    ("audit_model_missing", lambda i, w: ["audit", "--model", "./gone", "--forget", str(i / "forget.jsonl")], 2,
     ["./gone", "no such file or folder"]),
    # bench
    ("bench_empty_seeds", lambda i, w: ["bench", "--seeds", "[]"], 2, ["seeds is empty"]),
    ("bench_digits_empty_seeds", lambda i, w: ["bench", "--benchmark", "digits", "--seeds", "[]"], 2,
     ["seeds is empty"]),
    ("bench_unknown_benchmark", lambda i, w: ["bench", "--benchmark", "vision"], 2,
     ["'vision'", "fictional_authors", "digits"]),
    ("bench_image_method_on_lm", lambda i, w: ["bench", "--methods", "salun"], 2, ["'salun' unlearns image"]),
    ("bench_digits_only_option", lambda i, w: ["bench", "--ulira_shadows", "4"], 2, ["digits-only"]),
    ("bench_unknown_attack", lambda i, w: ["bench", "--attacks", "quantize_int3"], 2,
     ["unknown attack 'quantize_int3'"]),
    # the parser itself
    ("unknown_option", lambda i, w: ["ls", "--json_output", "true"], 2, ["json_output"]),
    ("missing_required_option", lambda i, w: ["unlearn", "--method", "npo", "--model", "m"], 2, ["forget"]),
    ("list_of_ints", lambda i, w: ["bench", "--seeds", "one"], 2, ["--seeds", "expected int values"]),
]


@pytest.mark.parametrize("case,argv,code,words", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(case, argv, code, words, inputs, work, capsys):
    check_refused(argv(inputs, work), code, words, inputs, work, capsys)


def test_foreign_out_is_left_intact_even_with_other_errors_later(inputs, work, capsys):
    """The notes.txt of the issue: refused, and still there byte for byte."""
    args = _foreign_out(inputs, work)
    check_refused(args, 2, ["notes.txt"], inputs, work, capsys)
    assert (work / "out" / "notes.txt").read_text() == "mine"


def test_guard_stop_exits_3_and_says_which_weights_were_kept(inputs, work, capsys, monkeypatch):
    """A NaN loss at the first step: exit 3 (not 0 with "saved unlearned model"), the original
    weights kept and said so; run.json records the stop."""
    from obliviate import registry
    from obliviate.methods.base import LossOutput

    info = registry.get("method", "ga")

    def nan_loss(cfg, model, batch, ctx):
        out = info.obj.loss(cfg, model, batch, ctx)
        return LossOutput(out.loss * float("nan"), out.parts)

    monkeypatch.setitem(registry._REGISTRY["method"], "ga",
                        dataclasses.replace(info, obj=dataclasses.replace(info.obj, loss=nan_loss)))
    code = run_cli(_unlearn(inputs, "--out", str(work / "out"), method="ga", train=FAST))
    err = capsys.readouterr().err
    assert code == 3, err
    assert "loss became nan at step 0" in err and "nothing was unlearned" in err and str(work / "out") in err
    run = json.loads((work / "out" / "run.json").read_text())
    assert run["status"] == "stopped by a guard" and run["kept_step"] == 0


def test_internal_error_exits_1_and_debug_shows_the_traceback(inputs, work, capsys, monkeypatch):
    import obliviate.api

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(obliviate.api, "unlearn", broken)
    before = _snapshot(inputs, work)
    assert run_cli(_unlearn(inputs, "--out", str(work / "out"))) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError, match="boom"):
        main(_unlearn(inputs, "--out", str(work / "out"), "--debug"))
    assert _snapshot(inputs, work) == before


def test_exit_code_of_the_installed_command(inputs, work):
    """The real entry point (a subprocess, once): exit 2 and the message on stderr, no traceback."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "obliviate.cli", *_unlearn(inputs, "--train", "batch_size=0")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "batch_size=0 must be at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- the Python API --------------------------------------------------------------------------------
def test_api_refuses_before_any_training(tiny_model, tiny_tokenizer, tiny_task, tmp_path):
    import obliviate
    from obliviate.api import bench, resolve_configs
    from obliviate.config import ConfigError
    from obliviate.data.task import ForgetTask
    from obliviate.errors import ModelLoadError, OutputError
    from obliviate.train.loop import TrainConfig

    forget_only = ForgetTask("f", forget=tiny_task.forget, retain=[])
    with pytest.raises(ConfigError, match="'graddiff' needs retain data"):
        obliviate.unlearn(tiny_model, tiny_tokenizer, forget_only, method="graddiff")
    with pytest.raises(ConfigError, match="batch_size=0 must be at least 1"):
        obliviate.unlearn(tiny_model, tiny_tokenizer, tiny_task, method="npo", train={"batch_size": 0})
    with pytest.raises(ConfigError, match="unknown benchmark preset 'nope'"):
        resolve_configs("npo", "nope")
    with pytest.raises(ConfigError, match="collapse_factor=-1"):
        TrainConfig(collapse_factor=-1)
    with pytest.raises(ConfigError, match="seeds is empty"):
        bench(seeds=[])
    small = build_tiny_llama(100, TINY, seed=0)
    with pytest.raises(ModelLoadError, match="tokenizer has 300 tokens"):
        obliviate.unlearn(small, tiny_tokenizer, tiny_task, method="ga")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(OutputError, match="did not write"):
        save_model_atomic(tiny_model, tiny_tokenizer, tmp_path / "mine")
    (tmp_path / "file").write_text("keep")
    with pytest.raises(OutputError, match="is a file"):
        save_model_atomic(tiny_model, tiny_tokenizer, tmp_path / "file", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mine"]
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep" and (tmp_path / "file").read_text() == "keep"


# ---- the right behaviour next to each refusal --------------------------------------------------------
def test_an_obliviate_output_is_replaced_and_overwrite_replaces_a_foreign_one(inputs, work, capsys):
    out = work / "out"
    assert run_cli(_unlearn(inputs, "--out", str(out), train=FAST)) == 0
    assert (out / MARKER).is_file() and (out / "model.safetensors").is_file()
    first = (out / "run.json").read_text()
    assert run_cli(_unlearn(inputs, "--out", str(out), "--set", "beta=0.2", train=FAST)) == 0, capsys.readouterr().err
    assert (out / "run.json").read_text() != first
    (work / "mine").mkdir()
    (work / "mine" / "notes.txt").write_text("mine")
    assert run_cli(_unlearn(inputs, "--out", str(work / "mine"), "--overwrite", train=FAST)) == 0
    assert not (work / "mine" / "notes.txt").exists() and (work / "mine" / MARKER).is_file()
    # Nothing left beside the outputs: no temporary folders, no checkpoints of finished runs.
    assert sorted(p.name for p in work.iterdir()) == ["mine", "out"]


def test_config_file_applies_and_the_command_line_overrides_it(inputs, work, capsys):
    assert run_cli(_unlearn(inputs, "--config", str(inputs / "good.yaml"), "--set", "gamma=0.75",
                            "--print_config")) == 0
    import yaml

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["method"]["beta"] == 0.25 and printed["method"]["gamma"] == 0.75
    assert printed["train"]["lr"] == 3e-5
    assert list(work.iterdir()) == [], "--print_config writes nothing"
    # The printed config is itself a valid --config file.
    (work / "printed.yaml").write_text(yaml.safe_dump(printed))
    assert run_cli(_unlearn(inputs, "--config", str(work / "printed.yaml"), "--out", str(work / "out"))) == 0
    run = json.loads((work / "out" / "run.json").read_text())
    assert run["method_config"]["gamma"] == 0.75 and run["train_config"]["lr"] == 3e-5


def test_without_retain_data_the_collapse_guard_is_off_with_a_notice_and_run_json_is_strict(inputs, work, capsys):
    """The old run stopped at the second probe with "retain NLL nan passed 3.0x its start nan"."""
    code = run_cli(_unlearn(inputs, "--out", str(work / "out"), method="npo", retain=False,
                            train=("max_steps=6", "probe_every=2", "batch_size=2", "grad_accum=1")))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "utility-collapse guard is off" in err and "retain term" in err
    text = (work / "out" / "run.json").read_text()

    def no_nan(name):
        raise AssertionError(f"run.json holds a bare {name}")

    run = json.loads(text, parse_constant=no_nan)
    assert run["log"]["steps"] == 6 and run["log"]["stopped"] == "completed"
    assert run["log"]["probes"][0]["retain_nll"] is None  # NaN (no retain data) written as null
    assert any("collapse guard is off" in n for n in run["log"]["notices"])


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(inputs, work, umask):
    old = os.umask(umask)
    try:
        assert run_cli(_unlearn(inputs, "--out", str(work / "out"), train=FAST)) == 0
    finally:
        os.umask(old)
    for p in [work / "out", *(work / "out").iterdir()]:
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(p.stat().st_mode) == want, f"{p.name}: {oct(stat.S_IMODE(p.stat().st_mode))}"


def test_a_killed_cli_run_resumes_with_the_same_command_and_refuses_another(inputs, work, capsys, monkeypatch):
    from obliviate import registry

    info = registry.get("method", "npo")
    cmd = _unlearn(inputs, "--out", str(work / "out"), train=("max_steps=6", "checkpoint_every=2", "batch_size=2",
                                                            "grad_accum=1"))

    def dies_at_3(cfg, model, batch, ctx):
        if ctx.step == 3:
            raise KeyboardInterrupt
        return info.obj.loss(cfg, model, batch, ctx)

    with monkeypatch.context() as m:
        m.setitem(registry._REGISTRY["method"], "npo",
                  dataclasses.replace(info, obj=dataclasses.replace(info.obj, loss=dies_at_3)))
        assert run_cli(cmd) == 130
    ckpts = work / ".out.checkpoints"
    assert (ckpts / "checkpoint" / "meta.json").is_file() and not (work / "out").exists()
    capsys.readouterr()
    check_refused([*cmd, "--train", "lr=5e-4"], 2, ["belongs to a different run", "lr: 1e-05 then, 0.0005 now",
                                                   "to start fresh, delete"], inputs, work, capsys)
    assert run_cli(cmd) == 0, capsys.readouterr().err
    run = json.loads((work / "out" / "run.json").read_text())
    assert run["log"]["resumed_from"] == 2 and run["log"]["steps"] == 6
    assert not ckpts.exists(), "a finished run removes its checkpoints"


def test_bench_does_not_reuse_a_saved_model_made_by_another_recipe(tiny_model, tiny_tokenizer, tiny_task, tmp_path,
                                                                   monkeypatch):
    """A killed bench resumes at the first unfinished method; a saved one from a different recipe
    (e.g. the quick one) or config is refused rather than reported as this run's."""
    import obliviate.api as api
    from obliviate.data.formatting import PromptFormat
    from obliviate.errors import ResumeError

    save_dir = tmp_path / "models" / "seed0" / "ga"
    args = ("ga", tiny_model, tiny_tokenizer, tiny_task, "fictional_authors", PromptFormat(), 0, save_dir)
    _, run = api._bench_run(*args, recipe="full-recipe")
    with monkeypatch.context() as m:
        m.setattr(api, "unlearn", lambda *a, **k: pytest.fail("a finished method was unlearned again"))
        _, again = api._bench_run(*args, recipe="full-recipe")
        assert again == json.loads(json.dumps(run))
        before = _snapshot(tmp_path)
        with pytest.raises(ResumeError, match=r"another recipe than this bench run.*delete"):
            api._bench_run(*args, recipe="quick-recipe")
        assert _snapshot(tmp_path) == before
