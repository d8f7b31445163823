"""SalUn: saliency-based unlearning — random-label forgetting that only updates salient weights.

Fan, Liu, Zhang, Wei, Wong, Liu, "SalUn: Empowering Machine Unlearning via Gradient-based Weight
Saliency in Both Image Classification and Generation", ICLR 2024 spotlight (arXiv 2310.12508);
OPTML-Group/Unlearn-Saliency `Classification/generate_mask.py` + `unlearn/RL.py`:

1. g = |Σ_batches ∇_θ (−CE(θ_o; D_f))| over *all* parameters (one global ranking across layers);
   m = 1 on the top ``gamma`` fraction of entries of g (upstream `with_0.5.pt`: γ = 0.5).
2. Random labelling on D_f ∪ D_r: CE on the concatenation of (x_f, y') and (x_r, y_r), gradients
   multiplied by m; weights outside m stay at θ_o.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, Dataset, TensorDataset

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method
from obliviate.methods.vision.random_label import random_labels


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
    """Σ over D_f batches of ∇_θ −CE(θ; x_f, y_f) (batch-mean CE, as upstream), per named parameter."""
    model.zero_grad()
    for batch in ctx.loader(forget_set, batch_size, shuffle=False):
        x, y = tu.to_device(batch, ctx)
        (-F.cross_entropy(model(x), y)).backward()
    grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    return grads


def _relabelled(forget_set: Dataset, num_classes: int, gen: torch.Generator, exclude_true: bool) -> TensorDataset:
    xs, ys = zip(*(forget_set[i] for i in range(len(forget_set))))
    x = torch.stack([torch.as_tensor(v) for v in xs])
    y = torch.as_tensor([int(v) for v in ys])
    return TensorDataset(x, random_labels(y, num_classes, gen, exclude_true))


@vision_method("salun", config=SalUnConfig, paper="SalUn: Empowering Machine Unlearning via Gradient-based "
               "Weight Saliency in Both Image Classification and Generation", arxiv="2310.12508",
               code="https://github.com/OPTML-Group/Unlearn-Saliency", needs=("labels", "forget_set", "retain_set"),
               summary="SalUn: random-label forgetting + retain CE, updating only the top-γ salient weights.")
def run(cfg: SalUnConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Mask from the forget-loss gradient of θ_o, then masked RL on D_f (random labels) ∪ D_r."""
    tu.require_nonempty(task.forget_set, "forget", "salun")
    model = tu.start(model, ctx)
    mask = saliency_mask(forget_gradients(model, task.forget_set, ctx, cfg.mask_batch_size), cfg.gamma)
    theta_o = {n: p.detach().clone() for n, p in model.named_parameters() if n in mask}
    gen = torch.Generator().manual_seed(ctx.seed + 1)
    # Upstream relabels D_f once, before training (`forget_dataset.targets = np.random.randint(...)`).
    data = ConcatDataset([_relabelled(task.forget_set, task.num_classes, gen, cfg.exclude_true_label),
                          tu.AsTensors(task.retain_set)])
    opt = tu.sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    loader = ctx.loader(data, cfg.batch_size, shuffle=True)
    params = dict(model.named_parameters())
    for _ in range(cfg.epochs):
        for batch in loader:
            x, y = tu.to_device(batch, ctx)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            for n, m in mask.items():
                if params[n].grad is not None:
                    params[n].grad.mul_(m)  # ∇ ⊙ m
            opt.step()
            with torch.no_grad():  # weight decay / momentum must not move non-salient weights off θ_o
                for n, m in mask.items():
                    params[n].copy_(m * params[n] + (1 - m) * theta_o[n])
    return model.eval()
