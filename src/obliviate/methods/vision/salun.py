"""SalUn: saliency-based unlearning — random-label forgetting that only updates salient weights.

Fan, Liu, Zhang, Wei, Wong, Liu, "SalUn: Empowering Machine Unlearning via Gradient-based Weight
Saliency in Both Image Classification and Generation", ICLR 2024 spotlight (arXiv 2310.12508);
OPTML-Group/Unlearn-Saliency `Classification/generate_mask.py` + `unlearn/RL.py`:

1. g = |Σ_batches ∇_θ (−CE(θ_o; D_f))| over *all* parameters (one global ranking across layers);
   m = 1 on the top ``gamma`` fraction of entries of g (upstream `with_0.5.pt`: γ = 0.5).
   The gradients are taken in eval mode (`save_gradient_ratio` calls `model.eval()`), so batch-norm
   statistics and dropout of θ_o are neither used nor changed by the mask step.
2. The RL stage of `unlearn/RL.py` (CIFAR-10 branch), shared with ``random_label``: every epoch, a
   D_f pass whose random labels are redrawn for every batch, then a D_r pass, with every gradient
   multiplied by m and the weights outside m held at θ_o. With γ = 1 (m ≡ 1) SalUn *is* RL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method
from obliviate.methods.vision.random_label import relabel_epochs


@dataclass(frozen=True)
class SalUnConfig:
    gamma: float = 0.5  # fraction of weights marked salient (Unlearn-Saliency README: mask `with_0.5.pt`)
    epochs: int = 10  # Unlearn-Saliency README: 10 unlearning epochs
    # README lr is 0.013 (CIFAR-10 random forgetting, later version; 0.1 in an earlier one; a working
    # user run used 6e-3, issue #7). 0.013 also works for a digits MLP.
    lr: float = 0.013
    batch_size: int = 64  # Unlearn-Saliency: 256; smaller so a digits-sized dataset gives several steps
    momentum: float = 0.9  # main_forget.py SGD
    weight_decay: float = 5e-4  # main_forget.py SGD (applied to salient weights only; the rest stay θ_o)
    mask_batch_size: int = 256  # batch for the saliency gradient (a sum over batches: only memory depends on it)
    exclude_true_label: bool = True  # y' ≠ y (upstream: uniform over all C classes, may keep the true label)


def saliency_mask(grads: dict[str, torch.Tensor], gamma: float) -> dict[str, torch.Tensor]:
    """m = 1 on exactly int(gamma·N) entries with the largest |g| across all tensors (one global threshold)."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"salun: gamma is the salient fraction and must lie in [0, 1], got {gamma}")
    flat = torch.cat([g.detach().abs().flatten().cpu() for g in grads.values()])
    k = int(flat.numel() * gamma)  # upstream: threshold_index = int(len(all_elements) * ratio)
    keep = torch.zeros_like(flat)
    keep[torch.argsort(flat, descending=True, stable=True)[:k]] = 1.0
    out, start = {}, 0
    for name, g in grads.items():
        out[name] = keep[start:start + g.numel()].view_as(g).to(g.device, g.dtype)
        start += g.numel()
    return out


def forget_gradients(model: nn.Module, forget_set: Dataset, ctx: VisionContext,
                     batch_size: int) -> dict[str, torch.Tensor]:
    """Σ over D_f batches of ∇_θ −CE(θ; x_f, y_f) (batch-mean CE, as upstream), per named parameter.

    Taken in eval mode, as upstream `generate_mask.py`: batch norm uses (and keeps) its running
    statistics and dropout is off; the model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    model.zero_grad()
    for batch in ctx.loader(forget_set, batch_size, shuffle=False):
        x, y = tu.to_device(batch, ctx)
        (-F.cross_entropy(model(x), y)).backward()
    grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    model.train(was_training)
    return grads


@vision_method("salun", config=SalUnConfig, paper="SalUn: Empowering Machine Unlearning via Gradient-based "
               "Weight Saliency in Both Image Classification and Generation", arxiv="2310.12508",
               code="https://github.com/OPTML-Group/Unlearn-Saliency", needs=("labels", "forget_set", "retain_set"),
               summary="SalUn: random-label forgetting + retain CE, updating only the top-γ salient weights.")
def run(cfg: SalUnConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Mask from the forget-loss gradient of θ_o (eval mode), then the masked RL stage of ``random_label``."""
    tu.require_nonempty(task.forget_set, "forget", "salun")
    model = tu.start(model, ctx)
    mask = saliency_mask(forget_gradients(model, task.forget_set, ctx, cfg.mask_batch_size), cfg.gamma)
    theta_o = {n: p.detach().clone() for n, p in model.named_parameters() if n in mask}
    params = dict(model.named_parameters())

    def mask_grads() -> None:
        for n, m in mask.items():
            if params[n].grad is not None:
                params[n].grad.mul_(m)  # ∇ ⊙ m

    def hold_non_salient() -> None:  # weight decay / momentum must not move non-salient weights off θ_o
        with torch.no_grad():
            for n, m in mask.items():
                params[n].copy_(m * params[n] + (1 - m) * theta_o[n])

    opt = tu.sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    relabel_epochs(model, opt, task, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size, include_retain=True,
                   exclude_true_label=cfg.exclude_true_label, grad_hook=mask_grads, step_hook=hold_non_salient)
    return model.eval()
