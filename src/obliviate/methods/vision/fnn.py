"""Forgetting Neural Networks (FNN).

Hatua, Nguyen, Cano, Sung, "Machine Unlearning using Forgetting Neural Networks", ICAART 2026
(arXiv 2410.22374). No reference code has been published.

A *forgetting layer* multiplies a layer's neurons by an Ebbinghaus-style retention
R_i = exp(−t/φ_i) (t = unlearning time, φ_i = per-neuron strength). Neurons most active on the
forget set get the smallest φ, so they decay fastest. Decay phases alternate with fine-tuning on
the retain set, which re-routes the retained classes around the decayed neurons.

Reconstruction (the paper's exact rule is not public, see the spec §5 — UNVERIFIED):
- the forgetting layer sits on the representation returned by ``embed(model, x)`` (auto-detected
  as the first module whose output equals it) or on the module named by ``layer`` (any module, a
  ``Sequential`` included); during unlearning it is a forward hook, not a child module, so it never
  becomes a step of a ``Sequential``;
- at the end the retention is folded into the weights: R > 0 commutes with ReLU-like layers, so
  h ⊙ R is the output channels of the last Linear/Conv of the decayed module scaled by R (weight
  rows and bias). The returned model is then the plain architecture: its state dict loads strictly
  into a fresh copy and keeps the forgetting. Where folding is impossible (the decayed module does
  not end in a Linear/Conv followed only by ReLU-like layers) the hook stays and the factor is a
  ``fnn_forgetting_factor`` buffer of that module; ``load_fnn_state_dict`` re-attaches it, and a
  strict plain load fails on the extra key instead of silently dropping the forgetting;
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


FACTOR = "fnn_forgetting_factor"  # buffer name, on the decayed module, when the retention cannot be folded
_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                nn.AdaptiveMaxPool2d)  # f(R·z) = R·f(z) for R > 0, channel-wise


def _hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    """h ↦ h ⊙ R with R = the module's ``fnn_forgetting_factor`` buffer, per channel (dim 1)."""
    factor = getattr(module, FACTOR)
    return output * factor.view((1, -1) + (1,) * (output.dim() - 2))


def attach_forgetting(module: nn.Module, width: int) -> torch.Tensor:
    """Give ``module`` a retention buffer of ones and the forward hook that applies it; returns the buffer."""
    module.register_buffer(FACTOR, torch.ones(width, device=next(module.parameters(), torch.empty(0)).device))
    module._fnn_hook = module.register_forward_hook(_hook)  # type: ignore[assignment]
    return getattr(module, FACTOR)


def _last_channel_layer(module: nn.Module) -> nn.Module | None:
    """The Linear/Conv whose output channels are ``module``'s output channels, if only ReLU-like layers follow."""
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return module
    if isinstance(module, nn.Sequential):
        for child in reversed(list(module)):
            if isinstance(child, _HOMOGENEOUS):
                continue
            return _last_channel_layer(child)
    return None


def fold_forgetting(module: nn.Module) -> bool:
    """Fold the retention buffer of ``module`` into its last Linear/Conv and remove the hook and buffer.

    Returns False (and changes nothing) when the module's output is not such a layer's channels up to
    ReLU-like layers; the hook and buffer then stay.
    """
    layer = _last_channel_layer(module)
    factor = getattr(module, FACTOR)
    if layer is None or layer.weight.shape[0] != factor.numel():
        return False
    with torch.no_grad():
        layer.weight.mul_(factor.view((-1,) + (1,) * (layer.weight.dim() - 1)))  # row i of W scaled by R_i
        if layer.bias is not None:
            layer.bias.mul_(factor)
    module._fnn_hook.remove()  # type: ignore[attr-defined]
    del module._fnn_hook
    del module._buffers[FACTOR]
    return True


def load_fnn_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Load an FNN state dict into a plain ``model`` strictly, re-attaching any unfolded forgetting layers."""
    for key, value in state_dict.items():
        if key.endswith(FACTOR):
            name = key[: -len(FACTOR)].rstrip(".")
            attach_forgetting(model.get_submodule(name) if name else model, value.numel())
    model.load_state_dict(state_dict, strict=True)
    return model


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
    factor = attach_forgetting(target, width)
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
            factor.mul_(retention(phi, cfg.t_per_phase).to(factor.device))
        model.train()
        for _ in range(cfg.retain_epochs):
            for x, y in ctx.loader(task.retain_set, cfg.batch_size, shuffle=True):
                opt.zero_grad()
                F.cross_entropy(model(x.to(ctx.device)), y.to(ctx.device)).backward()
                opt.step()
    fold_forgetting(target)
    return model.eval()
