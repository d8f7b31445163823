"""LoRA adapters through peft: which layers get them, and an adapter folder that reloads anywhere.

peft knows, per architecture, which projections LoRA adapts by default
(``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``, applied when ``target_modules`` is None:
q_proj/v_proj for Llama and Qwen2, c_attn for GPT-2). obliviate leaves that choice to peft and only
steps in where peft would fail with a bare message: an architecture without a default, or a
target name that matches no layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from obliviate.models.loading import write_atomic


def adaptable_layer_names(model: torch.nn.Module) -> list[str]:
    """The distinct last name parts of the model's Linear and Conv1D layers (GPT-2 uses Conv1D):
    the names ``lora_target`` can list."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, (torch.nn.Linear, Conv1D))})


def wrap_lora(model: PreTrainedModel, r: int, alpha: int, dropout: float,
              target: Sequence[str] = ()) -> PeftModel:
    """Wrap ``model`` in LoRA adapters of rank ``r`` (scale ``alpha / r``); only they train.

    An empty ``target`` takes peft's default layers for the architecture; otherwise each name is
    matched as peft matches a list (a module's full name, or its last parts after a dot). A name
    that matches nothing is refused rather than skipped, since a typo would silently train fewer
    layers than asked for.
    """
    model_type = getattr(model.config, "model_type", None)
    names = [n for n, _ in model.named_modules()]
    hint = f"this model's Linear/Conv1D layers: {', '.join(adaptable_layer_names(model))}"
    if target:
        missing = [t for t in target if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            raise ValueError(f"lora_target: {', '.join(map(repr, missing))} matches no layer of this {model_type!r} "
                             f"model; {hint}")
    elif model_type not in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        raise ValueError(f"peft has no default LoRA target layers for model type {model_type!r}; set lora_target "
                         f"to the layers to adapt (e.g. the attention projections); {hint}")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, task_type="CAUSAL_LM",
                        target_modules=list(target) if target else None)
    return get_peft_model(model, config)


def portable_base_name(base_name_or_path: str | os.PathLike) -> str:
    """How an adapter should name its base: an absolute path when the base is on this disk (so the
    adapter loads from any working directory), the hub id as given otherwise."""
    p = Path(base_name_or_path).expanduser()
    return str(p.resolve()) if p.exists() else str(base_name_or_path)


def save_adapter_atomic(peft_model: PeftModel, tokenizer: PreTrainedTokenizerBase | None, out_dir: str | os.PathLike,
                        base_name_or_path: str | os.PathLike | None = None,
                        extra_files: dict[str, str] | None = None, *, overwrite: bool = False) -> Path:
    """Save the adapter (adapter_model.safetensors + adapter_config.json, + tokenizer, + small text
    files) into ``out_dir`` atomically, with the base recorded by `portable_base_name`.

    ``base_name_or_path`` defaults to the base peft recorded when the adapter was made (the
    ``name_or_path`` the base was loaded from, which may be relative to today's directory).
    `obliviate.models.loading.load_causal_lm` reloads the folder onto that base.
    """
    config = peft_model.peft_config[peft_model.active_adapter]
    base = base_name_or_path if base_name_or_path is not None else config.base_model_name_or_path
    if not base:
        raise ValueError("save_adapter_atomic: the base model is unknown (it was built in memory, not loaded); pass "
                         "base_name_or_path, the directory or hub id the adapter is to be applied to")
    recorded = config.base_model_name_or_path

    def write(tmp: Path) -> None:
        config.base_model_name_or_path = portable_base_name(base)
        try:
            peft_model.save_pretrained(tmp, safe_serialization=True)
        finally:
            config.base_model_name_or_path = recorded
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)

    return write_atomic(out_dir, write, overwrite=overwrite)
