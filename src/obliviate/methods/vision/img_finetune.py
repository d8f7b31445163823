"""Fine-tuning (FT): keep training the original model on the retain set only, relying on
catastrophic forgetting to erase the forget set.

Warnecke et al., "Machine Unlearning of Features and Labels" (NDSS 2023) and Golatkar et al.
use it as the simplest baseline; defaults follow Jia et al., "Model Sparsity Can Simplify
Machine Unlearning", NeurIPS 2023 (arXiv 2304.04934), `unlearn/FT.py` in OPTML-Group/Unlearn-Sparse
(10 epochs, lr 0.01, SGD momentum 0.9, wd 5e-4; the authors grid lr over [1e-4, 1e-1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class ImgFinetuneConfig:
    epochs: int = 10  # Unlearn-Sparse README / paper §5 (FT: 10 epochs)
    lr: float = 0.01  # Unlearn-Sparse README (FT lr 0.01; authors grid [1e-4, 1e-1])
    batch_size: int = 256  # Unlearn-Sparse argparse default (the paper says 128, issue #4)
    momentum: float = 0.9  # main_forget.py SGD
    weight_decay: float = 5e-4  # main_forget.py SGD


@vision_method("img_finetune", config=ImgFinetuneConfig, paper="Model Sparsity Can Simplify Machine Unlearning",
               arxiv="2304.04934", code="https://github.com/OPTML-Group/Unlearn-Sparse",
               needs=("labels", "retain_set"),
               summary="FT: minimise CE on the retain set only (catastrophic forgetting).")
def run(cfg: ImgFinetuneConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """min_θ CE(θ; D_r), starting from θ_o."""
    tu.require_nonempty(task.retain_set, "retain", "img_finetune")
    model = tu.start(model, ctx)
    opt = tu.sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    loader = ctx.loader(task.retain_set, cfg.batch_size, shuffle=True)
    for _ in range(cfg.epochs):
        for batch in loader:
            x, y = tu.to_device(batch, ctx)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
