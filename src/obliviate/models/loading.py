"""Load causal LMs from the hub, a local folder or a GGUF file; save them safely.

Safety defaults: safetensors only (``use_safetensors=True``), ``trust_remote_code=False``
unless the caller asks for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase


def load_causal_lm(
    name_or_path: str | os.PathLike,
    *,
    gguf_file: str | None = None,
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer.

    ``name_or_path`` is a hub id or a local directory saved with `save_pretrained`; for a GGUF
    checkpoint pass the directory (or hub id) and ``gguf_file`` (needs the ``gguf`` extra).
    Only safetensors weights are accepted for non-GGUF checkpoints.
    """
    p = Path(name_or_path)
    if gguf_file is None and p.suffix == ".gguf":
        gguf_file, name_or_path = p.name, str(p.parent)
    kwargs: dict = {"trust_remote_code": trust_remote_code}
    if revision:
        kwargs["revision"] = revision
    if gguf_file is not None:
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise ImportError(
                "loading a GGUF file needs the `gguf` package: pip install 'obliviate[gguf]'"
            ) from None
        kwargs["gguf_file"] = gguf_file
    else:
        kwargs["use_safetensors"] = True
    if p.exists() and p.is_dir() and gguf_file is None and not any(p.glob("*.safetensors")):
        raise FileNotFoundError(
            f"{p}: no *.safetensors weights found. obliviate loads safetensors only; convert the "
            "checkpoint with `model.save_pretrained(dir, safe_serialization=True)`."
        )
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=dtype, **kwargs)
    if gguf_file is not None:
        _drop_gguf_marker(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def _drop_gguf_marker(model: PreTrainedModel) -> None:
    """transformers dequantises a GGUF checkpoint into ordinary float tensors but keeps marking the
    model as quantised, which makes `save_pretrained` refuse it. Nothing is quantised any more, so
    drop the marker: an unlearned GGUF model then saves as a normal safetensors checkpoint."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def save_model_atomic(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, out_dir: str | os.PathLike,
                      extra_files: dict[str, str] | None = None) -> Path:
    """Save model (+ tokenizer, + small text files) as safetensors into ``out_dir`` atomically.

    Writes into a temporary sibling directory, then renames it into place, so a killed run never
    leaves a half-written model where a finished one is expected.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the weights: the scoring cache's key for "this exact model"."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        data = t.detach().to("cpu").contiguous()
        if data.numel() > 1_000_000:  # large models: hash a strided sample plus the sum
            data = data.flatten()[:: max(1, data.numel() // 100_000)]
        h.update(data.float().numpy().tobytes())
    return h.hexdigest()[:16]
