"""GRIN: gradient-ratio influence, noise injection, then masked unlearning.

Anjarlekar & Pombra, "LLM Unlearning using Gradient Ratio-Based Influence Estimation and Noise
Injection" (arXiv 2508.06467). No official code; the algorithm as summarised in the seed spec (§3):
1. per weight j, GRI_j = |g_f,j| / (|g_r,j| + ε), with g_f / g_r the gradients of the mean answer
   NLL over the forget / retain sets at the starting weights (QA answers and/or raw-text windows,
   every token a label: the same examples the inner objective trains on);
2. mask M = the top ``topk_frac`` of all weights by GRI (one global ranking);
3. w_j ← w_j + N(0, σ_j²) for j in M;
4. fine-tune with NPO, GradDiff or IdK (the inner objective), updating the masked weights only.

Open choices, ours (the paper's values are unconfirmed): gradients over the whole forget set and
up to ``max_retain`` retain items, ε = 1e-8, ``topk_frac`` = 5 %, σ_j = ``noise_scale`` × the
std of weight j's tensor (so noise is commensurate with each layer's scale), and weight decay off
during the masked fine-tune so that unmasked weights stay exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, add_gradient_mask, forward_logits, method
from obliviate.methods.llm.graddiff import GradDiffConfig, graddiff_loss
from obliviate.methods.llm.idk import IdKConfig, idk_loss
from obliviate.methods.llm.npo import NPOConfig, npo_loss


@dataclass(frozen=True)
class GRINConfig:
    inner: Literal["npo", "graddiff", "idk"] = "npo"  # the paper pairs GRIN with PO (IdK), NPO and GradDiff
    topk_frac: float = 0.05  # share of weights in the mask (ours; unconfirmed in the paper)
    noise_scale: float = 0.1  # σ_j = noise_scale · std(tensor of w_j) (ours; the paper says "small" noise)
    eps: float = 1e-8  # ε in the ratio (ours)
    max_retain: int = 256  # retain items / texts for g_r (ours; memory/time only)
    max_length: int = 256  # token cap (QA) / window width (raw text) of the gradient passes (TrainConfig default)
    batch_size: int = 8  # micro-batch of the gradient passes (memory only)
    seed: int = 0  # noise seed
    # inner objective (defaults of NPO / GradDiff / IdK in OpenUnlearning)
    beta: float = 0.1  # NPO inverse temperature
    gamma: float = 1.0  # forget weight
    alpha: float = 1.0  # retain weight
    retain_loss: Literal["nll", "kl", "none"] = "nll"


def mean_nll_grads(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Gradient of the item-weighted mean answer NLL over ``batches``, per trainable parameter."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for p in params.values():
        p.grad = None
    n = sum(len(b["input_ids"]) for b in batches)
    for b in batches:
        (losses.nll(forward_logits(model, b), b["labels"]) * (len(b["input_ids"]) / n)).backward()
    out = {k: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for k, p in params.items()}
    for p in params.values():
        p.grad = None
    return out


def gradient_ratio(g_forget: dict[str, torch.Tensor], g_retain: dict[str, torch.Tensor], eps: float
                   ) -> dict[str, torch.Tensor]:
    """GRI_j = |g_f,j| / (|g_r,j| + ε), elementwise per parameter tensor."""
    return {k: g_forget[k].abs() / (g_retain[k].abs() + eps) for k in g_forget}


def top_fraction_mask(scores: dict[str, torch.Tensor], frac: float) -> dict[str, torch.Tensor]:
    """Boolean masks selecting exactly round(frac · N) weights with the highest scores (global ranking;
    ties broken by position)."""
    if not 0 < frac <= 1:
        raise ValueError(f"topk_frac must be in (0, 1], got {frac}")
    flat = torch.cat([s.flatten().double() for s in scores.values()])
    k = max(1, round(frac * flat.numel()))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.topk(flat, k).indices] = True
    out, i = {}, 0
    for name, s in scores.items():
        out[name] = chosen[i:i + s.numel()].view_as(s)
        i += s.numel()
    return out


def inject_noise(model: torch.nn.Module, masks: dict[str, torch.Tensor], scale: float, seed: int) -> None:
    """w_j += N(0, (scale · std(tensor))²) on the masked weights, in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            m = masks.get(name)
            if m is None or not m.any() or scale == 0:
                continue
            std = float(p.detach().float().std()) if p.numel() > 1 else float(p.detach().abs().mean())
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32) * (scale * std)
            p.add_(noise.to(p.dtype).to(p.device) * m.to(p.device))


def grin_prepare(cfg: GRINConfig, model: torch.nn.Module, task, tokenizer, fmt) -> list[dict]:
    from obliviate.data.formatting import PromptFormat, collate
    from obliviate.train.loop import encode_items, encode_texts

    fmt = fmt or PromptFormat()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device

    def batches(items, texts):
        # QA answers and raw-text windows (MUSE/WMDP corpora), as the training loop encodes them
        enc = encode_items(items, tokenizer, fmt, cfg.max_length) + encode_texts(texts, tokenizer, cfg.max_length)
        return [{k: v.to(device) for k, v in collate(enc[i:i + cfg.batch_size], pad).items()}
                for i in range(0, len(enc), cfg.batch_size)]

    if not (task.retain or task.retain_texts):
        raise ValueError("grin: the gradient ratio needs retain data (the task has no retain items or texts)")
    g_f = mean_nll_grads(model, batches(task.forget, task.forget_texts))
    # up to max_retain retain examples: QA items first, then raw texts
    n_items = min(len(task.retain), cfg.max_retain)
    g_r = mean_nll_grads(model, batches(task.retain[:n_items], task.retain_texts[: cfg.max_retain - n_items]))
    masks = top_fraction_mask(gradient_ratio(g_f, g_r, cfg.eps), cfg.topk_frac)
    inject_noise(model, masks, cfg.noise_scale, cfg.seed)
    trainable = []
    for name, p in model.named_parameters():
        m = masks.get(name)
        if m is None or not m.any():
            p.requires_grad_(False)
            continue
        add_gradient_mask(model, p, m.to(device=p.device, dtype=p.dtype))
        trainable.append(p)
    return [{"params": trainable, "weight_decay": 0.0, "name": "grin_mask"}]


@method("grin", config=GRINConfig, paper="LLM Unlearning using Gradient Ratio-Based Influence Estimation and Noise "
        "Injection", arxiv="2508.06467", streams=("forget", "retain", "forget_alt"),
        streams_fn=lambda cfg: ("forget", "retain", "forget_alt") if cfg.inner == "idk" else ("forget", "retain"),
        needs=("reference_model", "retain_set"), prepare=grin_prepare,
        summary="Gradient-ratio weight mask + noise on the masked weights, then masked NPO/GradDiff/IdK")
def grin_loss(cfg: GRINConfig, model, batch, ctx: StepContext) -> LossOutput:
    """The inner objective; gradients outside the mask are zeroed by hooks set in ``prepare``."""
    if cfg.inner == "npo":
        return npo_loss(NPOConfig(beta=cfg.beta, gamma=cfg.gamma, alpha=cfg.alpha, retain_loss=cfg.retain_loss),
                        model, batch, ctx)
    if cfg.inner == "graddiff":
        kind = "nll" if cfg.retain_loss == "none" else cfg.retain_loss
        return graddiff_loss(GradDiffConfig(gamma=cfg.gamma, alpha=cfg.alpha, retain_loss=kind), model, batch, ctx)
    return idk_loss(IdKConfig(gamma=cfg.gamma, alpha=cfg.alpha, retain_loss=cfg.retain_loss), model, batch, ctx)
