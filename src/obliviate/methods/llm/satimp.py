"""SatImp: gradient ascent with saturation × importance token weights.

Yang, Wang, Huang, Liu, Zhang, Han, "Exploring Criteria of Loss Reweighting to Enhance LLM
Unlearning", ICML 2025 (arXiv 2505.11953). Code: https://github.com/tmlr-group/SatImp;
OpenUnlearning `SatImp` (`compute_satimp_loss`): L_f = -mean_t[p_t^β1·(1-p_t)^β2·ℓ_t], weights
detached, over answer tokens.

Defaults are the authors': β1 = 5, β2 = 0.1 (SatImp README: "The recommended hyper-parameters of
SatImp method is beta1=5.0, beta2=0.1"; in `dataloader_sat.py` β1 is `hyper_param`, β2 is `beta`),
and forget:retain = 10:1, i.e. γ = 1, α = 0.1 (the `satimp_gd` branch: forget + `coeff`·retain with
coeff 0.1 in config/forget_sat.yaml; OpenUnlearning's community/methods/SatImp README, which puts
the forget:retain rate at 10 with gamma=1.0, alpha=0.1, and its `SatImp` class defaults).
OpenUnlearning's configs/trainer/SatImp.yaml instead sets γ = 0.1, α = 1, β2 = 1, which inverts that
weighting; pass those values to reproduce its YAML. ``retain_loss="none"`` is the
authors' forget-only `satimp` branch (the README's example command).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class SatImpConfig:
    beta1: float = 5.0  # saturation exponent p^β1 (SatImp README recommendation; OpenUnlearning too)
    beta2: float = 0.1  # importance exponent (1-p)^β2 (SatImp README: beta2=0.1; OpenUnlearning's YAML says 1.0)
    gamma: float = 1.0  # forget weight (SatImp satimp_gd; OpenUnlearning README/class default; its YAML says 0.1)
    alpha: float = 0.1  # retain weight (SatImp forget_sat.yaml coeff 0.1; OpenUnlearning README; its YAML says 1.0)
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
