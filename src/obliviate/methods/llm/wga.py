"""Weighted gradient ascent (WGA): gradient ascent with each token weighted by its probability.

Wang, Zhou, Zhou, Shin, Han, Weinberger, "Rethinking LLM Unlearning Objectives: A Gradient
Perspective and Go Beyond", ICLR 2025 (arXiv 2502.19301). Code: https://github.com/tmlr-group/G-effect;
OpenUnlearning `WGA` (`compute_wga_loss`): L_f = -mean_t[p_t^β·ℓ_t], p_t = e^{-ℓ_t} detached,
over answer tokens. The weight shrinks the ascent on tokens already forgotten (p_t → 0), which
tames GA's "inverse confidence" blow-up. Defaults: OpenUnlearning configs/trainer/WGA.yaml
(β = 1, γ = 1, α = 1, retain NLL, lr 1e-5, 5 epochs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class WGAConfig:
    beta: float = 1.0  # weight exponent p_t^β (OpenUnlearning WGA.yaml)
    gamma: float = 1.0  # forget weight (OpenUnlearning WGA.yaml)
    alpha: float = 1.0  # retain weight (OpenUnlearning WGA.yaml)
    retain_loss: Literal["nll", "kl", "none"] = "nll"  # OpenUnlearning retain_loss_type: NLL


@method("wga", config=WGAConfig,
        paper="Rethinking LLM Unlearning Objectives: A Gradient Perspective and Go Beyond", arxiv="2502.19301",
        code="https://github.com/tmlr-group/G-effect", streams=("forget", "retain"),
        needs=("retain_set (optional)", "reference_model (retain_loss=kl)"))
def wga_loss(cfg: WGAConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = γ·(-mean_t[sg(p_t)^β·ℓ_t]) + α·R(retain)."""
    f = batch["forget"]
    lp, mask = losses.token_logprobs(forward_logits(model, f), f["labels"])
    forget = losses.weighted_ascent_loss(lp, mask, losses.wga_token_weights(lp, cfg.beta))
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx)
    loss = cfg.gamma * forget + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {"wga": forget.item(), "forget_nll": (-(lp * mask).sum() / mask.sum().clamp_min(1)).item()}
    if retain is not None:
        parts["retain_" + cfg.retain_loss] = retain.item()
    return LossOutput(loss, parts)
