"""Fisher forgetting.

Golatkar, Achille, Soatto, "Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep
Networks", CVPR 2020 (arXiv 1911.04933). Reference code:
https://github.com/AdityaGolatkar/SelectiveForgetting (``Forgetting.ipynb``: ``hessian``,
``get_mean_var``) and its port in OPTML-Group/Unlearn-Sparse ``unlearn/fisher.py``.

Scrub the forget set by adding Gaussian noise whose variance is inversely proportional to the
diagonal Fisher of the *retain* loss: directions the retain data pins down barely move, the
rest (where D_f's information can hide) are drowned in noise.

    F = diag Fisher on D_r,  σ² = α · min(1/(F + ε), c),  θ = μ + σ ⊙ N(0, I)

Constants of the reference code, kept here as config fields:
- ε = 1e-8 (stabiliser), clamp c = 1e3, and 1e2 for the classifier layer (``p.size(0) ==
  num_classes``);
- for weight matrices σ² is averaged over the input dimension (``var.mean(dim=1)``), one noise
  scale per output unit;
- the classifier layer and 1-d parameters (biases, BatchNorm) get 10× the variance;
- class-wise forgetting: μ = θ_o except the forgotten class's classifier row, which is set to 0
  with σ² = 1e-4.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from obliviate.methods.vision._importance import capped, fisher_diagonal, trainable
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class FisherConfig:
    alpha: float = 1e-6  # noise scale α; Golatkar's notebook calls it with 1e-6, the spec's range is 1e-6…1e-9
    eps: float = 1e-8  # σ² = α/(F + eps) (reference `get_mean_var`)
    max_inv_fisher: float = 1e3  # clamp of 1/(F+eps) (reference)
    max_inv_fisher_head: float = 1e2  # tighter clamp for the classifier layer (reference)
    head_and_bias_scale: float = 10.0  # variance ×10 on the classifier layer and 1-d params (reference)
    row_mean: bool = True  # share σ² across the input dim of each weight row (reference `var.mean(dim=1)`)
    zero_forget_class: bool = True  # class-wise: zero the forgotten class's output row (reference)
    max_samples: int = 1000  # retain examples used for the Fisher (0 = all; the reference uses all of D_r)
    batch_size: int = 64


def noise_variance(fisher: torch.Tensor, alpha: float, *, eps: float = 1e-8, clamp: float = 1e3,
                   scale: float = 1.0, row_mean: bool = True) -> torch.Tensor:
    """σ² = scale·α·min(1/(F + eps), clamp), averaged over dim 1 for matrices when ``row_mean``."""
    var = (1.0 / (fisher + eps)).clamp(max=clamp) * alpha
    if row_mean and var.dim() > 1:
        var = var.mean(dim=tuple(range(1, var.dim())), keepdim=True).expand_as(var).clone()
    return var * scale


@vision_method("fisher", config=FisherConfig,
               paper="Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep Networks",
               arxiv="1911.04933", code="https://github.com/AdityaGolatkar/SelectiveForgetting",
               needs=("labels", "retain_set"),
               summary="Add Gaussian noise scaled by the inverse retain Fisher (Golatkar et al.).")
def run(cfg: FisherConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Return a noisy copy of ``model`` sampled around θ_o with variance α/(F_retain + ε)."""
    model = copy.deepcopy(model).to(ctx.device)
    data = capped(task.retain_set, cfg.max_samples, ctx.seed)
    fisher = fisher_diagonal(model, ctx.loader(data, cfg.batch_size, shuffle=False), ctx.device)
    gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
    with torch.no_grad():
        for n, p in trainable(model).items():
            is_head = p.shape[0] == task.num_classes  # the reference's test for the classifier layer
            var = noise_variance(fisher[n], cfg.alpha, eps=cfg.eps,
                                 clamp=cfg.max_inv_fisher_head if is_head else cfg.max_inv_fisher,
                                 scale=cfg.head_and_bias_scale if (is_head or p.dim() == 1) else 1.0,
                                 row_mean=cfg.row_mean)
            mu = p.detach().clone()
            if is_head and task.forget_class is not None and cfg.zero_forget_class:
                mu[task.forget_class] = 0.0
                var[task.forget_class] = 1e-4 * cfg.head_and_bias_scale  # reference: 1e-4, then the head's ×10
            noise = torch.randn(p.shape, generator=gen).to(p.device)
            p.copy_(mu + var.sqrt() * noise)
    return model
