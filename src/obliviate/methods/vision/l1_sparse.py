"""ℓ1-sparse unlearning: fine-tune on the retain set with a linearly decaying ℓ1 penalty.

Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu, "Model Sparsity Can Simplify Machine Unlearning",
NeurIPS 2023 spotlight (arXiv 2304.04934); OPTML-Group/Unlearn-Sparse `unlearn/FT.py::FT_iter(with_l1=True)`:

    L_t = CE(θ; D_r) + γ_t·‖θ‖₁,   ‖θ‖₁ over *all* parameters (biases included),
    γ_t = γ·(1 − t/(T − T_noL1)) for epoch t < T − T_noL1, else 0;  γ constant if T = T_noL1.

Sparsity pulls the model towards a region where the retrain/unlearn gap is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class L1SparseConfig:
    # Initial ℓ1 weight γ (upstream `--alpha`; the argparse default is a placeholder). 1e-4 with
    # lr 0.01 / 10 epochs is the CIFAR-10 setting of reproduction scripts built on the official
    # code (e.g. JingWu321/Scissorhands `main_0.5_cifar10.sh`); the paper's value is UNVERIFIED.
    gamma: float = 1e-4
    no_l1_epochs: int = 0  # upstream `--no-l1-epochs` default 0 (penalty decays to 0 at the last epoch)
    epochs: int = 10  # Unlearn-Sparse README: 10 epochs
    lr: float = 0.01  # Unlearn-Sparse README: lr 0.01
    batch_size: int = 256  # Unlearn-Sparse argparse default
    momentum: float = 0.9  # main_forget.py SGD
    weight_decay: float = 5e-4  # main_forget.py SGD


def l1_schedule(epoch: int, gamma: float, epochs: int, no_l1_epochs: int = 0) -> float:
    """γ_t of FT_iter(with_l1=True): linear decay from γ to 0 over T − T_noL1 epochs, then 0."""
    decay_epochs = epochs - no_l1_epochs
    if decay_epochs <= 0:
        return gamma  # upstream: "elif args.unlearn_epochs - args.no_l1_epochs == 0: current_alpha = args.alpha"
    if epoch < decay_epochs:
        return gamma * (1.0 - epoch / decay_epochs)
    return 0.0


def l1_norm(model: nn.Module) -> torch.Tensor:
    """‖θ‖₁ over every trainable parameter (upstream `l1_regularization`)."""
    return sum((p.abs().sum() for p in model.parameters() if p.requires_grad), torch.zeros(()))


@vision_method("l1_sparse", config=L1SparseConfig, paper="Model Sparsity Can Simplify Machine Unlearning",
               arxiv="2304.04934", code="https://github.com/OPTML-Group/Unlearn-Sparse",
               needs=("labels", "retain_set"),
               summary="ℓ1-sparse: FT on the retain set + γ_t·‖θ‖₁ with γ_t decaying linearly to 0.")
def run(cfg: L1SparseConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """min_θ CE(θ; D_r) + γ_t·‖θ‖₁ from θ_o (γ_t from `l1_schedule`, updated per epoch)."""
    tu.require_nonempty(task.retain_set, "retain", "l1_sparse")
    model = tu.start(model, ctx)
    opt = tu.sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    loader = ctx.loader(task.retain_set, cfg.batch_size, shuffle=True)
    for epoch in range(cfg.epochs):
        gamma_t = l1_schedule(epoch, cfg.gamma, cfg.epochs, cfg.no_l1_epochs)
        for batch in loader:
            x, y = tu.to_device(batch, ctx)
            loss = F.cross_entropy(model(x), y)
            if gamma_t > 0:
                loss = loss + gamma_t * l1_norm(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
