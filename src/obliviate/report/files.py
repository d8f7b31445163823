"""Writing a report's files (JSON + HTML + Markdown side by side) and `obliviate report`'s reading of
run folders and report JSONs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from obliviate.report.schema import Report, ReportError, read_report, write_json_atomic
from obliviate.report.verdict import VerdictRules, verdict_dict

# The report JSON a run folder holds, in the order `obliviate report DIR` looks for them.
REPORT_NAMES = ("report.json", "audit.json")


def write_report(report: Report, json_path: str | os.PathLike, *, html: bool = True, markdown: bool = True,
                 rules: VerdictRules | None = None) -> dict[str, Path]:
    """Write ``report`` as JSON (with its verdict) at ``json_path`` and, beside it, the HTML page and the
    Markdown (same stem: ``report.json`` -> ``report.html``, ``report.md``). Returns the paths written."""
    p = Path(json_path)
    data = report.to_dict()
    data["verdict"] = verdict_dict(report, rules)
    out = {"json": write_json_atomic(data, p)}
    if html:
        from obliviate.report.html import write_html

        out["html"] = write_html(report, p.with_suffix(".html"), rules)
    if markdown:
        from obliviate.report.markdown import write_markdown

        out["markdown"] = write_markdown(report, p.with_suffix(".md"), rules)
    return out


def resolve_input(path: str | os.PathLike) -> Path:
    """The report JSON behind ``path``: the file itself, or a run folder's report.json / audit.json."""
    p = Path(path)
    if p.is_dir():
        for name in REPORT_NAMES:
            if (p / name).is_file():
                return p / name
        found = sorted(x.name for x in p.glob("*.json"))
        raise ReportError(f"{p}: holds no {' or '.join(REPORT_NAMES)}"
                          + (f" (JSON files there: {', '.join(found[:5])}; give one of them)" if found else
                             "; give the folder an obliviate command wrote its report into, or the JSON file"))
    if not p.exists():
        raise ReportError(f"{p}: no such file or folder")
    return p


def merge_reports(reports: Sequence[tuple[str, Report]]) -> Report:
    """One comparison of several reports: models keep their names, prefixed ``<source>:`` where two
    reports use the same name; tables and citations are concatenated; the first report gives the
    task and the reference."""
    if len(reports) == 1:
        return reports[0][1]
    first = reports[0][1]
    kinds = {r.task.get("name") for _, r in reports}
    merged = Report(kind=first.kind, task=dict(first.task), reference=first.reference, versions=first.versions,
                    provenance=first.provenance)
    if len(kinds) > 1:
        merged.notes.append(f"merged reports of different tasks ({', '.join(map(str, kinds))}): compare with care")
    taken: dict[str, int] = {}
    for _, r in reports:
        for name in r.models:
            taken[name] = taken.get(name, 0) + 1
    for source, r in reports:
        for name, e in r.models.items():
            new = name if taken[name] == 1 else f"{source}:{name}"
            e.name = new
            merged.models[new] = e
        for k, v in r.tables.items():
            if isinstance(v, list):
                merged.tables.setdefault(k, []).extend(
                    [dict(row, model=row["model"] if taken.get(row.get("model"), 1) == 1 else
                          f"{source}:{row['model']}") if isinstance(row, dict) and "model" in row else row
                     for row in v])
        merged.citations += [c for c in r.citations if c not in merged.citations]
        merged.notes += [f"{source}: {n}" for n in r.notes]
    merged.notes.append("merged from: " + ", ".join(s for s, _ in reports))
    return merged


def render_reports(inputs: Sequence[str | os.PathLike], html: str | os.PathLike | None = None,
                   markdown: str | os.PathLike | None = None,
                   rules: dict[str, Any] | VerdictRules | None = None) -> dict[str, Path]:
    """Turn report JSONs (or run folders holding one) into HTML and Markdown. One input: the files go
    next to its JSON unless ``html`` / ``markdown`` say where; several: they are merged into one
    comparison (`merge_reports`), written to ``html`` / ``markdown`` (default ``report.html`` /
    ``report.md`` in the working directory). Every input is read and validated before anything is
    written."""
    from obliviate.config import ConfigError
    from obliviate.report.html import write_html
    from obliviate.report.markdown import write_markdown

    if not inputs:
        raise ConfigError("report needs at least one RUN_DIR or report JSON")
    r = rules if isinstance(rules, VerdictRules) else VerdictRules.from_overrides(rules)
    paths = [resolve_input(p) for p in inputs]
    reports = [(p.parent.name if p.name in REPORT_NAMES else p.stem, read_report(p)) for p in paths]
    report = merge_reports(reports)
    if len(paths) == 1:
        html_out = Path(html) if html else paths[0].with_suffix(".html")
        md_out = Path(markdown) if markdown else paths[0].with_suffix(".md")
    else:
        html_out, md_out = Path(html or "report.html"), Path(markdown or "report.md")
    return {"html": write_html(report, html_out, r), "markdown": write_markdown(report, md_out, r)}
