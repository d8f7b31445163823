"""Task vector negation: learn the forget data further, then subtract that direction.

Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023 (arXiv 2212.04089); used as a
baseline in MUSE (`task_vector.py`): fine-tune the target on D_f to get θ_ft, then
θ_u = θ − α (θ_ft − θ). Only floating-point parameters move; buffers are kept. D_f is the forget
QA items (loss on the answers) and/or the raw forget texts (MUSE's articles / books, in windows of
``max_length`` tokens): `obliviate.train.sft.reinforced_copy`, shared with WHP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from obliviate.methods.base import method
from obliviate.train.sft import reinforced_copy


@dataclass(frozen=True)
class TaskVectorConfig:
    # MUSE sweeps alpha over {1, 2, 4, 8, 16} and keeps the first whose forget KnowMem falls to the
    # retrained model's (News: 16, Books: 1); 1.0 is plain negation (Ilharco et al.).
    alpha: float = 1.0
    # Fine-tuning on D_f uses the run's TrainConfig: MUSE 10 epochs at lr 1e-5.
    # A directory for θ_ft: loaded when it holds a model, else trained and saved there. It does not
    # depend on alpha, so an alpha sweep (MUSE: 1, 2, 4, 8, 16) trains it once; MUSE's WHP uses the
    # same θ_ft (pass the same folder as whp_logit's reinforced_path, with equal epochs and lr).
    reinforced_path: str = ""


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
    """Reinforce on the forget data (QA answers and/or raw texts), then negate the learned direction."""
    reinforced = reinforced_copy(model, tokenizer, task, fmt, train, path=cfg.reinforced_path)
    negate(model, reinforced, cfg.alpha)
    model.eval()
    return model
