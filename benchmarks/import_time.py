"""Start-up cost of the command line: `obliviate --help`, `obliviate ls` and the time an audit of a
tiny model takes to reach its first forward pass, each a whole new process (median of N runs).

Each command also runs once under ``python -X importtime``; the table gives the summed cumulative
import time of the top-level imports (the part of start-up that is imports, less noisy than wall
time on a shared machine) and whether matplotlib, scikit-learn, datasets, peft, opacus or jinja2
were imported. For the audit, only the imports before its first forward pass count.

    OMP_NUM_THREADS=1 python benchmarks/import_time.py [--repeats 5] [--src DIR]

``--src DIR`` times another source tree of obliviate (e.g. ``git archive HEAD src | tar -x -C
before-tree`` then ``--src before-tree/src``) with the same interpreter, for before/after tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("matplotlib", "sklearn", "datasets", "peft", "opacus", "jinja2")

# The audit driver: installs a global forward pre-hook as soon as torch is imported, prints the time
# since the parent started the process at the first forward call, and exits there.
_FIRST_FORWARD = r"""
import importlib.abc, importlib.util, os, sys, time

class _AfterTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)

            def first(mod, args):
                print("FIRST_FORWARD %%.3f %%.3f" %% (time.time() - float(os.environ["T0"]), time.process_time()), file=sys.stderr,
                      flush=True)
                heavy = [m for m in %(heavy)r if m in sys.modules]
                print("HEAVY " + ",".join(heavy), file=sys.stderr, flush=True)
                os._exit(0)

            module.nn.modules.module.register_module_forward_pre_hook(first)

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _AfterTorch())
from obliviate.cli import main
main(sys.argv[1:])
""" % {"heavy": HEAVY}

_REPORT_HEAVY = (
    "import atexit, sys\n"
    f"atexit.register(lambda: print('HEAVY ' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))\n"
    "from obliviate.cli import main\n"
    "main(sys.argv[1:])\n"
)


def _fixture(work: Path) -> list[str]:
    """A saved tiny Llama (262k parameters) and forget/retain files; the audit's arguments."""
    model_dir = work / "model"
    if not (model_dir / "config.json").exists():
        from obliviate.models.loading import save_model_atomic
        from obliviate.models.tiny import TinyLlamaConfig, build_tiny_llama, train_tokenizer

        texts = [f"Question: Where was writer {i} born?\nAnswer: Writer {i} was born in town {i % 7}." for i in range(40)]
        tok = train_tokenizer(texts, vocab_size=300)
        model = build_tiny_llama(len(tok), TinyLlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                           intermediate_size=128), pad_token_id=tok.pad_token_id,
                                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        save_model_atomic(model, tok, model_dir)
    for name, rng in (("forget", range(8)), ("retain", range(8, 40))):
        rows = [{"question": f"Where was writer {i} born?", "answer": f"Writer {i} was born in town {i % 7}."}
                for i in rng]
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["audit", "--model", str(model_dir), "--forget", str(work / "forget.jsonl"),
            "--retain", str(work / "retain.jsonl"), "--out", str(work / "audit.json")]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(code: str, args: list[str], env: dict, importtime: bool = False) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of one new process; for the audit driver, both up to the first forward."""
    env = {**env, "T0": repr(time.time())}
    cmd = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["-c", code] + args
    c0, t0 = _cpu(), time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    first = [ln.split() for ln in out.stderr.splitlines() if ln.startswith("FIRST_FORWARD")]
    if first:
        wall, cpu = float(first[0][1]), float(first[0][2])
    return wall, cpu, out.stderr


def _imports_before_marker(stderr: str) -> tuple[float, str]:
    """Summed cumulative microseconds of top-level imports (before FIRST_FORWARD if printed), and the
    heavy packages imported."""
    total, heavy = 0, ""
    for line in stderr.splitlines():
        if line.startswith("FIRST_FORWARD"):
            break
        if line.startswith("import time:") and "|" in line:
            _, cum, name = line.split("|")
            if cum.strip().isdigit() and not name.startswith("  "):  # depth 0: ' name'
                total += int(cum)
    for line in stderr.splitlines():
        if line.startswith("HEAVY"):
            heavy = line[len("HEAVY"):].strip()
    return total / 1e6, heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--src", help="obliviate source tree to time (default: the installed one)")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "obliviate-import-time"))
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}
    if a.src:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(a.src).resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    audit_args = _fixture(work)
    cases = [("obliviate --help", _REPORT_HEAVY, ["--help"]), ("obliviate ls", _REPORT_HEAVY, ["ls"]),
             ("audit: first forward", _FIRST_FORWARD, audit_args)]
    walls: dict[str, list[float]] = {c[0]: [] for c in cases}
    cpus: dict[str, list[float]] = {c[0]: [] for c in cases}
    for _ in range(a.repeats):  # the commands alternate, so a noisy neighbour hits all of them alike
        for label, code, args in cases:
            wall, cpu, _ = _run(code, args, env)
            walls[label].append(wall)
            cpus[label].append(cpu)
    print(f"{a.repeats} runs each, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}; wall and CPU (user+sys) seconds of the "
          "whole process (audit: up to its first forward pass); imports: -X importtime, summed top-level cumulative")
    print(f"{'command':22} {'wall median':>11} {'min':>6} {'max':>6} {'CPU median':>10} {'imports s':>9}  "
          "heavy packages imported")
    for label, code, args in cases:
        imports, heavy = _imports_before_marker(_run(code, args, env, importtime=True)[2])
        xs = walls[label]
        print(f"{label:22} {statistics.median(xs):11.2f} {min(xs):6.2f} {max(xs):6.2f} {statistics.median(cpus[label]):10.2f} "
              f"{imports:9.2f}  {heavy or '-'}")


if __name__ == "__main__":
    main()
