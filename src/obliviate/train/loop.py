"""The one training loop every gradient-based unlearning method runs in.

Built on `accelerate` (device placement, gradient accumulation, several processes through
`accelerate launch` / `torchrun`), with optional LoRA through `peft`, a rich progress bar, atomic
safetensors checkpoints, resume after an interrupt and guard rails (NaN/inf stop, retain
collapse detection, best-checkpoint selection by a declared rule).

Under N processes (DDP, or FSDP2 with weights, gradients, optimizer state and the reference model
sharded) the run equals the 1-process run with N times the gradient accumulation: the same seeded
micro-batch plan, sharded by rank, gradients averaged, logged values and guard decisions global,
checkpoints and outputs gathered whole and written by the main process (see
`obliviate.train.distributed`).
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from transformers import PreTrainedTokenizerBase, get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

from obliviate.data.formatting import Encoded, PromptFormat, collate, encode_pair
from obliviate.data.task import ForgetTask, QAItem
from obliviate.data.refusals import REFUSALS
from obliviate.methods import losses
from obliviate.methods.base import MethodSpec, StepContext, gradient_masks, remove_gradient_masks
from obliviate.train import checkpoint as ckpt
from obliviate.train import distributed as dist
from obliviate.train import tracking
from obliviate.train.guards import BEST_RULES, CollapseGuard, Snapshot, TrainingStopped, rule_score

# The refusal pool for forget_alt when a task brings none (about 100, as TOFU/OpenUnlearning's idk set).
DEFAULT_REFUSALS = REFUSALS


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by all gradient methods (defaults: OpenUnlearning TOFU runs)."""

    lr: float = 1e-5  # OpenUnlearning TOFU unlearning lr
    epochs: float = 10.0  # OpenUnlearning: 10 epochs over the forget set
    max_steps: int = 0  # > 0 overrides epochs (optimizer steps)
    batch_size: int = 8  # per device micro-batch (OpenUnlearning: 8 x accumulation 4)
    grad_accum: int = 4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    # Warm-up as a share of an epoch, as OpenUnlearning's `warmup_epochs` (TOFU experiments: 1.0):
    # int(warmup_epochs x forget items // (batch_size x grad_accum)) steps; warmup_steps > 0 wins.
    warmup_epochs: float = 0.0
    lr_scheduler: Literal["linear", "constant"] = "linear"  # linear decay (HF Trainer default); MUSE: constant
    max_grad_norm: float = 1.0
    optimizer: Literal["adamw", "sgd"] = "adamw"
    seed: int = 0
    max_length: int = 256
    # Recompute each layer's activations in the backward pass instead of keeping them: activation
    # memory drops from O(layers x tokens) to about one layer's, for ~30% more compute per step.
    gradient_checkpointing: bool = False
    # LoRA via peft: train adapters only; the reference model is the adapter-disabled base.
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target: tuple[str, ...] = ()  # empty: peft's default layers for the architecture (GPT-2 c_attn, Llama q/v)
    lora_output: Literal["merged", "adapter"] = "merged"  # merged: a plain model; adapter: the PeftModel
    merge_lora: bool = True  # older presets' switch: false means lora_output="adapter"
    # Guard rails (on by default).
    guard_nan: bool = True
    collapse_factor: float = 3.0  # retain-probe NLL above factor x start (+0.5) = collapse; 0 disables
    collapse_action: Literal["stop", "warn"] = "stop"
    probe_every: int = 10  # probe forget/retain NLL every k optimizer steps; 0 disables probes
    probe_size: int = 16
    best_rule: str = "last"  # which probed step to return: last | max_forget_nll | min_retain_nll | max_gap
    checkpoint_every: int = 0  # write a resumable checkpoint every k steps into output_dir
    output_dir: str = ""
    progress: bool = True
    # Run tracking through accelerate's trackers: "none", "tensorboard", "wandb", "all" (every
    # installed one), or "auto" (tensorboard when it is installed and logging_dir is set). The loss,
    # every logged part and the probes go to the trackers at each step; the run's configs as the
    # tracker's hyper-parameters. logging_dir: where file-based trackers write (tensorboard events).
    report_to: str = "auto"
    logging_dir: str = ""

    def __post_init__(self) -> None:
        """Range checks, so a bad value fails before a model loads rather than as a traceback (or
        worse, a silent one-step run) mid-training."""
        checks = (
            ("lr", self.lr > 0 and math.isfinite(self.lr), "must be a positive number"),
            ("epochs", self.max_steps > 0 or (self.epochs > 0 and math.isfinite(self.epochs)),
             "must be above 0 (passes over the forget set; or set max_steps)"),
            ("max_steps", self.max_steps >= 0, "must be 0 (use epochs) or a positive number of optimizer steps"),
            ("batch_size", self.batch_size >= 1, "must be at least 1 (examples per micro-batch)"),
            ("grad_accum", self.grad_accum >= 1, "must be at least 1 (micro-batches per optimizer step)"),
            ("weight_decay", self.weight_decay >= 0, "must be 0 or more"),
            ("warmup_steps", self.warmup_steps >= 0, "must be 0 or more"),
            ("warmup_epochs", self.warmup_epochs >= 0 and math.isfinite(self.warmup_epochs), "must be 0 or more"),
            ("max_grad_norm", self.max_grad_norm >= 0, "must be 0 (no clipping) or more"),
            ("max_length", self.max_length >= 2, "must be at least 2 tokens (and above the longest prompt)"),
            ("lora_r", self.lora_r >= 1, "must be at least 1"),
            ("lora_alpha", self.lora_alpha > 0, "must be above 0"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "must be in [0, 1)"),
            ("collapse_factor", self.collapse_factor == 0 or (self.collapse_factor > 1
                                                              and math.isfinite(self.collapse_factor)),
             "must be above 1 (stop when the retain NLL passes that multiple of its start) or 0 to disable the guard"),
            ("probe_every", self.probe_every >= 0, "must be 0 (no probes) or more"),
            ("probe_size", self.probe_size >= 1, "must be at least 1"),
            ("checkpoint_every", self.checkpoint_every >= 0, "must be 0 (no checkpoints) or more"),
            ("best_rule", self.best_rule in BEST_RULES, f"must be one of {', '.join(BEST_RULES)}"),
        )
        bad = [(k, why) for k, ok, why in checks if not ok]
        if bad:
            from obliviate.config import ConfigError

            k, why = bad[0]
            raise ConfigError(f"train option {k}={getattr(self, k)!r} {why}")
        tracking.trackers_for(self.report_to, self.logging_dir)  # an unknown or missing tracker, before any work


