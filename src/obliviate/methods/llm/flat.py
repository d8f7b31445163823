"""FLAT: loss adjustment with only forget data, via a variational f-divergence bound.

Wang et al., "LLM Unlearning via Loss Adjustment with Only Forget Data", ICLR 2025
(arXiv 2410.11143). Code: https://github.com/UCSC-REAL/FLAT (`dataloader.py`, loss type `cl`).
Maximise an f-divergence between the template ("good") answers y_e (refusals: the `forget_alt`
stream, row-aligned with `forget`) and the forget answers y_f, through its f-GAN lower bound:

    L = -E[g*(P(x_f, y_e))] + E[f*(g*(P(x_f, y_f)))],  P = mean answer-token probability.

No retain data and no reference model. The bound weighs "learn the template" against "forget the
answer" by itself: the two terms' gradients are scaled by g*' and (f*∘g*)' at the current P.

``code_compat=True`` reproduces what the official code computes (seed spec §2): P is the sum of
answer-token probabilities divided by *all* B·(T-1) positions of the padded batch (one scalar
per batch, diluted by padding; our batches pad to the longest row, the official ones to 500 /
1024 tokens, so the value also depends on padding), and its Neyman-χ² branch applies f* to P
instead of to g*(P). Default: the paper's per-sequence average and the correct composition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method


@dataclass(frozen=True)
class FLATConfig:
    # The divergence (paper's four main ones: kl, js, pearson, tv; the code also ships the rest).
    # KL is the variant the paper headlines on Harry Potter ("FLAT (KL)", seed spec §2 anchors).
    divergence: Literal["kl", "reverse_kl", "js", "pearson", "tv", "squared_hellinger", "neyman", "jeffrey"] = "kl"
    code_compat: bool = False  # True: official code's padded-batch mean probability (seed spec §2, §11.1)


@method("flat", config=FLATConfig, paper="LLM Unlearning via Loss Adjustment with Only Forget Data",
        arxiv="2410.11143", code="https://github.com/UCSC-REAL/FLAT", streams=("forget", "forget_alt"),
        needs=("template answers (alt_answer or built-in refusals)",))
def flat_loss(cfg: FLATConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = -E[g*(P(x_f, y_template))] + E[f*(g*(P(x_f, y_forget)))]."""
    good, bad = batch["forget_alt"], batch["forget"]
    prob = losses.padded_batch_mean_prob if cfg.code_compat else losses.mean_token_prob
    p_good = prob(forward_logits(model, good), good["labels"])
    p_bad = prob(forward_logits(model, bad), bad["labels"])
    loss = losses.flat_loss(p_good, p_bad, cfg.divergence, cfg.code_compat)
    return LossOutput(loss, {"flat": loss.item(), "p_template": p_good.mean().item(), "p_forget": p_bad.mean().item()})
