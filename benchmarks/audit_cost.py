"""Cost of a full audit vs the bare model work it cannot avoid, measured side by side.

The bare work: one forward pass per scored (prompt, answer) pair (answers, paraphrases,
perturbed answers of every set) plus one greedy generation per example of the sets whose
generations metrics read (and per VerbMem record), in plain batched `transformers` calls with no bookkeeping. The audit:
`obliviate.audit` with every registered text metric (no attacks). Runs alternate; prints the
median of each and the ratio (goal <= 1.5).

    python benchmarks/audit_cost.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from obliviate.api import audit
from obliviate.benchmarks.fictional_authors import load_fictional_authors
from obliviate.demo import benchmark_recipe
from obliviate.data.formatting import collate, encode_pair
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
            pairs = [(fmt.prompt(it.question), a) for it in items
                     for a in [it.answer, it.paraphrased_answer, *it.perturbed_answers] if a]
            n_fwd += _forward(model, tok, [encode_pair(tok, p, fmt.answer(a)) for p, a in pairs], batch_size)
            if key in GENERATED_SETS:
                n_gen += _generate(model, tok, [fmt.prompt(it.question) for it in items], batch_size, max_new_tokens)
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
    args = ap.parse_args()
    torch.set_num_threads(2)
    b = load_fictional_authors(benchmark_recipe(args.quick))
    tok, task, model = b.tokenizer(), b.task("forget10"), b.load("target")
    oracle = b.load("oracle", "forget10")
    bare_t, audit_t = [], []
    n_fwd = n_gen = 0
    for _ in range(args.repeats):
        t, n_fwd, n_gen = bare_pass(model, tok, task, b.fmt)
        bare_t.append(t)
        t0 = time.perf_counter()
        # the oracle's view is part of the audit's input; only the audited model is timed
        audit({"target": model}, task, tok, fmt=b.fmt)
        audit_t.append(time.perf_counter() - t0)
    audit({"target": model, "oracle": oracle}, task, tok, reference="oracle", fmt=b.fmt)  # oracle metrics run too
    bare, full = statistics.median(bare_t), statistics.median(audit_t)
    print(f"model {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params; {n_fwd} scored pairs, "
          f"{n_gen} generations per model")
    print(f"{'':32s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
    print(f"{'bare forward + generate':32s} {bare:9.2f} {min(bare_t):7.2f} {max(bare_t):7.2f}")
    print(f"{'obliviate audit (all metrics)':32s} {full:9.2f} {min(audit_t):7.2f} {max(audit_t):7.2f}")
    print(f"ratio audit / bare: {full / bare:.3f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
