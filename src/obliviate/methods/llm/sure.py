"""SURE: Saliency-based Unlearning with a large learning Rate.

Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization" (v1: "Does your LLM truly
unlearn? An embarrassingly simple approach to recover unlearned knowledge"), ICLR 2025
(arXiv 2410.16454). Code: https://github.com/zzwjames/FailureLLMUnlearning (`baselines/iterative.py`).

Utility-constrained unlearning moves weights so little that 4-bit quantization snaps them back
onto the original model's grid. SURE (paper form, seed spec §6):
1. saliency per module i: s_i = ‖∇_{θ_i} L_forget(θ_o; D_f)‖ (Frobenius), once, on the forget set
   (QA answers and/or raw-text windows: on MUSE the forget articles, as the paper's MUSE runs);
2. mask m_i = [s_i ≥ γ], γ = the 90th percentile of the s_i;
3. θ_u = θ_o + m ⊙ Δθ: only salient modules move, with a large learning rate (train.lr; the
   paper's value is unconfirmed, so raise train.lr above the base method's usual one).
The base objective is composed from the shared losses (no subclassing): "ga" = -NLL_f,
"graddiff" = -NLL_f + α·R, "npo" = NPO_f + α·R (R = retain NLL = the code's GDR, or KL = KLR).

Differences from the released code, on purpose: the code's saliency is per output row, recomputed
every step, and applied in an `optimizer_step` override that Hugging Face's Trainer never calls
(seed spec §6); we implement the paper's module-level mask, computed once in `prepare`, and apply
it explicitly by freezing the non-salient modules (or training them at ``non_salient_lr``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, forward_logits, method, retain_term


@dataclass(frozen=True)
class SUREConfig:
    base: Literal["ga", "graddiff", "npo"] = "npo"  # paper: {GA, NPO} × {GDR, KLR} + SURE; NPO_GDR headlines
    beta: float = 0.1  # NPO inverse temperature (NPO paper; MUSE/OpenUnlearning default)
    alpha: float = 1.0  # retain weight (paper α = 1; scripts `--alpha 1`)
    retain_loss: Literal["nll", "kl", "none"] = "nll"  # nll = GDR, kl = KLR (ignored for base "ga")
    threshold: float = 90.0  # saliency percentile γ (paper Table 4 sweep; scripts `--threshold 90`)
    non_salient_lr: float = 0.0  # 0 = freeze non-salient modules (paper: θ_o + m ⊙ Δθ); > 0 = their absolute lr
    saliency_batch_size: int = 8  # micro-batch of the one saliency pass (memory only; result is the same)
    max_length: int = 256  # token cap (QA) / window width (raw text) in the saliency pass (TrainConfig default)


def _forget_term(cfg: SUREConfig, logits: torch.Tensor, labels: torch.Tensor,
                 ref_logp: torch.Tensor | None) -> torch.Tensor:
    if cfg.base == "npo":
        logp = losses.sequence_logprob(logits, labels)
        # At θ_o the reference *is* the model, so the detached log-prob is π_ref in the saliency pass.
        return losses.npo_loss(logp, logp.detach() if ref_logp is None else ref_logp, cfg.beta)
    return -losses.nll(logits, labels)


def module_saliency(model: torch.nn.Module, cfg: SUREConfig, batches: list[dict[str, torch.Tensor]]
                    ) -> dict[str, tuple[float, list[torch.nn.Parameter]]]:
    """‖∇ L_forget‖ per module (over its own trainable parameters; a tied parameter counts once)."""
    for p in model.parameters():
        p.grad = None
    n_items = sum(len(b["input_ids"]) for b in batches)
    for b in batches:  # the gradient of the mean forget loss over D_f, accumulated micro-batch-wise
        loss = _forget_term(cfg, forward_logits(model, b), b["labels"], None) * (len(b["input_ids"]) / n_items)
        loss.backward()
    seen: set[int] = set()
    out: dict[str, tuple[float, list[torch.nn.Parameter]]] = {}
    for name, mod in model.named_modules():
        params = [p for p in mod.parameters(recurse=False) if p.requires_grad and id(p) not in seen]
        if not params:
            continue
        seen.update(id(p) for p in params)
        sq = sum(float(p.grad.float().pow(2).sum()) for p in params if p.grad is not None)
        out[name] = (math.sqrt(sq), params)
    for p in model.parameters():
        p.grad = None
    return out


def sure_prepare(cfg: SUREConfig, model: torch.nn.Module, task, tokenizer, fmt) -> list[dict]:
    """Compute module saliency on the forget set (its QA answers and its raw-text windows, the same
    examples the training loop unlearns); return optimiser groups (salient: train.lr)."""
    from obliviate.data.formatting import PromptFormat, collate
    from obliviate.train.loop import encode_items, encode_texts

    enc = (encode_items(task.forget, tokenizer, fmt or PromptFormat(), cfg.max_length)
           + encode_texts(task.forget_texts, tokenizer, cfg.max_length))
    if not enc:
        raise ValueError("sure: the forget set has no QA items and no raw texts to compute the saliency on")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    batches = [{k: v.to(device) for k, v in collate(enc[i:i + cfg.saliency_batch_size], pad).items()}
               for i in range(0, len(enc), cfg.saliency_batch_size)]
    scores = module_saliency(model, cfg, batches)
    if not scores:
        raise ValueError("sure: the model has no trainable parameters to score")
    gamma = float(torch.quantile(torch.tensor([s for s, _ in scores.values()], dtype=torch.float64),
                                 cfg.threshold / 100.0))
    salient = [p for s, ps in scores.values() if s >= gamma for p in ps]
    rest = [p for s, ps in scores.values() if s < gamma for p in ps]
    groups: list[dict] = [{"params": salient, "name": "salient"}]
    if cfg.non_salient_lr > 0 and rest:
        groups.append({"params": rest, "lr": cfg.non_salient_lr, "name": "non_salient"})
    else:
        for p in rest:
            p.requires_grad_(False)
    return groups


@method("sure", config=SUREConfig, paper="Catastrophic Failure of LLM Unlearning via Quantization",
        arxiv="2410.16454", code="https://github.com/zzwjames/FailureLLMUnlearning", streams=("forget", "retain"),
        needs=("reference_model", "retain_set"), prepare=sure_prepare)
def sure_loss(cfg: SUREConfig, model, batch, ctx: StepContext) -> LossOutput:
    """The base objective (ga | graddiff | npo, + α·R(retain)) on the salient modules only."""
    f = batch["forget"]
    logits = forward_logits(model, f)
    ref = losses.sequence_logprob(ctx.ref_logits(f), f["labels"]) if cfg.base == "npo" else None
    forget = _forget_term(cfg, logits, f["labels"], ref)
    kind = "none" if cfg.base == "ga" else cfg.retain_loss
    retain = retain_term(kind, model, batch.get("retain"), ctx)
    loss = forget + (cfg.alpha * retain if retain is not None else 0.0)
    parts = {cfg.base + "_forget": forget.item()}
    if retain is not None:
        parts["retain_" + kind] = retain.item()
    return LossOutput(loss, parts)
