"""The worst-case forget-set selector on digits: which set it picks, and how hard that set is to unlearn.

For seeds 0-2, on the digits MLP trained on the whole training split, pick k = 10% of the training
examples four ways (a random set, the lowest-loss ranking of the original model, and the worst-case
bi-level search at ``theta_lr`` 0.01, Unlearn-WorstCase's default, and 0.1), then forget each set
with fine-tuning and gradient ascent (their digits settings, `presets/digits/`) and retrain without
it. Prints each selection's overlap with the lowest-loss ranking and the unlearning accuracy (UA,
error on the forget set; lower = harder to forget) of every model.

    OMP_NUM_THREADS=2 python benchmarks/worst_case_digits.py
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="img_finetune,img_ga")
    ap.add_argument("--theta_lr", default="0.01,0.1")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    from obliviate import registry
    from obliviate.benchmarks import digits as dg
    from obliviate.benchmarks.digits_bench import method_config
    from obliviate.methods.selection import hardest, random_select, worst_case
    from obliviate.methods.vision.base import ClassificationTask, VisionContext

    def ua(model, x, y) -> float:
        with torch.no_grad():
            return 100.0 - (model(x).argmax(-1) == y).float().mean().item() * 100

    train, test = dg.digits_split()
    X, Y = train.tensors
    n = len(Y)
    k = int(round(0.1 * n))
    methods = args.methods.split(",")
    rows: dict[str, list[dict]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        original = dg.original_model("random10", seed)
        with torch.no_grad():
            loss = F.cross_entropy(original(X), Y, reduction="none").tolist()
        sets = {"random": random_select.select(n, k, seed=seed),
                "lowest_loss": hardest.select(loss, k, higher_is_harder=False)}
        for lr in (float(v) for v in args.theta_lr.split(",")):
            sets[f"worst_case theta_lr={lr:g}"] = worst_case.select(train, original, k, seed=seed, theta_lr=lr)
        for name, idx in sets.items():
            forget = np.zeros(n, dtype=bool)
            forget[idx] = True
            f, r = torch.from_numpy(np.flatnonzero(forget)), torch.from_numpy(np.flatnonzero(~forget))
            task = ClassificationTask(name="digits/selected", forget_set=TensorDataset(X[f], Y[f]),
                                      retain_set=TensorDataset(X[r], Y[r]), test_set=test, num_classes=10,
                                      train_fn=dg.make_train_fn("mlp"),
                                      metadata={"benchmark": "digits", "scenario": "random10", "seed": seed})
            res = {"overlap": len(set(idx) & set(sets["lowest_loss"])),
                   "retrain": ua(task.train_fn(task.retain_set, seed), X[f], Y[f])}
            for m in methods:
                out = registry.get("method", m).obj.run(method_config(m, "random10"), copy.deepcopy(original), task,
                                                        VisionContext(seed=seed))
                res[m] = ua(out, X[f], Y[f])
            rows.setdefault(name, []).append(res)
            print(f"seed {seed} {name}: " + ", ".join(f"{a} {b:.1f}" for a, b in res.items()), flush=True)
    print(f"\ndigits, k = {k} of {n}; mean ± std over seeds; overlap = examples shared with the lowest-loss set; "
          "UA in % (lower = harder to forget)")
    cols = ["overlap", "retrain", *methods]
    print("| selection | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for name, rs in rows.items():
        print(f"| {name} | " + " | ".join(f"{np.mean([r[c] for r in rs]):.1f} ± {np.std([r[c] for r in rs]):.1f}"
                                          for c in cols) + " |")


if __name__ == "__main__":
    main()
