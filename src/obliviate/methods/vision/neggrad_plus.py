"""NegGrad+: gradient descent on the retain set and ascent on the forget set, in one loss.

Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023
(arXiv 2302.09880), baseline of meghdadk/SCRUB (notebook `negative_grad`): batches of D_r zipped
with a cycled D_f loader,

    L = α·[CE(θ; x_r, y_r) + (wd/2)·‖θ − θ_o‖²] − (1 − α)·CE(θ; x_f, y_f),

plain SGD lr 0.01 (`torch.optim.SGD(..., lr=lr, weight_decay=0.0)`: no momentum; weight decay enters only
through the L2 pull towards θ_o), α 0.95, 10 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class NegGradPlusConfig:
    alpha: float = 0.95  # retain weight; forget weight is 1-α (SCRUB notebook, `negative_grad`)
    # SCRUB notebook `negative_grad`: SGD lr 0.01, no momentum, 10 epochs. On a digits MLP this erases a
    # class (tests/vision/test_methods_a.py, class-wise behaviour test) with the kept classes held.
    epochs: int = 10
    lr: float = 0.01
    batch_size: int = 64  # retain batch; the forget loader is cycled with the same size (SCRUB notebook: 128)
    momentum: float = 0.0  # SCRUB notebook: torch.optim.SGD default, no momentum
    weight_decay: float = 5e-4  # coefficient of the (wd/2)·‖θ−θ_o‖² pull (SCRUB notebook `l2_penalty`)


def neggrad_plus_loss(retain_logits: torch.Tensor, retain_y: torch.Tensor, forget_logits: torch.Tensor,
                      forget_y: torch.Tensor, alpha: float, l2_to_original: torch.Tensor | float = 0.0) -> torch.Tensor:
    """α·[CE(retain) + l2_to_original] − (1−α)·CE(forget), CE averaged over each batch."""
    retain = F.cross_entropy(retain_logits, retain_y) + l2_to_original
    return alpha * retain - (1.0 - alpha) * F.cross_entropy(forget_logits, forget_y)


def l2_to_reference(model: nn.Module, reference: nn.Module, weight_decay: float) -> torch.Tensor:
    """(wd/2)·Σ‖θ − θ_o‖² over trainable parameters (SCRUB notebook `l2_penalty`)."""
    total = sum(((p - q).pow(2).sum() for p, q in zip(model.parameters(), reference.parameters()) if p.requires_grad),
                torch.zeros(()))
    return 0.5 * weight_decay * total


@vision_method("neggrad_plus", config=NegGradPlusConfig, paper="Towards Unbounded Machine Unlearning",
               arxiv="2302.09880", code="https://github.com/meghdadk/SCRUB",
               needs=("labels", "forget_set", "retain_set"),
               summary="NegGrad+: α·CE(retain) − (1−α)·CE(forget) with an L2 pull to the original weights.")
def run(cfg: NegGradPlusConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """One epoch = one pass over D_r, each retain batch paired with the next (cycled) forget batch."""
    tu.require_nonempty(task.retain_set, "retain", "neggrad_plus")
    tu.require_nonempty(task.forget_set, "forget", "neggrad_plus")
    original = tu.frozen_copy(model, ctx)
    model = tu.start(model, ctx)
    opt = tu.sgd(model, cfg.lr, cfg.momentum, 0.0)
    retain = ctx.loader(task.retain_set, cfg.batch_size, shuffle=True)
    forget = tu.cycle(ctx.loader(task.forget_set, cfg.batch_size, shuffle=True))
    for _ in range(cfg.epochs):
        for batch_r in retain:
            xr, yr = tu.to_device(batch_r, ctx)
            xf, yf = tu.to_device(next(forget), ctx)
            loss = neggrad_plus_loss(model(xr), yr, model(xf), yf, cfg.alpha,
                                     l2_to_reference(model, original, cfg.weight_decay))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
