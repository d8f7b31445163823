"""Contract for classifier unlearning methods (images, or any tensor input).

A vision method is registered with ``@vision_method(...)`` on a function
``run(cfg, model, task, ctx) -> nn.Module`` that returns the unlearned model (a new module or
the same one updated in place). It sees the data only through ``torch.utils.data.Dataset``
objects yielding ``(x, y)``, so the same code runs on the bundled digits and on a user's
CIFAR-10 with a ResNet-18.

Model contract: ``model(x)`` returns logits ``(B, C)``. Methods that work on representations
(LAF, FNN, SSD's label-free variant) call ``embed(model, x)`` below, which uses
``model.embed(x)`` when the model defines it and otherwise raises a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from obliviate.methods.base import MethodSpec
from obliviate.registry import register


@dataclass
class ClassificationTask:
    """One classifier-unlearning request: what to forget, what to keep, and the test set.

    ``train_fn(dataset, seed) -> nn.Module`` trains a fresh model from scratch with the
    original recipe; the exact retrain oracle and the Retrain method use it.
    """

    name: str
    forget_set: Dataset
    retain_set: Dataset
    test_set: Dataset
    num_classes: int
    train_fn: Callable[[Dataset, int], nn.Module] | None = None
    forget_class: int | None = None  # set for class-wise forgetting
    metadata: dict = field(default_factory=dict)


@dataclass
class VisionContext:
    """Run-time context: seed, device and one generator, seeded once, that every shuffled loader of
    the run draws its orders from. A loader made again (each epoch, say) therefore shuffles anew, as
    a fresh ``DataLoader(shuffle=True)`` does in the papers' code, and the run is still fixed by
    ``seed`` and the order in which the method makes and walks its loaders. One context per run."""

    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _generator: torch.Generator | None = field(default=None, init=False, repr=False, compare=False)

    def generator(self) -> torch.Generator:
        """The run's generator (seeded with ``seed`` on first use)."""
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator

    def loader(self, ds: Dataset, batch_size: int, shuffle: bool = True) -> DataLoader:
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=self.generator() if shuffle else None)


def dataset_tensors(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(x, y)`` of a dataset as two stacked tensors (fast path for TensorDataset)."""
    if isinstance(ds, TensorDataset):
        return ds.tensors[0], ds.tensors[1]
    if len(ds) == 0:  # type: ignore[arg-type]
        return torch.empty(0, 1, 8, 8), torch.empty(0, dtype=torch.long)
    xs, ys = zip(*(ds[i] for i in range(len(ds))))  # type: ignore[arg-type]
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(np.asarray(ys), dtype=torch.long)


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate representation of ``x``; needs ``model.embed``."""
    fn = getattr(model, "embed", None)
    if fn is None:
        raise TypeError(
            f"{type(model).__name__} has no `embed(x)` method; representation-level methods (LAF, FNN) "
            "need the model to expose its penultimate features as `embed(x)`."
        )
    return fn(x)


def vision_method(
    name: str,
    *,
    config: type,
    paper: str,
    arxiv: str = "",
    code: str = "",
    needs: tuple[str, ...] = ("labels",),
    summary: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``run(cfg, model, task, ctx) -> nn.Module`` as image-classifier method ``name``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = MethodSpec(name=name, config_cls=config, run=fn, streams=())
        register(
            "method",
            name,
            paper=paper,
            arxiv=arxiv,
            code=code,
            modalities=("image",),
            needs=needs,
            summary=summary or (fn.__doc__ or "").strip().split("\n")[0],
        )(spec)
        return fn

    return deco
