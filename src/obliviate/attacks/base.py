"""The attack contract: take a model (and its task) and return a new model and/or new inputs.

The audit re-scores the attacked model on the attacked task with the same metrics, and reports
each metric before and after the attack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from obliviate.data.task import ForgetTask
from obliviate.registry import register


@dataclass
class AttackResult:
    """An attacked model (or the same model) and the task to re-score it on."""

    model: torch.nn.Module
    task: ForgetTask
    details: dict[str, Any] = field(default_factory=dict)


def attack(name: str, *, paper: str, arxiv: str = "", code: str = "", summary: str = "",
           needs: tuple[str, ...] = ()) -> Callable[[Callable[..., AttackResult]], Callable[..., AttackResult]]:
    """Register ``fn(model, task, tokenizer, **params) -> AttackResult`` as attack ``name``."""
    return register("attack", name, paper=paper, arxiv=arxiv, code=code, modalities=("text",), needs=needs,
                    summary=summary)
