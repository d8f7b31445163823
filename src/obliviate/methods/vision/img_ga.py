"""Gradient ascent (GA): maximise the cross-entropy of the forget set.

Thudi et al., "Unrolling SGD: Understanding Factors Influencing Machine Unlearning", EuroS&P 2022
(arXiv 2109.13398); implementation and defaults from OPTML-Group/Unlearn-Sparse `unlearn/GA.py`
(loss = -CE on D_f batches, SGD momentum 0.9, wd 5e-4; class-wise 5 epochs at lr 1e-4, the lr is
grid-searched over [1e-5, 0.1] — issue #5). GA has no retain term, so too many steps collapse the
model: keep epochs small.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class ImgGAConfig:
    epochs: int = 5  # Unlearn-Sparse class-wise GA: 5 epochs
    # Unlearn-Sparse class-wise CIFAR-10: 1e-4. On a digits MLP (batch 32, 5 steps/epoch) GA is
    # brittle and model-dependent: 1e-4 barely moves, 6e-4 takes a class from 0.99 to 0.15 forget
    # accuracy on one trained MLP and only to 0.87 on another (seed 1), 8e-4 costs 10 test points on
    # the first, 1e-3 collapses every class. 6e-4 is the safe side; grid it per model (issue #5).
    lr: float = 6e-4
    batch_size: int = 32  # small forget sets need several steps per epoch (Unlearn-Sparse: 256)
    momentum: float = 0.9  # main_forget.py SGD
    weight_decay: float = 5e-4  # main_forget.py SGD


@vision_method("img_ga", config=ImgGAConfig,
               paper="Unrolling SGD: Understanding Factors Influencing Machine Unlearning", arxiv="2109.13398",
               code="https://github.com/OPTML-Group/Unlearn-Sparse", needs=("labels", "forget_set"),
               summary="GA: gradient ascent on the forget-set cross-entropy.")
def run(cfg: ImgGAConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """min_θ −CE(θ; D_f), starting from θ_o."""
    tu.require_nonempty(task.forget_set, "forget", "img_ga")
    model = tu.start(model, ctx)
    opt = tu.sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    loader = ctx.loader(task.forget_set, cfg.batch_size, shuffle=True)
    for _ in range(cfg.epochs):
        for batch in loader:
            x, y = tu.to_device(batch, ctx)
            loss = -F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
