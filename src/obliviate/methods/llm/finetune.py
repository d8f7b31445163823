"""Fine-tune on retain (FT): continue training on the retain data only.

The cheapest baseline: it relies on catastrophic forgetting of the forget data. Listed as
"Retain fine-tuning" in TOFU-style comparisons and as FT in the vision literature. Epochs count
passes over the retain set (TrainConfig.epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method


@dataclass(frozen=True)
class FinetuneConfig:
    """No hyper-parameters of its own; learning rate and epochs live in TrainConfig."""


@method("finetune", config=FinetuneConfig, paper="TOFU: A Task of Fictitious Unlearning for LLMs", arxiv="2401.06121",
        code="https://github.com/locuslab/tofu", streams=("retain",), needs=("retain",),
        summary="Fine-tune on the retain set only (forgetting by interference)")
def finetune_loss(cfg: FinetuneConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = NLL(retain answers)."""
    nll = losses.nll(forward_logits(model, batch["retain"]), batch["retain"]["labels"])
    return LossOutput(nll, {"retain_nll": nll.item()})
