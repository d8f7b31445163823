"""SatImp: gradient ascent with saturation × importance token weights.

Yang, Wang, Huang, Liu, Zhang, Han, "Exploring Criteria of Loss Reweighting to Enhance LLM
Unlearning", ICML 2025 (arXiv 2505.11953). Code: https://github.com/tmlr-group/SatImp;
OpenUnlearning `SatImp` (`compute_satimp_loss`): L_f = -mean_t[p_t^β1·(1-p_t)^β2·ℓ_t], weights
detached, over answer tokens. β1 = 5, β2 = 1.

Weights disagree upstream: OpenUnlearning's configs/trainer/SatImp.yaml sets γ (forget) = 0.1,
α (retain) = 1, while the `SatImp` class defaults (and the README, per the spec) say γ = 1,
α = 0.1. Hydra passes the YAML values over the class defaults, so the YAML is what OpenUnlearning
actually runs; we follow it (γ = 0.1, α = 1). Pass gamma=1.0, alpha=0.1 for the other reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class SatImpConfig:
    beta1: float = 5.0  # saturation exponent p^β1 (OpenUnlearning SatImp.yaml and class default)
    beta2: float = 1.0  # importance exponent (1-p)^β2 (same sources)
    gamma: float = 0.1  # forget weight (OpenUnlearning SatImp.yaml; the class default says 1.0)
    alpha: float = 1.0  # retain weight (OpenUnlearning SatImp.yaml; the class default says 0.1)
    retain_loss: Literal["nll", "kl", "none"] = "nll"  # OpenUnlearning retain_loss_type: NLL


@method("satimp", config=SatImpConfig, paper="Exploring Criteria of Loss Reweighting to Enhance LLM Unlearning",
        arxiv="2505.11953", code="https://github.com/tmlr-group/SatImp", streams=("forget", "retain"),
        needs=("retain_set (optional)", "reference_model (retain_loss=kl)"))
def satimp_loss(cfg: SatImpConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = γ·(-mean_t[sg(p_t)^β1·sg(1-p_t)^β2·ℓ_t]) + α·R(retain)."""
    f = batch["forget"]
    lp, mask = losses.token_logprobs(forward_logits(model, f), f["labels"])
    forget = losses.weighted_ascent_loss(lp, mask, losses.satimp_token_weights(lp, cfg.beta1, cfg.beta2))
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx)
    loss = cfg.gamma * forget + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {"satimp": forget.item(), "forget_nll": (-(lp * mask).sum() / mask.sum().clamp_min(1)).item()}
    if retain is not None:
        parts["retain_" + cfg.retain_loss] = retain.item()
    return LossOutput(loss, parts)
