"""Terminal tables (rich) and Markdown tables from a Report."""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from obliviate.metrics.base import ARROWS
from obliviate.report.schema import Report


def seed_spread(r: Any) -> tuple[float, int] | None:
    """``(std, number of seeds)`` when the metric dict ``r`` is a mean over more than one seed (the
    digits, domains and multimodal benches write ``per_seed`` beside ``std``; a seed summary writes
    ``n_seeds``), else None. The terminal seed table, the page's cells, its error bars and its spread
    note all ask this."""
    if not isinstance(r, dict) or r.get("std") is None:
        return None
    n = r.get("n_seeds") or (len(r["per_seed"]) if isinstance(r.get("per_seed"), list) else None)
    return (r["std"], n) if n and n > 1 else None


def fmt_value(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{v:.2e}"
    return f"{v:.3f}" if a < 100 else f"{v:.1f}"


def metric_header(report: Report, metric: str) -> str:
    for m in report.models.values():
        if metric in m.metrics:
            return f"{metric} {ARROWS.get(m.metrics[metric]['direction'], '')}"
    return metric


def rows(report: Report, metrics: Sequence[str], extra: Sequence[str] = ("seconds",)) -> list[list[str]]:
    out = []
    for name, m in report.models.items():
        row = [name]
        for k in metrics:
            r = m.metrics.get(k)
            row.append(fmt_value(r["value"]) if r else ("n/a" if k not in m.skipped else "skipped"))
        for e in extra:
            v = (m.run or {}).get(e)
            row.append(fmt_value(v) if v is not None else "—")
        out.append(row)
    return out


def skip_notes(report: Report, metrics: Sequence[str] | None = None) -> list[str]:
    """One line per skipped metric (of ``metrics``, default all) and reason: which models skipped it and why.
    Models that skipped a metric for the same reason share a line."""
    by: dict[tuple[str, str], list[str]] = {}
    for name, m in report.models.items():
        for metric, reason in m.skipped.items():
            if metrics is None or metric in metrics:
                by.setdefault((metric, reason), []).append(name)
    order = {k: i for i, k in enumerate(metrics or [])}
    return [f"{metric} skipped for {', '.join(names)}: {reason}"
            for (metric, reason), names in sorted(by.items(), key=lambda kv: (order.get(kv[0][0], 0), kv[0][0]))]


def scope_note(report: Report) -> str:
    """What the audit evaluated: items scored per set, any per-set limits, the generation length."""
    task = report.task
    n = task.get("n_scored") or {}
    parts = [f"{k} {v}" for k, v in n.items()]
    limits = task.get("eval_limits") or {}
    lim = f"; limits: {', '.join(f'{k} first {v}' for k, v in limits.items())}" if limits else "; every item"
    gen = f"; {task['max_new_tokens']} new tokens" if task.get("max_new_tokens") else ""
    return f"scored: {', '.join(parts)}{lim}{gen}" if parts else ""


def print_table(report: Report, metrics: Sequence[str], title: str = "", console: Console | None = None,
                extra: Sequence[str] = ("seconds",), notes: bool = True) -> None:
    """The metrics table; with ``notes``, the sets and items scored and each skipped metric with its reason."""
    console = console or Console(width=None if Console().is_terminal else 120)
    t = Table(title=title or None)
    t.add_column("model")
    for k in metrics:
        t.add_column(metric_header(report, k), justify="right")
    for e in extra:
        t.add_column(e, justify="right")
    for r in rows(report, metrics, extra):
        t.add_row(*r)
    console.print(t)
    if notes:
        scope = scope_note(report)
        if scope:
            console.print(scope, markup=False, highlight=False)
        for line in skip_notes(report, metrics):
            console.print(line, markup=False, highlight=False)


def markdown_table(report: Report, metrics: Sequence[str], extra: Sequence[str] = ("seconds",)) -> str:
    head = ["model", *[metric_header(report, k) for k in metrics], *extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report, metrics, extra)]
    return "\n".join(lines)


