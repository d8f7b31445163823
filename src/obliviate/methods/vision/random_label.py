"""Random labelling (RL): fine-tune on the forget set relabelled at random, then on the retain set.

Golatkar, Achille, Soatto, "Eternal Sunshine of the Spotless Net", CVPR 2020 (arXiv 1911.04933)
introduced the baseline; implementation and defaults from OPTML-Group/Unlearn-Sparse `unlearn/RL.py`
(each epoch: one pass over D_f with fresh random labels, then one pass over D_r; SGD momentum 0.9,
wd 5e-4, 10 epochs, lr grid-searched). Upstream draws labels uniformly over all C classes, so a
forget example can keep its true label; here wrong labels only (y' ≠ y) by default, which is what
class-wise forgetting needs (set ``exclude_true_label=False`` to reproduce upstream).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class RandomLabelConfig:
    epochs: int = 10  # Unlearn-Sparse RL: 10 epochs
    lr: float = 0.01  # inside the authors' grid [1e-4, 1e-1]; works on digits and CIFAR-sized runs
    batch_size: int = 64  # Unlearn-Sparse: 256; smaller so a digits-sized D_f gives several steps
    momentum: float = 0.9  # main_forget.py SGD
    weight_decay: float = 5e-4  # main_forget.py SGD
    include_retain: bool = True  # the D_r pass after each D_f pass (Unlearn-Sparse RL.py)
    exclude_true_label: bool = True  # y' ≠ y (upstream: uniform over all classes)


def random_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None,
                  exclude_true: bool = True) -> torch.Tensor:
    """Random labels for ``y``: uniform over the C−1 wrong classes (``exclude_true``) or over all C.

    y' = (y + U{1..C−1}) mod C is uniform over the wrong classes and never equals y.
    """
    if num_classes < 2:
        raise ValueError(f"random labels need at least 2 classes, got num_classes={num_classes}")
    if not exclude_true:
        return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)
    shift = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
    return (y + shift) % num_classes


def relabel_epochs(model: nn.Module, opt: torch.optim.Optimizer, task: ClassificationTask, ctx: VisionContext,
                   *, epochs: int, batch_size: int, include_retain: bool, exclude_true_label: bool,
                   grad_hook: Callable[[], None] | None = None, step_hook: Callable[[], None] | None = None) -> None:
    """The RL stage of Unlearn-Sparse / Unlearn-Saliency `unlearn/RL.py` (CIFAR-10 branch), in place.

    Each epoch: one pass over D_f with labels redrawn for every batch (upstream calls
    `torch.randint` inside the loop of every epoch), then one pass over D_r with true labels.
    SalUn runs this same stage with ``grad_hook`` (∇ ⊙ m) and ``step_hook`` (non-salient weights
    back to θ_o), so SalUn with mask ratio 1 is exactly this function.
    """
    gen = torch.Generator().manual_seed(ctx.seed + 1)
    forget = ctx.loader(task.forget_set, batch_size, shuffle=True)
    use_retain = include_retain and len(task.retain_set) > 0
    retain = ctx.loader(task.retain_set, batch_size, shuffle=True) if use_retain else None

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if grad_hook is not None:
            grad_hook()
        opt.step()
        if step_hook is not None:
            step_hook()

    model.train()
    for _ in range(epochs):
        for batch in forget:
            x, y = tu.to_device(batch, ctx)
            step(x, random_labels(y.cpu(), task.num_classes, gen, exclude_true_label).to(ctx.device))
        for batch in retain if retain is not None else ():
            step(*tu.to_device(batch, ctx))


@vision_method("random_label", config=RandomLabelConfig, paper="Eternal Sunshine of the Spotless Net: "
               "Selective Forgetting in Deep Networks", arxiv="1911.04933",
               code="https://github.com/OPTML-Group/Unlearn-Sparse", needs=("labels", "forget_set", "retain_set"),
               summary="RL: CE on the forget set with random wrong labels, then CE on the retain set, per epoch.")
def run(cfg: RandomLabelConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Per epoch: min CE(θ; x_f, y') over D_f with fresh y', then min CE(θ; x_r, y_r) over D_r."""
    tu.require_nonempty(task.forget_set, "forget", "random_label")
    model = tu.start(model, ctx)
    opt = tu.sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    relabel_epochs(model, opt, task, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size,
                   include_retain=cfg.include_retain, exclude_true_label=cfg.exclude_true_label)
    return model.eval()
