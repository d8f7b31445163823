"""Exact unlearning: retrain from scratch on the retain set (the gold standard every method is
compared against).

Bourtoule et al., "Machine Unlearning", IEEE S&P 2021 (arXiv 1912.03817) frame retraining
without the forget data as the exact answer; the OPTML-Group benchmarks (Unlearn-Sparse,
Unlearn-Saliency) report it as "Retrain" (CIFAR-10: 182 epochs, lr 0.1). The training recipe is
the task's: ``task.train_fn(dataset, seed)`` must be the one that produced the original model.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class ImgRetrainConfig:
    seed_offset: int = 0  # added to ctx.seed; vary it to draw several retrained models (oracle ensembles)


@vision_method("img_retrain", config=ImgRetrainConfig, paper="Machine Unlearning", arxiv="1912.03817",
               code="https://github.com/OPTML-Group/Unlearn-Sparse", needs=("labels", "train_fn"),
               summary="Exact unlearning: train a fresh model on the retain set with the task's recipe.")
def run(cfg: ImgRetrainConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Return ``task.train_fn(task.retain_set, ctx.seed + cfg.seed_offset)``; ``model`` is ignored."""
    if task.train_fn is None:
        raise ValueError(
            f"img_retrain: task {task.name!r} has no train_fn, so there is no recipe to retrain from scratch. "
            "Pass ClassificationTask(train_fn=lambda dataset, seed: <train a fresh model>) or pick an "
            "approximate method (img_finetune, salun, scrub, ...)."
        )
    if len(task.retain_set) == 0:
        raise ValueError("img_retrain: the retain set is empty; there is nothing to retrain on.")
    out = task.train_fn(task.retain_set, ctx.seed + cfg.seed_offset)
    return out.to(ctx.device)
