"""Hand-made report JSONs (a language-model demo with an oracle, attacks, MIA scores and run logs;
an image-classification bench over seeds; an audit without an oracle) for the report tests."""

from __future__ import annotations

import copy
import json

import pytest


def _m(value, direction, ci=None, **extra):
    return {"name": "", "value": value, "direction": direction, "n": 20, "ci": ci, "compared_to": None,
            "details": {}, **extra}


def _metrics(fq, mu, rouge, privleak, prob, fluency):
    return {"forget_quality": _m(fq, "higher"), "model_utility": _m(mu, "higher"),
            "forget_rouge": _m(rouge, "lower", [rouge - 0.1, rouge + 0.1]), "privleak": _m(privleak, "closer_to_zero"),
            "forget_prob": _m(prob, "lower", [prob - 0.05, prob + 0.05]),
            "retain_rouge": _m(0.8, "higher", [0.7, 0.9]), "mia_loss": _m(0.5, "closer_to_reference", [0.4, 0.6]),
            "fluency_forget": _m(fluency, "higher", [fluency - 0.05, min(1.0, fluency + 0.05)]),
            "fluency_retain": _m(0.99, "higher", [0.97, 1.0])}


def _run(method, stopped="completed"):
    return {"seconds": 3.5, "steps": 4, "stopped": stopped, "method": method, "best_step": None,
            "method_config": {"beta": 0.1}, "train_config": {"lr": 1e-5, "seed": 0},
            "history": [{"step": s, "loss": 2.0 - 0.1 * s, "forget_nll": 1.0 + 0.5 * s} for s in range(1, 5)],
            "probes": [{"step": s, "forget_nll": 1.0 + 0.5 * s, "retain_nll": 1.0 + 0.01 * s} for s in range(0, 5, 2)]}


LM_REPORT = {
    "schema_version": 2, "kind": "demo", "created": "2025-01-01T00:00:00+00:00",
    "versions": {"python": "3.11", "obliviate": "0.1", "torch": "2.3"},
    "task": {"name": "fictional_authors/forget10", "n_forget": 20, "n_retain": 180, "n_holdout": 60,
             "recipe": "abc123", "n_scored": {"forget": 20, "holdout": 60}, "eval_limits": {}, "max_new_tokens": 48},
    "reference": "oracle",
    "models": {
        "target": {"name": "target", "role": "target", "run": None, "skipped": {},
                   "metrics": _metrics(0.001, 0.72, 0.78, -100.0, 0.9, 1.0)},
        "oracle": {"name": "oracle", "role": "oracle", "run": None, "skipped": {},
                   "metrics": _metrics(1.0, 0.73, 0.45, 0.0, 0.3, 1.0)},
        "npo": {"name": "npo", "role": "unlearned", "run": _run("npo"), "skipped": {},
                "metrics": _metrics(0.2, 0.70, 0.40, 4.0, 0.4, 0.95)},
        "ga": {"name": "ga", "role": "unlearned", "run": _run("ga"), "skipped": {"ulira": "no shadows were trained"},
               "metrics": _metrics(0.01, 0.50, 0.10, -60.0, 0.1, 0.40)},
        "npo@quantize_int4": {"name": "npo@quantize_int4", "role": "attacked", "skipped": {},
                              "run": {"attack": "quantize_int4", "of": "npo"},
                              "metrics": _metrics(0.1, 0.69, 0.5, 2.0, 0.5, 0.95)},
    },
    "tables": {
        # recovered share = (after - before) / (target - before): npo (0.5-0.4)/(0.9-0.4) = 0.2,
        # ga (0.7-0.1)/(0.9-0.1) = 0.75
        "attacks": [
            {"model": "npo", "attack": "quantize_int4", "metric": "forget_prob", "before": 0.4, "after": 0.5,
             "recovered_share": 0.2},
            {"model": "npo", "attack": "quantize_int4", "metric": "retain_rouge", "before": 0.8, "after": 0.79},
            {"model": "ga", "attack": "quantize_int4", "metric": "forget_prob", "before": 0.1, "after": 0.7,
             "recovered_share": 0.75},
        ],
        "mia_scores": {name: {"score": "mean answer NLL", "member": [1.0 + 0.1 * i + shift for i in range(20)],
                              "nonmember": [2.0 + 0.05 * i for i in range(30)]}
                       for name, shift in (("target", 0.0), ("oracle", 1.0), ("npo", 0.8), ("ga", 2.0))},
    },
    "citations": [{"kind": "metric", "name": "forget_quality", "paper": "TOFU: A Task of Fictitious Unlearning for LLMs",
                   "arxiv": "2401.06121", "code": "", "modalities": ["text"], "needs": [], "summary": ""}],
    "notes": [],
    "provenance": {"command": "obliviate demo --quick", "cwd": "~/project",
                   "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False, "repository": "/r"},
                   "fingerprints": {"data forget": "aaaa1111 (20 records)", "model npo": "bbbb2222"}},
}


