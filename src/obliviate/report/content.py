"""What a report shows, independent of the output format: the headline metrics, metric families,
the rows of each table (mean ± spread over seeds, 95% CIs), the attack-recovery rows and the
citations. `html` and `markdown` both render these, so the two carry the same tables."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from obliviate.metrics.base import ARROWS
from obliviate.report.schema import Report
from obliviate.report.table import fmt_value, seed_spread

# The headline of a report on the built-in benchmark or user files (api.HEADLINE, kept here so the
# report does not import the training stack).
TEXT_HEADLINE = ("forget_quality", "model_utility", "forget_rouge", "privleak", "fluency_retain")
VISION_HEADLINE = ("unlearning_accuracy", "retain_accuracy", "test_accuracy", "mia_efficacy", "avg_gap",
                   "ulira_tpr_at_1pct_fpr", "ulira_auc", "challenge_score", "relearn_time")
VISION_SHORT = {"unlearning_accuracy": "UA", "retain_accuracy": "RA", "test_accuracy": "TA",
                "mia_efficacy": "MIA-Eff", "avg_gap": "Avg.Gap", "ulira_tpr_at_1pct_fpr": "U-LiRA TPR@1%FPR",
                "ulira_auc": "U-LiRA AUC", "challenge_score": "Challenge", "relearn_time": "Relearn steps"}
# Domain unlearning in a CLIP-style model (the ``domains`` bench; ADU, arXiv 2510.08132) and
# image+text records (the ``multimodal`` bench; Forget-MI, arXiv 2506.23145): their own headlines.
DOMAINS_HEADLINE = ("domain_h", "domain_mem", "domain_for", "domain_gap_to_oracle")
MULTIMODAL_HEADLINE = ("forget_auc", "forget_f1", "test_auc", "test_f1", "mia_svc_logits", "mia_svc_entropy",
                       "mia_svc_loss")
SHORT = {"domain_h": "H", "domain_mem": "Mem", "domain_for": "For", "domain_gap_to_oracle": "Gap to oracle",
         "forget_auc": "D_f AUC", "forget_f1": "D_f F1", "test_auc": "D_t AUC", "test_f1": "D_t F1",
         "mia_svc_logits": "MIA logits", "mia_svc_entropy": "MIA entropy", "mia_svc_loss": "MIA loss"}
# Knowledge measures whose recovery an attack is judged by (api.RECOVERY_METRICS).
RECOVERY_METRICS = ("forget_prob", "forget_rouge", "verbmem_forget", "knowmem_forget", "wmdp_accuracy")

# Metric families: the wide all-metrics table is split into one table per family (first match wins).
FAMILIES: tuple[tuple[str, str], ...] = (
    ("Headline scores (TOFU)", r"^(forget_quality|model_utility)$"),
    ("Domain unlearning: Mem / For / H and per-domain accuracy", r"^domain_|^acc_"),
    ("Image+text records: macro AUC / F1 and SVC membership", r"^(forget|test)_(auc|f1)$|^mia_svc_"),
    ("Forget set", r"^forget_|^exact_memorization$|^extraction_strength$"),
    ("Retain set", r"^retain_"),
    ("Real authors / world facts (general knowledge)", r"^(real_authors|world_facts)_"),
    ("Membership inference and privacy", r"^(mia_|privleak|ulira)"),
    ("MUSE / WMDP / SemEval", r"^(verbmem|knowmem|wmdp|semeval)_"),
    ("Fluency and familiarity", r"^(fluency|familiarity)"),
    ("Image classification", r"^(unlearning|retain|test)_accuracy$|^mia_efficacy$|^avg_gap$|^challenge|^relearn"),
)


def family_of(metric: str) -> str:
    for title, pattern in FAMILIES:
        if re.search(pattern, metric):
            return title
    return "Other metrics"


def is_vision(report: Report) -> bool:
    return any("unlearning_accuracy" in e.metrics for e in report.models.values())


def kind_of(report: Report) -> str:
    """What the report's models are: "vision" (image classifiers: UA/RA/TA), "domains" (domain
    unlearning: Mem/For/H), "multimodal" (image+text records: AUC/F1/SVC membership) or "text"."""
    if is_vision(report):
        return "vision"
    have = {m for e in report.models.values() for m in e.metrics}
    if report.task.get("benchmark") == "domains" or "domain_h" in have:
        return "domains"
    if report.task.get("benchmark") == "multimodal" or "forget_auc" in have:
        return "multimodal"
    return "text"


def headline_metrics(report: Report) -> list[str]:
    """The headline columns: the vision table's, the public benchmark's own (TOFU, MUSE ...), or the
    built-in one; only metrics some model has or skipped."""
    kind = kind_of(report)
    if kind == "vision":
        cols: tuple[str, ...] = VISION_HEADLINE
    elif kind == "domains":  # H, Mem, For, then every domain's accuracy, then the gap to the oracle
        accs = [f"acc_{d}" for d in report.task.get("domains", [])] or sorted(
            {m for e in report.models.values() for m in e.metrics if m.startswith("acc_")})
        cols = (*DOMAINS_HEADLINE[:3], *accs, DOMAINS_HEADLINE[3])
    elif kind == "multimodal":
        cols = MULTIMODAL_HEADLINE
    else:
        cols = TEXT_HEADLINE
        bench = str(report.task.get("benchmark", ""))
        try:
            from obliviate.benchmarks.public import BENCHMARKS

            if bench in BENCHMARKS:
                cols = tuple(BENCHMARKS[bench].headline)
        except ImportError:  # the report renders without the benchmark loaders
            pass
    return [m for m in cols if any(m in e.metrics or m in e.skipped for e in report.models.values())]


def direction(report: Report, metric: str) -> str:
    for e in report.models.values():
        if metric in e.metrics:
            return e.metrics[metric].get("direction", "")
    return ""


def header(report: Report, metric: str) -> str:
    kind = kind_of(report)
    if kind == "vision":
        name = VISION_SHORT.get(metric, metric)
    elif kind in ("domains", "multimodal"):
        forget = metric.startswith("acc_") and metric[4:] in report.task.get("forget_domains", [])
        name = SHORT.get(metric, metric[4:] + (" (forget)" if forget else "") if metric.startswith("acc_") else metric)
    else:
        name = metric
    arrow = ARROWS.get(direction(report, metric), "")
    return f"{name} {arrow}".strip()


@dataclass
class Cell:
    """One table cell: the value text, its spread text (CI or ± std) and the raw value."""

    value: float | None
    text: str
    spread: str = ""
    missing: str = ""  # why there is no value ("skipped: ...")


@dataclass
class Row:
    name: str
    role: str
    cells: dict[str, Cell] = field(default_factory=dict)
    seconds: str = "—"
    n_seeds: int = 1


def _cell_of(r: dict | None, skipped: str | None) -> Cell:
    if r is None:
        return Cell(None, "skipped" if skipped else "—", missing=skipped or "")
    v = r.get("value")
    spread = seed_spread(r)
    if spread is not None:  # a mean over seeds: ± the spread over seeds
        return Cell(v, fmt_value(v), f"± {fmt_value(spread[0])} (n={spread[1]} seeds)")
    ci = r.get("ci")
    if ci and ci[0] is not None and ci[1] is not None:
        return Cell(v, fmt_value(v), f"[{fmt_value(ci[0])}, {fmt_value(ci[1])}]")
    return Cell(v, fmt_value(v))


def _secs(run: dict | None) -> str:
    v = (run or {}).get("seconds")
    return fmt_value(v) if isinstance(v, (int, float)) and not math.isnan(v) else "—"


def base_models(report: Report) -> dict[str, Any]:
    """The models that are not attacked copies, in report order."""
    return {n: e for n, e in report.models.items() if e.role != "attacked"}


def metric_rows(report: Report, metrics: list[str]) -> list[Row]:
    """One row per model (not the attacked copies). A multi-seed bench (``tables["seed_summary"]``)
    gets one row per model with mean ± std over seeds; its per-seed rows follow in `seed_rows`."""
    summary = report.tables.get("seed_summary")
    out = []
    if isinstance(summary, dict) and summary:
        for name, per in summary.items():
            first = next((e for n, e in report.models.items() if n.startswith(f"{name}/seed")), None)
            row = Row(name, first.role if first else "unlearned")
            for m in metrics:
                s = per.get(m)
                if s is None:
                    skip = first.skipped.get(m) if first else None
                    row.cells[m] = _cell_of(None, skip)
                else:
                    row.cells[m] = Cell(s["mean"], fmt_value(s["mean"]),
                                        f"± {fmt_value(s['std'])} (n={s['n_seeds']} seeds)")
            secs = [(e.run or {}).get("seconds") for n, e in report.models.items() if n.startswith(f"{name}/seed")]
            secs = [s for s in secs if isinstance(s, (int, float))]
            row.seconds = fmt_value(sum(secs) / len(secs)) if secs else "—"
            row.n_seeds = len([n for n in report.models if n.startswith(f"{name}/seed")])
            out.append(row)
        return out
    for name, e in base_models(report).items():
        row = Row(name, e.role, seconds=_secs(e.run))
        for m in metrics:
            row.cells[m] = _cell_of(e.metrics.get(m), e.skipped.get(m))
        out.append(row)
    return out


def per_model_rows(report: Report, metrics: list[str]) -> list[Row]:
    """Every base model (per seed in a multi-seed bench), each value with its 95% CI."""
    out = []
    for name, e in base_models(report).items():
        row = Row(name, e.role, seconds=_secs(e.run))
        for m in metrics:
            row.cells[m] = _cell_of(e.metrics.get(m), e.skipped.get(m))
        out.append(row)
    return out


def families(report: Report) -> list[tuple[str, list[str]]]:
    """(family title, its metrics) for every metric any base model has, in `FAMILIES` order."""
    present = sorted({m for e in base_models(report).values() for m in e.metrics})
    groups: dict[str, list[str]] = {}
    for m in present:
        groups.setdefault(family_of(m), []).append(m)
    order = [t for t, _ in FAMILIES] + ["Other metrics"]
    return [(t, groups[t]) for t in order if t in groups]


def recovery_rows(report: Report) -> list[dict[str, Any]]:
    """The attacks table's knowledge-recovery rows (one per model, attack and knowledge measure):
    before, after and the recovered share; the rows of other metrics stay in the full table."""
    rows = report.tables.get("attacks") or []
    return [r for r in rows if isinstance(r, dict) and r.get("metric") in RECOVERY_METRICS]


def row_name(row: dict) -> str:
    """The model an attacks-table row belongs to (``model/seedK`` in a multi-seed bench)."""
    return row["model"] if "seed" not in row else f"{row['model']}/seed{row['seed']}"


def skipped(report: Report) -> list[tuple[str, str, list[str]]]:
    """(metric, reason, models) for every skipped metric, models with the same reason together."""
    by: dict[tuple[str, str], list[str]] = {}
    for name, e in report.models.items():
        for metric, reason in e.skipped.items():
            by.setdefault((metric, reason), []).append(name)
    return [(m, r, names) for (m, r), names in sorted(by.items())]


def citations(report: Report) -> list[dict[str, str]]:
    """Every method, metric, attack and benchmark the report used, from plug-in metadata: the report's
    own list plus the methods its runs name (``run["method"]`` or a model named after a registered
    method), one entry each, grouped by kind."""
    seen: dict[tuple[str, str], dict] = {}
    for c in report.citations:
        if isinstance(c, dict) and c.get("name"):
            seen.setdefault((c.get("kind", ""), c["name"]), c)
    try:
        from obliviate import registry

        for name, e in report.models.items():
            method = (e.run or {}).get("method") or name.split("/seed")[0]
            if ("method", method) in seen:
                continue
            try:
                info = registry.get("method", method)
            except KeyError:
                continue
            seen[("method", method)] = info.record()
    except ImportError:  # rendering without the plug-ins installed: the report's own list
        pass
    order = {"method": 0, "metric": 1, "attack": 2, "benchmark": 3, "selector": 4}
    return sorted(seen.values(), key=lambda c: (order.get(c.get("kind", ""), 9), c.get("name", "")))


def fingerprints(report: Report) -> dict[str, Any]:
    """Data and model fingerprints recorded by the audit (``provenance["fingerprints"]``), plus any
    recipe / data hashes in the task header and the runs."""
    out: dict[str, Any] = dict((report.provenance or {}).get("fingerprints") or {})
    for k in ("recipe", "data_hash", "fingerprint"):
        if k in report.task:
            out.setdefault(f"task {k}", report.task[k])
    return out


def run_configs(report: Report) -> list[tuple[str, dict, dict, dict]]:
    """(model, method config, train config, other run facts) for every base model with a run record."""
    out = []
    for name, e in base_models(report).items():
        run = e.run or {}
        mcfg = run.get("method_config") or run.get("config") or {}
        tcfg = run.get("train_config") or {}
        facts = {k: v for k, v in run.items() if k not in ("method_config", "config", "train_config", "history",
                                                             "probes", "log") and not isinstance(v, (dict, list))}
        if mcfg or tcfg or facts:
            out.append((name, mcfg, tcfg, facts))
    return out


def seeds(report: Report) -> list[Any]:
    """The seeds behind the report: the task's list, or those of the runs."""
    if isinstance(report.task.get("seeds"), list):
        return report.task["seeds"]
    found = set()
    for e in report.models.values():
        run = e.run or {}
        for s in (run.get("seed"), (run.get("train_config") or {}).get("seed")):
            if isinstance(s, int):
                found.add(s)
    return sorted(found)
