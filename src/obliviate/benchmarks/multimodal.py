"""The built-in multimodal benchmark: synthetic "patients" with image + report records, and an
exact retrain oracle (for Forget-MI, spec §7 and §10).

Forget-MI (Hardan et al., MICCAI 2025, arXiv 2506.23145) removes *patients* from an image+report
classifier trained on MIMIC-CXR. This benchmark is its CPU-sized stand-in, generated
deterministically (data seed 0) from scikit-learn's bundled digits (no download):

- **Patients.** The 1,797 digit images are dealt to patients of 3-6 records each. Every patient
  has a *primary* label; each of its records has that label with probability 0.75, else another
  one (a patient's studies mostly show one severity, as in MIMIC-CXR).
- **Image** of a record: its 8x8 digit in [0, 1], degraded by a fixed per-record occlusion (one
  random 4x8 half blanked) and Gaussian noise (std 0.3), so the image alone is an imperfect cue.
- **Report** of a record: 6 tokens over a 30-token vocabulary (spec §10: 2 label-correlated + 4
  random). Label c owns tokens {3c, 3c+1, 3c+2}; each of the 2 label tokens is one of them with
  probability 0.5, else uniform. Of the 4 other tokens, 2 are the patient's own "style" pair (the
  same in all its reports, like a radiologist's phrasing) and 2 are drawn per record. The style
  pair is what lets a model memorise a training patient, so forgetting whole patients matters.
- **Synonyms** (for Forget-MI's text perturbation): token 3c+j's synonym is 3c+(j+1 mod 3), the
  next token of the same label, so a synonym swap keeps a report's meaning.

Splits: patients are split 75/25 into train/test (fixed); a seeded random 3, 6 or 10 % of the
training patients is the forget set (``forget03`` / ``forget06`` / ``forget10``, as in the paper),
every record of a forgotten patient included.

Model (`LateFusionModel`): image MLP 64-64-32 and a bag-of-tokens text encoder (embedding 32,
MLP 32-32) each with its own linear head, fused by **one gate** z = σ(W[i; t]) into the joint
embedding z⊙i + (1−z)⊙t with the main linear head. ``forward(image, tokens)`` returns
`FusionOutput` (img_emb, img_logits, txt_emb, txt_logits, joint_emb, logits): Forget-MI's model
contract. The original trains on all training records and the oracle on the retain records only,
same recipe and seed; both are cached as safetensors under ``cache_root()/"multimodal"/<recipe>/``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from obliviate.benchmarks.fictional_authors import cache_root
from obliviate.config import digest
from obliviate.outputs import save_state_atomic
from obliviate.registry import register

RECIPE_VERSION = 1  # bump when the data or training code changes what a recipe produces
DATA_SEED = 0  # the patients, images and reports are fixed; the run seed picks forget patients and trains
NUM_CLASSES = 10
VOCAB = 30  # spec §10: report vocabulary of 30 tokens
REPORT_LEN = 6  # spec §10: 6 tokens per report (2 label-correlated + 4 random)
SPLITS = {"forget03": 0.03, "forget06": 0.06, "forget10": 0.10}  # paper: 3 / 6 / 10 % of patients
PRIMARY_P = 0.75  # chance a record carries its patient's primary label
LABEL_TOKEN_P = 0.5  # chance each of the 2 label tokens is one of the label's own tokens
IMAGE_NOISE = 0.3  # fixed per-record Gaussian noise on the image (std, pixel scale [0, 1])


# ---- data -----------------------------------------------------------------------------------
def synonym_table() -> list[int]:
    """``table[t]`` = the synonym of token t: the next token owned by the same label (3c+j -> 3c+(j+1)%3)."""
    return [3 * (t // 3) + (t % 3 + 1) % 3 for t in range(VOCAB)]


@dataclass(frozen=True)
class Records:
    """All records of the benchmark as arrays (one row per image+report pair)."""

    images: np.ndarray  # (N, 1, 8, 8) float32
    tokens: np.ndarray  # (N, 6) int64
    labels: np.ndarray  # (N,) int64
    patient: np.ndarray  # (N,) int64 patient id
    test_patients: np.ndarray  # sorted ids of the held-out (never trained on) patients


@functools.lru_cache(maxsize=1)
def records() -> Records:
    """The deterministic patient records (data seed 0); see the module docstring."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)  # UCI pixel values are 0..16
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(DATA_SEED)
    pools = {c: list(rng.permutation(np.flatnonzero(y == c))) for c in range(NUM_CLASSES)}
    rows: list[tuple[int, int]] = []  # (image index, patient id)
    style: list[np.ndarray] = []
    pid = 0
    while any(pools.values()):
        left = np.array([len(pools[c]) for c in range(NUM_CLASSES)], dtype=np.float64)
        primary = int(rng.choice(NUM_CLASSES, p=left / left.sum()))
        style.append(rng.choice(VOCAB, size=2, replace=False))
        for _ in range(int(rng.integers(3, 7))):
            nonempty = [c for c in range(NUM_CLASSES) if pools[c]]
            if not nonempty:
                break
            others = [c for c in nonempty if c != primary]
            c = primary if pools[primary] and (rng.random() < PRIMARY_P or not others) else int(rng.choice(others))
            rows.append((pools[c].pop(), pid))
        pid += 1
    idx = np.array([r[0] for r in rows])
    patient = np.array([r[1] for r in rows], dtype=np.int64)
    labels = y[idx]
    images = x[idx].copy()
    for i in range(len(idx)):  # fixed per-record degradation: one half occluded, plus noise
        half = rng.integers(4)
        if half == 0:
            images[i, :4] = 0.0
        elif half == 1:
            images[i, 4:] = 0.0
        elif half == 2:
            images[i, :, :4] = 0.0
        else:
            images[i, :, 4:] = 0.0
    images = np.clip(images + rng.normal(0.0, IMAGE_NOISE, images.shape), 0.0, 1.0).astype(np.float32)[:, None]
    tokens = np.empty((len(idx), REPORT_LEN), dtype=np.int64)
    for i, (c, p) in enumerate(zip(labels, patient)):
        lab = [3 * c + int(rng.integers(3)) if rng.random() < LABEL_TOKEN_P else int(rng.integers(VOCAB))
               for _ in range(2)]
        tokens[i] = [*lab, *style[p], *rng.integers(VOCAB, size=2)]
    n_pat = pid
    test_patients = np.sort(rng.choice(n_pat, size=int(round(0.25 * n_pat)), replace=False))
    return Records(images, tokens, labels, patient, test_patients)