def _vm(value, direction, std, per_seed):
    return {"name": "", "value": value, "direction": direction, "n": len(per_seed), "ci": None, "compared_to": None,
            "details": {}, "std": std, "per_seed": per_seed, "n_examples": 100}


VISION_REPORT = {
    "schema_version": 2, "kind": "bench", "created": "2025-01-01T00:00:00+00:00", "versions": {"python": "3.11"},
    "task": {"benchmark": "digits", "scenario": "random10", "arch": "mlp", "seeds": [0, 1], "forget_size": 100,
             "retain_size": 900, "test_size": 300, "recipe": "r1"},
    "reference": "retrain",
    "models": {
        "original": {"name": "original", "role": "target", "skipped": {}, "run": {"seconds": 0.1},
                     "metrics": {"unlearning_accuracy": _vm(0.0, "closer_to_reference", 0.0, [0.0, 0.0]),
                                 "test_accuracy": _vm(96.0, "higher", 0.5, [95.5, 96.5]),
                                 "mia_efficacy": _vm(10.0, "closer_to_reference", 1.0, [9.0, 11.0])}},
        "retrain": {"name": "retrain", "role": "oracle", "skipped": {}, "run": {"seconds": 2.0},
                    "metrics": {"unlearning_accuracy": _vm(4.0, "closer_to_reference", 1.0, [3.0, 5.0]),
                                "test_accuracy": _vm(95.0, "higher", 0.5, [94.5, 95.5]),
                                "mia_efficacy": _vm(20.0, "closer_to_reference", 2.0, [18.0, 22.0])}},
        "finetune": {"name": "finetune", "role": "unlearned", "skipped": {},
                     "run": {"seconds": 1.0, "method": "finetune", "config": {"epochs": 2}},
                     "metrics": {"unlearning_accuracy": _vm(2.0, "closer_to_reference", 1.0, [1.0, 3.0]),
                                 "test_accuracy": _vm(94.0, "higher", 0.5, [93.5, 94.5]),
                                 "mia_efficacy": _vm(30.0, "closer_to_reference", 2.0, [28.0, 32.0])}},
    },
    "tables": {}, "citations": [], "notes": ["Accuracies in percent."],
    "provenance": {"command": "obliviate bench --benchmark digits", "cwd": "~/project"},
}


def _domains_metrics(h, mem, fo, accs, gap):
    out = {"domain_h": _vm(h, "higher", 1.0, [h - 1, h + 1]), "domain_mem": _vm(mem, "higher", 1.0, [mem - 1, mem + 1]),
           "domain_for": _vm(fo, "higher", 2.0, [fo - 2, fo + 2]),
           "domain_gap_to_oracle": _vm(gap, "closer_to_zero", 0.5, [gap - 0.5, gap + 0.5])}
    out.update({f"acc_{d}": _vm(a, "closer_to_reference", 1.0, [a - 1, a + 1]) for d, a in accs.items()})
    return out


# The domains bench (ADU): For is the error on the forget domain (edge), Mem the accuracy on the kept ones.
DOMAINS_REPORT = {
    "schema_version": 2, "kind": "bench", "created": "2025-01-01T00:00:00+00:00", "versions": {"python": "3.11"},
    "task": {"benchmark": "domains", "split": "forget1", "seeds": [0, 1], "shots": 8, "forget_domains": ["edge"],
             "domains": ["original", "inverted", "edge", "noisy"], "train_size": 80, "test_size": 400, "recipe": "d1"},
    "reference": "oracle",
    "models": {
        "original": {"name": "original", "role": "target", "skipped": {}, "run": None,
                     "metrics": _domains_metrics(40.0, 90.0, 25.0, {"original": 92, "inverted": 88, "edge": 75,
                                                                    "noisy": 90}, 20.0)},
        "oracle": {"name": "oracle", "role": "oracle", "skipped": {}, "run": None,
                   "metrics": _domains_metrics(70.0, 85.0, 60.0, {"original": 88, "inverted": 84, "edge": 40,
                                                                  "noisy": 83}, 0.0)},
        # For 80 >= 60 - 5 passes; Mem 84 >= 0.9 * 90 = 81 passes
        "adu": {"name": "adu", "role": "unlearned", "skipped": {},
                "run": {"seconds": 120.0, "method": "adu", "config": {"gamma": 1.0}},
                "metrics": _domains_metrics(82.0, 84.0, 80.0, {"original": 86, "inverted": 83, "edge": 20,
                                                               "noisy": 83}, 8.0)},
        # For 50 < 60 - 5 fails; Mem 70 < 81 fails
        "adu_baseline": {"name": "adu_baseline", "role": "unlearned", "skipped": {},
                         "run": {"seconds": 110.0, "method": "adu_baseline", "config": {}},
                         "metrics": _domains_metrics(58.0, 70.0, 50.0, {"original": 72, "inverted": 68, "edge": 50,
                                                                        "noisy": 70}, 12.0)},
    },
    "tables": {}, "citations": [], "notes": ["Mem, For, H in percent."],
    "provenance": {"command": "obliviate bench --benchmark domains", "cwd": "~/project"},
}


