"""Label-Agnostic Forgetting (LAF).

Shen, Zhang, Zhao, Zhu, Zhou, "Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep
Models", ICLR 2024 (arXiv 2404.00506). Reference code: https://github.com/ShaofeiShen768/LAF
(``VUnlearning.py``, ``Train.py``, ``Model.py``, ``hyperparameter.md``; commit 4fd4e87).

No labels are used until the optional repair step. Two VAEs model the representation
distributions: VAE_s on the embeddings of all training data, VAE_u on those of D_f. Then, for E
epochs over zip(D_f, D_r) batches, two updates of the whole network with both VAEs frozen:

1. extractor unlearning (Adam ``lr_ue``): with r(e) = ‖VAE(e) − e‖² and g = Σ_batch exp(r/(r+1)),
   minimise g(VAE_s; e(x_r)) − g(VAE_u; e(x_f));
2. representation alignment (Adam ``lr_ra``, fresh forward passes): with c = 1 − cos(e_θ(x), e_θo(x)),
   minimise Σ_r log(exp(c_r) / Σ_f exp(c_f/τ)) — retain embeddings stay on θ_o's, forget ones leave.

LAF+R (``repair_epochs > 0``): fine-tune only the head (the parameters ``embed`` does not use)
with CE on labelled D_r, as the reference's ``classifier_unlearning``.

Differences from the reference (documented simplifications):
- embeddings come from ``embed(model, x)``, not a ``(logits, emb)`` tuple;
- the reference feeds raw (unbounded) embeddings to a sigmoid decoder; we min-max scale each
  embedding dimension with θ_o's range on D_r ∪ D_f (``embed_scale="minmax"``) so the decoder can
  reconstruct them; ``"none"`` reproduces the reference;
- the VAE widths follow the reference's 256→128→32→latent, scaled to the embedding width d as
  d → max(d/2, 4·latent) → max(d/8, 2·latent) → latent (identical for d = 256, latent 8);
- VAE_s is trained on D_r ∪ D_f, the reference's ``loaders['train']``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset

from obliviate.methods.vision.base import ClassificationTask, VisionContext, embed, vision_method


@dataclass(frozen=True)
class LAFConfig:
    latent_dim: int = 8  # hyperparameter.md, CNN for MNIST/Fashion (16 for the ResNet/CIFAR-10 setting)
    vae_epochs: int = 10  # Train.vae_train
    vae_lr: float = 1e-3  # Train.vae_train (Adam)
    kl_weight: float = 0.025  # Train.vae_loss_function: MSE_sum/B + 0.025·KL
    epochs: int = 20  # hyperparameter.md, CNN class unlearning (40 for ResNet)
    lr_ue: float = 5e-5  # extractor-unlearning lr, hyperparameter.md CNN (1e-5 ResNet)
    lr_ra: float = 1e-4  # representation-alignment lr, hyperparameter.md CNN (5e-5 ResNet class)
    temperature: float = 20.0  # τ, hyperparameter.md class unlearning (5 for random-data removal)
    repair_epochs: int = 0  # LAF+R head fine-tuning on labelled D_r; 0 = label-free LAF (the paper's main method)
    repair_lr: float = 1e-3  # our choice; the reference notebook's value is not recorded in the repo
    batch_size: int = 64  # our choice (the reference's Data.py batch size was not checked)
    embed_scale: Literal["minmax", "none"] = "minmax"  # see the module docstring


class EmbeddingVAE(nn.Module):
    """MLP VAE over embeddings, sigmoid decoder (reference ``Model.VariationalAutoencoder``)."""

    def __init__(self, dim: int, latent: int) -> None:
        super().__init__()
        h1, h2 = max(dim // 2, 4 * latent), max(dim // 8, 2 * latent)
        self.enc = nn.Sequential(nn.Linear(dim, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        self.mu, self.logvar = nn.Linear(h2, latent), nn.Linear(h2, latent)
        self.dec = nn.Sequential(nn.Linear(latent, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU(), nn.Linear(h1, dim),
                                 nn.Sigmoid())

    def forward(self, e: torch.Tensor, noise: torch.Tensor | None = None):
        h = self.enc(e)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-30.0, 20.0)  # as diffusers' DiagonalGaussianDistribution
        std = torch.exp(0.5 * logvar)
        z = mu + std * (torch.randn_like(std) if noise is None else noise)
        return self.dec(z), mu, std


def vae_loss(out: torch.Tensor, e: torch.Tensor, mu: torch.Tensor, std: torch.Tensor, kl_weight: float) -> torch.Tensor:
    """MSE_sum/B + w·KL(N(μ, σ²) ‖ N(0, I))/B (reference ``vae_loss_function``)."""
    b = e.shape[0]
    kl = -0.5 * torch.sum(torch.log(std.pow(2) + 1e-8) + 1 - mu.pow(2) - std.pow(2))
    return F.mse_loss(out, e, reduction="sum") / b + kl_weight * kl / b


def reconstruction_energy(vae: EmbeddingVAE, e: torch.Tensor) -> torch.Tensor:
    """g = Σ_batch exp(r/(r+1)), r = ‖VAE(e) − e‖² (reference ``extractor_loss_functionnmse``)."""
    r = (vae(e)[0] - e).pow(2).sum(dim=1)
    return torch.exp(r / (r + 1)).sum()


def alignment_loss(e_r: torch.Tensor, e_r_orig: torch.Tensor, e_f: torch.Tensor, e_f_orig: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    """Σ_r log(exp(c_r)/Σ_f exp(c_f/τ)), c = 1 − cos (reference ``extractor_loss_functioncosine``)."""
    c_r = 1 - F.cosine_similarity(e_r, e_r_orig, dim=1)
    c_f = 1 - F.cosine_similarity(e_f, e_f_orig, dim=1)
    return (c_r - torch.logsumexp(c_f / temperature, dim=0)).sum()


def _train_vae(vae: EmbeddingVAE, model: nn.Module, scale, ds, cfg: LAFConfig, ctx: VisionContext) -> EmbeddingVAE:
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr)
    vae.train()
    for _ in range(cfg.vae_epochs):
        for x, _ in ctx.loader(ds, cfg.batch_size, shuffle=True):
            with torch.no_grad():
                e = scale(embed(model, x.to(ctx.device)))
            out, mu, std = vae(e)
            opt.zero_grad()
            vae_loss(out, e, mu, std, cfg.kl_weight).backward()
            opt.step()
    return vae.eval().requires_grad_(False)


def _check_finite(loss: torch.Tensor, stage: str, epoch: int, cfg: LAFConfig) -> None:
    """Stop before a non-finite loss reaches Adam, which would turn every weight into NaN: the
    forget embeddings can grow until the VAE's variance overflows (seen at lr_ue 3e-4 on digits)."""
    if not torch.isfinite(loss).all():
        raise ValueError(f"laf diverged: the {stage} loss became {loss.item()} in epoch {epoch} (lr_ue={cfg.lr_ue}, "
                         f"lr_ra={cfg.lr_ra}); lower lr_ue / lr_ra")


