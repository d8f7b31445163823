"""Small training helpers shared by the image-classifier methods (not a method; not registered).

Every method in this package copies the model, seeds torch from ``ctx.seed`` and runs its own
plain PyTorch loop; these helpers only remove the boilerplate (copy + device, SGD as in the
OPTML-Group code, batches on the device, an endless loader, a frozen teacher).
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from obliviate.methods.vision.base import VisionContext


def start(model: nn.Module, ctx: VisionContext) -> nn.Module:
    """Seed torch from ``ctx.seed`` and return a trainable copy of ``model`` on ``ctx.device``.

    Methods never update the caller's model: the original is the reference (teacher, θ_o).
    """
    torch.manual_seed(ctx.seed)
    out = copy.deepcopy(model).to(ctx.device)
    out.train()
    return out


def frozen_copy(model: nn.Module, ctx: VisionContext) -> nn.Module:
    """An eval-mode, gradient-free copy (teacher / θ_o / attack model)."""
    ref = copy.deepcopy(model).to(ctx.device).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD over the trainable parameters (OPTML-Group `main_forget.py`: momentum 0.9, wd 5e-4)."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                           weight_decay=weight_decay)


def to_device(batch, ctx: VisionContext) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = batch
    return x.to(ctx.device), torch.as_tensor(y).long().to(ctx.device)


def cycle(loader: DataLoader) -> Iterator:
    """Endless iteration over ``loader`` (re-shuffled each pass), like `itertools.cycle` without caching."""
    while True:
        yield from loader


def require_nonempty(ds, what: str, method: str) -> None:
    if len(ds) == 0:
        raise ValueError(f"{method}: the {what} set is empty; this method needs at least one {what} example.")


class AsTensors(Dataset):
    """View of a dataset whose items are ``(tensor x, long tensor y)``, so that sets built here
    (e.g. relabelled forget examples) can be concatenated with a user's dataset and collated together."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.ds[i]
        return torch.as_tensor(x), torch.as_tensor(int(y), dtype=torch.long)
