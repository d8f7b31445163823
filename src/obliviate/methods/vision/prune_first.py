"""Prune first, then unlearn: one-shot global magnitude pruning, then any unlearner with the mask fixed.

Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023 spotlight (arXiv 2304.04934),
OPTML-Group/Unlearn-Sparse `pruner/` (OMP) + `main_forget.py --mask`. The paper's bound on the
approximate-vs-retrain gap scales with ‖m ⊙ (θ_t − θ_0)‖₂, so a sparse mask m brings approximate
unlearners (FT, GA, RL, ...) closer to Retrain.

Steps: (1) global unstructured magnitude pruning of the Linear and Conv weights of θ_o (upstream
prunes Conv2d weights only — a ResNet's classifier is tiny; an MLP has no convolutions, so Linear is
included here; biases and norm layers are never pruned); (2) optionally re-train the sparse model on
D_r ∪ D_f (upstream rewinds to epoch 8 and re-trains on the full training set, which is D_r ∪ D_f);
(3) run the inner method with pruned weights held at exactly 0 (weight = original ⊙ m through a
`torch.nn.utils.parametrize` mask, removed at the end so the returned model is a plain module).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import ConcatDataset

from obliviate.methods.vision import _train_utils as tu
from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class PruneFirstConfig:
    # Paper/OMP: 0.95 on ResNet-18 (11M weights). A digits MLP (64-64-32-10, ~6.5k weights) keeps
    # ~320 weights at 0.95 and FT on the retain set only gets back to ~45% accuracy (0.9: ~89%);
    # at 0.8 it stays within ~1 point of the dense model. Set 0.95 for CIFAR-sized networks.
    sparsity: float = 0.8
    inner: str = "img_finetune"  # the unlearner run on the sparse model (paper: FT, GA, RL, FF, IU)
    inner_config: dict = field(default_factory=dict)  # overrides for the inner method's config
    recover_epochs: int = 0  # sparse re-training on D_r ∪ D_f before unlearning (upstream: full OMP retrain)
    recover_lr: float = 0.01  # lr of that re-training (SGD, momentum 0.9, wd 5e-4 as main_forget.py)
    batch_size: int = 256  # batch of the re-training pass


class _Mask(nn.Module):
    """weight = original ⊙ mask (a fixed binary buffer)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weight tensors of every Linear / Conv layer, keyed by module name."""
    return {name: m.weight for name, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))}


def global_magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Binary masks zeroing exactly round(sparsity·N) of the N weights with the smallest |w|, globally.

    One threshold across all layers (OMP, `prune.global_unstructured(L1Unstructured)`); ties are
    broken by position so the count is exact.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    flat = torch.cat([w.detach().abs().flatten().cpu() for w in weights.values()])
    n_prune = int(round(sparsity * flat.numel()))
    keep = torch.ones_like(flat)
    keep[torch.argsort(flat, stable=True)[:n_prune]] = 0.0
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = keep[start:start + w.numel()].view_as(w).to(w.device, w.dtype)
        start += w.numel()
    return masks


def _apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        mod = modules[name]
        with torch.no_grad():
            mod.weight.mul_(mask)  # pruned entries of `original` are exactly 0 and get zero gradient
        parametrize.register_parametrization(mod, "weight", _Mask(mask))


def _remove_masks(model: nn.Module) -> nn.Module:
    for mod in model.modules():
        if parametrize.is_parametrized(mod, "weight"):
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
    return model


@vision_method("prune_first", config=PruneFirstConfig, paper="Model Sparsity Can Simplify Machine Unlearning",
               arxiv="2304.04934", code="https://github.com/OPTML-Group/Unlearn-Sparse",
               needs=("labels", "retain_set"),
               summary="Prune first, then unlearn: global magnitude pruning, then an inner unlearner "
                       "with the mask fixed.")
def run(cfg: PruneFirstConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Prune θ_o to ``sparsity``, optionally re-train it sparse, then run ``inner`` with the mask fixed."""
    from obliviate import registry

    if cfg.inner == "prune_first":
        raise ValueError("prune_first: inner must be another method (e.g. img_finetune), not prune_first itself.")
    spec = registry.get("method", cfg.inner).obj
    if spec.run is None or "image" not in registry.get("method", cfg.inner).modalities:
        raise ValueError(f"prune_first: inner={cfg.inner!r} is not an image-classifier method; "
                         f"choose one of {registry.names('method', 'image')}.")
    inner_cfg = spec.make_config(cfg.inner_config)
    sparse = tu.start(model, ctx)
    _apply_masks(sparse, global_magnitude_masks(prunable_weights(sparse), cfg.sparsity))
    if cfg.recover_epochs > 0:
        opt = tu.sgd(sparse, cfg.recover_lr, 0.9, 5e-4)
        loader = ctx.loader(ConcatDataset([task.retain_set, task.forget_set]), cfg.batch_size, shuffle=True)
        for _ in range(cfg.recover_epochs):
            for batch in loader:
                x, y = tu.to_device(batch, ctx)
                loss = F.cross_entropy(sparse(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    out = spec.run(inner_cfg, sparse.eval(), task, ctx)
    return _remove_masks(out).eval()
