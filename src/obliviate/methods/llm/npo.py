"""Negative Preference Optimization (NPO).

Zhang, Lin, Bai, Mei, "Negative Preference Optimization: From Catastrophic Collapse to
Effective Unlearning", COLM 2024 (arXiv 2404.05868). Reference code:
https://github.com/licong-lin/negative-preference-optimization and OpenUnlearning `NPO`
(β = 0.1, γ = α = 1, retain NLL). The forget term is bounded, so it does not collapse the way
gradient ascent does: as π_θ(y|x) → 0 its gradient vanishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class NPOConfig:
    beta: float = 0.1  # inverse temperature (paper §4; OpenUnlearning configs/trainer/NPO.yaml)
    gamma: float = 1.0  # forget weight (OpenUnlearning)
    alpha: float = 1.0  # retain weight (OpenUnlearning; the paper's "NPO+RT")
    retain_loss: Literal["nll", "kl", "none"] = "nll"  # "none" is the paper's forget-only NPO


@method("npo", config=NPOConfig,
        paper="Negative Preference Optimization: From Catastrophic Collapse to Effective Unlearning",
        arxiv="2404.05868", code="https://github.com/licong-lin/negative-preference-optimization",
        streams=("forget", "retain"), needs=("reference_model", "retain_set (optional)"))
def npo_loss(cfg: NPOConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = γ·(-(2/β) log σ(-β[log π_θ(y|x) - log π_ref(y|x)])) + α·R(retain)."""
    f = batch["forget"]
    logits = forward_logits(model, f)
    logp = losses.sequence_logprob(logits, f["labels"])
    ref = losses.sequence_logprob(ctx.ref_logits(f), f["labels"])
    forget = losses.npo_loss(logp, ref, cfg.beta)
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx)
    loss = cfg.gamma * forget + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {"npo": forget.item(), "log_ratio": (logp - ref).mean().item()}
    if retain is not None:
        parts["retain_" + cfg.retain_loss] = retain.item()
    return LossOutput(loss, parts)
