"""Scored views of an image (or any tensor) classifier and the model-level audit metrics built on them.

A model runs once per set (``predict_logits``); the arrays go to the pure metrics in
``obliviate.metrics.classifier_accuracy`` / ``classifier_mia``. Accuracies are in percent.

Class-wise forgetting has two test-set definitions, chosen by name (``TEST_SETS``):

- ``"remaining"`` (default, OPTML-Group's: Unlearn-Sparse / SalUn drop the forgotten class from the
  test set, so TA measures the classes a user still wants and the MIA's non-members are examples of
  those classes);
- ``"full"``: the whole test set, forgotten class included (TA then also counts the forgotten class,
  which a perfect unlearner gets wrong by design).

For random and sub-class forgetting (``task.forget_class is None``) both are the whole test set.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from obliviate.methods.vision.base import ClassificationTask, dataset_tensors
from obliviate.metrics.base import MetricResult
from obliviate.metrics.classifier_accuracy import SPARSE, accuracy_from_logits, avg_gap, unlearning_accuracy_from_logits
from obliviate.metrics.classifier_mia import mia_features, softmax, svc_mia_efficacy
from obliviate.registry import register

TEST_SETS = ("remaining", "full")


@torch.no_grad()
def predict_logits(model: nn.Module, dataset: Dataset, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (N, C) float64, labels (N,) int64)`` of ``model`` on ``dataset`` in eval mode."""
    x, y = dataset_tensors(dataset)
    was_training = model.training
    model.eval()
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = [model(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, len(y), batch_size)]
    model.train(was_training)
    logits = torch.cat(out).double().numpy() if out else np.zeros((0, 0))
    return logits, y.numpy().astype(np.int64)


def evaluation_test_set(task: Any, test_set: str = "remaining") -> Dataset:
    """The test set TA and the MIA use: ``"remaining"`` drops the forgotten class (class-wise
    forgetting, OPTML-Group's definition), ``"full"`` keeps every test example."""
    if test_set not in TEST_SETS:
        raise ValueError(f"unknown test-set definition {test_set!r}; choose from {', '.join(TEST_SETS)}")
    if test_set == "full" or getattr(task, "forget_class", None) is None:
        return task.test_set
    x, y = dataset_tensors(task.test_set)
    keep = y != int(task.forget_class)
    return TensorDataset(x[keep], y[keep])


def accuracy(model: nn.Module, dataset: Dataset) -> MetricResult:
    """acc(D) in percent."""
    return accuracy_from_logits(*predict_logits(model, dataset))


def unlearning_accuracy(model: nn.Module, forget_set: Dataset) -> MetricResult:
    """UA = 100 - acc(D_f); the target is the retrain oracle's UA (≈ its test error for random forgetting)."""
    return unlearning_accuracy_from_logits(*predict_logits(model, forget_set))


def retain_accuracy(model: nn.Module, retain_set: Dataset) -> MetricResult:
    """RA = acc(D_r)."""
    r = accuracy(model, retain_set)
    return MetricResult("retain_accuracy", r.value, "higher", n=r.n, ci=r.ci)


def test_accuracy(model: nn.Module, test_set: Dataset) -> MetricResult:
    """TA = acc(D_t) (pass ``evaluation_test_set(task)`` for OPTML's class-wise definition)."""
    r = accuracy(model, test_set)
    return MetricResult("test_accuracy", r.value, "higher", n=r.n, ci=r.ci)


test_accuracy.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported into a test module


def mia_efficacy(model: nn.Module, forget_set: Dataset, retain_set: Dataset, test_set: Dataset, *,
                 feature: str = "confidence", seed: int = 0) -> MetricResult:
    """SVC MIA-Efficacy of ``model`` (spec §0; default feature p_y, as the papers report)."""
    feats = []
    for ds in (retain_set, test_set, forget_set):
        logits, y = predict_logits(model, ds)
        feats.append(mia_features(softmax(logits), y, feature))
    r = svc_mia_efficacy(*feats, seed=seed)
    r.details["feature"] = feature
    return r


