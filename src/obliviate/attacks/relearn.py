"""Relearning attack: a few fine-tuning steps on a small slice of the forget set.

If k steps on a handful of forget examples restore the rest, the knowledge was hidden, not
removed (Lynch et al., "Eight Methods to Evaluate Robust Unlearning in LLMs", arXiv 2402.16835;
Hu et al., "Jogging the Memory of Unlearned LLMs Through Targeted Relearning Attacks",
arXiv 2406.13356). The audit then scores the *whole* forget set, so items outside the slice
measure recovery rather than re-memorisation.
"""

from __future__ import annotations

import copy

from obliviate.attacks.base import AttackResult, attack
from obliviate.data.formatting import PromptFormat, encode_pair
from obliviate.data.task import ForgetTask
from obliviate.train.sft import SFTConfig, sft


@attack("relearn", paper="Jogging the Memory of Unlearned LLMs Through Targeted Relearning Attacks",
        arxiv="2406.13356", summary="k fine-tuning steps on a slice of the forget set (or related data)")
def relearn(model, task: ForgetTask, tokenizer, *, steps: int = 10, fraction: float = 0.25, lr: float = 1e-3,
            batch_size: int = 8, seed: int = 0, related: list | None = None, fmt: PromptFormat | None = None
            ) -> AttackResult:
    """Fine-tune a copy on ``fraction`` of the forget items (or on ``related`` items) for ``steps`` steps."""
    fmt = fmt or PromptFormat()
    n = max(1, int(round(fraction * len(task.forget))))
    slice_ = list(related) if related is not None else task.forget[:n]
    ex = [encode_pair(tokenizer, fmt.prompt(it.question, tokenizer, it.context), fmt.answer(it.answer, tokenizer)) for it in slice_]
    m = copy.deepcopy(model)
    sft(m, tokenizer, ex, SFTConfig(steps=steps, lr=lr, batch_size=batch_size, warmup_steps=0, seed=seed))
    return AttackResult(m, task, {"steps": steps, "n_examples": len(slice_), "lr": lr,
                                  "source": "related" if related is not None else "forget slice",
                                  "slice_ids": [it.id for it in slice_]})
