"""Build an `AuditView` for a model on a QA ForgetTask: every set scored once, through the cache."""

from __future__ import annotations

import torch

from obliviate.data.task import ForgetTask, QAItem
from obliviate.scoring.cache import ScoringCache
from obliviate.scoring.types import AuditView

# Sets whose greedy generations the ROUGE / fluency / familiarity metrics read.
GENERATED_SETS = ("forget", "retain", "world_facts", "real_authors")


def _score_items(cache: ScoringCache, model: torch.nn.Module, key: str, items: list[QAItem], view: AuditView,
                 generate: bool) -> None:
    fmt, tok = cache.fmt, cache.tokenizer
    prompts = [fmt.prompt(it.question, tok) for it in items]
    ids = [it.id for it in items]
    view.sets[key] = cache.score(model, f"{key}:answer", prompts, [fmt.answer(it.answer) for it in items], ids,
                                 generate=generate)
    view.sets[key].answers = [it.answer for it in items]
    if all(it.paraphrased_answer for it in items):
        view.sets[f"{key}_para"] = cache.score(model, f"{key}:para", prompts,
                                               [fmt.answer(it.paraphrased_answer or "") for it in items], ids)
    k = min((len(it.perturbed_answers) for it in items), default=0)
    if k:
        view.perturbed[key] = [
            cache.score(model, f"{key}:pert{j}", prompts, [fmt.answer(it.perturbed_answers[j]) for it in items], ids)
            for j in range(k)
        ]


def build_view(model: torch.nn.Module, name: str, task: ForgetTask, cache: ScoringCache, *, generate: bool = True,
               max_retain: int = 200, gradnorm: bool = False) -> AuditView:
    """Score ``model`` on every set of ``task`` (forget, retain, holdout, eval sets).

    The retain set is capped at ``max_retain`` items (the first ones, deterministic), as TOFU
    evaluates a fixed retain subset rather than the whole retain split. ``gradnorm`` adds the
    per-example gradient norms of forget and holdout (a backward pass each; opt-in).
    """
    view = AuditView(model_name=name)
    sets = {"forget": task.forget, "retain": task.retain[:max_retain], "holdout": task.holdout, **task.eval_sets}
    for key, items in sets.items():
        if items:
            _score_items(cache, model, key, list(items), view, generate and key in GENERATED_SETS)
    for key, texts in (("forget_text", task.forget_texts), ("retain_text", task.retain_texts),
                       ("holdout_text", task.holdout_texts)):
        if texts:
            view.sets[key] = cache.score(model, key, [""] * len(texts), list(texts), append_eos=False)
    if gradnorm:
        from obliviate.scoring.gradnorm import gradnorms

        for key in ("forget", "holdout"):
            items = getattr(task, key)
            if items:
                view.extra[f"gradnorm:{key}"] = gradnorms(model, cache.tokenizer, list(items), cache.fmt)
    return view
