"""The README's set-up commands are exactly `make demo` and `make test`, and they work (slow)."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_shows_exactly_the_two_setup_commands():
    assert _setup_commands() == ["make demo", "make test"]


def test_make_test_runs_the_whole_suite():
    out = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "pytest" in out
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.slow
def test_make_demo_runs_and_writes_the_report(tmp_path, bench_cache):
    """Runs the README's `make demo` (on the small recipe) through the real Makefile."""
    env = {**os.environ, "OBLIVIATE_CACHE": bench_cache}
    out_dir = tmp_path / "demo-out"
    proc = subprocess.run(["make", "demo", f"DEMO_ARGS=--quick --out_dir {out_dir}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "forget_quality" in proc.stdout and "oracle" in proc.stdout
    report = json.loads((out_dir / "report.json").read_text())
    assert {"target", "oracle", "ga", "graddiff", "npo", "simnpo"} <= set(report["models"])
    metrics = {name: entry["metrics"] for name, entry in report["models"].items()}
    # Every headline number is there for every row, and unlearning removed forget knowledge.
    # (Forget quality itself is a KS p-value over ~20 items on the quick recipe: too noisy to order.)
    for name in ("ga", "graddiff", "npo", "simnpo"):
        assert {"forget_quality", "model_utility", "forget_rouge", "privleak"} <= set(metrics[name])
        assert metrics[name]["forget_prob"]["value"] < metrics["target"]["forget_prob"]["value"]


def _documented_commands() -> list[str]:
    """Every `obliviate ...` command line in the README: bash blocks (with their continuation lines
    joined) and inline code spans, plus the Makefile's demo call."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines += [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip().startswith("obliviate ")]
    lines += [s for s in re.findall(r"`(obliviate [^`]+)`", text) if "<" not in s]
    lines.append("obliviate demo --quick --out_dir out")  # test_make_demo_runs_and_writes_the_report's DEMO_ARGS
    return lines


def test_readme_command_lines_parse(capsys):
    """Every documented command line is accepted by the real parser (a README that shows a flag
    that does not exist, like the old `ls --json_output true`, fails here)."""
    import shlex

    from obliviate.cli import parse

    commands = _documented_commands()
    assert len(commands) >= 10, commands
    for line in commands:
        argv = shlex.split(line, comments=True)[1:]
        try:
            fn, kwargs = parse(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: {line}\n{capsys.readouterr().err}")
        assert fn.__name__ == argv[0]


def test_help_documents_every_option_and_only_real_ones(capsys):
    """Each command's docstring (its --help) has one entry per parameter, and --help shows them."""
    import inspect

    from obliviate.cli import COMMANDS, POSITIONAL, _param_docs, main

    for fn in COMMANDS:
        docs, params = _param_docs(fn), set(inspect.signature(fn).parameters)
        assert set(docs) == params, f"{fn.__name__}: documented {sorted(set(docs) - params)} are not options; " \
                                    f"options {sorted(params - set(docs))} are not documented"
        with pytest.raises(SystemExit) as e:
            main([fn.__name__, "--help"])
        assert e.value.code == 0
        shown = " ".join(capsys.readouterr().out.split())
        for name, text in docs.items():
            flag = name.upper() if POSITIONAL.get(fn.__name__) == name else f"--{name}"  # `report INPUTS ...`
            assert flag in shown and " ".join(text.split()[:4]) in shown, (fn.__name__, name)
