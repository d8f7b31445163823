"""`obliviate report`: run folders or JSONs in, HTML and Markdown out; bad input exits 2 naming the file."""

from __future__ import annotations

import json

import pytest

from obliviate.cli import main
from obliviate.report.files import write_report
from obliviate.report.schema import Report, load_report


def test_report_of_a_run_folder(lm_report_file, capsys):
    main(["report", str(lm_report_file.parent)])
    out = capsys.readouterr().out
    html, md = lm_report_file.with_suffix(".html"), lm_report_file.with_suffix(".md")
    assert f"HTML report: {html}" in out and f"Markdown report: {md}" in out
    assert 'id="verdict"' in html.read_text() and "## Verdict" in md.read_text()


def test_report_paths_and_rules(lm_report_file, tmp_path, capsys):
    out_html = tmp_path / "x" / "page.html"
    main(["report", str(lm_report_file), "--html", str(out_html), "--markdown", str(tmp_path / "p.md"),
          "--rule", "recovery_max=0.9"])
    assert "recovery_max=0.9" in out_html.read_text()
    assert "| ga | **FAIL** |" in (tmp_path / "p.md").read_text()


def test_several_reports_merge(lm_report_file, tmp_path, capsys, monkeypatch):
    other = tmp_path / "b.json"
    other.write_text(lm_report_file.read_text())
    monkeypatch.chdir(tmp_path)  # with several inputs and no --markdown, report.md goes to the working directory
    main(["report", str(lm_report_file), str(other), "--html", str(tmp_path / "both.html")])
    page = (tmp_path / "both.html").read_text()
    assert "run:npo" in page and "b:npo" in page  # same names, prefixed by their source
    assert (tmp_path / "report.md").is_file()


@pytest.mark.parametrize("content, msg", [("not json", "not valid JSON"), ('{"schema_version": 7}', "schema_version 7")])
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, content, msg):
    p = tmp_path / "r.json"
    p.write_text(content)
    with pytest.raises(SystemExit) as e:
        main(["report", str(p)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert str(p) in err and msg in err


def test_folder_without_report(tmp_path, capsys):
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path)])
    assert "holds no report.json or audit.json (JSON files there: run.json" in capsys.readouterr().err


def test_write_report_writes_three_files_with_the_verdict(tmp_path, lm_report_dict):
    paths = write_report(Report.from_dict(lm_report_dict), tmp_path / "audit.json")
    assert {p.name for p in paths.values()} == {"audit.json", "audit.html", "audit.md"}
    data = load_report(tmp_path / "audit.json")
    assert data["verdict"]["models"]["npo"]["status"] == "pass"
    assert data["verdict"]["rules"]["forget_quality_min"] == 0.05
    assert json.loads((tmp_path / "audit.json").read_text())["schema_version"] == 2