def _mm_metrics(f_auc, f_f1, t_auc, t_f1, mia):
    return {"forget_auc": _vm(f_auc, "closer_to_reference", 0.01, [f_auc - 0.01, f_auc + 0.01]),
            "forget_f1": _vm(f_f1, "closer_to_reference", 0.02, [f_f1 - 0.02, f_f1 + 0.02]),
            "test_auc": _vm(t_auc, "closer_to_reference", 0.01, [t_auc - 0.01, t_auc + 0.01]),
            "test_f1": _vm(t_f1, "closer_to_reference", 0.02, [t_f1 - 0.02, t_f1 + 0.02]),
            **{f"mia_svc_{k}": _vm(v, "lower", 0.02, [v - 0.02, v + 0.02]) for k, v in mia.items()}}


# The multimodal bench (Forget-MI): AUCs in [0, 1]; mia_svc_* the share of forget records called member.
MULTIMODAL_REPORT = {
    "schema_version": 2, "kind": "bench", "created": "2025-01-01T00:00:00+00:00", "versions": {"python": "3.11"},
    "task": {"benchmark": "multimodal", "split": "forget10", "seeds": [0, 1], "forget_size": 60, "retain_size": 540,
             "test_size": 200, "forget_patients": 6, "train_patients": 60, "recipe": "m1"},
    "reference": "retrain",
    "models": {
        "original": {"name": "original", "role": "target", "skipped": {}, "run": None,
                     "metrics": _mm_metrics(1.0, 0.99, 0.90, 0.80, {"entropy": 0.90, "loss": 0.92})},
        "retrain": {"name": "retrain", "role": "oracle", "skipped": {}, "run": None,
                    "metrics": _mm_metrics(0.88, 0.70, 0.89, 0.79, {"entropy": 0.40, "loss": 0.42})},
        # |0.90 - 0.88| <= 0.05 passes; 0.87 >= 0.9 * 0.90 passes; worst MIA gap 100 * |0.50 - 0.40| = 10 > 5 fails
        "forget_mi": {"name": "forget_mi", "role": "unlearned", "skipped": {},
                      "run": {"seconds": 5.0, "method": "forget_mi", "config": {"mode": "push_from_noisy"}},
                      "metrics": _mm_metrics(0.90, 0.72, 0.87, 0.77, {"entropy": 0.50, "loss": 0.44})},
    },
    "tables": {}, "citations": [], "notes": [],
    "provenance": {"command": "obliviate bench --benchmark multimodal", "cwd": "~/project"},
}


@pytest.fixture
def domains_report_dict() -> dict:
    return copy.deepcopy(DOMAINS_REPORT)


@pytest.fixture
def multimodal_report_dict() -> dict:
    return copy.deepcopy(MULTIMODAL_REPORT)


@pytest.fixture
def lm_report_dict() -> dict:
    return copy.deepcopy(LM_REPORT)


@pytest.fixture
def vision_report_dict() -> dict:
    return copy.deepcopy(VISION_REPORT)


@pytest.fixture
def lm_report_file(tmp_path, lm_report_dict):
    d = tmp_path / "run"
    d.mkdir()
    p = d / "report.json"
    p.write_text(json.dumps(lm_report_dict))
    return p


@pytest.fixture(scope="session")
def page() -> str:
    """The LM fixture's HTML page, rendered once for the tests that only read it."""
    from obliviate.report.html import render_html
    from obliviate.report.schema import Report

    return render_html(Report.from_dict(copy.deepcopy(LM_REPORT)))
