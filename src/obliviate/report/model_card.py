"""The model card (``README.md``) and the HTML run card (``run.html``) written into an unlearned
model's folder.

It says what was done to the model, so the folder explains itself on a disk or a model hub: the
method and its paper (from the plug-in's registration), the base model, the data it forgot (each
set's hash and size, `obliviate.report.collect.task_fingerprint`), the method and training configs,
how the run ended, and the command that audits it (``obliviate unlearn`` does not audit). The run
card (`run_report`) is the same run as a report page: training curves (probe NLLs, loss parts,
guard stops), the configs, provenance and citations, with the verdict "not judged" until an audit.
"""

from __future__ import annotations

import json
from typing import Any

import yaml


# The front matter's tag line that marks a card obliviate wrote (and so may rewrite).
CARD_TAGS = "tags: [obliviate, machine-unlearning, "
AUDIT_HEADING = "## Audit"


def model_card(record: dict[str, Any], *, base_model: str, data: dict[str, str], audit_hint: str = "") -> str:
    """Markdown for the card. ``record`` is the run record (``run.json``: method, task, status,
    method_config, train_config, log); ``data`` the data fingerprints; ``audit_hint`` the command
    that audits the saved model."""
    from obliviate import registry

    method = record["method"]
    info = registry.get("method", method)
    cite = info.paper or method
    links = []
    if info.arxiv:
        links.append(f"[arXiv {info.arxiv}](https://arxiv.org/abs/{info.arxiv})")
    if info.code:
        links.append(f"[code]({info.code})")
    log = record.get("log") or {}
    lines = [
        "---",
        "library_name: transformers",
        CARD_TAGS + method + "]",
        "---",
        "",
        f"# {base_model}, unlearned with {method}",
        "",
        f"This model is `{base_model}` after unlearning `{record.get('task', '')}` with **{method}** "
        f"({cite}{'; ' + ', '.join(links) if links else ''}), by obliviate.",
        "",
        "## Run",
        "",
        f"- status: {record.get('status', '')}; optimizer steps kept: {record.get('kept_step', log.get('steps', ''))} "
        f"of {log.get('total_steps', '')}",
    ]
    if log.get("stopped") and log.get("stopped") != "completed":
        lines.append(f"- stop reason: {log['stopped']}")
    probes = log.get("probes") or []
    if probes:
        first, last = probes[0], probes[-1]
        lines.append(f"- probe NLL, forget: {_num(first.get('forget_nll'))} -> {_num(last.get('forget_nll'))}; "
                     f"retain: {_num(first.get('retain_nll'))} -> {_num(last.get('retain_nll'))} "
                     f"(steps {first.get('step')} -> {last.get('step')})")
    lines += ["", "## Data", ""]
    lines += [f"- {k}: `{v}`" for k, v in data.items()] or ["- (no data fingerprint recorded)"]
    lines += ["", AUDIT_HEADING, ""]
    lines.append("Not audited yet" + (f": `{audit_hint}`" if audit_hint else "") + ".")
    lines += ["", "## Configs", "", "```yaml",
              yaml.safe_dump({"method": record.get("method_config", {}), "train": record.get("train_config", {})},
                             sort_keys=False).rstrip(),
              "```", ""]
    if record.get("prompt_format"):
        lines += ["Prompt format:", "", "```json", json.dumps(record["prompt_format"], indent=1), "```", ""]
    return "\n".join(lines)


