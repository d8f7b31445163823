"""The full language-model audit: target vs oracle vs unlearned models, before and after every attack.

Audits target, oracle and each unlearned model on fictional_authors/forget10 with every text
metric, the five recovery attacks (int8/int4 quantisation, relearning, paraphrased questions,
jailbreak prefix) and, with `--ulira_shadows K`, the U-LiRA attack. It prints the headline table
and, per attack, the share of the removed forget knowledge that returns. Unlearned models come from
a finished `obliviate bench` (`--bench_dir`, its `models/seed0/<method>`) or are unlearned here at
their presets.

    python benchmarks/attack_audit.py [--methods npo sure] [--bench_dir obliviate-bench] [--ulira_shadows 8]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from obliviate.api import HEADLINE, audit, unlearn
from obliviate.benchmarks.fictional_authors import load_fictional_authors
from obliviate.report.table import print_table

ATTACKS = ("quantize_int8", "quantize_int4", "relearn", "paraphrase", "jailbreak_prefix")
COLUMNS = (*HEADLINE, "forget_prob", "retain_prob", "forget_truth_ratio", "mia_min_k", "exact_memorization",
           "fluency_forget", "ulira")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["npo", "sure"])
    ap.add_argument("--bench_dir", default=None, help="reuse the unlearned models a bench saved here")
    ap.add_argument("--ulira_shadows", type=int, default=0)
    ap.add_argument("--out", default="attack_audit.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    b = load_fictional_authors()
    tok, task = b.tokenizer(), b.task("forget10")
    models = {"target": b.load("target"), "oracle": b.load("oracle", "forget10")}
    for m in args.methods:
        saved = Path(args.bench_dir or "-") / "models" / "seed0" / m
        if (saved / "run.json").exists():
            from transformers import AutoModelForCausalLM

            models[m] = AutoModelForCausalLM.from_pretrained(str(saved), use_safetensors=True).eval()
        else:
            models[m] = unlearn(models["target"], tok, task, method=m, benchmark="fictional_authors", fmt=b.fmt,
                                train={"progress": False}).model
    rep = audit(models, task, tok, reference="oracle", fmt=b.fmt, roles={"target": "target", "oracle": "oracle"},
                attacks=ATTACKS, attack_models=["target", *args.methods], ulira_shadows=args.ulira_shadows,
                out=args.out)
    print_table(rep, [c for c in COLUMNS if any(c in e.metrics for e in rep.models.values())])
    print("\nrecovered share of the removed forget knowledge, (K_attacked - K_unlearned) / (K_target - K_unlearned)")
    print(f"{'model':10s} {'attack':18s} {'prob before':>11s} {'prob after':>10s} {'prob share':>10s} "
          f"{'ROUGE share':>11s}")
    rows = {(r["model"], r["attack"], r["metric"]): r for r in rep.tables["attacks"]}
    for m in args.methods:
        for a in ATTACKS:
            p, r = rows.get((m, a, "forget_prob")), rows.get((m, a, "forget_rouge"))
            if p is None:
                continue
            share = (lambda x: "n/a" if x is None or math.isnan(x.get("recovered_share", math.nan))
                     else f"{x['recovered_share']:.3f}")
            print(f"{m:10s} {a:18s} {p['before']:11.3f} {p['after']:10.3f} {share(p):>10s} {share(r):>11s}")
    print(f"\n{time.perf_counter() - t0:.0f} s; report: {args.out}")


if __name__ == "__main__":
    main()
