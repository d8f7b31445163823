"""The verdict: each criterion against its stated rule, thresholds configurable, and "not judged"
(with the reason) where the report lacks what a rule needs."""

from __future__ import annotations

import pytest

from obliviate.config import ConfigError
from obliviate.report.schema import Report
from obliviate.report.verdict import VerdictRules, judge, verdict_dict


def _by_model(report, rules=None):
    return {v.model: {c.name: c for c in v.criteria} for v in judge(report, rules)}


def test_lm_criteria(lm_report_dict):
    v = _by_model(Report.from_dict(lm_report_dict))
    assert set(v) == {"npo", "ga"}  # target, oracle and attacked copies are yardsticks, not judged
    npo, ga = v["npo"], v["ga"]
    assert npo["forgetting"].status == "pass" and ga["forgetting"].status == "fail"  # 0.2 >= 0.05 > 0.01
    assert npo["utility"].status == "pass"  # 0.70 >= 0.9 * 0.72 = 0.648
    assert ga["utility"].status == "fail"  # 0.50 < 0.648
    assert npo["privacy"].status == "pass" and ga["privacy"].status == "fail"  # |4| <= 10 < |-60|
    assert npo["robustness"].status == "pass" and "20%" in npo["robustness"].evidence  # 0.2 <= 0.25
    assert ga["robustness"].status == "fail" and "75%" in ga["robustness"].evidence
    assert npo["fluency"].status == "pass" and ga["fluency"].status == "fail"  # 0.40 < 0.80
    statuses = {m.model: m.status for m in judge(Report.from_dict(lm_report_dict))}
    assert statuses == {"npo": "pass", "ga": "fail"}


def test_thresholds_change_the_outcome(lm_report_dict):
    report = Report.from_dict(lm_report_dict)
    strict = VerdictRules.from_overrides({"utility_drop_max": 0.01, "recovery_max": 0.1, "forget_quality_min": 0.5})
    npo = _by_model(report, strict)["npo"]
    assert npo["utility"].status == "fail"  # 0.70 < 0.99 * 0.72
    assert npo["robustness"].status == "fail"  # 0.2 > 0.1
    assert npo["forgetting"].status == "fail" and ">= 0.5" in npo["forgetting"].rule
    assert verdict_dict(report, strict)["rules"]["recovery_max"] == 0.1


def test_guard_stop_fails_fluency(lm_report_dict):
    lm_report_dict["models"]["npo"]["run"]["stopped"] = "loss became nan at step 3"
    c = _by_model(Report.from_dict(lm_report_dict))["npo"]["fluency"]
    assert c.status == "fail" and "nan" in c.evidence


def test_without_oracle_says_what_could_not_be_judged(lm_report_dict):
    del lm_report_dict["models"]["oracle"]
    lm_report_dict["reference"] = None
    for m in lm_report_dict["models"].values():
        for k in ("forget_quality", "privleak"):
            m["metrics"].pop(k)
            m["skipped"][k] = "forget_quality needs the retain-only oracle; pass reference="
    v = judge(Report.from_dict(lm_report_dict))
    npo = {c.name: c for c in v[0].criteria}
    assert npo["forgetting"].status == "not judged" and "oracle" in npo["forgetting"].evidence
    assert npo["privacy"].status == "not judged"
    assert v[0].status == "incomplete"


def test_without_attacks_or_target(lm_report_dict):
    lm_report_dict["tables"]["attacks"] = []
    lm_report_dict["models"]["target"]["role"] = "unlearned"
    v = _by_model(Report.from_dict(lm_report_dict))
    assert v["npo"]["robustness"].status == "not judged" and "no recovery attack" in v["npo"]["robustness"].evidence
    assert v["npo"]["utility"].status == "not judged" and "no target" in v["npo"]["utility"].evidence


def test_vision_criteria(vision_report_dict):
    v = _by_model(Report.from_dict(vision_report_dict))["finetune"]
    assert "fluency" not in v
    assert v["forgetting"].status == "pass"  # |2 - 4| <= 5 points
    assert v["privacy"].status == "fail"  # |30 - 20| > 5 points
    assert v["utility"].status == "pass" and "test_accuracy" in v["utility"].rule  # 94 >= 0.9 * 96


def test_domain_unlearning_criteria(domains_report_dict):
    v = _by_model(Report.from_dict(domains_report_dict))
    adu, base = v["adu"], v["adu_baseline"]
    assert "fluency" not in adu
    assert adu["forgetting"].status == "pass" and "For 80 vs oracle 60" in adu["forgetting"].evidence  # 80 >= 60 - 5
    assert base["forgetting"].status == "fail"  # 50 < 60 - 5
    assert adu["utility"].status == "pass" and "domain_mem" in adu["utility"].rule  # 84 >= 0.9 * 90 = 81
    assert base["utility"].status == "fail"  # 70 < 81
    assert adu["privacy"].status == "not judged" and "no membership attack" in adu["privacy"].evidence
    assert adu["robustness"].status == "not judged" and "domains benchmark runs no recovery" in \
        adu["robustness"].evidence
    # the margin is a rule: at for_gap_max 25 the baseline's 50 >= 60 - 25 passes
    assert _by_model(Report.from_dict(domains_report_dict), VerdictRules(for_gap_max=25))["adu_baseline"][
        "forgetting"].status == "pass"


def test_multimodal_criteria(multimodal_report_dict):
    v = _by_model(Report.from_dict(multimodal_report_dict))["forget_mi"]
    assert "fluency" not in v
    assert v["forgetting"].status == "pass" and "forget_auc" in v["forgetting"].evidence  # |0.90 - 0.88| <= 0.05
    assert v["utility"].status == "pass" and "test_auc" in v["utility"].rule  # 0.87 >= 0.9 * 0.90
    assert v["privacy"].status == "fail" and "mia_svc_entropy" in v["privacy"].evidence  # 100 * 0.10 > 5 points
    assert "10 points" in v["privacy"].evidence
    assert _by_model(Report.from_dict(multimodal_report_dict), VerdictRules(mia_gap_max=10.5))["forget_mi"][
        "privacy"].status == "pass"
    del multimodal_report_dict["models"]["retrain"]
    multimodal_report_dict["reference"] = None
    v = _by_model(Report.from_dict(multimodal_report_dict))["forget_mi"]
    assert v["forgetting"].status == v["privacy"].status == "not judged"


@pytest.mark.parametrize("over, msg", [({"nope": 1}, "no such verdict rule"), ({"privleak_max": -1}, ">= 0"),
                                       ({"fluency_min": "high"}, "expected a number")])
def test_bad_rules(over, msg):
    with pytest.raises(ConfigError, match=msg):
        VerdictRules.from_overrides(over)