@vision_method("laf", config=LAFConfig,
               paper="Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep Models",
               arxiv="2404.00506", code="https://github.com/ShaofeiShen768/LAF",
               needs=("retain_set", "model.embed", "labels (LAF+R only)"),
               summary="Label-free: VAE-guided extractor unlearning plus contrastive representation alignment.")
def run(cfg: LAFConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Return the LAF-unlearned copy of ``model`` (LAF+R when ``repair_epochs > 0``)."""
    torch.manual_seed(ctx.seed)  # VAE init and reparameterisation noise
    model = copy.deepcopy(model).to(ctx.device).eval()
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    train_all = ConcatDataset([task.retain_set, task.forget_set])
    with torch.no_grad():
        embs = torch.cat([embed(model, x.to(ctx.device)) for x, _ in ctx.loader(train_all, 256, shuffle=False)])
    lo, hi = embs.min(0).values, embs.max(0).values
    span = (hi - lo).clamp_min(1e-6)

    def scale(e: torch.Tensor) -> torch.Tensor:
        return (e - lo) / span if cfg.embed_scale == "minmax" else e

    dim = embs.shape[1]
    vae_s = _train_vae(EmbeddingVAE(dim, cfg.latent_dim).to(ctx.device), model, scale, train_all, cfg, ctx)
    vae_u = _train_vae(EmbeddingVAE(dim, cfg.latent_dim).to(ctx.device), model, scale, task.forget_set, cfg, ctx)

    params = [p for p in model.parameters() if p.requires_grad]
    opt_ue = torch.optim.Adam(params, lr=cfg.lr_ue)
    opt_ra = torch.optim.Adam(params, lr=cfg.lr_ra)
    model.train()
    for epoch in range(cfg.epochs):
        gen_f = ctx.loader(task.forget_set, cfg.batch_size, shuffle=True)
        gen_r = ctx.loader(task.retain_set, cfg.batch_size, shuffle=True)
        for (x_f, _), (x_r, _) in zip(gen_f, gen_r):  # zip stops at the shorter loader, as the reference
            x_f, x_r = x_f.to(ctx.device), x_r.to(ctx.device)
            loss_ue = (reconstruction_energy(vae_s, scale(embed(model, x_r)))
                       - reconstruction_energy(vae_u, scale(embed(model, x_f))))
            _check_finite(loss_ue, "extractor-unlearning", epoch, cfg)
            opt_ue.zero_grad()
            loss_ue.backward()
            opt_ue.step()
            with torch.no_grad():
                t_r, t_f = embed(teacher, x_r), embed(teacher, x_f)
            loss_ra = alignment_loss(embed(model, x_r), t_r, embed(model, x_f), t_f, cfg.temperature)
            _check_finite(loss_ra, "alignment", epoch, cfg)
            opt_ra.zero_grad()
            loss_ra.backward()
            opt_ra.step()

    if cfg.repair_epochs > 0:
        model.zero_grad(set_to_none=True)
        x0 = next(iter(ctx.loader(task.retain_set, cfg.batch_size, shuffle=False)))[0].to(ctx.device)
        embed(model, x0).sum().backward()
        head = [p for p in params if p.grad is None]  # parameters the embedding does not depend on
        model.zero_grad(set_to_none=True)
        if not head:
            raise ValueError("laf: every parameter feeds embed(x), so there is no separate head to repair.")
        opt = torch.optim.Adam(head, lr=cfg.repair_lr)
        for _ in range(cfg.repair_epochs):
            for x, y in ctx.loader(task.retain_set, cfg.batch_size, shuffle=True):
                opt.zero_grad()
                F.cross_entropy(model(x.to(ctx.device)), y.to(ctx.device)).backward()
                opt.step()
    return model.eval()