def forget_patients(split: str, seed: int = 0) -> np.ndarray:
    """Sorted ids of the training patients forgotten under ``split`` (seeded draw)."""
    if split not in SPLITS:
        raise ValueError(f"unknown multimodal split {split!r}; use one of {', '.join(SPLITS)}")
    r = records()
    train_pat = np.setdiff1d(np.unique(r.patient), r.test_patients)
    k = max(1, int(round(SPLITS[split] * len(train_pat))))
    return np.sort(np.random.default_rng(seed).choice(train_pat, size=k, replace=False))


def _dataset(rows: np.ndarray) -> TensorDataset:
    r = records()
    t = torch.from_numpy(rows)
    return TensorDataset(torch.from_numpy(r.images)[t], torch.from_numpy(r.tokens)[t], torch.from_numpy(r.labels)[t])


@dataclass
class MultimodalTask:
    """One patient-forgetting request. Datasets yield ``(image (1,8,8), tokens (6,), label)``;
    ``synonyms[t]`` is token t's synonym (Forget-MI's text perturbation)."""

    name: str
    forget_set: TensorDataset
    retain_set: TensorDataset
    test_set: TensorDataset
    num_classes: int
    synonyms: list[int]
    forget_patients: list[int]
    metadata: dict = field(default_factory=dict)


def load_multimodal_task(split: str = "forget10", seed: int = 0) -> MultimodalTask:
    """The task for ``split``: forget = every record of the forgotten patients, retain = the other
    training records, test = the held-out patients' records."""
    r = records()
    fp = forget_patients(split, seed)
    is_test = np.isin(r.patient, r.test_patients)
    is_forget = np.isin(r.patient, fp)
    return MultimodalTask(
        name=f"multimodal/{split}",
        forget_set=_dataset(np.flatnonzero(is_forget)),
        retain_set=_dataset(np.flatnonzero(~is_test & ~is_forget)),
        test_set=_dataset(np.flatnonzero(is_test)),
        num_classes=NUM_CLASSES,
        synonyms=synonym_table(),
        forget_patients=fp.tolist(),
        metadata={"benchmark": "multimodal", "split": split, "seed": seed, "recipe": MultimodalRecipe().key(),
                  "n_forget_patients": len(fp), "n_train_patients": int(len(np.unique(r.patient[~is_test])))},
    )


# ---- model ----------------------------------------------------------------------------------
class FusionOutput(NamedTuple):
    """Forget-MI's model contract: unimodal embeddings and logits, then the gated joint ones."""

    img_emb: torch.Tensor
    img_logits: torch.Tensor
    txt_emb: torch.Tensor
    txt_logits: torch.Tensor
    joint_emb: torch.Tensor
    logits: torch.Tensor