def attack_recovery(report: Report, metric: str = "forget_prob") -> dict[str, dict[str, tuple[float, float]]]:
    """``{model: {attack: (value after the attack, recovered share)}}`` from ``tables["attacks"]``."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for row in report.tables.get("attacks", []):
        if row.get("metric") == metric:
            name = row["model"] if "seed" not in row else f"{row['model']}/seed{row['seed']}"
            out.setdefault(name, {})[row["attack"]] = (row["after"], row.get("recovered_share", float("nan")))
    return out


def print_bench_table(report: Report, metrics: Sequence[str], title: str = "", console: Console | None = None,
                      metric: str = "forget_prob") -> None:
    """The headline metrics plus, per attack, the forget knowledge after it and the share of the removed
    knowledge it brings back ((K_attacked - K_unlearned) / (K_target - K_unlearned))."""
    console = console or Console(width=None if Console().is_terminal else 160)
    rec = attack_recovery(report, metric)
    attacks = sorted({a for per in rec.values() for a in per})
    cols = list(dict.fromkeys((*metrics, metric)))  # the knowledge measure once, even when it is a headline metric
    t = Table(title=title or None)
    t.add_column("model")
    for k in cols:
        t.add_column(metric_header(report, k), justify="right")
    for a in attacks:
        t.add_column(f"{metric}@{a}", justify="right")
        t.add_column(f"recovered@{a}", justify="right")
    t.add_column("seconds", justify="right")
    for name, m in report.models.items():
        if m.role == "attacked":
            continue
        row = [name]
        for k in cols:
            r = m.metrics.get(k)
            row.append(fmt_value(r["value"]) if r else "—")
        for a in attacks:
            after, share = rec.get(name, {}).get(a, (None, None))
            row += [fmt_value(after), fmt_value(share)]
        row.append(fmt_value((m.run or {}).get("seconds")))
        t.add_row(*row)
    console.print(t)


def print_rows(rows: Sequence[dict], title: str = "", console: Console | None = None) -> None:
    """A table of row dicts (the protocols' curves); an empty list prints why there is no table."""
    console = console or Console(width=None if Console().is_terminal else 160)
    if not rows:
        console.print(f"{title}: no rows (the data has no such splits, or the protocol was off)", markup=False)
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    t = Table(title=title or None)
    for c in cols:
        t.add_column(c, justify="left" if isinstance(rows[0].get(c), str) else "right")
    def cell(v: object) -> str:
        if isinstance(v, float) or v is None:
            return fmt_value(v)
        return str(v)

    for r in rows:
        t.add_row(*[cell(r.get(c)) for c in cols])
    console.print(t)


def print_seed_table(report, metrics, title: str, short: dict[str, str], console: Any = None,
                     width: int = 160) -> None:
    """The bench table of the image and multimodal benchmarks: one row per model, each metric as
    mean ± std over seeds (a bare value for one seed, "skipped" for a model whose run was skipped,
    "(n=k)" after a value that rests on fewer of the report's seeds than the others), and the seconds
    per unlearning run."""
    n_seeds = len(report.task.get("seeds") or [])
    present = [m for m in metrics if any(m in e.metrics for e in report.models.values())]
    table = Table(title=title)
    table.add_column("model")
    for m in present:
        d = next(e.metrics[m] for e in report.models.values() if m in e.metrics)
        table.add_column(f"{short.get(m, m)} {ARROWS.get(d['direction'], '')}", justify="right")
    table.add_column("s", justify="right")
    for name, e in report.models.items():
        cells = []
        for m in present:
            d = e.metrics.get(m)
            if d is None:
                cells.append("skipped" if e.skipped else "—")
            else:
                spread = seed_spread(d)
                cell = f"{fmt_value(d['value'])} ± {fmt_value(spread[0])}" if spread else fmt_value(d["value"])
                k = spread[1] if spread else 1
                cells.append(cell + (f" (n={k})" if k < n_seeds else ""))
        secs = (e.run or {}).get("seconds")
        table.add_row(name, *cells, fmt_value(secs) if secs is not None else "—")
    (console or Console(width=None if Console().is_terminal else width)).print(table)