def classification_metrics(model: nn.Module, task: Any, *, seed: int = 0, feature: str = "confidence",
                           test_set: str = "remaining") -> dict[str, MetricResult]:
    """UA, RA, TA and MIA-Efficacy of ``model`` on a ClassificationTask.

    ``test_set`` picks the test-set definition for class-wise forgetting (``TEST_SETS``): TA and the
    MIA's non-member set use the same one; the chosen name is in each result's ``details``.
    """
    test = evaluation_test_set(task, test_set)
    out = {
        "unlearning_accuracy": unlearning_accuracy(model, task.forget_set),
        "retain_accuracy": retain_accuracy(model, task.retain_set),
        "test_accuracy": test_accuracy(model, test),
        "mia_efficacy": mia_efficacy(model, task.forget_set, task.retain_set, test, feature=feature, seed=seed),
    }
    for k in ("test_accuracy", "mia_efficacy"):
        out[k].details["test_set"] = test_set
    return out


def call_unlearn(fn: Callable[..., nn.Module], model: nn.Module, task: Any, seed: int) -> nn.Module:
    """``fn(model, task)`` or ``fn(model, task, seed)``; the model is a private deep copy."""
    model = copy.deepcopy(model)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_seed = "seed" in params or len(params) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params.values())
    out = fn(model, task, seed) if takes_seed else fn(model, task)
    return (out if out is not None else model).eval()


def non_finite_outputs(model: nn.Module, task: Any) -> str | None:
    """Why ``model`` cannot be audited when its logits on the forget, retain or test set hold NaN or
    inf (a method that diverged); None when they are all finite."""
    for name in ("forget_set", "retain_set", "test_set"):
        logits, _ = predict_logits(model, getattr(task, name))
        bad = int((~np.isfinite(logits)).any(axis=1).sum())
        if bad:
            return (f"the unlearned model's outputs are not finite on {bad} of {len(logits)} {name.replace('_', ' ')} "
                    "examples (the method diverged); lower its learning rate or step count")
    return None


def subtask(task: Any, forget: Dataset, retain: Dataset) -> ClassificationTask:
    """``task`` with another forget / retain split (a shadow model's unlearning request)."""
    return ClassificationTask(name=f"{task.name}/shadow", forget_set=forget, retain_set=retain, test_set=task.test_set,
                              num_classes=task.num_classes, train_fn=task.train_fn, forget_class=task.forget_class,
                              metadata=dict(task.metadata, shadow=True))


def relearn_time(model: nn.Module, forget_set: Dataset, target_acc: float, *, lr: float = 1e-3, batch_size: int = 32,
                 max_steps: int = 200, seed: int = 0) -> MetricResult:
    """Adam steps of fine-tuning a copy of ``model`` on D_f until acc(D_f) ≥ ``target_acc`` (percent; usually
    the original model's). Capped at ``max_steps`` (``details["reached"]`` False). More steps = the
    knowledge is harder to recover; compare with the oracle's relearn time."""
    m = copy.deepcopy(model)
    x, y = dataset_tensors(forget_set)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(m.parameters(), lr=lr)

    def acc() -> float:
        m.eval()
        with torch.no_grad():
            return 100.0 * float((m(x).argmax(1) == y).float().mean())

    steps = 0
    reached = acc() >= target_acc
    while not reached and steps < max_steps:
        m.train()
        b = torch.randint(0, len(y), (min(batch_size, len(y)),), generator=g)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(m(x[b]), y[b]).backward()
        opt.step()
        steps += 1
        reached = acc() >= target_acc
    return MetricResult("relearn_time", float(steps), "closer_to_reference", n=len(y), compared_to="oracle",
                        details={"reached": reached, "target_acc": target_acc, "max_steps": max_steps})


_SPARSE_PAPER = dict(paper="Model Sparsity Can Simplify Machine Unlearning", arxiv="2304.04934", code=SPARSE,
                     modalities=("image",))
register("metric", "unlearning_accuracy", summary="UA = 100 - acc(D_f), in % (closer to Retrain is better)",
         **_SPARSE_PAPER)(unlearning_accuracy)
register("metric", "retain_accuracy", summary="RA = acc(D_r), in %", **_SPARSE_PAPER)(retain_accuracy)
register("metric", "test_accuracy", summary="TA = acc(D_t), in % (class-wise: test set without the forgotten class)",
         **_SPARSE_PAPER)(test_accuracy)
register("metric", "mia_efficacy", summary="SVC (confidence) MIA: % of D_f predicted non-member",
         **_SPARSE_PAPER)(mia_efficacy)
register("metric", "avg_gap", summary="Mean |gap| to Retrain over UA, RA, TA, MIA-Efficacy (points)",
         **_SPARSE_PAPER)(avg_gap)
register("metric", "relearn_time", paper="Eight Methods to Evaluate Robust Unlearning in LLMs", arxiv="2402.16835",
         modalities=("image",), summary="Fine-tuning steps on D_f until its accuracy recovers")(relearn_time)
