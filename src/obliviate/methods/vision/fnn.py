"""Forgetting Neural Networks (FNN).

Hatua, Nguyen, Cano, Sung, "Machine Unlearning using Forgetting Neural Networks", ICAART 2026
(arXiv 2410.22374). No reference code has been published.

A *forgetting layer* multiplies a layer's neurons by an Ebbinghaus-style retention
R_i = exp(−t/φ_i) (t = unlearning time, φ_i = per-neuron strength). Neurons most active on the
forget set get the smallest φ, so they decay fastest. Decay phases alternate with fine-tuning on
the retain set, which re-routes the retained classes around the decayed neurons.

Reconstruction (the paper's exact rule is not public, see the spec §5 — UNVERIFIED):
- the forgetting layer sits on the representation returned by ``embed(model, x)`` (auto-detected
  as the first module whose output equals it) or on the module named by ``layer``; it is kept in
  the returned model as a forward hook plus a ``fnn_forgetting.factor`` buffer, so it is saved
  with the state dict;
- rank-based strengths are geometric in the rank: φ_i = φ_min·(φ_max/φ_min)^{r_i/(W−1)}, r_i = 0
  for the neuron with the largest mean activation on D_f (``rank_by="forget"``, the spec's rule) or
  the largest D_f-minus-D_r mean activation (``rank_by="selectivity"``, our option);
- ``rank_varying`` re-ranks the neurons at every phase on the current model, so neurons that take
  over D_f after fine-tuning decay next; ``rank`` ranks once; ``constant`` uses √(φ_min·φ_max) for
  every neuron; ``random`` uses a seeded random ranking;
- retention multiplies across phases: R_i ← R_i·exp(−t_phase/φ_i^{(k)}).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from obliviate.methods.vision.base import ClassificationTask, VisionContext, embed, vision_method


@dataclass(frozen=True)
class FNNConfig:
    strategy: Literal["rank_varying", "rank", "constant", "random"] = "rank_varying"  # the paper's best (§5 spec)
    rank_by: Literal["forget", "selectivity"] = "forget"  # mean activation on D_f (spec §5); "selectivity" is ours
    phi_min: float = 0.5  # strength of the top-ranked neuron (UNVERIFIED; our choice)
    phi_max: float = 50.0  # strength of the bottom-ranked neuron (UNVERIFIED; our choice)
    phases: int = 3  # decay / fine-tune alternations (UNVERIFIED; our choice)
    t_per_phase: float = 1.0  # unlearning time added per phase: R = exp(−t/φ)
    retain_epochs: int = 1  # fine-tuning epochs on D_r after each decay
    lr: float = 1e-3  # Adam, fine-tuning (our choice)
    batch_size: int = 64
    layer: str = ""  # dotted module name to attach the forgetting layer to; "" = the module producing embed(x)


class ForgettingLayer(nn.Module):
    """h ↦ h ⊙ R with R = exp(−t/φ) per neuron (channel dim 1); attached as a forward hook."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("factor", torch.ones(width))

    def hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (output.dim() - 2)
        return output * self.factor.view(shape)


def retention(phi: torch.Tensor, t: float) -> torch.Tensor:
    """Ebbinghaus retention R = exp(−t/φ)."""
    return torch.exp(-t / phi)


def rank_strengths(score: torch.Tensor, phi_min: float, phi_max: float) -> torch.Tensor:
    """φ_i geometric in the rank of ``score`` (highest score → φ_min, lowest → φ_max)."""
    w = score.numel()
    rank = torch.empty(w, dtype=torch.float32)
    rank[torch.argsort(score, descending=True)] = torch.arange(w, dtype=torch.float32)
    return phi_min * (phi_max / phi_min) ** (rank / max(w - 1, 1))


def _find_embed_module(model: nn.Module, x: torch.Tensor) -> str:
    outputs: list[tuple[str, torch.Tensor]] = []
    handles = [m.register_forward_hook(lambda _m, _i, o, n=n: outputs.append((n, o)))
               for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            target = embed(model, x)
    finally:
        for h in handles:
            h.remove()
    for name, out in outputs:
        if isinstance(out, torch.Tensor) and out.shape == target.shape and torch.equal(out, target):
            return name
    raise ValueError("fnn: no submodule outputs embed(x); name the layer to decay with the `layer` option.")


def _mean_activation(model: nn.Module, module: nn.Module, ds, ctx: VisionContext, bs: int) -> torch.Tensor:
    acc, n = None, 0
    grab: list[torch.Tensor] = []
    h = module.register_forward_hook(lambda _m, _i, o: grab.append(o.detach()))
    try:
        with torch.no_grad():
            for x, _ in ctx.loader(ds, bs, shuffle=False):
                grab.clear()
                model(x.to(ctx.device))
                a = grab[-1]
                s = a.transpose(0, 1).reshape(a.shape[1], -1).sum(1) / (a[0, 0].numel())
                acc = s if acc is None else acc + s
                n += a.shape[0]
    finally:
        h.remove()
    return acc / max(n, 1)


@vision_method("fnn", config=FNNConfig, paper="Machine Unlearning using Forgetting Neural Networks",
               arxiv="2410.22374", code="", needs=("labels", "retain_set", "model.embed"),
               summary="Decay the neurons most active on the forget set (exp(-t/φ)), then fine-tune on D_r.")
def run(cfg: FNNConfig, model: nn.Module, task: ClassificationTask, ctx: VisionContext) -> nn.Module:
    """Attach a forgetting layer, alternate decay phases with retain fine-tuning, return the model."""
    model = copy.deepcopy(model).to(ctx.device)
    x0 = next(iter(ctx.loader(task.forget_set, cfg.batch_size, shuffle=False)))[0].to(ctx.device)
    name = cfg.layer or _find_embed_module(model, x0)
    target = model.get_submodule(name)
    model.eval()
    width = _mean_activation(model, target, task.forget_set, ctx, cfg.batch_size).numel()
    layer = ForgettingLayer(width).to(ctx.device)
    target.add_module("fnn_forgetting", layer)
    target.register_forward_hook(layer.hook)
    gen = torch.Generator().manual_seed(ctx.seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    phi = None
    for phase in range(cfg.phases):
        if phi is None or cfg.strategy == "rank_varying":
            model.eval()
            # rank on the decayed activations: what D_f still uses after the previous phases
            act_f = _mean_activation(model, target, task.forget_set, ctx, cfg.batch_size)
            score = act_f
            if cfg.rank_by == "selectivity":
                score = act_f - _mean_activation(model, target, task.retain_set, ctx, cfg.batch_size)
            if cfg.strategy == "constant":
                phi = torch.full((width,), math.sqrt(cfg.phi_min * cfg.phi_max))
            elif cfg.strategy == "random":
                phi = rank_strengths(torch.rand(width, generator=gen), cfg.phi_min, cfg.phi_max)
            else:
                phi = rank_strengths(score.cpu(), cfg.phi_min, cfg.phi_max)
        with torch.no_grad():
            layer.factor.mul_(retention(phi, cfg.t_per_phase).to(layer.factor.device))
        model.train()
        for _ in range(cfg.retain_epochs):
            for x, y in ctx.loader(task.retain_set, cfg.batch_size, shuffle=True):
                opt.zero_grad()
                F.cross_entropy(model(x.to(ctx.device)), y.to(ctx.device)).backward()
                opt.step()
    return model.eval()