class LateFusionModel(nn.Module):
    """Image MLP + bag-of-tokens text encoder, each with a head, fused by one gate.

    joint = z ⊙ i + (1 − z) ⊙ t with z = σ(W_g [i; t] + b_g) (a gated multimodal unit); the main
    prediction is ``head(joint)``.
    """

    def __init__(self, vocab: int = VOCAB, emb: int = 32, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.image_encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, emb), nn.ReLU())
        self.token_embedding = nn.EmbeddingBag(vocab, emb, mode="mean")
        self.text_encoder = nn.Sequential(nn.Linear(emb, emb), nn.ReLU())
        self.image_head = nn.Linear(emb, num_classes)
        self.text_head = nn.Linear(emb, num_classes)
        self.gate = nn.Linear(2 * emb, emb)
        self.head = nn.Linear(emb, num_classes)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> FusionOutput:
        i = self.image_encoder(image)
        t = self.text_encoder(self.token_embedding(tokens))
        z = torch.sigmoid(self.gate(torch.cat([i, t], dim=-1)))
        joint = z * i + (1 - z) * t
        return FusionOutput(i, self.image_head(i), t, self.text_head(t), joint, self.head(joint))


def build_model(seed: int = 0) -> LateFusionModel:
    """A freshly initialised fusion model; the seed fixes the initial weights."""
    torch.manual_seed(seed)
    return LateFusionModel()


# ---- training -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MultimodalRecipe:
    """Everything that decides the cached models (hashed into the cache key)."""

    epochs: int = 60  # enough to fit the training records (train accuracy ~100%): the patients are memorised
    lr: float = 3e-3  # Adam
    batch_size: int = 32
    unimodal_weight: float = 0.5  # CE of each unimodal head added to the joint CE, so both towers learn

    def key(self) -> str:
        return digest({"v": RECIPE_VERSION, "data": DATA_SEED, **dataclasses.asdict(self)})


def train_fusion(dataset: TensorDataset, seed: int, recipe: MultimodalRecipe = MultimodalRecipe()) -> LateFusionModel:
    """Train a fresh `LateFusionModel` on ``dataset`` (Adam; CE of the joint head plus
    ``unimodal_weight`` × each unimodal head's CE); seeded init and shuffling; eval mode out."""
    model = build_model(seed)
    img, tok, y = dataset.tensors
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    ce = nn.functional.cross_entropy
    model.train()
    for _ in range(recipe.epochs):
        perm = torch.randperm(len(y), generator=g)
        for s in range(0, len(y), recipe.batch_size):
            b = perm[s:s + recipe.batch_size]
            out = model(img[b], tok[b])
            loss = ce(out.logits, y[b]) + recipe.unimodal_weight * (ce(out.img_logits, y[b]) + ce(out.txt_logits, y[b]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def _cached(path: Path, dataset: TensorDataset, seed: int, recipe: MultimodalRecipe) -> LateFusionModel:
    if path.exists():
        model = build_model(seed)
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    model = train_fusion(dataset, seed, recipe)
    save_state_atomic(model, path)
    return model


def _cache_dir(recipe: MultimodalRecipe) -> Path:
    return cache_root() / "multimodal" / recipe.key()


def original_model(seed: int = 0, recipe: MultimodalRecipe | None = None) -> LateFusionModel:
    """Model trained on every training record (cached; the split does not change it)."""
    recipe = recipe or MultimodalRecipe()
    r = records()
    train_rows = np.flatnonzero(~np.isin(r.patient, r.test_patients))
    return _cached(_cache_dir(recipe) / "original" / f"seed{seed}.safetensors", _dataset(train_rows), seed, recipe)


def oracle_model(split: str = "forget10", seed: int = 0, recipe: MultimodalRecipe | None = None) -> LateFusionModel:
    """Exact retrain oracle: the original's recipe and seed on the retain records only (cached)."""
    recipe = recipe or MultimodalRecipe()
    task = load_multimodal_task(split, seed)
    return _cached(_cache_dir(recipe) / f"oracle_{split}" / f"seed{seed}.safetensors", task.retain_set, seed, recipe)


@dataclass
class Multimodal:
    """Handle returned by the registered loader: task, original and oracle for one (split, seed)."""

    split: str = "forget10"
    seed: int = 0

    def task(self) -> MultimodalTask:
        return load_multimodal_task(self.split, self.seed)

    def original(self) -> LateFusionModel:
        return original_model(self.seed)

    def oracle(self) -> LateFusionModel:
        return oracle_model(self.split, self.seed)


@register("benchmark", "multimodal",
          paper="Forget-MI: Machine Unlearning for Forgetting Multimodal Information in Healthcare Settings "
                "(synthetic CPU stand-in on scikit-learn digits)",
          arxiv="2506.23145", code="https://github.com/BioMedIA-MBZUAI/Forget-MI", modalities=("multimodal",),
          needs=(), summary="Built-in synthetic patients with image+report records (forget03/06/10 of patients) "
                            "and an exact retrain oracle, offline on CPU")
def load_multimodal_benchmark(split: str = "forget10", seed: int = 0) -> Multimodal:
    """The multimodal benchmark for one split and seed; models are trained lazily and cached."""
    if not re.fullmatch("|".join(SPLITS), split):
        raise ValueError(f"unknown multimodal split {split!r}; use one of {', '.join(SPLITS)}")
    return Multimodal(split, seed)
