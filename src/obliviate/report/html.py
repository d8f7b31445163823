"""One self-contained HTML report (jinja2 + matplotlib): inline CSS, images inlined as base64 PNG, no
scripts, fonts or links to fetch, so it opens offline and can be attached to a review.

The page reads top-down as a reviewer asks: the verdict (with its rules), the headline table, the
trade-off and per-metric figures, training curves, membership inference, attacks, every metric by
family, then provenance (versions, commit, command, configs, fingerprints, citations)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2

from obliviate.report import content, plots
from obliviate.report.schema import Report
from obliviate.report.table import fmt_value
from obliviate.report.verdict import VerdictRules, judge

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1.2em 2em;max-width:1280px;
color:#1d1d1f;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{margin:1.1em 0 .3em} .wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #d0d0d0;padding:3px 7px;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left} th{background:#f2f2f4;position:sticky;top:0}
tr.oracle td{background:#eef8ee} tr.target td{background:#fcefee}
.ci{color:#777;font-size:11px;white-space:nowrap} .small{font-size:12px;color:#555}
img{max-width:100%;height:auto;border:1px solid #eee}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-weight:600;font-size:12px;color:#fff}
.pass{background:#1e8e3e} .fail{background:#c5221f} .incomplete,.notjudged{background:#9aa0a6}
td.pass,td.fail,td.notjudged{color:#fff;text-align:left}
.verdict td{font-size:12px;text-align:left} .verdict td b{font-size:13px}
.summary{font-size:15px;background:#f7f7fb;border-left:4px solid #5b7dbd;padding:.5em 1em}
details{margin:.4em 0} summary{cursor:pointer;color:#2c3e80} code,pre{font-size:12px;background:#f6f6f6}
pre{padding:.5em;overflow-x:auto;max-height:30em}
"""

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>obliviate {{ r.kind }} report: {{ task_name }}</title>
<style>{{ css }}</style></head><body>
<h1>obliviate {{ r.kind }} report: {{ task_name }}</h1>
<p class="small">{{ task_line }} Reference (retain-only oracle): <b>{{ r.reference or "none" }}</b>.
Created {{ r.created }}; schema {{ r.schema_version }}.</p>

<h2 id="verdict">Verdict</h2>
{% if verdicts %}
<p class="summary" id="verdict-summary">{% for v in verdicts %}<b>{{ v.model }}</b>
<span class="badge {{ v.status }}">{{ v.status.upper() }}</span> ({{ v.summary() }}){{ "; " if not loop.last }}{% endfor %}</p>
<div class="wrap"><table class="verdict" id="verdict-table"><tr><th>model</th><th>verdict</th>
{% for c in verdicts[0].criteria %}<th>{{ c.name }}</th>{% endfor %}</tr>
{% for v in verdicts %}<tr><td><b>{{ v.model }}</b></td><td class="{{ v.status.replace(' ', '') }}">{{ v.status.upper() }}</td>
{% for c in v.criteria %}<td class="{{ c.status.replace(' ', '') }}"><b>{{ c.status }}</b><br>{{ c.evidence }}</td>{% endfor %}</tr>
{% endfor %}</table></div>
<p class="small" id="verdict-rules"><b>Rules</b> (a model passes when every criterion passes; "not judged" means the
report lacks what the rule needs, and says what):</p><ul class="small">
{% for name, rule in rules %}<li><b>{{ name }}</b>: {{ rule }}</li>{% endfor %}</ul>
<p class="small">Thresholds: {% for k, v in thresholds.items() %}{{ k }}={{ v }}{{ ", " if not loop.last }}{% endfor %}.
Change them with <code>obliviate report RUN --rule KEY=VALUE</code>.</p>
{% else %}<p class="summary" id="verdict-summary">No unlearned model in this report to judge: it holds
{{ roles }}. The verdict judges unlearned models against the oracle and the target.</p>{% endif %}
{% if not has_oracle and r.kind != "run" %}<p class="summary">Could not judge forgetting or privacy against the truth: this report has no
retain-only oracle (audit with <code>--reference ORACLE</code>), so forget quality and PrivLeak were not computed.</p>{% endif %}

