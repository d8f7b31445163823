"""The verdict a report opens with: per unlearned model, which criteria pass, each with its rule.

Each criterion is judged against the retain-only oracle or the target (the model before
unlearning), never in the abstract. A criterion whose inputs are missing (no oracle, no target, no
attack run, a metric skipped) is "not judged", with the reason, never silently passed:

- **forgetting**: language models: forget quality (the KS-test p-value of the forget truth ratios
  against the oracle's; TOFU, arXiv 2401.06121) ``>= forget_quality_min``; image classifiers:
  unlearning accuracy within ``ua_gap_max`` points of the oracle's (Jia et al., arXiv 2304.04934);
  domain unlearning: For (error on the forget domains) at least the oracle's minus ``for_gap_max``
  points (ADU, arXiv 2510.08132, wants the forget domains misclassified; the oracle never saw them);
  image+text records: the forget set's macro AUC within ``auc_gap_max`` of the retrained model's
  (Forget-MI, arXiv 2506.23145).
- **utility**: model utility (text), test accuracy (images), KnowMem on the retain set (MUSE),
  Mem (accuracy on the kept domains) or the test set's macro AUC (image+text records) at least
  ``1 - utility_drop_max`` of the target's.
- **privacy**: PrivLeak (OpenUnlearning; MUSE's for MUSE) within ``±privleak_max``; images:
  MIA-Efficacy within ``mia_gap_max`` points of the oracle's; image+text records: the share of forget
  records the SVC attack calls member within ``mia_gap_max`` points of the retrained model's, for
  every attack feature reported. Domain unlearning removes a domain, not records: no membership
  test applies, and the criterion says so.
- **robustness**: no attack brings back more than ``recovery_max`` of the removed forget knowledge
  ((K_attacked - K_unlearned) / (K_target - K_unlearned), the attacks table).
- **fluency** (language models): the run was not stopped by a guard, and at least ``fluency_min`` of
  the forget and retain generations are fluent (`obliviate.metrics.fluency`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from obliviate.report.content import kind_of, row_name
from obliviate.report.schema import Report

Status = Literal["pass", "fail", "not judged"]


@dataclass(frozen=True)
class VerdictRules:
    """Thresholds of the verdict (``obliviate report --rule KEY=VALUE``)."""

    # TOFU's reading of the KS test: p >= 0.05 means the forget truth ratios cannot be told from the
    # oracle's at the 5% level (arXiv 2401.06121, Sec. 2.5).
    forget_quality_min: float = 0.05
    # Utility may drop by at most 10% of the target's (a common bar in TOFU/MUSE comparisons).
    utility_drop_max: float = 0.10
    # |PrivLeak| <= 10 (percent of the oracle's AUC gap): MUSE calls values near 0 "no leak" (arXiv 2407.06460).
    privleak_max: float = 10.0
    # An attack may bring back at most a quarter of the removed knowledge.
    recovery_max: float = 0.25
    # At least 80% of the generations must not be flagged as repetition / gibberish.
    fluency_min: float = 0.80
    # Image classifiers: UA and MIA-Efficacy within 5 percentage points of the exact retrain.
    ua_gap_max: float = 5.0
    mia_gap_max: float = 5.0
    # Domain unlearning: the forget domains' error rate may fall short of the oracle's by 5 points.
    for_gap_max: float = 5.0
    # Image+text records: the forget set's macro AUC within 0.05 of the retrained model's.
    auc_gap_max: float = 0.05

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None) -> "VerdictRules":
        """Rules with ``overrides`` applied; an unknown key or a non-number is an error naming the rules."""
        from obliviate.config import ConfigError

        names = [f.name for f in fields(cls)]
        out = {}
        for k, v in (overrides or {}).items():
            if k not in names:
                raise ConfigError(f"--rule {k}: no such verdict rule; the rules are {', '.join(names)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"--rule {k}={v!r}: expected a number >= 0")
            out[k] = float(v)
        return cls(**out)


@dataclass
class Criterion:
    """One judged criterion: its name, the rule as stated on the page, the outcome and the evidence."""

    name: str
    rule: str
    status: Status
    evidence: str = ""


@dataclass
class ModelVerdict:
    model: str
    criteria: list[Criterion] = field(default_factory=list)

    @property
    def status(self) -> str:
        """"fail" if any criterion fails; "pass" if all pass; else "incomplete" (some not judged)."""
        s = [c.status for c in self.criteria]
        if "fail" in s:
            return "fail"
        return "pass" if s and all(x == "pass" for x in s) else "incomplete"

    def summary(self) -> str:
        n = {k: sum(c.status == k for c in self.criteria) for k in ("pass", "fail", "not judged")}
        return f"{n['pass']} of {len(self.criteria)} pass, {n['fail']} fail, {n['not judged']} not judged"


def _value(report: Report, model: str | None, metric: str) -> float | None:
    if model is None or model not in report.models:
        return None
    r = report.models[model].metrics.get(metric)
    v = None if r is None else r.get("value")
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _why_missing(report: Report, model: str, metric: str) -> str:
    reason = report.models[model].skipped.get(metric)
    return f"{metric} was skipped: {reason}" if reason else f"{metric} was not computed in this report"


def _role(report: Report, role: str) -> str | None:
    return next((n for n, e in report.models.items() if e.role == role), None)


def _forgetting(report: Report, model: str, rules: VerdictRules, oracle: str | None) -> Criterion:
    kind = kind_of(report)
    if kind == "domains":
        rule = f"For >= For(oracle) - {rules.for_gap_max:g} points (the forget domains misclassified at least as " \
               "often as by the model that never saw them)"
        if oracle is None:
            return Criterion("forgetting", rule, "not judged", "no oracle in this report to compare domain_for with")
        v, o = _value(report, model, "domain_for"), _value(report, oracle, "domain_for")
        if v is None or o is None:
            return Criterion("forgetting", rule, "not judged",
                             _why_missing(report, model if v is None else oracle, "domain_for"))
        return Criterion("forgetting", rule, "pass" if v >= o - rules.for_gap_max else "fail",
                         f"For {v:.3g} vs oracle {o:.3g} ({v - o:+.3g})")
    if kind == "multimodal":
        rule = f"|forget-set macro AUC - retrained model's| <= {rules.auc_gap_max:g}"
        return _gap(report, model, "forget_auc", oracle, rules.auc_gap_max, "forgetting", rule)
    if kind == "vision":
        rule = f"|UA - UA(oracle)| <= {rules.ua_gap_max:g} points"
        return _gap(report, model, "unlearning_accuracy", oracle, rules.ua_gap_max, "forgetting", rule)
    rule = f"forget quality (KS p-value vs the oracle) >= {rules.forget_quality_min:g}"
    v = _value(report, model, "forget_quality")
    if v is None:
        if oracle is None and report.reference is None:
            return Criterion("forgetting", rule, "not judged", "no retain-only oracle in this report: forget quality "
                             "compares the model's forget truth ratios with the oracle's (audit with --reference)")
        return Criterion("forgetting", rule, "not judged", _why_missing(report, model, "forget_quality"))
    return Criterion("forgetting", rule, "pass" if v >= rules.forget_quality_min else "fail",
                     f"forget quality {v:.3g}")


def _gap(report: Report, model: str, metric: str, oracle: str | None, max_gap: float, name: str,
         rule: str) -> Criterion:
    if oracle is None:
        return Criterion(name, rule, "not judged", f"no oracle in this report to compare {metric} with")
    v, o = _value(report, model, metric), _value(report, oracle, metric)
    if v is None or o is None:
        return Criterion(name, rule, "not judged", _why_missing(report, model if v is None else oracle, metric))
    return Criterion(name, rule, "pass" if abs(v - o) <= max_gap else "fail",
                     f"{metric} {v:.3g} vs oracle {o:.3g} (gap {abs(v - o):.3g})")


def _utility(report: Report, model: str, rules: VerdictRules, target: str | None) -> Criterion:
    metric = next((m for m in ("model_utility", "test_accuracy", "knowmem_retain", "domain_mem", "test_auc")
                   if any(m in e.metrics for e in report.models.values())), "model_utility")
    rule = f"{metric} >= {1 - rules.utility_drop_max:.0%} of the target's"
    if target is None:
        return Criterion("utility", rule, "not judged", "no target (the model before unlearning) in this report; "
                         "audit it too and name it with --target")
    v, t = _value(report, model, metric), _value(report, target, metric)
    if v is None or t is None:
        return Criterion("utility", rule, "not judged", _why_missing(report, model if v is None else target, metric))
    ok = v >= (1 - rules.utility_drop_max) * t
    return Criterion("utility", rule, "pass" if ok else "fail",
                     f"{metric} {v:.3g} vs target {t:.3g} ({(v / t - 1) * 100 if t else 0:+.1f}%)")


def _privacy(report: Report, model: str, rules: VerdictRules, oracle: str | None) -> Criterion:
    kind = kind_of(report)
    if kind == "domains":
        return Criterion("privacy", "membership inference on the forgotten records", "not judged",
                         "domain unlearning removes a visual domain, not training records: the domains benchmark "
                         "runs no membership attack (Mem, For and the per-domain accuracies are the evidence)")
    if kind == "multimodal":
        rule = f"|SVC member share on D_f - retrained model's| <= {rules.mia_gap_max:g} points, every feature"
        feats = sorted({m for e in report.models.values() for m in e.metrics if m.startswith("mia_svc")})
        if oracle is None:
            return Criterion("privacy", rule, "not judged", "no retrained model in this report to compare the SVC "
                             "attack with")
        if not feats:
            return Criterion("privacy", rule, "not judged", "no SVC membership result in this report")
        gaps = []
        for m in feats:
            v, o = _value(report, model, m), _value(report, oracle, m)
            if v is None or o is None:
                return Criterion("privacy", rule, "not judged", _why_missing(report, model if v is None else oracle, m))
            gaps.append((abs(v - o) * 100, m, v, o))
        worst = max(gaps)
        return Criterion("privacy", rule, "pass" if worst[0] <= rules.mia_gap_max else "fail",
                         f"worst: {worst[1]} {worst[2]:.3g} vs retrained {worst[3]:.3g} ({worst[0]:.3g} points)")
    if kind == "vision":
        rule = f"|MIA-Efficacy - oracle's| <= {rules.mia_gap_max:g} points"
        return _gap(report, model, "mia_efficacy", oracle, rules.mia_gap_max, "privacy", rule)
    metric = "privleak" if any("privleak" in e.metrics for e in report.models.values()) else "privleak_muse"
    rule = f"|{metric}| <= {rules.privleak_max:g}"
    v = _value(report, model, metric)
    if v is None:
        if oracle is None and report.reference is None:
            return Criterion("privacy", rule, "not judged", f"no retain-only oracle in this report: {metric} is the "
                             "MIA AUC gap to the oracle's (audit with --reference)")
        return Criterion("privacy", rule, "not judged", _why_missing(report, model, metric))
    return Criterion("privacy", rule, "pass" if abs(v) <= rules.privleak_max else "fail", f"{metric} {v:+.3g}")


def _robustness(report: Report, model: str, rules: VerdictRules) -> Criterion:
    rule = f"no attack recovers more than {rules.recovery_max:.0%} of the removed forget knowledge"
    rows = [r for r in report.tables.get("attacks", []) or [] if isinstance(r, dict) and row_name(r) == model]
    if not rows:
        bench = report.task.get("benchmark")
        if kind_of(report) in ("domains", "multimodal", "vision"):
            return Criterion("robustness", rule, "not judged", f"the {bench or 'image'} benchmark runs no recovery "
                             "attack (the attacks act on language models)")
        return Criterion("robustness", rule, "not judged", "no recovery attack was run on this model "
                         "(audit/bench with --attacks quantize_int4 relearn ...)")
    shares = [(r["attack"], r["metric"], r["recovered_share"]) for r in rows
              if isinstance(r.get("recovered_share"), (int, float)) and math.isfinite(r["recovered_share"])]
    if not shares:
        return Criterion("robustness", rule, "not judged", "the attacks ran, but no recovered share could be computed "
                         "(no target in the report, or unlearning removed nothing to recover)")
    attack, metric, worst = max(shares, key=lambda x: x[2])
    return Criterion("robustness", rule, "pass" if worst <= rules.recovery_max else "fail",
                     f"worst: {attack} brings back {worst:.0%} of {metric}")


def _fluency(report: Report, model: str, rules: VerdictRules) -> Criterion:
    rule = f"no guard stopped the run, and >= {rules.fluency_min:.0%} of forget and retain generations are fluent"
    run = report.models[model].run or {}
    stopped = str(run.get("stopped") or "completed")
    if stopped != "completed" and not stopped.startswith("collapse warning"):
        return Criterion("fluency", rule, "fail", f"a guard stopped the run: {stopped}")
    vals = {m: _value(report, model, m) for m in ("fluency_forget", "fluency_retain")}
    have = {m: v for m, v in vals.items() if v is not None}
    if not have:
        return Criterion("fluency", rule, "not judged", _why_missing(report, model, "fluency_forget"))
    low = {m: v for m, v in have.items() if v < rules.fluency_min}
    ev = ", ".join(f"{m} {v:.0%}" for m, v in have.items())
    if stopped.startswith("collapse warning"):
        ev += f"; {stopped}"
    return Criterion("fluency", rule, "fail" if low else "pass", ev)


def judge(report: Report, rules: VerdictRules | None = None) -> list[ModelVerdict]:
    """One `ModelVerdict` per unlearned model (role "unlearned"; the target, oracle and attacked
    copies are the yardsticks, not judged)."""
    rules = rules or VerdictRules()
    if report.kind == "run":  # a run card: training only, nothing measured against an oracle yet
        how = report.task.get("audit_command")
        return [ModelVerdict(name, [Criterion(
            "audit", "forgetting, utility, privacy, robustness and fluency are judged by an audit against the "
            "retain-only oracle and the target", "not judged",
            "this card records the unlearning run only" + (f"; audit it with: {how}" if how else ""))])
            for name, e in report.models.items() if e.role == "unlearned"]
    oracle = report.reference if report.reference in report.models else _role(report, "oracle")
    target = _role(report, "target")
    out = []
    for name, e in report.models.items():
        if e.role != "unlearned":
            continue
        if not e.metrics:
            out.append(ModelVerdict(name, [Criterion("run", "the method ran", "fail",
                                                     "; ".join(f"{k}: {v}" for k, v in e.skipped.items()))]))
            continue
        criteria = [_forgetting(report, name, rules, oracle), _utility(report, name, rules, target),
                    _privacy(report, name, rules, oracle), _robustness(report, name, rules)]
        if kind_of(report) == "text":  # generations exist for language models only
            criteria.append(_fluency(report, name, rules))
        out.append(ModelVerdict(name, criteria))
    return out


def verdict_dict(report: Report, rules: VerdictRules | None = None) -> dict[str, Any]:
    """The verdict as JSON data: the rules' thresholds and, per model, its status and criteria."""
    rules = rules or VerdictRules()
    return {"rules": asdict(rules),
            "models": {v.model: {"status": v.status, "summary": v.summary(),
                                 "criteria": [asdict(c) for c in v.criteria]} for v in judge(report, rules)}}
