"""The method contract shared by every unlearning method.

A method is a frozen config dataclass (paper defaults, each field commented with its source)
plus either
- ``loss(cfg, model, batch, ctx) -> LossOutput``: a gradient method run by the one training
  loop (`obliviate.train.loop`), or
- ``run(cfg, model, task, ctx) -> model``: a procedure (retrain, task vector, an inference-time
  wrapper, a vision method with its own schedule).
Shared math lives in ``methods/losses.py``; methods do not inherit from each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from obliviate.registry import register

# A ``needs`` entry: the method reads forget *questions* (a prompt classifier, refusals, preference
# pairs), so a raw-text task (MUSE, WMDP corpora) is refused before any model loads
# (`obliviate.api.check_method_data`). Gradient methods that read the ``forget_alt`` stream are
# refused the same way without declaring it.
FORGET_QA = "forget QA items"


@dataclass
class LossOutput:
    """The scalar to minimise and the named parts to log (floats)."""

    loss: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its config class and how it is run."""

    name: str
    config_cls: type
    loss: Callable[..., LossOutput] | None = None
    run: Callable[..., Any] | None = None
    # Batches a gradient method consumes each step: "forget", "retain", "forget_alt" (forget
    # questions with alternative answers such as refusals).
    streams: tuple[str, ...] = ("forget",)
    # Optional hook run by the loop before the optimiser is built: may freeze parameters
    # (requires_grad), register gradient hooks (masks) or perturb weights, and may return
    # optimiser parameter groups (e.g. a larger lr on salient modules). Signature:
    # prepare(cfg, model, task, tokenizer, fmt) -> list[dict] | None
    prepare: Callable[..., Any] | None = None
    # Optional: the streams a given config consumes, when that depends on the config (GRIN reads
    # forget_alt only with its IdK inner objective). None = ``streams`` whatever the config.
    streams_fn: Callable[[Any], tuple[str, ...]] | None = None

    def streams_for(self, cfg: Any) -> tuple[str, ...]:
        """The data streams this method reads under ``cfg``."""
        return self.streams_fn(cfg) if self.streams_fn is not None else self.streams

    def make_config(self, overrides: dict | None = None) -> Any:
        from obliviate.config import build_dataclass

        return build_dataclass(self.config_cls, overrides or {}, where=f"method {self.name!r}")


def method(
    name: str,
    *,
    config: type,
    paper: str,
    arxiv: str = "",
    code: str = "",
    modalities: tuple[str, ...] = ("text",),
    needs: tuple[str, ...] = (),
    streams: tuple[str, ...] = ("forget",),
    kind: str = "loss",
    summary: str = "",
    prepare: Callable[..., Any] | None = None,
    saveable: bool = True,
    streams_fn: Callable[[Any], tuple[str, ...]] | None = None,
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as method ``name``: a loss (``kind="loss"``) or a procedure (``kind="run"``).

    ``saveable=False`` marks a method whose result is an inference-time wrapper with no weights of
    its own (ECO, WHP logits): it cannot be saved as a model folder, so `obliviate unlearn` refuses
    it before any work instead of failing after it."""

    def deco(fn: Callable) -> Callable:
        spec = MethodSpec(
            name=name,
            config_cls=config,
            loss=fn if kind == "loss" else None,
            run=fn if kind == "run" else None,
            streams=streams,
            prepare=prepare,
            streams_fn=streams_fn,
        )
        register(
            "method",
            name,
            paper=paper,
            arxiv=arxiv,
            code=code,
            modalities=modalities,
            needs=needs,
            summary=summary or (fn.__doc__ or "").strip().split("\n")[0],
            saveable=saveable,
        )(spec)
        return fn

    return deco


@dataclass
class StepContext:
    """What a loss may use besides the model and the batch.

    ``reference`` is a frozen copy of the model as it was before unlearning (created only for
    methods that declare ``needs=("reference_model",)``).
    """

    step: int = 0
    total_steps: int = 1
    reference: torch.nn.Module | None = None
    # Optimizer steps per pass over the forget set (0 = unknown), for methods scheduled in epochs (PDU).
    steps_per_epoch: float = 0.0
    # Mutable per-run state a loss keeps between steps (PDU's dual variable); one context per run.
    state: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def ref_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.reference is None:
            raise RuntimeError("this method needs the reference model, but none was created; "
                               "declare needs=('reference_model',) when registering it")
        return self.reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def forward_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of a causal LM on a collated batch."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def retain_term(kind: str, model: torch.nn.Module, batch: dict[str, torch.Tensor] | None,
                ctx: StepContext) -> torch.Tensor | None:
    """The retain regulariser shared by GradDiff, NPO, SimNPO, IdK: NLL on retain answers, or
    KL(p_ref ‖ p_θ) on them (answer tokens only); ``"none"`` gives no term."""
    from obliviate.methods import losses

    if kind == "none" or batch is None:
        return None
    logits = forward_logits(model, batch)
    if kind == "nll":
        return losses.nll(logits, batch["labels"])
    if kind == "kl":
        return losses.kl_to_reference(logits, ctx.ref_logits(batch), batch["labels"])
    raise ValueError(f"retain_loss must be 'nll', 'kl' or 'none', got {kind!r}")


_HOOKS_ATTR = "_obliviate_grad_hooks"
_MASKS_ATTR = "_obliviate_grad_masks"


def add_gradient_mask(model: torch.nn.Module, param: torch.nn.Parameter, mask: torch.Tensor) -> None:
    """Multiply ``param``'s gradient by ``mask`` during this run (for masked fine-tuning set up in a
    ``prepare`` hook). The training loop removes these hooks when the run ends, so the returned model
    trains normally afterwards (e.g. under the relearning attack)."""
    handle = param.register_hook(lambda grad: grad * mask)
    model.__dict__.setdefault(_HOOKS_ATTR, []).append(handle)
    # Kept so a multi-process run can broadcast the main process's masks in place (train/distributed.py).
    model.__dict__.setdefault(_MASKS_ATTR, []).append(mask)


def gradient_masks(model: torch.nn.Module) -> list[torch.Tensor]:
    """The masks registered with `add_gradient_mask` for this run, in registration order."""
    return list(model.__dict__.get(_MASKS_ATTR, []))


def remove_gradient_masks(model: torch.nn.Module) -> None:
    model.__dict__.pop(_MASKS_ATTR, None)
    for handle in model.__dict__.pop(_HOOKS_ATTR, []):
        handle.remove()