<h2 id="headline">Headline</h2>
<div class="wrap"><table id="headline-table"><tr><th>model</th><th>role</th>
{% for m in headline %}<th>{{ hdr(m) }}</th>{% endfor %}<th>seconds</th></tr>
{% for row in headline_rows %}<tr class="{{ row.role }}"><td>{{ row.name }}</td><td>{{ row.role }}</td>
{% for m in headline %}{% set c = row.cells[m] %}<td title="{{ c.missing }}">{{ c.text }}{% if c.spread %}
<br><span class="ci">{{ c.spread }}</span>{% endif %}</td>{% endfor %}<td>{{ row.seconds }}</td></tr>{% endfor %}
</table></div>
<p class="small">{{ spread_note }} Arrows: ↑ higher is better, ↓ lower is better, →0 closer to zero is better,
≈ref closer to the oracle's value is better.{% if scope %} {{ scope }}.{% endif %}</p>

{% for fig in figures %}<h3 id="{{ fig.id }}">{{ fig.title }}</h3>
{% if fig.img %}<p class="small">{{ fig.caption }}</p><img alt="{{ fig.title }}" src="data:image/png;base64,{{ fig.img }}">
{% else %}<p class="small">Not shown: {{ fig.missing }}</p>{% endif %}{% endfor %}

{% if vision %}<h2 id="vision">Image classification (UA / RA / TA / MIA-Efficacy / gap / U-LiRA / challenge)</h2>
<div class="wrap"><table id="vision-table"><tr><th>model</th>{% for m in vision %}<th>{{ hdr(m) }}</th>{% endfor %}<th>seconds</th></tr>
{% for row in vision_rows %}<tr class="{{ row.role }}"><td>{{ row.name }}</td>{% for m in vision %}{% set c = row.cells[m] %}
<td title="{{ c.missing }}">{{ c.text }}{% if c.spread %} <span class="ci">{{ c.spread }}</span>{% endif %}</td>{% endfor %}
<td>{{ row.seconds }}</td></tr>{% endfor %}</table></div>{% endif %}

{% if recovery %}<h2 id="attacks">Attacks: forget knowledge before and after, and the share recovered</h2>
<div class="wrap"><table id="attacks-table"><tr><th>model</th><th>attack</th><th>knowledge measure</th><th>before</th><th>after</th>
<th>recovered share</th></tr>{% for a in recovery %}<tr><td>{{ a.name }}</td><td>{{ a.attack }}</td><td>{{ a.metric }}</td>
<td>{{ f(a.before) }}</td><td>{{ f(a.after) }}</td><td>{{ pct(a.recovered_share) }}</td></tr>{% endfor %}</table></div>
<p class="small">Recovered share = (K<sub>attacked</sub> − K<sub>unlearned</sub>) / (K<sub>target</sub> − K<sub>unlearned</sub>):
0% = the attack brings nothing back, 100% = all the knowledge unlearning removed.</p>
{% if n_attack_rows > recovery|length %}<details><summary>Every metric before and after each attack ({{ n_attack_rows }} rows)</summary><div class="wrap"><table><tr><th>model</th><th>attack</th><th>metric</th><th>before</th>
<th>after</th></tr>{% for a in all_attacks %}<tr><td>{{ a.name }}</td><td>{{ a.attack }}</td><td>{{ a.metric }}</td>
<td>{{ f(a.before) }}</td><td>{{ f(a.after) }}</td></tr>{% endfor %}</table></div></details>{% endif %}{% endif %}

