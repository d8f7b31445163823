"""The built-in image benchmark: 8x8 handwritten digits with an exact retrain oracle.

Data: ``sklearn.datasets.load_digits`` (the UCI "Optical Recognition of Handwritten Digits"
test set, 1,797 real 8x8 grey images, 10 classes, bundled with scikit-learn: no download),
scaled to [0, 1] and shaped ``(N, 1, 8, 8)``. One fixed stratified split, 75/25 with seed 0:
1,347 train / 450 test (the spec's 1,437/360 is an 80/20 split; we keep 75/25 so the test set,
which the MIA-Efficacy attack uses as its non-member class, is larger).

Forget scenarios (the seed picks the forget examples and trains the models):

- ``random10``: a seeded random 10% of the training set;
- ``class`` / ``class<k>``: every training image of class k (default 3);
- ``subclass`` / ``subclass<k>``: a sub-class (domain-style) subset: the *thick-stroke* half of
  class k (default 3), i.e. the ⌊n_k/2⌋ training images of class k with the most total ink (sum
  of pixel intensities; ties broken by index). The rest of class k stays in the retain set, so a good
  unlearner must forget a style of the digit while still recognising the class.

Models (seconds on one CPU core): ``DigitsMLP`` 64-128-64-10 and ``DigitsCNN`` (two 3x3 convs);
both return logits from ``forward`` and penultimate features from ``embed``. The original model
trains on the whole training set, the oracle on the retain set only, with the same recipe and
seed; both are cached as safetensors under ``cache_root()/"digits"/<recipe hash>/`` so a second
call reuses them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from obliviate.benchmarks.fictional_authors import cache_root
from obliviate.methods.vision.base import ClassificationTask, dataset_tensors  # noqa: F401 (re-exported)
from obliviate.config import digest
from obliviate.outputs import save_state_atomic
from obliviate.registry import register

RECIPE_VERSION = 1  # bump when the training code changes what a recipe produces
NUM_CLASSES = 10
DEFAULT_CLASS = 3
ARCHS = ("mlp", "cnn")


# ---- data -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _split(test_size: float = 0.25, split_seed: int = 0) -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # pixel values are 0..16 in the UCI data
    y = d.target.astype(np.int64)
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_size, random_state=split_seed, stratify=y)
    tr, te = np.sort(tr), np.sort(te)
    return torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), torch.from_numpy(x[te]), torch.from_numpy(y[te])


def digits_split() -> tuple[TensorDataset, TensorDataset]:
    """The fixed stratified (train, test) split as TensorDatasets of ``(x (1,8,8) float32, y int64)``."""
    xtr, ytr, xte, yte = _split()
    return TensorDataset(xtr, ytr), TensorDataset(xte, yte)


def parse_scenario(scenario: str) -> tuple[str, int | None]:
    """``"random10"`` -> ("random10", None); ``"class"``/``"class7"`` -> ("class", k); same for subclass."""
    if scenario == "random10":
        return "random10", None
    m = re.fullmatch(r"(class|subclass)(\d?)", scenario)
    if m is None:
        raise ValueError(f"unknown digits scenario {scenario!r}; use random10, class, class<k>, subclass or "
                         "subclass<k> (k = 0..9)")
    return m.group(1), int(m.group(2)) if m.group(2) else DEFAULT_CLASS


def forget_indices(scenario: str, seed: int = 0) -> np.ndarray:
    """Sorted indices into the training split of the forget set of ``scenario``."""
    kind, k = parse_scenario(scenario)
    xtr, ytr, _, _ = _split()
    y = ytr.numpy()
    if kind == "random10":
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(len(y), size=int(round(0.1 * len(y))), replace=False))
    cls = np.flatnonzero(y == k)
    if kind == "class":
        return cls
    ink = xtr.numpy()[cls].reshape(len(cls), -1).sum(1)  # total stroke intensity: thick strokes have more ink
    order = np.argsort(-ink, kind="stable")  # ties broken by index, so the half is exact and deterministic
    return np.sort(cls[order[: len(cls) // 2]])


# ---- models ---------------------------------------------------------------------------------
class DigitsMLP(nn.Module):
    """64 -> 128 -> 64 -> 10 with ReLU; ``embed`` is the 64-d penultimate layer."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class DigitsCNN(nn.Module):
    """conv3x3(16) - ReLU - conv3x3(32) - ReLU - maxpool2 - fc 512->64 - ReLU - fc 64->10."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
        )
        self.head = nn.Linear(64, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def build_model(arch: str = "mlp", seed: int = 0) -> nn.Module:
    """A freshly initialised digits model; the seed fixes the initial weights."""
    if arch not in ARCHS:
        raise ValueError(f"unknown digits arch {arch!r}; use one of {', '.join(ARCHS)}")
    torch.manual_seed(seed)
    return DigitsMLP() if arch == "mlp" else DigitsCNN()


# ---- training -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DigitsRecipe:
    """Everything that decides the cached models (hashed into the cache key)."""

    arch: str = "mlp"
    epochs: int = 30  # MLP reaches ~100% train accuracy (the forget set is memorised) in ~1 s per model
    lr: float = 2e-3  # Adam
    batch_size: int = 64
    weight_decay: float = 0.0

    def key(self) -> str:
        return digest({"v": RECIPE_VERSION, **dataclasses.asdict(self)})


def train_classifier(model: nn.Module, dataset: Dataset, *, epochs: int = 30, lr: float = 2e-3, batch_size: int = 64,
                     seed: int = 0, weight_decay: float = 0.0) -> nn.Module:
    """Train ``model`` in place with Adam and cross-entropy; seeded shuffling, returns the model in eval mode."""
    x, y = dataset_tensors(dataset)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch_size):
            b = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    return model.eval()


def train_with_recipe(dataset: Dataset, seed: int, recipe: DigitsRecipe = DigitsRecipe()) -> nn.Module:
    """Train a fresh model of ``recipe.arch`` on ``dataset`` (the ClassificationTask ``train_fn``)."""
    model = build_model(recipe.arch, seed)
    return train_classifier(model, dataset, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                            seed=seed, weight_decay=recipe.weight_decay)


def make_train_fn(arch: str = "mlp", recipe: DigitsRecipe | None = None):
    """``train_fn(dataset, seed) -> nn.Module`` for ``arch`` (picklable: a functools.partial)."""
    recipe = recipe or DigitsRecipe(arch=arch)
    return functools.partial(train_with_recipe, recipe=recipe)


# ---- task and cached models -----------------------------------------------------------------
def load_digits_task(scenario: str = "random10", seed: int = 0, arch: str = "mlp",
                     recipe: DigitsRecipe | None = None) -> ClassificationTask:
    """The digits ClassificationTask: forget/retain (from the train split) and test TensorDatasets."""
    kind, k = parse_scenario(scenario)
    recipe = recipe or DigitsRecipe(arch=arch)
    xtr, ytr, xte, yte = _split()
    f_idx = forget_indices(scenario, seed)
    keep = np.ones(len(ytr), dtype=bool)
    keep[f_idx] = False
    r_idx = np.flatnonzero(keep)
    ft, rt = torch.from_numpy(f_idx), torch.from_numpy(r_idx)
    return ClassificationTask(
        name=f"digits/{scenario}",
        forget_set=TensorDataset(xtr[ft], ytr[ft]),
        retain_set=TensorDataset(xtr[rt], ytr[rt]),
        test_set=TensorDataset(xte, yte),
        num_classes=NUM_CLASSES,
        train_fn=make_train_fn(recipe.arch, recipe),
        forget_class=k if kind == "class" else None,
        metadata={"benchmark": "digits", "scenario": scenario, "seed": seed, "arch": recipe.arch,
                  "recipe": recipe.key(), "forget_indices": f_idx.tolist(), "subclass_of": k if kind == "subclass"
                  else None},
    )


def _cache_dir(recipe: DigitsRecipe) -> Path:
    return cache_root() / "digits" / recipe.key()


def _cached(path: Path, recipe: DigitsRecipe, dataset: Dataset, seed: int) -> nn.Module:
    model = build_model(recipe.arch, seed)
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    model = train_with_recipe(dataset, seed, recipe)
    save_state_atomic(model, path)
    return model


def original_model(scenario: str = "random10", seed: int = 0, arch: str = "mlp",
                   recipe: DigitsRecipe | None = None) -> nn.Module:
    """Model trained on the whole training split (cached; the scenario does not change it)."""
    parse_scenario(scenario)
    recipe = recipe or DigitsRecipe(arch=arch)
    train, _ = digits_split()
    return _cached(_cache_dir(recipe) / "original" / f"seed{seed}.safetensors", recipe, train, seed)


def oracle_model(scenario: str = "random10", seed: int = 0, arch: str = "mlp",
                 recipe: DigitsRecipe | None = None) -> nn.Module:
    """Exact retrain oracle: same recipe and seed as the original, trained on the retain set only (cached)."""
    recipe = recipe or DigitsRecipe(arch=arch)
    task = load_digits_task(scenario, seed, recipe.arch, recipe)
    return _cached(_cache_dir(recipe) / f"oracle_{scenario}" / f"seed{seed}.safetensors", recipe, task.retain_set, seed)


@dataclass
class Digits:
    """Handle returned by the registered loader: task, original and oracle for one (scenario, seed, arch)."""

    scenario: str = "random10"
    seed: int = 0
    arch: str = "mlp"

    def task(self) -> ClassificationTask:
        return load_digits_task(self.scenario, self.seed, self.arch)

    def original(self) -> nn.Module:
        return original_model(self.scenario, self.seed, self.arch)

    def oracle(self) -> nn.Module:
        return oracle_model(self.scenario, self.seed, self.arch)


@register("benchmark", "digits", paper="Optical Recognition of Handwritten Digits (UCI) via scikit-learn",
          code="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
          modalities=("image",), needs=(),
          summary="Built-in 8x8 digits image benchmark (random10 / class / subclass forgetting) with an exact "
                  "retrain oracle, offline on CPU")
def load_digits_benchmark(scenario: str = "random10", seed: int = 0, arch: str = "mlp") -> Digits:
    """The digits benchmark for one scenario, seed and architecture; models are trained lazily and cached."""
    parse_scenario(scenario)
    if arch not in ARCHS:
        raise ValueError(f"unknown digits arch {arch!r}; use one of {', '.join(ARCHS)}")
    return Digits(scenario, seed, arch)
