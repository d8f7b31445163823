"""Runs under ``accelerate launch --multi_gpu --num_processes 2`` (gloo on CPU) for test_distributed.py.

Every case goes through the real CLI (`obliviate.cli.main`), in one launch so the processes start
once: the unlearning runs of ``cases.json``, the audit of one saved model, and a run killed after a
checkpoint and resumed under the same two processes. The main process records what each rank saw.

``distributed_worker.py WORK fsdp`` runs the same cases sharded with FSDP2, launched with
``--config_file presets/accelerate/fsdp.yaml``. accelerate makes an FSDP state only on an
accelerator device (on a CPU it falls back to plain multi-process DDP and drops the plugin), so
`_fsdp_on_cpu` builds the plugin from the launcher's environment (the preset's settings) and
promotes accelerate's shared state to FSDP: the loop then runs real ``fully_shard`` over gloo.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


ENGINES: set[str] = set()  # the prepared model's type in each DeepSpeed run


def _cli(argv: list[str]) -> int:
    from obliviate.cli import main

    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _fsdp_on_cpu() -> None:
    """Give the training loop an FSDP accelerator on this CPU machine (see the module docstring)."""
    import accelerate
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    import obliviate.train.loop as loop

    assert os.environ.get("ACCELERATE_USE_FSDP") == "true", "launch with --config_file presets/accelerate/fsdp.yaml"

    def make(*args, **kwargs):
        plugin = FullyShardedDataParallelPlugin()  # from FSDP_* in the environment: the preset's settings
        acc = accelerate.Accelerator(*args, fsdp_plugin=plugin, **kwargs)
        PartialState().distributed_type = DistributedType.FSDP
        acc.state.distributed_type = DistributedType.FSDP
        acc.state.fsdp_plugin = plugin
        return acc

    loop.Accelerator = make


def _deepspeed_on_cpu() -> None:
    """Give the training loop a DeepSpeed accelerator on this CPU machine: accelerate's state takes
    the DeepSpeed branch only off the CPU, so the plugin (the preset's settings, from the launcher's
    environment) is made active here and DeepSpeed's communication wraps the gloo process group
    accelerate started. Everything after that is DeepSpeed's own engine and ZeRO optimizer."""
    import accelerate
    from accelerate.state import PartialState
    from accelerate.utils import DeepSpeedPlugin, DistributedType

    import obliviate.train.loop as loop

    assert os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true", "launch with presets/accelerate/deepspeed_zero2.yaml"

    plugins: list = []

    def make(*args, **kwargs):
        from deepspeed import comm

        if not plugins:  # accelerate takes a plugin on the first Accelerator only
            plugins.append(DeepSpeedPlugin())  # from ACCELERATE_DEEPSPEED_* in the environment
            acc = accelerate.Accelerator(*args, deepspeed_plugin=plugins[0], **kwargs)
        else:
            acc = accelerate.Accelerator(*args, **kwargs)
        comm.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)  # wraps the existing process group
        PartialState().distributed_type = DistributedType.DEEPSPEED
        acc.state.distributed_type = DistributedType.DEEPSPEED
        plugins[0].set_mixed_precision("no")
        plugins[0].select(_from_accelerator_state=True)
        acc.state.deepspeed_plugins = plugins[0]
        prepare = acc.prepare

        def recording_prepare(*objs):
            out = prepare(*objs)
            ENGINES.add(type(out[0]).__name__)  # what the loop trains: DeepSpeed's engine
            return out

        acc.prepare = recording_prepare
        return acc

    loop.Accelerator = make


def main() -> None:
    work = Path(sys.argv[1])
    mode = sys.argv[2] if len(sys.argv) > 2 else "ddp"
    # "main": the cases, then a run killed after its step-2 checkpoint (the processes end there, as a
    # killed job does); "resume": a new launch that resumes it. One launch cannot do both cleanly:
    # tearing down an interrupted DeepSpeed engine inside a live process group once aborted a rank
    # ("terminate called without an active exception").
    phase = sys.argv[3] if len(sys.argv) > 3 else "main"
    spec = json.loads((work / "cases.json").read_text())
    rank = int(os.environ.get("RANK", "0"))
    out = work / {"ddp": "two"}.get(mode, mode)
    if mode == "fsdp":
        _fsdp_on_cpu()
    elif mode in ("deepspeed", "deepspeed3"):
        _deepspeed_on_cpu()
    if phase == "main":
        codes = {}
        for name, argv in spec["unlearn"].items():
            codes[name] = _cli(argv + ["--out", str(out / name)])
        if mode == "ddp":  # (under FSDP, GRIN's gradient-mask hooks do not survive fully_shard: exit code 2)
            codes["audit"] = _cli(spec["audit"] + ["--out", str(out / "audit.json")])

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

    cfg = TrainConfig(**spec["resume_train"], output_dir=str(out / "resume-ckpt"))
    if phase == "main":
        (out / f"codes-{rank}.json").write_text(json.dumps({
            "codes": codes, "world": os.environ.get("WORLD_SIZE"), "threads": torch.get_num_threads(),
            "distributed": str(_distributed_type()), "engine": ",".join(sorted(ENGINES))}))
        try:
            run_unlearning(copy.deepcopy(model), tok, task, MethodSpec("npo", npo.config_cls, loss=killed_at_2,
                                                                       streams=npo.streams),
                           npo.make_config(), cfg, needs_reference=True)
        except KeyboardInterrupt:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # killed: no clean-up runs
        raise AssertionError("the killed run was not interrupted")
    resumed, log = run_unlearning(copy.deepcopy(model), tok, task, npo, npo.make_config(), cfg, needs_reference=True)
    if rank == 0:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in resumed.state_dict().items()}, str(out / "resumed.safetensors"))
        (out / "resume-log.json").write_text(json.dumps({"resumed_from": log.resumed_from, "history": log.history}))


def _distributed_type():
    from accelerate.state import PartialState

    return PartialState().distributed_type if PartialState._shared_state else None


if __name__ == "__main__":
    main()
