"""Load causal LMs from the hub, a local folder, a GGUF file or a LoRA adapter folder; save them safely.

Safety defaults: safetensors only (``use_safetensors=True``), ``trust_remote_code=False``
unless the caller asks for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

# The dtypes a model can be loaded and trained in, by the names configs and the CLI use.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str | torch.dtype, recorded: str | torch.dtype | None = None, *,
                  option: str = "dtype") -> torch.dtype:
    """The torch dtype for ``name`` ("auto", "float32", "bfloat16", "float16" or a torch dtype).

    "auto" means the dtype the checkpoint records (``recorded``), and float32 when it records
    none: an unrecorded dtype is no reason to guess half precision. ``option`` names the setting
    in the error, so a typo in a preset or on the command line points at the field to fix.
    """
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        if recorded is None:
            return torch.float32
        return resolve_dtype(str(recorded).removeprefix("torch."), option=f"{option} (recorded by the checkpoint)")
    if name not in DTYPES:
        raise ValueError(f"{option}={name!r} is not a dtype obliviate loads models in; choose one of "
                         f"auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def load_causal_lm(
    name_or_path: str | os.PathLike,
    *,
    gguf_file: str | None = None,
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    revision: str | None = None,
    merge_adapter: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer.

    ``name_or_path`` is a hub id or a local directory saved with `save_pretrained`; for a GGUF
    checkpoint pass the directory (or hub id) and ``gguf_file`` (needs the ``gguf`` extra).
    Only safetensors weights are accepted for non-GGUF checkpoints. A directory holding
    ``adapter_config.json`` is a LoRA adapter (`obliviate.models.lora.save_adapter_atomic`): the
    base it names is loaded and the adapter applied with peft; the result is the `PeftModel`, or
    a plain model with the adapter folded in when ``merge_adapter`` is set.

    ``dtype`` (see `resolve_dtype`): "auto" keeps the checkpoint's recorded dtype, float32 when it
    records none; a quantised GGUF file is dequantised to float32 (transformers' own "auto" rule
    for GGUF: a file of plain bfloat16/float16 tensors keeps that type).
    """
    p = Path(name_or_path)
    if (p / "adapter_config.json").is_file():
        return _load_adapter(p, dtype=dtype, trust_remote_code=trust_remote_code, merge=merge_adapter)
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
    if gguf_file is not None:
        torch_dtype: str | torch.dtype = "auto" if dtype == "auto" else resolve_dtype(dtype)
    else:
        config = AutoConfig.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code,
                                            **({"revision": revision} if revision else {}))
        kwargs["config"] = config
        torch_dtype = resolve_dtype(dtype, getattr(config, "dtype", None) or getattr(config, "torch_dtype", None))
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), **{k: v for k, v in kwargs.items() if k != "config"})
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=torch_dtype, **kwargs)
    if gguf_file is not None:
        _drop_gguf_marker(model)
        # Name the file, not its folder: an adapter trained on this model records the base by this
        # name, and only the file path reloads it (`load_causal_lm` splits a *.gguf path itself).
        model.name_or_path = str(Path(name_or_path) / gguf_file)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def _load_adapter(adapter_dir: Path, *, dtype: str | torch.dtype, trust_remote_code: bool,
                  merge: bool) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Base model named in ``adapter_config.json`` + the adapter, with peft's own loader.

    The tokenizer saved next to the adapter wins over the base's: it is the one the adapter was
    trained with (pad token included).
    """
    from peft import PeftConfig, PeftModel

    base = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    if not base:
        raise ValueError(f"{adapter_dir / 'adapter_config.json'}: base_model_name_or_path is empty, so the base "
                         "model is unknown; set it to the base's directory or hub id")
    model, tokenizer = load_causal_lm(base, dtype=dtype, trust_remote_code=trust_remote_code)
    if (adapter_dir / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir), trust_remote_code=trust_remote_code)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    out = peft_model.merge_and_unload() if merge else peft_model
    out.eval()
    return out, tokenizer


def _drop_gguf_marker(model: PreTrainedModel) -> None:
    """transformers dequantises a GGUF checkpoint into ordinary float tensors but keeps marking the
    model as quantised, which makes `save_pretrained` refuse it. Nothing is quantised any more, so
    drop the marker: an unlearned GGUF model then saves as a normal safetensors checkpoint."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def save_model_atomic(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, out_dir: str | os.PathLike,
                      extra_files: dict[str, str] | None = None, *, overwrite: bool = False) -> Path:
    """Save model (+ tokenizer, + small text files) as safetensors into ``out_dir`` atomically.

    Writes into a temporary sibling directory, then renames it into place, so a killed run never
    leaves a half-written model where a finished one is expected. An existing ``out_dir`` is
    replaced only if it is empty or an earlier obliviate output, or with ``overwrite`` (see
    `write_atomic`).

    Weights keep the dtype they are in (a bfloat16 model saves as bfloat16). A peft model saves as
    its adapter (`obliviate.models.lora.save_adapter_atomic`), which `load_causal_lm` reloads.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        from obliviate.models.lora import save_adapter_atomic

        return save_adapter_atomic(model, tokenizer, out_dir, extra_files=extra_files, overwrite=overwrite)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)

    return write_atomic(out_dir, write, overwrite=overwrite)


def write_atomic(out_dir: str | os.PathLike, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Let ``write`` fill a temporary sibling of ``out_dir``, then rename it into place.

    A killed run or a failing ``write`` never leaves a half-written folder where a finished one is
    expected; an existing ``out_dir`` is replaced only once the new one is complete, and only if it
    is an empty folder or holds the obliviate marker (`obliviate.outputs`), or with ``overwrite``
    (a foreign folder). A file is never replaced by a folder. The folder gets the marker and the
    permissions the user's umask gives.
    """
    from obliviate.errors import OutputError
    from obliviate.outputs import MARKER, apply_umask, marker_text, refusal, swap_into_place

    out = Path(out_dir)

    def check() -> None:
        why = refusal(out)
        if why and (not overwrite or not out.is_dir() or out.is_symlink()):
            raise OutputError(why)

    check()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        (tmp / MARKER).write_text(marker_text(), encoding="utf-8")
        apply_umask(tmp)
        check()  # again: something may have appeared at ``out`` while ``write`` ran
        swap_into_place(tmp, out)
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
