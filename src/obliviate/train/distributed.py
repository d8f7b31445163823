"""Running the training loop and the audit under several processes (``accelerate launch``).

What the loop does with N processes (DDP through `accelerate.Accelerator`), so that a run on N
processes with gradient accumulation A is the run on one process with accumulation N*A:

- Every rank builds the same seeded plan of micro-batches for every stream (forget, retain,
  forget_alt); rank r takes the plan's micro-batches r, r+N, r+2N, ... (the sharding accelerate's
  own ``BatchSamplerShard`` applies to a batch sampler), A of them per optimizer step. Each rank
  therefore runs the same number of micro-batches every step, whatever the step count or data size:
  no rank waits in a collective the others never reach.
- Gradients are averaged by DDP on the last micro-batch of each step (``accelerator.accumulate``
  skips the sync on the others); the loss is divided by A (``accelerator.backward``), so the sum
  over ranks of the averaged gradient is the 1-process gradient over N*A micro-batches.
- The logged loss and every logged part are averaged over ranks (`reduce_logged`); the NaN guard
  counts non-finite losses over all ranks before the optimizer step, and the probes' values come
  from the main process (`broadcast_floats`), so every guard decides the same on every rank.
- The frozen reference model is placed on each device without a DDP wrapper and has no optimizer
  state (`place_reference`).
- A method's ``prepare`` hook runs on every rank; the main process's result is made authoritative
  (weights through DDP's broadcast at wrap time, gradient masks broadcast in place) and the rest
  (which parameters train, the optimizer groups) is checked to be the same (`sync_prepared`).
- Checkpoints and outputs are written by the main process only, after every rank has finished the
  step (`wait_for_everyone`).

With FSDP (version 2, ``fully_shard``; ``presets/accelerate/fsdp.yaml``) each process holds a shard
of every weight, gradient and optimizer state, and of the frozen reference model, which is sharded
the same way (`place_reference`). What needs whole weights gathers them collectively, every rank
taking part: checkpoints (`full_state`, `full_optimizer_state`: the main process writes whole
tensors, the same files as a 1-process run, optimizer state keyed by parameter name) and the
returned model (`gather_model`: the main process gets a plain, unsharded model on the CPU, built on
a skeleton taken before sharding, in the model's own dtype; the other processes get the skeleton,
on the meta device). The guards' in-memory snapshots stay sharded (each rank keeps its shard).
Methods that hook parameter gradients in ``prepare`` (GRIN's masks) are refused: ``fully_shard``
replaces the parameters the hooks sit on.

With DeepSpeed ZeRO-2 (``presets/accelerate/deepspeed_zero2.yaml``) the prepared model is
DeepSpeed's engine: ``accelerator.backward`` runs its backward and, on the last micro-batch of a
step, its step (accumulation, clipping and the optimizer are DeepSpeed's; `configure_deepspeed`
gives it the run's batch shape). Each process keeps the whole model; the fp32 masters, gradients
and optimizer state are partitioned. Checkpoints hold the masters and the optimizer state whole,
keyed by parameter name (`zero_full_state`, `zero_optimizer_state`, loaded back by
`zero_load_state`); the returned model is the masters in a skeleton of the model (`gather_model`);
weights the guards restore are pushed into the masters (`restore_snapshot`). ZeRO-3
(``deepspeed_zero3.yaml``) partitions the parameters too: the frozen reference model gets an engine
of its own without an optimizer (`zero3_reference`), the guards' snapshots gather the trainable
weights whole (`whole_params`), and gradient-mask methods are refused as under FSDP.

The audit runs on the main process alone; the other processes return at once (`is_main_process`):
its report is the 1-process report.

``accelerate launch --cpu --num_processes N`` starts **one** process: accelerate starts several CPU
processes only through ``mpirun`` (with a hostfile). On a CPU-only machine, ``accelerate launch
--multi_gpu --num_processes N`` (or ``torchrun --nproc_per_node N``) starts N gloo processes;
`single_process_launch_notice` warns about the first form.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import torch

from obliviate.train.guards import Snapshot


def _state():
    from accelerate import PartialState

    return PartialState()


def is_main_process() -> bool:
    """True on the process that writes outputs (always, outside a multi-process launch). Read from
    accelerate's state once a run has set it up, else from the launcher's environment, so asking
    starts no process group (the audit's other processes return without one)."""
    if not _launched():
        return True
    from accelerate.state import PartialState

    if PartialState._shared_state:
        return PartialState().is_main_process
    return _int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    """Block until every process reaches this point (a no-op outside a multi-process launch)."""
    if _launched():
        _state().wait_for_everyone()


def _launched() -> bool:
    """Whether this process belongs to a multi-process launch (torchrun and accelerate launch set
    WORLD_SIZE)."""
    return _int(os.environ.get("WORLD_SIZE", "1")) > 1


def single_process_launch_notice(num_processes: int) -> str | None:
    """A notice when ``accelerate launch --cpu --num_processes N`` (N > 1) started this lone process.

    accelerate's simple launcher (used for ``--cpu``) starts one process and passes no process
    count on; the only place the requested count survives is the launcher's command line, read
    from /proc where there is one. Returns None when nothing looks wrong."""
    if num_processes > 1 or os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("true", "1"):
        return None
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    asked = 1
    for i, a in enumerate(argv):
        if a.startswith("--num_processes="):
            asked = _int(a.split("=", 1)[1])
        elif a == "--num_processes" and i + 1 < len(argv):
            asked = _int(argv[i + 1])
    if asked <= 1:
        return None
    return (f"accelerate launch --cpu --num_processes {asked} started one process (accelerate starts several CPU "
            "processes only through mpirun); this run uses 1 process. For several CPU processes use "
            f"`accelerate launch --multi_gpu --num_processes {asked} ...` (gloo) or `torchrun --nproc_per_node "
            f"{asked} ...`")


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        return 1 if s else 0


def reduce_logged(accelerator: Any, sums: dict[str, float], n_bad: int) -> tuple[dict[str, float], int]:
    """The step's logged values averaged over ranks, and the number of non-finite losses summed over
    ranks, in one collective. Every rank logs the same keys (the method's parts); a rank whose keys
    differ would make the collective mismatch, so the key sets are compared first on the first step."""
    keys = sorted(sums)
    if accelerator.num_processes == 1:
        return {k: sums[k] for k in keys}, n_bad
    # float64: the mean of N per-rank averages equals the 1-process average to ~1e-16.
    t = torch.tensor([float(n_bad)] + [sums[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    t = accelerator.reduce(t, reduction="sum").cpu()
    n = accelerator.num_processes
    return {k: float(v) / n for k, v in zip(keys, t[1:].tolist())}, int(t[0])


def check_same_keys(accelerator: Any, keys: list[str]) -> None:
    """Refuse a method whose logged parts differ between ranks (the reduction would not line up)."""
    if accelerator.num_processes == 1:
        return
    from accelerate.utils import gather_object

    seen = gather_object([sorted(keys)])
    if any(k != seen[0] for k in seen):
        raise RuntimeError(f"the method logs different loss parts on different processes ({seen}); every "
                           "process must return the same keys in LossOutput.parts")


def broadcast_floats(accelerator: Any, values: list[float]) -> list[float]:
    """``values`` as the main process has them, on every rank."""
    if accelerator.num_processes == 1:
        return values
    from accelerate.utils import broadcast

    t = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return broadcast(t, from_process=0).cpu().tolist()


def any_rank(accelerator: Any, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(t, reduction="sum").item() > 0)


def place_reference(accelerator: Any, reference: torch.nn.Module) -> torch.nn.Module:
    """Put the frozen reference model on this process's device, without a DDP wrapper (it is never
    trained, so it has no gradients to synchronise) and without optimizer state. Under FSDP it is
    sharded like the trained model (one unit per decoder layer), so it costs 1/N of its size per
    process; its forward gathers each layer in turn."""
    if is_sharded(accelerator):
        from accelerate.utils.fsdp_utils import fsdp2_prepare_model

        return fsdp2_prepare_model(accelerator, reference).eval()
    if zero_stage(accelerator) == 3:
        return zero3_reference(accelerator, reference)
    return accelerator.prepare_model(reference, evaluation_mode=True).eval()


def configure_deepspeed(accelerator: Any, batch_size: int, grad_accum: int, max_grad_norm: float) -> None:
    """Give DeepSpeed the batch shape and clipping of this run: the loop feeds batches itself (no
    prepared DataLoader to infer them from), and DeepSpeed, not the loop, clips and accumulates."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    cfg = accelerator.state.deepspeed_plugin.deepspeed_config
    cfg["train_micro_batch_size_per_gpu"] = batch_size
    cfg["gradient_accumulation_steps"] = grad_accum
    cfg["train_batch_size"] = batch_size * grad_accum * accelerator.num_processes
    cfg["gradient_clipping"] = max_grad_norm


def sync_prepared(accelerator: Any, model: torch.nn.Module, groups: list[dict] | None) -> None:
    """Make a ``prepare`` hook's result the same on every rank (call after ``accelerator.prepare``,
    whose DDP wrap has already broadcast the main process's weights, noise included).

    Gradient masks (`obliviate.methods.base.add_gradient_mask`) are broadcast in place from the main
    process, so a mask computed from slightly different floating-point gradients on another device
    cannot differ. Which parameters train and the optimizer groups (sizes, learning rates) must match
    already: they are compared, and a difference is an error that names it."""
    if accelerator.num_processes == 1:
        return
    from accelerate.utils import broadcast, gather_object

    from obliviate.methods.base import gradient_masks

    for mask in gradient_masks(model):
        broadcast(mask, from_process=0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    shape = [(len(g["params"]), g.get("lr"), g.get("weight_decay"), g.get("name")) for g in (groups or [])]
    seen = gather_object([(trainable, shape)])
    if any(s != seen[0] for s in seen):
        which = "trainable parameters" if any(s[0] != seen[0][0] for s in seen) else "optimizer groups"
        raise RuntimeError(f"the method's prepare hook gave different {which} on different processes; a prepare "
                           "hook must be deterministic (seeded) so every process trains the same parameters")


# ---- FSDP (fully_shard) ------------------------------------------------------------------------
def is_sharded(accelerator: Any) -> bool:
    """Whether the prepared model's parameters are sharded over the processes (FSDP)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def local_numel(model: torch.nn.Module) -> int:
    """Parameter elements this process holds: its shards under FSDP, every parameter otherwise."""
    from torch.distributed.tensor import DTensor

    def held(p: torch.nn.Parameter) -> int:
        if isinstance(p, DTensor):
            return p.to_local().numel()
        return p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel()  # ZeRO-3: this rank's partition

    return sum(held(p) for p in model.parameters())


def skeleton(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose parameters are on the meta device (no memory; buffers are copied,
    they are small and partly not in the state dict): the plain model `gather_model` fills after a
    sharded run. Tied parameters stay tied."""
    import copy

    memo = {id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
            for p in model.parameters()}
    return copy.deepcopy(model, memo)


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Whole tensors, gathered to the main process's CPU (the others get an empty dict).
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state(model: torch.nn.Module, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """A sharded model's state as whole tensors on the CPU (restricted to ``names`` if given): a
    collective, every rank calls it; the main process gets the tensors, the others ``{}``. (Without
    sharding the checkpoint reads the model itself.)"""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    sd = get_model_state_dict(model, options=_full_options())
    return {k: v.contiguous() for k, v in sd.items() if names is None or k in names}


def full_optimizer_state(model: torch.nn.Module, optimizer: Any) -> dict:
    """A sharded run's optimizer state for a checkpoint: a collective, the whole state keyed by
    parameter name, on the main process."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full_options())


def load_full_state(accelerator: Any, model: torch.nn.Module, optimizer: Any, weights: dict[str, torch.Tensor],
                    optimizer_state: dict | None) -> None:
    """Put whole-tensor weights (and optimizer state) from a checkpoint into the prepared model: each
    process keeps its shard when sharded. Every rank reads the same files and calls this."""
    if is_zero(accelerator):
        zero_load_state(accelerator, model, optimizer, weights, optimizer_state)
        return
    if not is_sharded(accelerator):
        accelerator.unwrap_model(model).load_state_dict(weights, strict=False)  # DDP's wrapper prefixes "module."
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        return
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, weights, options=opts)
    if optimizer_state is not None:
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True))


def gather_snapshots(accelerator: Any, snapshots: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict]:
    """Whole tensors of the guards' sharded snapshots for a checkpoint (a collective when sharded)."""
    if not is_sharded(accelerator):
        return snapshots
    from torch.distributed.tensor import DTensor

    out = {}
    for name in sorted(snapshots):
        out[name] = {k: (v.full_tensor() if isinstance(v, DTensor) else v).cpu().contiguous()
                     for k, v in sorted(snapshots[name].items())}
    return out if accelerator.is_main_process else {}


def shard_like(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Whole tensors (a snapshot read from a checkpoint) laid out as the model's sharded parameters,
    each process slicing its own shard (no communication); unchanged when the model is not sharded."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    current = model.state_dict()
    out = {}
    for k, v in state.items():
        ref = current.get(k)
        if isinstance(ref, DTensor) and not isinstance(v, DTensor):
            v = distribute_tensor(v.to(device=ref.device, dtype=ref.dtype), ref.device_mesh, ref.placements,
                                  src_data_rank=None)
        out[k] = v
    return out


def gather_model(accelerator: Any, model: torch.nn.Module, plain: torch.nn.Module) -> torch.nn.Module:
    """The trained weights of the sharded ``model`` (FSDP shards, or ZeRO's fp32 masters) in ``plain``
    (its `skeleton`), in the skeleton's dtypes, on the main process's CPU; a collective. The other
    processes get ``plain`` as it is (on the meta device): only the main process writes outputs."""
    full = zero_full_state(accelerator, model, trainable_only=False) if is_zero(accelerator) else full_state(model)
    if accelerator.is_main_process:
        dtypes = {k: v.dtype for k, v in plain.state_dict().items()}
        plain.load_state_dict({k: v.to(dtypes.get(k, v.dtype)) for k, v in full.items()}, strict=False, assign=True)
        if hasattr(plain, "tie_weights"):
            plain.tie_weights()  # assign=True loads tied keys as separate tensors
        left = [n for n, p in plain.named_parameters() if p.is_meta]
        if left:
            raise RuntimeError(f"gathering the sharded model left {len(left)} parameters unfilled ({left[:3]})")
    return plain


# ---- DeepSpeed ZeRO ----------------------------------------------------------------------------
# Stage 1/2: each process holds the whole model (DeepSpeed's working copy, in the config's
# precision) and 1/N of the fp32 master weights, gradients and optimizer state, in flat
# partitions. Stage 3 partitions the working copy too (each parameter is gathered for the forward
# and backward that use it). What needs the whole optimizer state or master weights reads them per
# parameter with DeepSpeed's own `deepspeed.utils.safe_get_full_*` (a collective: every rank calls
# it, in the same order) and writes them with `safe_set_full_*` (each rank keeps its fragment);
# what needs the whole working copy under stage 3 gathers it with `deepspeed.zero.GatheredParameters`.
def is_zero(accelerator: Any) -> bool:
    """Whether the run's optimizer is DeepSpeed's ZeRO (masters, gradients and optimizer state
    partitioned; at stage 3 the parameters too)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def zero_stage(accelerator: Any) -> int | None:
    """The ZeRO stage of a DeepSpeed run (None otherwise)."""
    return int(accelerator.state.deepspeed_plugin.zero_stage) if is_zero(accelerator) else None


@contextmanager
def whole_params(accelerator: Any, model: torch.nn.Module, trainable_only: bool = False, modify: bool = False):
    """Under ZeRO-3, the model's parameters gathered whole on every rank inside the block (a
    collective); with ``modify``, what the main process writes into them is partitioned back on exit
    (every rank must hold the same values). A no-op at other stages and without DeepSpeed."""
    if zero_stage(accelerator) != 3:
        yield
        return
    import deepspeed  # deepspeed.zero is an attribute of the package, not an importable module

    params = [p for p in accelerator.unwrap_model(model).parameters() if p.requires_grad or not trainable_only]
    with deepspeed.zero.GatheredParameters(params, modifier_rank=0 if modify else None):
        yield


def take_snapshot(accelerator: Any, model: torch.nn.Module, step: int) -> Snapshot:
    """The guards' copy of the trainable weights (whole under ZeRO-3, a shard under FSDP)."""
    with whole_params(accelerator, model, trainable_only=True):
        return Snapshot.take(accelerator.unwrap_model(model), step)


def restore_snapshot(accelerator: Any, model: torch.nn.Module, snap: Snapshot) -> None:
    """Put a snapshot back into the model; under ZeRO into the fp32 masters too, which are what
    DeepSpeed steps and what the run returns (every rank holds the same snapshot)."""
    with whole_params(accelerator, model, trainable_only=True, modify=True):
        module = accelerator.unwrap_model(model)
        snap.restore(module)
        if is_zero(accelerator):
            from deepspeed.utils import safe_set_full_fp32_param

            for n, p in module.named_parameters():
                if p.requires_grad and n in snap.state:
                    safe_set_full_fp32_param(p, snap.state[n].to(device=p.device, dtype=torch.float32))


def _zero_layout(accelerator: Any, model: torch.nn.Module, optimizer: Any):
    """(ZeRO optimizer, base optimizer, [(base group index, [(name, parameter)], flat fp32 partition)])
    for each of ZeRO's sub-groups (stage 1/2: one per optimizer group)."""
    zero = getattr(optimizer, "optimizer", optimizer)  # accelerate's DeepSpeedOptimizerWrapper
    names = {id(p): n for n, p in accelerator.unwrap_model(model).named_parameters()}
    if zero_stage(accelerator) == 3:
        lp_groups, flats = zero.fp16_groups, zero.fp32_partitioned_groups_flat
        owner = [zero.sub_group_to_group_id[i] for i in range(len(flats))]
    else:
        lp_groups, flats = zero.bit16_groups, zero.single_partition_of_fp32_groups
        owner = list(range(len(flats)))
    layout = [(g, [(names[id(p)], p) for p in lp], flat) for g, lp, flat in zip(owner, lp_groups, flats)]
    return zero, zero.optimizer, layout


def _group_names(layout: list) -> dict[int, list[str]]:
    """The parameter names each base optimizer group holds, in ZeRO's order (`_zero_layout`)."""
    names: dict[int, list[str]] = {}
    for g, params, _ in layout:
        names.setdefault(g, []).extend(n for n, _ in params)
    return names


def zero_full_state(accelerator: Any, model: torch.nn.Module, trainable_only: bool) -> dict[str, torch.Tensor]:
    """The fp32 master weights of the trained parameters as whole tensors on the CPU (a collective),
    and with ``trainable_only=False`` the rest of the model's state from the working copy."""
    from deepspeed.utils import safe_get_full_fp32_param

    module = accelerator.unwrap_model(model)
    out = {}
    for n, p in module.named_parameters():
        full = safe_get_full_fp32_param(p) if p.requires_grad else None
        if full is not None:
            out[n] = full.detach().cpu().clone()
    if not trainable_only:
        with whole_params(accelerator, model):
            for k, v in module.state_dict().items():
                out.setdefault(k, v.detach().cpu().clone())
    return out


def zero_optimizer_state(accelerator: Any, model: torch.nn.Module, optimizer: Any) -> dict:
    """ZeRO's partitioned optimizer state as the whole state keyed by parameter name (the layout of
    a sharded FSDP checkpoint): a collective; the same on every rank."""
    from deepspeed.utils import safe_get_full_optimizer_state

    zero, base, layout = _zero_layout(accelerator, model, optimizer)
    state: dict[str, dict] = {}
    for _, params, flat in layout:
        flat_state = base.state.get(flat, {})
        per_element = sorted(k for k, v in flat_state.items() if torch.is_tensor(v) and v.shape == flat.shape)
        shared = {k: v for k, v in flat_state.items() if k not in per_element}  # e.g. Adam's step
        for n, p in params:
            s = {k: v.clone() if torch.is_tensor(v) else v for k, v in shared.items()}
            for k in per_element:
                s[k] = safe_get_full_optimizer_state(p, k).detach().cpu().clone()
            if s:
                state[n] = s
    names = _group_names(layout)
    param_groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": names.get(i, [])}
                    for i, group in enumerate(base.param_groups)]
    return {"state": state, "param_groups": param_groups}


def zero_load_state(accelerator: Any, model: torch.nn.Module, optimizer: Any, weights: dict[str, torch.Tensor],
                    optimizer_state: dict | None) -> None:
    """Put whole-tensor weights and optimizer state (`zero_full_state`, `zero_optimizer_state`) into
    the working copy, the fp32 master partitions and ZeRO's optimizer partitions."""
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

    module = accelerator.unwrap_model(model)
    with whole_params(accelerator, model, trainable_only=True, modify=True):
        module.load_state_dict(weights, strict=False)
    zero, base, layout = _zero_layout(accelerator, model, optimizer)
    for _, params, _ in layout:
        for n, p in params:
            if n in weights:
                safe_set_full_fp32_param(p, weights[n].to(device=p.device, dtype=torch.float32))
    if optimizer_state is None:
        return
    saved_groups = optimizer_state["param_groups"]
    names = _group_names(layout)
    if len(saved_groups) != len(base.param_groups) or any(
            saved["params"] != names.get(i, []) for i, saved in enumerate(saved_groups)):
        raise RuntimeError("the checkpoint's optimizer groups hold other parameters than this run's")
    for group, saved in zip(base.param_groups, saved_groups):
        group.update({k: v for k, v in saved.items() if k != "params"})
    for _, params, flat in layout:
        states = [optimizer_state["state"].get(n) for n, _ in params]
        if not any(states):
            continue
        first = next(s for s in states if s)
        per_element = [k for k, v in first.items() if torch.is_tensor(v) and k != "step"]
        flat_state = {k: torch.zeros_like(flat) for k in per_element}
        flat_state.update({k: v.clone() if torch.is_tensor(v) else v for k, v in first.items() if k not in per_element})
        base.state[flat] = flat_state  # created here as the optimizer's first step would
        for _, p in params:  # stage 1/2 read it through each parameter's fragment link
            if getattr(p, "_hp_mapping", None) is not None:
                p._hp_mapping.set_optim_state_fragment(flat, flat_state)
        for (n, p), s in zip(params, states):
            for k in per_element:
                safe_set_full_optimizer_state(p, s[k].to(device=p.device, dtype=torch.float32), k)
    if hasattr(zero, "_hp_optimizer_states_linked"):
        zero._hp_optimizer_states_linked = True


def zero3_load_switch() -> bool:
    """Whether transformers would partition models while loading them (its ZeRO-3 switch, which a
    ZeRO-3 accelerator turns on)."""
    try:
        from transformers.integrations import is_deepspeed_zero3_enabled
    except ImportError:
        return False
    return bool(is_deepspeed_zero3_enabled())


def restore_zero3_load_switch(was_on: bool) -> None:
    """Turn transformers' ZeRO-3 switch back off if this run's accelerator turned it on: obliviate
    loads models whole before accelerate starts (it never uses DeepSpeed's partition-while-loading),
    and a model loaded after the run (the next run in the same process, an audit) must load whole
    too, or it comes with empty parameters."""
    if not was_on and zero3_load_switch():
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()


def zero3_reference(accelerator: Any, reference: torch.nn.Module) -> torch.nn.Module:
    """The frozen reference model in a DeepSpeed engine of its own under ZeRO-3 (no optimizer), so
    its parameters are partitioned like the trained model's and gathered layer by layer in its
    forward (the way trl places a DPO reference model under ZeRO-3)."""
    import copy

    import deepspeed

    cfg = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    for k in ("optimizer", "scheduler"):
        cfg.pop(k, None)
    engine, *_ = deepspeed.initialize(model=reference, config=cfg)
    engine.eval()  # DeepSpeedEngine.eval returns None
    return engine
