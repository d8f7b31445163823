"""One self-contained HTML report (jinja2 + matplotlib, images inlined as base64 PNG)."""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path

import jinja2

from obliviate.metrics.base import ARROWS
from obliviate.report.schema import Report
from obliviate.report.table import fmt_value

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>obliviate report: {{ task.name }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
tr.oracle td{background:#eef7ee} tr.target td{background:#fbeeee} tr.attacked td{color:#555}
.ci{color:#888;font-size:12px} .small{font-size:12px;color:#555} img{max-width:100%}
</style></head><body>
<h1>obliviate {{ kind }} report</h1>
<p>Task <b>{{ task.name }}</b>: {{ task.n_forget }} forget / {{ task.n_retain }} retain / {{ task.n_holdout }} held-out
examples. Reference (retain-only oracle): <b>{{ reference or "none" }}</b>. Created {{ created }}.</p>
<h2 id="headline">Headline</h2>
<table id="headline-table"><tr><th>model</th>{% for m in headline %}<th>{{ m }} {{ arrows[m] }}</th>{% endfor %}<th>seconds</th></tr>
{% for name, e in models %}<tr class="{{ e.role }}"><td>{{ name }}</td>
{% for m in headline %}<td>{{ cell(e, m) }}</td>{% endfor %}<td>{{ secs(e) }}</td></tr>{% endfor %}
</table>
{% for title, img in plots %}<h3>{{ title }}</h3><img alt="{{ title }}" src="data:image/png;base64,{{ img }}">{% endfor %}
{% if attacks %}<h2 id="attacks">Attacks: metrics before and after</h2>
<table><tr><th>model</th><th>attack</th><th>metric</th><th>before</th><th>after</th><th>recovered share</th></tr>
{% for r in attacks %}<tr><td>{{ r.model }}</td><td>{{ r.attack }}</td><td>{{ r.metric }}</td><td>{{ f(r.before) }}</td>
<td>{{ f(r.after) }}</td><td>{{ f(r.get("recovered_share")) }}</td></tr>{% endfor %}</table>{% endif %}
<h2 id="all-metrics">All metrics</h2>
<table><tr><th>model</th>{% for m in all_metrics %}<th>{{ m }} {{ arrows[m] }}</th>{% endfor %}</tr>
{% for name, e in models %}<tr class="{{ e.role }}"><td>{{ name }}</td>
{% for m in all_metrics %}<td>{{ cell(e, m) }}</td>{% endfor %}</tr>{% endfor %}</table>
<p class="small">Intervals are 95% bootstrap CIs over examples. Arrows: ↑ higher is better, ↓ lower is better,
→0 closer to zero, ≈ref closer to the oracle's value.</p>
{% if skipped %}<h2>Skipped metrics</h2><ul>{% for k, v in skipped.items() %}<li><b>{{ k }}</b>: {{ v }}</li>{% endfor %}</ul>{% endif %}
<h2>Citations</h2><ul>{% for c in citations %}<li>{{ c.kind }} <b>{{ c.name }}</b>: {{ c.paper }}{% if c.arxiv %}
(arXiv:{{ c.arxiv }}){% endif %}</li>{% endfor %}</ul>
<h2>Versions</h2><p class="small">{% for k, v in versions.items() %}{{ k }} {{ v }}; {% endfor %}</p>
</body></html>
"""

HEADLINE = ("forget_quality", "model_utility", "forget_rouge", "privleak")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(report: Report) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(n, e.metrics["forget_quality"]["value"], e.metrics["model_utility"]["value"])
           for n, e in report.models.items()
           if "forget_quality" in e.metrics and "model_utility" in e.metrics and e.role != "attacked"]
    out = []
    if pts:
        fig, ax = plt.subplots(figsize=(6, 4))
        for n, fq, mu in pts:
            if fq is None or mu is None:
                continue
            ax.scatter(max(fq, 1e-30), mu)
            ax.annotate(n, (max(fq, 1e-30), mu), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("forget quality (KS p-value vs oracle, log)")
        ax.set_ylabel("model utility")
        out.append(("Forget quality vs model utility", _png(fig)))
        plt.close(fig)
    return out


def render_html(report: Report) -> str:
    models = list(report.models.items())
    all_metrics = sorted({m for _, e in models for m in e.metrics})
    arrows = {}
    for _, e in models:
        for m, r in e.metrics.items():
            arrows.setdefault(m, ARROWS.get(r["direction"], ""))
    for m in HEADLINE:
        arrows.setdefault(m, "")

    def cell(e, m):
        r = e.metrics.get(m)
        if r is None:
            return "skipped" if m in e.skipped else "—"
        ci = r.get("ci")
        ci_s = f' <span class="ci">[{fmt_value(ci[0])}, {fmt_value(ci[1])}]</span>' if ci else ""
        return fmt_value(r["value"]) + ci_s  # numbers only: safe to mark as HTML

    def secs(e):
        v = (e.run or {}).get("seconds")
        return fmt_value(v) if isinstance(v, (int, float)) and not math.isnan(v) else "—"

    skipped = {}
    for _, e in models:
        for k, v in e.skipped.items():
            skipped.setdefault(k, v)
    env = jinja2.Environment(autoescape=True)
    env.globals.update(cell=cell, secs=secs, f=fmt_value)
    tpl = env.from_string(TEMPLATE.replace("{{ cell(e, m) }}", "{{ cell(e, m) | safe }}"))
    return tpl.render(task=report.task, kind=report.kind, reference=report.reference, created=report.created,
                      models=models, headline=HEADLINE, arrows=arrows, all_metrics=all_metrics,
                      attacks=report.tables.get("attacks", []), plots=_plots(report), skipped=skipped,
                      citations=report.citations, versions=report.versions)


def write_html(report: Report, path: str | os.PathLike) -> Path:
    """Render and write atomically."""
    import tempfile

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(render_html(report))
    os.replace(tmp, p)
    return p
