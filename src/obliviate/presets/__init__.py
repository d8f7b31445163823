"""Shipped presets: ``presets/<benchmark>/<method>.yaml`` holding ``method:`` and ``train:`` sections."""

from __future__ import annotations

from pathlib import Path

from obliviate.config import ConfigError, load_yaml

PRESET_ROOT = Path(__file__).parent


def preset_path(benchmark: str, method: str) -> Path:
    return PRESET_ROOT / benchmark / f"{method}.yaml"


# Benchmarks of image-classifier methods: their presets tune the digits bench's runs
# (`obliviate.benchmarks.digits_bench.method_config`), not `obliviate unlearn --benchmark`.
IMAGE_BENCHMARKS = ("digits",)


def list_presets(image: bool = False) -> list[tuple[str, str]]:
    """(benchmark, method) pairs of every shipped language-model preset (``image=True``: those of the
    image benchmarks instead)."""
    return sorted((p.parent.name, p.stem) for p in PRESET_ROOT.glob("*/*.yaml")
                  if p.parent.name != "accelerate" and (p.parent.name in IMAGE_BENCHMARKS) == image)


def accelerate_config(name: str) -> Path:
    """A shipped ``accelerate launch --config_file`` file: ddp, fsdp, deepspeed_zero2, deepspeed_zero3."""
    return PRESET_ROOT / "accelerate" / f"{name}.yaml"


def load_preset(benchmark: str, method: str) -> dict:
    """The preset's raw mapping ({"method": {...}, "train": {...}}), or {} if none ships."""
    p = preset_path(benchmark, method)
    if not p.exists():
        return {}
    data = load_yaml(p)
    allowed = {"method", "notes"} | ({"scenarios"} if benchmark in IMAGE_BENCHMARKS else {"train"})
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{p}: unknown top-level key(s) {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return data
