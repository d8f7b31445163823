"""Does 4-bit quantisation bring "forgotten" knowledge back? NPO vs SURE at matched settings.

The quantisation-failure paper (arXiv 2410.16454) reports this: unlearning with a small learning
rate under a utility constraint moves the weights less than one 4-bit rounding step, so
round-to-nearest quantisation maps the unlearned model back onto the target's grid and the
knowledge returns. SURE's remedy is to update only the salient modules, with a larger learning
rate. This script runs NPO with every module at learning rate `lr` and SURE at `sure_lr_mult × lr`
on its salient modules, for each `lr`, on fictional_authors/forget10. For each run it prints the
forget answer probability at fp32 and after int4, and the recovered share
(K_int4 − K_unlearned) / (K_target − K_unlearned).

    python benchmarks/quant_recovery.py [--lrs 1e-4 3e-5] [--epochs 10] [--sure_lr_mult 10] [--quick]
"""

from __future__ import annotations

import argparse

import torch

import obliviate
from obliviate.api import recovered_share
from obliviate.attacks.quantize import quantize_model_rtn
from obliviate.benchmarks.fictional_authors import load_fictional_authors
from obliviate.demo import benchmark_recipe


def forget_prob(model, task, tok, fmt) -> tuple[float, float]:
    rep = obliviate.audit({"m": model}, task, tok, fmt=fmt, metrics=["forget_prob", "retain_prob"])
    return rep.value("m", "forget_prob"), rep.value("m", "retain_prob")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-5])
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--sure_lr_mult", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="use the small benchmark recipe")
    args = ap.parse_args()
    torch.set_num_threads(2)
    b = load_fictional_authors(benchmark_recipe(args.quick))
    tok, task, target = b.tokenizer(), b.task("forget10"), b.load("target")
    kt, _ = forget_prob(target, task, tok, b.fmt)
    kt4, _ = forget_prob(quantize_model_rtn(target, 4, 128)[0], task, tok, b.fmt)
    print(f"target forget prob: fp32 {kt:.3f}, int4 {kt4:.3f}")
    print(f"{'method':6s} {'lr':>8s} {'forget fp32':>11s} {'forget int4':>11s} {'retain fp32':>11s} "
          f"{'recovered':>9s}")
    for lr in args.lrs:
        for method, mlr in (("npo", lr), ("sure", lr * args.sure_lr_mult)):
            res = obliviate.unlearn(target, tok, task, method=method, benchmark="fictional_authors", fmt=b.fmt,
                                    train={"lr": mlr, "epochs": args.epochs, "progress": False, "seed": 0})
            k, r = forget_prob(res.model, task, tok, b.fmt)
            k4, _ = forget_prob(quantize_model_rtn(res.model, 4, 128)[0], task, tok, b.fmt)
            print(f"{method:6s} {mlr:8.1e} {k:11.3f} {k4:11.3f} {r:11.3f} {recovered_share(kt, k, k4):9.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
