"""Runs under ``accelerate launch --multi_gpu --num_processes 2`` (gloo on CPU) for test_distributed.py.

Every case goes through the real CLI (`obliviate.cli.main`), in one launch so the processes start
once: the unlearning runs of ``cases.json``, the audit of one saved model, and a run killed after a
checkpoint and resumed under the same two processes. The main process records what each rank saw.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _cli(argv: list[str]) -> int:
    from obliviate.cli import main

    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def main() -> None:
    work = Path(sys.argv[1])
    spec = json.loads((work / "cases.json").read_text())
    rank = int(os.environ.get("RANK", "0"))
    codes = {}
    for name, argv in spec["unlearn"].items():
        codes[name] = _cli(argv + ["--out", str(work / "two" / name)])
    codes["audit"] = _cli(spec["audit"] + ["--out", str(work / "two" / "audit.json")])

    # Kill-and-resume under 2 processes: both ranks stop after the step-2 checkpoint, then resume.
    import copy

    import torch

    from obliviate import registry
    from obliviate.api import load_model
    from obliviate.data.io import read_qa_file
    from obliviate.data.task import ForgetTask
    from obliviate.methods.base import MethodSpec
    from obliviate.train.loop import TrainConfig, run_unlearning

    model, tok = load_model(spec["model"])
    task = ForgetTask("tiny", read_qa_file(spec["forget"]), read_qa_file(spec["retain"]))
    npo = registry.get("method", "npo").obj

    def killed_at_2(c, m, batch, ctx):
        if ctx.step == 2:
            raise KeyboardInterrupt
        return npo.loss(c, m, batch, ctx)

    cfg = TrainConfig(**spec["resume_train"], output_dir=str(work / "two" / "resume-ckpt"))
    try:
        run_unlearning(copy.deepcopy(model), tok, task, MethodSpec("npo", npo.config_cls, loss=killed_at_2,
                                                                   streams=npo.streams),
                       npo.make_config(), cfg, needs_reference=True)
    except KeyboardInterrupt:
        pass
    resumed, log = run_unlearning(copy.deepcopy(model), tok, task, npo, npo.make_config(), cfg, needs_reference=True)
    if rank == 0:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in resumed.state_dict().items()}, str(work / "two" / "resumed.safetensors"))
        (work / "two" / "resume-log.json").write_text(json.dumps({"resumed_from": log.resumed_from,
                                                                  "history": log.history}))
    (work / "two" / f"codes-{rank}.json").write_text(json.dumps({"codes": codes, "world": os.environ.get("WORLD_SIZE"),
                                                                 "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
