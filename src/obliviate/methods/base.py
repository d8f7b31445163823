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
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as method ``name``: a loss (``kind="loss"``) or a procedure (``kind="run"``)."""

    def deco(fn: Callable) -> Callable:
        spec = MethodSpec(
            name=name,
            config_cls=config,
            loss=fn if kind == "loss" else None,
            run=fn if kind == "run" else None,
            streams=streams,
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
        )(spec)
        return fn

    return deco
