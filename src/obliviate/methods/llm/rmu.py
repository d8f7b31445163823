"""RMU (Representation Misdirection for Unlearning), from the WMDP paper.

Li et al., "The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning", ICML 2024
(arXiv 2403.03218). Code: https://github.com/centerforaisafety/wmdp (`rmu/unlearn.py`);
OpenUnlearning `RMU`. At one layer ℓ, push the forget inputs' hidden states towards a fixed
random direction c·u and keep the retain inputs' hidden states where the frozen model has them:

    L = E_f mse(h_ℓ^θ(x), c·u) + α·E_r mse(h_ℓ^θ(x), h_ℓ^frozen(x)),  u ~ U[0,1)^d, ‖u‖ = 1,

with mse the mean over tokens and hidden dimensions (torch `mse_loss`, as the original). Only a
few parameters train: by default the MLP down-projections of layers ℓ-2..ℓ (the WMDP recipe
`layers.(5|6|7).mlp.down_proj` for ℓ = 7 on Zephyr-7B).

Choices (see the config): ℓ defaults to round(7/32 · depth), the recipe's relative depth, so the
default works for any model (7 on a 32-layer model, 0 on a 2-layer test model). Tokens: the
original uses every token of raw, padded text; we use every non-pad token (prompt and answer,
`attention_mask`), or only answer tokens with ``tokens="answer"`` (OpenUnlearning's mask).
Hidden states come from ``output_hidden_states=True``: hidden_states[ℓ+1] is the output of
decoder layer ℓ, except for the last layer, where Hugging Face returns it after the final norm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch

from obliviate.data.formatting import IGNORE_INDEX
from obliviate.methods import losses
from obliviate.methods.base import LossOutput, StepContext, method

WMDP_RELATIVE_DEPTH = 7 / 32  # Zephyr-7B recipe: layer 7 of 32


@dataclass(frozen=True)
class RMUConfig:
    steering_coeff: float = 6.5  # c (WMDP run_rmu_zephyr.ipynb recipe; OpenUnlearning configs use larger values)
    alpha: float = 1200.0  # retain weight (WMDP Zephyr-7B recipe)
    gamma: float = 1.0  # forget weight (OpenUnlearning RMU.yaml)
    layer: int | None = None  # ℓ; None = round(7/32 · depth) (WMDP: ℓ = 7 of 32); negative counts from the end
    n_update_layers: int = 3  # train layers ℓ-n+1..ℓ (WMDP: 5, 6, 7)
    params_regex: str = ""  # re.search over parameter names; "" = MLP down-proj of the update layers (WMDP)
    tokens: Literal["all", "answer"] = "all"  # non-pad tokens (WMDP raw text) or answer tokens (OpenUnlearning)
    seed: int = 0  # seed of the random direction u (the original draws it from the global RNG)


def _depth(model: torch.nn.Module) -> int:
    cfg = getattr(model, "config", None) or getattr(getattr(model, "module", None), "config", None)
    n = getattr(cfg, "num_hidden_layers", None)
    if n is None:
        raise ValueError("rmu needs a model whose config has num_hidden_layers (a Hugging Face causal LM)")
    return int(n)


def rmu_layer(cfg: RMUConfig, model: torch.nn.Module) -> int:
    """The steered layer ℓ (0-based) for this model."""
    n = _depth(model)
    layer = round(WMDP_RELATIVE_DEPTH * n) if cfg.layer is None else cfg.layer
    layer = layer + n if layer < 0 else layer
    if not 0 <= layer < n:
        raise ValueError(f"rmu layer={cfg.layer} is outside the model's {n} layers")
    return layer


def rmu_params_regex(cfg: RMUConfig, model: torch.nn.Module) -> str:
    if cfg.params_regex:
        return cfg.params_regex
    ell = rmu_layer(cfg, model)
    ids = "|".join(str(i) for i in range(max(0, ell - cfg.n_update_layers + 1), ell + 1))
    return rf"layers\.({ids})\.mlp\.down_proj\."


def rmu_prepare(cfg: RMUConfig, model: torch.nn.Module, task, tokenizer, fmt) -> None:
    """Freeze every parameter whose name does not match the regex (never unfreezes: LoRA-safe)."""
    pattern = re.compile(rmu_params_regex(cfg, model))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    keep = [n for n in names if pattern.search(n)]
    if not keep:
        raise ValueError(f"rmu: no trainable parameter matches {pattern.pattern!r} (names look like "
                         f"{names[:3]}); set params_regex to the layers to update")
    for n, p in model.named_parameters():
        if not pattern.search(n):
            p.requires_grad_(False)


def _hidden(model: torch.nn.Module, b: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], output_hidden_states=True)
    return out.hidden_states[layer + 1]


def _mask(cfg: RMUConfig, b: dict[str, torch.Tensor]) -> torch.Tensor:
    return b["attention_mask"].bool() if cfg.tokens == "all" else b["labels"] != IGNORE_INDEX


@method("rmu", config=RMUConfig,
        paper="The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning", arxiv="2403.03218",
        code="https://github.com/centerforaisafety/wmdp", streams=("forget", "retain"),
        needs=("reference_model", "retain_set"), prepare=rmu_prepare)
def rmu_loss(cfg: RMUConfig, model, batch, ctx: StepContext) -> LossOutput:
    """L = γ·mse(h_ℓ(x_f), c·u) + α·mse(h_ℓ(x_r), h_ℓ^frozen(x_r)) over the chosen tokens."""
    if ctx.reference is None:
        raise RuntimeError("rmu needs the frozen reference model; register it with needs=('reference_model',)")
    layer = rmu_layer(cfg, model)
    f = batch["forget"]
    h_f = _hidden(model, f, layer)
    target = losses.rmu_control_vector(h_f.size(-1), cfg.steering_coeff, cfg.seed).to(h_f.device)
    forget = losses.masked_mse(h_f, target.expand_as(h_f), _mask(cfg, f))
    loss, parts = cfg.gamma * forget, {"rmu_forget": forget.item()}
    r = batch.get("retain")
    if r is not None and cfg.alpha > 0:
        h_r = _hidden(model, r, layer)
        with torch.no_grad():
            h_ref = _hidden(ctx.reference, r, layer)
        retain = losses.masked_mse(h_r, h_ref, _mask(cfg, r))
        loss = loss + cfg.alpha * retain
        parts["rmu_retain"] = retain.item()
    return LossOutput(loss, parts)
