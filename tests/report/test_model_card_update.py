"""An audit rewrites the Audit section of the cards obliviate wrote; a card it cannot write (a
read-only model folder) is reported, never a crash after the audit's report is written."""

from __future__ import annotations

from obliviate.report import model_card as mc
from obliviate.report.schema import Report


def _card(tmp_path, name: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    text = mc.model_card({"method": "npo", "task": "t", "status": "completed", "method_config": {},
                          "train_config": {}, "log": {"steps": 2, "probes": []}}, base_model="base", data={})
    (folder / "README.md").write_text(text, encoding="utf-8")
    return text


def test_a_card_that_cannot_be_written_is_named_and_the_others_are_updated(tmp_path, lm_report_dict, monkeypatch):
    report = Report.from_dict(lm_report_dict)
    a, b = list(report.models)[:2]
    original = {n: _card(tmp_path, n) for n in (a, b)}
    from obliviate.report import schema  # update_cards imports write_text_atomic from here when it runs

    write = schema.write_text_atomic

    def read_only_for_a(text, path):
        if f"/{a}/" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return write(text, path)

    monkeypatch.setattr(schema, "write_text_atomic", read_only_for_a)
    done, failed = mc.update_cards(report, {n: tmp_path / n for n in (a, b)}, str(tmp_path / "report.json"))
    assert done == [str(tmp_path / b / "README.md")]
    assert failed == [f"{tmp_path / a / 'README.md'}: Permission denied"]
    assert (tmp_path / a / "README.md").read_text(encoding="utf-8") == original[a]  # untouched
    updated = (tmp_path / b / "README.md").read_text(encoding="utf-8")
    assert updated != original[b] and mc.AUDIT_HEADING in updated
