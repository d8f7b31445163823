"""Parameter-importance helpers shared by the curvature-based classifier unlearners.

SSD, Fisher forgetting and influence unlearning (IU) all need gradients of the classification
loss summarised per parameter: squared mini-batch gradients (SSD), the diagonal of the true
Fisher (Fisher forgetting) or a matrix of per-example gradients (IU's WoodFisher inverse).
They live here, as plain functions, so the three method files stay one algorithm each.
Per-example gradients use ``torch.func`` (``vmap`` over ``grad``), which is exact and much
faster than a batch-size-1 loop.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap
from torch.utils.data import DataLoader, Dataset, Subset


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """Named parameters that require gradients (the ones an unlearner may change)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def capped(ds: Dataset, max_samples: int, seed: int) -> Dataset:
    """``ds`` itself, or a seeded random subset of ``max_samples`` items when it is larger (0 = no cap)."""
    n = len(ds)  # type: ignore[arg-type]
    if max_samples <= 0 or n <= max_samples:
        return ds
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_samples]
    return Subset(ds, idx.tolist())


def squared_grad_importance(
    model: nn.Module, loader: DataLoader, loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """I = (1/#batches) Σ_batches (∇θ L_batch)², SSD's ``calc_importance``."""
    params = trainable(model)
    imp = {n: torch.zeros_like(p) for n, p in params.items()}
    batches = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        model.zero_grad(set_to_none=True)
        loss_fn(model, x, y).backward()
        for n, p in params.items():
            if p.grad is not None:
                imp[n] += p.grad.detach() ** 2
        batches += 1
    model.zero_grad(set_to_none=True)
    return {n: v / max(batches, 1) for n, v in imp.items()}


def _functional(model: nn.Module):
    params = {n: p.detach() for n, p in trainable(model).items()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def logits_one(p: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (x.unsqueeze(0),)).squeeze(0)

    return params, logits_one


def per_example_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """∇θ CE(θ; x_i, y_i) for every row i: a dict of tensors shaped ``(B, *param.shape)``."""
    params, logits_one = _functional(model)

    def loss_one(p: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits_one(p, xi).unsqueeze(0), yi.unsqueeze(0))

    return vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)


def fisher_diagonal(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, torch.Tensor]:
    """Diagonal of the true Fisher, F = E_x Σ_y p_θ(y|x) (∇θ log p_θ(y|x))².

    Golatkar et al.'s ``hessian()`` (SelectiveForgetting; Unlearn-Sparse ``unlearn/fisher.py``)
    computes exactly this with a batch-size-1 loop over every class; here one vmapped Jacobian of
    the log-softmax per batch gives the same numbers.
    """
    was_training = model.training
    model.eval()
    params, logits_one = _functional(model)

    def logp_one(p: dict, xi: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(logits_one(p, xi), dim=-1)

    jac = vmap(jacrev(logp_one), in_dims=(None, 0))
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for x, _ in loader:
        x = x.to(device)
        with torch.no_grad():
            prob = F.softmax(model(x), dim=-1)  # (B, C)
        jacs = jac(params, x)  # name -> (B, C, *shape)
        for n, j in jacs.items():
            w = prob.reshape(prob.shape + (1,) * (j.dim() - 2))
            acc[n] += (w * j.pow(2)).sum(dim=(0, 1))
        count += x.shape[0]
    model.train(was_training)
    return {n: v / max(count, 1) for n, v in acc.items()}


def flat_grads(model: nn.Module, loader: DataLoader, device: torch.device) -> torch.Tensor:
    """Per-example loss gradients flattened to one row each: ``(n, P)`` in ``trainable`` order."""
    rows = []
    for x, y in loader:
        g = per_example_grads(model, x.to(device), y.to(device))
        rows.append(torch.cat([v.reshape(v.shape[0], -1) for v in g.values()], dim=1))
    return torch.cat(rows, dim=0)


def add_flat_(model: nn.Module, delta: torch.Tensor) -> None:
    """θ ← θ + delta, with ``delta`` flattened in ``trainable`` order."""
    offset = 0
    with torch.no_grad():
        for p in trainable(model).values():
            k = p.numel()
            p.add_(delta[offset:offset + k].view_as(p))
            offset += k
