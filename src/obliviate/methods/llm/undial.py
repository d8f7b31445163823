"""UNDIAL: self-distillation towards the reference model with the gold token's logit lowered.

Dong, Lin, Belinkov, Mireshghallah et al., "UNDIAL: Self-Distillation with Adjusted Logits for
Robust Unlearning in Large Language Models", NAACL 2025 (arXiv 2402.10052). Code:
https://github.com/dong-river/LLM_unlearning; OpenUnlearning `UNDIAL` (`compute_undial_loss`):
teacher = reference logits with β subtracted at the gold token, softmax → soft target, loss =
CE(student, soft target). Defaults from OpenUnlearning configs/trainer/UNDIAL.yaml: β = 10, no
retain term (α = 0), lr 1e-4 (set lr in the train config / preset, not here).

Deliberate fix of an upstream quirk: OpenUnlearning builds the gold-token mask by indexing the
vocabulary with the shifted labels (so ignored positions, label -100, index vocab id V-100) and
averages the CE over every position, prompt and padding included. Here the loss is averaged over
the answer tokens only, and ignored positions never touch the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class UNDIALConfig:
    beta: float = 10.0  # logit penalty on the gold token (OpenUnlearning UNDIAL.yaml `beta`; paper "γ strength")
    gamma: float = 1.0  # forget weight (OpenUnlearning UNDIAL.yaml)
    alpha: float = 0.0  # retain weight: 0 = no retain term (OpenUnlearning UNDIAL.yaml)
    retain_loss: Literal["nll", "kl", "none"] = "nll"  # used only when alpha > 0 (OpenUnlearning: NLL)


@method("undial", config=UNDIALConfig,
        paper="UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning in Large Language Models",
        arxiv="2402.10052", code="https://github.com/dong-river/LLM_unlearning", streams=("forget", "retain"),
        needs=("reference_model", "retain_set (optional, alpha > 0)"))
def undial_loss(cfg: UNDIALConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = γ·mean_t CE(p_θ(·|x, y_<t), softmax(z_ref - β·onehot(y_t))) + α·R(retain), answer tokens only."""
    f = batch["forget"]
    logits = forward_logits(model, f)
    lg, lb, mask = losses.shift(logits, f["labels"])
    target = losses.undial_soft_targets(ctx.ref_logits(f)[:, :-1, :], lb.clamp_min(0), cfg.beta)
    forget = losses.soft_cross_entropy(lg, target, mask)
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx) if cfg.alpha > 0 else None
    loss = cfg.gamma * forget + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {"undial_ce": forget.item()}
    if retain is not None:
        parts["retain_" + cfg.retain_loss] = retain.item()
    return LossOutput(loss, parts)
