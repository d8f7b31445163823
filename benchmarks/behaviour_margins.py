"""Measure every language-model method's forgetting and retain drop over several training seeds on
the small built-in benchmark, to set the behaviour test's thresholds with a stated margin.

    OBLIVIATE_CACHE=... python benchmarks/behaviour_margins.py --seeds 0 1 2 --out margins.json

Prints, per method: the forget-probability share after/before and the retain-probability drop for
each seed, and the worst of each. `tests/benchmarks/test_method_behaviour.py` sets its limits from
these numbers (the worst over seeds plus a margin written beside each limit).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--out", default="")
    a = ap.parse_args()

    from obliviate import registry
    from obliviate.api import unlearn
    from obliviate.benchmarks.fictional_authors import load_fictional_authors
    from obliviate.demo import quick_recipe
    from obliviate.scoring.cache import ScoringCache

    bench = load_fictional_authors(quick_recipe())
    task, target, tok = bench.task("forget10"), bench.load("target"), bench.tokenizer()

    def prob(model, items):
        cache = ScoringCache(tok, bench.fmt)
        ss = cache.score(model, "k", [bench.fmt.prompt(it.question) for it in items],
                         [bench.fmt.answer(it.answer) for it in items])
        return float(np.exp(-ss.mean_nll()).mean())

    f0, r0 = prob(target, task.forget), prob(target, task.retain[:100])
    methods = a.methods or [m for m in registry.names("method", "text") if m not in ("eco", "finetune")]
    rows = {}
    for m in methods:
        per = []
        for seed in a.seeds:
            t0 = time.perf_counter()
            res = unlearn(target, tok, task, method=m, benchmark="fictional_authors", fmt=bench.fmt,
                          train={"seed": seed, "progress": False})
            per.append({"seed": seed, "forget_share": prob(res.model, task.forget) / f0,
                        "retain_drop": r0 - prob(res.model, task.retain[:100]), "s": time.perf_counter() - t0})
        rows[m] = {"seeds": per, "worst_share": max(p["forget_share"] for p in per),
                   "worst_drop": max(p["retain_drop"] for p in per)}
        shares = " ".join(f"{p['forget_share']:.3f}" for p in per)
        drops = " ".join(f"{p['retain_drop']:+.3f}" for p in per)
        print(f"{m:12s} share {shares} | retain drop {drops}", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"target_forget": f0, "target_retain": r0, "methods": rows}, f, indent=1)


if __name__ == "__main__":
    main()
