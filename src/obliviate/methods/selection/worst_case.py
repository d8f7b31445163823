"""Worst-case forget set ("Challenging Forgets").

Fan, Liu, Hero, Liu, "Challenging Forgets: Unveiling the Worst-Case Forget Sets in Machine
Unlearning", ECCV 2024 (arXiv 2403.07362). Reference code: OPTML-Group/Unlearn-WorstCase
(``main_selmu.py``, ``unlearn/impl.py``).

Bi-level selection of the size-k subset that is hardest to erase. Sample weights w ∈ [0,1]^N,
Σw = k. Each outer epoch restarts from θ_o and runs the lower level, an approximate unlearner
that fine-tunes on the weighted complement, Σ_i (1 − w_i)·ℓ_i(θ), with sign-SGD; the upper level
then takes a first-order step on Σ_i w_i·ℓ_i(θ_u) (no ∂θ_u/∂w term, as the reference), which moves
weight onto examples whose loss *stays low* after unlearning — the ones the model still fits —
and projects back onto {0 ≤ w ≤ 1, Σw = k} by bisection. The result is the top-k of w.

Practical CPU version (documented deviations from the reference):
- ``unlearn_steps`` counts sign-SGD mini-batch steps, not epochs;
- the upper-level gradient ℓ is divided by its mean so ``w_lr`` does not depend on the loss
  scale (a well-trained model has tiny losses and the reference's raw step barely moves w);
- w starts uniform (k/N) by default; ``init="random"`` is the reference's random k-subset;
- the final top-k breaks ties in w by the lower final loss.

On digits (``benchmarks/worst_case_digits.py``, k = 10% of 1,347, seeds 0-2) the default
``theta_lr`` 0.01 picks a set that shares 70 ± 3% of its examples with the lowest-loss ranking
and is as hard to forget as that set: fine-tuning, gradient ascent and even the exact retrain
leave its error at 0.0% (a random set: 0.7, 2.5 and 2.5%), the "retrain UA ≈ 0 on worst-case
sets" the paper reports; on digits the search adds nothing measurable over the ranking, since
both are already at 0. At ``theta_lr`` 0.1 the sign-SGD lower level wrecks the model and the
search drifts to examples that retraining cannot predict (retrain UA 29 ± 29%).

Signature (package convention, see ``random_select``): ``select(pool, model, k, *, seed, ...)``
with ``pool`` a ``ClassificationTask`` (candidates = retain_set then forget_set, i.e. indices into
``ConcatDataset([retain_set, forget_set])``) or any Dataset of ``(x, y)``; returns ``k`` distinct
indices, hardest-first.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from obliviate.methods.selection.random_select import check_k
from obliviate.registry import register


def project_capped_simplex(w: torch.Tensor, k: float, iters: int = 100) -> torch.Tensor:
    """Euclidean projection onto {0 ≤ w ≤ 1, Σw = k}: w ← clip(w − μ, 0, 1) with μ found by bisection."""
    lo, hi = (w.min() - 1).item(), w.max().item()
    for _ in range(iters):
        mu = (lo + hi) / 2
        if (w - mu).clamp(0, 1).sum().item() > k:
            lo = mu
        else:
            hi = mu
    return (w - (lo + hi) / 2).clamp(0, 1)


def _per_example_loss(model: nn.Module, loader: DataLoader, device: torch.device) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([F.cross_entropy(model(x.to(device)), y.to(device), reduction="none").cpu()
                          for x, y in loader])


@register("selector", "worst_case",
          paper="Challenging Forgets: Unveiling the Worst-Case Forget Sets in Machine Unlearning",
          arxiv="2403.07362", code="https://github.com/OPTML-Group/Unlearn-WorstCase",
          modalities=("image",), needs=("labels", "model"),
          summary="Bi-level (first-order) search for the k training examples hardest to unlearn.")
def select(pool, model: nn.Module, k: int, *, seed: int = 0, select_epochs: int = 10, unlearn_steps: int = 10,
           theta_lr: float = 0.01, w_lr: float = 0.5, gamma: float = 0.0, batch_size: int = 256,
           init: str = "uniform", device: torch.device | str = "cpu") -> list[int]:
    """Indices (into ``pool``) of the ``k`` examples whose loss stays lowest under unlearning, hardest-first.

    Defaults: ``select_epochs`` 10, ``unlearn_steps`` 10, ``theta_lr`` 0.01, γ 0 (reference
    ``main_selmu.py``); ``w_lr`` 0.5 applies to the mean-normalised loss (ours; reference 0.01 on
    raw losses).
    """
    ds: Dataset = ConcatDataset([pool.retain_set, pool.forget_set]) if hasattr(pool, "retain_set") else pool
    n = len(ds)  # type: ignore[arg-type]
    check_k(k, n, "worst_case selector")
    if init not in ("uniform", "random"):
        raise ValueError(f"worst_case selector: init must be 'uniform' or 'random', got {init!r}")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    if init == "uniform":
        w = torch.full((n,), k / max(n, 1))
    else:  # the reference's random k-subset
        w = torch.zeros(n)
        w[torch.randperm(n, generator=gen)[:k]] = 1.0
    eval_loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    loss = torch.zeros(n)
    for _ in range(select_epochs):
        student = copy.deepcopy(model).to(device)
        params = [p for p in student.parameters() if p.requires_grad]
        student.train()
        for _ in range(unlearn_steps):  # lower level: sign-SGD on Σ(1 − w_i)·ℓ_i over a mini-batch
            idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
            x, y = zip(*(ds[int(i)] for i in idx))
            x, y = torch.stack([torch.as_tensor(v) for v in x]).to(device), torch.as_tensor(y).to(device)
            weights = (1 - w[idx]).to(device)
            lower = (weights * F.cross_entropy(student(x), y, reduction="none")).sum() / weights.sum().clamp_min(1e-8)
            grads = torch.autograd.grad(lower, params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    if g is not None:
                        p.sub_(theta_lr * g.sign())
        loss = _per_example_loss(student, eval_loader, device)  # upper level, first-order
        grad_w = loss / loss.mean().clamp_min(1e-12) + 2 * gamma * w
        w = project_capped_simplex(w - w_lr * grad_w, k)
    # top-k of w, ties by the lower final loss (stable sort on loss, then on −w)
    order = torch.argsort(loss, stable=True)
    order = order[torch.argsort(-w[order], stable=True)]
    return order[:k].tolist()
