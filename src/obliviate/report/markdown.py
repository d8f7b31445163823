"""The report as Markdown, for papers and pull requests: the same tables as the HTML page (verdict
and rules, headline with CIs, vision table, attack recovery, every metric by family, provenance and
citations), without the figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from obliviate.report import content
from obliviate.report.schema import Report
from obliviate.report.table import fmt_value, scope_note
from obliviate.report.verdict import VerdictRules, judge


def _esc(s: object) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(_esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_esc(c) for c in r) + " |" for r in rows]
    return out + [""]


def _cells(rows: list[content.Row], metrics: list[str]) -> list[list[str]]:
    return [[r.name, *[(c.text + (f" {c.spread}" if c.spread else "")) for c in (r.cells[m] for m in metrics)]]
            for r in rows]


def render_markdown(report: Report, rules: VerdictRules | None = None) -> str:
    rules = rules or VerdictRules()
    task = report.task
    name = task.get("name") or "/".join(str(task[k]) for k in ("benchmark", "scenario") if k in task) or "report"
    out = [f"# obliviate {report.kind} report: {name}", "",
           f"Reference (retain-only oracle): **{report.reference or 'none'}**. Created {report.created}.", "",
           "## Verdict", ""]
    verdicts = judge(report, rules)
    if verdicts:
        crit = [c.name for c in verdicts[0].criteria]
        out += _table(["model", "verdict", *crit],
                      [[v.model, f"**{v.status.upper()}**", *[f"{c.status}: {c.evidence}" for c in v.criteria]]
                       for v in verdicts])
        out += ["Rules:", ""] + [f"- **{n}**: {r}" for n, r in dict.fromkeys(
            (c.name, c.rule) for v in verdicts for c in v.criteria)] + [""]
        out += ["Thresholds: " + ", ".join(f"{k}={v}" for k, v in vars(rules).items()) + ".", ""]
    else:
        out += ["No unlearned model in this report to judge.", ""]
    if not (report.reference or any(e.role == "oracle" for e in report.models.values())):
        out += ["Forgetting and privacy could not be judged: this report has no retain-only oracle.", ""]
    headline = content.headline_metrics(report)
    out += ["## Headline", ""]
    rows = content.metric_rows(report, headline)
    out += _table(["model", "role", *[content.header(report, m) for m in headline], "seconds"],
                  [[r.name, r.role, *c[1:], r.seconds] for r, c in zip(rows, _cells(rows, headline))])
    scope = scope_note(report)
    if scope:
        out += [f"_{scope}; brackets: 95% CIs; ± : std over seeds._", ""]
    vision = [m for m in content.VISION_HEADLINE if any(m in e.metrics for e in report.models.values())]
    if vision:
        out += ["## Image classification", ""]
        rows = content.metric_rows(report, vision)
        out += _table(["model", *[content.header(report, m) for m in vision], "seconds"],
                      [c + [r.seconds] for r, c in zip(rows, _cells(rows, vision))])
    rec = content.recovery_rows(report)
    if rec:
        out += ["## Attacks: forget knowledge recovered", ""]
        out += _table(["model", "attack", "measure", "before", "after", "recovered share"],
                      [[content.row_name(r), r["attack"], r["metric"], fmt_value(r["before"]), fmt_value(r["after"]),
                        "—" if not isinstance(r.get("recovered_share"), (int, float)) else f"{r['recovered_share']:.0%}"]
                       for r in rec])
    out += ["## All metrics, by family", ""]
    for title, ms in content.families(report):
        rows = content.per_model_rows(report, ms)
        out += [f"### {title}", ""] + _table(["model", *[content.header(report, m) for m in ms]], _cells(rows, ms))
    sk = content.skipped(report)
    if sk:
        out += ["### Skipped metrics", ""] + [f"- **{m}** ({', '.join(n)}): {why}" for m, why, n in sk] + [""]
    prov = report.provenance or {}
    out += ["## Provenance", "", f"- command: `{prov.get('command', 'not recorded')}`"]
    for key, label in (("git", "git commit"), ("obliviate_git", "obliviate source commit")):
        if prov.get(key):
            g = prov[key]
            out.append(f"- {label}: `{g.get('commit')}`{' (uncommitted changes)' if g.get('dirty') else ''}")
    seeds = content.seeds(report)
    out.append(f"- seeds: {', '.join(map(str, seeds)) if seeds else 'not recorded'}")
    out.append("- versions: " + "; ".join(f"{k} {v}" for k, v in report.versions.items()))
    out += [f"- {k}: `{v}`" for k, v in content.fingerprints(report).items()] + [""]
    out += ["## Citations", ""] + [
        f"- {c.get('kind')} **{c.get('name')}**: {c.get('paper') or '(no paper recorded)'}"
        + (f" (arXiv:{c['arxiv']})" if c.get("arxiv") else "") for c in content.citations(report)] + [""]
    return "\n".join(out)


def write_markdown(report: Report, path: str | os.PathLike, rules: VerdictRules | None = None) -> Path:
    from obliviate.report.schema import write_text_atomic

    return write_text_atomic(render_markdown(report, rules), path)
