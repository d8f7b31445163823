"""Selective Synaptic Dampening (SSD).

Foster, Schoepf, Brintrup, "Fast Machine Unlearning Without Retraining Through Selective
Synaptic Dampening", AAAI 2024 (arXiv 2308.07707). Reference code:
https://github.com/if-loops/selective-synaptic-dampening (``ParameterPerturber``).

No training: compute the diagonal importance I_D of every parameter on the training data and
I_f on the forget set (mean over batches of the squared loss gradient, a first-order Fisher
proxy). Parameters far more important for D_f than for D (I_f > α·I_D) are dampened,
θ ← θ·β with β = min(λ·I_D/I_f, 1); all others are left untouched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset

from obliviate.methods.vision._importance import squared_grad_importance, trainable
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class SSDConfig:
    alpha: float = 10.0  # selection weighting α (paper §4 / repo `selection_weighting`, class & sub-class forgetting)
    lam: float = 1.0  # dampening constant λ (paper §4 / repo `dampening_constant`)
    exponent: float = 1.0  # β = (λ·I_D/I_f)^exponent; repo `exponent` = 1
    batch_size: int = 64  # importance-estimation batch (repo uses the training batch size)
    importance_data: str = "full"  # "full" = D_r ∪ D_f as in the repo's `full_train_dl`; "retain" = D_r only


def dampening_factor(imp_forget: torch.Tensor, imp_full: torch.Tensor, alpha: float, lam: float,
                     exponent: float = 1.0) -> torch.Tensor:
    """Per-element multiplier: min((λ·I_D/I_f)^exponent, 1) where I_f > α·I_D, else 1."""
    selected = imp_forget > alpha * imp_full
    beta = (lam * imp_full / imp_forget.clamp_min(torch.finfo(imp_forget.dtype).tiny)).pow(exponent)
    return torch.where(selected, beta.clamp(max=1.0), torch.ones_like(imp_forget))


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


@vision_method("ssd", config=SSDConfig,
               paper="Fast Machine Unlearning Without Retraining Through Selective Synaptic Dampening",
               arxiv="2308.07707", code="https://github.com/if-loops/selective-synaptic-dampening",
               needs=("labels", "retain_set"),
               summary="Dampen parameters that matter far more to the forget set than to the training data.")
def run(cfg: SSDConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Return a copy of ``model`` with forget-specialised parameters dampened (no gradient steps)."""
    if cfg.importance_data not in ("full", "retain"):
        raise ValueError(f"ssd: importance_data must be 'full' or 'retain', got {cfg.importance_data!r}")
    model = copy.deepcopy(model).to(ctx.device)
    model.eval()  # importances at the trained point; the repo also evaluates them in eval mode
    ref = ConcatDataset([task.retain_set, task.forget_set]) if cfg.importance_data == "full" else task.retain_set
    imp_full = squared_grad_importance(model, ctx.loader(ref, cfg.batch_size, shuffle=False), _ce, ctx.device)
    imp_forget = squared_grad_importance(model, ctx.loader(task.forget_set, cfg.batch_size, shuffle=False), _ce,
                                         ctx.device)
    with torch.no_grad():
        for n, p in trainable(model).items():
            p.mul_(dampening_factor(imp_forget[n], imp_full[n], cfg.alpha, cfg.lam, cfg.exponent))
    return model
