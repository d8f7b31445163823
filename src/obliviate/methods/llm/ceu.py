"""CE-U: cross-entropy unlearning towards the model's own distribution without the true token.

Bo Yang, "CE-U: Cross Entropy Unlearning" (arXiv 2503.01224); OpenUnlearning `CEU`
(`cross_entropy_unlearning_loss`, `compute_batch_ceu`): target = softmax(detached logits with the
true token's logit at -inf), loss = CE(logits, target) over answer tokens. The first n = 1 answer
tokens are skipped (the paper's footnote in "Training Settings"). No retain term, no reference.
Unlike gradient ascent, the gradient p_θ(y_t) - 0 at the true token stays bounded and vanishes as
the token is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method


@dataclass(frozen=True)
class CEUConfig:
    ignore_first_n_answer_tokens: int = 1  # paper footnote; OpenUnlearning CEU default n = 1


@method("ceu", config=CEUConfig, paper="CE-U: Cross Entropy Unlearning", arxiv="2503.01224",
        code="https://github.com/locuslab/open-unlearning", streams=("forget",))
def ceu_loss(cfg: CEUConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = mean_t CE(p_θ(·|x, y_<t), softmax(sg(z_t) with z_t[y_t] = -inf)), first n answer tokens skipped."""
    f = batch["forget"]
    logits = forward_logits(model, f)
    labels = losses.skip_first_answer_tokens(f["labels"], cfg.ignore_first_n_answer_tokens)
    lg, lb, mask = losses.shift(logits, labels)
    loss = losses.soft_cross_entropy(lg, losses.ceu_targets(lg, lb.clamp_min(0)), mask)
    return LossOutput(loss, {"ceu": loss.item()})
