"""Time the full TOFU evaluation of obliviate and OpenUnlearning side by side (run by hand, not by CI).

Each tool's evaluation is a whole new process, started in turn (ours, peer, ours, peer, ...), so a
drift in the machine's speed hits both; the table gives each tool's median wall time over the runs,
the min-max spread and the median of the pairwise ratios.

    SCRATCH=... python benchmarks/vs_openunlearning/time_eval.py --model $SCRATCH/smollm2_dir \\
        --data $SCRATCH/ou_tofu --runs 3 --threads 2

ours:  ``obliviate audit --benchmark tofu --split forget10 --source DATA --model MODEL`` in the peer's
       chat format (system prompt "You are a helpful assistant.", date_string "10 Apr 2025"), every
       metric (a superset of the peer's default TOFU eval), 200 new tokens;
peer:  ``../shared/peer/run_eval.sh MODEL TASK`` (its default TOFU eval, `src/eval.py`), a new TASK
       name per run: the peer reuses the results it finds under a task's name.
Both read the same model directory and the same TOFU-format data, with ``OMP_NUM_THREADS`` set equal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER_SCRIPT = Path(__file__).resolve().parents[3] / "shared" / "peer" / "run_eval.sh"


def _run(cmd: list[str], env: dict, cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer_script", default=str(PEER_SCRIPT))
    a = ap.parse_args()
    if not os.environ.get("SCRATCH"):
        raise SystemExit("set SCRATCH to the folder the peer was built in (../shared/peer/setup_peer.sh)")
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    work = tempfile.mkdtemp(prefix="time_eval_")
    obliviate = shutil.which("obliviate") or str(Path(sys.executable).with_name("obliviate"))
    ours = [obliviate, "audit", "--benchmark", "tofu", "--split", "forget10", "--source", a.data, "--model", a.model,
            "--prompt_format", "chat", "--system_prompt", "You are a helpful assistant.", "--template_var",
            "date_string=10 Apr 2025", "--out", str(Path(work) / "audit.json")]
    # The peer keeps each task's results in $OU/saves/eval/<task> and skips metrics found there on a
    # rerun, so every run gets a task name of its own, and the folder it made is removed after it.
    peer_saves = Path(os.environ.get("OU") or Path(os.environ["SCRATCH"]) / "ou") / "saves" / "eval"
    walls: dict[str, list[float]] = {"obliviate": [], "OpenUnlearning": []}
    for i in range(a.runs):
        task = f"obliviate_time_eval_{os.getpid()}_{i}"
        if (peer_saves / task).exists():
            raise SystemExit(f"{peer_saves / task} exists already; the peer would reuse its results")
        walls["obliviate"].append(_run(ours, env, work))
        walls["OpenUnlearning"].append(_run(["bash", a.peer_script, a.model, task], env, work))
        shutil.rmtree(peer_saves / task, ignore_errors=True)  # made by this run
        print(f"run {i + 1}: obliviate {walls['obliviate'][-1]:.1f} s, OpenUnlearning "
              f"{walls['OpenUnlearning'][-1]:.1f} s", flush=True)
    ratios = [x / y for x, y in zip(walls["obliviate"], walls["OpenUnlearning"])]
    print("\n| tool | wall median s | min | max |\n|---|---|---|---|")
    for k, v in walls.items():
        print(f"| {k} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |")
    print(f"\nratio obliviate / OpenUnlearning (median of {a.runs} pairs): {statistics.median(ratios):.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
