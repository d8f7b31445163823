"""Atomic, resumable checkpoints: weights as safetensors, optimiser state via weights-only torch files.

A checkpoint records the run's fingerprint (`run_fingerprint`: the method, its config, the train
config, digests of the tokenised data and of the starting weights). `load_checkpoint` refuses a
checkpoint whose fingerprint differs from the run asking to resume, and says what differs: a run
killed as NPO never continues as GA, and a resumed run is the run that was started. The guards'
state (collapse baseline, best score, last good weights) travels in the checkpoint too, so a killed
and resumed run ends exactly where the uninterrupted one does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors.torch import load_file, save_file

from obliviate.errors import ResumeError

CKPT_NAME = "checkpoint"
# TrainConfig fields that change where and how a run reports, not what it computes.
NOT_FINGERPRINTED = ("output_dir", "progress", "checkpoint_every", "report_to", "logging_dir")


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in names}


def data_digest(streams: dict[str, Sequence[Any]]) -> str:
    """A hash of the tokenised training streams (token ids and prompt lengths): it changes with the
    data, the tokenizer, the prompt format and max_length."""
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(streams):
        h.update(name.encode())
        for e in streams[name]:
            h.update(np.asarray([len(e.input_ids), e.n_prompt, *e.input_ids], dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def run_fingerprint(method: str, method_config: Any, train_config: Any, data: str, model: str) -> dict:
    """What a checkpoint must match to be resumed, as plain JSON data."""
    from obliviate.config import to_dict
    from obliviate.report.schema import strict_json

    def plain(cfg: Any) -> Any:
        import dataclasses

        return to_dict(cfg) if dataclasses.is_dataclass(cfg) else (None if cfg is None else repr(cfg))

    train = {k: v for k, v in (plain(train_config) or {}).items() if k not in NOT_FINGERPRINTED}
    return strict_json({"method": method, "method_config": plain(method_config), "train_config": train,
                        "data": data, "model": model})


_LABELS = {"data": "the training data (forget/retain token ids: data files, tokenizer, prompt format or max_length)",
           "model": "the starting model's weights"}


def fingerprint_differences(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two fingerprints ("train_config.lr: 1e-05 then, 0.0005 now")."""
    out: list[str] = []
    for key in ("method", "train_config", "method_config", "data", "model"):
        a, b = old.get(key), new.get(key)
        if a == b or (key == "method_config" and old.get("method") != new.get("method")):
            continue  # another method has other config fields: the method line says it all
        if key in _LABELS:
            out.append(f"{_LABELS[key]} differ")
        elif isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k, "(unset)") != b.get(k, "(unset)"):
                    out.append(f"{key}.{k}: {a.get(k, '(unset)')!r} then, {b.get(k, '(unset)')!r} now")
        else:
            out.append(f"{key}: {a!r} then, {b!r} now")
    return out


def save_checkpoint(out_dir: str | os.PathLike, model: torch.nn.Module | None,
                    optimizer: torch.optim.Optimizer | None, scheduler: Any, step: int, extra: dict | None = None,
                    snapshots: dict[str, dict[str, torch.Tensor]] | None = None,
                    weights: dict[str, torch.Tensor] | None = None, optimizer_state: dict | None = None) -> Path:
    """Write ``out_dir/checkpoint`` atomically (temp dir + rename): trainable weights, optimiser,
    scheduler, RNG states, the step and ``extra`` (strict JSON: history, guards, fingerprint), plus
    named weight ``snapshots`` (the guards' last good and best weights) as safetensors. ``weights``
    and ``optimizer_state``, when given, are written instead of reading ``model`` and ``optimizer``
    (a sharded run gathers them first, `obliviate.train.distributed.full_state`)."""
    from obliviate.outputs import apply_umask, swap_into_place
    from obliviate.report.schema import dumps_strict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ckpt.", dir=out))
    try:
        save_file(weights if weights is not None else _trainable_state(model), str(tmp / "trainable.safetensors"))
        for name, state in (snapshots or {}).items():
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / f"snapshot-{name}.safetensors"))
        # Batches come from a plan fixed by the seed, so the torch RNG (dropout) is the only state left.
        opt = optimizer_state if optimizer_state is not None else optimizer.state_dict()
        torch.save({"optimizer": opt, "scheduler": scheduler.state_dict() if scheduler else None,
                    "torch_rng": torch.get_rng_state()}, tmp / "state.pt")
        (tmp / "meta.json").write_text(dumps_strict({"step": step, **(extra or {})}), encoding="utf-8")
        apply_umask(tmp)
        final = swap_into_place(tmp, out / CKPT_NAME)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_checkpoint_meta(out_dir: str | os.PathLike) -> dict | None:
    """The metadata of the checkpoint in ``out_dir`` (None when there is none)."""
    meta = Path(out_dir) / CKPT_NAME / "meta.json"
    if not meta.exists():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ResumeError(f"{meta}: unreadable checkpoint metadata; delete {Path(out_dir) / CKPT_NAME} to start "
                          "fresh") from None


def check_fingerprint(out_dir: str | os.PathLike, meta: dict, fingerprint: dict) -> None:
    """Refuse to resume a checkpoint that another run wrote, saying what differs and how to start fresh."""
    where = Path(out_dir) / CKPT_NAME
    fresh = (f"To start fresh, delete {where} (or use another output directory); to resume it, rerun with the "
             "settings, data and model it was started with.")
    if "fingerprint" not in meta:
        raise ResumeError(f"{where}: this checkpoint records no run fingerprint (an older obliviate wrote it), so "
                          f"what it would resume cannot be checked. {fresh}")
    diffs = fingerprint_differences(meta["fingerprint"], fingerprint)
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
        raise ResumeError(f"{where}: the checkpoint (step {meta.get('step')}) belongs to a different run, so it is "
                          f"not resumed: {shown}. {fresh}")


def load_checkpoint(out_dir: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, fingerprint: dict | None = None,
                    apply: Callable[[dict, dict], None] | None = None) -> dict | None:
    """Restore the checkpoint in ``out_dir`` if there is one; returns its metadata (with ``step``).

    With ``fingerprint``, a checkpoint of a different run is refused (`ResumeError`) before anything
    is restored. ``apply(weights, optimizer_state)`` puts the weights and optimizer state in place
    (default: ``load_state_dict`` of each; a sharded run gives
    `obliviate.train.distributed.load_full_state`)."""
    meta = read_checkpoint_meta(out_dir)
    if meta is None:
        return None
    if fingerprint is not None:
        check_fingerprint(out_dir, meta, fingerprint)
    ckpt = Path(out_dir) / CKPT_NAME
    weights = load_file(str(ckpt / "trainable.safetensors"))
    missing = set(weights) - set(model.state_dict())
    if missing:
        raise ResumeError(f"{ckpt}: checkpoint has weights the model lacks ({sorted(missing)[:3]} ...); "
                          "it was written by a different model or LoRA setting — use a new output directory.")
    # weights_only=True: the state file holds tensors, numbers and lists only.
    state = torch.load(ckpt / "state.pt", weights_only=True)
    if apply is not None:
        apply(weights, state["optimizer"])
    else:
        model.load_state_dict(weights, strict=False)
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return meta


def load_snapshot(out_dir: str | os.PathLike, name: str) -> dict[str, torch.Tensor]:
    """A weight snapshot saved with the checkpoint (see `save_checkpoint`)."""
    return load_file(str(Path(out_dir) / CKPT_NAME / f"snapshot-{name}.safetensors"))