@dataclass
class RunLog:
    """What happened during one run: per-step losses, probes, why it stopped, timing."""

    method: str
    steps: int = 0
    total_steps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    probes: list[dict[str, float]] = field(default_factory=list)
    stopped: str = "completed"
    best_step: int | None = None
    resumed_from: int | None = None
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)  # settings the run changed or ignored, and why
    num_processes: int = 1  # processes the run was sharded over (accelerate launch / torchrun)
    sharding: str = "none"  # "fsdp" when weights, gradients and optimizer state were sharded (FSDP2)
    # Parameter elements the main process held while training (trained model and reference): the
    # whole count without sharding, about 1/N of it with FSDP over N processes.
    params_per_process: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def guard_stopped(self) -> bool:
        """True when a guard (NaN/inf loss, utility collapse) ended the run early."""
        return self.stopped != "completed" and not self.stopped.startswith("collapse warning")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _AdapterDisabledReference(torch.nn.Module):
    """The LoRA model with its adapters switched off: the frozen pre-unlearning model, for free."""

    def __init__(self, peft_model: torch.nn.Module):
        super().__init__()
        self._m = [peft_model]  # a list, so the module is not registered as a child

    def forward(self, **kw):
        with self._m[0].disable_adapter():
            return self._m[0](**kw)


def encode_items(items: list[QAItem], tokenizer: PreTrainedTokenizerBase, fmt: PromptFormat, max_length: int,
                 answer: str = "answer", refusals: tuple[str, ...] = DEFAULT_REFUSALS, seed: int = 0) -> list:
    """Tokenise items; ``answer="alt"`` pairs each question with its refusal (``alt_answer`` or one
    drawn deterministically from ``refusals``)."""
    rng = random.Random(seed)
    out = []
    for it in items:
        a = it.answer if answer == "answer" else (it.alt_answer or rng.choice(refusals))
        out.append(encode_pair(tokenizer, fmt.prompt(it.question, tokenizer, it.context), fmt.answer(a, tokenizer),
                               append_eos=fmt.append_eos, max_length=max_length))
    return out