def _num(v: Any) -> str:
    """A probe value to 4 significant digits; "n/a" for one the run did not have (no retain data)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "n/a" if v is None else str(v)
    return "n/a" if v != v else f"{v:.4g}"


def run_report(record: dict[str, Any], *, base_model: str, data: dict[str, str], audit_hint: str = "") -> Any:
    """The run card as a `Report` of kind "run" (one unlearned model, no metrics) for `render_html`."""
    from obliviate import registry
    from obliviate.report.schema import ModelEntry, Report

    log = record.get("log") or {}
    method = record["method"]
    run = {"method": method, "seconds": log.get("seconds"), "steps": log.get("steps"), "stopped": log.get("stopped"),
           "best_step": log.get("best_step"), "method_config": record.get("method_config", {}),
           "train_config": record.get("train_config", {}), "history": log.get("history", []),
           "probes": log.get("probes", [])}
    report = Report(kind="run", task={"name": str(record.get("task", "")), "base_model": base_model,
                                      "status": record.get("status", ""), "audit_command": audit_hint},
                    models={method: ModelEntry(method, run=run, role="unlearned")},
                    citations=[registry.get("method", method).record()])
    report.provenance["fingerprints"] = dict(data)
    report.notes += list(log.get("notices") or [])
    return report


def is_obliviate_card(text: str) -> bool:
    """Whether ``text`` is a model card obliviate wrote (its front matter carries `CARD_TAGS`)."""
    head = text.split("\n---", 1)[0]
    return text.startswith("---\n") and CARD_TAGS in head


def audit_section(report: Any, model: str, report_path: str, rules: Any = None) -> list[str]:
    """The card's "Audit" section for ``model`` of ``report``: the verdict, then the headline metrics
    with their 95% CIs (or spread over seeds) and the oracle's value, and where the report is."""
    from obliviate.report import content
    from obliviate.report.verdict import judge

    verdict = next((v for v in judge(report, rules) if v.model == model), None)
    lines = [f"Audited by obliviate ({report.created}); the full report: `{report_path}`.", ""]
    if verdict is not None:
        lines.append(f"Verdict: **{verdict.status.upper()}** ({verdict.summary()}).")
        lines += [f"- {c.name}: {c.status}: {c.evidence} (rule: {c.rule})" for c in verdict.criteria]
        lines.append("")
    metrics = content.headline_metrics(report)
    rows = {r.name: r for r in content.metric_rows(report, metrics)}
    oracle = next((r for r in rows.values() if r.role == "oracle"), None)
    if model in rows and metrics:
        lines += ["| metric | this model | oracle |", "|---|---|---|"]
        for m in metrics:
            c = rows[model].cells[m]
            o = oracle.cells[m].text if oracle is not None else "—"
            lines.append(f"| {content.header(report, m)} | {c.text}{' ' + c.spread if c.spread else ''} | {o} |")
        lines.append("")
    return lines


def with_audit(card: str, lines: list[str]) -> str:
    """``card`` with its "Audit" section replaced by ``lines`` (the rest of the card unchanged)."""
    start = card.find("\n" + AUDIT_HEADING + "\n")
    if start < 0:
        return card.rstrip("\n") + "\n\n" + AUDIT_HEADING + "\n\n" + "\n".join(lines) + "\n"
    body = start + len(AUDIT_HEADING) + 2
    nxt = card.find("\n## ", body)
    tail = card[nxt:] if nxt >= 0 else "\n"
    return card[:body] + "\n" + "\n".join(lines).rstrip("\n") + "\n" + tail


def update_cards(report: Any, folders: dict[str, Any], report_path: str) -> tuple[list[str], list[str]]:
    """Rewrite the Audit section of every audited model folder's card that obliviate wrote
    (``folders``: model name -> its folder); a folder without such a card is left alone. Returns the
    cards written (atomically: temp file + rename) and, for each card that could not be written (a
    read-only model folder, say), a line naming it and why: the audit's report is written already,
    so a card is an extra, never a reason to fail."""
    from pathlib import Path

    from obliviate.report.schema import write_text_atomic

    done, failed = [], []
    for name, folder in folders.items():
        card_path = Path(str(folder)) / "README.md"
        if name not in report.models or not card_path.is_file():
            continue
        try:
            text = card_path.read_text(encoding="utf-8")
            if not is_obliviate_card(text):
                continue
            write_text_atomic(with_audit(text, audit_section(report, name, report_path)), card_path)
        except (OSError, UnicodeDecodeError) as e:
            failed.append(f"{card_path}: {e.strerror if isinstance(e, OSError) and e.strerror else e}")
            continue
        done.append(str(card_path))
    return done, failed


def bench_card(run: dict[str, Any], method: str, task_name: str, base_model: str, data: dict[str, str]) -> str:
    """The card of a model a bench saved (its run record has the bench's fields, not unlearn's)."""
    record = {"method": method, "task": task_name, "status": run.get("stopped") or "completed",
              "kept_step": run.get("steps"), "method_config": run.get("method_config", {}),
              "train_config": run.get("train_config", {}),
              "log": {"steps": run.get("steps"), "total_steps": run.get("total_steps", ""),
                      "stopped": run.get("stopped"), "probes": run.get("probes") or []}}
    return model_card(record, base_model=base_model, data=data)
