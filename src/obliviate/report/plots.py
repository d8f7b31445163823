"""The report's figures (matplotlib, Agg), each returned as a base64 PNG to inline in the HTML.

Each function returns ``None`` when the report holds nothing to draw, and the page then says why.
Figures are drawn at a modest resolution so that a whole report stays well under 2 MB."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

from obliviate.report import content
from obliviate.report.schema import Report

DPI = 80
ROLE_COLOUR = {"target": "#c0392b", "oracle": "#27ae60"}
# Unlearned models' lines: no red or green, which mean target and oracle.
OTHER_COLOURS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> str:
    """The figure as base64 PNG text (and closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def tradeoff(report: Report) -> str | None:
    """Forgetting against utility, one point per model (per seed in a multi-seed bench): TOFU's forget
    quality (log scale) vs model utility, MUSE's VerbMem vs KnowMem-retain, UA vs TA for images, For
    vs Mem for domain unlearning, or the forget set's vs the test set's macro AUC for image+text records."""
    pairs = (("forget_quality", "model_utility", True), ("verbmem_forget", "knowmem_retain", False),
             ("knowmem_forget", "knowmem_retain", False), ("unlearning_accuracy", "test_accuracy", False),
             ("domain_for", "domain_mem", False), ("forget_auc", "test_auc", False))
    models = content.base_models(report)
    for x, y, logx in pairs:
        pts = [(n, e.role, e.metrics[x]["value"], e.metrics[y]["value"]) for n, e in models.items()
               if x in e.metrics and y in e.metrics and _finite(e.metrics[x]["value"])
               and _finite(e.metrics[y]["value"])]
        if len(pts) < 2:
            continue
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for n, role, xv, yv in pts:
            xv = max(xv, 1e-30) if logx else xv
            ax.scatter(xv, yv, s=60 if role in ROLE_COLOUR else 36, color=ROLE_COLOUR.get(role, "#2c3e80"),
                       marker="*" if role == "oracle" else ("s" if role == "target" else "o"), zorder=3)
            ax.annotate(n, (xv, yv), fontsize=8, xytext=(4, 3), textcoords="offset points")
        if logx:
            ax.set_xscale("log")
            ax.axvline(0.05, color="#888", ls=":", lw=1)
            ax.text(0.05, ax.get_ylim()[0], " p = 0.05", fontsize=7, color="#666", va="bottom")
        ax.set_xlabel(f"{x}{' (KS p-value vs oracle, log scale; right = closer to the oracle)' if logx else ''}")
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        ax.set_title(f"{x} vs {y} (square: target, star: oracle)", fontsize=10)
        return png(fig)
    return None


def metric_bars(report: Report, metrics: list[str]) -> str | None:
    """One panel per metric: a bar per model with its 95% CI (or ± std over seeds), and the oracle's
    value as a dashed line."""
    rows = content.metric_rows(report, metrics)
    metrics = [m for m in metrics if any(_finite(r.cells[m].value) for r in rows)]
    if not metrics:
        return None
    oracle = next((r for r in rows if r.role == "oracle"), None)
    bars = [r for r in rows if r.role != "oracle"]
    plt = _plt()
    ncol = min(3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.9 * nrow), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        vals, lo, hi, colours = [], [], [], []
        for r in bars:
            v = r.cells[m].value
            vals.append(v if _finite(v) else 0.0)
            err = _err(report, r.name, m, v)
            lo.append(err[0])
            hi.append(err[1])
            colours.append(ROLE_COLOUR.get(r.role, "#5b7dbd"))
        x = np.arange(len(bars))
        ax.bar(x, vals, color=colours, yerr=[lo, hi], capsize=3, ecolor="#333")
        ax.set_xticks(x, [r.name for r in bars], rotation=35, ha="right", fontsize=8)
        if oracle is not None and _finite(oracle.cells[m].value):
            ax.axhline(oracle.cells[m].value, color=ROLE_COLOUR["oracle"], ls="--", lw=1.5, label="oracle")
            ax.legend(fontsize=7, loc="best")
        if m == "forget_quality" and all(v > 0 for v in vals):
            ax.set_yscale("log")
        ax.set_title(content.header(report, m), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    return png(fig)


def _err(report: Report, name: str, metric: str, v: float | None) -> tuple[float, float]:
    """(below, above) error-bar lengths: the 95% CI, or the std over seeds."""
    if not _finite(v):
        return 0.0, 0.0
    summary = report.tables.get("seed_summary")
    if isinstance(summary, dict) and name in summary and metric in summary[name]:
        s = summary[name][metric]["std"]
        return s, s
    e = report.models.get(name)
    r = (e.metrics.get(metric) if e else None) or {}
    spread = content.seed_spread(r)
    if spread is not None:
        return spread[0], spread[0]
    ci = r.get("ci")
    if ci and _finite(ci[0]) and _finite(ci[1]):
        return max(0.0, v - ci[0]), max(0.0, ci[1] - v)
    return 0.0, 0.0


def training_curves(report: Report) -> str | None:
    """Per run: the probe's forget and retain NLL per step (or the logged loss parts when the run had
    no probe), the step a guard stopped at (red) and the best checkpoint kept (green)."""
    runs = [(n, e.run) for n, e in content.base_models(report).items()
            if e.run and (e.run.get("history") or e.run.get("probes"))]
    if not runs:
        return None
    plt = _plt()
    ncol = min(3, len(runs))
    nrow = math.ceil(len(runs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.8 * nrow), squeeze=False)
    for ax, (name, run) in zip(axes.flat, runs):
        probes = run.get("probes") or []
        if len(probes) >= 2:
            steps = [p["step"] for p in probes]
            for key, colour in (("forget_nll", "#c0392b"), ("retain_nll", "#2c7fb8")):
                ys = [p.get(key) for p in probes]
                if any(_finite(y) for y in ys):
                    ax.plot(steps, [y if _finite(y) else np.nan for y in ys], marker=".", color=colour,
                            label=key.replace("_nll", " NLL"))
        else:
            hist = run.get("history") or []
            keys = [k for k in dict.fromkeys(k for h in hist for k in h) if k != "step"]
            for k in keys[:4]:
                ax.plot([h["step"] for h in hist], [h.get(k, np.nan) for h in hist], label=k)
        stopped = str(run.get("stopped") or "completed")
        if stopped != "completed" and _finite(run.get("steps")):
            ax.axvline(run["steps"], color="red", lw=1.5, label=f"guard: {stopped[:28]}")
        if _finite(run.get("best_step")):
            ax.axvline(run["best_step"], color="green", ls="--", lw=1, label="best step kept")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.tight_layout()
    return png(fig)


def _roc(member: np.ndarray, nonmember: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of detecting members by a low loss: (FPR, TPR, AUC), members positive."""
    s = np.concatenate([-member, -nonmember])  # higher = more member-like
    y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    order = np.argsort(-s, kind="mergesort")
    y = y[order]
    tpr = np.concatenate([[0.0], np.cumsum(y) / max(1, y.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(1 - y) / max(1, (1 - y).sum())])
    return fpr, tpr, float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def mia(report: Report) -> str | None:
    """Histograms of the loss-MIA score, forget (members) vs held-out (non-members), one panel per
    model, and the ROC curves of all models in the last panel."""
    table = report.tables.get("mia_scores")
    if not isinstance(table, dict) or not table:
        return None
    items = [(n, d) for n, d in table.items() if d.get("member") and d.get("nonmember")]
    if not items:
        return None
    plt = _plt()
    n = len(items) + 1
    ncol = min(4, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.6 * nrow), squeeze=False)
    flat = list(axes.flat)
    allv = np.concatenate([np.asarray(d["member"] + d["nonmember"], dtype=float) for _, d in items])
    bins = np.linspace(np.nanmin(allv), np.nanmax(allv), 25)
    roc_ax = flat[len(items)]
    for ax, (name, d) in zip(flat, items):
        mem, non = np.asarray(d["member"], dtype=float), np.asarray(d["nonmember"], dtype=float)
        ax.hist(mem, bins=bins, alpha=0.6, color="#c0392b", label="forget (member)")
        ax.hist(non, bins=bins, alpha=0.6, color="#2c7fb8", label="held-out (non-member)")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(d.get("score", "mean answer NLL"), fontsize=7)
        ax.tick_params(labelsize=7)
        fpr, tpr, auc = _roc(mem, non)
        role = report.models[name].role if name in report.models else ""
        roc_ax.plot(fpr, tpr, label=f"{name} ({auc:.2f})",
                    color=ROLE_COLOUR.get(role) or OTHER_COLOURS[len(roc_ax.lines) % len(OTHER_COLOURS)])
    flat[0].legend(fontsize=6)
    roc_ax.plot([0, 1], [0, 1], color="#999", ls=":", lw=1)
    roc_ax.set_title("ROC: forget vs held-out (AUC)", fontsize=9)
    roc_ax.set_xlabel("false-positive rate", fontsize=7)
    roc_ax.set_ylabel("true-positive rate", fontsize=7)
    roc_ax.legend(fontsize=6)
    for ax in flat[len(items) + 1:]:
        ax.axis("off")
    fig.tight_layout()
    return png(fig)


def attacks(report: Report) -> str | None:
    """Per knowledge measure: for each model, its value before and after every attack, with the
    recovered share on top of each after-bar; the target's and the oracle's values as lines."""
    rows = content.recovery_rows(report)
    if not rows:
        return None
    metrics = list(dict.fromkeys(r["metric"] for r in rows))[:3]
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.0 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        mrows = [r for r in rows if r["metric"] == metric]
        models = list(dict.fromkeys(content.row_name(r) for r in mrows))
        atk = list(dict.fromkeys(r["attack"] for r in mrows))
        width = 0.8 / (len(atk) + 1)
        x = np.arange(len(models))
        before = [next((r["before"] for r in mrows if content.row_name(r) == m), np.nan) for m in models]
        ax.bar(x, [b if _finite(b) else 0 for b in before], width, label="unlearned", color="#5b7dbd")
        for i, a in enumerate(atk):
            vals, shares = [], []
            for m in models:
                r = next((r for r in mrows if content.row_name(r) == m and r["attack"] == a), None)
                vals.append(r["after"] if r and _finite(r["after"]) else 0)
                shares.append(r.get("recovered_share") if r else None)
            pos = x + (i + 1) * width
            ax.bar(pos, vals, width, label=f"after {a}")
            for p, v, s in zip(pos, vals, shares):
                if _finite(s):
                    ax.text(p, v, f"{s:.0%}", ha="center", va="bottom", fontsize=7)
        for role in ("target", "oracle"):
            name = next((n for n, e in report.models.items() if e.role == role), None)
            r = report.models[name].metrics.get(metric) if name else None
            if r and _finite(r.get("value")):
                ax.axhline(r["value"], color=ROLE_COLOUR[role], ls="--", lw=1.2, label=role)
        ax.set_xticks(x + width * len(atk) / 2, models, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{metric}: before / after each attack (labels: recovered share)", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return png(fig)
