"""The model card (``README.md``) written into an unlearned model's folder.

It says what was done to the model, so the folder explains itself on a disk or a model hub: the
method and its paper (from the plug-in's registration), the base model, the data it forgot (each
set's hash and size, `obliviate.report.collect.task_fingerprint`), the method and training configs,
how the run ended, and the command that audits it (``obliviate unlearn`` does not audit).
"""

from __future__ import annotations

import json
from typing import Any

import yaml


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
        "tags: [obliviate, machine-unlearning, " + method + "]",
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
    lines += ["", "## Audit", ""]
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
