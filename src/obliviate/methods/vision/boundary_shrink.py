"""Boundary Shrink: relabel each forget example with its nearest wrong class, found by an FGSM
step on the original model, and fine-tune the forget set towards those labels.

Chen, Gao, Liu, Peng, Zhou, "Boundary Unlearning: Rapid Forgetting of Deep Networks via Shifting the
Decision Space", CVPR 2023 (arXiv 2303.11570); authors' code (Dropbox, "Boundary-Unlearning-Code")
and the OPTML-Group port `unlearn/boundary_ex.py::boundary_shrink_iter`:

    x_adv = clip(x + ε·sign(∇_x CE(θ_o; x, y)))        (FGSM on the frozen original, ε = 0.1)
    ŷ     = argmax θ_o(x_adv)                            (the "nearest but incorrect" class)
    min_θ CE(θ; x, ŷ) over D_f                          (SGD momentum 0.9, 10 epochs, lr 1e-5)

When the FGSM step does not cross the boundary, upstream trains towards ŷ = y (a no-op for that
example); here ŷ is the highest-scoring *wrong* class of θ_o(x_adv) instead (``exclude_true_label``),
so a forget example is never pushed back to its own class. θ_o is frozen, so ŷ is computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class BoundaryShrinkConfig:
    epsilon: float = 0.1  # FGSM bound (paper; "hard coding in the paper" in the OPTML port)
    epochs: int = 10  # paper: 10 epochs
    # Paper: lr 1e-5 (OPTML scripts: 5e-6) on CIFAR-10 with ~40 forget batches per epoch and a
    # ResNet; a digits class is ~3 batches, so 1e-5 changes nothing. 1e-3 shrinks a digits class
    # in 10 epochs with test accuracy on the other classes unchanged (3e-3 already costs ~5 points).
    lr: float = 1e-3
    batch_size: int = 64  # upstream: the forget loader's batch (128-256)
    momentum: float = 0.9  # upstream SGD
    clamp_min: float | None = 0.0  # valid input range for the adversarial image (upstream clamps to [0, 1])
    clamp_max: float | None = 1.0
    exclude_true_label: bool = True  # never train towards y (see module docstring)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
         clamp_min: float | None = None, clamp_max: float | None = None) -> torch.Tensor:
    """x + ε·sign(∇_x CE(model(x), y)), clipped to [clamp_min, clamp_max] (either bound may be None)."""
    x_adv = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
    out = x + epsilon * grad.sign()
    if clamp_min is not None or clamp_max is not None:
        out = out.clamp(min=clamp_min, max=clamp_max)
    return out.detach()


def neighbour_labels(logits_adv: torch.Tensor, y: torch.Tensor, exclude_true: bool = True) -> torch.Tensor:
    """argmax of the adversarial logits; with ``exclude_true`` the true class is masked out first."""
    if exclude_true:
        logits_adv = logits_adv.scatter(1, y.view(-1, 1), float("-inf"))
    return logits_adv.argmax(dim=1)


@vision_method("boundary_shrink", config=BoundaryShrinkConfig, paper="Boundary Unlearning: Rapid Forgetting "
               "of Deep Networks via Shifting the Decision Space", arxiv="2303.11570",
               code="https://github.com/OPTML-Group/Unlearn-Sparse", needs=("labels", "forget_set"),
               summary="Boundary Shrink: fine-tune forget examples towards their FGSM-nearest wrong class.")
def run(cfg: BoundaryShrinkConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Neighbour labels from FGSM on frozen θ_o, then min CE(θ; x_f, ŷ) for ``epochs`` passes over D_f."""
    tu.require_nonempty(task.forget_set, "forget", "boundary_shrink")
    original = tu.frozen_copy(model, ctx)
    xs, ys = [], []
    for batch in ctx.loader(task.forget_set, cfg.batch_size, shuffle=False):
        x, y = tu.to_device(batch, ctx)
        x_adv = fgsm(original, x, y, cfg.epsilon, cfg.clamp_min, cfg.clamp_max)
        with torch.no_grad():
            ys.append(neighbour_labels(original(x_adv), y, cfg.exclude_true_label).cpu())
        xs.append(x.cpu())
    relabelled = TensorDataset(torch.cat(xs), torch.cat(ys))
    model = tu.start(model, ctx)
    opt = tu.sgd(model, cfg.lr, cfg.momentum, 0.0)  # upstream optimiser has no weight decay
    loader = ctx.loader(relabelled, cfg.batch_size, shuffle=True)
    for _ in range(cfg.epochs):
        for batch in loader:
            x, y_hat = tu.to_device(batch, ctx)
            loss = F.cross_entropy(model(x), y_hat)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
