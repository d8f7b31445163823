"""Shipped presets: ``presets/<benchmark>/<method>.yaml`` holding ``method:`` and ``train:`` sections."""

from __future__ import annotations

from pathlib import Path

from obliviate.config import ConfigError, load_yaml

PRESET_ROOT = Path(__file__).parent


def preset_path(benchmark: str, method: str) -> Path:
    return PRESET_ROOT / benchmark / f"{method}.yaml"


def list_presets() -> list[tuple[str, str]]:
    """(benchmark, method) pairs of every shipped preset."""
    return sorted((p.parent.name, p.stem) for p in PRESET_ROOT.glob("*/*.yaml") if p.parent.name != "accelerate")


def accelerate_config(name: str) -> Path:
    """A shipped ``accelerate launch --config_file`` file: ddp, fsdp, deepspeed_zero2, deepspeed_zero3."""
    return PRESET_ROOT / "accelerate" / f"{name}.yaml"


def load_preset(benchmark: str, method: str) -> dict:
    """The preset's raw mapping ({"method": {...}, "train": {...}}), or {} if none ships."""
    p = preset_path(benchmark, method)
    if not p.exists():
        return {}
    data = load_yaml(p)
    unknown = set(data) - {"method", "train", "notes"}
    if unknown:
        raise ConfigError(f"{p}: unknown top-level key(s) {sorted(unknown)}; allowed: method, train, notes")
    return data
