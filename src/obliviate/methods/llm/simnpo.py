"""SimNPO: reference-free, length-normalised NPO.

Fan, Liu, Lin, Jia, Zhang, Mei, Liu, "Simplicity Prevails: Rethinking Negative Preference
Optimization for LLM Unlearning" (arXiv 2410.07163). Code: https://github.com/OPTML-Group/Unlearn-Simple;
OpenUnlearning `SimNPO` defaults β = 4.5, γ(δ) = 0, forget weight 0.125, retain NLL weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class SimNPOConfig:
    beta: float = 4.5  # OpenUnlearning configs/trainer/SimNPO.yaml (TOFU)
    margin: float = 0.0  # γ in the paper, δ in OpenUnlearning; 0 for TOFU
    forget_weight: float = 0.125  # OpenUnlearning `gamma`
    alpha: float = 1.0  # retain weight
    retain_loss: Literal["nll", "kl", "none"] = "nll"


@method("simnpo", config=SimNPOConfig,
        paper="Simplicity Prevails: Rethinking Negative Preference Optimization for LLM Unlearning",
        arxiv="2410.07163", code="https://github.com/OPTML-Group/Unlearn-Simple", streams=("forget", "retain"),
        needs=("retain_set (optional)",))
def simnpo_loss(cfg: SimNPOConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = w·(-(2/β) log σ(β·NLL_mean(y|x) - γ)) + α·R(retain)."""
    f = batch["forget"]
    mean_nll = losses.mean_nll_per_example(forward_logits(model, f), f["labels"])
    forget = losses.simnpo_loss(mean_nll, cfg.beta, cfg.margin)
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx)
    loss = cfg.forget_weight * forget + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {"simnpo": forget.item(), "forget_nll": mean_nll.mean().item()}
    if retain is not None:
        parts["retain_" + cfg.retain_loss] = retain.item()
    return LossOutput(loss, parts)
