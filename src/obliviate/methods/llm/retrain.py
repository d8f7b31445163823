"""Retrain: the exact-unlearning baseline (train again without the forget data).

What every approximate method is measured against (TOFU's retain model, MUSE's ``_retrain``).
The procedure is the original training recipe on the retain data only, so it needs to know that
recipe: a task built by a benchmark carries it as ``task.builders["retrain"](seed)`` (the built-in
fictional_authors benchmark gives its exact oracle recipe: same base, seed, steps and schedule);
otherwise name the pre-fine-tuning checkpoint in ``base_model`` and the retain data is fine-tuned on
it with the run's TrainConfig (lr, batch size, epochs over the retain data): the retain QA items
(loss on the answers) and the raw retain texts in ``max_length``-token windows, as the target was
trained. For MUSE that is MUSE's retrained model (Llama-2-7b fine-tuned on the retain corpus, which
is retain1 and retain2: `load_muse` keeps retain2 in ``metadata["retain2_texts"]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods.base import method
from obliviate.train.sft import sft_on_items


@dataclass(frozen=True)
class RetrainConfig:
    # Local directory of the model *before* it saw the forget data (safetensors); "" = use the
    # task's own recipe (task.builders["retrain"]). TOFU: the pretrained chat model; MUSE: Llama-2-7b.
    base_model: str = ""
    # TOFU retain models: 5 epochs over retain at lr 1e-5 (OpenUnlearning finetune configs); the
    # run's TrainConfig.epochs / lr are used, these are the values the tofu preset sets.


@method("retrain", config=RetrainConfig, kind="run", paper="TOFU: A Task of Fictitious Unlearning for LLMs",
        arxiv="2401.06121", code="https://github.com/locuslab/tofu", needs=("retain",),
        summary="Exact unlearning: the original recipe re-run on the retain data only (the oracle)")
def retrain(cfg: RetrainConfig, model, task, *, tokenizer, train, fmt):
    """Return a model trained without the forget data (``model`` itself is not used)."""
    if not cfg.base_model:
        if "retrain" not in task.builders:
            raise ValueError(
                f"retrain: task {task.name!r} carries no training recipe (task.builders['retrain']) and no "
                "base_model was given; pass base_model=<directory of the checkpoint before fine-tuning on the forget data>."
            )
        return task.builders["retrain"](train.seed)
    from obliviate.models.loading import load_causal_lm

    base, _ = load_causal_lm(cfg.base_model)
    # MUSE's target saw retain1 and retain2 (the task's retain_texts are retain1, the regulariser).
    texts = list(task.retain_texts) + list(task.metadata.get("retain2_texts", []))
    sft_on_items(base, tokenizer, task.retain, fmt, train, texts=texts)
    return base
