"""Atomic, resumable checkpoints: weights as safetensors, optimiser state via weights-only torch files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CKPT_NAME = "checkpoint"


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in names}


def save_checkpoint(out_dir: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, step: int, extra: dict | None = None) -> Path:
    """Write ``out_dir/checkpoint`` atomically (temp dir + rename): trainable weights, optimiser,
    scheduler, RNG states and the step."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ckpt.", dir=out))
    save_file(_trainable_state(model), str(tmp / "trainable.safetensors"))
    # Batches come from a plan fixed by the seed, so the torch RNG (dropout) is the only state left.
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
                "torch_rng": torch.get_rng_state()}, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({"step": step, **(extra or {})}))
    final = out / CKPT_NAME
    old = out / f".{CKPT_NAME}.old"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(out_dir: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> dict | None:
    """Restore the checkpoint in ``out_dir`` if there is one; returns its metadata (with ``step``)."""
    ckpt = Path(out_dir) / CKPT_NAME
    if not (ckpt / "meta.json").exists():
        return None
    weights = load_file(str(ckpt / "trainable.safetensors"))
    missing = set(weights) - set(model.state_dict())
    if missing:
        raise ValueError(f"{ckpt}: checkpoint has weights the model lacks ({sorted(missing)[:3]} ...); "
                         "it was written by a different model or LoRA setting — use a new output directory.")
    model.load_state_dict(weights, strict=False)
    # weights_only=True: the state file holds tensors, numbers and lists only.
    state = torch.load(ckpt / "state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return json.loads((ckpt / "meta.json").read_text())
