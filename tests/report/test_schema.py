"""The report schema: validated on read, with errors that name the file and the field."""

from __future__ import annotations

import json

import pytest

from obliviate.report.schema import SCHEMA_VERSION, Report, ReportError, load_report, read_report, validate_report


def test_round_trip(lm_report_file, lm_report_dict):
    r = read_report(lm_report_file)
    assert set(r.models) == set(lm_report_dict["models"])
    assert r.models["npo"].metrics["forget_quality"]["value"] == 0.2
    assert r.provenance["git"]["commit"].startswith("0123")
    again = r.to_dict()
    validate_report(again)
    assert again["models"]["ga"]["skipped"] == {"ulira": "no shadows were trained"}


def test_new_report_records_provenance():
    r = Report(kind="audit", task={"name": "t"})
    assert r.schema_version == SCHEMA_VERSION
    assert r.provenance["command"] and r.provenance["cwd"]
    validate_report(r.to_dict())


def test_schema_1_without_provenance_reads(tmp_path, lm_report_dict):
    lm_report_dict["schema_version"] = 1
    del lm_report_dict["provenance"]
    p = tmp_path / "old.json"
    p.write_text(json.dumps(lm_report_dict))
    assert read_report(p).provenance == {}


@pytest.mark.parametrize("change, expected", [
    (lambda d: d.pop("schema_version"), "has no schema_version"),
    (lambda d: d.update(schema_version=99), "upgrade obliviate"),
    (lambda d: d.update(schema_version=0), "regenerate it"),
    (lambda d: d.update(kind="party"), "'kind': 'party' is not one of"),
    (lambda d: d.pop("models"), "field 'models' is missing"),
    (lambda d: d["models"]["npo"]["metrics"]["forget_quality"].update(value="high"),
     "field 'models.npo.metrics.forget_quality.value': expected a number or null, got str"),
    (lambda d: d["models"]["npo"]["metrics"]["privleak"].update(direction="up"),
     "'models.npo.metrics.privleak.direction': 'up' is not one of"),
    (lambda d: d["models"]["npo"]["metrics"]["forget_rouge"].update(ci=[0.1]), "forget_rouge.ci"),
    (lambda d: d["models"]["npo"].update(role="hero"), "'models.npo.role': 'hero'"),
    (lambda d: d["models"]["ga"]["skipped"].update(x=3), "models.ga.skipped.x"),
])
def test_malformed_reports_name_file_and_field(tmp_path, lm_report_dict, change, expected):
    change(lm_report_dict)
    p = tmp_path / "broken.json"
    p.write_text(json.dumps(lm_report_dict))
    with pytest.raises(ReportError) as e:
        load_report(p)
    assert str(p) in str(e.value)
    assert expected in str(e.value)


def test_not_json_names_line_and_column(tmp_path):
    p = tmp_path / "r.json"
    p.write_text('{"schema_version": 2,\n "kind": }')
    with pytest.raises(ReportError, match=r"r\.json: not valid JSON \(line 2, column 10"):
        load_report(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ReportError, match="no such report file"):
        load_report(tmp_path / "nope.json")
    with pytest.raises(ReportError, match="is a folder"):
        load_report(tmp_path)


def test_not_an_object(tmp_path):
    p = tmp_path / "list.json"
    p.write_text("[1, 2]")
    with pytest.raises(ReportError, match="a report is a JSON object, got list"):
        load_report(p)
