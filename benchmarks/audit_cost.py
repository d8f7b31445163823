"""Cost of a full audit vs the bare model work it cannot avoid, measured side by side.

The bare work: one forward pass per scored (prompt, answer) pair (answers, paraphrases,
perturbed answers of every set) plus one greedy generation per example of the sets whose
generations metrics read (and per VerbMem record), in plain batched `transformers` calls with no bookkeeping. The audit:
`obliviate.audit` with every registered text metric (no attacks). Runs alternate; prints the
median of each, the ratio (goal <= 1.2) and the share of the audit's scoring positions that were padding.

    python benchmarks/audit_cost.py [--repeats 3] [--quick]
    python benchmarks/audit_cost.py --model DIR --data TOFU_DIR [--repeats 2]   # a saved model on TOFU-format data,
        # in its chat format (system prompt "You are a helpful assistant.", date_string "10 Apr 2025"), 200 new tokens
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from obliviate.api import audit, prompt_format
from obliviate.benchmarks.fictional_authors import load_fictional_authors
from obliviate.demo import benchmark_recipe
from obliviate.data.formatting import collate, encode_pair
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.views import GENERATED_SETS


def _forward(model, tok, enc, batch_size) -> int:
    for s in range(0, len(enc), batch_size):
        b = collate(enc[s:s + batch_size], tok.pad_token_id)
        model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    return len(enc)


def _generate(model, tok, prompts, batch_size, max_new_tokens) -> int:
    tok.padding_side = "left"
    for s in range(0, len(prompts), batch_size):
        b = tok(prompts[s:s + batch_size], return_tensors="pt", padding=True)
        model.generate(**b, max_new_tokens=max_new_tokens, do_sample=False,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    tok.padding_side = "right"
    return len(prompts)


def bare_pass(model, tok, task, fmt, batch_size=32, max_new_tokens=48, max_retain=200) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    sets = {"forget": task.forget, "retain": task.retain[:max_retain], "holdout": task.holdout, **task.eval_sets}
    n_fwd = n_gen = 0
    with torch.no_grad():
        for key, items in sets.items():
            pairs = [(fmt.prompt(it.question, tok), a) for it in items
                     for a in [it.answer, it.paraphrased_answer, *it.perturbed_answers] if a]
            n_fwd += _forward(model, tok, [encode_pair(tok, p, fmt.answer(a, tok)) for p, a in pairs], batch_size)
            if key in GENERATED_SETS:
                n_gen += _generate(model, tok, [fmt.prompt(it.question, tok) for it in items], batch_size,
                                   max_new_tokens)
        # VerbMem: continue each (prompt, reference) record: one forward of the pair and one generation
        records = task.metadata.get("verbmem") or []
        n_fwd += _forward(model, tok, [encode_pair(tok, r["prompt"], r["gt"], append_eos=False) for r in records],
                          batch_size)
        n_gen += _generate(model, tok, [r["prompt"] for r in records], batch_size, max_new_tokens)
    return time.perf_counter() - t0, n_fwd, n_gen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="use the small benchmark recipe")
    ap.add_argument("--model", help="a saved causal LM folder (with --data) instead of the built-in benchmark")
    ap.add_argument("--data", help="a TOFU-format folder (obliviate.data.loaders.load_tofu), split forget10")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if bool(args.model) != bool(args.data):
        ap.error("--model and --data go together (a saved model folder and a TOFU-format data folder)")
    torch.set_num_threads(args.threads)
    oracle = None
    if args.model:
        from obliviate.data.loaders import load_tofu
        from obliviate.models.loading import load_causal_lm

        model, tok = load_causal_lm(args.model, dtype="float32")
        task = load_tofu("forget10", args.data)
        fmt = prompt_format(tok, "chat", system_prompt="You are a helpful assistant.",
                            template_vars={"date_string": "10 Apr 2025"})
        n_new = int(task.metadata.get("eval_max_new_tokens") or 200)
    else:
        b = load_fictional_authors(benchmark_recipe(args.quick))
        tok, task, model, fmt, n_new = b.tokenizer(), b.task("forget10"), b.load("target"), b.fmt, 48
        oracle = b.load("oracle", "forget10")
    bare_t, audit_t = [], []
    n_fwd = n_gen = 0
    for _ in range(args.repeats):
        t, n_fwd, n_gen = bare_pass(model, tok, task, fmt, max_new_tokens=n_new)
        bare_t.append(t)
        cache = ScoringCache(tok, fmt, max_new_tokens=n_new)
        t0 = time.perf_counter()
        # the oracle's view is part of the audit's input; only the audited model is timed
        audit({"target": model}, task, tok, fmt=fmt, cache=cache)
        audit_t.append(time.perf_counter() - t0)
    if oracle is not None:  # oracle metrics run too
        audit({"target": model, "oracle": oracle}, task, tok, reference="oracle", fmt=fmt)
    bare, full = statistics.median(bare_t), statistics.median(audit_t)
    print(f"model {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params; {n_fwd} scored pairs, "
          f"{n_gen} generations per model")
    print(f"{'':32s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
    print(f"{'bare forward + generate':32s} {bare:9.2f} {min(bare_t):7.2f} {max(bare_t):7.2f}")
    print(f"{'obliviate audit (all metrics)':32s} {full:9.2f} {min(audit_t):7.2f} {max(audit_t):7.2f}")
    print(f"ratio audit / bare: {full / bare:.3f} (goal <= 1.2)")
    print(f"padding: {cache.padding_waste:.1%} of the {cache.positions_run} token positions the audit's scoring "
          f"passes ran ({cache.positions_real} real tokens)")


if __name__ == "__main__":
    main()
