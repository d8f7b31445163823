"""IdkDPO: direct preference optimisation with a refusal as the preferred answer.

TOFU (Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv 2401.06121, `dpo`)
and OpenUnlearning `DPO` (win = refusal from the `forget_alt` stream, lose = the true forget
answer; -(2/β) log σ(...) scaling, β = 0.1, plus the GradDiff retain NLL with γ = α = 1).
Rafailov et al., "Direct Preference Optimization", arXiv 2305.18290, for the loss itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class DPOConfig:
    beta: float = 0.1  # inverse temperature (seed spec §10 "IdkDPO"; OpenUnlearning TOFU IdkDPO experiment)
    gamma: float = 1.0  # forget (preference) weight (OpenUnlearning DPO inherits GradDiff: γ = 1)
    alpha: float = 1.0  # retain weight (same source: α = 1)
    retain_loss: Literal["nll", "kl", "none"] = "nll"  # OpenUnlearning retain_loss_type: NLL


@method("dpo", config=DPOConfig, paper="TOFU: A Task of Fictitious Unlearning for LLMs", arxiv="2401.06121",
        code="https://github.com/locuslab/open-unlearning", streams=("forget", "forget_alt", "retain"),
        needs=("reference_model", "refusal answers (alt_answer or built-in list)", "retain_set"))
def dpo_loss(cfg: DPOConfig, model, batch, ctx: StepContext) -> LossOutput:
    """IdkDPO: L = γ·(-(2/β) log σ(β[Δ(refusal) - Δ(answer)])) + α·R(retain), Δ = log π_θ - log π_ref."""
    win, lose = batch["forget_alt"], batch["forget"]
    win_logp = losses.sequence_logprob(forward_logits(model, win), win["labels"])
    lose_logp = losses.sequence_logprob(forward_logits(model, lose), lose["labels"])
    win_ref = losses.sequence_logprob(ctx.ref_logits(win), win["labels"])
    lose_ref = losses.sequence_logprob(ctx.ref_logits(lose), lose["labels"])
    forget = losses.dpo_loss(win_logp, win_ref, lose_logp, lose_ref, cfg.beta)
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx)
    loss = cfg.gamma * forget + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {"dpo": forget.item(), "win_log_ratio": (win_logp - win_ref).mean().item(),
             "lose_log_ratio": (lose_logp - lose_ref).mean().item()}
    if retain is not None:
        parts["retain_" + cfg.retain_loss] = retain.item()
    return LossOutput(loss, parts)
