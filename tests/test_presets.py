"""Every shipped preset loads and binds to its method's config and to TrainConfig (no unknown keys,
right types), and every registered language-model method has a fictional_authors preset."""

import pytest

from obliviate import registry
from obliviate.api import resolve_configs
from obliviate.presets import list_presets, load_preset

PRESETS = list_presets()


@pytest.mark.parametrize("benchmark,method", PRESETS, ids=[f"{b}/{m}" for b, m in PRESETS])
def test_preset_binds(benchmark, method):
    raw = load_preset(benchmark, method)
    assert raw.get("notes"), "a preset says where its numbers come from"
    mcfg, tcfg = resolve_configs(method, benchmark)
    for key, value in raw.get("method", {}).items():
        assert getattr(mcfg, key) == (tuple(value) if isinstance(value, list) else value)
    for key, value in raw.get("train", {}).items():
        assert getattr(tcfg, key) == (tuple(value) if isinstance(value, list) else value)


def test_every_text_method_has_a_builtin_benchmark_preset():
    have = {m for b, m in PRESETS if b == "fictional_authors"}
    missing = set(registry.names("method", "text")) - have
    assert not missing, f"no presets/fictional_authors/<method>.yaml for: {sorted(missing)}"


def test_preset_methods_are_registered():
    text = set(registry.names("method", "text"))
    assert {m for _, m in PRESETS} <= text
