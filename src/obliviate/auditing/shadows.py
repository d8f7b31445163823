"""Shadow models and model arms for classifier audits: U-LiRA and the NeurIPS 2023 challenge score.

Both audits need many models trained with ``task.train_fn`` (and unlearned with the method under
audit); this module builds them and hands score arrays to the pure functions in
``obliviate.metrics.ulira`` and ``obliviate.metrics.challenge``.

U-LiRA (Hayes et al., SaTML 2025, arXiv 2403.01218), scaled down: K shadow originals each train on
D_r plus a random half S_k of D_f (every example IN for K/2 shadows). For example x:

- IN scores come from shadows that trained on x and then unlearned S_k ∋ x with the audited method;
- OUT scores come from K models retrained on D_r, the shadows' own retain set: they never saw x and
  were never unlearned, exactly like the retrain oracle. (Using the shadow originals that happen not
  to hold x would compare models trained on different amounts of data: on a 300-example task an
  exact retrain then scores AUC 62 instead of 50.)

The attack is evaluated over many target models: each shadow model in turn is the target (an
unlearned shadow for its IN examples, a retrained one for every example), attacked with Gaussians
fit on all the other shadow models. The value is the AUC over all (target, example) pairs, 50 ideal; the per-example AUC
spread, TPR at low FPR and all counts are in ``details``, with the AUC of the deployed pair (the
audited model vs the retrain oracle on D_f) as ``deployed_auc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from torch import nn
from torch.utils.data import ConcatDataset, Subset

from obliviate.auditing.classifier import accuracy, call_unlearn, evaluation_test_set, predict_logits, subtask
from obliviate.metrics.base import MetricResult, MissingReferenceError
from obliviate.metrics.challenge import CHALLENGE, challenge_score_from_arrays
from obliviate.metrics.ulira import (balanced_in_mask, logit_scaled_confidence, ulira_from_scores,
                                     ulira_from_targets, ulira_leave_one_out, ulira_scores)
from obliviate.registry import register


def forget_phi(model: nn.Module, task: Any) -> np.ndarray:
    """φ = log(p_y/(1 − p_y)) of ``model`` on every forget example."""
    return logit_scaled_confidence(*predict_logits(model, task.forget_set))


@dataclass
class UliraShadows:
    """Shadow originals for U-LiRA on one task: ``in_mask[k, j]`` says whether shadow k trained on D_f[j].

    ``out_phi[m]`` = φ on D_f under retrained model m (trained on D_r only: OUT for every example).
    Originals and retrained models are shared by every method audited on the task.
    """

    in_mask: np.ndarray  # (K, |D_f|) bool
    originals: list[nn.Module]
    seed: int = 0
    out_phi: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def train_ulira_shadows(task: Any, n_shadows: int = 16, seed: int = 0) -> UliraShadows:
    """Train K shadow originals on D_r ∪ (a random half of D_f), seeds ``seed·1000 + k``, and K retrained
    models on D_r, seeds ``seed·1000 + 200 + k``."""
    if task.train_fn is None:
        raise ValueError("ulira needs task.train_fn to train shadow models")
    if n_shadows < 4:
        raise ValueError("ulira needs at least 4 shadow models (16+ for a meaningful attack): each shadow is "
                         "in turn a target attacked with the others")
    in_mask = balanced_in_mask(n_shadows, len(task.forget_set), seed)
    originals = []
    for k in range(n_shadows):
        data = ConcatDataset([task.retain_set, Subset(task.forget_set, np.flatnonzero(in_mask[k]).tolist())])
        originals.append(task.train_fn(data, seed * 1000 + k).eval())
    out_phi = np.stack([forget_phi(task.train_fn(task.retain_set, seed * 1000 + 200 + k).eval(), task)
                        for k in range(n_shadows)])
    return UliraShadows(in_mask, originals, seed, out_phi)


def ulira(model: nn.Module | None, oracle: nn.Module | None, task: Any, unlearn_fn: Callable[..., nn.Module], *,
          n_shadows: int = 16, seed: int = 0, shadows: UliraShadows | None = None, min_side: int | None = None
          ) -> MetricResult:
    """U-LiRA AUC (percent, 50 ideal) of the unlearning method ``unlearn_fn(model, task[, seed])``.

    Each shadow original unlearns its IN half S_k with ``unlearn_fn`` (retain set D_r, what it trained
    on besides S_k). The value is the AUC over K target models × |D_f| examples (module docstring);
    ``min_side`` (default min(8, K/2 − 1), spec §9) is the fewest IN and OUT shadow scores an example
    needs to be scored. When ``model`` (the audited model, which unlearned all of D_f) and ``oracle``
    are given, ``details["deployed_auc"]`` scores them with Gaussians from all K shadows.
    """
    shadows = shadows or train_ulira_shadows(task, n_shadows, seed)
    k_total = len(shadows.originals)
    if min_side is None:
        min_side = max(1, min(8, k_total // 2 - 1))
    in_phi = []
    for k, orig in enumerate(shadows.originals):
        sub = subtask(task, Subset(task.forget_set, np.flatnonzero(shadows.in_mask[k]).tolist()), task.retain_set)
        in_phi.append(forget_phi(call_unlearn(unlearn_fn, orig, sub, shadows.seed * 1000 + 300 + k), task))
    m_out = len(shadows.out_phi)
    shadow_phi = np.vstack([np.stack(in_phi), shadows.out_phi])
    in_all = np.vstack([shadows.in_mask, np.zeros((m_out, shadows.in_mask.shape[1]), bool)])
    valid = np.vstack([shadows.in_mask, np.ones((m_out, shadows.in_mask.shape[1]), bool)])  # kept = neither side
    scores, covered = ulira_leave_one_out(shadow_phi, in_all, min_side=min_side, valid=valid)
    result = ulira_from_targets(scores, in_all)
    result.details["n_targets"] = {"unlearned": k_total, "retrained": m_out}
    result.details.update({"min_side": min_side, "in": "trained with x, then unlearned by the audited method",
                           "out": "trained without x (retrained, never unlearned)"})
    if model is not None:
        if oracle is None:
            raise MissingReferenceError("ulira's deployed pair compares the audited model with the retrain "
                                        "oracle; pass the oracle (or model=None for the shadow-target AUC only)")
        target = np.stack([forget_phi(model, task), forget_phi(oracle, task)])
        s, _ = ulira_scores(shadow_phi, in_all, target, min_side=min(min_side + 1, k_total // 2), valid=valid)
        dep = ulira_from_scores(s[0], s[1], n_shadows=k_total)
        result.details.update({"deployed_auc": dep.value, "deployed_tpr_at_1pct_fpr": dep.details["tpr_at_1pct_fpr"],
                               "deployed_n": dep.n})
    return result


# ---- NeurIPS 2023 challenge score: the two model arms ---------------------------------------
@dataclass
class RetrainedArm:
    """φ on D_f and mean RA/TA of N models retrained on D_r (shared by every method on one task)."""

    phi: np.ndarray  # (N, |D_f|)
    ra: float
    ta: float


def train_retrained_arm(task: Any, n_models: int = 16, seed: int = 0) -> RetrainedArm:
    """N retrain-from-scratch models on D_r with seeds ``seed·1000 + 500 + i``; TA on the evaluation
    test set (class-wise: without the forgotten class)."""
    if task.train_fn is None:
        raise ValueError("challenge_score needs task.train_fn to retrain models")
    test = evaluation_test_set(task)
    phi, ra, ta = [], [], []
    for i in range(n_models):
        m = task.train_fn(task.retain_set, seed * 1000 + 500 + i).eval()
        phi.append(forget_phi(m, task))
        ra.append(accuracy(m, task.retain_set).value)
        ta.append(accuracy(m, test).value)
    return RetrainedArm(np.stack(phi), float(np.mean(ra)), float(np.mean(ta)))


def challenge_score(original: nn.Module, task: Any, unlearn_fn: Callable[..., nn.Module], *, n_models: int = 16,
                    seed: int = 0, retrained: RetrainedArm | None = None) -> MetricResult:
    """Challenge score of ``unlearn_fn`` applied N times (seeds differ) to ``original``, against N retrained
    models. N = 512 in the competition; small N gives a coarse scale (ε_max = ⌈ln(N-1)⌉)."""
    retrained = retrained or train_retrained_arm(task, n_models, seed)
    test = evaluation_test_set(task)
    n = retrained.phi.shape[0]
    phi, ra, ta = [], [], []
    for i in range(n):
        m = call_unlearn(unlearn_fn, original, task, seed * 1000 + 700 + i)
        phi.append(forget_phi(m, task))
        ra.append(accuracy(m, task.retain_set).value)
        ta.append(accuracy(m, test).value)
    return challenge_score_from_arrays(np.stack(phi), retrained.phi, float(np.mean(ra)), retrained.ra,
                                       float(np.mean(ta)), retrained.ta)


register("metric", "ulira", paper="Inexact Unlearning Needs More Careful Evaluations to Avoid a False Sense of Privacy",
         arxiv="2403.01218", modalities=("image",), needs=("train_fn",),
         summary="U-LiRA per-example likelihood-ratio attack: unlearned-with-x vs retrained-without-x (AUC, 50 "
                 "ideal)")(ulira)
register("metric", "challenge_score", paper="NeurIPS 2023 Machine Unlearning Challenge (evaluation metric)",
         arxiv="2406.09073", code=CHALLENGE, modalities=("image",), needs=("train_fn",),
         summary="Forget quality from per-example ε (retrained vs unlearned models) × RA and TA ratios",
         )(challenge_score)
