"""Task vector negation: learn the forget data further, then subtract that direction.

Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023 (arXiv 2212.04089); used as a
baseline in MUSE (`task_vector.py`): fine-tune the target on D_f to get θ_ft, then
θ_u = θ − α (θ_ft − θ). Only floating-point parameters move; buffers are kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from obliviate.methods.base import method
from obliviate.train.sft import sft_on_items


@dataclass(frozen=True)
class TaskVectorConfig:
    # MUSE sweeps alpha over {1, 2, 4, 8, 16} and keeps the first whose forget KnowMem falls to the
    # retrained model's (News: 16, Books: 1); 1.0 is plain negation (Ilharco et al.).
    alpha: float = 1.0
    # Fine-tuning on D_f uses the run's TrainConfig: MUSE 10 epochs at lr 1e-5.


def negate(model: torch.nn.Module, finetuned: torch.nn.Module, alpha: float) -> None:
    """In place: θ ← θ − α (θ_ft − θ) for every floating-point parameter."""
    ft = dict(finetuned.named_parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.is_floating_point():
                p.sub_(alpha * (ft[name] - p))


@method("task_vector", config=TaskVectorConfig, kind="run", paper="Editing Models with Task Arithmetic",
        arxiv="2212.04089", code="https://github.com/jaechan-repo/muse_bench",
        summary="Fine-tune on the forget set, then subtract alpha times that task vector")
def task_vector(cfg: TaskVectorConfig, model, task, *, tokenizer, train, fmt):
    """Reinforce on the forget answers, then negate the learned direction."""
    reinforced = copy.deepcopy(model)
    sft_on_items(reinforced, tokenizer, task.forget, fmt, train)
    negate(model, reinforced, cfg.alpha)
    model.eval()
    return model
