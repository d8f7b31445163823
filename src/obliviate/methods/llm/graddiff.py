"""Gradient difference: ascend on forget, descend on retain.

Liu et al., "Continual Learning and Private Unlearning", CoLLAs 2022 (arXiv 2203.12817);
TOFU `grad_diff` and OpenUnlearning `GradDiff` (γ = α = 1, retain NLL by default; `kl` gives
TOFU's "KL minimisation" baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class GradDiffConfig:
    gamma: float = 1.0  # forget weight (OpenUnlearning configs/trainer/GradDiff.yaml)
    alpha: float = 1.0  # retain weight (same source)
    retain_loss: Literal["nll", "kl"] = "nll"  # OpenUnlearning default retain_loss_type: NLL


@method("graddiff", config=GradDiffConfig, paper="Continual Learning and Private Unlearning", arxiv="2203.12817",
        code="https://github.com/locuslab/open-unlearning", streams=("forget", "retain"),
        needs=("retain_set", "reference_model (retain_loss=kl)"))
def graddiff_loss(cfg: GradDiffConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = -γ·NLL(forget) + α·R(retain), R = NLL or KL(p_ref ‖ p_θ)."""
    forget_nll = losses.nll(forward_logits(model, batch["forget"]), batch["forget"]["labels"])
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx)
    loss = -cfg.gamma * forget_nll + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {"forget_nll": forget_nll.item()}
    if retain is not None:
        parts["retain_" + cfg.retain_loss] = retain.item()
    return LossOutput(loss, parts)
