"""U-LiRA for language models: a per-example likelihood-ratio attack calibrated on shadow models.

Opt-in and costly (K extra fine-tunes of the benchmark's recipe), so it is not a view metric run by
every audit; `obliviate.audit(..., ulira_shadows=K)` or :func:`lm_ulira` turn it on.

Protocol (Hayes et al., "Inexact Unlearning Needs More Careful Evaluations to Avoid a False Sense of
Privacy", arXiv 2403.01218, scaled down to the built-in benchmark):

1. K shadow originals: the benchmark's own fine-tuning recipe on the retain set plus a random half of
   the forget set (each forget item is IN for exactly K/2 shadows; the task builder ``"shadow"``).
2. Optionally (``unlearn_fn``), the method under audit unlearns each shadow's IN half, so IN scores
   come from "trained, then unlearned" models, as in U-LiRA proper. Without it, IN shadows are
   trained only: the attack then asks whether a forget item still looks like a training member.
   OUT scores always come from the shadows as trained: for an item outside a shadow's IN half that
   model never saw it and was never unlearned, i.e. it is retrained without the item, like the
   oracle the negatives come from (scoring OUT on the unlearned shadows would compare the oracle
   with models that went through unlearning of other items, and bias the AUC).
3. φ(x) = logit of the geometric-mean answer-token probability, log(p / (1 − p)) with
   p = exp(mean token log-prob): the LiRA logit scaling applied to a sequence.
4. Per item, Gaussians on the IN and OUT shadow scores give Λ(x) = log N(φ; IN) − log N(φ; OUT).
5. Positives: Λ of the forget items under the audited model; negatives: Λ of the same items under the
   retrain oracle. AUC 50 (in percent) means the unlearned model is as indistinguishable from
   retraining as the attack can tell; TPR at 1% and 0.1% FPR with their support are in ``details``.
   With ``unlearn_fn``, ``details["shadow_targets"]`` adds the AUC over the K shadows as target models
   (each attacked with the other K − 1), with its per-item spread: the method's U-LiRA proper.

Shadow training is audit orchestration; it lives in ``obliviate.auditing.lm_shadows``
(``obliviate.metrics.lm_ulira`` re-exports it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch

from obliviate.data.task import ForgetTask
from obliviate.metrics.base import MetricResult, MissingReferenceError
from obliviate.metrics.ulira import (balanced_in_mask, ulira_from_scores, ulira_from_targets, ulira_leave_one_out,
                                     ulira_scores)
from obliviate.scoring.cache import ScoringCache


@dataclass
class LMShadows:
    """Shadow originals for one task: ``in_mask[k, j]`` says whether shadow k trained on forget item j."""

    in_mask: np.ndarray  # (K, |forget|) bool
    models: list[torch.nn.Module]
    seed: int = 0


def sequence_phi(mean_logprob: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)) with p = exp(mean token log-prob), computed stably; p is clipped to 1 − 1e-12."""
    lp = np.minimum(np.asarray(mean_logprob, np.float64), np.log1p(-1e-12))
    return lp - np.log(-np.expm1(lp))


def train_lm_shadows(task: ForgetTask, n_shadows: int = 16, seed: int = 0) -> LMShadows:
    """Train (or load from the benchmark's cache) K shadow originals with ``task.builders["shadow"]``."""
    build = task.builders.get("shadow")
    if build is None:
        raise MissingReferenceError(
            f"{task.name}: U-LiRA needs a benchmark that can re-run its training recipe on chosen data "
            "(task.builders['shadow'], provided by the built-in fictional_authors benchmark)")
    if n_shadows < 2:
        raise ValueError("U-LiRA needs at least 2 shadow models (16+ for a meaningful attack)")
    in_mask = balanced_in_mask(n_shadows, len(task.forget), seed)
    models = [build(np.flatnonzero(in_mask[k]).tolist(), seed * 1000 + k).eval() for k in range(n_shadows)]
    return LMShadows(in_mask, models, seed)


def _phi(model: torch.nn.Module, task: ForgetTask, cache: ScoringCache) -> np.ndarray:
    prompts = [cache.fmt.prompt(it.question, cache.tokenizer, it.context) for it in task.forget]
    answers = [cache.fmt.answer(it.answer, cache.tokenizer) for it in task.forget]
    ss = cache.score(model, "forget:answer", prompts, answers)
    return sequence_phi(-ss.mean_nll())


def lm_ulira(model: torch.nn.Module, oracle: torch.nn.Module | None, task: ForgetTask, tokenizer: Any, *,
             shadows: LMShadows | None = None, n_shadows: int = 16, seed: int = 0,
             unlearn_fn: Callable[[torch.nn.Module, ForgetTask, int], torch.nn.Module] | None = None,
             cache: ScoringCache | None = None, fmt: Any = None, min_side: int | None = None) -> MetricResult:
    """U-LiRA AUC (percent, 50 ideal) of ``model`` against the retrain ``oracle`` on the forget set.

    ``unlearn_fn(shadow, subtask, seed) -> model`` makes the IN shadows "trained, then unlearned" by
    the method under audit (U-LiRA proper; K extra unlearning runs); ``subtask`` is ``task`` with
    the shadow's IN half as its forget set.
    """
    if oracle is None:
        raise MissingReferenceError("U-LiRA compares the audited model with the retrain oracle; pass the oracle")
    cache = cache or ScoringCache(tokenizer, fmt)
    shadows = shadows or train_lm_shadows(task, n_shadows, seed)
    k = len(shadows.models)
    if min_side is None:  # spec: >= 8 IN and >= 8 OUT scores per item; fewer shadows get what they can
        min_side = max(1, min(8, k // 2))
    raw, unlearned = [], []
    for j, shadow in enumerate(shadows.models):
        raw.append(_phi(shadow, task, cache))  # OUT for items outside shadow j's IN half (retrained without them)
        if unlearn_fn is not None:
            members = np.flatnonzero(shadows.in_mask[j])
            sub = replace(task, forget=[task.forget[i] for i in members], builders={})
            unlearned.append(_phi(unlearn_fn(shadow, sub, shadows.seed * 1000 + j), task))
    in_phi = np.stack(unlearned) if unlearn_fn is not None else np.stack(raw)
    shadow_phi = np.where(shadows.in_mask, in_phi, np.stack(raw))
    target = np.stack([_phi(model, task, cache), _phi(oracle, task, cache)])
    scores, covered = ulira_scores(shadow_phi, shadows.in_mask, target, min_side=min_side)
    r = ulira_from_scores(scores[0], scores[1], n_shadows=k, coverage=float(covered.mean()))
    details = {**r.details, "in_shadows": "trained, then unlearned" if unlearn_fn else "trained",
               "out_shadows": "trained without the item (never unlearned)",
               "score": "logit of the geometric-mean answer-token probability", "set": "forget"}
    if unlearn_fn is not None and k >= 4:
        loo, _ = ulira_leave_one_out(shadow_phi, shadows.in_mask, min_side=max(1, min(min_side, k // 2 - 1)))
        try:
            details["shadow_targets"] = ulira_from_targets(loo, shadows.in_mask).to_dict()
        except ValueError as e:  # too few shadows left per side once one is the target
            details["shadow_targets"] = {"skipped": str(e)}
    return replace(r, name="ulira", details=details)
