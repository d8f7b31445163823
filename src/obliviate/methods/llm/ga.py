"""Gradient ascent (GA): maximise the NLL of the forget answers.

Jang et al., "Knowledge Unlearning for Mitigating Privacy Risks in Language Models", ACL 2023
(arXiv 2210.01504); TOFU `grad_ascent`. No retain term, so it eventually collapses: the
guard rails (retain-loss collapse detection) matter most here.
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method


@dataclass(frozen=True)
class GAConfig:
    """GA has no hyper-parameters of its own; learning rate and steps live in TrainConfig."""


@method("ga", config=GAConfig, paper="Knowledge Unlearning for Mitigating Privacy Risks in Language Models",
        arxiv="2210.01504", code="https://github.com/joeljang/knowledge-unlearning", streams=("forget",))
def ga_loss(cfg: GAConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = -NLL(forget answers)."""
    forget_nll = losses.nll(forward_logits(model, batch["forget"]), batch["forget"]["labels"])
    return LossOutput(-forget_nll, {"forget_nll": forget_nll.item()})
