"""Shared, importable loss functions. Methods compose these; they never subclass each other.

Conventions: ``labels`` are -100 on prompt and padding; every reduction over tokens uses the
answer tokens only (unlike OpenUnlearning's KL, which also averages over prompt and padding).
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


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(y_t) at every position (0 where masked) and the answer-token mask, both (B, T-1)."""
    lg, lb, mask = shift(logits, labels)
    logp = torch.log_softmax(lg.float(), dim=-1)
    tgt = lb.clamp_min(0).unsqueeze(-1)
    lp = logp.gather(-1, tgt).squeeze(-1) * mask
    return lp, mask


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


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(p_ref ‖ p_θ) per answer token, averaged over answer tokens only.

    TOFU's KL retain term: KL(ref ‖ current) summed over the vocabulary. We average over the
    answer positions only (OpenUnlearning uses batchmean over all flattened positions).
    """
    lg, _, mask = shift(logits, labels)
    rg = ref_logits[:, :-1, :]
    logp = torch.log_softmax(lg.float(), -1)
    logq = torch.log_softmax(rg.float(), -1)
    kl = (logq.exp() * (logq - logp)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp_min(1)


def npo_loss(logp_seq: torch.Tensor, ref_logp_seq: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024, arXiv 2404.05868, eq. 3):
    L = -(2/β) E log σ(-β [log π_θ(y|x) - log π_ref(y|x)]), with sequence-summed log-probs
    (as the official code and OpenUnlearning `compute_dpo_loss` with no win term)."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp_seq - ref_logp_seq)).mean()


def simnpo_loss(mean_nll: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """SimNPO (Fan et al. 2024, arXiv 2410.07163, eq. 4):
    L = -(2/β) E log σ(-(β/|y|) log π_θ(y|x) - γ) = -(2/β) E log σ(β·NLL_mean(y) - γ).

    Paper form: γ sits outside β. OpenUnlearning writes β·(NLL_mean - δ); identical at γ = δ = 0.
    """
    return -(2.0 / beta) * F.logsigmoid(beta * mean_nll - gamma).mean()


def dpo_loss(win_logp: torch.Tensor, win_ref: torch.Tensor, lose_logp: torch.Tensor, lose_ref: torch.Tensor,
             beta: float) -> torch.Tensor:
    """DPO with the 2/β scaling of OpenUnlearning (IdkDPO: win = refusal, lose = true answer):
    L = -(2/β) E log σ(β[(log π_w - log π_ref,w) - (log π_l - log π_ref,l)])."""
    return -(2.0 / beta) * F.logsigmoid(beta * ((win_logp - win_ref) - (lose_logp - lose_ref))).mean()
