"""Guard rails: stop on NaN/inf, detect utility collapse, keep the best checkpoint by a declared rule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


class TrainingStopped(RuntimeError):
    """Raised inside the loop when a guard stops the run; the loop restores the last good state."""


@dataclass
class Snapshot:
    """An in-memory copy of the trainable weights (CPU) taken at a known-good step."""

    step: int
    state: dict[str, torch.Tensor]

    @classmethod
    def take(cls, model: torch.nn.Module, step: int) -> "Snapshot":
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        return cls(step, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if k in names})

    def restore(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.state, strict=False)


def check_finite(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss).all():
        raise TrainingStopped(f"loss became {loss.item()} at step {step}; stopped and restored the last good weights")


@dataclass
class CollapseGuard:
    """Utility collapse: the retain-probe NLL rises past ``factor`` × its starting value.

    GA-style methods drive every probability down; once retain answers are as unlikely as
    forget answers the model is broken, and continuing only hides that.
    """

    factor: float = 3.0
    start: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)

    def update(self, step: int, retain_nll: float) -> bool:
        self.history.append((step, retain_nll))
        if self.start is None:
            self.start = retain_nll
            return False
        if not math.isfinite(retain_nll):
            return True
        return retain_nll > self.factor * max(self.start, 1e-3) + 0.5

BEST_RULES = ("last", "max_forget_nll", "min_retain_nll", "max_gap")


def rule_score(rule: str, forget_nll: float, retain_nll: float) -> float:
    """Higher is better under the declared rule."""
    if rule == "max_forget_nll":
        return forget_nll
    if rule == "min_retain_nll":
        return -retain_nll
    if rule == "max_gap":
        return forget_nll - retain_nll
    raise ValueError(f"unknown best-checkpoint rule {rule!r}; choose from {', '.join(BEST_RULES)}")
