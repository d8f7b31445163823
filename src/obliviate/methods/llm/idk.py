"""IdK fine-tuning: teach the model to refuse on forget questions, keep retain answers.

TOFU's "preference optimisation" baseline (Maini et al., "TOFU: A Task of Fictitious Unlearning
for LLMs", arXiv 2401.06121; `idk` in locuslab/tofu): NLL of a refusal ("I don't know") given
each forget question, plus NLL on the retain set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class IdKConfig:
    gamma: float = 1.0  # weight of the refusal NLL (TOFU: plain sum)
    alpha: float = 1.0  # retain weight (TOFU: plain sum)
    retain_loss: Literal["nll", "kl", "none"] = "nll"


@method("idk", config=IdKConfig, paper="TOFU: A Task of Fictitious Unlearning for LLMs", arxiv="2401.06121",
        code="https://github.com/locuslab/tofu", streams=("forget_alt", "retain"),
        needs=("refusal answers (alt_answer or built-in list)", "retain_set"))
def idk_loss(cfg: IdKConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = γ·NLL(refusal | forget question) + α·R(retain)."""
    f = batch["forget_alt"]
    refusal = losses.nll(forward_logits(model, f), f["labels"])
    retain = retain_term(cfg.retain_loss, model, batch.get("retain"), ctx)
    loss = cfg.gamma * refusal + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {"refusal_nll": refusal.item()}
    if retain is not None:
        parts["retain_" + cfg.retain_loss] = retain.item()
    return LossOutput(loss, parts)
