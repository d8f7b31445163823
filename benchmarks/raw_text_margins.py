"""Measure every raw-text method's VerbMem / KnowMem on the tiny MUSE-format corpus over several
seeds, to set the raw-text behaviour test's thresholds with a stated margin.

    python benchmarks/raw_text_margins.py --seeds 0 1 2 --out raw_text_margins.json

The seed is the training seed of the target model and of the unlearning run (each seed its own
target). Prints, per method and seed: VerbMem forget, KnowMem forget and KnowMem retain after
unlearning, and the worst over seeds of each. `tests/benchmarks/test_raw_text_behaviour.py` sets its
limits from these numbers (the worst over seeds and the margin are written beside each limit).
Corpus, target recipe and per-method settings: `tests/fixtures/muse_tiny.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))


def muse_scores(model, task, tok) -> dict[str, float]:
    """VerbMem forget, KnowMem forget and KnowMem retain (MUSE's metrics, 0-1) through the audit's view."""
    from obliviate import registry
    from obliviate.data.formatting import PromptFormat
    from obliviate.scoring.cache import ScoringCache
    from obliviate.scoring.views import build_view

    view = build_view(model, "m", task, ScoringCache(tok, PromptFormat(), max_new_tokens=24))
    return {k: registry.get("metric", k).obj(view).value for k in ("verbmem_forget", "knowmem_forget",
                                                                    "knowmem_retain")}


def run_method(name: str, target, task, tok, seed: int):
    import muse_tiny as mt

    from obliviate.api import unlearn
    from obliviate.data.formatting import PromptFormat

    train, over = mt.METHODS[name]
    return unlearn(target, tok, task, method=name, fmt=PromptFormat(), train={**mt.TRAIN, **train, "seed": seed},
                   **over).model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    import torch

    import muse_tiny as mt

    torch.set_num_threads(2)
    root = mt.write_corpus(Path(tempfile.mkdtemp()) / "muse_tiny")
    methods = a.methods or list(mt.METHODS)
    rows: dict[str, list[dict]] = {m: [] for m in ["target"] + methods}
    for seed in a.seeds:
        task = mt.load_task(root)
        tok = mt.tokenizer_for(task)
        task = mt.load_task(root, tok, seed=seed)
        t0 = time.perf_counter()
        target = mt.build_target(task, tok, seed)
        rows["target"].append({"seed": seed, **muse_scores(target, task, tok), "s": time.perf_counter() - t0})
        for m in methods:
            t0 = time.perf_counter()
            model = run_method(m, target, task, tok, seed)
            rows[m].append({"seed": seed, **muse_scores(model, task, tok), "s": time.perf_counter() - t0})
            r = rows[m][-1]
            print(f"seed {seed} {m:12s} verbmem_f {r['verbmem_forget']:.3f} knowmem_f {r['knowmem_forget']:.3f} "
                  f"knowmem_r {r['knowmem_retain']:.3f} ({r['s']:.1f}s)", flush=True)
        r = rows["target"][-1]
        print(f"seed {seed} {'target':12s} verbmem_f {r['verbmem_forget']:.3f} knowmem_f {r['knowmem_forget']:.3f} "
              f"knowmem_r {r['knowmem_retain']:.3f} ({r['s']:.1f}s)", flush=True)
    print("\nworst over seeds: max verbmem_f, max knowmem_f, min knowmem_r")
    summary = {}
    for m, per in rows.items():
        summary[m] = {"worst_verbmem_forget": max(p["verbmem_forget"] for p in per),
                      "worst_knowmem_forget": max(p["knowmem_forget"] for p in per),
                      "worst_knowmem_retain": min(p["knowmem_retain"] for p in per)}
        s = summary[m]
        print(f"{m:12s} {s['worst_verbmem_forget']:.3f} {s['worst_knowmem_forget']:.3f} {s['worst_knowmem_retain']:.3f}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"seeds": a.seeds, "runs": rows, "worst": summary}, f, indent=1)


if __name__ == "__main__":
    main()