<h2 id="all-metrics">All metrics, by family</h2>
<p class="small">Each value with its 95% bootstrap CI over examples{% if seeded %} (per seed){% endif %}.</p>
{% for title, ms, rows in family_tables %}<h3>{{ title }}</h3><div class="wrap"><table class="family">
<tr><th>model</th>{% for m in ms %}<th>{{ hdr(m) }}</th>{% endfor %}</tr>
{% for row in rows %}<tr class="{{ row.role }}"><td>{{ row.name }}</td>{% for m in ms %}{% set c = row.cells[m] %}
<td title="{{ c.missing }}">{{ c.text }}{% if c.spread %}<br><span class="ci">{{ c.spread }}</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table></div>{% endfor %}
{% if skipped %}<h3 id="skipped">Skipped metrics</h3><ul class="small">{% for m, why, names in skipped %}
<li><b>{{ m }}</b> ({{ names|join(", ") }}): {{ why }}</li>{% endfor %}</ul>{% endif %}
{% for title, tab in extra_tables %}<h3>{{ title }}</h3><div class="wrap"><table><tr>{% for c in tab.cols %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in tab.rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table></div>{% endfor %}
{% if r.notes %}<h3>Notes</h3><ul class="small">{% for n in r.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}

<h2 id="provenance">Provenance</h2>
<table id="provenance-table">
<tr><td>command</td><td style="text-align:left"><code>{{ prov.get("command", "not recorded") }}</code></td></tr>
<tr><td>working directory</td><td style="text-align:left">{{ prov.get("cwd", "not recorded") }}</td></tr>
{% for key in ("git", "obliviate_git") %}{% if prov.get(key) %}<tr><td>{{ "git commit" if key == "git" else "obliviate source commit" }}</td>
<td style="text-align:left"><code>{{ prov[key].commit }}</code>{% if prov[key].dirty %} (with uncommitted changes){% endif %}
in {{ prov[key].repository }}</td></tr>{% endif %}{% endfor %}
{% if not prov.get("git") and not prov.get("obliviate_git") %}<tr><td>git commit</td><td style="text-align:left">none
(not run inside a git repository)</td></tr>{% endif %}
<tr><td>seeds</td><td style="text-align:left">{{ seeds|join(", ") if seeds else "not recorded" }}</td></tr>
<tr><td>package versions</td><td style="text-align:left">{% for k, v in r.versions.items() %}{{ k }} {{ v }}{{ "; " if not loop.last }}{% endfor %}</td></tr>
{% for k, v in fingerprints.items() %}<tr><td>{{ k }}</td><td style="text-align:left"><code>{{ v }}</code></td></tr>{% endfor %}
<tr><td>task</td><td style="text-align:left"><code>{{ task_json }}</code></td></tr>
</table>
{% if configs %}<h3>Method and train configs</h3>{% for name, mcfg, tcfg, facts in configs %}<details><summary><b>{{ name }}</b>
{% for k, v in facts.items() %}{{ k }}={{ v }}{{ ", " if not loop.last }}{% endfor %}</summary>
<pre>{{ dump({"method_config": mcfg, "train_config": tcfg}) }}</pre></details>{% endfor %}{% endif %}
<h3 id="citations">Citations</h3><ul class="small" id="citations-list">{% for c in citations %}<li>{{ c.kind }} <b>{{ c.name }}</b>:
{{ c.paper or "(no paper recorded)" }}{% if c.arxiv %} (arXiv:{{ c.arxiv }}){% endif %}{% if c.code %}; code: {{ c.code }}{% endif %}</li>
{% endfor %}</ul>
<p class="small">Written by obliviate; this page is self-contained (inline styles and images, nothing fetched).</p>
</body></html>
"""


def figures(report: Report, headline: list[str]) -> list[dict]:
    """The report's figures, each with its caption or the reason it is not drawn."""
    bar_metrics = [m for m in headline if m != "relearn_time"]
    out = [
        dict(id="tradeoff", title="Forgetting vs utility", img=plots.tradeoff(report),
             caption="One point per model; the oracle (star) is where exact unlearning lands, the target (square) "
                     "where unlearning starts.",
             missing="the report lacks a forgetting and a utility metric for two or more models"),
        dict(id="metric-bars", title="Headline metrics per model, with the oracle's value", img=plots.metric_bars(
            report, bar_metrics), caption="Bars: each model's value with its 95% CI (or ± std over seeds); dashed "
                                          "green line: the oracle's value.",
             missing="no headline metric has a value"),
        dict(id="curves", title="Training curves", img=plots.training_curves(report),
             caption="Forget and retain NLL of the training probe per step (or the logged loss parts); red: the "
                     "step a guard stopped at; green dashes: the best checkpoint kept.",
             missing="the run records in this report hold no per-step losses (audits of saved models, or runs "
                     "from an older obliviate)"),
        dict(id="mia", title="Membership inference: score histograms and ROC", img=plots.mia(report),
             caption="Loss-MIA score (mean answer NLL) on the forget set (members before unlearning) and the held-out "
                     "set (never trained on). After exact unlearning the two overlap, as for the oracle.",
             missing="the report has no per-example MIA scores (a forget and a held-out set are needed; image "
                     "benchmarks report MIA-Efficacy in the table)"),
    ]
    if report.kind == "run":  # a run card has training curves only; the rest comes with an audit
        return [f for f in out if f["id"] == "curves"]
    if content.recovery_rows(report):
        out.append(dict(id="attack-bars", title="Attacks: before and after", img=plots.attacks(report),
                        caption="Each model's forget knowledge before and after every attack; the label on each bar "
                                "is the share of the removed knowledge the attack brings back.", missing=""))
    return out


def _extra_tables(report: Report) -> list[tuple[str, dict]]:
    """Tables of row dicts the benches add (MUSE's scalability / sustainability curves)."""
    out = []
    for key, rows in report.tables.items():
        if key in ("attacks", "seed_summary", "mia_scores") or not isinstance(rows, list) or not rows:
            continue
        if not all(isinstance(r, dict) for r in rows):
            continue
        cols = list(dict.fromkeys(k for r in rows for k in r))
        cell = [[fmt_value(r.get(c)) if isinstance(r.get(c), float) or r.get(c) is None else str(r.get(c))
                 for c in cols] for r in rows]
        out.append((key.replace("_", " ").capitalize(), {"cols": cols, "rows": cell}))
    return out


def _over_seeds(report: Report) -> bool:
    """Whether the report's values are means over several seeds (the domains / multimodal benches)."""
    return any(content.seed_spread(r) is not None for e in report.models.values() for r in e.metrics.values())


def _pct(v: float | None) -> str:
    return "—" if not isinstance(v, (int, float)) or v != v else f"{v:.0%}"


def render_html(report: Report, rules: VerdictRules | None = None) -> str:
    """The report as one self-contained HTML page."""
    rules = rules or VerdictRules()
    verdicts = judge(report, rules)
    headline = content.headline_metrics(report)
    task = report.task
    task_name = str(task.get("name") or "/".join(str(task[k]) for k in ("benchmark", "scenario") if k in task)
                    or "report")
    sizes = [f"{task[k]} {k[2:] if k.startswith('n_') else k.replace('_size', '')}"
             for k in ("n_forget", "n_retain", "n_holdout", "forget_size", "retain_size", "test_size") if k in task]
    rules_seen = list(dict.fromkeys((c.name, c.rule) for v in verdicts for c in v.criteria))
    seeded = isinstance(report.tables.get("seed_summary"), dict) and bool(report.tables.get("seed_summary"))
    vision = [m for m in content.VISION_HEADLINE if any(m in e.metrics for e in report.models.values())]
    attack_rows = [dict(r, name=content.row_name(r)) for r in report.tables.get("attacks") or [] if isinstance(r, dict)]
    from obliviate.report.table import scope_note

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals.update(f=fmt_value, pct=_pct, hdr=lambda m: content.header(report, m),
                       dump=lambda o: json.dumps(o, indent=1, default=str, sort_keys=True))
    return env.from_string(TEMPLATE).render(
        r=report, css=CSS, task_name=task_name,
        task_line=f"Task {task_name}: {', '.join(sizes)} examples." if sizes else f"Task {task_name}.",
        verdicts=verdicts, rules=rules_seen, thresholds={k: v for k, v in vars(rules).items()},
        roles=", ".join(f"{n} ({e.role})" for n, e in report.models.items()) or "no models",
        has_oracle=bool(report.reference) or any(e.role == "oracle" for e in report.models.values()),
        headline=headline, headline_rows=content.metric_rows(report, headline),
        spread_note=("Values are means over seeds ± their std." if seeded or vision or _over_seeds(report) else
                     "Brackets: 95% bootstrap confidence intervals over examples."),
        scope=scope_note(report), figures=figures(report, headline),
        vision=vision, vision_rows=content.metric_rows(report, vision) if vision else [],
        recovery=[dict(r, name=content.row_name(r)) for r in content.recovery_rows(report)],
        n_attack_rows=len(attack_rows), all_attacks=attack_rows, seeded=seeded,
        family_tables=[(t, ms, content.per_model_rows(report, ms)) for t, ms in content.families(report)],
        skipped=content.skipped(report), extra_tables=_extra_tables(report),
        prov=report.provenance or {}, seeds=content.seeds(report), fingerprints=content.fingerprints(report),
        task_json=json.dumps({k: v for k, v in task.items() if not isinstance(v, (list, dict)) or len(str(v)) < 300},
                             default=str),
        configs=content.run_configs(report), citations=content.citations(report))


def write_html(report: Report, path: str | os.PathLike, rules: VerdictRules | None = None) -> Path:
    """Render and write atomically (temp file + rename)."""
    from obliviate.report.schema import write_text_atomic

    return write_text_atomic(render_html(report, rules), path)
