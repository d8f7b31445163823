"""Shared, importable loss functions. Methods compose these; they never subclass each other.
The token-level pieces that scoring shares (shift, token and sequence log-probs, NLL) live in
`obliviate.ops` and are re-exported here.

Conventions: ``labels`` are -100 on prompt and padding; every reduction over tokens uses the
answer tokens only (unlike OpenUnlearning's KL, which also averages over prompt and padding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from obliviate.data.formatting import IGNORE_INDEX
# Token-level math shared with scoring lives below both, in `obliviate.ops`; re-exported for the methods.
from obliviate.ops import mean_nll_per_example, nll, sequence_logprob, shift, token_logprobs  # noqa: F401


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


# --- Token-weighted gradient ascent (WGA, SatImp) ------------------------------------------------


def wga_token_weights(token_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """WGA weights w_t = p_t^β = exp(β·log p_t), detached (Wang et al. 2025, arXiv 2502.19301;
    OpenUnlearning `compute_wga_loss`)."""
    return torch.exp(beta * token_logp.detach())


def satimp_token_weights(token_logp: torch.Tensor, beta1: float, beta2: float) -> torch.Tensor:
    """SatImp weights w_t = p_t^β1 · (1 - p_t)^β2, detached (Yang et al. 2025, arXiv 2505.11953;
    OpenUnlearning `compute_satimp_loss`): saturation (p^β1) times importance ((1-p)^β2)."""
    p = token_logp.detach().exp()
    return p.pow(beta1) * (1.0 - p).pow(beta2)


def weighted_ascent_loss(token_logp: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """L = -mean_t[w_t · ℓ_t] with ℓ_t = -log p_t, averaged over all answer tokens of the batch
    (as OpenUnlearning's flattened `[labels != -100].mean()`). Minimising it ascends the NLL."""
    return (weights * token_logp * mask).sum() / mask.sum().clamp_min(1)


# --- Soft-target cross-entropy (UNDIAL, CE-U) -----------------------------------------------------


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-Σ_v q_v log softmax(z)_v per position, averaged over positions where ``mask`` is true.

    Terms with q_v = 0 are dropped explicitly, so a zero target never meets a -inf log-prob (0·inf).
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    ce = -(torch.where(target_probs > 0, target_probs * logp, torch.zeros_like(logp))).sum(-1)
    return (ce * mask).sum() / mask.sum().clamp_min(1)


def undial_soft_targets(ref_logits: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """UNDIAL teacher (Dong et al., NAACL 2025, arXiv 2402.10052): softmax(z_ref - β·onehot(y)).

    ``ref_logits`` (..., V) are already aligned with ``targets`` (...); ignored positions should be
    clamped to a valid id by the caller and masked out of the loss (OpenUnlearning indexes the
    vocabulary with -100 there and averages over every position; we do neither).
    """
    onehot = F.one_hot(targets, ref_logits.size(-1)).to(ref_logits.dtype)
    return torch.softmax((ref_logits.float() - beta * onehot.float()), dim=-1)


def ceu_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """CE-U target (Yang 2025, arXiv 2503.01224): softmax of the *detached* logits with the true
    token's logit set to -inf, i.e. the model's own distribution renormalised without y_t."""
    z = logits.detach().float().scatter(-1, targets.unsqueeze(-1), float("-inf"))
    return torch.softmax(z, dim=-1)


def skip_first_answer_tokens(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Labels with the first ``n`` answer tokens of each row set to ignore (CE-U's footnote trick,
    OpenUnlearning `compute_batch_ceu`): the first answer token is often predictable from the prompt."""
    valid = labels != IGNORE_INDEX
    first = valid & (valid.cumsum(dim=-1) <= n)
    return labels.masked_fill(first, IGNORE_INDEX)


# --- Representation misdirection (RMU) ------------------------------------------------------------


def rmu_control_vector(dim: int, coeff: float, seed: int = 0) -> torch.Tensor:
    """c·u/‖u‖ with u ~ U[0,1)^d drawn once from ``seed`` (WMDP `rmu/unlearn.py`: torch.rand,
    normalised, times the steering coefficient). Same seed, same vector, every call."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(dim, generator=g)
    return u / u.norm() * coeff


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean over masked tokens of (1/d)·‖h_t - target_t‖²: torch `mse_loss` restricted to ``mask``
    (B, T). With an all-ones mask this equals the WMDP code's `mse_loss(h, target)`."""
    sq = (hidden.float() - target.float()).pow(2).mean(-1)
    m = mask.to(sq.dtype)
    return (sq * m).sum() / m.sum().clamp_min(1)


# --- FLAT: f-divergence between template and forget answers ---------------------------------------


def mean_token_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """P(x, y) = (1/|y|) Σ_t p(y_t | x, y_<t): average answer-token *probability* per example, (B,)
    (FLAT's per-sequence quantity; probabilities, not log-probabilities)."""
    lp, mask = token_logprobs(logits, labels)
    return (lp.exp() * mask).sum(-1) / mask.sum(-1).clamp_min(1)


def padded_batch_mean_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """FLAT's official-code quantity: Σ p(y_t) over answer tokens / (B·(T-1)), one scalar per batch
    (ignored positions count as 0 but stay in the denominator; `ProbLossStable` + `.mean()`)."""
    lp, mask = token_logprobs(logits, labels)
    return (lp.exp() * mask).mean().reshape(1)


def _js_g(v: torch.Tensor) -> torch.Tensor:
    return math.log(2.0) - F.softplus(-v)


# name -> (g*(v), f*(g*(v))): the variational activation and the conjugate composed with it
# (f-GAN, Nowozin et al. 2016, Table 2; FLAT `dataloader.py: get_contrastive_loss`).
F_DIVERGENCES: dict[str, tuple] = {
    "kl": (lambda v: v, lambda v: torch.exp(v - 1.0)),
    "reverse_kl": (lambda v: -torch.exp(v), lambda v: -1.0 - v),
    "js": (_js_g, lambda v: F.softplus(v) - math.log(2.0)),
    "pearson": (lambda v: v, lambda v: v * v / 4.0 + v),
    "tv": (lambda v: torch.tanh(v) / 2.0, lambda v: torch.tanh(v) / 2.0),
    "squared_hellinger": (lambda v: 1.0 - torch.exp(v), lambda v: (1.0 - torch.exp(v)) / torch.exp(v)),
    "neyman": (lambda v: 1.0 - torch.exp(v), lambda v: 2.0 - 2.0 * torch.exp(v / 2.0)),
    "jeffrey": (lambda v: v, lambda v: v + v * v / 4.0 + v * v * v / 16.0),
}


def _neyman_code(v: torch.Tensor) -> torch.Tensor:
    return 2.0 - 2.0 * torch.sqrt(1.0 - v)


def f_divergence_pairs(name: str, code_compat: bool = False) -> tuple:
    """(g*, f*∘g*) for one divergence. ``code_compat`` reproduces the FLAT code, whose Neyman
    branch applies f* to v directly (2 - 2√(1 - v)) instead of to g*(v) = 1 - e^v."""
    if name not in F_DIVERGENCES:
        raise ValueError(f"unknown f-divergence {name!r}; choose from {', '.join(F_DIVERGENCES)}")
    g, fg = F_DIVERGENCES[name]
    return (g, _neyman_code) if code_compat and name == "neyman" else (g, fg)


def flat_loss(p_template: torch.Tensor, p_forget: torch.Tensor, divergence: str = "kl",
              code_compat: bool = False) -> torch.Tensor:
    """FLAT (Wang et al., ICLR 2025, arXiv 2410.11143):
    L = -E[g*(P(x_f, y_e))] + E[f*(g*(P(x_f, y_f)))], P = mean answer-token probability.
    Minimising raises the template answer's probability and lowers the forget answer's."""
    g, fg = f_divergence_pairs(divergence, code_compat)
    return -g(p_template).mean() + fg(p_forget).mean()
