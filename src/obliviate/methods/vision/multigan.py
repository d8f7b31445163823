"""Multi-GAN unlearning.

Hatua, Nguyen, Sung, "Machine Unlearning using a Multi-GAN based Model" (arXiv 2407.18467).
No reference code has been published; this follows the abstract's steps (spec §6):

1. train GAN_r on D_r and GAN_f on D_f;
2. label the synthetic samples with θ_o's predictions;
3. invert the labels of the synthetic-forget samples and of the real D_f samples;
4. fine-tune θ_o with CE on real D_r ∪ synthetic retain ∪ inverted forget (real + synthetic).

Smallest faithful version (UNVERIFIED details, our choices): both GANs are small unconditional
MLPs on flattened inputs (generator z → 128 → 128 → input, tanh rescaled to the data's value
range; discriminator input → 128 → 1 with LeakyReLU), trained with the non-saturating BCE loss and
DCGAN's Adam(2e-4, β₁ = 0.5) for a fixed number of steps. ``invert`` is undefined in the paper:
``"least_likely"`` (default) relabels each sample with θ_o's least-likely class, which never equals
the predicted class; ``"reverse"`` uses C−1−y, whose middle class maps to itself when C is odd.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, Dataset, TensorDataset

from obliviate.methods.vision.base import ClassificationTask, VisionContext, vision_method


@dataclass(frozen=True)
class MultiGANConfig:
    latent_dim: int = 32  # GAN noise size (our choice)
    gan_steps: int = 400  # generator/discriminator updates per GAN (our choice; CPU-sized)
    gan_lr: float = 2e-4  # DCGAN Adam lr (Radford et al. 2016), β₁ = 0.5
    gan_batch_size: int = 64
    synthetic_retain: int = 500  # synthetic samples from GAN_r (our choice)
    synthetic_forget: int = 200  # synthetic samples from GAN_f (our choice)
    invert: Literal["least_likely", "reverse"] = "least_likely"  # spec §6 offers both; see module docstring
    epochs: int = 3  # fine-tuning epochs ("a few", spec §6)
    lr: float = 1e-3  # Adam fine-tuning lr (our choice)
    batch_size: int = 64


def invert_labels(logits: torch.Tensor, y: torch.Tensor, mode: str, num_classes: int) -> torch.Tensor:
    """Inverted labels for forget samples: θ_o's least-likely class, or C−1−y."""
    if mode == "least_likely":
        return logits.argmin(dim=-1)
    if mode == "reverse":
        return num_classes - 1 - y
    raise ValueError(f"multigan: invert must be 'least_likely' or 'reverse', got {mode!r}")


def _stack(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(ds[i] for i in range(len(ds))))  # type: ignore[arg-type]
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys)


def train_gan(x: torch.Tensor, cfg: MultiGANConfig, gen: torch.Generator) -> Callable[[int], torch.Tensor]:
    """Fit a small MLP GAN to the rows of ``x`` (flattened); return ``draw(n)`` giving n samples shaped like x."""
    flat = x.reshape(x.shape[0], -1)
    d = flat.shape[1]
    lo, hi = flat.min(), flat.max()
    g = nn.Sequential(nn.Linear(cfg.latent_dim, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, d),
                      nn.Tanh())
    disc = nn.Sequential(nn.Linear(d, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.gan_lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.gan_lr, betas=(0.5, 0.999))

    def sample(n: int) -> torch.Tensor:  # tanh output mapped onto the data's value range
        return lo + (hi - lo) * (g(torch.randn(n, cfg.latent_dim, generator=gen)) + 1) / 2

    for _ in range(cfg.gan_steps):
        real = flat[torch.randint(0, flat.shape[0], (cfg.gan_batch_size,), generator=gen)]
        fake = sample(cfg.gan_batch_size)
        ones, zeros = torch.ones(cfg.gan_batch_size, 1), torch.zeros(cfg.gan_batch_size, 1)
        loss_d = (F.binary_cross_entropy_with_logits(disc(real), ones)
                  + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(disc(fake), ones)  # non-saturating generator loss
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    def draw(n: int) -> torch.Tensor:
        with torch.no_grad():
            return sample(n).reshape((n,) + tuple(x.shape[1:]))

    return draw


@vision_method("multigan", config=MultiGANConfig, paper="Machine Unlearning using a Multi-GAN based Model",
               arxiv="2407.18467", code="", needs=("labels", "retain_set"),
               summary="GANs on D_r and D_f supply synthetic data; fine-tune on retain + label-inverted forget.")
def run(cfg: MultiGANConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Return θ_o fine-tuned on real D_r, synthetic retain and label-inverted (real + synthetic) forget."""
    gen = torch.Generator().manual_seed(ctx.seed)
    torch.manual_seed(ctx.seed)  # GAN initialisation
    original = copy.deepcopy(model).to(ctx.device).eval()
    x_r, _ = _stack(task.retain_set)
    x_f, y_f = _stack(task.forget_set)
    syn_r = train_gan(x_r, cfg, gen)(cfg.synthetic_retain)
    syn_f = train_gan(x_f, cfg, gen)(cfg.synthetic_forget)
    with torch.no_grad():
        logit_sr, logit_sf, logit_f = (original(t.to(ctx.device)).cpu() for t in (syn_r, syn_f, x_f))
    parts: list[Dataset] = [task.retain_set]
    if cfg.synthetic_retain > 0:
        parts.append(TensorDataset(syn_r, logit_sr.argmax(-1)))  # θ_o's labels for synthetic retain
    pred_sf = logit_sf.argmax(-1)
    forget_x = torch.cat([x_f, syn_f])
    forget_y = torch.cat([invert_labels(logit_f, y_f, cfg.invert, task.num_classes),
                          invert_labels(logit_sf, pred_sf, cfg.invert, task.num_classes)])
    parts.append(TensorDataset(forget_x, forget_y))
    model = copy.deepcopy(model).to(ctx.device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    model.train()
    for _ in range(cfg.epochs):
        for x, y in ctx.loader(ConcatDataset(parts), cfg.batch_size, shuffle=True):
            opt.zero_grad()
            F.cross_entropy(model(x.to(ctx.device)), y.to(ctx.device)).backward()
            opt.step()
    return model.eval()
