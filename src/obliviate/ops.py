"""Token-level math shared by scoring and training: label shifting, per-token and per-sequence
log-probabilities, negative log-likelihood.

It sits below both `obliviate.scoring` (the audit's forward passes, gradient norms) and
`obliviate.methods` / `obliviate.train` (the losses), so the audit never imports a method.
`obliviate.methods.losses` re-exports these for the methods.

Conventions: ``labels`` are ``IGNORE_INDEX`` (-100) on prompt and padding; every reduction over
tokens uses the answer tokens only. Log-softmax runs in float32 whatever the model's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from obliviate.data.formatting import IGNORE_INDEX


def shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align next-token logits with their targets: returns (logits[:, :-1], labels[:, 1:], mask)."""
    lg = logits[:, :-1, :]
    lb = labels[:, 1:]
    return lg, lb, lb != IGNORE_INDEX


def target_logprobs(logp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(y_t) gathered from aligned log-probabilities ``logp`` (B, T, V) at ``labels`` (B, T);
    masked positions read token 0 (multiply by the mask, or drop them)."""
    return logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(y_t) at every position (0 where masked) and the answer-token mask, both (B, T-1)."""
    lg, lb, mask = shift(logits, labels)
    logp = torch.log_softmax(lg.float(), dim=-1)
    return target_logprobs(logp, lb) * mask, mask


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log π(y|x) = Σ_t log p(y_t): the summed answer log-probability per example, (B,)."""
    lp, _ = token_logprobs(logits, labels)
    return lp.sum(-1)


def mean_nll_per_example(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """NLL averaged over each example's answer tokens, (B,)."""
    lp, mask = token_logprobs(logits, labels)
    return -lp.sum(-1) / mask.sum(-1).clamp_min(1)


def nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy over all answer tokens of the batch (HF causal-LM loss)."""
    lg, lb, _ = shift(logits, labels)
    return F.cross_entropy(lg.float().reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=IGNORE_INDEX)
