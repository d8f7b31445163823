"""Cost of U-LiRA on the digits MLP: K shadow trainings + K unlearning runs + scoring.

Goal: K >= 16 shadows in under 10 minutes on 2 CPU cores. The unlearner under audit here is a
cheap stand-in (3 epochs of Adam fine-tuning on D_r) plus the two reference points: no unlearning
(the original: attack should win, AUC > 50) and exact retraining (AUC = 50 by construction).

    python benchmarks/ulira_cost.py [--shadows 16 32] [--threads 1] [--scenario random10]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time

import torch


def finetune3(model, task, seed):
    """Stand-in unlearner: 3 epochs of fine-tuning on the retain set."""
    from obliviate.benchmarks.digits import train_classifier

    return train_classifier(copy.deepcopy(model), task.retain_set, epochs=3, lr=1e-3, batch_size=64, seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shadows", type=int, nargs="+", default=[16])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scenario", default="random10")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OBLIVIATE_CACHE", tempfile.mkdtemp(prefix="obliviate-ulira-"))

    from obliviate.benchmarks.digits import load_digits_task, oracle_model, original_model
    from obliviate.metrics import classification as cm

    task = load_digits_task(args.scenario, 0, "mlp")
    original, oracle = original_model(args.scenario, 0, "mlp"), oracle_model(args.scenario, 0, "mlp")
    header = f"{'K':>4} {'unlearner':>10} {'shadows s':>10} {'unlearn+score s':>16} {'total s':>8} {'AUC %':>7} " \
             f"{'TPR@1%':>7} {'TPR@0.1%':>9} {'n_neg':>6}"
    print(f"digits/{args.scenario} MLP, |D_f| = {len(task.forget_set)}, threads = {args.threads}")
    print(header)
    print("-" * len(header))
    for k in args.shadows:
        t0 = time.perf_counter()
        shadows = cm.train_ulira_shadows(task, k, seed=0)
        t_shadow = time.perf_counter() - t0
        for label, fn, model in (("none", lambda m, t: m, original), ("finetune3", finetune3, None),
                                 ("retrain", lambda m, t, s: t.train_fn(t.retain_set, s), oracle)):
            t1 = time.perf_counter()
            audited = model if model is not None else fn(original, task, 0)
            r = cm.ulira(audited, oracle, task, fn, shadows=shadows)
            t_un = time.perf_counter() - t1
            d = r.details
            print(f"{k:>4} {label:>10} {t_shadow:>10.1f} {t_un:>16.1f} {t_shadow + t_un:>8.1f} {r.value:>7.1f} "
                  f"{d['tpr_at_1pct_fpr']:>7.1f} {d['tpr_at_0.1pct_fpr']:>9.1f} {d['n_neg']:>6}")


if __name__ == "__main__":
    main()