def encode_texts(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> list:
    """Raw documents (MUSE News/Books, WMDP corpora) as training examples: each text is tokenised
    once and cut into consecutive windows of ``max_length`` tokens (BOS first when the tokenizer has
    one), every token a label, as MUSE's unlearning scripts train on fixed-length chunks."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    width = max(1, max_length - len(bos))
    out = []
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        for s in range(0, len(ids), width):
            out.append(Encoded(bos + ids[s:s + width], len(bos)))
    return out


def _schedule(n: int, batch_size: int, n_micro: int, rng: random.Random) -> list[list[int]]:
    """``n_micro`` micro-batches of indices into ``n`` items, reshuffled every pass (epoch)."""
    out: list[list[int]] = []
    order: list[int] = []
    while len(out) < n_micro:
        if len(order) < batch_size:
            perm = list(range(n))
            rng.shuffle(perm)
            order = order + perm if len(order) else perm
            if n < batch_size:
                continue
        out.append(order[:batch_size])
        order = order[batch_size:]
    return out


def _probe_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor] | None) -> float:
    if batch is None:
        return float("nan")
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return float(losses.mean_nll_per_example(logits, batch["labels"]).mean())


def _activation_checkpointing(model: torch.nn.Module, on: bool, frozen_embeddings: bool = False) -> None:
    """Switch recomputing layer activations in the backward pass on or off.

    Non-reentrant: torch's recommended mode, and the one that is correct when no input of a
    checkpointed layer requires grad. With frozen embeddings (LoRA) their output has no grad, so
    peft's recipe applies as well: a hook marks it as requiring grad. transformers 5 registers
    that hook itself when checkpointing is switched on (and names the switch
    ``activation_checkpointing_*``; the old ``gradient_checkpointing_*`` names warn); older
    releases need it asked for. Switching off removes the hook, whoever registered it.
    """
    kwargs = {"use_reentrant": False}
    new_names = hasattr(model, "activation_checkpointing_enable")
    if on:
        if new_names:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if frozen_embeddings and not hasattr(model, "_require_grads_hook"):
            model.enable_input_require_grads()
        return
    if new_names:
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()
    if hasattr(model, "_require_grads_hook"):
        model.disable_input_require_grads()


def _check_distributed_type(accelerator: Accelerator) -> None:
    """Refuse, before any work, a multi-process setup the run cannot use."""
    from obliviate.config import ConfigError

    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise ImportError("this run was launched with a DeepSpeed config, but DeepSpeed is not installed; it is an "
                              "optional extra: pip install 'obliviate[deepspeed]' (or launch with presets/accelerate/ddp.yaml)")
    if kind == DistributedType.FSDP and getattr(accelerator.state.fsdp_plugin, "fsdp_version", 1) != 2:
        # The loop gathers and loads whole weights through torch.distributed.checkpoint's FSDP2 API.
        raise ConfigError("this run was launched with FSDP version 1; obliviate's training loop shards with FSDP "
                          "version 2 (fully_shard): set fsdp_version: 2 in the accelerate config (as "
                          "presets/accelerate/fsdp.yaml does), or launch with presets/accelerate/ddp.yaml")
    stage = accelerator.state.deepspeed_plugin.zero_stage if kind == DistributedType.DEEPSPEED else None
    if stage is not None and stage not in (1, 2, 3):
        # Checkpoints read the masters and optimizer state through ZeRO's partitions.
        raise ConfigError(f"this run was launched with DeepSpeed ZeRO stage {stage}; obliviate's training loop runs "
                          "DeepSpeed with zero_stage 1, 2 or 3 (presets/accelerate/deepspeed_zero2.yaml, "
                          "deepspeed_zero3.yaml), or use ddp.yaml")


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not enabled, transient=True)


def _model_digest(model: torch.nn.Module) -> str:
    from obliviate.models.loading import model_fingerprint

    return model_fingerprint(model)


def _check_answers_fit(streams: dict[str, list], task: ForgetTask, tokenizer: PreTrainedTokenizerBase,
                       fmt: PromptFormat, max_length: int) -> None:
    """Refuse a max_length that cuts a QA item down to its prompt: its answer would not be trained on
    (and its loss would be NaN)."""
    for name, items in (("forget", task.forget), ("retain", task.retain)):
        for i, (it, e) in enumerate(zip(items, streams[name])):
            if len(e.input_ids) > e.n_prompt:
                continue
            full = encode_pair(tokenizer, fmt.prompt(it.question, tokenizer, it.context),
                               fmt.answer(it.answer, tokenizer), append_eos=fmt.append_eos, max_length=10**9)
            from obliviate.config import ConfigError

            raise ConfigError(f"train option max_length={max_length} is not above the prompt of {name} item {i} "
                              f"(id {it.id!r}): the prompt alone is {full.n_prompt} tokens, so none of its answer "
                              f"would be trained on. Raise max_length to at least {len(full.input_ids)}, or shorten "
                              "the prompt (system prompt, template).")


def _retain_guard_notices(train_cfg: TrainConfig, has_retain: bool) -> list[str]:
    """Guards and rules that read the retain-probe NLL: without retain data the collapse guard is
    off (with a notice), and a best-step rule that scores the retain NLL cannot be applied."""
    import warnings

    if has_retain:
        return []
    if train_cfg.best_rule in ("min_retain_nll", "max_gap"):
        from obliviate.config import ConfigError

        raise ConfigError(f"train option best_rule={train_cfg.best_rule!r} scores the retain NLL, but there is no "
                          "retain data; give retain data or use best_rule=last or max_forget_nll")
    notices = []
    if train_cfg.collapse_factor > 0 and train_cfg.probe_every:
        notices.append("no retain data: the utility-collapse guard is off (it watches the retain NLL); give retain "
                       "data to turn it on")
    for n in notices:
        warnings.warn(n, stacklevel=3)
    return notices


def _snapshot_ref(snap: Snapshot, step: int, initial: Snapshot, tensors: dict) -> dict:
    """How a checkpoint at ``step`` refers to a guard's snapshot: the starting weights, the weights at
    the checkpoint itself, or a copy saved with it."""
    if snap is initial:
        return {"step": snap.step, "source": "initial"}
    if snap.step == step:  # taken at this step's probe, after its optimizer step: the current weights
        return {"step": snap.step, "source": "current"}
    tensors.setdefault(f"step{snap.step}", snap.state)
    return {"step": snap.step, "source": f"step{snap.step}"}


def _run_state(step: int, log: RunLog, guard: CollapseGuard | None, good: Snapshot, initial: Snapshot,
               best: tuple[float, Snapshot] | None) -> tuple[dict, dict]:
    """The guards' state at ``step`` for a checkpoint (JSON) and the weight snapshots it needs."""
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    state = {
        "probes": log.probes, "stopped": log.stopped,
        "collapse": {"start": guard.start, "history": guard.history} if guard is not None else None,
        "good": _snapshot_ref(good, step, initial, tensors),
        "best": None if best is None else {"score": best[0], **_snapshot_ref(best[1], step, initial, tensors)},
    }
    return state, tensors


def _nan_back(rows: list[dict]) -> list[dict]:
    """Checkpoint metadata is strict JSON (NaN stored as null): turn the numbers back."""
    return [{k: float("nan") if v is None else v for k, v in r.items()} for r in rows]


def _restore_run_state(meta: dict, log: RunLog, guard: CollapseGuard | None, initial: Snapshot,
                       model: torch.nn.Module, out_dir: str, current: Snapshot
                       ) -> tuple[Snapshot, tuple[float, Snapshot] | None]:
    """Put the log and the guards back as they were when the checkpoint was written (the model,
    optimizer and scheduler are restored already, ``current`` is their snapshot); returns the last
    good and the best snapshots."""
    state = meta.get("run_state") or {}
    log.history = _nan_back(meta.get("history", []))
    log.probes = _nan_back(state.get("probes", []))
    log.stopped = state.get("stopped", "completed")
    collapse = state.get("collapse")
    if guard is not None and collapse:
        guard.start = collapse["start"]
        guard.history = [(int(s), float("nan") if v is None else v) for s, v in collapse["history"]]

    def snap(ref: dict) -> Snapshot:
        if ref["source"] == "initial":
            return initial
        if ref["source"] == "current":
            return current
        return Snapshot(int(ref["step"]), dist.shard_like(model, ckpt.load_snapshot(out_dir, ref["source"])))

    good = snap(state["good"]) if state.get("good") else current
    b = state.get("best")
    best = None
    if b:
        score = float("nan") if b["score"] is None else b["score"]
        best = (score, good if (b["source"], b["step"]) == (state["good"]["source"], state["good"]["step"])
                else snap(b))
    return good, best


def run_unlearning(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, task: ForgetTask, spec: MethodSpec,
                   method_cfg: Any, train_cfg: TrainConfig, fmt: PromptFormat | None = None,
                   needs_reference: bool = False) -> tuple[torch.nn.Module, RunLog]:
    """Run a gradient method on ``task``; returns the unlearned model and the run log.

    The model is modified in place (pass a copy to keep the original) and keeps its dtype. With
    ``train_cfg.lora`` the returned model has the adapters merged, or is the `PeftModel` with
    ``lora_output="adapter"`` (or the older ``merge_lora=False``).
    """
    # A ZeRO-3 accelerator turns on transformers' partition-while-loading switch; it is set back
    # however the run ends, so a model loaded afterwards in this process loads whole.
    zero3_switch = dist.zero3_load_switch()
    try:
        return _run_unlearning(model, tokenizer, task, spec, method_cfg, train_cfg, fmt, needs_reference)
    finally:
        dist.restore_zero3_load_switch(zero3_switch)


def _run_unlearning(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, task: ForgetTask, spec: MethodSpec,
                    method_cfg: Any, train_cfg: TrainConfig, fmt: PromptFormat | None,
                    needs_reference: bool) -> tuple[torch.nn.Module, RunLog]:
    if spec.loss is None:
        raise TypeError(f"method {spec.name!r} is not a gradient method; call its run() instead")
    if train_cfg.best_rule not in BEST_RULES:
        raise ValueError(f"best_rule={train_cfg.best_rule!r}; choose from {', '.join(BEST_RULES)}")
    task.validate()
    fmt = fmt or PromptFormat()
    seed_everything(train_cfg.seed)
    # accelerate divides each micro-batch loss by grad_accum and skips the gradient all-reduce on all
    # but the last micro-batch of a step (`accumulate`).
    trackers = tracking.trackers_for(train_cfg.report_to, train_cfg.logging_dir)
    accelerator = Accelerator(gradient_accumulation_steps=train_cfg.grad_accum, cpu=not torch.cuda.is_available(),
                              log_with=trackers or None, project_dir=train_cfg.logging_dir or None)
    world, rank = accelerator.num_processes, accelerator.process_index
    _check_distributed_type(accelerator)
    if accelerator.distributed_type not in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        # On the device before a prepare hook runs: its masks and saliency live where the gradients will.
        model = model.to(accelerator.device)
    t0 = time.perf_counter()
    # The starting weights' hash goes into the resume fingerprint; only runs with an output_dir pay for it.
    start_digest = _model_digest(model) if train_cfg.output_dir else ""

    reference: torch.nn.Module | None = None
    if train_cfg.lora:
        from obliviate.models.lora import wrap_lora

        model = wrap_lora(model, train_cfg.lora_r, train_cfg.lora_alpha, train_cfg.lora_dropout, train_cfg.lora_target)
        if needs_reference:
            reference = _AdapterDisabledReference(model)
    elif needs_reference:
        reference = copy.deepcopy(model).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
    if train_cfg.gradient_checkpointing:
        _activation_checkpointing(model, True, frozen_embeddings=train_cfg.lora)

    # QA items and raw documents (MUSE/WMDP-style tasks) feed the same forget / retain streams
    streams = {
        "forget": encode_items(task.forget, tokenizer, fmt, train_cfg.max_length)
        + encode_texts(task.forget_texts, tokenizer, train_cfg.max_length),
        "retain": encode_items(task.retain, tokenizer, fmt, train_cfg.max_length)
        + encode_texts(task.retain_texts, tokenizer, train_cfg.max_length),
        "forget_alt": encode_items(task.forget, tokenizer, fmt, train_cfg.max_length, answer="alt",
                                   refusals=tuple(task.metadata.get("idk_answers", DEFAULT_REFUSALS)),
                                   seed=train_cfg.seed),
    }
    used = spec.streams_for(method_cfg)  # the streams this config reads (GRIN: forget_alt only with inner=idk)
    lead = "forget" if "forget" in used else used[0]
    n_lead = len(streams[lead])
    micro_per_epoch = max(1, math.ceil(n_lead / train_cfg.batch_size))
    # One optimizer step consumes grad_accum micro-batches on each of the `world` processes.
    per_step = train_cfg.grad_accum * world
    total = train_cfg.max_steps or max(1, math.ceil(train_cfg.epochs * micro_per_epoch / per_step))
    n_micro = total * per_step
    rng = random.Random(train_cfg.seed)
    plans = {s: _schedule(len(streams[s]), train_cfg.batch_size, n_micro, rng)
             for s in used if streams.get(s) and s != "forget_alt"}
    if "forget_alt" in used and task.forget_texts:
        raise ValueError(f"method {spec.name!r} pairs each forget question with an alternative answer; the task's "
                         f"raw forget texts ({len(task.forget_texts)}) have none. Give the forget data as QA items, "
                         "or pick a method that reads raw text (ga, graddiff, npo, simnpo, rmu, ...).")
    if "forget_alt" in used:
        # forget_alt holds the same questions as forget, with alternative answers: keep the two
        # aligned row by row (DPO's win/lose pairs, FLAT's template/forget pairs).
        plans["forget_alt"] = plans.get("forget") or _schedule(len(streams["forget_alt"]), train_cfg.batch_size,
                                                               n_micro, rng)
    missing = [s for s in used if s != "retain" and not streams.get(s)]
    if missing:
        raise ValueError(f"method {spec.name!r} needs the {missing[0]!r} data stream, which is empty")
    _check_answers_fit(streams, task, tokenizer, fmt, train_cfg.max_length)
    notices = _retain_guard_notices(train_cfg, has_retain=bool(streams["retain"]))
    launch = dist.single_process_launch_notice(world)
    if launch:
        import warnings

        warnings.warn(launch, stacklevel=2)
        notices.append(launch)

    groups = spec.prepare(method_cfg, model, task, tokenizer, fmt) if spec.prepare is not None else None
    sharded = dist.is_sharded(accelerator)
    zero = dist.is_zero(accelerator)  # DeepSpeed ZeRO: masters and optimizer state partitioned (stage 3: weights)
    sharding = "fsdp" if sharded else f"zero{dist.zero_stage(accelerator)}" if zero else "none"
    if (sharded or dist.zero_stage(accelerator) == 3) and gradient_masks(model):
        from obliviate.config import ConfigError

        raise ConfigError(f"method {spec.name!r} masks parameter gradients with hooks, which parameter sharding "
                          "(FSDP's fully_shard, ZeRO-3's partitions) replaces; run it with presets/accelerate/ddp.yaml "
                          "(or deepspeed_zero2.yaml), or with --train lora=true")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"method {spec.name!r} left no trainable parameters")
    opt_params = groups if groups else params
    if train_cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(opt_params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    else:
        optimizer = torch.optim.SGD(opt_params, lr=train_cfg.lr, momentum=0.9, weight_decay=train_cfg.weight_decay)
    warmup = train_cfg.warmup_steps or int(train_cfg.warmup_epochs * n_lead // (train_cfg.batch_size * per_step))
    if train_cfg.lr_scheduler == "constant":
        scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
    else:
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    dist.configure_deepspeed(accelerator, train_cfg.batch_size, train_cfg.grad_accum, train_cfg.max_grad_norm)
    # Sharded (FSDP or ZeRO): the plain model the run returns, built before prepare changes the model
    # (fully_shard replaces the parameters; DeepSpeed casts them to its precision).
    plain = dist.skeleton(model) if sharded or zero else None
    model, optimizer = accelerator.prepare(model, optimizer)
    dist.sync_prepared(accelerator, accelerator.unwrap_model(model), groups)
    if reference is not None and not train_cfg.lora:
        reference = dist.place_reference(accelerator, reference)
    device = accelerator.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def to_dev(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in b.items()}

    probe = {s: to_dev(collate(streams[s][: train_cfg.probe_size], pad)) if streams.get(s) else None
             for s in ("forget", "retain")}
    log = RunLog(method=spec.name, total_steps=total, notices=notices, num_processes=world,
                 sharding=sharding,
                 params_per_process=dist.local_numel(model) + (dist.local_numel(reference) if reference is not None
                                                               and not train_cfg.lora else 0))
    # The collapse guard watches the retain NLL: without retain data it has nothing to watch (notice above).
    guard = CollapseGuard(train_cfg.collapse_factor) if train_cfg.collapse_factor > 0 and probe["retain"] is not None \
        else None
    # In-memory snapshots of the trainable weights back the NaN/collapse roll-back; above ~200M
    # trainable parameters they would double memory, so large full fine-tunes rely on disk checkpoints.
    small = sum(p.numel() for p in params) <= 200_000_000
    good = initial = dist.take_snapshot(accelerator, model, 0)
    best: tuple[float, Snapshot] | None = None
    start_step = 0
    fingerprint = None
    if train_cfg.output_dir:
        fingerprint = ckpt.run_fingerprint(spec.name, method_cfg, train_cfg, ckpt.data_digest(streams), start_digest)
        if world > 1:  # the step count and the batch of a step depend on it (absent for 1 process: older checkpoints)
            fingerprint["train_config"]["num_processes"] = world
        if sharding != "none":  # its optimizer state is keyed by parameter name
            fingerprint["train_config"]["sharding"] = sharding
        meta = ckpt.load_checkpoint(train_cfg.output_dir, accelerator.unwrap_model(model), optimizer, scheduler,
                                    fingerprint=fingerprint,
                                    apply=lambda w, o: dist.load_full_state(accelerator, model, optimizer, w, o))
        if meta is not None:
            start_step = log.resumed_from = int(meta["step"])
            good, best = _restore_run_state(meta, log, guard, good, accelerator.unwrap_model(model),
                                            train_cfg.output_dir, dist.take_snapshot(accelerator, model, start_step))
    ctx = StepContext(step=start_step, total_steps=total, reference=reference,
                      steps_per_epoch=micro_per_epoch / per_step)
    if train_cfg.output_dir and meta is not None:
        ctx.state.update(meta.get("method_state") or {})  # e.g. PDU's dual variable, as it was at the checkpoint

    def do_probe(step: int) -> dict[str, float]:
        model.eval()
        # Every rank runs the probe (FSDP's forward is a collective); the guards read the main process's values.
        f, r = dist.broadcast_floats(accelerator, [_probe_nll(model, probe["forget"]), _probe_nll(model, probe["retain"])])
        p = {"step": step, "forget_nll": f, "retain_nll": r}
        if trackers:
            accelerator.log({"probe/forget_nll": f, "probe/retain_nll": r}, step=step)
        model.train()
        log.probes.append(p)
        return p

    if trackers:
        accelerator.init_trackers(tracking.PROJECT, config=tracking.hparams(spec.name, method_cfg, train_cfg))
    model.train()
    if train_cfg.probe_every and start_step == 0:
        first = do_probe(0)
        if guard is not None and math.isfinite(first["retain_nll"]):
            guard.update(0, first["retain_nll"])
    step = start_step
    with _progress(train_cfg.progress and accelerator.is_main_process) as bar:
        tid = bar.add_task(f"unlearn {spec.name}", total=total, completed=start_step, info="")
        try:
            for step in range(start_step, total):
                ctx.step = step
                sums: dict[str, float] = {}
                bad: list[float] = []
                for a in range(train_cfg.grad_accum):
                    # This rank's a-th micro-batch of the step: plan entry (step*A + a)*N + rank, the
                    # sharding of accelerate's BatchSamplerShard; every rank runs A of them per step.
                    m = (step * train_cfg.grad_accum + a) * world + rank
                    batch = {s: to_dev(collate([streams[s][i] for i in plan[m]], pad)) for s, plan in plans.items()}
                    with accelerator.accumulate(model):
                        out = spec.loss(method_cfg, model, batch, ctx)
                        if train_cfg.guard_nan and not torch.isfinite(out.loss).all():
                            bad.append(out.loss.item())
                        accelerator.backward(out.loss)  # / grad_accum; gradients all-reduced on the last
                    for k, v in {"loss": out.loss.item(), **out.parts}.items():
                        sums[k] = sums.get(k, 0.0) + v / train_cfg.grad_accum
                if step == start_step:
                    dist.check_same_keys(accelerator, list(sums))
                # Averaged over ranks = the 1-process average over all N*A micro-batches; the NaN
                # guard counts over all ranks, before any optimizer step has used the gradients.
                sums, n_bad = dist.reduce_logged(accelerator, sums, len(bad))
                if n_bad:
                    what = bad[0] if bad else "non-finite on another process"
                    raise TrainingStopped(f"loss became {what} at step {step}; stopped and restored the last good "
                                          "weights")
                if train_cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), train_cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                log.history.append({"step": step + 1, **sums})
                if trackers:
                    accelerator.log({f"train/{k}": v for k, v in sums.items()}, step=step + 1)
                log.steps = step + 1
                bar.update(tid, advance=1, info=f"loss {sums.get('loss', float('nan')):.3f}")
                if train_cfg.probe_every and (step + 1) % train_cfg.probe_every == 0 or step + 1 == total:
                    if train_cfg.probe_every:
                        p = do_probe(step + 1)
                        if guard is not None and guard.update(step + 1, p["retain_nll"]):
                            msg = (f"retain NLL {p['retain_nll']:.3f} passed {train_cfg.collapse_factor}x its start "
                                   f"{guard.start:.3f} at step {step + 1}")
                            if train_cfg.collapse_action == "stop":
                                raise TrainingStopped("utility collapse: " + msg + "; restored the last good weights")
                            log.stopped = "collapse warning: " + msg
                        if not math.isfinite(p["retain_nll"]) and probe["retain"] is not None:
                            raise TrainingStopped(f"non-finite retain NLL at step {step + 1}")
                        if small:
                            good = dist.take_snapshot(accelerator, model, step + 1)
                        if train_cfg.best_rule != "last":
                            s = rule_score(train_cfg.best_rule, p["forget_nll"], p["retain_nll"])
                            if best is None or s > best[0]:
                                best = (s, good)
                if train_cfg.output_dir and train_cfg.checkpoint_every and (step + 1) % train_cfg.checkpoint_every == 0:
                    accelerator.wait_for_everyone()
                    state, snapshots = _run_state(step + 1, log, guard, good, initial, best)
                    # Sharded, every rank takes part in gathering whole tensors; the main process writes.
                    weights = opt_state = None
                    if sharded:
                        weights = dist.full_state(model, {n for n, q in model.named_parameters() if q.requires_grad})
                        opt_state = dist.full_optimizer_state(model, optimizer)
                    elif zero:  # the fp32 masters and ZeRO's partitioned optimizer state, whole
                        weights = dist.zero_full_state(accelerator, model, trainable_only=True)
                        opt_state = dist.zero_optimizer_state(accelerator, model, optimizer)
                    snapshots = dist.gather_snapshots(accelerator, snapshots)
                    if accelerator.is_main_process:
                        ckpt.save_checkpoint(train_cfg.output_dir, accelerator.unwrap_model(model), optimizer,
                                             scheduler, step + 1, {"history": log.history, "fingerprint": fingerprint,
                                                                   "run_state": state, "method_state": ctx.state},
                                             snapshots=snapshots, weights=weights, optimizer_state=opt_state)
        except TrainingStopped as e:
            dist.restore_snapshot(accelerator, model, good)
            log.stopped = str(e)
            log.steps = good.step
    if best is not None and train_cfg.best_rule != "last":
        dist.restore_snapshot(accelerator, model, best[1])
        log.best_step = best[1].step
    accelerator.wait_for_everyone()  # every rank has finished before anyone returns (and writes) the model
    if trackers:
        accelerator.end_training()
    # Sharded: the whole trained weights go into the plain model on the main process (a collective).
    model = dist.gather_model(accelerator, model, plain) if sharded or zero else accelerator.unwrap_model(model)
    model.eval()
    remove_gradient_masks(model)
    if not train_cfg.lora:  # a prepare hook may have frozen parameters for the run only
        for p in model.parameters():
            p.requires_grad_(True)
    if train_cfg.gradient_checkpointing:  # a training-time setting: the returned model runs as loaded
        _activation_checkpointing(model, False)
    if train_cfg.lora and train_cfg.lora_output == "merged" and train_cfg.merge_lora:
        model = model.merge_and_unload()
    log.seconds = time.perf_counter() - t0
    return model, log
